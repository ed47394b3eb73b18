"""Truth-free verdict and choice of the coupling: within_label_signal, select_coupling, auto."""

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest

import groove_sc as gs


def _screen(shared: bool, *, n_labels=6, n_cells=40, seed=0) -> md.MuData:
    """Two modalities of different cells and two replicate representations of both.

    With ``shared``, each cell has a within-label state that both replicates see (with their
    own noise) and that the two modalities' cells of a label share as a distribution placed
    the same way in the shared space: a within-label matching is reproducible. Without it,
    each replicate places the cells of a label at random around the label centre: the
    replicates' within-label arrangements are unrelated, as for a representation that only
    knows the labels.
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"L{i}" for i in range(n_labels)], n_cells)
    codes = np.repeat(np.arange(n_labels), n_cells)
    centres = rng.normal(scale=4.0, size=(n_labels, 3))
    mods = {}
    for name in ("rna", "protein"):
        state = rng.normal(size=(len(labels), 3))
        adata = ad.AnnData(
            X=np.hstack([centres[codes] + state, rng.normal(size=(len(labels), 2))]).astype(
                np.float32
            ),
            obs=pd.DataFrame(
                {"perturbation": pd.Categorical(labels)},
                index=[f"{name}:{i}" for i in range(len(labels))],
            ),
        )
        adata.var_names = [f"{name}_{j}" for j in range(adata.n_vars)]
        for key in ("X_groove", "X_groove_rep0", "X_groove_rep1"):
            within = state if shared else rng.normal(size=state.shape)
            adata.obsm[key] = centres[codes] + within + 0.3 * rng.normal(size=state.shape)
        mods[name] = adata
    mdata = md.MuData(mods)
    mdata.uns["groove_replicates"] = {
        "X_groove": {"keys": ["X_groove_rep0", "X_groove_rep1"], "modalities": list(mods)}
    }
    return mdata


def test_signal_when_replicates_reproduce_the_within_label_arrangement():
    mdata = _screen(shared=True)
    sig = gs.tl.within_label_signal(mdata, source="rna", target="protein")
    assert sig.within_label_signal
    assert sig.agreement_ratio > 1.1 and sig.p_value < 0.01 and sig.reliability > 0.7
    assert mdata.uns["groove_signal"]["within_label_signal"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_signal_when_replicates_arrange_cells_at_random(seed):
    mdata = _screen(shared=False, seed=seed)
    sig = gs.tl.within_label_signal(mdata, source="rna", target="protein", key_added=None)
    assert not sig.within_label_signal
    assert "groove_signal" not in mdata.uns


def test_select_coupling_scores_every_candidate_and_prefers_sharp_for_matching():
    mdata = _screen(shared=True)
    sel = gs.tl.select_coupling(mdata, source="rna", target="protein", objective="matching")
    assert list(sel.scores["candidate"]) == [
        gs.tl._selection.candidate_name(c) for c in gs.tl.DEFAULT_CANDIDATES
    ]
    assert sel.scores["chosen"].sum() == 1
    uniform = sel.scores.set_index("candidate").loc["uniform"]
    assert uniform["agreement_ratio"] == pytest.approx(1.0)
    assert uniform["imputation_gain"] == pytest.approx(0.0, abs=1e-12)
    assert sel.choice["method"] != "uniform"
    assert (
        sel.scores.loc[sel.scores.chosen, "agreement_ratio"].item()
        == sel.scores["agreement_ratio"].max()
    )


def test_select_coupling_returns_uniform_without_signal():
    mdata = _screen(shared=False)
    for objective in ("matching", "imputation"):
        sel = gs.tl.select_coupling(mdata, source="rna", target="protein", objective=objective)
        assert sel.choice == {"method": "uniform"}
        assert "no within-label signal" in sel.reason


def test_align_auto_stores_the_selection_and_the_coupling():
    mdata = _screen(shared=True)
    gs.tl.align(mdata, source="rna", target="protein", method="auto", objective="imputation")
    rec = mdata.uns["groove_coupling"]
    sel = rec["selection"]
    assert sel["objective"] == "imputation" and sel["within_label_signal"]
    assert rec["params"]["method"] == sel["choice"]["method"]
    assert len(sel["candidates"]["candidate"]) == len(gs.tl.DEFAULT_CANDIDATES)
    coupling = gs.tl._align.read_coupling(mdata, "groove_coupling", source="rna", target="protein")
    assert coupling.sum() == pytest.approx(1.0, rel=1e-4)


def test_align_auto_without_signal_warns_and_is_uniform(tmp_path):
    mdata = _screen(shared=False)
    with pytest.warns(UserWarning, match="no within-label signal"):
        gs.tl.align(mdata, source="rna", target="protein", method="auto", objective="matching")
    rec = mdata.uns["groove_coupling"]
    assert rec["params"]["method"] == "uniform"
    assert not rec["selection"]["within_label_signal"]
    mdata.write(tmp_path / "auto.h5mu")  # the selection record is h5mu-writable
    back = md.read_h5mu(tmp_path / "auto.h5mu")
    assert not bool(back.uns["groove_coupling"]["selection"]["within_label_signal"])


def test_auto_errors_name_the_argument():
    mdata = _screen(shared=True)
    kw = {"source": "rna", "target": "protein", "method": "auto"}
    with pytest.raises(ValueError, match="objective"):
        gs.tl.align(mdata, **kw)
    with pytest.raises(ValueError, match="objective"):
        gs.tl.align(mdata, **kw, objective="both")
    with pytest.raises(ValueError, match="epsilon"):
        gs.tl.align(mdata, **kw, objective="matching", epsilon=0.1)
    with pytest.raises(ValueError, match="labeled"):
        gs.tl.align(mdata, **kw, objective="matching", labeled=False)
    with pytest.raises(ValueError, match="only used with method='auto'"):
        gs.tl.align(mdata, source="rna", target="protein", objective="matching")
    del mdata.uns["groove_replicates"]
    with pytest.raises(KeyError, match="train_replicates"):
        gs.tl.align(mdata, **kw, objective="matching")
    with pytest.raises(KeyError, match="nope"):
        gs.tl.within_label_signal(
            mdata, source="rna", target="protein", replicates=["nope", "X_groove_rep1"]
        )
    with pytest.raises(KeyError, match="group_key"):
        gs.tl.within_label_signal(
            mdata,
            source="rna",
            target="protein",
            group_key="missing",
            replicates=["X_groove_rep0", "X_groove_rep1"],
        )


def test_selection_leaves_the_input_unchanged_but_for_its_keys():
    mdata = _screen(shared=True)
    before = {m: dict(mdata.mod[m].obsm) for m in mdata.mod}
    gs.tl.select_coupling(mdata, source="rna", target="protein", objective="matching")
    for m in mdata.mod:
        assert set(mdata.mod[m].obsm) == set(before[m])
        for k, v in before[m].items():
            np.testing.assert_array_equal(mdata.mod[m].obsm[k], v)
    assert "groove_coupling" not in mdata.uns
