"""The one reader of a MuData's inputs.

Modalities, union rows, labels, pair identifiers, layers and representations, used by
:mod:`groove_sc.tl`, :mod:`groove_sc.pl` and :mod:`groove_sc.benchmark`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

__all__ = [
    "check_modality",
    "check_source_target",
    "format_labels",
    "modality_list",
    "obs_labels",
    "obs_strings",
    "partners",
    "read_layer",
    "read_rep",
    "union_positions",
]


def check_modality(mdata: Any, name: Any, arg: str) -> None:
    """Raise a ``KeyError`` naming ``arg`` if ``name`` is not a modality of ``mdata``."""
    if name not in mdata.mod:
        raise KeyError(
            f"`{arg}`={name!r} is not a modality of `mdata`; available: {list(mdata.mod)}."
        )


def check_source_target(mdata: Any, source: Any, target: Any) -> None:
    """``source`` and ``target`` are two different modalities of ``mdata`` (else raise)."""
    check_modality(mdata, source, "source")
    check_modality(mdata, target, "target")
    if source == target:
        raise ValueError("`source` and `target` must be different modalities.")


def modality_list(
    mdata: Any, modalities: str | Sequence[str] | None, arg: str = "modalities"
) -> list[str]:
    """The modalities named by ``modalities`` (one name, several, or ``None``: all), checked."""
    if modalities is None:
        return list(mdata.mod)
    mods = [modalities] if isinstance(modalities, str) else list(modalities)
    for m in mods:
        if m not in mdata.mod:
            raise KeyError(
                f"`{arg}`: {m!r} is not a modality of `mdata`; available: {list(mdata.mod)}."
            )
    return mods


def read_layer(adata: Any, layer: str | None, where: str) -> Any:
    """``adata.X`` or ``adata.layers[layer]`` (a DataFrame as an array); ``where`` names it."""
    if layer is None:
        x = adata.X
    elif layer not in adata.layers:
        raise KeyError(
            f"`layer`={layer!r} is not a layer of {where} (available: {list(adata.layers.keys())})."
        )
    else:
        x = adata.layers[layer]
    return x.to_numpy() if isinstance(x, pd.DataFrame) else x


def union_positions(mdata: MuData, mod: str) -> np.ndarray:
    """Row of ``mdata`` (union row space) of every cell of modality ``mod``, in its order."""
    n_mod = mdata.mod[mod].n_obs
    obsmap = np.asarray(mdata.obsmap[mod]).astype(np.int64)
    if obsmap.shape[0] != mdata.n_obs:
        raise ValueError(
            f"mdata.obsmap[{mod!r}] has {obsmap.shape[0]} entries but mdata has {mdata.n_obs} "
            "rows; call mdata.update() after changing the modalities."
        )
    present = np.flatnonzero(obsmap > 0)
    pos = np.full(n_mod, -1, dtype=np.int64)
    pos[obsmap[present] - 1] = present
    if present.size != n_mod or (pos < 0).any():
        raise ValueError(
            f"mdata.obsmap[{mod!r}] does not cover the {n_mod} cells of modality {mod!r} "
            "(duplicated obs_names or a stale MuData); call mdata.update() and make obs_names "
            "unique within each modality."
        )
    return pos


def obs_labels(adata: Any, key: str) -> np.ndarray:
    """The ``.obs[key]`` labels as strings (object array), ``None`` where missing."""
    col = adata.obs[key]
    missing = pd.isna(col).to_numpy()
    out = col.astype(str).to_numpy().astype(object)
    out[missing] = None
    return out


def obs_strings(adata: Any, key: str, arg: str, mod: str) -> np.ndarray:
    """``.obs[key]`` as strings, ``None`` where missing; ``arg`` names ``key`` in errors."""
    if key not in adata.obs:
        raise KeyError(f"`{arg}`={key!r} is not a column of mdata.mod[{mod!r}].obs.")
    col = adata.obs[key]
    missing = pd.isna(col).to_numpy()
    vals = col.astype(str).to_numpy().astype(object)
    vals[missing] = None
    return vals


def partners(ids_s: np.ndarray, ids_t: np.ndarray, truth_key: str, target: str) -> np.ndarray:
    """Index of each source cell's partner among the target cells (-1 when it has none)."""
    ok_t = np.array([v is not None for v in ids_t], dtype=bool)
    index = pd.Index(ids_t[ok_t])
    if not index.is_unique:
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"`truth_key`={truth_key!r} must be unique within mdata.mod[{target!r}] "
            f"(duplicated: {dup})."
        )
    pos_t = np.flatnonzero(ok_t)
    ok_s = np.array([v is not None for v in ids_s], dtype=bool)
    partner = np.full(len(ids_s), -1, dtype=np.int64)
    hit = index.get_indexer(ids_s[ok_s])
    partner[np.flatnonzero(ok_s)] = np.where(hit >= 0, pos_t[np.maximum(hit, 0)], -1)
    return partner


def format_labels(labels: Sequence[Any], limit: int = 20) -> str:
    """The first ``limit`` labels, quoted, and how many there are in total beyond them."""
    labels = [str(x) for x in labels]
    head = ", ".join(repr(x) for x in labels[:limit])
    return head + (f", ... ({len(labels)} in total)" if len(labels) > limit else "")


def _dense(x: Any, dtype: np.dtype) -> np.ndarray:
    if sp.issparse(x):
        x = x.toarray()
    return np.ascontiguousarray(np.asarray(x), dtype=dtype)


def read_rep(adata: Any, mod: str, use_rep: str, n_pcs: int | None) -> np.ndarray:
    """The representation ``use_rep`` of the cells of modality ``mod`` (float64, dense).

    An ``.obsm`` key, ``"X"`` (the features, densified) or ``"X_pca"`` (``.obsm["X_pca"]``
    when present, first ``n_pcs`` columns; else a PCA of ``.X`` with ``n_pcs`` components,
    default 50, not stored).
    """
    dtype = np.dtype(np.float64)
    if use_rep == "X":
        x = _dense(adata.X, dtype)
    elif use_rep == "X_pca" and "X_pca" not in adata.obsm:
        from scanpy.pp import pca

        n_comps = n_pcs or 50
        n_comps = max(1, min(n_comps, min(adata.n_obs, adata.n_vars) - 1))
        x = _dense(pca(adata.X, n_comps=n_comps), dtype)
    else:
        x = adata.obsm[use_rep]
        if isinstance(x, pd.DataFrame):
            x = x.to_numpy()
        x = _dense(x, dtype)
        if use_rep == "X_pca" and n_pcs is not None:
            x = x[:, :n_pcs]
    if x.ndim != 2 or x.shape[0] != adata.n_obs:
        raise ValueError(
            f"`use_rep`={use_rep!r} of modality {mod!r} must be a cells x dims matrix."
        )
    if not np.isfinite(x).all():
        raise ValueError(f"`use_rep`={use_rep!r} of modality {mod!r} contains NaN or inf.")
    return x
