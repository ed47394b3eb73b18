"""A 2-D embedding of the shared latent space of all modalities (UMAP or PCA)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from mudata import MuData

from ..data._validate import check_mudata
from ._cells import modality_list

__all__ = ["embedding", "embedding_key", "joint_embedding"]


def embedding_key(use_rep: str, method: str) -> str:
    """The ``.obsm`` key :func:`embedding` writes by default: ``f"{use_rep}_{method}"``."""
    return f"{use_rep}_{method}"


def joint_embedding(
    x: np.ndarray,
    *,
    method: Literal["umap", "pca"] = "umap",
    n_neighbors: int = 15,
    random_state: int = 0,
) -> tuple[np.ndarray, tuple[str, str]]:
    """2-D coordinates of the rows of ``x`` and the axis labels (array level).

    ``"umap"``: :func:`scanpy.pp.neighbors` (``n_neighbors``, at most ``n - 1``) and
    :func:`scanpy.tl.umap` on ``x``; ``"pca"``: the first two principal components, with the
    share of variance they explain in the labels.
    """
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(
            "The representation contains NaN or inf values; recompute it with groove_sc.tl.latent."
        )
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"An embedding needs at least 3 cells, got {n}.")
    if method == "pca":
        centred = x.astype(np.float64) - x.mean(0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        var = s**2 / max((s**2).sum(), 1e-300)
        coords = u[:, :2] * s[:2]
        if coords.shape[1] < 2:
            coords = np.column_stack([coords, np.zeros(n)])
        pct = [100 * v for v in var[:2]] + [0.0]
        return coords, (f"PC1 ({pct[0]:.0f}%)", f"PC2 ({pct[1]:.0f}%)")
    if method != "umap":
        raise ValueError(f"`method` must be 'umap' or 'pca', got {method!r}.")
    import anndata as ad
    import scanpy as sc

    tmp = ad.AnnData(np.zeros((n, 0), dtype=np.float32))
    tmp.obsm["rep"] = x
    sc.pp.neighbors(
        tmp, n_neighbors=max(2, min(n_neighbors, n - 1)), use_rep="rep", random_state=random_state
    )
    sc.tl.umap(tmp, random_state=random_state)
    return np.asarray(tmp.obsm["X_umap"], dtype=float), ("UMAP1", "UMAP2")


def embedding(
    mdata: MuData,
    *,
    use_rep: str = "X_groove",
    method: Literal["umap", "pca"] = "umap",
    modalities: Sequence[str] | None = None,
    n_neighbors: int = 15,
    random_state: int = 0,
    key_added: str | None = None,
    copy: bool = False,
) -> MuData | None:
    """Compute one 2-D embedding (UMAP or PCA) of the cells of all modalities together.

    The per-modality representations ``mdata.mod[m].obsm[use_rep]`` (written by
    :func:`groove_sc.tl.latent`) are stacked, embedded together and written back per modality,
    so that :func:`groove_sc.pl.latent` draws them without recomputing anything (scanpy's split:
    ``tl`` computes, ``pl`` draws). :func:`groove_sc.tl.latent` removes the stored embedding when
    it rewrites ``use_rep``, so it is never stale.

    Parameters
    ----------
    mdata
        MuData whose modalities hold ``use_rep`` in ``.obsm``.
    use_rep
        The shared representation (an ``.obsm`` key in every embedded modality).
    method
        ``"umap"`` (neighbours graph and UMAP, as in scanpy) or ``"pca"``.
    modalities
        Modalities to embed; default: every modality holding ``use_rep``.
    n_neighbors, random_state
        UMAP neighbours and seed (the same seed gives the same coordinates).
    key_added
        Key in ``mdata.mod[m].obsm``; default ``f"{use_rep}_{method}"`` (e.g.
        ``"X_groove_umap"``, which :func:`groove_sc.pl.latent` reads by default).
    copy
        Return a modified copy instead of writing into ``mdata``.

    Returns
    -------
    ``None`` or a copy of ``mdata`` (``copy=True``), with ``mdata.mod[m].obsm[key_added]``
    (``n_cells x 2``) and the axis labels in ``mdata.uns[key_added]["axes"]``.

    Examples
    --------
    >>> gs.tl.latent(model, test)
    >>> gs.tl.embedding(test)                        # test.mod[m].obsm["X_groove_umap"]
    >>> gs.pl.latent(test, color=["modality", "perturbation"])
    """
    mods = resolve_embedded(mdata, use_rep, modalities)
    check_mudata(mdata)
    x = np.vstack([np.asarray(mdata.mod[m].obsm[use_rep], dtype=np.float32) for m in mods])
    coords, axes = joint_embedding(
        x, method=method, n_neighbors=n_neighbors, random_state=random_state
    )
    key = key_added or embedding_key(use_rep, method)
    out = mdata.copy() if copy else mdata
    start = 0
    for m in mods:
        n = out.mod[m].n_obs
        out.mod[m].obsm[key] = coords[start : start + n].copy()
        start += n
    out.uns[key] = {"axes": list(axes), "use_rep": use_rep, "method": method, "modalities": mods}
    return out if copy else None


def resolve_embedded(mdata: MuData, use_rep: str, modalities: Sequence[str] | None) -> list[str]:
    """The modalities to embed or draw: those given (checked), or every one holding ``use_rep``."""
    if not hasattr(mdata, "mod"):
        raise TypeError(f"`mdata` must be a MuData, got {type(mdata).__name__}.")
    if modalities is None:
        mods = [m for m in mdata.mod if use_rep in mdata.mod[m].obsm]
        if not mods:
            raise KeyError(
                f"`use_rep`={use_rep!r} is in no modality's .obsm (modalities: "
                f"{list(mdata.mod)}); compute it first, e.g. groove_sc.tl.latent(model, mdata)."
            )
        return mods
    for m in (mods := modality_list(mdata, modalities)):
        if use_rep not in mdata.mod[m].obsm:
            raise KeyError(
                f"`use_rep`={use_rep!r} is not in mdata.mod[{m!r}].obsm (available: "
                f"{list(mdata.mod[m].obsm.keys())}); compute it first, e.g. "
                "groove_sc.tl.latent(model, mdata)."
            )
    return mods
