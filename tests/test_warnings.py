"""Warnings that help: dropped GroupCLIP labels, unmatched mass, non-converged aligners."""

from __future__ import annotations

import logging
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from mudata import MuData

import groove_sc as gs
from groove_sc.model import GROOVE


def _mdata(labels_a, labels_b, seed=0):
    rng = np.random.default_rng(seed)
    mods = {}
    for name, labels in (("rna", labels_a), ("protein", labels_b)):
        a = ad.AnnData(rng.normal(size=(len(labels), 5)).astype(np.float32))
        a.obs_names = [f"{name}{i}" for i in range(len(labels))]
        a.obs["perturbation"] = pd.Categorical(labels)
        a.obsm["X_groove"] = rng.normal(size=(len(labels), 3)).astype(np.float32)
        mods[name] = a
    return MuData(mods)


def test_setup_warns_about_labels_without_groupclip_positives():
    m = _mdata(["p0"] * 5 + ["ko_a"] * 3, ["p0"] * 5 + ["ko_b"] * 2)
    with pytest.warns(UserWarning) as record:
        GROOVE.setup_mudata(m)
    messages = " ".join(str(w.message) for w in record)
    assert "1 label(s) occur only in modality 'rna'" in messages and "ko_a" in messages
    assert "only in modality 'protein'" in messages and "ko_b" in messages
    assert "no GroupCLIP positives" in messages


def test_align_warns_about_unmatched_mass_with_labels_and_counts():
    m = _mdata(["p0"] * 4 + ["ko_a"] * 3, ["p0"] * 5 + ["ko_b"] * 2)
    with pytest.warns(UserWarning, match=r"3 source and 2 target cells get zero mass") as rec:
        gs.tl.align(m, source="rna", target="protein", method="emd")
    msg = str(rec[0].message)
    assert "ko_a" in msg and "ko_b" in msg
    assert list(m.uns["groove_coupling"]["unmatched_source_labels"]) == ["ko_a"]
    assert np.isclose(m.obsp["groove_coupling"].sum(), 1.0)


def test_align_warns_when_not_converged_with_label_and_setting():
    m = _mdata(["p0"] * 6 + ["p1"] * 6, ["p0"] * 5 + ["p1"] * 7)
    with pytest.warns(UserWarning, match=r"did not reach tol=1e-12 within max_iter=2") as rec:
        gs.tl.align(
            m,
            source="rna",
            target="protein",
            method="sinkhorn",
            epsilon=1e-3,
            max_iter=2,
            tol=1e-12,
        )
    msg = " ".join(str(w.message) for w in rec)
    assert "labels:" in msg and "p0" in msg
    assert "increase `max_iter` or `epsilon`" in msg
    diag = m.uns["groove_coupling"]["diagnostics"]
    assert not np.asarray(diag["converged"]).all()


def test_impute_warns_about_cells_without_coupling_mass():
    m = _mdata(["p0"] * 4 + ["ko_a"] * 3, ["p0"] * 5)
    with pytest.warns(UserWarning):
        gs.tl.align(m, source="rna", target="protein", method="uniform")
    with pytest.warns(UserWarning, match=r"3 of 7 'rna' cells have no coupling mass"):
        gs.tl.impute(m, source="rna", target="protein")
    out = m.mod["rna"].obsm["protein_imputed"].to_numpy()
    assert np.isnan(out[4:]).all() and np.isfinite(out[:4]).all()


def test_training_prints_no_lightning_notices(capfd, caplog):
    mdata = gs.datasets.simulate(n_perturbations=3, cells_per_perturbation=20, seed=0)
    train, _ = gs.data.split_weakly_paired(mdata, "perturbation", seed=0)
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    model = GROOVE(train, n_latent=4, n_hidden=16)
    with caplog.at_level(logging.INFO), warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        model.train(max_epochs=2, enable_progress_bar=False)
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    for notice in ("GPU available", "litlogger", "TPU available"):
        assert notice not in text, notice
    noisy = [str(w.message) for w in rec if "logging interval" in str(w.message)]
    assert not noisy, noisy
    # and the user's logging configuration is restored afterwards
    assert logging.getLogger("lightning.pytorch.utilities.rank_zero").level == logging.NOTSET


def test_readme_usage_example_runs_without_warnings(tmp_path, monkeypatch):
    """The README's usage block, as a user pastes it (trained for 3 epochs here), is silent."""
    import re
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"## Usage\s+```python\n(.*?)```", readme, re.S).group(1)
    assert "model.train()" in block
    code = block.replace("model.train()", "model.train(max_epochs=3, enable_progress_bar=False)")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        exec(compile(code, "README.md", "exec"), {})
    shown = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in rec]
    assert not shown, "\n".join(shown)


def test_impute_warns_when_it_averages_raw_counts():
    m = _mdata(["p0"] * 6, ["p0"] * 6)
    rng = np.random.default_rng(1)
    prot = m.mod["protein"]
    prot.X = rng.poisson(40, size=prot.shape).astype(np.float32)
    prot.layers["log1p"] = np.log1p(prot.X / prot.X.sum(1, keepdims=True) * 1e4)
    gs.tl.align(m, source="rna", target="protein", method="uniform")
    with pytest.warns(UserWarning, match=r"mdata.mod\['protein'\].X looks like raw counts"):
        gs.tl.impute(m, source="rna", target="protein")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gs.tl.impute(m, source="rna", target="protein", layer="log1p")
