"""How a coupling is stored in a MuData, and read back.

The coupling ``T`` of :func:`groove_sc.tl.align` lives in ``mdata.obsp[key]``: a
:class:`scipy.sparse.csr_matrix` of shape ``(mdata.n_obs, mdata.n_obs)``, non-zero only in the
rows of source cells and the columns of target cells (the modalities' cells placed into the
union row space through ``mdata.obsmap``). ``mdata.uns[key]`` holds its parameters, one
diagnostics entry per label, the unmatched labels, the mass dropped by ``top_k`` / ``prune``
and the extras of the solve (total cost, feature coupling). :func:`get_coupling` reads it back
as a ``source cells x target cells`` matrix in either orientation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from mudata import MuData

from ..ot import BlockResult, LabelBlock
from ._cells import check_modality, obs_strings, partners, union_positions

__all__ = [
    "CSRBuilder",
    "Compression",
    "compress_block",
    "diagnostics_table",
    "get_coupling",
    "perfect_coupling",
    "write_coupling",
]


def compress_block(
    plan: np.ndarray,
    blk: LabelBlock,
    *,
    dense: bool,
    top_k: int | None,
    prune: float,
    dtype: np.dtype,
) -> tuple[np.ndarray | sp.csr_matrix, float]:
    """Apply ``top_k`` and ``prune`` to a unit-mass block plan.

    Returns the plan to store (the dense block when ``dense``, i.e. nothing is dropped, else a
    local CSR matrix in the block's row/column order, in ``dtype``) and the dropped unit-block
    mass.
    """
    plan = np.asarray(plan)
    if plan.shape != blk.shape:
        raise RuntimeError(f"Plan of label {blk.label!r} has shape {plan.shape}, not {blk.shape}.")
    if dense:
        return plan, 0.0
    n, m = plan.shape
    total = float(plan.sum(dtype=np.float64))
    if top_k is not None and top_k < m:
        k = top_k
        cols = np.argpartition(plan, m - k, axis=1)[:, m - k :]
        cols.sort(axis=1)
        vals = np.take_along_axis(plan, cols, axis=1)
        local = sp.csr_matrix(
            (vals.ravel(), cols.ravel(), np.arange(0, n * k + 1, k)), shape=(n, m)
        )
    else:
        local = sp.csr_matrix(plan)
    if prune > 0 and local.nnz:
        rmax = np.zeros(n, dtype=local.dtype)
        lens = np.diff(local.indptr)
        nonempty = lens > 0
        rmax[nonempty] = np.maximum.reduceat(local.data, local.indptr[:-1][nonempty])
        local.data[local.data < prune * np.repeat(rmax, lens)] = 0
    local.eliminate_zeros()
    local.sort_indices()
    local = local.astype(dtype, copy=False)
    return local, total - float(local.sum(dtype=np.float64))


@dataclass(frozen=True)
class Compression:
    """The storage settings of a coupling, applied to each block result as it is solved.

    Calling it on a :class:`~groove_sc.ot.BlockResult` and its block returns the result with
    the plan in its stored form (:func:`compress_block`) and the dropped unit-block mass; it is
    picklable, so the Dask path applies it on the workers.
    """

    dense: bool
    top_k: int | None
    prune: float
    dtype: np.dtype

    def __call__(self, result: BlockResult, blk: LabelBlock) -> tuple[BlockResult, float]:
        """The result with its stored plan, and the dropped mass."""
        stored, dropped = compress_block(
            result.plan,
            blk,
            dense=self.dense,
            top_k=self.top_k,
            prune=self.prune,
            dtype=self.dtype,
        )
        return result._replace(plan=stored), dropped


class CSRBuilder:
    """Assemble the union-space CSR coupling block by block.

    Dense mode (``dense=True``): every block is stored in full, so each row's number of entries
    is known up front and blocks stream straight into preallocated ``data``/``indices`` arrays
    (no COO intermediate). Sparse mode (``top_k``, ``prune`` or EMD) keeps each block's local
    CSR matrix (see :func:`compress_block`) and assembles at the end.
    """

    _CHUNK = 2**22

    def __init__(
        self,
        *,
        n_obs: int,
        blocks: Sequence[LabelBlock],
        src_pos: np.ndarray,
        tgt_pos: np.ndarray,
        dense: bool,
        dtype: np.dtype,
    ) -> None:
        self.n_obs, self.blocks = n_obs, blocks
        self.src_pos, self.tgt_pos = src_pos, tgt_pos
        self.dense, self.dtype = dense, dtype
        self.pieces: dict[int, sp.csr_matrix] = {}
        if dense:
            counts = np.zeros(n_obs, dtype=np.int64)
            for blk in blocks:
                counts[src_pos[blk.src]] = len(blk.tgt)
            self._allocate(counts)

    def _allocate(self, counts: np.ndarray) -> None:
        nnz = int(counts.sum())
        idx_dtype = np.int32 if max(nnz, self.n_obs) < np.iinfo(np.int32).max else np.int64
        self.indptr = np.zeros(self.n_obs + 1, dtype=idx_dtype)
        np.cumsum(counts, out=self.indptr[1:])
        self.data = np.empty(nnz, dtype=self.dtype)
        self.indices = np.empty(nnz, dtype=idx_dtype)

    def add(self, bid: int, plan: np.ndarray | sp.csr_matrix) -> None:
        """Store block ``bid``: a unit-mass plan, columns in the block's target order.

        A dense array in dense mode, the local CSR from :func:`compress_block` otherwise.
        """
        blk = self.blocks[bid]
        if not self.dense:
            self.pieces[bid] = sp.csr_matrix(plan) if not sp.issparse(plan) else plan
            return
        plan = torch.from_numpy(np.ascontiguousarray(plan, dtype=self.dtype))
        rows = self.src_pos[blk.src]
        cols = torch.from_numpy(self.tgt_pos[blk.tgt].astype(self.indices.dtype))
        m = len(cols)
        step = max(1, self._CHUNK // max(m, 1))
        ar = torch.arange(m, dtype=torch.int64)
        # each row's entries are one contiguous run at indptr[row]; torch's scatter writes
        # them faster than numpy's fancy assignment
        data, indices = torch.from_numpy(self.data), torch.from_numpy(self.indices)
        starts = torch.from_numpy(self.indptr[rows].astype(np.int64))
        for start in range(0, len(rows), step):
            pos = (starts[start : start + step, None] + ar[None, :]).reshape(-1)
            part = plan[start : start + step]
            data.scatter_(0, pos, (part * blk.weight).reshape(-1))
            indices.scatter_(0, pos, cols.expand(len(part), m).reshape(-1))

    def finish(self) -> sp.csr_matrix:
        """The ``(n_obs, n_obs)`` coupling (blocks scaled by their weights)."""
        if not self.dense:
            counts = np.zeros(self.n_obs, dtype=np.int64)
            for bid, local in self.pieces.items():
                counts[self.src_pos[self.blocks[bid].src]] = np.diff(local.indptr)
            self._allocate(counts)
            for bid in list(self.pieces):
                local = self.pieces.pop(bid)
                blk = self.blocks[bid]
                rows = self.src_pos[blk.src]
                lens = np.diff(local.indptr)
                start = self.indptr[rows].astype(np.int64) - local.indptr[:-1]
                pos = np.repeat(start, lens) + np.arange(local.nnz)
                self.data[pos] = local.data * blk.weight
                self.indices[pos] = self.tgt_pos[blk.tgt][local.indices]
        mat = sp.csr_matrix(
            (self.data, self.indices, self.indptr), shape=(self.n_obs, self.n_obs), copy=False
        )
        mat.has_sorted_indices = True
        return mat


def diagnostics_table(
    blocks: Sequence[LabelBlock],
    results: Mapping[int, BlockResult],
    dropped: Mapping[int, float],
) -> dict[str, Any]:
    """The per-label diagnostics of ``uns[key]["diagnostics"]`` (one array per column).

    ``mass`` and ``dropped_mass`` are the stored block's (unit-block values times the block's
    weight).
    """
    ids = sorted(results)
    weights = np.array([blocks[i].weight for i in ids])
    out: dict[str, Any] = {
        "label": np.array([blocks[i].label for i in ids], dtype=object).astype(str),
        "n_source": np.array([blocks[i].shape[0] for i in ids], dtype=np.int64),
        "n_target": np.array([blocks[i].shape[1] for i in ids], dtype=np.int64),
        "mass": np.array([results[i].mass for i in ids], dtype=np.float64) * weights,
        "cost": np.array([results[i].cost for i in ids], dtype=np.float64),
        "converged": np.array([results[i].converged for i in ids], dtype=bool),
        "n_iter": np.array([results[i].n_iter for i in ids], dtype=np.int64),
        "marginal_error": np.array([results[i].marginal_error for i in ids], dtype=np.float64),
        "dropped_mass": np.array([dropped[i] * blocks[i].weight for i in ids], dtype=np.float64),
        "seconds": np.array([results[i].seconds for i in ids], dtype=np.float64),
    }
    return out


def write_coupling(
    mdata: MuData,
    key: str,
    coupling: sp.csr_matrix,
    *,
    params: dict[str, Any],
    diagnostics: dict[str, Any],
    unmatched: tuple[Sequence[str], Sequence[str]],
    seconds: float,
    extras: Mapping[str, Any],
    copy: bool,
) -> MuData | None:
    """Write ``obsp[key]`` and ``uns[key]`` (into a copy when ``copy``; then return it)."""
    uns = {
        "params": params,
        "diagnostics": diagnostics,
        "unmatched_source_labels": np.asarray(unmatched[0], dtype=object).astype(str),
        "unmatched_target_labels": np.asarray(unmatched[1], dtype=object).astype(str),
        "seconds": float(seconds),
        **extras,
    }
    out = mdata.copy() if copy else mdata
    out.obsp[key] = coupling
    out.uns[key] = uns
    return out if copy else None


def perfect_coupling(
    mdata: MuData,
    source: str,
    target: str,
    truth_key: str,
    src_pos: np.ndarray,
    tgt_pos: np.ndarray,
    dtype: np.dtype,
) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """Mass ``1 / n_pairs`` on every true pair (evaluation reference), and its diagnostics."""
    t0 = time.perf_counter()
    src, tgt = mdata.mod[source], mdata.mod[target]
    ids_s = obs_strings(src, truth_key, "truth_key", source)
    ids_t = obs_strings(tgt, truth_key, "truth_key", target)
    partner = partners(ids_s, ids_t, truth_key, target)
    paired = np.flatnonzero(partner >= 0)
    if paired.size == 0:
        raise ValueError(
            f"No {source!r} cell has a partner in {target!r} by `truth_key`={truth_key!r}."
        )
    n = paired.size
    coupling = sp.csr_matrix(
        (np.full(n, 1.0 / n, dtype=dtype), (src_pos[paired], tgt_pos[partner[paired]])),
        shape=(mdata.n_obs, mdata.n_obs),
    )
    diag = {
        "label": np.array(["__truth__"]),
        "n_source": np.array([n]),
        "n_target": np.array([n]),
        "mass": np.array([1.0]),
        "cost": np.array([np.nan]),
        "converged": np.array([True]),
        "n_iter": np.array([0]),
        "marginal_error": np.array([0.0]),
        "dropped_mass": np.array([0.0]),
        "seconds": np.array([time.perf_counter() - t0]),
    }
    return coupling, diag


def get_coupling(mdata: MuData, key: str, *, source: str, target: str) -> sp.csr_matrix:
    """Return a stored coupling as a ``source cells x target cells`` CSR matrix.

    Rows follow ``mdata.mod[source].obs_names`` and columns ``mdata.mod[target].obs_names``.
    When the coupling was computed the other way round (``uns[key]["params"]`` says so), the
    block is transposed.

    Parameters
    ----------
    mdata
        MuData holding ``mdata.obsp[key]`` (written by :func:`groove_sc.tl.align`).
    key
        Key of the coupling in ``mdata.obsp``.
    source, target
        Modalities of the rows and columns of the returned matrix.

    Returns
    -------
    The coupling restricted to the two modalities, shape ``(n_source, n_target)``.

    Examples
    --------
    >>> gs.tl.align(mdata, source="rna", target="protein")
    >>> T = gs.tl.get_coupling(mdata, "groove_coupling", source="protein", target="rna")
    """
    check_modality(mdata, source, "source")
    check_modality(mdata, target, "target")
    if key not in mdata.obsp:
        raise KeyError(
            f"No coupling {key!r} in mdata.obsp (available: {list(mdata.obsp.keys())}); run "
            "groove_sc.tl.align first."
        )
    t = mdata.obsp[key]
    t = t.tocsr() if sp.issparse(t) else sp.csr_matrix(np.asarray(t))
    params = (
        mdata.uns.get(key, {}).get("params", {}) if isinstance(mdata.uns.get(key), dict) else {}
    )
    s0, t0 = params.get("source", source), params.get("target", target)
    if {s0, t0} != {source, target}:
        raise ValueError(f"Coupling {key!r} links {s0!r} -> {t0!r}, not {source!r} and {target!r}.")
    rows = union_positions(mdata, s0)
    cols = union_positions(mdata, t0)
    block = t[rows][:, cols].tocsr()
    if s0 != source:
        block = block.T.tocsr()
    return block
