"""Imputation of one modality's features on the cells of another through a coupling."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from ..data._validate import looks_like_counts
from ._cells import read_layer
from ._coupling import get_coupling

__all__ = ["impute"]

#: Output entries computed per chunk of source rows.
_CHUNK_ENTRIES = 2**23


def barycentric_projection(
    coupling: sp.spmatrix | np.ndarray,
    values: Any,
    *,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Barycentric projection :math:`\mathrm{diag}(T 1)^{-1} T V` of target values on sources.

    Parameters
    ----------
    coupling
        Coupling :math:`T`, shape ``(n_source, n_target)`` (sparse or dense).
    values
        Values :math:`V` of the target cells, shape ``(n_target, p)``, dense or sparse. A sparse
        ``V`` is multiplied chunk by chunk of source rows and never densified as a whole.
    chunk_size
        Source rows per chunk (default: about ``2**23`` output entries per chunk).

    Returns
    -------
    ``(projection, row_mass)``: the ``(n_source, p)`` projection (rows with zero mass are NaN)
    and the row masses :math:`T 1`.
    """
    t = sp.csr_matrix(coupling) if not sp.issparse(coupling) else coupling.tocsr()
    n_s, n_t = t.shape
    if values.shape[0] != n_t:
        raise ValueError(
            f"The coupling has {n_t} target columns but `values` has {values.shape[0]} rows."
        )
    p = values.shape[1]
    mass = np.asarray(t.sum(1), dtype=np.float64).ravel()
    dtype = np.float64 if np.dtype(values.dtype) == np.float64 else np.float32
    out = np.empty((n_s, p), dtype=dtype)
    step = chunk_size or max(1, _CHUNK_ENTRIES // max(p, 1))
    if not sp.issparse(values):
        values = np.asarray(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, n_s, step):
            stop = min(start + step, n_s)
            block = t[start:stop] @ values
            block = block.toarray() if sp.issparse(block) else np.asarray(block)
            out[start:stop] = block / mass[start:stop, None]
    out[mass <= 0] = np.nan
    return out, mass


def impute(
    mdata: MuData,
    *,
    source: str,
    target: str,
    coupling_key: str = "groove_coupling",
    layer: str | None = None,
    key_added: str | None = None,
    copy: bool = False,
) -> MuData | None:
    r"""Impute the target modality's features on the source cells through a coupling.

    Barycentric projection :math:`\hat X^B = \mathrm{diag}(T 1)^{-1}\, T X^B`: each source
    cell receives the average of the target profiles it is coupled to, weighted by the
    coupling. Source cells with zero coupling mass (for instance cells of a label absent from
    the target modality) get NaN and a warning.

    Parameters
    ----------
    mdata
        MuData holding the coupling in ``mdata.obsp[coupling_key]`` (from
        :func:`groove_sc.tl.align`).
    source
        Modality whose cells receive the imputed profiles.
    target
        Modality whose features are imputed.
    coupling_key
        Key of the coupling in ``mdata.obsp``. A coupling computed from ``target`` to
        ``source`` is transposed automatically.
    layer
        Layer of the target modality to impute; ``None`` uses ``.X``. Sparse matrices are
        multiplied chunk by chunk, never densified as a whole.
    key_added
        Key in ``mdata.mod[source].obsm``; default ``f"{target}_imputed"``.
    copy
        Return a modified copy instead of writing into ``mdata``.

    Returns
    -------
    ``None`` or a copy of ``mdata`` (``copy=True``), with

    ``mdata.mod[source].obsm[key_added]``
        :class:`pandas.DataFrame`, index ``mdata.mod[source].obs_names``, columns
        ``mdata.mod[target].var_names``.

    Examples
    --------
    >>> gs.tl.align(mdata, source="rna", target="protein")
    >>> gs.tl.impute(mdata, source="rna", target="protein")
    >>> mdata["rna"].obsm["protein_imputed"]
    """
    t = get_coupling(mdata, coupling_key, source=source, target=target)
    tgt = mdata.mod[target]
    values = read_layer(tgt, layer, f"mdata.mod[{target!r}]")
    if values is None:
        raise ValueError(f"mdata.mod[{target!r}] has no `.X` to impute; pass `layer`.")
    if looks_like_counts(values):
        where = f"layers[{layer!r}]" if layer is not None else "X"
        warnings.warn(
            f"mdata.mod[{target!r}].{where} looks like raw counts: averaging counts across "
            "cells of different sequencing depth mixes depth into the imputed profiles. "
            "Impute a normalised layer instead (e.g. sc.pp.normalize_total + sc.pp.log1p into "
            "a layer, then `layer=`).",
            UserWarning,
            stacklevel=2,
        )
    proj, mass = barycentric_projection(t, values)
    n_empty = int((mass <= 0).sum())
    if n_empty:
        warnings.warn(
            f"{n_empty} of {len(mass)} {source!r} cells have no coupling mass (e.g. labels "
            f"absent from {target!r}); their imputed profiles are NaN.",
            UserWarning,
            stacklevel=2,
        )
    frame = pd.DataFrame(
        proj, index=mdata.mod[source].obs_names.copy(), columns=tgt.var_names.copy()
    )
    key = key_added or f"{target}_imputed"
    out = mdata.copy() if copy else mdata
    out.mod[source].obsm[key] = frame
    return out if copy else None
