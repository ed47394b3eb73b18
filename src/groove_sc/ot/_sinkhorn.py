"""Batched, stabilised Sinkhorn in torch: ``B`` entropic OT problems solved at once.

Many problems are padded into one ``(B, n, m)`` tensor (padding carries zero mass, which is
exact); the iterations run in the kernel domain with log-domain absorption (Schmitzer 2019), so
float32 with a tiny ``epsilon`` neither underflows into an all-zero plan nor silently returns
one, and the tensors live on the cost's device (CPU or CUDA). ``ot.solve_batch`` (POT 0.9.7)
was considered: it has no unbalanced marginals, no warm start and no per-problem convergence
flag, all of which are needed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SinkhornResult", "sinkhorn_batched"]

#: Absorb the Sinkhorn scalings into the log-potentials when |log u| or |log v| exceeds this.
_ABSORB_LOG = 20.0
#: On CPU, problems with at least this many entries use one gemv each instead of a bmm.
_GEMV_MIN_ENTRIES = 2**10
#: Epsilon scaling: a Sinkhorn solve with a smaller epsilon starts at this one and halves it,
#: spending at most ``_LEVEL_ITER`` iterations per intermediate level.
_EPS_START = 0.05
_LEVEL_ITER = 100
#: ... and is used when the costs' standard deviation exceeds this multiple of epsilon.
_SCALING_RATIO = 8.0


def _ratio(m: torch.Tensor, s: torch.Tensor, f: float, valid: torch.Tensor) -> torch.Tensor:
    q = m / s
    if f != 1.0:
        q = q.pow(f)
    return torch.where(valid, q, torch.zeros((), dtype=q.dtype, device=q.device))


def _lse_step(
    cs: torch.Tensor,
    other: torch.Tensor,
    logm: torch.Tensor,
    f: float,
    valid: torch.Tensor,
    dim: int,
) -> torch.Tensor:
    """Exact log-domain half step ``f * (log m - LSE(other - C/eps))`` along ``dim``."""
    t = other[:, None, :] - cs if dim == 2 else other[:, :, None] - cs
    out = f * (logm - torch.logsumexp(t, dim=dim))
    del t
    return torch.where(valid, out, torch.full((), -math.inf, dtype=out.dtype, device=out.device))


def _kernel(k: torch.Tensor, cs: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> None:
    torch.add(alpha[:, :, None], beta[:, None, :], out=k)
    k.sub_(cs).exp_()


def _matvec(k: torch.Tensor, x: torch.Tensor, transpose: bool) -> torch.Tensor:
    # on CPU one gemv per large problem is several times faster than bmm with a vector;
    # many small problems go through one bmm (a Python loop would dominate)
    if k.device.type == "cpu" and k.shape[1] * k.shape[2] >= _GEMV_MIN_ENTRIES:
        if transpose:
            return torch.stack([torch.mv(k[i].T, x[i]) for i in range(k.shape[0])])
        return torch.stack([torch.mv(k[i], x[i]) for i in range(k.shape[0])])
    if transpose:
        return torch.bmm(x[:, None, :], k)[:, 0, :]
    return torch.bmm(k, x[:, :, None])[:, :, 0]


@dataclass
class SinkhornResult:
    """Plans, log-potentials and per-problem convergence of :func:`sinkhorn_batched`."""

    plan: torch.Tensor  # (B, n, m), unit mass per problem (balanced)
    alpha: torch.Tensor  # log-potentials (cost/eps units), -inf at padding
    beta: torch.Tensor
    n_iter: np.ndarray
    converged: np.ndarray
    error: np.ndarray


def _cost_spread(cost: torch.Tensor, rv: torch.Tensor, cv: torch.Tensor) -> float:
    """Largest standard deviation of the valid costs over (up to 32 of) the problems."""
    ns, ms = rv.sum(1).tolist(), cv.sum(1).tolist()
    picks = np.unique(np.linspace(0, cost.shape[0] - 1, min(cost.shape[0], 32)).astype(int))
    spread = 0.0
    for i in picks:
        view = cost[i, : min(int(ns[i]), 1024), : int(ms[i])]
        if view.numel() > 1:
            spread = max(spread, float(view.std()))
    return spread


def sinkhorn_batched(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    eps: float,
    *,
    fa: float = 1.0,
    fb: float = 1.0,
    max_iter: int = 1000,
    tol: float = 1e-5,
    check_every: int = 10,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> SinkhornResult:
    r"""Solve ``B`` entropic OT problems at once.

    ``cost`` (B, n, m) is overwritten; padded rows/columns carry zero mass in ``a``/``b`` and
    any finite cost. Iterations run on the stabilised kernel
    :math:`K = \exp(\alpha_i + \beta_j - C_{ij}/\varepsilon)` with scalings ``u, v``; whenever
    ``|log u|`` or ``|log v|`` exceeds ``_ABSORB_LOG`` (or a kernel row underflows) the scalings
    are absorbed into the log-potentials by an exact log-domain step, so the plan never
    underflows to zero even in float32 with a tiny ``eps``. ``fa``/``fb`` < 1 give the KL
    unbalanced updates (``reg_m / (reg_m + eps)``), 0 a free marginal.

    Without ``init`` and when ``eps`` is small against the spread (standard deviation) of the
    costs (``spread > _SCALING_RATIO * eps``, or ``eps < _EPS_START``), epsilon scaling: the
    problem is first solved loosely at that spread and halved epsilons (at most
    ``_LEVEL_ITER`` iterations each, potentials carried over), then at ``eps``; ``n_iter``
    counts all iterations.
    """
    bsz = cost.shape[0]
    rv, cv = a > 0, b > 0
    loga, logb = a.log(), b.log()
    ninf = torch.full((), -math.inf, dtype=cost.dtype, device=cost.device)
    zero = torch.zeros((), dtype=cost.dtype, device=cost.device)
    balanced = fa == 1.0 and fb == 1.0
    levels = [eps]
    if init is None and fa == 1.0 and fb in (0.0, 1.0):
        # epsilon scaling from the spread of the costs (or _EPS_START for tiny eps)
        spread = _cost_spread(cost, rv, cv)
        start = max(spread, _EPS_START)
        if eps < _EPS_START or spread > _SCALING_RATIO * eps:
            levels = [start * 0.5**k for k in range(64) if start * 0.5**k > eps] + [eps]
    cs = cost.div_(levels[0])
    if init is None:
        beta = torch.where(cv, torch.zeros_like(b), ninf)
    else:
        beta = init[1]
    alpha = _lse_step(cs, beta, loga, fa, rv, 2)
    beta = _lse_step(cs, alpha, logb, fb, cv, 1)
    k = torch.empty_like(cs)
    _kernel(k, cs, alpha, beta)
    u, v = rv.to(cost.dtype), cv.to(cost.dtype)
    err = np.full(bsz, np.inf)
    n_iter = np.full(bsz, max_iter, dtype=np.int64)
    done = np.zeros(bsz, dtype=bool)

    def _rescue(v_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # exact log-domain iteration from the last finite state, then a fresh kernel
        nonlocal alpha, beta
        bt = torch.where(cv, beta + v_.log(), ninf)
        alpha = _lse_step(cs, bt, loga, fa, rv, 2)
        beta = _lse_step(cs, alpha, logb, fb, cv, 1)
        _kernel(k, cs, alpha, beta)
        return rv.to(cost.dtype), cv.to(cost.dtype)

    def _check(it: int, kv: torch.Tensor, u_new: torch.Tensor | None) -> np.ndarray:
        if balanced:
            e = torch.where(rv, (u * kv - a).abs() / torch.where(rv, a, 1.0), zero).amax(1)
        else:
            ratio = torch.where(rv, u_new / torch.where(rv, u, 1.0), 1.0)
            e = torch.where(rv, ratio.log().abs(), zero).amax(1)
        out = e.double().cpu().numpy()
        return np.where(np.isfinite(out), out, np.inf)

    total = 0
    for lvl, e_lvl in enumerate(levels):
        final = lvl == len(levels) - 1
        if lvl:
            # carry the potentials (cost units) over to the next epsilon
            r = levels[lvl - 1] / e_lvl
            beta = torch.where(cv, (beta + v.log()) * r, ninf)
            cs.mul_(r)
            u, v = _rescue(torch.ones_like(v))  # exact log step: no row or column underflows
        # intermediate levels use at most half of max_iter in total
        share = max(1, max_iter // (2 * len(levels)))
        budget = max_iter - total if final else min(_LEVEL_ITER, share)
        level_tol = tol if final else max(tol, 1e-2)
        for it in range(budget):
            kv = _matvec(k, v, transpose=False)
            u_new = _ratio(a, kv, fa, rv)
            check = it % check_every == 0 and (balanced or it > 0)
            if check:
                err = _check(it, kv, u_new)
                if final:
                    newly = (err <= tol) & ~done
                    n_iter[newly] = total + it
                    done |= newly
                    if done.all():
                        break
                elif (err <= level_tol).all():
                    break
            if not bool(torch.isfinite(u_new).all()):
                u, v = _rescue(v)
                continue
            u = u_new
            v_new = _ratio(b, _matvec(k, u, transpose=True), fb, cv)
            if not bool(torch.isfinite(v_new).all()):
                u, v = _rescue(v)
                continue
            v = v_new
            lu = torch.where(rv, u.log().abs(), zero).amax()
            lv = torch.where(cv, v.log().abs(), zero).amax()
            if float(torch.maximum(lu, lv)) > _ABSORB_LOG:
                alpha = torch.where(rv, alpha + u.log(), ninf)
                beta = torch.where(cv, beta + v.log(), ninf)
                _kernel(k, cs, alpha, beta)
                u, v = rv.to(cost.dtype), cv.to(cost.dtype)
        total += it + 1 if budget else 0
    alpha = torch.where(rv, alpha + u.log(), ninf)
    beta = torch.where(cv, beta + v.log(), ninf)
    plan = k.mul_(u[:, :, None]).mul_(v[:, None, :])
    if not bool(torch.isfinite(plan).all()):
        raise FloatingPointError(
            "Sinkhorn produced NaN/inf in the coupling; increase `epsilon` or use dtype='float64'."
        )
    rows = plan.sum(2)
    empty = (rows <= 0) & rv
    if bool(empty.any()):
        raise FloatingPointError(
            f"Sinkhorn returned {int(empty.sum())} source cells with zero mass (underflow); "
            "increase `epsilon` or use dtype='float64'."
        )
    if balanced:
        e = torch.where(rv, (rows - a).abs() / torch.where(rv, a, 1.0), zero).amax(1)
        err = e.double().cpu().numpy()
    converged = done | (err <= tol)
    return SinkhornResult(plan, alpha, beta, n_iter, converged, err)
