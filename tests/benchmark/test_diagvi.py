"""The ``diagvi`` benchmark learner: feature links, not_applicable without them, availability."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import groove_sc as gs
import groove_sc.benchmark as gb
from groove_sc.benchmark import (
    DIAGVI_INSTALL,
    DiagviUnavailableError,
    LearnerNotApplicable,
    diagvi_unavailable_reason,
    feature_links,
    make_learner,
)

DIAGVI_MISSING = diagvi_unavailable_reason()


def _pair() -> dict[str, ad.AnnData]:
    """Genes and proteins as in the CITE-seq file (one gene codes two proteins)."""
    rna = ad.AnnData(np.zeros((3, 5), dtype=np.float32))
    rna.var_names = ["CD4", "PTPRC", "CD3E", "GAPDH", "CD19"]
    rna.var["matched_adt"] = ["CD4", "CD45RA", "CD3", None, "CD19"]
    rna.var["chromosome"] = ["12", "1", "11", "12", "16"]  # not a link column
    adt = ad.AnnData(np.zeros((4, 5), dtype=np.float32))
    adt.var_names = ["CD4", "CD45RA", "CD45RO", "CD3", "CD19"]
    adt.var["matched_gene"] = ["CD4", "PTPRC", "PTPRC", "CD3E", "CD19"]
    return {"rna": rna, "adt": adt}


def test_feature_links_from_matched_feature_columns():
    links = feature_links(_pair())
    assert list(links.columns) == ["rna", "adt"]
    pairs = set(links.itertuples(index=False, name=None))
    assert pairs == {
        ("CD4", "CD4"),
        ("PTPRC", "CD45RA"),
        ("PTPRC", "CD45RO"),  # from the protein side only
        ("CD3E", "CD3"),
        ("CD19", "CD19"),
    }
    assert len(links) == len(pairs)  # both directions pooled without duplicates
    # one side's column is enough
    only_rna = feature_links(_pair(), {"rna": "matched_adt"})
    assert ("PTPRC", "CD45RO") not in set(only_rna.itertuples(index=False, name=None))
    assert len(only_rna) == 4
    # identical names only when asked for
    same = feature_links(_pair(), "var_names")
    assert set(same["rna"]) == {"CD4", "CD19"} and (same["rna"] == same["adt"]).all()
    table = pd.DataFrame({"adt": ["CD3", "nope"], "rna": ["CD3E", "CD3E"]})
    assert feature_links(_pair(), table).values.tolist() == [["CD3E", "CD3"]]


def test_feature_links_none_and_errors():
    a = ad.AnnData(np.zeros((2, 3)))
    a.var_names = ["dim0", "dim1", "dim2"]
    b = ad.AnnData(np.zeros((2, 3)))
    b.var_names = ["dim0", "dim1", "dim2"]  # same names, no correspondence
    assert feature_links({"a": a, "b": b}).empty
    with pytest.raises(ValueError, match="two modalities"):
        feature_links({"a": a})
    with pytest.raises(ValueError, match="no var column"):
        feature_links({"a": a, "b": b}, {"a": "matched"})
    with pytest.raises(ValueError, match="links must be"):
        feature_links({"a": a, "b": b}, "names")


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """A small simulated screen whose first features are declared linked, as an .h5mu."""
    mdata = gs.datasets.simulate(
        n_perturbations=4, cells_per_perturbation=30, n_features=(8, 6), seed=0
    )
    rna = mdata.mod["rna"]
    rna.var["matched_protein"] = [f"protein_{i}" if i < 4 else None for i in range(rna.n_vars)]
    path = tmp_path_factory.mktemp("diagvi") / "linked.h5mu"
    mdata.write(path)
    return path


def _config(**dataset):
    return {
        "seeds": [0],
        "datasets": {"d": {"label_key": "perturbation", **dataset}},
        "learners": {"diagvi": {}},
        "learner_defaults": {"max_epochs": 2, "n_latent": 4, "n_hidden": 16, "batch_size": 32},
        "aligners": {"uniform": {}, "sinkhorn": {}},
    }


def test_diagvi_is_not_applicable_without_feature_links():
    """The simulator's modalities have no feature links: not_applicable rows with the reason."""
    cfg = _config(loader="simulate", params={"n_perturbations": 4, "cells_per_perturbation": 20})
    res = gb.run(cfg, progress=False)
    assert set(res["status"]) == {"not_applicable"}
    assert set(res["aligner"]) == {"uniform", "sinkhorn"}
    assert res["value"].isna().all()
    assert res["error"].str.contains("feature links").all()
    mdata = gs.datasets.simulate(n_perturbations=3, cells_per_perturbation=10, seed=0)
    train, _ = gs.data.split_weakly_paired(mdata, "perturbation", test_size=0.25, seed=0)
    with pytest.raises(LearnerNotApplicable, match="guidance graph"):
        make_learner("diagvi").fit(train, "perturbation")


def test_diagvi_fits_or_names_the_install_command(linked):
    """With the extra: DIAGVI fits and embeds. Without it (CI): failed rows name the install."""
    if DIAGVI_MISSING is not None:
        _assert_unavailable_names_the_install_command(linked)
        return
    res = gb.run(_config(loader="h5mu", params={"path": str(linked)}), progress=False)
    assert set(res["status"]) == {"ok"}, res["error"].unique()
    for metric in ("trace_ratio", "foscttm_barycentric", "foscttm"):
        assert np.isfinite(res.loc[res["metric"] == metric, "value"]).all()
    mdata = gb.load_dataset("h5mu", label_key="perturbation", params={"path": str(linked)})
    train, test = gs.data.split_weakly_paired(mdata, "perturbation", test_size=0.25, seed=0)
    learner = make_learner("diagvi", {"max_epochs": 2, "n_latent": 4, "n_hidden": 16})
    learner.fit(train, "perturbation", seed=0)
    assert len(learner.links) == 4
    graph = learner.model.guidance_graph
    n_features = sum(train.mod[m].n_vars for m in train.mod)
    assert graph.edge_index.shape[1] == 2 * 4 + n_features  # both directions + self-loops
    emb = learner.transform(test)
    assert {m: z.shape for m, z in emb.items()} == {m: (test.mod[m].n_obs, 4) for m in test.mod}
    assert all(np.isfinite(z).all() for z in emb.values())
    # the embedding is the posterior mean: deterministic
    again = learner.transform(test)
    assert all(np.array_equal(emb[m], again[m]) for m in emb)
    for m, names in learner.training_obs_names.items():
        assert set(names) < set(train.mod[m].obs_names)  # validation cells left out


def _assert_unavailable_names_the_install_command(linked) -> None:
    assert DIAGVI_INSTALL == 'pip install "groove-sc[diagvi]"'
    assert DIAGVI_INSTALL in DIAGVI_MISSING and "1.4.3" in DIAGVI_MISSING
    res = gb.run(_config(loader="h5mu", params={"path": str(linked)}), progress=False)
    assert set(res["status"]) == {"failed"}
    assert res["error"].str.contains(DIAGVI_INSTALL, regex=False).all()
    assert res["error"].str.contains("scvi-tools >= 1.4.3").all()
    mdata = gb.load_dataset("h5mu", label_key="perturbation", params={"path": str(linked)})
    train, _ = gs.data.split_weakly_paired(mdata, "perturbation", test_size=0.25, seed=0)
    with pytest.raises(DiagviUnavailableError, match="groove-sc\\[diagvi\\]"):
        make_learner("diagvi").fit(train, "perturbation")
