"""groove_sc.benchmark as a library: config, plan, resume, user data, errors, toy learner."""

import re
import sys
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import yaml

import groove_sc as gs
import groove_sc.benchmark as gb
from groove_sc._results import RESULT_COLUMNS, read_results
from groove_sc.benchmark._learner import LEARNERS
from groove_sc.benchmark._scoring import equals_labels_only
from tests._shared import unit_benchmark

ROOT = Path(__file__).resolve().parents[2]


def _config(**overrides):
    return unit_benchmark(
        **{
            "name": "lib",
            "learners": ["pca", "propensity_score"],
            "aligners": {"uniform": {}, "gw": {}, "coot": {}},
            **overrides,
        }
    )


def _values(df):
    keys = ["dataset", "setting", "protocol", "fold", "learner", "aligner", "seed", "metric"]
    return df.set_index(keys)["value"].sort_index()


# --------------------------------------------------------------------------------------------
# configuration and plan
# --------------------------------------------------------------------------------------------
def test_config_is_typed_and_reads_like_a_mapping():
    cfg = gb.load_config(_config())
    assert isinstance(cfg, gb.BenchmarkConfig)
    assert isinstance(cfg.datasets[0], gb.DatasetConfig)
    assert cfg["datasets"][0]["label_key"] == cfg.datasets[0].label_key == "perturbation"
    assert cfg.datasets[0].data_seed == "run"  # simulations vary with the seed
    assert cfg.aligners_for("pca") == {
        "uniform": {"method": "uniform"},
        "gw": {"method": "gw"},
        "coot": {"method": "coot"},
    }


SIM = {"loader": "simulate", "label_key": "p"}


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"protocols": {"heldout_genes": {}}}, "protocols"),
        ({"learners": ["scot"]}, "learners.scot"),
        ({"datasets": {"sim": {"loader": "simulate"}}}, "datasets.sim.label_key"),
        ({"datasets": {"sim": {"label_key": "p", "colour": 1}}}, "datasets.sim"),
        ({"datasets": {"sim": {"label_key": "p", "loader": "csv"}}}, "datasets.sim.loader"),
        (
            {"datasets": {"sim": {**SIM, "extra_eval_spaces": ["pca"]}}},
            "datasets.sim.extra_eval_spaces",
        ),
        (
            {"datasets": {"sim": {**SIM, "preprocess": {"rna": {"tfidf": True}}}}},
            "datasets.sim.preprocess.rna",
        ),
        (
            {"datasets": {"sim": {**SIM, "modalities": ["rna"]}}},
            "datasets.sim.modalities",
        ),
        ({"aligners": {"a": {"learners": ["nope"]}}}, "aligners.a.learners"),
    ],
)
def test_config_errors_name_the_option(change, option):
    with pytest.raises(gb.ConfigError) as info:
        gb.load_config(_config(**change))
    assert info.value.option == option
    assert str(info.value).startswith(option)
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "config", sorted((ROOT / "benchmarks" / "configs").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_committed_config_loads_and_plans(config):
    cfg = gb.load_config(config)
    units = gb.plan(cfg)
    assert units and len({u.key for u in units}) == len(units)
    assert all(u.learner in cfg.learners for u in units)


def test_plan_is_flat_and_ordered():
    cfg = gb.load_config(
        _config(
            seeds=[0, 1],
            protocols={"heldout_cells": {}, "heldout_labels": {"n_folds": 3, "folds": [0, 2]}},
        )
    )
    units = gb.plan(cfg)
    assert len(units) == 2 * (1 + 2) * 2  # seeds x (cells + two folds) x learners
    assert units[0] == gb.Unit(0, "sim", "", 0, "heldout_cells", 0, "pca")
    assert [u.fold for u in units if u.protocol == "heldout_labels"][:4] == [0, 0, 2, 2]
    assert len({u.key for u in units}) == len(units)


# --------------------------------------------------------------------------------------------
# resume, results file, flags
# --------------------------------------------------------------------------------------------
def test_resume_skips_done_units_and_reads_old_files(tmp_path):
    path = tmp_path / "results.csv"
    full = gb.run(_config(), progress=False, results_path=path)
    assert list(full.columns) == RESULT_COLUMNS
    # drop one unit (propensity_score) and the labels_only column: an interrupted old run
    old = pd.read_csv(path, keep_default_na=False, na_values=[""])
    old[old.learner == "pca"].drop(columns="labels_only").to_csv(path, index=False)
    calls = []
    real = gb.run_unit

    def counting(name, *args, **kwargs):
        calls.append(name)
        return real(name, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(sys.modules["groove_sc.benchmark._run"], "run_unit", counting)
    try:
        resumed = gb.run(_config(), progress=False, results_path=path, resume=True)
    finally:
        mp.undo()
    assert calls == ["propensity_score"]  # only the missing unit ran
    pd.testing.assert_series_equal(_values(resumed), _values(full), check_exact=False)
    on_disk = read_results(path)
    assert list(on_disk.columns) == RESULT_COLUMNS
    pd.testing.assert_series_equal(_values(on_disk), _values(full), check_exact=False)


def test_uniform_and_labels_only_couplings_are_flagged():
    res = gb.run(_config(), progress=False)
    ok = res[res.status == "ok"]
    assert ok[ok.aligner == "uniform"]["labels_only"].all()
    # a coupling of learned structure is not the labels-only one
    assert not ok[(ok.aligner == "gw") & (ok.learner == "pca")]["labels_only"].any()
    t = np.kron(np.eye(2), np.ones((3, 3))) / 18
    assert equals_labels_only(t, t * 5)
    assert not equals_labels_only(t + np.eye(6) * 1e-3, t)


def test_propensity_scores_with_coot_are_flagged_labels_only():
    """COOT on propensity scores returns the uniform coupling (CITE-seq): flagged."""
    try:
        gs.datasets.citeseq_pbmc()
    except FileNotFoundError as err:  # the shared data are absent on this machine
        pytest.skip(f"real data file absent (../shared/data or GROOVE_SC_DATA): {err}")
    datasets = {"citeseq": {"loader": "citeseq_pbmc", "label_key": "group"}}
    res = gb.run(
        _config(datasets=datasets, learners=["propensity_score"], aligners={"coot": {}, "gw": {}}),
        progress=False,
    )
    flags = res.groupby("aligner")["labels_only"].agg(set)
    assert flags.to_dict() == {"coot": {True}, "gw": {False}}


def test_wilcoxon_has_no_test_without_differences(tmp_path):
    rows = []
    for seed in range(5):
        for learner, shift in (("groove", 0.0), ("pca", 0.1)):
            for aligner in ("uniform", "gw"):
                value = 0.2 if aligner == "uniform" else 0.2 + shift + 0.01 * seed
                rows.append(
                    {
                        "dataset": "d",
                        "setting": "",
                        "protocol": "heldout_cells",
                        "fold": 0,
                        "learner": learner,
                        "aligner": aligner,
                        "seed": seed,
                        "metric": "foscttm",
                        "value": value,
                        "seconds": 1.0,
                        "status": "ok",
                        "error": "",
                        "labels_only": aligner == "uniform",
                    }
                )
    df = pd.DataFrame(rows)
    w = gb.wilcoxon_vs_best(df, "foscttm")
    assert w.set_index("aligner")["degenerate"].to_dict() == {"uniform": True, "gw": False}
    gb.write_report(df, tmp_path, metrics=["foscttm"], figures=False)
    written = pd.read_csv(tmp_path / "wilcoxon.csv")
    assert "uniform" not in set(written.aligner) and "gw" in set(written.aligner)


# --------------------------------------------------------------------------------------------
# the MuData given is not written to
# --------------------------------------------------------------------------------------------
def _keys(mdata):
    out = {"uns": sorted(mdata.uns.keys()), "obsm": sorted(mdata.obsm.keys())}
    out["obsp"] = sorted(mdata.obsp.keys())
    for m, a in mdata.mod.items():
        out[m] = (
            sorted(a.obsm.keys()),
            sorted(a.obsp.keys()),
            sorted(a.uns.keys()),
            sorted(a.layers.keys()),
            list(a.obs.columns),
        )
    return out


def test_a_unit_writes_nothing_into_the_split():
    cfg = gb.load_config(
        _config(
            learners=["groove", "pca"],
            aligners={
                "uniform": {},
                "sinkhorn": {},
                "gw": {},
                "decoder": {},
                "auto": {"method": "auto", "objective": "matching", "learners": ["groove"]},
            },
            datasets={
                "sim": {
                    "loader": "simulate",
                    "label_key": "perturbation",
                    "params": {"n_perturbations": 4, "cells_per_perturbation": 30},
                    "extra_eval_spaces": ["l2"],
                }
            },
        )
    )
    mdata = gb.load_dataset_config(cfg.datasets[0], "", 0)
    split = next(gb.iter_splits(mdata, "perturbation", "heldout_cells", seed=0))
    before = (_keys(split.test), _keys(split.train), _keys(mdata))
    x_before = split.test.mod["rna"].X.copy()
    for name in ("groove", "pca"):
        base = {"dataset": "sim", "setting": "", "protocol": "heldout_cells", "fold": 0}
        rows = gb.run_unit(name, split, cfg, cfg.datasets[0], {**base, "learner": name}, 0)
        assert {r["status"] for r in rows} <= {"ok", "not_applicable"}, rows[0]["error"]
    assert (_keys(split.test), _keys(split.train), _keys(mdata)) == before
    np.testing.assert_array_equal(split.test.mod["rna"].X, x_before)


# --------------------------------------------------------------------------------------------
# a user's own data
# --------------------------------------------------------------------------------------------
def _user_h5mu(path, seed=0, n_per_label=25):
    """An RNA (counts, many genes) + protein (counts) file of jointly measured cells."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["ctrl", "KO1", "KO2", "KO3"], n_per_label)
    n = labels.size
    state = rng.normal(size=(n, 3)) + (pd.factorize(labels)[0][:, None] == np.arange(3)) * 2.0
    rna = rng.poisson(np.exp(0.5 + state @ rng.normal(0, 0.5, size=(3, 300)))).astype(np.float32)
    prot = rng.poisson(np.exp(2.0 + state @ rng.normal(0, 0.5, size=(3, 12)))).astype(np.float32)
    names = [f"cell{i}" for i in range(n)]
    obs = pd.DataFrame({"perturbation": pd.Categorical(labels)}, index=names)
    mdata = md.MuData(
        {
            "rna": ad.AnnData(
                X=rna.copy(),
                obs=obs.copy(),
                var=pd.DataFrame(index=[f"g{i}" for i in range(300)]),
                layers={"counts": rna},
            ),
            "protein": ad.AnnData(
                X=prot, obs=obs.copy(), var=pd.DataFrame(index=[f"p{i}" for i in range(12)])
            ),
        }
    )
    mdata.write(path)
    return path


def _user_config(path, **dataset):
    return _config(
        datasets={
            "mine": {
                "loader": "h5mu",
                "params": {"path": str(path)},
                "label_key": "perturbation",
                "preprocess": {
                    "rna": {
                        "layer": "counts",
                        "normalize_total": 1e4,
                        "log1p": True,
                        "highly_variable_genes": 50,
                    },
                    "protein": {"clr": True},
                },
                **dataset,
            }
        }
    )


def test_user_h5mu_with_per_modality_preprocessing(tmp_path):
    path = _user_h5mu(tmp_path / "mine.h5mu")
    cfg = gb.load_config(_user_config(path))
    mdata = gb.load_dataset_config(cfg.datasets[0], "", 0)
    assert mdata.mod["rna"].n_vars == 50  # highly variable genes
    assert mdata.mod["rna"].X.max() < 15  # log-normalised
    raw = md.read_h5mu(path).mod["protein"].X
    np.testing.assert_allclose(mdata.mod["protein"].X, gb.clr(raw), rtol=1e-5)
    out = tmp_path / "out"
    (tmp_path / "c.yaml").write_text(_yaml(_user_config(path)))
    code = gb.cli_main(["--config", str(tmp_path / "c.yaml"), "--out", str(out), "--no-progress"])
    assert code == 0
    res = read_results(out / "results.csv")
    assert set(res.status) == {"ok"}
    assert set(res.learner) == {"pca", "propensity_score"}


def test_per_seed_files_and_callable_loaders(tmp_path):
    for seed in (0, 1):
        _user_h5mu(tmp_path / f"run_{seed}.h5mu", seed=seed)
    cfg = gb.load_config(_user_config(tmp_path / "run_{seed}.h5mu"))
    assert cfg.datasets[0].data_seed == "run"
    a = gb.load_dataset_config(cfg.datasets[0], "", 0)
    b = gb.load_dataset_config(cfg.datasets[0], "", 1)
    assert not np.allclose(a.mod["protein"].X, b.mod["protein"].X)

    def loader(seed, n_per_label):
        return md.read_h5mu(_user_h5mu(tmp_path / f"c{seed}.h5mu", seed, n_per_label))

    cfg = _user_config("unused")
    cfg["datasets"]["mine"].update(loader=loader, params={"n_per_label": 20})
    res = gb.run(cfg, progress=False)
    assert set(res.status) == {"ok"}
    mdata = gb.load_dataset_config(gb.load_config(cfg).datasets[0], "", 3)
    assert mdata.mod["protein"].n_obs == 80


def test_wrong_modality_names_mention_modalities(tmp_path):
    path = _user_h5mu(tmp_path / "mine.h5mu")
    cfg = gb.load_config(_user_config(path, modalities=["rna", "adt"]))
    with pytest.raises(gb.ConfigError, match="modalities:") as info:
        gb.load_dataset_config(cfg.datasets[0], "", 0)
    assert info.value.option == "datasets.mine.modalities"
    two = md.read_h5mu(path)
    atac = two.mod["protein"].copy()
    atac.var_names = [f"peak{i}" for i in range(atac.n_vars)]
    mods = {"rna": two.mod["rna"], "protein": two.mod["protein"], "atac": atac}
    md.MuData(mods).write(tmp_path / "three.h5mu")
    three = {"loader": "h5mu", "label_key": "perturbation"}
    three["params"] = {"path": str(tmp_path / "three.h5mu")}
    cfg = gb.load_config(_config(datasets={"t": three}))
    with pytest.raises(gb.ConfigError, match=r"`modalities: \[A, B\]`"):
        gb.load_dataset_config(cfg.datasets[0], "", 0)


def test_every_unit_failing_exits_non_zero_with_the_first_error(tmp_path, capsys):
    path = _user_h5mu(tmp_path / "mine.h5mu")
    config = tmp_path / "bad.yaml"
    config.write_text(_yaml(_user_config(path, modalities=["rna", "adt"])))
    code = gb.cli_main(["--config", str(config), "--out", str(tmp_path / "o"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "`datasets.mine.modalities`" in captured.err
    assert "'adt'" in captured.err and "modalities:" in captured.err
    last = captured.out.strip().splitlines()[-1]
    assert re.match(r"0 of \d+ result rows ok, \d+ failed, 0 not applicable; results in", last)
    # a learner whose every fit fails: the option is the learner's
    cfg = _user_config(path, modalities=None)
    cfg["learners"] = {"propensity_score": {"max_iter": -1}}
    res = gb.run(cfg, progress=False)
    assert gb.first_failure(res)[0] == "learners.propensity_score"


def test_closing_line_separates_failed_from_not_applicable():
    df = pd.DataFrame({"status": ["ok", "ok", "failed", "not_applicable", "not_applicable"]})
    line = gb._cli.closing_line(df, Path("r.csv"))
    assert line == "2 of 5 result rows ok, 1 failed, 2 not applicable; results in r.csv"


def _yaml(cfg):
    return yaml.safe_dump(cfg)


# --------------------------------------------------------------------------------------------
# adding a learner: the example of CONTRIBUTING.md
# --------------------------------------------------------------------------------------------
def test_contributing_toy_learner():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace = {"__name__": "toy_learner"}
    try:
        exec(compile(code, "CONTRIBUTING.md", "exec"), namespace)
        assert "random_projection" in LEARNERS
        res = gb.run(
            _config(
                learners=["random_projection", "pca"], aligners={"uniform": {}, "sinkhorn": {}}
            ),
            progress=False,
        )
    finally:
        LEARNERS.pop("random_projection", None)
    toy = res[res.learner == "random_projection"]
    assert set(toy.status) == {"ok"}
    assert set(toy.aligner) == {"uniform", "sinkhorn"}
    assert {"foscttm", "trace"} <= set(toy.metric)
    assert toy[(toy.metric == "foscttm")]["value"].between(0, 1).all()


def test_docs_report_from_committed_results(tmp_path):
    """benchmarks/benchmark_report.py is a thin wrapper of gb.docs_report."""
    source = ROOT / "benchmarks" / "results" / "real_eval_spaces" / "results.csv"
    (tmp_path / "res" / "real_eval_spaces").mkdir(parents=True)
    (tmp_path / "res" / "real_eval_spaces" / "results.csv").write_text(source.read_text())
    text = gb.docs_report(tmp_path / "res", tmp_path / "figs")
    assert "# evaluation spaces (SNARE-seq, CITE-seq)" in text
    assert "## headline foscttm_barycentric@l2" in text and "| groove |" in text
    assert {p.name for p in (tmp_path / "figs").glob("*.png")} == {
        "snareseq_foscttm_barycentric_l2.png",
        "citeseq_foscttm_barycentric_l2.png",
    }
