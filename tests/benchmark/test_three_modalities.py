"""The benchmark with a third modality for training only (``extra_modalities``).

A dataset holds three modalities; ``modalities: [A, B]`` is the scored pair and
``extra_modalities: [C]`` trains only. A learner with ``extra_modalities: true`` fits on A, B
and C, the others on A and B; the A and B cells, the test cells and every score are the same.
"""

from pathlib import Path

import numpy as np
import pytest
import yaml

import groove_sc.benchmark as gb
from groove_sc.benchmark._data import iter_splits, load_dataset_config
from groove_sc.benchmark._unit import training_data

ROOT = Path(__file__).resolve().parents[2]
SIM = {
    "n_perturbations": 4,
    "cells_per_perturbation": 30,
    "n_features": 8,
    "n_modalities": 3,
}


def _config(**overrides):
    cfg = {
        "name": "three",
        "seeds": [0],
        "n_threads": 1,
        "protocols": {"heldout_cells": {"test_size": 0.3}},
        "datasets": {
            "sim3": {
                "loader": "simulate",
                "label_key": "perturbation",
                "eval_label_key": "perturbation_true",
                "params": SIM,
                "modalities": ["rna", "protein"],
                "extra_modalities": ["atac"],
            }
        },
        "learner_defaults": {
            "max_epochs": 2,
            "n_latent": 4,
            "n_hidden": 8,
            "batch_size": 32,
            "cells_per_label": 4,
            "validation_size": 0.0,
            "early_stopping": False,
        },
        "learners": {
            "groove": {},
            "groove_three": {"kind": "groove", "extra_modalities": True},
        },
        "aligners": {"uniform": {}, "sinkhorn": {}},
    }
    cfg.update(overrides)
    return cfg


def _dataset(**options):
    entry = {**_config()["datasets"]["sim3"], **options}
    return _config(datasets={"sim3": entry})


def test_run_gives_rows_for_both_learners_on_the_scored_pair():
    res = gb.run(_config(), progress=False)
    assert set(res["learner"]) == {"groove", "groove_three"}
    assert (res["status"] == "ok").all(), res.loc[res["status"] != "ok", "error"].unique()
    for metric in ("trace_ratio", "foscttm_barycentric", "foscttm"):
        sub = res[res["metric"] == metric]
        assert set(sub["learner"]) == {"groove", "groove_three"}
        assert sub["value"].notna().all()
    # uniform depends on the labels of the same test cells only: equal for both learners
    uni = res[(res["aligner"] == "uniform") & (res["metric"] == "trace_ratio")]
    assert np.allclose(uni["value"], 1.0)
    # the paired test of the two learners (versus="best_other" in wilcoxon.csv)
    t = gb.wilcoxon_vs_best(res, "foscttm", others=["groove_three"])
    assert set(t["best_other"]) == {"groove_three"}


def test_split_keeps_the_pair_and_adds_training_cells_of_the_extra_modality():
    cfg = gb.load_config(_config())
    ds = cfg.datasets[0]
    mdata = load_dataset_config(ds, "", 0)
    assert list(mdata.mod) == ["rna", "protein", "atac"]
    (split,) = iter_splits(
        mdata, "perturbation", "heldout_cells", seed=0, test_size=0.3, extra_modalities=["atac"]
    )
    pair = gb.load_config(_dataset(extra_modalities=None) | {"learners": {"groove": {}}})
    (plain,) = iter_splits(
        load_dataset_config(pair.datasets[0], "", 0),
        "perturbation",
        "heldout_cells",
        seed=0,
        test_size=0.3,
    )
    assert plain.train_extra is None
    # the scored pair: the same cells as without the extra modality
    for m in ("rna", "protein"):
        assert list(split.train.mod[m].obs_names) == list(plain.train.mod[m].obs_names)
        assert list(split.test.mod[m].obs_names) == list(plain.test.mod[m].obs_names)
    assert list(split.test.mod) == ["rna", "protein"]
    extra = split.train_extra
    assert list(extra.mod) == ["rna", "protein", "atac"]
    atac = extra.mod["atac"]
    test_ids = set(split.test.mod["rna"].obs["pair_id"])
    assert not test_ids & set(atac.obs["pair_id"])  # no test cell trains in atac
    # about as many cells as each modality of the pair
    assert abs(atac.n_obs - split.train.mod["rna"].n_obs) <= 4
    assert all(name.startswith("atac:") for name in atac.obs_names)
    # learners pick their training data
    two = gb.make_learner("groove", {}, {})
    three = gb.make_learner("groove_three", {"kind": "groove", "extra_modalities": True}, {})
    assert training_data(two, split, ds) is split.train
    assert training_data(three, split, ds) is extra


def test_heldout_labels_keep_the_held_out_labels_out_of_the_extra_modality():
    cfg = gb.load_config(_config(protocols={"heldout_labels": {"n_folds": 2, "folds": [0]}}))
    mdata = load_dataset_config(cfg.datasets[0], "", 1)
    (split,) = iter_splits(
        mdata,
        "perturbation",
        "heldout_labels",
        seed=1,
        n_folds=2,
        folds=[0],
        extra_modalities=["atac"],
    )
    held = set(split.info["test_labels"])
    atac = split.train_extra.mod["atac"]
    assert held and not held & set(atac.obs["perturbation"].astype(str))


def test_extra_learner_on_a_pair_dataset_is_not_applicable():
    cfg = _config()
    cfg["datasets"]["pair"] = {
        "loader": "simulate",
        "label_key": "perturbation",
        "params": {"n_perturbations": 4, "cells_per_perturbation": 30, "n_features": 8},
    }
    cfg["datasets"].pop("sim3")
    cfg["datasets"]["sim3"] = _config()["datasets"]["sim3"]
    cfg["learners"] = {"groove_three": {"kind": "groove", "extra_modalities": True}}
    cfg["aligners"] = {"uniform": {}}
    res = gb.run(cfg, progress=False)
    pair = res[res["dataset"] == "pair"]
    assert (pair["status"] == "not_applicable").all()
    assert pair["error"].str.contains("extra_modalities").all()
    assert (res.loc[res["dataset"] == "sim3", "status"] == "ok").all()


@pytest.mark.parametrize(
    ("dataset", "learners", "option", "words"),
    [
        ({"modalities": None}, None, "datasets.sim3.extra_modalities", "needs `modalities"),
        ({"extra_modalities": "atac"}, None, "datasets.sim3.extra_modalities", "a list"),
        ({"extra_modalities": ["rna"]}, None, "datasets.sim3.extra_modalities", "already in"),
        (
            {"extra_modalities": ["atac", "atac"]},
            None,
            "datasets.sim3.extra_modalities",
            "twice",
        ),
        (
            {},
            {"pca": {"extra_modalities": True}},
            "learners.pca.extra_modalities",
            "two modalities only",
        ),
        (
            {},
            {"groove_three": {"kind": "groove", "extra_modalities": ["atac"]}},
            "learners.groove_three.extra_modalities",
            "true or false",
        ),
        (
            {"extra_modalities": None},
            {"groove_three": {"kind": "groove", "extra_modalities": True}},
            "learners.groove_three.extra_modalities",
            "no dataset has",
        ),
    ],
)
def test_bad_options_name_the_option(dataset, learners, option, words):
    cfg = _dataset(**dataset)
    if learners is not None:
        cfg["learners"] = learners
    with pytest.raises(gb.ConfigError) as info:
        gb.load_config(cfg)
    assert info.value.option == option
    assert words in str(info.value)


def test_extra_modality_missing_from_the_data_names_the_option():
    res = gb.run(_dataset(extra_modalities=["mod4"]), progress=False)
    assert (res["status"] == "failed").all()
    assert res["error"].str.contains("datasets.sim3.extra_modalities").all()
    assert gb.first_failure(res)[0] == "datasets.sim3.extra_modalities"


def test_the_committed_config_loads_and_plans():
    cfg = gb.load_config(ROOT / "benchmarks" / "configs" / "three_modalities.yaml")
    assert cfg.n_threads == 1
    assert len(cfg.seeds) == 5
    learners = {
        name: gb.make_learner(name, p, cfg.learner_defaults) for name, p in cfg.learners.items()
    }
    extra = [n for n, x in learners.items() if x.uses_extra_modalities]
    assert extra and len(extra) < len(learners)
    assert all(d.extra_modalities for d in cfg.datasets)
    assert {"uniform", "sinkhorn", "emd"} <= set(cfg.aligners)
    units = gb.plan(cfg)
    assert len(units) == len(cfg.learners) * len(cfg.seeds) * sum(
        len(d.settings) * len(d.protocols) for d in cfg.datasets
    )
    raw = yaml.safe_load((ROOT / "benchmarks" / "configs" / "three_modalities.yaml").read_text())
    assert raw["name"] == "three_modalities"
