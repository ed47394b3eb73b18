r"""Labeled (fused) Gromov-Wasserstein with the coupling restricted to label blocks.

:class:`MaskedGW` solves one GW problem over all its blocks: intra-modality squared distances
over all their cells (normalised once) and the label mask on the coupling, i.e. the labeled GW
of Ryu et al. (2024). With a single block it is ordinary GW / FGW (used per label and
globally). It matches POT's ``(entropic_)(fused_)gromov_wasserstein`` on one block (tested)
and never forms an ``n x n`` intra-modality matrix.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._blocks import Batch, LabelBlock, gather, make_batches, pack
from ._costs import centred_batch, cross_cost, lowrank_sqdist, normalize_blocks
from ._pot import emd_batch
from ._results import BlockResult, batch_results, masses
from ._sinkhorn import sinkhorn_batched

__all__ = ["INNER_MAX_ITER", "INNER_TOL", "GWBatch", "MaskedGW"]

#: Iterations of the inner (warm-started) Sinkhorn solves of GW and COOT.
INNER_MAX_ITER = 1000
#: Inner Sinkhorn tolerance of GW/COOT by dtype (float32 cannot resolve much below 1e-6).
INNER_TOL = {torch.float32: 1e-6, torch.float64: 1e-9}


@dataclass
class GWBatch:
    r"""One padded batch of blocks with its factors of the intra-modality distances.

    With ``C1 = A1 B1^T`` and ``C2 = A2 B2^T`` (:func:`~groove_sc.ot._costs.lowrank_sqdist`),
    the rows of the factors of the batch's cells, zero at padding.

    Attributes
    ----------
    batch
        The blocks.
    a1, b1
        ``(B, n, d1 + 2)`` rows of ``A1`` and ``B1`` of the source cells.
    c1
        ``(B, n)`` the constant term ``(C1 * C1) p`` of the source cells.
    a2, b2, c2
        The same for the target cells.
    cross
        FGW: the ``(B, n, m)`` cross cost, normalised per block; ``None`` for GW.
    """

    batch: Batch
    a1: torch.Tensor
    b1: torch.Tensor
    c1: torch.Tensor
    a2: torch.Tensor
    b2: torch.Tensor
    c2: torch.Tensor
    cross: torch.Tensor | None


class MaskedGW:
    r"""(Fused) Gromov-Wasserstein over label blocks, the coupling masked to the blocks.

    The square-loss gradient on block ``l`` is ``2 (c1[I] + c2[J] - 2 C1[I, :] T C2[:, J])``;
    the exact factorisation ``C = A B^T`` of squared distances gives
    ``C1 T C2^T = A1 (B1^T T B2) A2^T`` with a ``(d1 + 2) x (d2 + 2)`` middle factor, so no
    ``n x n`` matrix is formed. FGW adds ``(1 - alpha) M`` (cross cost, normalised per block)
    and weights the GW part by ``alpha``, as POT.

    Entropic (``epsilon > 0``, :meth:`entropic_step`): projected gradient as POT's
    ``entropic_(fused_)gromov_wasserstein``, each step a batched Sinkhorn per block,
    warm-started; stops when the relative Frobenius change of the coupling is at most ``tol``.
    Exact (``epsilon == 0``, :meth:`frank_wolfe_step`): conditional gradient with a per-block
    EMD direction and exact line search, in float64, as POT's ``(fused_)gromov_wasserstein``;
    stops when the relative change of the loss is at most ``tol``.

    Parameters
    ----------
    blocks
        The label blocks (cell positions into ``x_source`` / ``x_target``) and their weights.
    x_source, x_target
        ``(n_cells, d)`` representations (float64); FGW needs one shared space.
    fused
        FGW instead of GW.
    epsilon, alpha, metric, normalize, max_iter, tol, batch_size
        As in :class:`~groove_sc.ot.GWSolver` / :class:`~groove_sc.ot.FGWSolver`.
    dtype
        Torch dtype of the entropic iterations and of the returned plans (exact: float64
        iterations).
    device
        Torch device.
    """

    def __init__(
        self,
        blocks: Sequence[LabelBlock],
        x_source: np.ndarray,
        x_target: np.ndarray,
        *,
        fused: bool,
        epsilon: float,
        alpha: float = 0.5,
        metric: str = "sqeuclidean",
        normalize: str | None,
        max_iter: int,
        tol: float,
        batch_size: int | None,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.blocks = list(blocks)
        self.fused, self.epsilon, self.max_iter, self.tol = fused, epsilon, max_iter, tol
        self.exact = epsilon == 0
        self.out_dtype = dtype
        self.dt = dt = torch.float64 if self.exact else dtype
        self.dev = dev = device
        self.gw_w = alpha if fused else 1.0
        self.lin_w = 1.0 - alpha if fused else 0.0
        src_all = np.concatenate([b.src for b in blocks])
        tgt_all = np.concatenate([b.tgt for b in blocks])
        # masses of the coupling (blocks scaled by their weight)
        p = np.zeros(x_source.shape[0])
        q = np.zeros(x_target.shape[0])
        for blk in blocks:
            p[blk.src] = blk.weight / len(blk.src)
            q[blk.tgt] = blk.weight / len(blk.tgt)
        f1a, f1b, c1, _ = lowrank_sqdist(x_source[src_all], p[src_all], normalize)
        f2a, f2b, c2, _ = lowrank_sqdist(x_target[tgt_all], q[tgt_all], normalize)

        def _full(x: np.ndarray, idx: np.ndarray, n: int) -> torch.Tensor:
            out = np.zeros((n, *x.shape[1:]))
            out[idx] = x
            return torch.from_numpy(out).to(dev, dt)

        ns, nt = x_source.shape[0], x_target.shape[0]
        a1, b1, cc1 = _full(f1a, src_all, ns), _full(f1b, src_all, ns), _full(c1, src_all, ns)
        a2, b2, cc2 = _full(f2a, tgt_all, nt), _full(f2b, tgt_all, nt), _full(c2, tgt_all, nt)
        self.d1, self.d2 = a1.shape[1], a2.shape[1]
        batches = [
            pack(blocks, ids, device=dev, dtype=dt)
            for ids in make_batches(blocks, batch_size=batch_size)
        ]
        if fused:
            xs_t = torch.from_numpy(x_source).to(dev, dt)
            xt_t = torch.from_numpy(x_target).to(dev, dt)
        self.parts: list[GWBatch] = []
        for bt in batches:
            ms, mt = bt.a > 0, bt.b > 0
            mcost = None
            if fused:
                ps, pt = centred_batch(xs_t, xt_t, bt)
                mcost = cross_cost(ps, pt, metric)
                normalize_blocks(mcost, bt, normalize)
            self.parts.append(
                GWBatch(
                    batch=bt,
                    a1=gather(a1, bt.src, ms),
                    b1=gather(b1, bt.src, ms),
                    c1=cc1[bt.src] * ms.to(dt),
                    a2=gather(a2, bt.tgt, mt),
                    b2=gather(b2, bt.tgt, mt),
                    c2=cc2[bt.tgt] * mt.to(dt),
                    cross=mcost,
                )
            )
        self._pots: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(batches)
        self._inner_ok = [np.ones(bt.size, dtype=bool) for bt in batches]

    # ---------------------------------------------------------------------------- pieces
    def initial_plans(self) -> list[torch.Tensor]:
        """The independent (product) unit-mass coupling of every block, per batch."""
        return [g.batch.a[:, :, None] * g.batch.b[:, None, :] for g in self.parts]

    def _wsum(self, ts: list[torch.Tensor], outer: bool) -> torch.Tensor:
        # sum_l F[I_l]^T (w_l T_l) G[J_l] with (F, G) = (B1, B2), or (A1, A2) when outer
        km = torch.zeros(self.d1, self.d2, dtype=self.dt, device=self.dev)
        for g, t in zip(self.parts, ts):
            left, right = (g.a1, g.a2) if outer else (g.b1, g.b2)
            km += torch.einsum("bnd,bnm,bme->de", left, t * g.batch.w[:, None, None], right)
        return km

    def middle(self, plans: list[torch.Tensor]) -> torch.Tensor:
        """The middle factor ``sum_l B1[I_l]^T (w_l T_l) B2[J_l]`` of ``C1 T C2^T``."""
        return self._wsum(plans, outer=False)

    def _tensor(self, k: int, km: torch.Tensor) -> torch.Tensor:
        # c1[I] + c2[J] - 2 C1 T C2^T on the blocks of batch k
        g = self.parts[k]
        out = torch.bmm(torch.matmul(g.a1, km), g.a2.transpose(1, 2)).mul_(-2.0)
        return out.add_(g.c1[:, :, None]).add_(g.c2[:, None, :])

    def gradient(self, k: int, km: torch.Tensor) -> torch.Tensor:
        """Gradient of the (F)GW loss on the blocks of batch ``k`` (middle factor ``km``)."""
        out = self._tensor(k, km).mul_(2.0 * self.gw_w)
        if self.fused:
            out.add_(self.parts[k].cross, alpha=self.lin_w)
        return out

    def _frob(self, ts: list[torch.Tensor]) -> float:
        return math.sqrt(
            sum(float(((t * g.batch.w[:, None, None]) ** 2).sum()) for g, t in zip(self.parts, ts))
        )

    def loss(self, plans: list[torch.Tensor]) -> list[np.ndarray]:
        """The (F)GW loss of every block, weighted by the block's mass, per batch."""
        km = self.middle(plans)
        out = []
        for k, g in enumerate(self.parts):
            val = self.gw_w * (self._tensor(k, km) * plans[k]).sum((1, 2))
            if self.fused:
                val = val + self.lin_w * (g.cross * plans[k]).sum((1, 2))
            out.append(val.double().cpu().numpy() * g.batch.w.double().cpu().numpy())
        return out

    # ---------------------------------------------------------------------------- steps
    def frank_wolfe_step(
        self, plans: list[torch.Tensor], loss_prev: float
    ) -> tuple[list[torch.Tensor], float, bool]:
        """One conditional-gradient step with exact line search.

        Returns the plans, the loss and whether the relative change of the loss reached
        ``tol``.
        """
        km = self.middle(plans)
        dirs = []
        for k, g in enumerate(self.parts):
            s = emd_batch(self.gradient(k, km), g.batch.a, g.batch.b)
            dirs.append(s - plans[k])
        kd, ad = self.middle(dirs), self._wsum(dirs, outer=True)
        lin_d = 0.0
        for g, d in zip(self.parts, dirs):
            dw = d * g.batch.w[:, None, None]
            lin_d += self.gw_w * float(((g.c1[:, :, None] + g.c2[:, None, :]) * dw).sum())
            if self.fused:
                lin_d += self.lin_w * float((g.cross * dw).sum())
        qa = -2.0 * self.gw_w * float((kd * ad).sum())
        qb = lin_d - 4.0 * self.gw_w * float((km * ad).sum())
        if qa > 0:
            tau = min(1.0, max(0.0, -qb / (2.0 * qa)))
        else:
            tau = 1.0 if qa + qb < 0 else 0.0
        plans = [t + tau * d for t, d in zip(plans, dirs)]
        loss = loss_prev + qa * tau * tau + qb * tau
        done = tau == 0.0 or abs(loss_prev - loss) <= self.tol * max(abs(loss), 1e-300)
        return plans, loss, done

    def entropic_step(
        self, plans: list[torch.Tensor], rel_change: float
    ) -> tuple[list[torch.Tensor], float]:
        """One projected-gradient step (a warm-started Sinkhorn per batch).

        Returns the plans and the relative Frobenius change of the coupling.
        """
        km = self.middle(plans)
        # inexact inner solves while the coupling still moves a lot (tolerance a tenth of
        # the last relative change), strict ones near convergence
        inner_tol = max(INNER_TOL[self.dt], min(1e-2, 0.1 * rel_change))
        new = []
        for k, g in enumerate(self.parts):
            res = sinkhorn_batched(
                self.gradient(k, km),
                g.batch.a,
                g.batch.b,
                self.epsilon,
                max_iter=INNER_MAX_ITER,
                tol=inner_tol,
                init=self._pots[k],
            )
            self._pots[k] = (res.alpha, res.beta)
            self._inner_ok[k] = res.converged
            new.append(res.plan)
        diff = self._frob([t1 - t0_ for t1, t0_ in zip(new, plans)])
        return new, diff / max(self._frob(new), 1e-300)

    # ---------------------------------------------------------------------------- run
    def run(self) -> tuple[Iterator[BlockResult], float]:
        """Solve the problem.

        Returns the per-block results (converted lazily, batch by batch) and the total
        (weighted) loss of the coupling.
        """
        plans = self.initial_plans()
        t0 = time.perf_counter()
        converged = False
        n_outer = 0
        rel_change = 1.0
        loss_prev = float(sum(x.sum() for x in self.loss(plans))) if self.exact else 0.0
        for it in range(1, self.max_iter + 1):
            n_outer = it
            if self.exact:
                plans, loss, done = self.frank_wolfe_step(plans, loss_prev)
                if done:
                    converged = True
                    break
                loss_prev = loss
            else:
                plans, rel_change = self.entropic_step(plans, rel_change)
                if rel_change <= self.tol:
                    converged = True
                    break
        losses = self.loss(plans)
        seconds = time.perf_counter() - t0
        total_cost = float(sum(x.sum() for x in losses))
        return self._results(plans, losses, converged, n_outer, seconds), total_cost

    def _results(
        self,
        plans: list[torch.Tensor],
        losses: list[np.ndarray],
        converged: bool,
        n_outer: int,
        seconds: float,
    ) -> Iterator[BlockResult]:
        total = sum(float((g.batch.n * g.batch.m).sum()) for g in self.parts)
        for k, g in enumerate(self.parts):
            bt = g.batch
            w = bt.w.double().cpu().numpy()
            yield from batch_results(
                self.blocks,
                bt,
                bt.unpad(plans[k].to(self.out_dtype)),
                seconds * float((bt.n * bt.m).sum()) / total,
                cost=losses[k] / w,
                converged=np.full(bt.size, converged) & self._inner_ok[k],
                n_iter=np.full(bt.size, n_outer),
                marginal_error=bt.marginal_error(plans[k]),
                mass=masses(plans[k]),
            )
