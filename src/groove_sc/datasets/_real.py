"""Loaders for the real data files in ``../shared/data/`` (see its README).

Nothing is downloaded: the files are read from a path the user gives, from the directory in the
environment variable ``GROOVE_SC_DATA``, or from ``../shared/data/`` next to the project.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np

from ..data._mudata import _make_mudata

__all__ = ["citeseq_pbmc", "papalexi_thp1", "papalexi_two_view", "snareseq"]

ENV_VAR = "GROOVE_SC_DATA"
SNARESEQ_FILE = "snareseq_cellmix.h5mu"
CITESEQ_FILE = "citeseq_pbmc_1000.h5mu"
PAPALEXI_FILE = "papalexi2021_thp1_rna_subset.h5ad"


def _default_dirs() -> list[Path]:
    """Candidate data directories, in the order they are tried (without ``path``)."""
    dirs = []
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path.cwd() / ".." / "shared" / "data")
    # <repo>/src/groove_sc/datasets/_real.py -> parents[3] is the repository root
    dirs.append(Path(__file__).resolve().parents[3] / ".." / "shared" / "data")
    return dirs


def _find_file(filename: str, path: str | os.PathLike[str] | None) -> Path:
    """Resolve a data file; raise FileNotFoundError naming every path tried."""
    if path is not None:
        p = Path(path).expanduser()
        candidates = [p / filename] if p.is_dir() else [p]
    else:
        candidates = [d / filename for d in _default_dirs()]
    for c in candidates:
        if c.is_file():
            return c
    tried = "\n".join(f"  - {c}" for c in candidates)
    raise FileNotFoundError(
        f"Could not find {filename!r}. Tried:\n{tried}\n"
        f"Pass `path=` (the file or its directory) or set the environment variable {ENV_VAR} "
        "to the directory holding the file (the project's shared/data folder)."
    )


def _read_h5mu(path: Path) -> md.MuData:
    """Read a bundled ``.h5mu`` without mudata's notices about its own options.

    The future default ``pull_on_update=False`` is used locally (no FutureWarning, global
    options untouched), and the notice that genes and their proteins share ``var_names`` (by
    design in CITE-seq) is not shown.
    """
    with md.set_options(pull_on_update=False), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*var_names are intersecting.*")
        warnings.filterwarnings("ignore", message=".*var_names are not unique.*")
        return md.read_h5mu(path)


def snareseq(path: str | os.PathLike[str] | None = None) -> md.MuData:
    """Load the SNARE-seq cell-line mixture (Chen, Lake & Zhang 2019; SCOT preprocessing).

    1047 cells measured jointly: ``rna`` (10 dims) and ``atac`` (19 dims), both preprocessed
    (not counts). Row ``i`` of each modality is the same cell; ``obs["pair_id"]`` holds that
    truth. Label: ``obs["cell_type"]`` (4 cell lines).

    Parameters
    ----------
    path
        The ``snareseq_cellmix.h5mu`` file or the directory holding it. ``None`` looks in
        ``$GROOVE_SC_DATA``, then ``../shared/data/`` relative to the working directory, then
        relative to the repository root.

    Returns
    -------
    The jointly measured MuData (split it with :func:`groove_sc.data.split_weakly_paired`,
    ``label_key="cell_type"``).

    Raises
    ------
    FileNotFoundError
        If the file is not found; the message lists the paths tried.
    """
    return _read_h5mu(_find_file(SNARESEQ_FILE, path))


def citeseq_pbmc(path: str | os.PathLike[str] | None = None) -> md.MuData:
    """Load the CITE-seq PBMC subset (Stoeckius et al. 2017), 1000 cells.

    Modalities ``rna`` (25 genes) and ``adt`` (the 25 surface proteins they code for; normalised),
    measured jointly: row ``i`` of each modality is the same cell (``obs["pair_id"]``).
    ``var["matched_adt"]`` / ``var["matched_gene"]`` pair the features. Label: ``obs["group"]``,
    6 groups *derived* by KMeans on the joint profile (see ``mdata.uns["group_note"]``).

    Parameters
    ----------
    path
        The ``citeseq_pbmc_1000.h5mu`` file or the directory holding it; ``None``: looked for
        as :func:`snareseq` does.

    Returns
    -------
    The jointly measured MuData (``label_key="group"``).

    Raises
    ------
    FileNotFoundError
        If the file is not found; the message lists the paths tried.
    """
    return _read_h5mu(_find_file(CITESEQ_FILE, path))


def citeseq_three_view(path: str | os.PathLike[str] | None = None, *, seed: int = 0) -> md.MuData:
    """The CITE-seq PBMC subset as a three-view problem: two RNA views and the proteins.

    The 25 genes of :func:`citeseq_pbmc` are split at random into two disjoint sets,
    ``rna_a`` (13 genes) and ``rna_b`` (12 genes), which play two modalities measured in the
    same cells as ``adt`` (the 25 proteins). Two of the three views are halves of **one**
    assay: this is a three-view problem made from a two-assay experiment, not a three-assay
    one (see ``mdata.uns["note"]``). Label: ``obs["group"]`` (6 KMeans groups of the joint
    profile, as in :func:`citeseq_pbmc`).

    Parameters
    ----------
    path
        The ``citeseq_pbmc_1000.h5mu`` file or the directory holding it; see
        :func:`citeseq_pbmc`.
    seed
        Seed of :func:`numpy.random.default_rng` for the random gene split.

    Returns
    -------
    MuData with modalities ``rna_a``, ``adt`` and ``rna_b`` (row ``i`` of each is the same
    cell, ``obs["pair_id"]``).
    """
    mdata = citeseq_pbmc(path)
    rna, adt = mdata.mod["rna"], mdata.mod["adt"]
    order = np.random.default_rng(seed).permutation(rna.n_vars)
    half = (rna.n_vars + 1) // 2
    mods = {
        "rna_a": rna[:, np.sort(order[:half])].copy(),
        "adt": adt.copy(),
        "rna_b": rna[:, np.sort(order[half:])].copy(),
    }
    for view in mods.values():
        if "pair_id" not in view.obs:
            view.obs["pair_id"] = np.arange(view.n_obs)
    note = (
        "Three-view problem from a TWO-assay experiment (CITE-seq PBMC, Stoeckius et al. 2017): "
        f"rna_a and rna_b are disjoint random halves of the same {rna.n_vars} RNA genes (gene "
        f"split seed {seed}), adt the {adt.n_vars} proteins. Not a three-assay test."
    )
    return _make_mudata(mods, uns={**dict(mdata.uns), "note": note})


def papalexi_thp1(
    path: str | os.PathLike[str] | None = None, *, filter_assignments: bool = True
) -> ad.AnnData:
    """Load the Papalexi et al. 2021 THP-1 ECCITE-seq CRISPR screen (RNA only, 299 genes).

    Raw counts (sparse) of 20,729 cells, downsampled to 299 genes by the sceptre authors, with
    real gRNA counts. Label: ``obs["target_top"]``, the target of the cell's most abundant gRNA
    (26 knockouts and ``"non-targeting"``). This file has one modality only.

    Parameters
    ----------
    path
        The ``papalexi2021_thp1_rna_subset.h5ad`` file or the directory holding it. ``None``
        looks in ``$GROOVE_SC_DATA``, then ``../shared/data/`` relative to the working
        directory, then relative to the repository root.
    filter_assignments
        Keep only cells with a confident gRNA assignment: ``grna_top_umi >= 5`` and
        ``5 * grna_second_umi < grna_top_umi``. Unused label categories are removed.

    Returns
    -------
    AnnData of cells x 299 genes (counts in ``X``).

    Raises
    ------
    FileNotFoundError
        If the file is not found; the message lists the paths tried.
    """
    adata = ad.read_h5ad(_find_file(PAPALEXI_FILE, path))
    if filter_assignments:
        top = adata.obs["grna_top_umi"].to_numpy()
        second = adata.obs["grna_second_umi"].to_numpy()
        keep = (top >= 5) & (5 * second < top)
        n_before = adata.n_obs
        adata = adata[keep].copy()
        if hasattr(adata.obs["target_top"], "cat"):
            adata.obs["target_top"] = adata.obs["target_top"].cat.remove_unused_categories()
        adata.uns["filter"] = (
            f"grna_top_umi >= 5 and 5 * grna_second_umi < grna_top_umi: kept {adata.n_obs} of "
            f"{n_before} cells"
        )
    return adata


def papalexi_two_view(
    path: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    filter_assignments: bool = True,
) -> md.MuData:
    """Turn the Papalexi THP-1 screen into a two-view problem from one assay.

    The 299 genes are split at random into two disjoint halves, ``genes_a`` and ``genes_b``,
    which play the role of two modalities measured in the same cells (row ``i`` of both is the
    same cell, ``obs["pair_id"]``). Split it into a weakly paired problem with
    :func:`groove_sc.data.split_weakly_paired`. This is **not** a cross-assay test: both views
    are RNA counts of the same library (see ``mdata.uns["note"]``).

    Parameters
    ----------
    path
        The ``papalexi2021_thp1_rna_subset.h5ad`` file or the directory holding it; see
        :func:`papalexi_thp1`.
    seed
        Seed of :func:`numpy.random.default_rng` for the random gene split.
    filter_assignments
        Apply the gRNA assignment filter of :func:`papalexi_thp1`.

    Returns
    -------
    MuData with modalities ``genes_a`` and ``genes_b`` (counts in ``X``), ``obs["perturbation"]``
    (copied from ``target_top``) and ``obs["pair_id"]`` in each.

    Raises
    ------
    FileNotFoundError
        If the file is not found; the message lists the paths tried.
    """
    adata = papalexi_thp1(path, filter_assignments=filter_assignments)
    rng = np.random.default_rng(seed)
    order = rng.permutation(adata.n_vars)
    half = adata.n_vars // 2
    views = {"genes_a": np.sort(order[:half]), "genes_b": np.sort(order[half:])}
    mods: dict[str, ad.AnnData] = {}
    for name, idx in views.items():
        view = adata[:, idx].copy()
        view.obs["perturbation"] = view.obs["target_top"].copy()
        view.obs["pair_id"] = np.arange(view.n_obs)
        mods[name] = view
    note = (
        "Two-view problem from ONE assay: genes_a and genes_b are disjoint random halves of the "
        f"same {adata.n_vars} RNA genes (Papalexi et al. 2021 THP-1 screen, gene split seed "
        f"{seed}). Not a cross-assay test."
    )
    return _make_mudata(mods, uns={"note": note})
