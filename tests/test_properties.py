"""Property-based tests (hypothesis) of couplings and metrics (issue 6)."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mudata import MuData

import groove_sc as gs
from groove_sc.tl._align import read_coupling

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
METHODS = ["uniform", "sinkhorn", "emd"]


def _mod(labels: list[str], prefix: str, rng: np.random.Generator, names=None) -> ad.AnnData:
    a = ad.AnnData(np.zeros((len(labels), 1), dtype=np.float32))
    a.obs_names = names if names is not None else [f"{prefix}{i}" for i in range(len(labels))]
    a.obs["perturbation"] = pd.Categorical(labels)
    a.obs["pair_id"] = list(a.obs_names)
    a.obsm["X_groove"] = rng.normal(size=(len(labels), 3)).astype(np.float32)
    return a


@st.composite
def weakly_paired(draw):
    """Counts per label in each modality; a count of 0 means the label is absent there."""
    n_labels = draw(st.integers(1, 4))
    counts_a = draw(st.lists(st.integers(0, 6), min_size=n_labels, max_size=n_labels))
    counts_b = draw(st.lists(st.integers(0, 6), min_size=n_labels, max_size=n_labels))
    shared = [i for i in range(n_labels) if counts_a[i] and counts_b[i]]
    if not shared:  # at least one label in both modalities
        counts_a[0] = counts_a[0] or 1
        counts_b[0] = counts_b[0] or 1
    seed = draw(st.integers(0, 2**16))
    return counts_a, counts_b, seed


def _build(counts_a, counts_b, seed) -> MuData:
    rng = np.random.default_rng(seed)
    la = [f"l{i}" for i, c in enumerate(counts_a) for _ in range(c)]
    lb = [f"l{i}" for i, c in enumerate(counts_b) for _ in range(c)]
    return MuData({"a": _mod(la, "a", rng), "b": _mod(lb, "b", rng)})


@SETTINGS
@given(data=weakly_paired(), method=st.sampled_from(METHODS))
def test_labeled_coupling_marginals_and_label_blocks(data, method):
    counts_a, counts_b, seed = data
    mdata = _build(counts_a, counts_b, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs.tl.align(mdata, source="a", target="b", method=method, tol=1e-7, max_iter=5000)
    t = read_coupling(mdata, "groove_coupling", source="a", target="b").toarray()
    la = mdata.mod["a"].obs["perturbation"].astype(str).to_numpy()
    lb = mdata.mod["b"].obs["perturbation"].astype(str).to_numpy()
    assert t.shape == (len(la), len(lb))
    assert (t >= 0).all()
    # no mass across labels
    assert t[la[:, None] != lb[None, :]].sum() == 0
    shared = set(la) & set(lb)
    matched = np.isin(la, list(shared))
    n = int(matched.sum())
    # intended marginals: every matched source cell 1/n; label l's target cells share n_l / n
    row = np.where(matched, 1.0 / n, 0.0)
    col = np.zeros(len(lb))
    for lab in shared:
        cols = lb == lab
        col[cols] = (la == lab).sum() / n / cols.sum()
    atol = 1e-3 / max(len(la), len(lb)) if method == "sinkhorn" else 1e-6
    np.testing.assert_allclose(t.sum(axis=1), row, atol=atol)
    np.testing.assert_allclose(t.sum(axis=0), col, atol=atol)
    np.testing.assert_allclose(t.sum(), 1.0, atol=1e-4)


@SETTINGS
@given(
    labels=st.lists(st.integers(0, 2), min_size=2, max_size=15),
    method=st.sampled_from(METHODS),
    labeled=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_trace_of_paired_coupling_in_unit_interval(labels, method, labeled, seed):
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(len(labels))]
    lab = [f"l{x}" for x in labels]
    mdata = MuData({"a": _mod(lab, "", rng, names), "b": _mod(lab, "", rng, names)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs.tl.align(mdata, source="a", target="b", method=method, labeled=labeled)
        res = gs.tl.matching_metrics(mdata, source="a", target="b")
    assert 0.0 <= res["trace"] <= 1.0 + 1e-6
    assert 0.0 <= res["foscttm"] <= 1.0
    assert 0.0 <= res["label_transfer_accuracy"] <= 1.0
    if method == "uniform" and labeled:
        np.testing.assert_allclose(res["trace"], res["trace_uniform"], rtol=1e-5)


finite = st.floats(-10, 10, allow_nan=False, width=32)


@st.composite
def paired_embeddings(draw):
    n = draw(st.integers(2, 12))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x + draw(st.floats(0, 2)) * rng.normal(size=(n, d))
    return x, y


@SETTINGS
@given(xy=paired_embeddings(), scale=st.floats(1e-2, 1e2))
def test_foscttm_in_unit_interval_and_scale_invariant(xy, scale):
    x, y = xy
    f = gs.tl.foscttm(x, y)
    assert 0.0 <= f <= 1.0
    np.testing.assert_allclose(gs.tl.foscttm(scale * x, scale * y), f, atol=1e-9)
    # a perfect embedding scores 0
    assert gs.tl.foscttm(x, x.copy()) <= f + 1e-12


@SETTINGS
@given(
    xy=paired_embeddings(),
    n_labels=st.integers(1, 3),
    k=st.integers(1, 3),
    seed=st.integers(0, 100),
)
def test_label_transfer_in_unit_interval(xy, n_labels, k, seed):
    x, y = xy
    rng = np.random.default_rng(seed)
    lx = rng.integers(0, n_labels, len(x)).astype(str)
    ly = rng.integers(0, n_labels, len(y)).astype(str)
    acc = gs.tl.label_transfer_accuracy(x, lx, y, ly, n_neighbors=min(k, len(x)))
    assert 0.0 <= acc <= 1.0
    if n_labels == 1:
        assert acc == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_unlabeled_coupling_has_uniform_marginals(method):
    mdata = _build([3, 4], [5, 2], 0)
    gs.tl.align(
        mdata, source="a", target="b", method=method, labeled=False, tol=1e-7, max_iter=5000
    )
    t = read_coupling(mdata, "groove_coupling", source="a", target="b").toarray()
    np.testing.assert_allclose(t.sum(axis=1), 1 / 7, atol=1e-5)
    np.testing.assert_allclose(t.sum(axis=0), 1 / 7, atol=1e-5)
