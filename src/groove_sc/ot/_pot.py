"""POT on CPU: exact OT per block, (F)GW per block, and the exact steps of the batched engines.

* :func:`emd_block`: exact OT of one block (``ot.emd``), unbalanced
  (``ot.unbalanced.mm_unbalanced``) or semi-relaxed with a free target marginal (each source
  cell to its nearest target).
* :func:`gw_block`: one (fused, semi-relaxed, entropic or exact) GW problem with
  ``ot.gromov`` on intra-block distances.
* :func:`emd_batch`: ``ot.emd`` on every problem of a padded batch (the linear steps of exact
  GW/FGW and COOT).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import torch

from ._costs import normalize_cost, pairwise_cost, sqdist
from ._results import BlockResult

__all__ = ["emd_batch", "emd_block", "gw_block"]


def emd_block(
    block: int,
    xs: np.ndarray,
    xt: np.ndarray,
    *,
    metric: str,
    normalize: str | None,
    reg_m: float | None,
    semi_relaxed: bool,
    max_iter: int,
) -> BlockResult:
    """Exact OT between the rows of ``xs`` and ``xt`` with unit uniform masses (float64).

    ``semi_relaxed`` (free target marginal): each source cell goes to its nearest target.
    ``reg_m``: KL-penalised marginals (``ot.unbalanced.mm_unbalanced``). Otherwise ``ot.emd``
    with ``max_iter`` network-simplex iterations.
    """
    import ot

    t0 = time.perf_counter()
    n, m = len(xs), len(xt)
    c = pairwise_cost(xs, xt, metric, normalize)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    n_iter = 0
    if semi_relaxed:
        plan = np.zeros((n, m))
        plan[np.arange(n), c.argmin(1)] = 1.0 / n
        converged = True
    elif reg_m is not None:
        plan, log = ot.unbalanced.mm_unbalanced(
            a, b, c, reg_m, div="kl", numItermax=max_iter, stopThr=1e-15, log=True
        )
        converged = True
    else:
        plan, log = ot.emd(a, b, c, numItermax=max_iter, log=True)
        converged = int(log.get("result_code", 1)) == 1
        if log.get("warning"):
            converged = False
    mass = float(plan.sum())
    merr = max(float(np.abs(plan.sum(1) - a).max() * n), float(np.abs(plan.sum(0) - b).max() * m))
    return BlockResult(
        block=block,
        plan=plan,
        cost=float((plan * c).sum()) / (mass if mass > 0 else 1.0),
        converged=converged,
        n_iter=n_iter,
        marginal_error=merr,
        mass=mass,
        seconds=time.perf_counter() - t0,
    )


def gw_block(
    block: int,
    xs: np.ndarray,
    xt: np.ndarray,
    *,
    fused: bool,
    epsilon: float,
    alpha: float = 0.5,
    metric: str = "sqeuclidean",
    normalize: str | None,
    semi_relaxed: bool,
    max_iter: int,
    tol: float,
) -> BlockResult:
    """One (F)GW problem with POT on CPU, unit uniform masses.

    Entropic solvers stop on the Frobenius change of the plan, given to POT as an absolute
    threshold ``tol / sqrt(n m)`` (about ``tol`` relative to the plan's norm); exact ones on the
    relative change of the loss. POT's inner Sinkhorn warnings are silenced: the marginal error
    of the final plan is checked instead (``converged`` needs it to be at most ``tol``).
    """
    import ot

    t0 = time.perf_counter()
    n, m = len(xs), len(xt)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    c1 = normalize_cost(sqdist(xs), normalize)
    c2 = normalize_cost(sqdist(xt), normalize)
    eps, it = epsilon, max_iter
    tol_abs = tol / math.sqrt(n * m)
    g = ot.gromov
    kw: dict[str, Any] = {"max_iter": it, "log": True}
    if eps > 0:
        kw.update(epsilon=eps, tol=tol_abs)
    else:
        kw.update(tol_rel=tol)
    if fused:
        kw["alpha"] = alpha
        mcost = pairwise_cost(xs, xt, metric, normalize)
        if semi_relaxed:
            fn = (
                g.entropic_semirelaxed_fused_gromov_wasserstein
                if eps > 0
                else (g.semirelaxed_fused_gromov_wasserstein)
            )
            args: tuple[Any, ...] = (mcost, c1, c2, a, "square_loss")
        else:
            fn = g.entropic_fused_gromov_wasserstein if eps > 0 else g.fused_gromov_wasserstein
            args = (mcost, c1, c2, a, b, "square_loss")
    elif semi_relaxed:
        fn = (
            g.entropic_semirelaxed_gromov_wasserstein
            if eps > 0
            else (g.semirelaxed_gromov_wasserstein)
        )
        args = (c1, c2, a, "square_loss")
    else:
        fn = g.entropic_gromov_wasserstein if eps > 0 else g.gromov_wasserstein
        args = (c1, c2, a, b, "square_loss")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        warnings.filterwarnings("ignore", message=".*numerical errors.*")
        plan, log = fn(*args, **kw)
    value = log.get("fgw_dist" if fused else "gw_dist", np.nan)
    plan = np.asarray(plan, dtype=np.float64)
    mass = float(plan.sum())
    if not np.isfinite(plan).all() or mass <= 0:
        raise FloatingPointError(
            "The GW solver returned an empty or non-finite coupling; increase `epsilon`."
        )
    n_iter = len(log.get("err", [])) * 10 if eps > 0 else len(log.get("loss", []))
    merr = float(np.abs(plan.sum(1) - a).max() * n)
    if not semi_relaxed:
        merr = max(merr, float(np.abs(plan.sum(0) - b).max() * m))
    converged = n_iter < it and (eps == 0 or merr <= max(tol, 1e-9))
    return BlockResult(
        block=block,
        plan=plan,
        cost=float(value),
        converged=bool(converged),
        n_iter=int(n_iter),
        marginal_error=merr,
        mass=mass,
        seconds=time.perf_counter() - t0,
    )


def emd_batch(
    cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, num_iter_max: int = 100_000
) -> torch.Tensor:
    """``ot.emd`` on every problem of a padded batch ``(B, n, m)`` (padding: zero mass)."""
    import ot

    out = torch.zeros_like(cost)
    cn = cost.cpu().numpy()
    an, bn = a.cpu().numpy(), b.cpu().numpy()
    for j in range(cost.shape[0]):
        ra, rb = an[j] > 0, bn[j] > 0
        s = ot.emd(an[j][ra], bn[j][rb], cn[j][np.ix_(ra, rb)], numItermax=num_iter_max)
        out[j, : ra.sum(), : rb.sum()] = torch.from_numpy(s).to(out)
    return out
