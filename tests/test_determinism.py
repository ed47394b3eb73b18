"""The same seed gives identical latents, couplings, splits, simulations and benchmark rows."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import groove_sc as gs
from groove_sc.model import GROOVE
from tests._shared import QUIET, tiny_benchmark

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def split():
    sim = gs.datasets.simulate(n_perturbations=3, cells_per_perturbation=24, n_features=(10, 8))
    return gs.data.split_weakly_paired(sim, "perturbation", test_size=0.5, seed=0)


def _latents(train, test, seed):
    train = train.copy()
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    model = GROOVE(train, n_latent=4, n_hidden=16, n_layers=1, seed=seed)
    model.train(max_epochs=2, batch_size=32, cells_per_label=4, seed=seed, **QUIET)
    return model.get_latent_representation(test), model.history["loss_train"]


def test_groove_same_seed_same_latents(split):
    train, test = split
    z1, h1 = _latents(train, test, 0)
    z2, h2 = _latents(train, test, 0)
    for m in z1:
        np.testing.assert_array_equal(z1[m], z2[m])
    pd.testing.assert_frame_equal(h1, h2)
    z3, _ = _latents(train, test, 1)
    assert not np.array_equal(z1["rna"], z3["rna"])


@pytest.fixture(scope="module")
def with_rep(split):
    test = split[1].copy()
    for m in test.mod:
        test.mod[m].obsm["X_groove"] = np.asarray(test.mod[m].X[:, :4], dtype=np.float32)
    return test


@pytest.mark.parametrize("method", ["sinkhorn", "emd", "gw"])
def test_align_same_input_same_coupling(with_rep, method):
    couplings = []
    for _ in range(2):
        out = gs.tl.align(with_rep, source="rna", target="protein", method=method, copy=True)
        couplings.append(out.obsp["groove_coupling"].toarray())
    np.testing.assert_array_equal(couplings[0], couplings[1])
    assert couplings[0].sum() > 0.99


def test_simulate_and_split_same_seed_identical():
    kw = {"n_perturbations": 3, "cells_per_perturbation": 10, "n_features": (6, 5), "seed": 3}
    a, b = gs.datasets.simulate(**kw), gs.datasets.simulate(**kw)
    for m in a.mod:
        np.testing.assert_array_equal(a.mod[m].X, b.mod[m].X)
        pd.testing.assert_frame_equal(a.mod[m].obs, b.mod[m].obs)
    s1 = gs.data.split_weakly_paired(a, test_size=0.3, seed=5)
    s2 = gs.data.split_weakly_paired(b, test_size=0.3, seed=5)
    for x, y in zip(s1, s2):
        for m in x.mod:
            assert list(x.mod[m].obs_names) == list(y.mod[m].obs_names)
            np.testing.assert_array_equal(x.mod[m].X, y.mod[m].X)
    s3 = gs.data.split_weakly_paired(a, test_size=0.3, seed=6)
    assert list(s3[1].mod["rna"].obs_names) != list(s1[1].mod["rna"].obs_names)


TINY_BENCHMARK = tiny_benchmark(
    aligners={
        "uniform": {"method": "uniform"},
        "sinkhorn": {"method": "sinkhorn"},
        "emd": {"method": "emd"},
    }
)


def test_benchmark_same_config_same_rows():
    from groove_sc import benchmark

    r1 = benchmark.run(copy.deepcopy(TINY_BENCHMARK), progress=False)
    r2 = benchmark.run(copy.deepcopy(TINY_BENCHMARK), progress=False)
    assert (r1["status"] == "ok").sum() > 0
    pd.testing.assert_frame_equal(r1.drop(columns="seconds"), r2.drop(columns="seconds"))
