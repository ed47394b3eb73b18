"""Independent label problems as tasks on a Dask cluster (optional extra ``groove-sc[dask]``).

Labeled OT problems that do not depend on each other (:meth:`Solver.independent_groups
<groove_sc.ot.Solver.independent_groups>`: Sinkhorn's padded batches, or groups of blocks of
about ``BATCH_ENTRIES`` entries) are tasks: each task receives the points of its blocks' cells
only, solves them with the same solver as the single-process path (same groups, so the same
numbers), applies ``finish`` to every result on the worker (e.g. keeping the ``top_k`` entries,
so that only those travel) and sends the finished results back. The caller consumes them as
tasks finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from ._blocks import LabelBlock
from ._results import BlockResult
from ._solvers import Solver
from ._threads import torch_threads

__all__ = ["check_client", "solve_on_dask"]

T = TypeVar("T")


def check_client(client: Any) -> None:
    """Raise unless ``client`` is a :class:`distributed.Client` (and distributed installed)."""
    try:
        from distributed import Client
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "`dask_client` needs the optional dependency distributed: "
            "pip install 'groove-sc[dask]'."
        ) from err
    if not isinstance(client, Client):
        raise TypeError(
            f"`dask_client` must be a distributed.Client or None, got {type(client).__name__}."
        )


def _subset(
    blocks: Sequence[LabelBlock],
    ids: list[int],
    x_source: np.ndarray | None,
    x_target: np.ndarray | None,
) -> tuple[list[LabelBlock], np.ndarray | None, np.ndarray | None]:
    """The task's blocks re-indexed into the rows of its own slice of the points."""
    sub: list[LabelBlock] = []
    src_rows: list[np.ndarray] = []
    tgt_rows: list[np.ndarray] = []
    n_src = n_tgt = 0
    for i in ids:
        blk = blocks[i]
        n, m = blk.shape
        sub.append(
            LabelBlock(
                blk.label, np.arange(n_src, n_src + n), np.arange(n_tgt, n_tgt + m), blk.weight
            )
        )
        src_rows.append(blk.src)
        tgt_rows.append(blk.tgt)
        n_src, n_tgt = n_src + n, n_tgt + m
    if x_source is None or x_target is None:
        return sub, None, None
    return sub, x_source[np.concatenate(src_rows)], x_target[np.concatenate(tgt_rows)]


def _solve_task(
    solver: Solver,
    blocks: list[LabelBlock],
    x_source: np.ndarray | None,
    x_target: np.ndarray | None,
    finish: Callable[[BlockResult, LabelBlock], T],
    n_threads: int | None,
) -> list[tuple[int, T]]:
    """Run on a worker: solve the task's blocks and finish their results."""
    with torch_threads(n_threads if solver.device.type == "cpu" else None):
        return [
            (res.block, finish(res, blocks[res.block]))
            for res in solver.solve(blocks, x_source, x_target)
        ]


def solve_on_dask(
    client: Any,
    solver: Solver,
    blocks: Sequence[LabelBlock],
    x_source: np.ndarray | None,
    x_target: np.ndarray | None,
    *,
    finish: Callable[[BlockResult, LabelBlock], T],
    n_threads: int | None = None,
) -> Iterator[tuple[int, T]]:
    """Submit one task per independent group of blocks; yield ``(block, finish(result))``.

    Parameters
    ----------
    client
        A :class:`distributed.Client`.
    solver
        The solver (sent to the workers); its blocks must not form one problem
        (:attr:`Solver.joint <groove_sc.ot.Solver.joint>`) unless there is a single block.
    blocks, x_source, x_target
        As in :meth:`Solver.solve <groove_sc.ot.Solver.solve>`.
    finish
        Applied on the worker to every result and its block (picklable); what it returns
        travels back.
    n_threads
        Torch intra-op threads inside each task on CPU (``None``: unchanged).

    Yields
    ------
    ``(block index, finish(result))`` in completion order; results are released from the
    cluster once consumed, and a failing task re-raises its exception here (after cancelling
    the remaining tasks).
    """
    from distributed import as_completed

    futures = {}
    for ids in solver.independent_groups(blocks):
        sub, xs, xt = _subset(blocks, ids, x_source, x_target)
        fut = client.submit(_solve_task, solver, sub, xs, xt, finish, n_threads, pure=False)
        futures[fut] = ids
    try:
        for fut in as_completed(list(futures)):
            ids = futures.pop(fut)
            for i, out in fut.result():
                yield ids[i], out
            fut.release()
    finally:
        if futures:
            client.cancel(list(futures))
