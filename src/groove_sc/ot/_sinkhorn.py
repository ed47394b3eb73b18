r"""Batched, stabilised Sinkhorn for many label blocks at once (torch, CPU or CUDA).

Many entropic OT problems of one padded batch ``(B, n, m)`` are solved together. Padded rows
and columns carry zero mass, which is exact. The iterations run on the stabilised kernel
:math:`K = \exp(\alpha_i + \beta_j - C_{ij}/\varepsilon)` with scalings ``u, v``:

.. math::

    u \leftarrow (a / K v)^{f_a}, \qquad v \leftarrow (b / K^\top u)^{f_b},

with ``f = 1`` for an exact marginal, ``reg_m / (reg_m + eps)`` for a KL-penalised one
(unbalanced) and ``0`` for a free one (semi-relaxed); with ``f < 1`` the update is taken
relative to the potentials already absorbed into the kernel (``u (a / Kv)^f`` would be the
fixed point of a different problem once ``alpha != 0``). Whenever ``|log u|`` or ``|log v|``
exceeds ``ABSORB_LOG`` the scalings are absorbed into the log-potentials ``alpha, beta`` by
rebuilding the kernel; when a kernel row or column underflows, an exact log-domain step
(``logsumexp``) restarts from the last finite state. So the plan never underflows to zero,
even in float32 with a tiny ``eps``.

The solver is cut into named steps (:class:`BatchedSinkhorn`): ``_schedule`` (epsilon
scaling), ``_start`` / ``_rescue`` (exact log-domain steps and a fresh kernel),
``_iterate`` (one pair of scaling updates), ``_errors`` (the marginal errors), ``_absorb``,
``_retire`` (problems that reached the tolerance leave the active set, so a slow block does
not keep the others iterating) and ``_finish``. The two kernel products use a row vector
times a contiguous matrix (``K`` and a contiguous ``K^T``), the fastest batched product on
CPU for small blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import logsumexp

#: Absorb the scalings into the log-potentials when |log u| or |log v| exceeds this.
ABSORB_LOG = 20.0
#: Epsilon scaling: a solve with a smaller epsilon starts at this one (or at the spread of the
#: costs) and halves it, spending at most ``LEVEL_ITER`` iterations per intermediate level ...
EPS_START = 0.05
LEVEL_ITER = 100
#: ... and is used when the costs' standard deviation exceeds this multiple of epsilon.
SCALING_RATIO = 8.0
#: Over-relaxation of the balanced updates, ``u <- u^(1 - w) (a / K v)^w`` (Thibault et al.
#: 2017): the same fixed point in fewer iterations (about a third on mean-normalised costs
#: at epsilon 0.05). A problem whose error stops decreasing falls back to ``w = 1``.
RELAXATION = 1.5
#: On CPU, the last few balanced problems of a batch (and batches of a few large blocks) finish
#: in a per-problem numpy loop on the same kernel (a few microseconds per operation instead of
#: the tens of a batched torch call).
NUMPY_TAIL = 8
#: Blocks of at least this many entries check their error every iteration in the numpy tail.
TAIL_CHECK_ENTRIES = 2**15


@dataclass
class SinkhornResult:
    """Result of :func:`sinkhorn_batched`.

    Attributes
    ----------
    plan
        ``(B, n, m)`` couplings (unit mass per balanced problem), zero at padding.
    alpha, beta
        Log-potentials in units of ``cost / eps`` (``-inf`` at padding), for warm starts.
    n_iter
        Iterations of each problem (all epsilon levels).
    converged
        Whether each problem reached ``tol``.
    error
        Final error of each problem (largest relative row-marginal error when balanced, the
        largest change of the log-scalings otherwise).
    row_sums
        ``(B, n)`` row sums of ``plan`` (computed for the final checks anyway).
    """

    plan: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    n_iter: np.ndarray
    converged: np.ndarray
    error: np.ndarray
    row_sums: torch.Tensor | None = None


def _cost_spread(cost: torch.Tensor, rv: torch.Tensor, cv: torch.Tensor) -> float:
    """Largest standard deviation of the valid costs over (up to 32 of) the problems."""
    ns, ms = rv.sum(1).tolist(), cv.sum(1).tolist()
    picks = np.unique(np.linspace(0, cost.shape[0] - 1, min(cost.shape[0], 32)).astype(int))
    spread = 0.0
    for i in picks:
        n, m = int(ns[i]), int(ms[i])
        # a strided sample of at most ~64k entries estimates the spread well enough
        step = max(1, int(math.sqrt(n * m / 65536.0)))
        view = cost[i, :n:step, :m:step]
        if view.numel() > 1:
            spread = max(spread, float(view.std()))
    return spread


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


def _maxplus_start(
    cs: torch.Tensor, loga: torch.Tensor, logb: torch.Tensor, rv: torch.Tensor, cv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Starting log-potentials of a cold balanced solve, without exponentials.

    The first log-domain iteration with each ``LSE`` replaced by a maximum
    (``max <= LSE <= max + log n``), so the kernel is in range: every row and column keeps an
    entry of at least its marginal over the block size.
    """
    ninf = torch.full((), -math.inf, dtype=cs.dtype, device=cs.device)
    full = bool(rv.all()) and bool(cv.all())  # no padding: no masks
    if full:
        alpha = loga + cs.amin(2)
    else:
        big = torch.full((), math.inf, dtype=cs.dtype, device=cs.device)
        alpha = torch.where(rv, loga + torch.where(cv[:, None, :], cs, big).amin(2), ninf)
    beta = logb - _max_over_rows(alpha, cs)
    return alpha, beta if full else torch.where(cv, beta, ninf)


def _max_over_rows(alpha: torch.Tensor, cs: torch.Tensor, rows: int = 256) -> torch.Tensor:
    """``max_i (alpha_i - cs_ij)`` per column, ``rows`` rows at a time (small temporaries)."""
    out = None
    for lo in range(0, cs.shape[1], rows):
        part = (alpha[:, lo : lo + rows, None] - cs[:, lo : lo + rows]).amax(1)
        out = part if out is None else torch.maximum(out, part, out=out)
    return out


class BatchedSinkhorn:
    """Entropic OT of a padded batch of problems, as a small state machine.

    Parameters
    ----------
    eps
        Entropic regularisation (in the units of ``cost``).
    relaxation
        Over-relaxation ``w`` of balanced problems (1: plain Sinkhorn); unbalanced and
        semi-relaxed problems always use 1.
    fa, fb
        Exponents of the source and target scaling updates (1 exact marginal, 0 free).
    max_iter
        Iterations in total (all epsilon levels).
    tol
        Tolerance of the final level (see :class:`SinkhornResult`).
    check_every
        Iterations between two convergence checks.
    """

    def __init__(
        self,
        eps: float,
        *,
        relaxation: float = RELAXATION,
        fa: float = 1.0,
        fb: float = 1.0,
        max_iter: int = 1000,
        tol: float = 1e-5,
        check_every: int = 10,
    ):
        self.eps, self.fa, self.fb = float(eps), float(fa), float(fb)
        self.max_iter, self.tol, self.check_every = int(max_iter), float(tol), int(check_every)
        self.balanced = self.fa == 1.0 and self.fb == 1.0
        if not 0.0 < relaxation < 2.0:
            raise ValueError(f"`relaxation` must be in (0, 2), got {relaxation!r}.")
        self.relaxation = float(relaxation) if self.balanced else 1.0

    # ---------------------------------------------------------------- schedule and start
    def _schedule(self, cost: torch.Tensor, warm: bool) -> list[float]:
        """Epsilon levels: halving from the costs' spread down to ``eps`` (or just ``eps``)."""
        if warm or self.fa != 1.0 or self.fb not in (0.0, 1.0):
            return [self.eps]
        spread = _cost_spread(cost, self.rv, self.cv)
        start = max(spread, EPS_START)
        if self.eps < EPS_START or spread > SCALING_RATIO * self.eps:
            return [start * 0.5**k for k in range(64) if start * 0.5**k > self.eps] + [self.eps]
        return [self.eps]

    def _kernel(self) -> None:
        """``K = exp(alpha_i + beta_j - C_ij / eps)``; its contiguous transpose on first use."""
        torch.add(self.alpha[:, :, None], self.beta[:, None, :], out=self.k)
        self.k.sub_(self.cs).exp_()
        self._kt = None

    @property
    def kt(self) -> torch.Tensor:
        """Contiguous ``K^T`` (built when the batched iterations first need it)."""
        if self._kt is None:
            self._kt = self.k.transpose(1, 2).contiguous()
        return self._kt

    @kt.setter
    def kt(self, value: torch.Tensor | None) -> None:
        self._kt = value

    def _rescue(self, v: torch.Tensor) -> None:
        """Exact log-domain iteration from the last finite state, then a fresh kernel."""
        bt = torch.where(self.cv, self.beta + v.log(), self.ninf)
        self.alpha = _lse_step(self.cs, bt, self.loga, self.fa, self.rv, 2)
        self.beta = _lse_step(self.cs, self.alpha, self.logb, self.fb, self.cv, 1)
        self._kernel()
        self.u, self.v = self.rv.to(self.dtype), self.cv.to(self.dtype)

    # ---------------------------------------------------------------- iterations
    def _kv(self) -> torch.Tensor:
        return torch.bmm(self.v[:, None, :], self.kt)[:, 0, :]

    def _ktu(self, u: torch.Tensor) -> torch.Tensor:
        return torch.bmm(u[:, None, :], self.k)[:, 0, :]

    def _ratio(
        self, m: torch.Tensor, s: torch.Tensor, f: float, valid: torch.Tensor, pot: torch.Tensor
    ) -> torch.Tensor:
        """The scaling update ``(m / s)^f``, relative to the absorbed potential ``pot``.

        The kernel holds ``exp(pot)``, so the total scaling is ``exp(pot) * q`` and the update
        of the total, ``(m / (K_0 v))^f``, is ``q = (m / s)^f * exp(-(1 - f) pot)``; for an exact
        marginal (``f = 1``) the correction vanishes.
        """
        q = m / s
        if f != 1.0:
            q = q.pow(f)
            if f != 0.0:
                q = q * torch.exp(torch.where(valid, -(1.0 - f) * pot, self.zero))
            else:
                q = torch.exp(torch.where(valid, -pot, self.zero))
        elif self.full:
            return q  # no padding to zero
        return torch.where(valid, q, self.zero)

    def _errors(self, kv: torch.Tensor, u_new: torch.Tensor) -> np.ndarray:
        """Largest relative row-marginal error (balanced) or log-scaling change, per problem."""
        rv = self.rv
        if self.balanced:
            e = torch.where(
                rv, (self.u * kv - self.a).abs() / torch.where(rv, self.a, 1.0), self.zero
            )
        else:
            ratio = torch.where(rv, u_new / torch.where(rv, self.u, 1.0), 1.0)
            e = torch.where(rv, ratio.log().abs(), self.zero)
        out = e.amax(1).double().cpu().numpy()
        return np.where(np.isfinite(out), out, np.inf)

    def _absorb(self) -> bool:
        """Move large scalings into the log-potentials (exact; keeps the kernel in range).

        Returns ``False`` when a scaling is not finite (the caller then restarts from the last
        finite state): one check per iteration instead of testing every entry.
        """
        u, v = self.u, self.v
        if not self.full:
            u, v = torch.where(self.rv, u, 1.0), torch.where(self.cv, v, 1.0)
        lo_u, hi_u, lo_v, hi_v = torch.stack([*torch.aminmax(u), *torch.aminmax(v)]).tolist()
        if not all(map(math.isfinite, (lo_u, hi_u, lo_v, hi_v))) or min(lo_u, lo_v) <= 0:
            return False
        largest = max(math.log(hi_u), -math.log(lo_u), math.log(hi_v), -math.log(lo_v))
        if largest > ABSORB_LOG:
            self.alpha = torch.where(self.rv, self.alpha + self.u.log(), self.ninf)
            self.beta = torch.where(self.cv, self.beta + self.v.log(), self.ninf)
            self._kernel()
            self.u, self.v = self.rv.to(self.dtype), self.cv.to(self.dtype)
        return True

    def _relax(self, old: torch.Tensor, new: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``old^(1 - w) new^w`` per problem (``new`` where ``w = 1``), zero at padding."""
        if self.relaxation == 1.0 or bool((self.omega == 1.0).all()):
            return new
        w = self.omega
        # old^(1 - w) new^w as new (old / new)^(1 - w): one power instead of two
        if self.full:
            return new * (old / new).pow(1.0 - w)
        old, new = torch.where(valid, old, 1.0), torch.where(valid, new, 1.0)
        return torch.where(valid, new * (old / new).pow(1.0 - w), self.zero)

    def _guard(self, e: np.ndarray) -> None:
        """Over-relaxed problems whose error stopped decreasing go back to ``w = 1``."""
        if self.relaxation == 1.0:
            return
        worse = ~(e < self.prev_err)
        if worse.any():
            rows = torch.as_tensor(np.flatnonzero(worse), device=self.omega.device)
            self.omega[rows] = 1.0
        self.prev_err = e

    def _iterate(self, kv: torch.Tensor, u_new: torch.Tensor) -> None:
        """Finish one iteration from ``u_new = (a / K v)^fa``: update ``v``, then absorb.

        A non-finite scaling (seen by :meth:`_absorb`) restarts from the last finite ``v`` by
        an exact log-domain step, without over-relaxation from then on.
        """
        last_v = self.v
        self.u = self._relax(self.u, u_new, self.rv)
        v_new = self._ratio(self.b, self._ktu(self.u), self.fb, self.cv, self.beta)
        self.v = self._relax(self.v, v_new, self.cv)
        if not self._absorb():
            self.omega.fill_(1.0)
            self._rescue(last_v)

    # ---------------------------------------------------------------- active set
    _STATE = ("cs", "k", "kt", "u", "v", "alpha", "beta", "a", "b", "loga", "logb", "rv", "cv")
    _STATE += ("omega",)

    def _retire(self, finished: np.ndarray) -> None:
        """Store the plans of the ``finished`` active problems and drop them from the set."""
        rows = torch.as_tensor(np.flatnonzero(finished), device=self.k.device)
        ids = self.active[finished]
        alpha = torch.where(self.rv[rows], self.alpha[rows] + self.u[rows].log(), self.ninf)
        beta = torch.where(self.cv[rows], self.beta[rows] + self.v[rows].log(), self.ninf)
        plan = self.k[rows] * self.u[rows][:, :, None] * self.v[rows][:, None, :]
        idx = torch.as_tensor(ids, device=self.k.device)
        self._plans()[idx] = plan
        self.out_alpha[idx] = alpha
        self.out_beta[idx] = beta
        keep = ~finished
        if keep.all():
            return
        rest = torch.as_tensor(np.flatnonzero(keep), device=self.k.device)
        for name in self._STATE:
            if name == "kt" and self._kt is None:
                continue
            setattr(self, name, getattr(self, name).index_select(0, rest))
        self.active = self.active[keep]
        self.prev_err = self.prev_err[keep]
        if not self.full:
            self.full = bool(self.rv.all()) and bool(self.cv.all())

    def _plans(self) -> torch.Tensor:
        """The output plans ``(B, n, m)``, allocated on first use (zero at padding)."""
        if self.out_plan is None:
            # every entry of a batch without padding is written when its problem retires
            self.out_plan = torch.empty_like(self.cs) if self.full else torch.zeros_like(self.cs)
        return self.out_plan

    # ---------------------------------------------------------------- driver
    def solve(
        self,
        cost: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        init: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> SinkhornResult:
        """Solve the batch; ``cost`` (B, n, m) is overwritten (it holds ``C / eps`` after)."""
        bsz = cost.shape[0]
        self.dtype = cost.dtype
        dev = cost.device
        self.ninf = torch.full((), -math.inf, dtype=cost.dtype, device=dev)
        self.zero = torch.zeros((), dtype=cost.dtype, device=dev)
        self.a, self.b, self._a_full = a, b, a
        self.rv, self.cv = a > 0, b > 0
        self.full = bool(self.rv.all()) and bool(self.cv.all())  # no padded row or column
        self.loga, self.logb = a.log(), b.log()
        levels = self._schedule(cost, init is not None)
        self.cs = cost.div_(levels[0])
        self.beta = (
            torch.where(self.cv, torch.zeros_like(b), self.ninf) if init is None else init[1]
        )
        if init is None and self.balanced:
            self.alpha, self.beta = _maxplus_start(self.cs, self.loga, self.logb, self.rv, self.cv)
        else:
            self.alpha = _lse_step(self.cs, self.beta, self.loga, self.fa, self.rv, 2)
            self.beta = _lse_step(self.cs, self.alpha, self.logb, self.fb, self.cv, 1)
        self.k = torch.empty_like(self.cs)
        self._kernel()
        self.u, self.v = self.rv.to(cost.dtype), self.cv.to(cost.dtype)
        self.active = np.arange(bsz)
        self.omega = torch.full((bsz, 1), self.relaxation, dtype=cost.dtype, device=dev)
        self.prev_err = np.full(bsz, np.inf)
        self.out_plan = None  # allocated when the first problem retires (see _plans)
        self.out_alpha = torch.full_like(a, -math.inf)
        self.out_beta = torch.full_like(b, -math.inf)
        err = np.full(bsz, np.inf)
        n_iter = np.full(bsz, self.max_iter, dtype=np.int64)
        done = np.zeros(bsz, dtype=bool)
        total = 0
        for lvl, e_lvl in enumerate(levels):
            final = lvl == len(levels) - 1
            if lvl:
                # carry the potentials (cost units) over to the next epsilon
                r = levels[lvl - 1] / e_lvl
                self.beta = torch.where(self.cv, (self.beta + self.v.log()) * r, self.ninf)
                self.cs.mul_(r)
                self._rescue(torch.ones_like(self.v))
            share = max(1, self.max_iter // (2 * len(levels)))
            budget = self.max_iter - total if final else min(LEVEL_ITER, share)
            level_tol = self.tol if final else max(self.tol, 1e-2)
            it = -1
            for it in range(budget):
                if final and it % self.check_every == 0 and self._tail_in_numpy():
                    self._numpy_tail(total + it, budget - it, err, n_iter, done)
                    break
                kv = self._kv()
                u_new = self._ratio(self.a, kv, self.fa, self.rv, self.alpha)
                if it % self.check_every == 0 and (self.balanced or it > 0):
                    e = self._errors(kv, u_new)
                    self._guard(e)
                    if final:
                        err[self.active] = e
                        newly = e <= self.tol
                        if newly.any():
                            n_iter[self.active[newly]] = total + it
                            done[self.active[newly]] = True
                            self._retire(newly)
                            if not len(self.active):
                                break
                            kv, u_new = kv[~newly], u_new[~newly]
                        if self._tail_in_numpy():
                            self._numpy_tail(total + it, budget - it, err, n_iter, done)
                            break
                    elif (e <= level_tol).all():
                        self.prev_err = np.full(len(self.active), np.inf)  # a new level
                        break
                self._iterate(kv, u_new)
            total += it + 1 if budget else 0
        if len(self.active):
            self._retire(np.ones(len(self.active), dtype=bool))
        return self._finish(n_iter, done, err)

    # ---------------------------------------------------------------- numpy tail
    def _tail_in_numpy(self) -> bool:
        return self.balanced and self.k.device.type == "cpu" and 0 < len(self.active) <= NUMPY_TAIL

    def _numpy_tail(
        self, start: int, budget: int, err: np.ndarray, n_iter: np.ndarray, done: np.ndarray
    ) -> None:
        """Finish every active (balanced) problem in a numpy loop, then retire it.

        The same iteration as the batched one, in the batch's floating type, on the kernel
        already built (over-relaxed updates, the error check every ``check_every``
        iterations, absorption of large scalings, an exact float64 log-domain step after a
        non-finite update), one problem at a time on its valid block.
        """
        dt = self.k.numpy().dtype
        if self.out_plan is None and len(self.active) == self.k.shape[0]:
            # nothing retired yet: each plan is written over its own kernel (no new buffer)
            self.out_plan = self.k
        out_plan = self._plans()
        for r, j in enumerate(self.active):
            n, m = int(self.rv[r].sum()), int(self.cv[r].sum())
            kern = self.k[r, :n, :m].numpy()
            cs = self.cs[r, :n, :m].numpy()
            alpha = self.alpha[r, :n].double().numpy()
            beta = self.beta[r, :m].double().numpy()
            u, v = self.u[r, :n].numpy(), self.v[r, :m].numpy()
            a, b = self.a[r, :n].numpy(), self.b[r, :m].numpy()
            w = float(self.omega[r])
            # on a large block the error check costs little against the two products, so it
            # runs every iteration (the guard of the over-relaxation keeps its spacing)
            check = 1 if n * m >= TAIL_CHECK_ENTRIES else self.check_every
            prev, e, stop = np.inf, np.inf, budget
            for it in range(budget):
                kv = kern @ v
                if it % check == 0:
                    e = float(np.max(np.abs(u * kv - a) / a))
                    e = e if np.isfinite(e) else np.inf
                    if it % self.check_every == 0:
                        if w != 1.0 and not e < prev:
                            w = 1.0
                        prev = e
                    if e <= self.tol:
                        stop = it
                        break
                with np.errstate(all="ignore"):
                    un = a / kv
                    if w != 1.0:  # u^(1 - w) un^w, with one power
                        un *= (u / un) ** (1.0 - w)
                    vn = b / (un @ kern)
                    if w != 1.0:
                        vn *= (v / vn) ** (1.0 - w)
                if not (np.isfinite(un).all() and np.isfinite(vn).all()):
                    # exact log-domain step (float64) from the last finite state, fresh kernel
                    w = 1.0
                    c64 = cs.astype(np.float64)
                    beta = beta + np.log(v.astype(np.float64))
                    alpha = np.log(a.astype(np.float64)) - logsumexp(beta[None, :] - c64, axis=1)
                    beta = np.log(b.astype(np.float64)) - logsumexp(alpha[:, None] - c64, axis=0)
                    kern = np.exp((alpha[:, None] + beta[None, :] - c64).astype(dt))
                    u, v = np.ones(n, dtype=dt), np.ones(m, dtype=dt)
                    continue
                u, v = un, vn
                if max(np.abs(np.log(u)).max(), np.abs(np.log(v)).max()) > ABSORB_LOG:
                    alpha, beta = alpha + np.log(u), beta + np.log(v)
                    kern = np.exp((alpha[:, None] + beta[None, :]).astype(dt) - cs)
                    u, v = np.ones(n, dtype=dt), np.ones(m, dtype=dt)
            out = out_plan[j, :n, :m].numpy()
            np.multiply(kern, u[:, None], out=out)
            out *= v[None, :]
            self.out_alpha[j, :n] = torch.from_numpy(alpha + np.log(u)).to(self.out_alpha.dtype)
            self.out_beta[j, :m] = torch.from_numpy(beta + np.log(v)).to(self.out_beta.dtype)
            err[j] = e
            if e <= self.tol:
                done[j] = True
                n_iter[j] = start + stop
        keep = torch.zeros(0, dtype=torch.long)
        for name in self._STATE:
            if name == "kt" and self._kt is None:
                continue
            setattr(self, name, getattr(self, name).index_select(0, keep))
        self.active = self.active[:0]
        self.prev_err = self.prev_err[:0]

    def _finish(self, n_iter: np.ndarray, done: np.ndarray, err: np.ndarray) -> SinkhornResult:
        plan = self._plans()
        rows = plan.sum(2)
        # the entries are non-negative, so the row sums are finite iff every entry is
        if not bool(torch.isfinite(rows).all()):
            raise FloatingPointError(
                "Sinkhorn produced NaN/inf in the coupling; increase `epsilon` or use "
                "dtype='float64'."
            )
        a_full = self._a_full
        valid = a_full > 0
        empty = (rows <= 0) & valid
        if bool(empty.any()):
            raise FloatingPointError(
                f"Sinkhorn returned {int(empty.sum())} source cells with zero mass (underflow); "
                "increase `epsilon` or use dtype='float64'."
            )
        if self.balanced:
            e = torch.where(
                valid, (rows - a_full).abs() / torch.where(valid, a_full, 1.0), self.zero
            )
            err = e.amax(1).double().cpu().numpy()
        converged = done | (err <= self.tol)
        return SinkhornResult(
            plan, self.out_alpha, self.out_beta, n_iter, converged, err, row_sums=rows
        )


def sinkhorn_batched(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    eps: float,
    *,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    fa: float = 1.0,
    fb: float = 1.0,
    max_iter: int = 1000,
    tol: float = 1e-5,
    check_every: int = 10,
) -> SinkhornResult:
    r"""Solve ``B`` entropic OT problems at once (see :class:`BatchedSinkhorn`).

    ``cost`` (B, n, m) is overwritten; padded rows/columns carry zero mass in ``a``/``b``
    and any finite cost. Without ``init`` and when ``eps`` is small against the spread of the
    costs, epsilon scaling: the problem is first solved loosely at that spread and halved
    epsilons (at most ``LEVEL_ITER`` iterations each, potentials carried over), then at
    ``eps``; ``n_iter`` counts all iterations. A problem leaves the active set as soon as it
    reaches ``tol``.
    """
    solver = BatchedSinkhorn(eps, fa=fa, fb=fb, max_iter=max_iter, tol=tol, check_every=check_every)
    return solver.solve(cost, a, b, init)
