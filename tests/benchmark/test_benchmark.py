"""groove_sc.benchmark: protocols, run() (tidy table, failures, determinism, resume), statistics."""

import copy

import numpy as np
import pandas as pd
import pytest

import groove_sc as gs
import groove_sc.benchmark as gb
from tests._shared import bad_input, tiny_benchmark, unit_benchmark


# --------------------------------------------------------------------------------------------
# protocols
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    return gs.datasets.simulate(
        n_perturbations=7, cells_per_perturbation=20, n_features=(8, 6), seed=0
    )


def test_heldout_label_folds_partition_the_labels():
    labels = ["control", *[f"P{i}" for i in range(9)]]
    folds = gb.heldout_label_folds(labels, 3, seed=0, keep=["control"])
    flat = sorted(x for f in folds for x in f)
    assert flat == sorted(labels[1:])
    assert [len(f) for f in folds] == [3, 3, 3]
    assert folds != gb.heldout_label_folds(labels, 3, seed=1, keep=["control"])
    with pytest.raises(ValueError, match="n_folds"):
        gb.heldout_label_folds(labels, 10, seed=0, keep=["control"])


def test_split_heldout_labels(sim):
    train, test = gb.split_heldout_labels(sim, "perturbation", ["P01", "P03"], seed=0)
    a, b = list(sim.mod)
    for m in (a, b):
        assert set(test.mod[m].obs["perturbation"].astype(str)) == {"P01", "P03"}
        assert not {"P01", "P03"} & set(train.mod[m].obs["perturbation"].astype(str))
        assert all(name.startswith(f"{m}:") for name in train.mod[m].obs_names)
    # test cells are paired, training cells disjoint between modalities
    np.testing.assert_array_equal(test.mod[a].obs["pair_id"], test.mod[b].obs["pair_id"])
    assert not set(train.mod[a].obs["pair_id"]) & set(train.mod[b].obs["pair_id"])
    n_train_labels = sim.n_obs - test.mod[a].n_obs  # every other cell in exactly one modality
    assert train.mod[a].n_obs + train.mod[b].n_obs == n_train_labels
    assert abs(train.mod[a].n_obs - train.mod[b].n_obs) <= 5  # halves, stratified by label


def test_iter_splits_and_load_dataset(sim):
    splits = list(gb.iter_splits(sim, "perturbation", "heldout_labels", seed=0, n_folds=3))
    assert [s.fold for s in splits] == [0, 1, 2]
    held = [set(s.info["test_labels"]) for s in splits]
    assert set.union(*held) == set(sim.mod["rna"].obs["perturbation"].cat.categories)
    with pytest.raises(KeyError, match="protocol"):
        next(gb.iter_splits(sim, "perturbation", "heldout_genes", seed=0))
    mdata = gb.load_dataset(
        "simulate",
        label_key="perturbation",
        params={"n_perturbations": 4, "cells_per_perturbation": 30, "likelihood": "nb"},
        seed=3,
        subsample_per_label=10,
        log1p=True,
    )
    x = mdata.mod["rna"].X
    assert mdata.mod["rna"].n_obs == 40 and x.dtype == np.float32
    assert (x >= 0).all() and x.max() < 15  # log1p of normalised counts
    assert "counts" in mdata.mod["rna"].layers
    with pytest.raises(KeyError, match="loader"):
        gb.load_dataset("nope", label_key="x")


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------
def _config(**overrides):
    return unit_benchmark(**overrides)


def test_load_config_normalises_and_validates(tmp_path):
    cfg = gb.load_config(_config())
    assert cfg["datasets"][0]["settings"] == {"": {}}
    assert cfg["aligners"]["sinkhorn"] == {"method": "sinkhorn"}
    assert cfg["learners"] == {"pca": {}, "propensity_score": {}, "groove": {}}
    path = tmp_path / "c.yaml"
    path.write_text("datasets: {snareseq: {label_key: cell_type}}\nseeds: 3\n")
    cfg = gb.load_config(path)
    assert cfg["name"] == "c" and cfg["seeds"] == [3]
    assert cfg["datasets"][0]["loader"] == "snareseq"
    with pytest.raises(KeyError, match="protocol"):
        gb.load_config(_config(protocols={"heldout_genes": {}}))
    with pytest.raises(KeyError, match="learner"):
        gb.load_config(_config(learners=["scot"]))
    with pytest.raises(KeyError, match="label_key"):
        gb.load_config(_config(datasets={"sim": {"loader": "simulate"}}))


@pytest.fixture(scope="module")
def results():
    return gb.run(_config(), progress=False)


def test_run_tidy_table(results):
    assert list(results.columns) == gb.RESULT_COLUMNS
    cells = results.groupby(["learner", "aligner"])["status"].first()
    assert len(cells) == 9  # every learner x aligner cell present
    assert cells[("pca", "sinkhorn")] == "not_applicable"
    assert (cells.drop(("pca", "sinkhorn")) == "ok").all()
    ok = results[results.status == "ok"]
    assert ok["value"].notna().all()
    assert set(ok.metric) == set(gb.COUPLING_METRICS) | set(gb.LATENT_METRICS) | set(gb.FIT_METRICS)
    assert not set(ok[ok.learner == "pca"].metric) & set(gb.LATENT_METRICS)
    assert set(ok[ok.learner == "groove"].metric) >= set(gb.FIT_METRICS)  # validation cells
    value = ok.set_index(["learner", "aligner", "metric"])["value"]
    assert value[("groove", "uniform", "trace_ratio")] == pytest.approx(1.0)
    assert value[("groove", "uniform", "label_transfer_accuracy")] == pytest.approx(1.0)
    assert (ok["seconds"] > 0).all()


def test_run_is_deterministic(results):
    again = gb.run(_config(), progress=False)
    pd.testing.assert_frame_equal(
        results.drop(columns="seconds"), again.drop(columns="seconds"), check_exact=True
    )


def test_failures_are_recorded_not_fatal():
    cfg = _config(
        learners={"pca": {}, "propensity_score": {"max_iter": -1}},
        aligners={"uniform": {}, "broken": {"method": "gw", "epsilon": -1.0}},
    )
    res = gb.run(cfg, progress=False)
    cells = res.groupby(["learner", "aligner"])[["status", "error"]].first()
    assert cells.loc[("pca", "uniform"), "status"] == "ok"
    assert cells.loc[("pca", "broken"), "status"] == "failed"
    assert cells.loc[("propensity_score", "uniform"), "status"] == "failed"
    assert "max_iter" in cells.loc[("propensity_score", "uniform"), "error"]
    assert res.loc[res.status == "failed", "value"].isna().all()


def test_results_path_and_resume(tmp_path):
    cfg = _config(learners=["pca"], aligners={"uniform": {}})
    path = tmp_path / "r.csv"
    first = gb.run(cfg, progress=False, results_path=path)
    assert len(pd.read_csv(path)) == len(first)
    cfg["learners"] = ["pca", "propensity_score"]
    both = gb.run(cfg, progress=False, results_path=path, resume=True)
    assert len(pd.read_csv(path)) == len(both)
    assert both.groupby("learner").size().to_dict() == {
        "pca": len(first),
        "propensity_score": len(gb.COUPLING_METRICS) + len(gb.LATENT_METRICS),
    }


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------
def _table():
    rng = np.random.default_rng(0)
    rows = []
    offsets = {"groove": -0.05, "autoencoder": 0.0, "pca": 0.03}
    for learner, off in offsets.items():
        for aligner in ("sinkhorn", "gw"):
            for seed in range(6):
                for fold in range(2):
                    rows.append(
                        {
                            "dataset": "d",
                            "setting": "",
                            "protocol": "heldout_labels",
                            "fold": fold,
                            "learner": learner,
                            "aligner": aligner,
                            "seed": seed,
                            "metric": "foscttm",
                            "value": 0.2 + off + 0.01 * rng.standard_normal(),
                            "seconds": 1.0,
                            "status": "ok",
                            "error": "",
                        }
                    )
    rows.append({**rows[-1], "learner": "pca", "aligner": "emd", "status": "not_applicable"})
    rows[-1]["value"] = np.nan
    return pd.DataFrame(rows)


def test_summarize_mean_and_se_over_seeds():
    df = _table()
    s = gb.summarize(df, "foscttm")
    row = s[(s.learner == "groove") & (s.aligner == "gw")].iloc[0]
    sub = df[(df.learner == "groove") & (df.aligner == "gw")]
    per_seed = sub.groupby("seed")["value"].mean()  # folds averaged first
    assert row["mean"] == pytest.approx(per_seed.mean())
    assert row["se"] == pytest.approx(per_seed.std(ddof=1) / np.sqrt(6))
    assert row["n_seeds"] == 6 and row["n_failed"] == 0
    na = s[(s.learner == "pca") & (s.aligner == "emd")]
    assert na.empty or na["n_seeds"].iloc[0] == 0


def test_wilcoxon_vs_best_other():
    df = _table()
    w = gb.wilcoxon_vs_best(df, "foscttm")
    assert set(w.aligner) == {"sinkhorn", "gw"}
    row = w[w.aligner == "gw"].iloc[0]
    assert row["best_other"] == "autoencoder"  # lower is better for FOSCTTM
    assert row["n_pairs"] == 12  # seeds x folds
    assert row["learner_better"] and row["n_learner_better"] == 12
    assert row["p_value"] == pytest.approx(2 / 2**12)  # exact test, every pair better
    assert row["min_p_value"] == pytest.approx(2 / 2**12)
    # restricted competitors
    w2 = gb.wilcoxon_vs_best(df, "foscttm", others=["pca"])
    assert set(w2.best_other) == {"pca"}
    # a metric where higher is better flips the choice of the best other learner
    flipped = df.assign(metric="trace")
    assert set(gb.wilcoxon_vs_best(flipped, "trace").best_other) == {"pca"}


def test_wilcoxon_rounding_differences_are_ties():
    """The uniform coupling's scores differ in the last bits between learners: no test."""
    df = _table()
    uni = df[df.aligner == "gw"].assign(aligner="uniform", value=0.18)
    jitter = np.where(uni.learner == "groove", 0.0, 1e-14 * (1 + uni.seed))
    uni = uni.assign(value=uni.value + jitter)
    w = gb.wilcoxon_vs_best(pd.concat([df, uni], ignore_index=True), "foscttm")
    row = w[w.aligner == "uniform"].iloc[0]
    assert row["p_value"] == 1.0 and row["n_learner_better"] == 0
    assert np.isnan(row["min_p_value"])


def test_rankings():
    df = _table()
    rl = gb.rank_learners(df, "foscttm")
    assert list(rl.learner) == ["groove", "autoencoder", "pca"]
    assert rl.iloc[0]["mean_rank"] == 1.0 and rl.iloc[0]["n_wins"] == 2
    ra = gb.rank_aligners(df, "foscttm")
    assert set(ra.aligner) == {"sinkhorn", "gw"}
    assert ra["n_comparisons"].sum() == 6
    assert gb.lower_is_better("foscttm_barycentric") and not gb.lower_is_better("trace_ratio")


def test_headline_table():
    df = _table()
    uniform = df[df.learner == "groove"].assign(aligner="uniform", value=0.3)
    df = pd.concat([df, uniform], ignore_index=True)
    h = gb.headline_table(df, "foscttm")
    row = h[h.aligner == "gw"].iloc[0]
    assert row["best_baseline"] == "autoencoder"
    assert row["learner_mean"] < row["baseline_mean"]
    assert row["reference_mean"] == pytest.approx(0.3)
    assert row["p_value"] == pytest.approx(2 / 2**12)


def test_decoder_pseudo_aligner():
    cfg = _config(
        learners={"groove": {}, "vae_adversarial": {}, "pca": {}}, aligners={"decoder": {}}
    )
    res = gb.run(cfg, progress=False)
    status = res.groupby("learner")["status"].first()
    assert status["pca"] == "not_applicable"
    assert status["groove"] == "ok" and status["vae_adversarial"] == "ok"
    ok = res[res.status == "ok"]
    assert ok["value"].notna().all()
    assert set(ok.metric) == set(gb.DECODER_METRICS) | set(gb.LATENT_METRICS)
    fos = ok[ok.metric == "foscttm_barycentric"]["value"]
    assert ((fos >= 0) & (fos <= 1)).all()


def test_wilcoxon_pooled_over_settings():
    a = _table()
    b = _table().assign(setting="other")
    w = gb.wilcoxon_vs_best(pd.concat([a, b]), "foscttm", by=("dataset", "aligner"))
    assert set(w.aligner) == {"sinkhorn", "gw"} and (w.n_pairs == 24).all()


def test_extra_eval_spaces():
    x = np.array([[3.0, 400.0], [1.0, 200.0], [2.0, 0.0]])
    np.testing.assert_allclose(np.linalg.norm(gb.eval_matrix(x, "l2"), axis=1), 1.0)
    z = gb.eval_matrix(x, "standardize")
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), 1.0)
    np.testing.assert_array_equal(gb.eval_matrix(x, "X"), x)
    cfg = _config(learners=["pca"], aligners={"uniform": {}, "gw": {}})
    cfg["datasets"]["sim"]["extra_eval_spaces"] = ["l2", "standardize"]
    res = gb.run(cfg, progress=False)
    ok = res[res.status == "ok"]
    extra = {f"{m}@{s}" for s in ("l2", "standardize") for m in gb.SPACE_METRICS}
    assert extra <= set(ok.metric) and ok["value"].notna().all()
    with pytest.raises(KeyError, match="extra_eval_spaces"):
        cfg["datasets"]["sim"]["extra_eval_spaces"] = ["pca"]
        gb.load_config(cfg)


# ------------------------------------------------------------------- bad input (issue 6)
TINY_BENCHMARK = tiny_benchmark()


@bad_input
def test_benchmark_no_datasets():
    with pytest.raises(KeyError, match="datasets"):
        gb.run({"learners": ["pca"], "aligners": ["uniform"]}, progress=False)


@bad_input
def test_benchmark_unknown_learner():
    with pytest.raises(KeyError, match=r"learner kind .nope.; known"):
        gb.run(dict(copy.deepcopy(TINY_BENCHMARK), learners=["nope"]), progress=False)


@bad_input
def test_benchmark_dataset_without_label_key():
    cfg = copy.deepcopy(TINY_BENCHMARK)
    del cfg["datasets"]["sim"]["label_key"]
    with pytest.raises(KeyError, match=r"dataset .sim. needs `label_key`"):
        gb.run(cfg, progress=False)


@bad_input
def test_benchmark_unknown_aligner_method_is_recorded():
    # documented: a failing alignment is recorded (status="failed", error), never fatal
    cfg = dict(copy.deepcopy(TINY_BENCHMARK), learners=["pca"])
    cfg["aligners"] = {"bad": {"method": "nope"}, "uniform": {"method": "uniform"}}
    res = gb.run(cfg, progress=False)
    bad = res[res["aligner"] == "bad"]
    assert len(bad) and (bad["status"] == "failed").all()
    assert bad["error"].str.contains("method").all()
    assert (res[res["aligner"] == "uniform"]["status"] == "ok").all()


@bad_input
def test_benchmark_tiny_run():
    res = gb.run(copy.deepcopy(TINY_BENCHMARK), progress=False)
    ok = res[res["status"] == "ok"]
    assert set(ok["learner"]) == {"groove", "pca"}
    assert np.isfinite(ok["value"].astype(float)).any()
    assert (
        res[(res["learner"] == "pca") & (res["aligner"] == "sinkhorn")]["status"]
        == "not_applicable"
    ).all()
