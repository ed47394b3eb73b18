r"""Truth-free scores of labeled couplings: agreement between independent replicates.

A user's two experiments have no true pairs, so a coupling cannot be scored against the truth.
What can be measured is whether two couplings computed from *independent* representations of
the same cells (two models trained on disjoint halves of the cells, or with different seeds)
agree on which cells match within each label more than chance. If the within-label arrangement
of the cells carried no information shared by the modalities, each replicate's arrangement
would be arbitrary and the agreement would be that of two unrelated couplings: exactly what a
random permutation of the target cells within each label gives.

Everything here works on per-label blocks: for label :math:`l`, a unit-mass block
:math:`t_l \in \mathbb{R}_{\ge 0}^{n_l \times m_l}` (rows: source cells, columns: target cells;
row sums :math:`1/n_l`) and its weight :math:`w_l` in the whole coupling.

**Agreement ratio** of a coupling :math:`t` with a reference :math:`r`:

.. math::

    \rho(t, r) = \frac{\sum_l w_l\, n_l \langle t_l, r_l\rangle}
                      {\sum_l w_l\, n_l \langle u_l, r_l\rangle},
    \qquad u_l = \frac{1}{n_l m_l}\mathbf{1}\mathbf{1}^\top,

the mass :math:`t` puts on the partners the reference gives each cell (each reference row
read as a distribution over partners), relative to what the uniform-within-label coupling
puts there. With a permutation as the reference this is the trace ratio against that
"truth"; labels alone score 1.

**Permutation null.** Permuting the target cells of every block of :math:`r` at random,
independently per label, makes the two couplings unrelated within labels. With
:math:`C_l = t_l^\top r_l`, the statistic under a permutation :math:`\pi_l` is
:math:`\sum_j (C_l)_{j \pi_l(j)}`, so each of ``n_permutations`` draws costs :math:`O(m_l)`
per label after one :math:`O(n_l m_l^2)` product.

**Cross-fitted imputation error** of a coupling :math:`t` against a reference :math:`r`:
each source cell's barycentric projection :math:`\hat x_i = n_l (t_l X_l)_i` is compared with
the target profiles of the partners the reference gives it,

.. math::

    e(t, r) = \frac{1}{n}\sum_l \sum_{i} \sum_j n_l (r_l)_{ij} \lVert \hat x_i - x_j \rVert^2,

and reported as the gain over the uniform coupling, :math:`1 - e(t, r) / e(u, r)` (0: as
good as the labels-only imputation; positive: better). When the reference carries no
information beyond the labels its rows are random within a label and the label mean (the
uniform coupling) minimises the expected error; when it does, a coupling that moves each
cell towards its partners' profiles wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "AgreementTest",
    "ImputationGain",
    "agreement_ratio",
    "agreement_test",
    "imputation_gain",
]


def _check_blocks(
    plans: Sequence[np.ndarray], reference: Sequence[np.ndarray], weights: Sequence[float]
) -> None:
    if not (len(plans) == len(reference) == len(weights)):
        raise ValueError(
            f"`plans` ({len(plans)}), `reference` ({len(reference)}) and `weights` "
            f"({len(weights)}) must hold one entry per label block."
        )
    for k, (t, r) in enumerate(zip(plans, reference)):
        if np.shape(t) != np.shape(r) or np.ndim(t) != 2:
            raise ValueError(
                f"block {k}: the plan {np.shape(t)} and the reference {np.shape(r)} must be "
                "2-D arrays of the same shape (source x target cells of one label)."
            )


def _unit(t: np.ndarray) -> np.ndarray:
    """The block scaled to unit mass (an empty or zero block stays zero)."""
    t = np.asarray(t, dtype=np.float64)
    s = t.sum()
    return t / s if s > 0 else t


def agreement_ratio(
    plans: Sequence[np.ndarray], reference: Sequence[np.ndarray], weights: Sequence[float]
) -> float:
    """Mass a coupling puts on a reference's partners, relative to the uniform coupling.

    Parameters
    ----------
    plans
        Per-label blocks of the coupling (source x target cells; any positive scale).
    reference
        Per-label blocks of the reference coupling, same shapes.
    weights
        Weight of each label block (e.g. its share of the source cells).

    Returns
    -------
    The agreement ratio (1: no more agreement than the labels give; NaN without blocks).
    """
    _check_blocks(plans, reference, weights)
    num = den = 0.0
    for t, r, w in zip(plans, reference, weights):
        n, m = np.shape(t)
        if n == 0 or m == 0:
            continue
        num += w * n * float((_unit(t) * _unit(r)).sum())
        den += w * n / (n * m)
    return num / den if den > 0 else float("nan")


class AgreementTest(NamedTuple):
    r"""Agreement of two couplings against the within-label permutation null.

    Attributes
    ----------
    ratio
        Observed agreement ratio (:func:`agreement_ratio`).
    null_mean
        Mean agreement ratio of the permutations (about 1).
    null_sd
        Its standard deviation.
    z
        ``(ratio - null_mean) / null_sd``.
    p_value
        One-sided permutation p-value, ``(1 + #{null >= observed}) / (1 + n_permutations)``.
    n_permutations
        Permutations drawn.
    correlation
        Correlation of the two couplings' departures from the uniform coupling,
        :math:`\langle t - u, r - u\rangle / (\lVert t - u\rVert \lVert r - u\rVert)`
        summed over blocks with the weights of the ratio: a scale-free effect size, 0 for
        unrelated couplings and 1 for identical ones, comparable across epsilon and label
        sizes.
    """

    ratio: float
    null_mean: float
    null_sd: float
    z: float
    p_value: float
    n_permutations: int
    correlation: float


def agreement_test(
    plans: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    weights: Sequence[float],
    *,
    n_permutations: int = 1000,
    seed: int = 0,
) -> AgreementTest:
    """Test whether two couplings agree within labels more than unrelated couplings do.

    The null distribution permutes the target cells of each reference block independently
    (see the module notes); the statistic is the agreement ratio.

    Parameters
    ----------
    plans, reference
        Per-label blocks of the two couplings (from independent representations).
    weights
        Weight of each label block.
    n_permutations
        Number of permutations.
    seed
        Seed of the permutations.

    Returns
    -------
    :class:`AgreementTest`.
    """
    _check_blocks(plans, reference, weights)
    if int(n_permutations) < 1:
        raise ValueError(f"`n_permutations` must be >= 1, got {n_permutations!r}.")
    rng = np.random.default_rng(seed)
    observed = 0.0
    den = 0.0
    self_t = self_r = 0.0
    null = np.zeros(int(n_permutations))
    for t, r, w in zip(plans, reference, weights):
        n, m = np.shape(t)
        if n == 0 or m == 0:
            continue
        scale = w * n
        tu, ru = _unit(t), _unit(r)
        c = tu.T @ ru  # (m, m): c[j, k] = sum_i t_ij r_ik
        observed += scale * float(np.trace(c))
        den += w * n / (n * m)
        self_t += scale * (float((tu * tu).sum()) - 1.0 / (n * m))
        self_r += scale * (float((ru * ru).sum()) - 1.0 / (n * m))
        if m > 1:
            perms = np.argsort(rng.random((len(null), m)), axis=1)
            null += scale * c[np.arange(m)[None, :], perms].sum(axis=1)
        else:
            null += scale * float(c[0, 0])
    if den == 0:
        nan = float("nan")
        return AgreementTest(nan, nan, nan, nan, nan, int(n_permutations), nan)
    norm = np.sqrt(max(self_t, 0.0) * max(self_r, 0.0))
    corr = (observed - den) / norm if norm > 0 else 0.0
    ratio, null = observed / den, null / den
    sd = float(null.std())
    z = (ratio - float(null.mean())) / sd if sd > 0 else 0.0
    p = (1.0 + float((null >= ratio - 1e-12 * abs(ratio)).sum())) / (1.0 + len(null))
    return AgreementTest(
        float(ratio), float(null.mean()), sd, float(z), p, int(n_permutations), float(corr)
    )


class ImputationGain(NamedTuple):
    """Cross-fitted imputation gain over the uniform coupling, with its uncertainty.

    Attributes
    ----------
    gain
        ``1 - e(plan, r) / e(uniform, r)`` (see the module notes).
    se
        Jackknife standard error over label blocks (NaN with fewer than two blocks).
    z
        ``gain / se``.
    """

    gain: float
    se: float
    z: float


def _block_errors(t: np.ndarray, r: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Summed squared error of the plan's and of the uniform imputation, one block."""
    rows_r = r.sum(1, keepdims=True)
    keep = rows_r.ravel() > 0
    if not keep.any():
        return 0.0, 0.0
    p_ref = r[keep] / rows_r[keep]  # each kept source cell's partner distribution
    second = p_ref @ (x * x).sum(1)  # E_ref |x_j|^2
    mean_ref = p_ref @ x  # E_ref x_j
    plan = t[keep]
    rows = plan.sum(1, keepdims=True)
    xhat = (plan / np.where(rows > 0, rows, 1.0)) @ x
    xhat = np.where(rows > 0, xhat, x.mean(0))
    xbar = x.mean(0)
    e_plan = float(((xhat * xhat).sum(1) - 2 * (xhat * mean_ref).sum(1) + second).sum())
    e_unif = float((xbar @ xbar) * len(second) - 2 * (mean_ref @ xbar).sum() + second.sum())
    return e_plan, e_unif


def imputation_gain(
    plans: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
) -> ImputationGain:
    """Cross-fitted imputation error of a coupling, as a gain over the uniform coupling.

    Parameters
    ----------
    plans
        Per-label blocks of the coupling (source x target cells).
    reference
        Per-label blocks of the reference coupling from an independent representation.
    targets
        Per-label target profiles, ``(m_l, n_features)`` (e.g. standardised features).

    Returns
    -------
    :class:`ImputationGain`: 0 for the uniform coupling, positive when the coupling imputes
    the reference's partners better than the label means; its jackknife standard error over
    labels.
    """
    if not (len(plans) == len(reference) == len(targets)):
        raise ValueError("`plans`, `reference` and `targets` need one entry per label block.")
    errs = []
    for k, (t, r, x) in enumerate(zip(plans, reference, targets)):
        t, r = np.asarray(t, dtype=np.float64), np.asarray(r, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        if t.shape != r.shape:
            raise ValueError(f"block {k}: plan {t.shape} and reference {r.shape} differ.")
        if t.size == 0:
            continue
        if x.ndim != 2 or x.shape[0] != t.shape[1]:
            raise ValueError(
                f"block {k}: the targets have {x.shape[0]} cells but the plan {t.shape[1]} columns."
            )
        errs.append(_block_errors(t, r, x))
    if not errs:
        nan = float("nan")
        return ImputationGain(nan, nan, nan)
    e = np.asarray(errs)
    total = e.sum(0)
    if total[1] <= 0:
        nan = float("nan")
        return ImputationGain(nan, nan, nan)
    gain = 1.0 - total[0] / total[1]
    se = float("nan")
    if len(e) > 1:
        rest = total[None, :] - e
        loo = 1.0 - rest[:, 0] / np.where(rest[:, 1] > 0, rest[:, 1], np.nan)
        loo = loo[np.isfinite(loo)]
        if len(loo) > 1:
            se = float(np.sqrt((len(loo) - 1) / len(loo) * ((loo - loo.mean()) ** 2).sum()))
    z = gain / se if se and np.isfinite(se) and se > 0 else float("nan")
    return ImputationGain(float(gain), se, float(z))
