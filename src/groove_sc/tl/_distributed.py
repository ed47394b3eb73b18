"""Per-label alignment on a Dask cluster (``groove_sc.tl.align(..., dask_client=client)``).

Labeled OT problems are independent, so their batches are tasks: each task receives the
representations of its labels' cells only, solves them with the same solver as the
single-process path (same batches, so the same numbers), applies ``top_k``/``prune`` on the
worker and sends back the kept entries. The caller streams the results into the sparse coupling
as tasks finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ._align import (
    _BATCH_ENTRIES,
    _SOLVERS,
    _Block,
    _compress_block,
    _make_batches,
    _Options,
    _Reps,
    _torch_threads,
)


def _task_groups(blocks: list[_Block], opts: _Options) -> list[list[int]]:
    """Block ids of each task.

    Sinkhorn solves padded batches jointly, so a task is exactly one batch of
    :func:`~groove_sc.tl._align._make_batches` (the single-process grouping). The other
    solvers treat each block on its own; blocks are grouped up to about ``_BATCH_ENTRIES``
    entries per task to keep the scheduling overhead small.
    """
    if opts.method == "sinkhorn":
        return _make_batches(blocks, opts)
    groups: list[list[int]] = []
    cur: list[int] = []
    size = 0
    for i, blk in enumerate(blocks):
        n, m = blk.shape
        if cur and size + n * m > _BATCH_ENTRIES:
            groups.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += n * m
    if cur:
        groups.append(cur)
    return groups


def _subset(
    blocks: list[_Block], ids: list[int], reps: _Reps
) -> tuple[list[_Block], np.ndarray | None, np.ndarray | None]:
    """The task's blocks re-indexed into the rows of its own slice of the representations."""
    sub: list[_Block] = []
    src_rows: list[np.ndarray] = []
    tgt_rows: list[np.ndarray] = []
    n_src = n_tgt = 0
    for i in ids:
        blk = blocks[i]
        n, m = blk.shape
        sub.append(
            _Block(blk.label, np.arange(n_src, n_src + n), np.arange(n_tgt, n_tgt + m), blk.weight)
        )
        src_rows.append(blk.src)
        tgt_rows.append(blk.tgt)
        n_src, n_tgt = n_src + n, n_tgt + m
    if reps.source is None:
        return sub, None, None
    return sub, reps.source[np.concatenate(src_rows)], reps.target[np.concatenate(tgt_rows)]


def _solve_task(
    blocks: list[_Block], source: np.ndarray | None, target: np.ndarray | None, opts: _Options
) -> list[tuple[int, Any, float, dict[str, Any]]]:
    """Run on a worker: solve the task's blocks and compress their plans."""
    out = []
    with _torch_threads(opts.n_threads if opts.device.type == "cpu" else None):
        for i, plan, diag in _SOLVERS[opts.method](blocks, _Reps(source, target), opts):
            stored, dropped = _compress_block(plan, blocks[i], opts)
            out.append((i, stored, dropped, diag))
    return out


def solve_on_dask(
    client: Any, blocks: list[_Block], reps: _Reps, opts: _Options
) -> Iterator[tuple[int, Any, float, dict[str, Any]]]:
    """Submit one task per group of labels and yield ``(block id, plan, dropped, diag)``.

    Results are yielded in completion order and released from the cluster once consumed.
    A failing task re-raises its exception here (after cancelling the remaining tasks).
    """
    from distributed import as_completed

    futures = {}
    for ids in _task_groups(blocks, opts):
        sub, xs, xt = _subset(blocks, ids, reps)
        fut = client.submit(_solve_task, sub, xs, xt, opts, pure=False)
        futures[fut] = ids
    try:
        for fut in as_completed(list(futures)):
            ids = futures.pop(fut)
            for i, stored, dropped, diag in fut.result():
                yield ids[i], stored, dropped, diag
            fut.release()
    finally:
        if futures:
            client.cancel(list(futures))
