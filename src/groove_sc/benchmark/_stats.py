"""Statistics on the tidy benchmark table: mean +- SE, paired Wilcoxon tests, rankings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from .._results import (
    FACETS,
    LOWER_IS_BETTER,
    _normalise,
    lower_is_better,
    mean_and_se,
    per_seed_values,
)

__all__ = [
    "LOWER_IS_BETTER",
    "headline_table",
    "lower_is_better",
    "rank_aligners",
    "rank_learners",
    "summarize",
    "wilcoxon_vs_best",
]


def _ok(results: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The ``ok`` rows of one metric (``"seconds"``: one time per cell), facets filled."""
    df = _normalise(results)
    df = df[df["status"] == "ok"] if "status" in df.columns else df
    if metric == "seconds":
        df = df.drop_duplicates([*FACETS, "fold", "learner", "aligner", "seed"]).assign(
            metric="seconds", value=lambda x: x["seconds"]
        )
    elif metric is not None:
        df = df[df["metric"] == metric]
    return df.copy()


def summarize(
    results: pd.DataFrame,
    metrics: str | Sequence[str] | None = None,
    *,
    by: Sequence[str] = ("dataset", "setting", "protocol", "learner", "aligner"),
) -> pd.DataFrame:
    r"""Mean and standard error over seeds of each metric.

    Rows with status other than ``"ok"`` are left out (and counted in ``n_failed``; a
    ``"not_applicable"`` cell has ``n_seeds = 0``). Folds of the held-out-labels protocol are
    first averaged within a seed, so the standard error :math:`s / \sqrt{n}` (``s`` with ddof 1)
    is over seeds, the independent replicates.

    Parameters
    ----------
    results
        The tidy table of :func:`groove_sc.benchmark.run`.
    metrics
        Metric(s) to summarise (default all); ``"seconds"`` summarises the time column.
    by
        Grouping columns.

    Returns
    -------
    DataFrame with ``by``, ``metric``, ``mean``, ``se``, ``n_seeds``, ``n_failed``.
    """
    if metrics is None:
        metrics = list(dict.fromkeys(results["metric"].dropna()))
    elif isinstance(metrics, str):
        metrics = [metrics]
    by = list(by)
    out = []
    for metric in metrics:
        s = mean_and_se(per_seed_values(_ok(results, metric), by), by)
        s["metric"] = metric
        if "status" in results.columns:
            sub = results if metric == "seconds" else results[results["metric"] == metric]
            sub = _normalise(sub)
            failed = (
                sub[sub["status"] == "failed"]
                .groupby(by, sort=False, observed=True)["seed"]
                .nunique()
                .rename("n_failed")
                .reset_index()
            )
            s = s.merge(failed, on=by, how="left")
            s["n_failed"] = s["n_failed"].fillna(0).astype(int)
        else:
            s["n_failed"] = 0
        out.append(s[[*by, "metric", "mean", "se", "n_seeds", "n_failed"]])
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def wilcoxon_vs_best(
    results: pd.DataFrame,
    metric: str,
    *,
    learner: str = "groove",
    others: Sequence[str] | None = None,
    by: Sequence[str] = ("dataset", "setting", "protocol", "aligner"),
    alternative: str = "two-sided",
) -> pd.DataFrame:
    """Paired Wilcoxon signed-rank test of ``learner`` against the best other learner.

    For each group (by default each dataset, setting, protocol and aligner), the best other
    learner is the one with the best mean (direction from :func:`lower_is_better`) among
    ``others``; the two are paired on (seed, fold, and the dataset, setting and protocol when
    they are not in ``by``, so that leaving them out of ``by`` pools them) and compared with
    :func:`scipy.stats.wilcoxon` (exact distribution for small samples, zero differences
    dropped; differences within ``1e-9`` relative count as zero). With ``n`` pairs the
    smallest two-sided p-value of the exact test is ``2 / 2**n``: 0.0625 for 5 seeds, so 5
    seeds alone can never reach 0.05; folds of the held-out-labels protocol add pairs.

    Parameters
    ----------
    results
        The tidy table.
    metric
        Metric to test.
    learner
        The learner under test.
    others
        Candidate competitors (default: every other learner in the group).
    by
        Grouping columns.
    alternative
        Passed to :func:`scipy.stats.wilcoxon`.

    Returns
    -------
    DataFrame with ``by``, ``metric``, ``learner``, ``mean``, ``best_other``,
    ``best_other_mean``, ``difference`` (learner minus best other), ``n_pairs``,
    ``n_learner_better``, ``statistic``, ``p_value``, ``min_p_value`` (the smallest p-value
    attainable with ``n_pairs``), ``degenerate`` (every difference is zero, e.g. the
    ``uniform`` aligner, which depends on the labels only: no test was run and ``p_value`` is
    1) and ``learner_better`` (mean better, whatever the p-value).
    """
    df = _ok(results, metric)
    by = list(by)
    lower = lower_is_better(metric)
    rows = []
    groups = df.groupby(by, sort=False, observed=True) if by else [((), df)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        unit_keys = [c for c in (*FACETS, "seed", "fold") if c not in by]  # pooled facets
        unit = part.groupby(["learner", *unit_keys], observed=True)["value"].mean()
        wide = unit.unstack("learner")
        if learner not in wide.columns:
            continue
        cands = [c for c in wide.columns if c != learner and (others is None or c in others)]
        cands = [c for c in cands if wide[c].notna().any()]
        if not cands:
            continue
        means = wide[cands].mean()
        best = means.idxmin() if lower else means.idxmax()
        pair = wide[[learner, best]].dropna()
        x, y = pair[learner].to_numpy(), pair[best].to_numpy()
        # differences at rounding level are ties (the uniform coupling does not depend on the
        # learner, yet its scores differ in the last bits between fits)
        y = np.where(np.isclose(x, y, rtol=1e-9, atol=1e-12), x, y)
        diff = x - y
        n = len(diff)
        stat, p = np.nan, np.nan
        if n > 0 and np.any(diff != 0):
            res = wilcoxon(x, y, alternative=alternative, zero_method="wilcox")
            stat, p = float(res.statistic), float(res.pvalue)
        elif n > 0:
            p = 1.0
        nz = int(np.count_nonzero(diff))
        better = (diff < 0) if lower else (diff > 0)
        rows.append(
            {
                **dict(zip(by, key)),
                "metric": metric,
                "learner": learner,
                "mean": float(wide[learner].mean()),
                "best_other": best,
                "best_other_mean": float(means[best]),
                "difference": float(wide[learner].mean() - means[best]),
                "n_pairs": n,
                "n_learner_better": int(better.sum()),
                "statistic": stat,
                "p_value": p,
                "min_p_value": float(min(1.0, 2.0 / 2**nz)) if nz else np.nan,
                "degenerate": nz == 0,
                "learner_better": bool(
                    (wide[learner].mean() < means[best])
                    if lower
                    else (wide[learner].mean() > means[best])
                ),
            }
        )
    return pd.DataFrame(rows)


def _rank(results: pd.DataFrame, metric: str, item: str, within: list[str]) -> pd.DataFrame:
    df = _ok(results, metric)
    means = df.groupby([*within, item], sort=False, observed=True)["value"].mean().reset_index()
    means = means.dropna(subset=["value"])
    asc = lower_is_better(metric)
    means["rank"] = means.groupby(within, sort=False, observed=True)["value"].rank(
        ascending=asc, method="average"
    )
    means["win"] = means["rank"] == 1.0
    out = (
        means.groupby(item, sort=False)
        .agg(
            mean_rank=("rank", "mean"),
            n_wins=("win", "sum"),
            n_comparisons=("rank", "size"),
            mean_value=("value", "mean"),
        )
        .reset_index()
        .sort_values(["mean_rank", item])
        .reset_index(drop=True)
    )
    out.insert(0, "metric", metric)
    out["n_wins"] = out["n_wins"].astype(int)
    return out


def rank_learners(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rank the learners by ``metric``, averaged over every comparison.

    Within each dataset, setting, protocol and aligner, learners are ranked by their mean over
    seeds (1 best; ties share the average rank; not-applicable cells are left out). The table
    gives each learner's mean rank over those comparisons, its number of wins (rank 1), the
    number of comparisons and its mean value (over all of them, for orientation only: the
    datasets differ in difficulty).

    Parameters
    ----------
    results
        The tidy table.
    metric
        Metric to rank by.

    Returns
    -------
    DataFrame sorted by mean rank: ``metric``, ``learner``, ``mean_rank``, ``n_wins``,
    ``n_comparisons``, ``mean_value``.
    """
    return _rank(results, metric, "learner", [*FACETS, "aligner"])


def rank_aligners(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rank the aligners by ``metric``, within each dataset, setting, protocol and learner.

    As :func:`rank_learners` (same arguments; the table has ``aligner`` where that one has
    ``learner``), with the roles of learner and aligner swapped.
    """
    return _rank(results, metric, "aligner", [*FACETS, "learner"])


def headline_table(
    results: pd.DataFrame,
    metric: str,
    *,
    learner: str = "groove",
    baselines: Sequence[str] | None = None,
    reference: str = "uniform",
) -> pd.DataFrame:
    """GROOVE, the best baseline and the label-only reference, per aligner (mean ± SE).

    For each dataset, setting, protocol and aligner: the mean and SE over seeds of
    ``learner``; the best of ``baselines`` (by mean) with its mean and SE and the p-value of
    the paired Wilcoxon test of :func:`wilcoxon_vs_best` against it; and the value of the
    ``reference`` aligner (uniform within label: it depends on the labels only, so it is read
    from ``learner``'s rows).

    Parameters
    ----------
    results
        The tidy table.
    metric
        Metric to report.
    learner
        The learner under test.
    baselines
        Competitors (default: every learner whose name does not start with ``"groove"``).
    reference
        Aligner of the reference coupling.

    Returns
    -------
    DataFrame with ``dataset``, ``setting``, ``protocol``, ``aligner``, ``metric``,
    ``learner_mean``, ``learner_se``, ``best_baseline``, ``baseline_mean``, ``baseline_se``,
    ``p_value``, ``n_pairs``, ``reference_mean``, ``reference_se``.
    """
    if baselines is None:
        baselines = [
            x for x in dict.fromkeys(results["learner"]) if not str(x).startswith("groove")
        ]
    summ = summarize(results, metric).set_index([*FACETS, "learner", "aligner"])
    tests = wilcoxon_vs_best(results, metric, learner=learner, others=baselines)
    rows = []
    for t in tests.itertuples(index=False):
        facet = (t.dataset, t.setting, t.protocol)
        own = summ.loc[(*facet, learner, t.aligner)]
        base = summ.loc[(*facet, t.best_other, t.aligner)]
        ref_key = (*facet, learner, reference)
        ref = summ.loc[ref_key] if ref_key in summ.index else None
        rows.append(
            {
                "dataset": t.dataset,
                "setting": t.setting,
                "protocol": t.protocol,
                "aligner": t.aligner,
                "metric": metric,
                "learner_mean": own["mean"],
                "learner_se": own["se"],
                "best_baseline": t.best_other,
                "baseline_mean": base["mean"],
                "baseline_se": base["se"],
                "p_value": t.p_value,
                "n_pairs": t.n_pairs,
                "reference_mean": np.nan if ref is None else ref["mean"],
                "reference_se": np.nan if ref is None else ref["se"],
            }
        )
    return pd.DataFrame(rows)
