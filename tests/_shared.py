"""Settings and helpers shared by the test modules (the fixtures live in ``conftest.py``)."""

from __future__ import annotations

import copy
import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from mudata import MuData
from scipy import sparse

import groove_sc as gs
from groove_sc.model import GROOVE

#: Trainer keyword arguments that keep test output readable.
QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "logger": None}
#: A small GROOVE: fast to fit, enough to test behaviour.
MODEL = {"n_latent": 4, "n_hidden": 16, "n_layers": 1}
#: Training keyword arguments of the small model (epochs set by each test).
TRAIN = {"batch_size": 32, "cells_per_label": 4, **QUIET}
#: One epoch of the small model: what the bad-input cases train.
TRAIN_ONE_EPOCH = {"max_epochs": 1, **TRAIN}


# ------------------------------------------------------------------- the bad-input matrix
def bad_input(test):
    """Mark ``test`` as a case of the bad-input matrix (``pytest -m bad_input`` runs them all).

    Each case either works (and its result is checked) or raises an error whose message names
    the argument and what was expected; a failing call never changes the user's MuData. The
    cases feed odd data on purpose, so the user and future warnings they raise are ignored.
    """
    for mark in (
        pytest.mark.bad_input,
        pytest.mark.filterwarnings("ignore::UserWarning"),
        pytest.mark.filterwarnings("ignore::FutureWarning"),
    ):
        test = mark(test)
    return test


def _adata(n_per_label: dict[str, int], n_vars: int, prefix: str, seed: int, dtype=np.float32):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[lab] * n for lab, n in n_per_label.items()])
    x = rng.poisson(3.0, size=(len(labels), n_vars)).astype(dtype)
    a = ad.AnnData(x)
    a.obs_names = [f"{prefix}{i}" for i in range(len(labels))]
    a.var_names = [f"{prefix}_f{j}" for j in range(n_vars)]
    a.obs["perturbation"] = pd.Categorical(labels)
    return a


def make_toy_mdata(
    labels_a=None, labels_b=None, dtype=np.float32, sparse_x=False, same_names=False
) -> MuData:
    """Poisson counts of 'rna' (8 features) and 'protein' (6), 20 cells of p0, p1, p2 each."""
    labels_a = labels_a or {"p0": 20, "p1": 20, "p2": 20}
    labels_b = labels_b or {"p0": 20, "p1": 20, "p2": 20}
    a = _adata(labels_a, 8, "a", 0, dtype)
    b = _adata(labels_b, 6, "b", 1, dtype)
    if same_names:
        b.obs_names = [f"a{i}" for i in range(b.n_obs)]
    if sparse_x:
        a.X = sparse.csr_matrix(a.X)
        b.X = sparse.csr_matrix(b.X)
    return MuData({"rna": a, "protein": b})


def snapshot(mdata: MuData) -> dict:
    """What a failing call must leave unchanged."""

    def arr(x):
        return x.toarray() if sparse.issparse(x) else (None if x is None else np.asarray(x))

    def one(a):
        return {
            "obs": a.obs.copy(deep=True),
            "var": a.var.copy(deep=True),
            "obs_names": list(a.obs_names),
            "X": None if a.X is None else arr(a.X).copy(),
            "layers": {k: arr(v).copy() for k, v in a.layers.items()},
            "obsm": {k: copy.deepcopy(np.asarray(v)) for k, v in a.obsm.items()},
            "obsp": {k: arr(v).copy() for k, v in a.obsp.items()},
            "uns": sorted(a.uns.keys()),
        }

    snap = {m: one(a) for m, a in mdata.mod.items()}
    snap["_obs"] = mdata.obs.copy(deep=True)
    snap["_obsm"] = {k: copy.deepcopy(np.asarray(v)) for k, v in mdata.obsm.items()}
    snap["_obsp"] = {k: arr(v).copy() for k, v in mdata.obsp.items()}
    snap["_uns"] = sorted(mdata.uns.keys())
    return snap


def assert_same(before: dict, after: dict) -> None:
    """Two :func:`snapshot` results are equal."""
    assert before.keys() == after.keys()
    for key in before:
        b, a = before[key], after[key]
        if isinstance(b, pd.DataFrame):
            pd.testing.assert_frame_equal(b, a)
        elif isinstance(b, dict):
            assert b.keys() == a.keys(), key
            for k in b:
                if isinstance(b[k], pd.DataFrame):
                    pd.testing.assert_frame_equal(b[k], a[k])
                elif isinstance(b[k], dict):
                    assert b[k].keys() == a[k].keys(), (key, k)
                    for kk in b[k]:
                        np.testing.assert_array_equal(b[k][kk], a[k][kk])
                elif b[k] is None:
                    assert a[k] is None
                elif isinstance(b[k], list):
                    assert b[k] == a[k], (key, k)
                else:
                    np.testing.assert_array_equal(b[k], a[k])
        else:
            assert b == a, key


def fails(mdata: MuData, call, exc, match: str) -> None:
    """``call()`` raises ``exc`` matching ``match`` and leaves ``mdata`` unchanged."""
    before = snapshot(mdata)
    with pytest.raises(exc, match=match) as info:
        call()
    assert type(info.value) is not IndexError
    if os.environ.get("GROOVE_SHOW_ERRORS"):
        print(f"\n[{type(info.value).__name__}] {info.value}")
    assert_same(before, snapshot(mdata))


def fit_toy(mdata: MuData, **setup):
    """The small GROOVE set up on ``mdata`` (``setup``: to ``setup_mudata``), one epoch."""
    GROOVE.setup_mudata(mdata, perturbation_key="perturbation", **setup)
    model = GROOVE(mdata, **MODEL)
    model.train(**TRAIN_ONE_EPOCH)
    return model


def latents_and_coupling(test: MuData) -> MuData:
    """A copy of ``test`` with an ``X_groove`` in each modality and a uniform coupling."""
    test = test.copy()
    for m in test.mod:
        test.mod[m].obsm["X_groove"] = np.asarray(test.mod[m].X[:, :4], dtype=np.float32)
    gs.tl.align(test, source="rna", target="protein", method="uniform")
    return test


def tiny_benchmark(**overrides) -> dict:
    """A benchmark configuration that runs in seconds (3 labels x 20 cells, 2 epochs)."""
    cfg = {
        "name": "tiny",
        "seeds": [0],
        "n_threads": 1,
        "protocols": {"heldout_cells": {"test_size": 0.3}},
        "datasets": {
            "sim": {
                "loader": "simulate",
                "label_key": "perturbation",
                "params": {
                    "n_perturbations": 3,
                    "cells_per_perturbation": 20,
                    "n_features": [10, 8],
                },
            }
        },
        "learner_defaults": {"max_epochs": 2, "n_latent": 4, "n_hidden": 16, "batch_size": 32},
        "learners": ["groove", "pca"],
        "aligners": {"uniform": {"method": "uniform"}, "sinkhorn": {"method": "sinkhorn"}},
    }
    cfg.update(overrides)
    return cfg


def unit_benchmark(**overrides) -> dict:
    """A small benchmark configuration with a truth column (4 labels x 30 cells, 2 epochs)."""
    cfg = {
        "name": "unit",
        "seeds": [0],
        "protocols": {"heldout_cells": {"test_size": 0.3}},
        "datasets": {
            "sim": {
                "loader": "simulate",
                "label_key": "perturbation",
                "eval_label_key": "perturbation_true",
                "params": {"n_perturbations": 4, "cells_per_perturbation": 30, "n_features": 8},
            }
        },
        "learner_defaults": {"max_epochs": 2, "n_latent": 4, "n_hidden": 8},
        "learners": ["pca", "propensity_score", "groove"],
        "aligners": {"uniform": {}, "sinkhorn": {}, "gw": {}},
    }
    cfg.update(overrides)
    return cfg


def make_mdata(
    sizes_s=(12, 20, 8),
    sizes_t=(15, 10, 9),
    d=4,
    seed=0,
    extra_source_label=None,
    extra_target_label=None,
    feature_dims=(7, 6),
) -> MuData:
    """Weakly paired MuData: distinct obs_names, unequal label sizes, shuffled target."""
    rng = np.random.default_rng(seed)
    labels = [f"p{i}" for i in range(len(sizes_s))]
    centres = rng.normal(size=(len(labels), d)) * 3

    def modality(sizes, prefix, extra, n_feat):
        lab = np.repeat(labels, sizes).astype(object)
        if extra is not None:
            lab = np.concatenate([lab, np.array([extra] * 5, dtype=object)])
        codes = np.array([labels.index(x) if x in labels else 0 for x in lab])
        z = centres[codes] + rng.normal(size=(len(lab), d))
        adata = ad.AnnData(rng.normal(size=(len(lab), n_feat)).astype(np.float32))
        adata.obs_names = [f"{prefix}{i}" for i in range(len(lab))]
        adata.var_names = [f"{prefix}_f{i}" for i in range(n_feat)]
        adata.obs["perturbation"] = lab
        adata.obsm["X_groove"] = z
        perm = rng.permutation(adata.n_obs)
        return adata[perm].copy()

    a = modality(sizes_s, "s", extra_source_label, feature_dims[0])
    b = modality(sizes_t, "t", extra_target_label, feature_dims[1])
    return MuData({"rna": a, "prot": b})
