"""The quick benchmark configuration through the CLI entry point, and the Optuna search."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import groove_sc.benchmark as gb

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "benchmarks" / "configs" / "quick.yaml"
SHARED_SPACE = ("sinkhorn", "emd", "fgw")


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    assert gb.cli_main(["--config", str(QUICK), "--out", str(out), "--no-progress"]) == 0
    return out


def test_quick_config_every_cell_present_and_no_nan(quick_out):
    cfg = gb.load_config(QUICK)
    res = pd.read_csv(quick_out / "results.csv", keep_default_na=False, na_values=[""])
    protocols = set(cfg["protocols"])
    assert set(res.protocol) == protocols
    for protocol in protocols:
        part = res[res.protocol == protocol]
        cells = part.groupby(["learner", "aligner"])["status"].agg(set)
        expected = {
            (lrn, aln)
            for lrn in cfg["learners"]
            for aln, params in cfg["aligners"].items()
            if params.get("learners") is None or lrn in params["learners"]
        }
        assert set(cells.index) == expected
        for (learner, aligner), status in cells.items():
            if learner == "pca" and aligner in SHARED_SPACE:
                assert status == {"not_applicable"}
            else:
                assert status == {"ok"}, (learner, aligner, part.error.unique())
    ok = res[res.status == "ok"]
    assert not ok["value"].isna().any()
    groove_kinds = {"groove", "groove_no_groupclip", "groove_no_backtranslation"}
    groove_kinds |= {"autoencoder", "clip_random_pairs"}
    for (learner, protocol), part in ok.groupby(["learner", "protocol"]):
        expected = set(gb.COUPLING_METRICS)
        if learner != "pca":
            expected |= set(gb.LATENT_METRICS)
        if protocol == "heldout_labels":  # no training cells of the test labels to transfer from
            expected -= set(gb.TRAIN_REFERENCE_METRICS)
        if learner in groove_kinds:  # trained with validation cells (the package defaults)
            expected |= set(gb.FIT_METRICS)
        for aligner, rows in part.groupby("aligner"):
            extra = set(gb.SELECTION_METRICS) if aligner.startswith("auto") else set()
            assert set(rows.metric) == expected | extra, (learner, protocol, aligner)
    uniform = ok[(ok.aligner == "uniform") & (ok.metric == "trace_ratio")]
    np.testing.assert_allclose(uniform["value"], 1.0, rtol=1e-6)


def test_quick_config_report_files(quick_out):
    for name in ("summary.csv", "summary.md", "wilcoxon.csv", "ranking.csv", "run_info.json"):
        assert (quick_out / name).is_file(), name
    figures = list((quick_out / "figures").glob("*.png"))
    assert len(figures) >= 5
    summary = pd.read_csv(quick_out / "summary.csv")
    assert {"mean", "se", "n_seeds", "metric", "learner", "aligner"} <= set(summary.columns)
    text = (quick_out / "summary.md").read_text()
    assert "foscttm_barycentric" in text and "groove" in text
    # --report-only rewrites the tables from results.csv
    (quick_out / "summary.md").unlink()
    args = ["--config", str(QUICK), "--out", str(quick_out), "--report-only", "--no-figures"]
    assert gb.cli_main(args) == 0
    assert (quick_out / "summary.md").is_file()


def test_tune_grid_and_landscape(tmp_path):
    pytest.importorskip("optuna")
    datasets = [
        {
            "name": f"rho={rho}",
            "loader": "simulate",
            "label_key": "perturbation",
            "params": {"n_perturbations": 4, "cells_per_perturbation": 25, "n_features": 8},
        }
        for rho in (1.0, 0.5)
    ]
    trials = gb.tune(
        datasets=datasets,
        grid={"beta": [0.5, 2.0], "tau": [0.1]},
        learner_kwargs={"max_epochs": 2, "n_latent": 4, "n_hidden": 8},
        progress=False,
    )
    assert len(trials) == 2
    assert sorted(trials["beta"]) == [0.5, 2.0]
    for col in ("trace", "foscttm_barycentric", "foscttm", "trace[rho=0.5]"):
        assert trials[col].notna().all()
    fig = gb.plot_landscape(trials, defaults={"beta": 0.3, "tau": 0.5}, save=tmp_path / "l.png")
    assert len(fig.axes) >= 2 and (tmp_path / "l.png").is_file()
