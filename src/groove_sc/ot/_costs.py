r"""Costs of the OT problems: cross-space costs, intra-space distances and their scaling.

* :func:`cross_cost` (batched, torch) and :func:`pairwise_cost` (one problem, numpy, for the
  POT solvers) compute the cost between two point sets of one shared space
  (``"sqeuclidean"``, ``"euclidean"`` or ``"cosine"``), centred on the source mean for better
  float32 distances; :func:`normalize_blocks` / :func:`normalize_cost` divide each problem's
  cost by its mean or maximum, so ``epsilon`` is relative to the typical cost of that problem.
* :func:`sqdist` is the squared-distance matrix within one space (POT's GW solvers) and
  :func:`lowrank_sqdist` its exact rank ``d + 2`` factors (the masked GW engine), which never
  form an ``n x n`` matrix.
* :func:`rms_scale` scales a feature matrix to unit root mean square (COOT).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._blocks import Batch, gather

__all__ = [
    "METRICS",
    "NORMALIZE",
    "centred_batch",
    "cross_cost",
    "lowrank_sqdist",
    "normalize_blocks",
    "normalize_cost",
    "pairwise_cost",
    "rms_scale",
    "sqdist",
]

#: Cross-space costs.
METRICS = ("sqeuclidean", "euclidean", "cosine")
#: Per-problem cost normalisations.
NORMALIZE = ("mean", "max", None)


# --------------------------------------------------------------------------------------------
# batched (torch)
# --------------------------------------------------------------------------------------------
def cross_cost(xs: torch.Tensor, xt: torch.Tensor, metric: str) -> torch.Tensor:
    """Batched cost ``(B, n, m)`` between padded point sets ``(B, n, d)`` and ``(B, m, d)``."""
    if metric == "cosine":
        xs = xs / xs.norm(dim=2, keepdim=True).clamp_min(1e-12)
        xt = xt / xt.norm(dim=2, keepdim=True).clamp_min(1e-12)
        c = torch.bmm(xs, xt.transpose(1, 2)).neg_().add_(1.0)
        return c.clamp_min_(0.0)
    # |x|^2 - 2 x.y + |y|^2 without a (B, n, m) temporary for the squared norms
    c = torch.baddbmm((xs * xs).sum(2)[:, :, None], xs, xt.transpose(1, 2), alpha=-2.0)
    c.add_((xt * xt).sum(2)[:, None, :]).clamp_min_(0.0)
    if metric == "euclidean":
        c.sqrt_()
    return c


def normalize_blocks(c: torch.Tensor, batch: Batch, mode: str | None) -> np.ndarray:
    """Divide each block's cost by the mean/max of its valid entries (in place).

    Returns the scales (1 where nothing was divided).
    """
    scales = np.ones(batch.size)
    if mode is None:
        return scales
    for k in range(batch.size):
        view = c[k, : batch.n[k], : batch.m[k]]
        s = float(view.mean() if mode == "mean" else view.max())
        if s > 0 and math.isfinite(s):
            c[k].div_(s)
            scales[k] = s
    return scales


def centred_batch(
    xs: torch.Tensor, xt: torch.Tensor, batch: Batch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather a batch's points, centred on the source mean (better float32 distances)."""
    ms, mt = batch.a > 0, batch.b > 0
    ps = gather(xs, batch.src, ms)
    pt = gather(xt, batch.tgt, mt)
    mu = ps.sum(1, keepdim=True) / torch.from_numpy(batch.n).to(ps)[:, None, None]
    return (ps - mu) * ms[:, :, None].to(ps), (pt - mu) * mt[:, :, None].to(pt)


# --------------------------------------------------------------------------------------------
# one problem (numpy, for POT)
# --------------------------------------------------------------------------------------------
def normalize_cost(c: np.ndarray, normalize: str | None) -> np.ndarray:
    """``c`` divided by its mean or maximum (``None``: unchanged)."""
    if normalize is None or c.size == 0:
        return c
    s = float(c.mean() if normalize == "mean" else c.max())
    return c / s if s > 0 else c


def pairwise_cost(x: np.ndarray, y: np.ndarray, metric: str, normalize: str | None) -> np.ndarray:
    """Normalised cost matrix between the rows of ``x`` and ``y`` (one shared space)."""
    import ot

    if metric == "cosine":
        c = ot.dist(x, y, metric="cosine")
    else:
        mu = x.mean(0)
        c = ot.dist(x - mu, y - mu, metric="sqeuclidean")
        np.maximum(c, 0, out=c)
        if metric == "euclidean":
            np.sqrt(c, out=c)
    return normalize_cost(c, normalize)


def sqdist(x: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``x`` (centred; not normalised)."""
    import ot

    x = x - x.mean(0)
    c = ot.dist(x, x, metric="sqeuclidean")
    np.maximum(c, 0, out=c)
    return c


def lowrank_sqdist(
    x: np.ndarray, p: np.ndarray, normalize: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    r"""Exact factors of the normalised squared-distance matrix ``C = A B^T / s``.

    With :math:`r_i = \|x_i\|^2`, :math:`D = r 1^T + 1 r^T - 2 X X^T = A B^T` for
    ``A = [r, 1, -2X]`` and ``B = [1, r, X]``. Also returns ``c = (D * D) p / s^2`` in closed
    form (``O(n d^2)``) and the scale ``s`` (mean of ``D`` over all pairs, or its max computed
    in chunks).
    """
    x = x - x.mean(0)
    r = (x * x).sum(1)
    n = len(x)
    pw = p.sum()
    er, er2 = p @ r, p @ (r * r)
    ex, erx = p @ x, (p * r) @ x
    exx = (x * p[:, None]).T @ x
    c = (
        pw * r * r
        + 2.0 * r * er
        + er2
        - 4.0 * r * (x @ ex)
        - 4.0 * (x @ erx)
        + 4.0 * np.einsum("id,de,ie->i", x, exx, x)
    )
    c = np.maximum(c, 0.0)
    if normalize == "rms":
        s = math.sqrt(float(p @ c) / pw) if pw > 0 else 1.0
    elif normalize == "mean":
        s = 2.0 * float(r.mean() - (x.mean(0) ** 2).sum())
    elif normalize == "max":
        s = 0.0
        step = max(1, 2**22 // max(n, 1))
        for start in range(0, n, step):
            d = r[start : start + step, None] + r[None, :] - 2.0 * x[start : start + step] @ x.T
            s = max(s, float(d.max()))
    else:
        s = 1.0
    if not s > 0:
        s = 1.0
    ones = np.ones(n)
    fa = np.column_stack([r, ones, -2.0 * x]) / s
    fb = np.column_stack([ones, r, x])
    return fa, fb, c / s**2, s


def rms_scale(x: np.ndarray) -> np.ndarray:
    """``x`` divided by its root mean square (COOT's feature scaling)."""
    s = math.sqrt(float((x * x).mean())) if x.size else 1.0
    return x / s if s > 0 else x
