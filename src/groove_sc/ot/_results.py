"""What a solver returns: one :class:`BlockResult` per label block, and :class:`SolveExtras`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ._blocks import Batch, LabelBlock

__all__ = ["BlockResult", "Solution", "SolveExtras", "batch_results", "share_seconds"]


class BlockResult(NamedTuple):
    """The solution of one label block.

    Attributes
    ----------
    block
        Index of the block in the list the solver was given.
    plan
        Unit-mass plan of the block, ``(n_source, n_target)`` in the block's cell order
        (dense; :func:`groove_sc.tl._coupling.compress_block` may replace it by its stored form).
    cost
        Objective of the unit-mass plan on the normalised costs, without entropy (NaN when
        there is none, as for the uniform coupling).
    converged
        Whether the solver reached its tolerance within its iterations.
    n_iter
        Iterations spent (outer iterations for GW/FGW/COOT).
    marginal_error
        Largest relative error of the row and column marginals of the unit-mass plan.
    mass
        Total mass of the unit-mass plan (1 when balanced).
    seconds
        Wall time of the block (a batch's time shared among its blocks by size).
    """

    block: int
    plan: Any
    cost: float
    converged: bool
    n_iter: int
    marginal_error: float
    mass: float
    seconds: float


@dataclass
class SolveExtras:
    """Results of a solve beyond the blocks' own.

    Attributes
    ----------
    total_cost
        Objective of the whole coupling when the blocks form one problem (labeled GW in the
        Ryu et al. form with more than one block).
    feature_coupling
        COOT: the ``(d_source, d_target)`` coupling of the features, shared by all blocks.
    """

    total_cost: float | None = None
    feature_coupling: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """The extras that are set (h5mu-writable)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Solution:
    """The results of one solve: iterate over its :class:`BlockResult` (once, lazily).

    The blocks are solved as they are consumed; :attr:`extras` is complete once the iteration
    is exhausted.
    """

    def __init__(self, results: Iterator[BlockResult], extras: SolveExtras) -> None:
        self._results = results
        self.extras = extras

    def __iter__(self) -> Iterator[BlockResult]:
        return self._results

    def __next__(self) -> BlockResult:
        return next(self._results)

    def collect(self) -> list[BlockResult]:
        """All remaining results, sorted by block."""
        return sorted(self._results, key=lambda r: r.block)


def share_seconds(blocks: Sequence[LabelBlock], ids: Sequence[int], seconds: float) -> np.ndarray:
    """A batch's time shared among its blocks by size (``n_l * m_l``)."""
    sizes = np.array([blocks[i].shape[0] * blocks[i].shape[1] for i in ids], dtype=float)
    share = sizes / sizes.sum() if sizes.sum() > 0 else np.full(len(ids), 1.0 / len(ids))
    return seconds * share


def batch_results(
    blocks: Sequence[LabelBlock],
    batch: Batch,
    plans: list[np.ndarray],
    seconds: float,
    *,
    cost: np.ndarray,
    converged: np.ndarray,
    n_iter: np.ndarray,
    marginal_error: np.ndarray,
    mass: np.ndarray,
) -> list[BlockResult]:
    """One :class:`BlockResult` per block of a padded batch (columns indexed like the batch)."""
    secs = share_seconds(blocks, batch.ids, seconds)
    return [
        BlockResult(
            block=i,
            plan=plans[k],
            cost=cost[k],
            converged=converged[k],
            n_iter=n_iter[k],
            marginal_error=marginal_error[k],
            mass=mass[k],
            seconds=float(secs[k]),
        )
        for k, i in enumerate(batch.ids)
    ]


def masses(plan: torch.Tensor) -> np.ndarray:
    """Total mass of each problem of a padded ``(B, n, m)`` plan (float64)."""
    return plan.sum((1, 2)).double().cpu().numpy()
