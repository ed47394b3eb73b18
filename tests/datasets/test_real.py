from __future__ import annotations

from pathlib import Path

import mudata as md
import numpy as np
import pytest
from scipy import sparse

from groove_sc.data import split_weakly_paired
from groove_sc.datasets import citeseq_pbmc, papalexi_thp1, papalexi_two_view, snareseq

md.set_options(pull_on_update=False)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / ".." / "shared" / "data"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data files absent: {DATA_DIR} (../shared/data) not found")
    return DATA_DIR


@pytest.fixture(scope="module")
def papalexi(data_dir):
    return papalexi_thp1(data_dir)


def test_missing_file_error_names_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)snareseq_cellmix\.h5mu.*GROOVE_SC_DATA"):
        snareseq(tmp_path)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        papalexi_thp1(tmp_path / "nope.h5ad")


def test_missing_file_error_lists_default_locations(tmp_path, monkeypatch):
    monkeypatch.setenv("GROOVE_SC_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("groove_sc.datasets._real.SNARESEQ_FILE", "no_such_file.h5mu")
    with pytest.raises(FileNotFoundError) as err:
        snareseq()
    msg = str(err.value)
    assert str(tmp_path / "no_such_file.h5mu") in msg  # the env var directory
    assert "shared" in msg
    assert msg.count("  - ") == 3  # env var, cwd-relative, repository-relative


@pytest.mark.filterwarnings("ignore:var_names are not unique")
def test_default_locations(data_dir, tmp_path, monkeypatch):
    # environment variable
    monkeypatch.setenv("GROOVE_SC_DATA", str(data_dir))
    monkeypatch.chdir(tmp_path)
    assert snareseq().n_obs == 1047
    # repository-relative fallback (cwd has no ../shared/data)
    monkeypatch.delenv("GROOVE_SC_DATA")
    assert snareseq().n_obs == 1047
    # cwd-relative
    monkeypatch.chdir(REPO_ROOT)
    assert citeseq_pbmc().n_obs == 1000


def test_snareseq(data_dir):
    mdata = snareseq(data_dir)
    assert list(mdata.mod) == ["rna", "atac"]
    assert mdata.mod["rna"].shape == (1047, 10)
    assert mdata.mod["atac"].shape == (1047, 19)
    counts = mdata.mod["rna"].obs["cell_type"].value_counts()
    assert sorted(counts.tolist()) == [143, 201, 324, 379]
    np.testing.assert_array_equal(mdata.mod["rna"].obs["pair_id"], mdata.mod["atac"].obs["pair_id"])
    train, test = split_weakly_paired(mdata, "cell_type", seed=0)
    assert set(test.mod["atac"].obs["cell_type"]) == set(counts.index)
    assert train.mod["rna"].n_obs + train.mod["atac"].n_obs + test.mod["rna"].n_obs == 1047
    assert set(train.mod["rna"].obs["pair_id"]).isdisjoint(train.mod["atac"].obs["pair_id"])


@pytest.mark.filterwarnings("ignore:var_names are not unique")  # rna and adt share names
def test_citeseq(data_dir):
    mdata = citeseq_pbmc(data_dir / "citeseq_pbmc_1000.h5mu")
    assert list(mdata.mod) == ["rna", "adt"]
    assert mdata.mod["rna"].shape == (1000, 25)
    assert mdata.mod["adt"].shape == (1000, 25)
    assert mdata.mod["rna"].obs["group"].nunique() == 6
    assert "matched_adt" in mdata.mod["rna"].var.columns


def test_papalexi_filter(data_dir, papalexi):
    raw = papalexi_thp1(data_dir, filter_assignments=False)
    assert raw.shape == (20729, 299)
    adata = papalexi
    assert adata.n_vars == 299
    assert 0 < adata.n_obs < raw.n_obs
    top = adata.obs["grna_top_umi"].to_numpy()
    second = adata.obs["grna_second_umi"].to_numpy()
    assert (top >= 5).all()
    assert (5 * second < top).all()
    raw_top = raw.obs["grna_top_umi"].to_numpy()
    raw_second = raw.obs["grna_second_umi"].to_numpy()
    assert adata.n_obs == int(((raw_top >= 5) & (5 * raw_second < raw_top)).sum())
    labels = adata.obs["target_top"]
    assert "non-targeting" in set(labels)
    assert labels.nunique() == 26  # 25 knockouts + non-targeting in this subset
    x = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    np.testing.assert_array_equal(x[:200], np.round(x[:200]))  # counts


def test_papalexi_stat1_knockout_lowers_stat1(papalexi):
    adata = papalexi
    x = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    logn = np.log1p(x / x.sum(1, keepdims=True) * 1e4)
    stat1 = logn[:, list(adata.var_names).index("STAT1")]
    target = adata.obs["target_top"].to_numpy()
    control = stat1[target == "non-targeting"].mean()
    for ko in ("STAT1", "IFNGR1", "JAK2"):
        assert stat1[target == ko].mean() < control - 0.5, ko


def test_papalexi_two_view(data_dir, papalexi):
    mdata = papalexi_two_view(data_dir, seed=0)
    a, b = mdata.mod["genes_a"], mdata.mod["genes_b"]
    assert a.n_obs == b.n_obs == papalexi.n_obs
    assert a.n_vars + b.n_vars == 299
    assert abs(a.n_vars - b.n_vars) <= 1
    assert set(a.var_names).isdisjoint(b.var_names)
    assert set(a.var_names) | set(b.var_names) == set(papalexi.var_names)
    np.testing.assert_array_equal(a.obs["pair_id"], np.arange(a.n_obs))
    np.testing.assert_array_equal(a.obs["pair_id"], b.obs["pair_id"])
    assert list(a.obs_names) == list(b.obs_names)
    np.testing.assert_array_equal(a.obs["perturbation"], papalexi.obs["target_top"])
    np.testing.assert_array_equal(b.obs["perturbation"], papalexi.obs["target_top"])
    assert "not a cross-assay" in mdata.uns["note"].lower()
    # the counts are the original ones, column for column
    gene = a.var_names[0]
    col = papalexi[:, gene].X
    np.testing.assert_array_equal(
        a[:, gene].X.toarray() if sparse.issparse(a.X) else a[:, gene].X,
        col.toarray() if sparse.issparse(col) else col,
    )
    same = papalexi_two_view(data_dir, seed=0)
    other = papalexi_two_view(data_dir, seed=1)
    assert list(same.mod["genes_a"].var_names) == list(a.var_names)
    assert list(other.mod["genes_a"].var_names) != list(a.var_names)
    train, test = split_weakly_paired(mdata, test_size=0.1, seed=0)
    assert set(test.mod["genes_a"].obs["perturbation"]) == set(a.obs["perturbation"])
    assert set(train.mod["genes_a"].obs["pair_id"]).isdisjoint(train.mod["genes_b"].obs["pair_id"])
