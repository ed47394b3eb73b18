"""Labeled co-optimal transport: a sample coupling per label, one shared feature coupling."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ._blocks import LabelBlock, gather, make_batches, pack
from ._costs import rms_scale
from ._gw import INNER_MAX_ITER, INNER_TOL
from ._pot import emd_batch
from ._results import BlockResult, batch_results, masses
from ._sinkhorn import sinkhorn_batched

__all__ = ["LabeledCOOT"]


class LabeledCOOT:
    """Labeled COOT (Redko et al. 2020) by block-coordinate descent.

    As ``ot.coot.co_optimal_transport``: the sample coupling of every block is updated from
    the feature coupling (:meth:`sample_step`: batched Sinkhorn, or per-block EMD when
    ``epsilon == 0``), then the feature coupling from all sample couplings
    (:meth:`feature_step`). Each modality's features are divided by their root mean square
    over the blocks' cells. With a single block it is ordinary COOT.

    Parameters
    ----------
    blocks
        The label blocks and their weights.
    x_source, x_target
        ``(n_cells, d_source)`` and ``(n_cells, d_target)`` feature matrices (float64).
    epsilon
        Entropic regularisation of both couplings; 0: exact (float64).
    max_iter
        Block-coordinate iterations.
    tol
        Stop when the L1 change of the sample coupling is at most ``tol`` times its mass.
    batch_size
        Most blocks per padded batch (``None``: as many as fit).
    dtype, device
        Torch dtype (of the entropic iterations and the returned plans) and device.
    """

    def __init__(
        self,
        blocks: Sequence[LabelBlock],
        x_source: np.ndarray,
        x_target: np.ndarray,
        *,
        epsilon: float,
        max_iter: int,
        tol: float,
        batch_size: int | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.blocks = list(blocks)
        self.epsilon, self.max_iter, self.tol = epsilon, max_iter, tol
        self.exact = epsilon == 0
        self.out_dtype = dtype
        self.dt = dt = torch.float64 if self.exact else dtype
        self.dev = dev = device
        src_all = np.concatenate([b.src for b in blocks])
        tgt_all = np.concatenate([b.tgt for b in blocks])
        xs_np = np.zeros_like(x_source)
        xt_np = np.zeros_like(x_target)
        xs_np[src_all] = rms_scale(x_source[src_all])
        xt_np[tgt_all] = rms_scale(x_target[tgt_all])
        xs = torch.from_numpy(xs_np).to(dev, dt)
        xt = torch.from_numpy(xt_np).to(dev, dt)
        self.d1, self.d2 = xs.shape[1], xt.shape[1]
        self.wx = torch.full((self.d1,), 1.0 / self.d1, dtype=dt, device=dev)
        self.wy = torch.full((self.d2,), 1.0 / self.d2, dtype=dt, device=dev)
        self.batches = [
            pack(blocks, ids, device=dev, dtype=dt)
            for ids in make_batches(blocks, batch_size=batch_size)
        ]
        self.points = [
            (gather(xs, bt.src, bt.a > 0), gather(xt, bt.tgt, bt.b > 0)) for bt in self.batches
        ]
        self._pots: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.batches)
        self._pots_f: tuple[torch.Tensor, torch.Tensor] | None = None
        self._inner_ok = [np.ones(bt.size, dtype=bool) for bt in self.batches]

    def _linear(
        self, c: torch.Tensor, a: torch.Tensor, b: torch.Tensor, k: int | None
    ) -> torch.Tensor:
        # the linear OT problems of one step: batch k of sample couplings, or (k=None) the
        # feature coupling; entropic ones are warm-started from the last potentials
        if self.exact:
            return emd_batch(c, a, b, num_iter_max=1_000_000)
        res = sinkhorn_batched(
            c,
            a,
            b,
            self.epsilon,
            max_iter=INNER_MAX_ITER,
            tol=INNER_TOL[self.dt],
            init=self._pots[k] if k is not None else self._pots_f,
        )
        if k is None:
            self._pots_f = (res.alpha, res.beta)
        else:
            self._pots[k] = (res.alpha, res.beta)
            self._inner_ok[k] = res.converged
        return res.plan

    def sample_cost(self, k: int, pi_f: torch.Tensor) -> torch.Tensor:
        """The ``(B, n, m)`` cost of the sample couplings of batch ``k`` given ``pi_f``."""
        ps, pt = self.points[k]
        wxf, wyf = pi_f.sum(1), pi_f.sum(0)
        return (
            ((ps * ps) @ wxf)[:, :, None]
            + ((pt * pt) @ wyf)[:, None, :]
            - 2.0 * torch.bmm(torch.matmul(ps, pi_f), pt.transpose(1, 2))
        )

    def sample_step(
        self, plans: list[torch.Tensor], pi_f: torch.Tensor
    ) -> tuple[list[torch.Tensor], float, float]:
        """New sample couplings; also their weighted L1 change and mass."""
        new, change, norm = [], 0.0, 0.0
        for k, bt in enumerate(self.batches):
            tk = self._linear(self.sample_cost(k, pi_f).contiguous(), bt.a, bt.b, k)
            w = bt.w[:, None, None]
            change += float((((tk - plans[k]) * w).abs()).sum())
            norm += float((tk * w).sum())
            new.append(tk)
        return new, change, norm

    def feature_step(self, plans: list[torch.Tensor]) -> torch.Tensor:
        """The feature coupling from all (weighted) sample couplings."""
        cross = torch.zeros(self.d1, self.d2, dtype=self.dt, device=self.dev)
        sx = torch.zeros(self.d1, dtype=self.dt, device=self.dev)
        sy = torch.zeros(self.d2, dtype=self.dt, device=self.dev)
        for bt, (ps, pt), t in zip(self.batches, self.points, plans):
            tw = t * bt.w[:, None, None]
            cross += torch.einsum("bnd,bnm,bme->de", ps, tw, pt)
            sx += torch.einsum("bnd,bn->d", ps * ps, tw.sum(2))
            sy += torch.einsum("bme,bm->e", pt * pt, tw.sum(1))
        cf = sx[:, None] + sy[None, :] - 2.0 * cross
        return self._linear(cf[None].contiguous(), self.wx[None], self.wy[None], None)[0]

    def run(self) -> tuple[Iterator[BlockResult], np.ndarray]:
        """Solve the problem.

        Returns the per-block results (converted lazily, batch by batch) and the feature
        coupling (float64).
        """
        plans = [bt.a[:, :, None] * bt.b[:, None, :] for bt in self.batches]
        pi_f = self.wx[:, None] * self.wy[None, :]
        t0 = time.perf_counter()
        converged = False
        n_outer = 0
        for it in range(1, self.max_iter + 1):
            n_outer = it
            plans, change, norm = self.sample_step(plans, pi_f)
            pi_f = self.feature_step(plans)
            if change <= self.tol * norm:
                converged = True
                break
        costs = [
            (self.sample_cost(k, pi_f) * plans[k]).sum((1, 2)).double().cpu().numpy()
            for k in range(len(self.batches))
        ]
        feature = pi_f.double().cpu().numpy()
        seconds = time.perf_counter() - t0
        return self._results(plans, costs, converged, n_outer, seconds), feature

    def _results(
        self,
        plans: list[torch.Tensor],
        costs: list[np.ndarray],
        converged: bool,
        n_outer: int,
        seconds: float,
    ) -> Iterator[BlockResult]:
        total = sum(float((b.n * b.m).sum()) for b in self.batches)
        for k, bt in enumerate(self.batches):
            yield from batch_results(
                self.blocks,
                bt,
                bt.unpad(plans[k].to(self.out_dtype)),
                seconds * float((bt.n * bt.m).sum()) / total,
                cost=costs[k],
                converged=np.full(bt.size, converged) & self._inner_ok[k],
                n_iter=np.full(bt.size, n_outer),
                marginal_error=bt.marginal_error(plans[k]),
                mass=masses(plans[k]),
            )
