"""``pl.benchmark``: what is drawn (heatmap values, bars, error bars, facets)."""

import matplotlib
import matplotlib.container

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

import groove_sc as gs
from tests.pl._objects import _legend_texts


# --------------------------------------------------------------------------------------------
# benchmark
# --------------------------------------------------------------------------------------------
def _results(seed=0, datasets=("sim",)):
    rng = np.random.default_rng(seed)
    rows = []
    for ds in datasets:
        for li, learner in enumerate(["groove", "autoencoder", "pca"]):
            for ai, aligner in enumerate(["sinkhorn", "emd", "uniform"]):
                for s in range(5):
                    for metric, base in (("trace_ratio", 1.0), ("foscttm_barycentric", 0.2)):
                        rows.append(
                            {
                                "dataset": ds,
                                "setting": "rho=0.8",
                                "protocol": "cells",
                                "learner": learner,
                                "aligner": aligner,
                                "seed": s,
                                "metric": metric,
                                "value": base + 0.3 * li + 0.1 * ai + rng.normal(0, 0.05),
                                "seconds": 1.0 + li + rng.random(),
                            }
                        )
    return pd.DataFrame(rows)


def test_benchmark_heatmap_values_are_means_with_se_annotations():
    res = _results()
    ax = gs.pl.benchmark(res, metric="trace_ratio", show=False)
    sub = res[res.metric == "trace_ratio"]
    mean = sub.pivot_table(index="learner", columns="aligner", values="value", aggfunc="mean")
    se = sub.groupby(["learner", "aligner"])["value"].agg(lambda v: v.std(ddof=1) / np.sqrt(5))
    mean = mean.loc[["groove", "autoencoder", "pca"], ["sinkhorn", "emd", "uniform"]]
    np.testing.assert_allclose(ax.images[0].get_array(), mean.to_numpy(), rtol=1e-10)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["groove", "autoencoder", "pca"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sinkhorn", "emd", "uniform"]
    assert ax.get_xlabel() == "aligner" and ax.get_ylabel() == "learner"
    texts = [t.get_text() for t in ax.texts]
    assert f"{mean.loc['groove', 'emd']:.2f}\n\u00b1{se.loc[('groove', 'emd')]:.2f}" in texts
    # higher is better: the best learner of each aligner (pca) is bold
    bold = [t.get_text().split("\n")[0] for t in ax.texts if t.get_fontweight() == "bold"]
    assert bold == [f"{v:.2f}" for v in mean.loc["pca"]]


def test_benchmark_bar_heights_and_error_bars():
    res = _results()
    ax = gs.pl.benchmark(res, metric="foscttm_barycentric", kind="bar", show=False)
    sub = res[res.metric == "foscttm_barycentric"]
    heights = [p.get_height() for p in ax.patches]
    expected = [
        sub[(sub.learner == lrn) & (sub.aligner == aln)].value.mean()
        for aln in ["sinkhorn", "emd", "uniform"]
        for lrn in ["groove", "autoencoder", "pca"]
    ]
    np.testing.assert_allclose(heights, expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["groove", "autoencoder", "pca"]
    assert _legend_texts(ax) == ["sinkhorn", "emd", "uniform"]
    assert "lower is better" in ax.get_ylabel()
    bars = [c for c in ax.containers if isinstance(c, matplotlib.container.BarContainer)]
    assert len(bars) == 3
    se = [
        sub[(sub.learner == lrn) & (sub.aligner == aln)].value.std(ddof=1) / np.sqrt(5)
        for aln in ["sinkhorn", "emd", "uniform"]
        for lrn in ["groove", "autoencoder", "pca"]
    ]
    half = [
        (seg[1, 1] - seg[0, 1]) / 2 for c in bars for seg in c.errorbar.lines[2][0].get_segments()
    ]
    np.testing.assert_allclose(half, se, rtol=1e-6)


def test_benchmark_facets_filters_seconds_and_missing_cells():
    res = _results(datasets=("sim", "citeseq"))
    axes = gs.pl.benchmark(res, metric="trace_ratio", show=False)
    assert [a.get_title() for a in axes] == [
        "sim \u00b7 rho=0.8 \u00b7 cells",
        "citeseq \u00b7 rho=0.8 \u00b7 cells",
    ]
    ax = gs.pl.benchmark(
        res, metric="trace_ratio", dataset="citeseq", aligners=["uniform"], show=False
    )
    assert ax.images[0].get_array().shape == (3, 1)
    ax = gs.pl.benchmark(res, metric="seconds", dataset="sim", kind="bar", show=False)
    assert len(ax.patches) == 9
    # failed runs (status) and a not applicable cell, as groove_sc.benchmark records them
    from groove_sc.pl._benchmark import _summarize

    res = _results()
    res["status"] = "ok"
    res["fold"] = 0
    failed = (res.learner == "pca") & (res.aligner == "emd")
    res.loc[failed, "status"] = "failed"
    res.loc[failed & (res.seed == 0), "status"] = "ok"  # one seed succeeded
    na = (res.learner == "autoencoder") & (res.aligner == "uniform")
    res.loc[na, "status"] = "not_applicable"
    res.loc[na, "value"] = np.nan
    summary = _summarize(res, metric="trace_ratio").set_index(["learner", "aligner"])
    assert summary.loc[("pca", "emd"), "n_failed"] == 4
    assert summary.loc[("pca", "emd"), "n_seeds"] == 1
    sub = res[(res.metric == "trace_ratio") & failed & (res.seed == 0)]
    assert summary.loc[("pca", "emd"), "mean"] == pytest.approx(sub.value.iloc[0])
    assert np.isnan(summary.loc[("pca", "emd"), "se"])  # one seed: no SE
    assert summary.loc[("autoencoder", "uniform"), "n_failed"] == 0
    assert np.isnan(summary.loc[("autoencoder", "uniform"), "mean"])
    ax = gs.pl.benchmark(res, metric="trace_ratio", show=False)
    assert "n/a" in [t.get_text() for t in ax.texts]
    # folds of one seed are averaged before the mean over seeds
    folds = pd.concat([_results().assign(fold=0), _results(seed=1).assign(fold=1)])
    summary = _summarize(folds, metric="trace_ratio").set_index(["learner", "aligner"])
    both = folds[(folds.metric == "trace_ratio") & (folds.learner == "pca")]
    both = both[both.aligner == "emd"].groupby("seed").value.mean()
    assert summary.loc[("pca", "emd"), "mean"] == pytest.approx(both.mean())
    assert summary.loc[("pca", "emd"), "se"] == pytest.approx(both.std(ddof=1) / np.sqrt(5))


def test_benchmark_latent_metric_without_aligner():
    res = _results()
    latent = res[res.aligner == "sinkhorn"].assign(aligner=np.nan, metric="foscttm")
    res = pd.concat([res, latent])
    ax = gs.pl.benchmark(res, metric="foscttm", aligners=[], show=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none"]
    assert ax.images[0].get_array().shape == (3, 1)


def test_benchmark_errors_name_the_argument():
    res = _results()
    with pytest.raises(KeyError, match="metric"):
        gs.pl.benchmark(res, metric="accuracy", show=False)
    with pytest.raises(KeyError, match="dataset"):
        gs.pl.benchmark(res, metric="trace_ratio", dataset="nope", show=False)
    with pytest.raises(KeyError, match="columns"):
        gs.pl.benchmark(res.drop(columns="aligner"), metric="trace_ratio", show=False)
    with pytest.raises(ValueError, match="kind"):
        gs.pl.benchmark(res, metric="trace_ratio", kind="pie", show=False)
