"""Choosing a coupling without ground truth: replicate agreement, the verdict, the candidates.

:func:`within_label_signal` answers, on a user's own two experiments, whether a per-cell
matching carries information beyond the labels; :func:`select_coupling` scores candidate
aligners (method and epsilon) by the same truth-free criterion for an objective, and
``groove_sc.tl.align(method="auto")`` uses it. Both need two *replicate* representations of
every cell, from fits that share no training cells (``GROOVE.train_replicates`` and
:func:`groove_sc.tl.replicate_latents` make them); the scores themselves are the array-level
functions of :mod:`groove_sc.tl._agreement`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from ..data._mudata import recorded_label_key
from ..ot import LabelBlock, make_solver, solver_class, subsample_blocks, torch_threads
from ..ot import label_blocks as _shared_label_blocks
from ._agreement import AgreementTest, agreement_ratio, agreement_test, imputation_gain
from ._cells import check_source_target, obs_labels

__all__ = [
    "DEFAULT_CANDIDATES",
    "MIN_RELIABILITY",
    "Selection",
    "WithinLabelSignal",
    "select_coupling",
    "signal_verdict",
    "within_label_signal",
]

#: The aligners ``method="auto"`` chooses among (``tl.align`` keyword arguments): labels only,
#: entropic OT from smooth to sharp, and exact OT.
DEFAULT_CANDIDATES: tuple[dict[str, Any], ...] = (
    {"method": "uniform"},
    {"method": "sinkhorn", "epsilon": 1.0},
    {"method": "sinkhorn", "epsilon": 0.3},
    {"method": "sinkhorn", "epsilon": 0.1},
    {"method": "sinkhorn", "epsilon": 0.03},
    {"method": "sinkhorn", "epsilon": 0.01},
    {"method": "emd"},
)
#: The coupling whose replicate agreement decides the verdict (smooth: epsilon = the mean
#: cost), and the coupling that gives the reference partners of the scores.
SIGNAL_COUPLING: dict[str, Any] = {"method": "sinkhorn", "epsilon": 1.0}
REFERENCE_COUPLING: dict[str, Any] = {"method": "emd"}
#: Cells per label and modality used by the criterion (a seeded subsample of larger labels).
MAX_CELLS_PER_LABEL = 200
#: Significance level of the verdict.
SIGNAL_ALPHA = 0.01
#: Smallest reliability (correlation of the replicates' departures from the uniform coupling)
#: of a signal: below 0.5 the replicate-specific part of the within-label structure exceeds
#: the reproducible part ("poor" reliability in the usual reading of test-retest
#: correlations).
MIN_RELIABILITY = 0.5


def signal_verdict(
    p_value: float,
    reliability: float,
    *,
    alpha: float = SIGNAL_ALPHA,
    min_reliability: float = MIN_RELIABILITY,
) -> bool:
    """The verdict rule: significant (``p < alpha``) and reliable (``>= min_reliability``)."""
    return bool(
        np.isfinite(p_value)
        and np.isfinite(reliability)
        and p_value < alpha
        and reliability >= min_reliability
    )


#: Key of ``mdata.uns`` listing replicate representations (written by ``replicate_latents``).
REPLICATES_KEY = "groove_replicates"


@dataclass
class WithinLabelSignal:
    """Whether per-cell matching carries information beyond the labels (truth-free).

    Attributes
    ----------
    within_label_signal
        The verdict: ``True`` when the replicates' couplings agree within labels significantly
        more than unrelated couplings (``p_value < alpha``) *and* reliably
        (``reliability >= min_reliability``).
    agreement_ratio
        Agreement ratio of the two replicates' couplings (1: what labels alone give).
    reliability
        Correlation of the two replicates' departures from the uniform coupling, in
        ``[-1, 1]``: the share of each replicate's within-label structure that the other
        reproduces (0: unrelated, 1: identical).
    p_value, z
        Against the within-label permutation null.
    alpha, min_reliability
        Thresholds of the verdict.
    coupling
        The aligner whose agreement was tested.
    n_labels, n_source, n_target
        Labels and cells scored.
    """

    within_label_signal: bool
    agreement_ratio: float
    reliability: float
    p_value: float
    z: float
    alpha: float
    min_reliability: float
    coupling: dict[str, Any]
    n_labels: int
    n_source: int
    n_target: int

    def to_dict(self) -> dict[str, Any]:
        """h5mu-writable summary."""
        out = dict(self.__dict__)
        out["coupling"] = {k: v for k, v in self.coupling.items() if v is not None}
        return out


@dataclass
class Selection:
    """A truth-free choice among candidate couplings.

    Attributes
    ----------
    objective
        ``"matching"`` or ``"imputation"``.
    choice
        The chosen candidate (``tl.align`` keyword arguments).
    scores
        One row per candidate: ``candidate``, ``method``, ``epsilon``, ``agreement_ratio``
        (matching score), ``imputation_gain`` (imputation score), ``score`` (of the
        objective), ``chosen``.
    signal
        The verdict (:class:`WithinLabelSignal`).
    reason
        Why this candidate was chosen.
    """

    objective: str
    choice: dict[str, Any]
    scores: pd.DataFrame
    signal: WithinLabelSignal
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """h5mu-writable summary (for ``mdata.uns[key]["selection"]``)."""
        return {
            "objective": self.objective,
            "choice": {k: v for k, v in self.choice.items() if v is not None},
            "within_label_signal": bool(self.signal.within_label_signal),
            "signal": self.signal.to_dict(),
            "reason": self.reason,
            "candidates": {
                col: self.scores[col].to_numpy(
                    dtype=object if self.scores[col].dtype == object else None
                )
                for col in self.scores.columns
            },
        }


# --------------------------------------------------------------------------------------------
# array level: blocks, plans
# --------------------------------------------------------------------------------------------
def candidate_name(candidate: Mapping[str, Any]) -> str:
    """A short name: ``"uniform"``, ``"emd"``, ``"sinkhorn(epsilon=0.1)"``."""
    extra = ", ".join(f"{k}={v}" for k, v in candidate.items() if k != "method")
    return f"{candidate['method']}({extra})" if extra else str(candidate["method"])


def label_blocks(
    labels_source: np.ndarray,
    labels_target: np.ndarray,
    *,
    max_cells: int | None = MAX_CELLS_PER_LABEL,
    seed: int = 0,
) -> list[LabelBlock]:
    """Per-label blocks of cell positions, larger labels subsampled (seeded).

    Labels missing (``None``) or present in one modality only are left out. A block's weight
    is its share of the matched source cells *before* subsampling, so subsampling keeps each
    label's weight (:func:`groove_sc.ot.label_blocks`, :func:`groove_sc.ot.subsample_blocks`).
    """
    blocks, _, _ = _shared_label_blocks(labels_source, labels_target)
    if not blocks:
        raise ValueError("No label is present in both modalities; there is nothing to compare.")
    return subsample_blocks(blocks, max_cells, seed=seed)


#: Candidate keys that configure the solver of :func:`block_plans`.
_CANDIDATE_ARGS = ("epsilon", "gw_form", "alpha", "metric", "normalize", "max_iter", "tol")


def block_plans(
    blocks: Sequence[LabelBlock],
    x_source: np.ndarray | None,
    x_target: np.ndarray | None,
    candidate: Mapping[str, Any],
    *,
    dtype: Literal["float32", "float64"] = "float32",
) -> list[np.ndarray]:
    """Unit-mass plan of every label block for one candidate aligner (array level)."""
    method = candidate["method"]
    if method not in ("uniform", "sinkhorn", "emd", "gw", "fgw"):
        raise ValueError(
            f"candidate method {method!r} is not supported by the selection; use 'uniform', "
            "'sinkhorn', 'emd', 'gw' or 'fgw'."
        )
    names = solver_class(method).parameters()
    params = {k: candidate[k] for k in _CANDIDATE_ARGS if k in candidate and k in names}
    solver = make_solver(method, dtype=dtype, **params)
    plans: list[np.ndarray | None] = [None] * len(blocks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for res in solver.solve(blocks, x_source, x_target):
            plan = res.plan
            plans[res.block] = np.asarray(plan.toarray() if sp.issparse(plan) else plan, np.float64)
    return [p if p is not None else np.zeros(b.shape) for p, b in zip(plans, blocks)]


def _transpose(plans: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(p).T for p in plans]


def _replicate_keys(mdata: MuData, replicates: Sequence[str] | None, use_rep: str, mods) -> list:
    """The ``.obsm`` keys of the replicate representations, checked in both modalities."""
    if replicates is None:
        registry = mdata.uns.get(REPLICATES_KEY, {})
        entry = registry.get(use_rep) if isinstance(registry, Mapping) else None
        if not entry:
            raise KeyError(
                f"No replicate representations of `use_rep`={use_rep!r} are recorded in "
                f"mdata.uns[{REPLICATES_KEY!r}]. Train replicates on disjoint halves of the "
                "cells and write their latents first: reps = model.train_replicates(); "
                "groove_sc.tl.replicate_latents(reps, mdata); or pass `replicates=` (two "
                ".obsm keys of independent fits)."
            )
        replicates = list(entry["keys"])
    replicates = [str(k) for k in replicates]
    if len(replicates) < 2:
        raise ValueError(f"`replicates` needs two .obsm keys, got {replicates!r}.")
    for key in replicates:
        for m in mods:
            if key not in mdata.mod[m].obsm:
                raise KeyError(
                    f"replicate representation {key!r} is not in mdata.mod[{m!r}].obsm "
                    f"(available: {list(mdata.mod[m].obsm.keys())})."
                )
    return replicates[:2]


def _rep(mdata: MuData, mod: str, key: str) -> np.ndarray:
    x = mdata.mod[mod].obsm[key]
    x = np.asarray(x.to_numpy() if isinstance(x, pd.DataFrame) else x, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(
            f"replicate representation {key!r} of modality {mod!r} must be a finite cells x "
            "dims matrix."
        )
    return x


def _standardised(adata: Any, rows: np.ndarray | None = None) -> np.ndarray:
    """The modality's ``.X`` with every feature z-scored over its cells (float64, dense)."""
    x = adata.X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(0)
    return (x - x.mean(0)) / np.where(sd > 1e-12, sd, 1.0)


@dataclass
class _Problem:
    """The label blocks and both replicate representations of one source/target pair."""

    blocks: list[LabelBlock]
    reps: list[tuple[np.ndarray, np.ndarray]]
    n_source: int
    n_target: int

    @property
    def weights(self) -> list[float]:
        return [b.weight for b in self.blocks]


def _problem(
    mdata: MuData,
    source: str,
    target: str,
    group_key: str,
    replicates: Sequence[str] | None,
    use_rep: str,
    max_cells_per_label: int | None,
    seed: int,
) -> _Problem:
    check_source_target(mdata, source, target)
    for arg, name in (("source", source), ("target", target)):
        if group_key not in mdata.mod[name].obs:
            raise KeyError(
                f"`group_key`={group_key!r} is not a column of mdata.mod[{name!r}].obs (the "
                f"{arg} modality)."
            )
    keys = _replicate_keys(mdata, replicates, use_rep, (source, target))
    blocks = label_blocks(
        obs_labels(mdata.mod[source], group_key),
        obs_labels(mdata.mod[target], group_key),
        max_cells=max_cells_per_label,
        seed=seed,
    )
    reps = [(_rep(mdata, source, k), _rep(mdata, target, k)) for k in keys]
    if reps[0][0].shape[1] != reps[0][1].shape[1]:
        raise ValueError(
            f"replicate representation {keys[0]!r} has {reps[0][0].shape[1]} dims in "
            f"{source!r} and {reps[0][1].shape[1]} in {target!r}; it must be a shared space."
        )
    return _Problem(
        blocks,
        reps,
        sum(len(b.src) for b in blocks),
        sum(len(b.tgt) for b in blocks),
    )


def _signal(
    problem: _Problem,
    plans: Mapping[tuple[int, str], list[np.ndarray]],
    alpha: float,
    min_reliability: float,
    seed: int,
) -> WithinLabelSignal:
    name = candidate_name(SIGNAL_COUPLING)
    test: AgreementTest = agreement_test(
        plans[(0, name)], plans[(1, name)], problem.weights, seed=seed
    )
    return WithinLabelSignal(
        within_label_signal=signal_verdict(
            test.p_value, test.correlation, alpha=alpha, min_reliability=min_reliability
        ),
        agreement_ratio=test.ratio,
        reliability=test.correlation,
        p_value=test.p_value,
        z=test.z,
        alpha=float(alpha),
        min_reliability=float(min_reliability),
        coupling=dict(SIGNAL_COUPLING),
        n_labels=len(problem.blocks),
        n_source=problem.n_source,
        n_target=problem.n_target,
    )


def _solve_all(
    problem: _Problem, candidates: Sequence[Mapping[str, Any]], n_threads: int | None
) -> dict[tuple[int, str], list[np.ndarray]]:
    wanted = {candidate_name(c): dict(c) for c in candidates}
    for c in (SIGNAL_COUPLING, REFERENCE_COUPLING):
        wanted.setdefault(candidate_name(c), dict(c))
    plans = {}
    with torch_threads(n_threads):
        for r, (xs, xt) in enumerate(problem.reps):
            for name, cand in wanted.items():
                plans[(r, name)] = block_plans(problem.blocks, xs, xt, cand)
    return plans


def within_label_signal(
    mdata: MuData,
    *,
    source: str,
    target: str,
    group_key: str | None = None,
    use_rep: str = "X_groove",
    replicates: Sequence[str] | None = None,
    max_cells_per_label: int | None = MAX_CELLS_PER_LABEL,
    alpha: float = SIGNAL_ALPHA,
    min_reliability: float = MIN_RELIABILITY,
    n_threads: int | None = 1,
    seed: int = 0,
    key_added: str | None = "groove_signal",
) -> WithinLabelSignal:
    """Does per-cell matching carry information beyond the labels? A truth-free verdict.

    Two replicate representations of the same cells, from fits that share no training cell
    (:meth:`groove_sc.model.GROOVE.train_replicates` and
    :func:`groove_sc.tl.replicate_latents`), are each coupled within labels by smooth
    entropic OT (``epsilon`` = the mean cost of the label). If the within-label arrangement
    of the cells carried no information shared by the modalities, each replicate's
    arrangement would be arbitrary and the two couplings would agree as much as two unrelated
    ones: the within-label permutation null of
    :func:`~groove_sc.tl._agreement.agreement_test`. The verdict ``within_label_signal`` is
    ``True`` when they agree significantly more (``p < alpha``) *and* reliably: the
    correlation of the two couplings' departures from the uniform coupling (their
    test-retest reliability) is at least ``min_reliability`` (0.5: more of each replicate's
    within-label structure is reproduced by the other than is its own).

    Reproducible is necessary for a meaningful matching, not sufficient: weakly paired data
    cannot show that the two modalities' within-label variation corresponds (their
    within-label distributions are the same whether or not it does), and two models can
    arrange both modalities' cells consistently by features the modalities do not share. On
    the benchmark's null simulation (no shared within-label variation) the replicates'
    reliability was 0.18-0.44, on data with signal 0.49-0.75; ``docs/benchmark.md`` ("Judging
    results without ground truth") reports how often the verdict is right on data with
    truth.

    Parameters
    ----------
    mdata
        MuData with both modalities and the replicate representations in ``.obsm``.
    source, target
        The two modalities.
    group_key
        Label column in both modalities' ``.obs``; default: the recorded one
        (:func:`groove_sc.data.recorded_label_key`).
    use_rep
        Base key of the representation whose replicates are read from
        ``mdata.uns["groove_replicates"][use_rep]`` (when ``replicates`` is ``None``).
    replicates
        Two ``.obsm`` keys of independent fits, instead of the recorded ones.
    max_cells_per_label
        Cells per label and modality used (a seeded subsample of larger labels).
    alpha
        Significance level of the verdict.
    min_reliability
        Smallest reliability of a signal.
    n_threads
        Torch threads of the OT solves (``None``: unchanged).
    seed
        Seed of the subsampling and of the permutations.
    key_added
        Store the result (a dict) in ``mdata.uns[key_added]``; ``None``: store nothing.

    Returns
    -------
    :class:`WithinLabelSignal`.
    """
    group_key = recorded_label_key(mdata, group_key)
    problem = _problem(
        mdata, source, target, group_key, replicates, use_rep, max_cells_per_label, seed
    )
    plans = _solve_all(problem, [], n_threads)
    result = _signal(problem, plans, alpha, min_reliability, seed)
    if key_added is not None:
        mdata.uns[key_added] = result.to_dict()
    return result


def select_coupling(
    mdata: MuData,
    *,
    source: str,
    target: str,
    objective: Literal["matching", "imputation"],
    group_key: str | None = None,
    use_rep: str = "X_groove",
    replicates: Sequence[str] | None = None,
    candidates: Sequence[Mapping[str, Any]] | None = None,
    max_cells_per_label: int | None = MAX_CELLS_PER_LABEL,
    alpha: float = SIGNAL_ALPHA,
    min_reliability: float = MIN_RELIABILITY,
    n_threads: int | None = 1,
    seed: int = 0,
) -> Selection:
    """Choose an aligner (method and epsilon) without ground truth, for an objective.

    Every candidate is solved on each replicate representation and scored against the
    partners that the *other* replicate's exact OT coupling gives each cell (cross-fitting:
    the two fits share no training cell, so agreement is not shared noise):

    - ``"matching"`` (partners per cell): the agreement ratio, the mass the candidate puts on
      the other replicate's partners relative to the uniform coupling, a truth-free analogue
      of the trace ratio;
    - ``"imputation"`` (profiles per cell): the imputation gain, how much closer the
      candidate's barycentric projection comes to those partners' standardised profiles
      than the label means do (both directions).

    Sharp couplings win the first and smooth ones often the second. When the replicates show
    no within-label signal (:func:`within_label_signal`) the uniform-within-label coupling is
    chosen, whatever the scores.

    Parameters
    ----------
    mdata
        MuData with both modalities and the replicate representations.
    source, target
        The two modalities.
    objective
        ``"matching"`` or ``"imputation"``.
    group_key, use_rep, replicates, max_cells_per_label, alpha, min_reliability, n_threads, seed
        As in :func:`within_label_signal`.
    candidates
        ``tl.align`` keyword arguments of each candidate (``method`` and optionally
        ``epsilon``, ``metric``, ``normalize``; methods ``uniform``, ``sinkhorn``, ``emd``,
        ``gw``, ``fgw``); default :data:`DEFAULT_CANDIDATES`.

    Returns
    -------
    :class:`Selection`.
    """
    if objective not in ("matching", "imputation"):
        raise ValueError(
            f"`objective` must be 'matching' (partners per cell: sharp couplings) or "
            f"'imputation' (profiles per cell: smoother couplings), got {objective!r}."
        )
    candidates = [dict(c) for c in (DEFAULT_CANDIDATES if candidates is None else candidates)]
    if not candidates:
        raise ValueError("`candidates` must hold at least one aligner.")
    for c in candidates:
        if "method" not in c:
            raise ValueError(f"every candidate needs a 'method', got {c!r}.")
    if not any(c["method"] == "uniform" for c in candidates):
        candidates.insert(0, {"method": "uniform"})
    group_key = recorded_label_key(mdata, group_key)
    problem = _problem(
        mdata, source, target, group_key, replicates, use_rep, max_cells_per_label, seed
    )
    plans = _solve_all(problem, candidates, n_threads)
    signal = _signal(problem, plans, alpha, min_reliability, seed)
    ref = candidate_name(REFERENCE_COUPLING)
    w = problem.weights
    x_t = _standardised(mdata.mod[target])
    x_s = _standardised(mdata.mod[source])
    targets_t = [x_t[b.tgt] for b in problem.blocks]
    targets_s = [x_s[b.src] for b in problem.blocks]
    rows = []
    for c in candidates:
        name = candidate_name(c)
        agreement = float(
            np.mean([agreement_ratio(plans[(r, name)], plans[(1 - r, ref)], w) for r in (0, 1)])
        )
        gains = [imputation_gain(plans[(r, name)], plans[(1 - r, ref)], targets_t) for r in (0, 1)]
        gains += [
            imputation_gain(
                _transpose(plans[(r, name)]), _transpose(plans[(1 - r, ref)]), targets_s
            )
            for r in (0, 1)
        ]
        rows.append(
            {
                "candidate": name,
                "method": c["method"],
                "epsilon": float(c.get("epsilon", np.nan)),
                "agreement_ratio": agreement,
                "imputation_gain": float(np.mean([g.gain for g in gains])),
            }
        )
    scores = pd.DataFrame(rows)
    col = "agreement_ratio" if objective == "matching" else "imputation_gain"
    scores["score"] = scores[col]
    if signal.within_label_signal:
        best = int(np.nanargmax(scores["score"].to_numpy()))
        reason = f"highest {col} ({scores['score'].iloc[best]:.3g}) among the candidates"
    else:
        best = int(np.flatnonzero(scores["method"].to_numpy() == "uniform")[0])
        reason = (
            "no within-label signal: the replicates' couplings do not reproduce each other's "
            f"within-label structure reliably (reliability {signal.reliability:.2f}, needed "
            f"{signal.min_reliability:.2f}; agreement ratio {signal.agreement_ratio:.3g}, p = "
            f"{signal.p_value:.3g}); the labels-only coupling is the honest choice"
        )
    scores["chosen"] = np.arange(len(scores)) == best
    return Selection(
        objective=objective,
        choice=candidates[best],
        scores=scores,
        signal=signal,
        reason=reason,
    )
