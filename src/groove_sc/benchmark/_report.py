"""The report of a results table: summary tables, Wilcoxon tests, rankings and figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from .._results import lower_is_better, markdown_table, mean_se_grid
from ..pl import benchmark as plot_benchmark
from ._stats import rank_aligners, rank_learners, summarize, wilcoxon_vs_best

__all__ = ["summary_markdown", "write_report"]

#: Metrics summarised in ``summary.md`` and drawn as figures.
KEY_METRICS = (
    "foscttm_barycentric",
    "trace_ratio",
    "foscttm",
    "impute_pearson_cell_delta",
    "label_transfer_accuracy",
)
#: Learner names starting with this prefix are GROOVE or its variants (not "baselines").
GROOVE_PREFIX = "groove"
#: Learners (names starting with these) GROOVE is also tested against one by one in
#: ``wilcoxon.csv`` (``versus``: the learner's name).
NAMED_COMPETITORS = ("diagvi",)


def summary_markdown(results: pd.DataFrame, metrics: Sequence[str] = KEY_METRICS) -> str:
    """Markdown tables (learner x aligner, mean ± SE over seeds) per dataset, setting, protocol.

    Parameters
    ----------
    results
        The tidy table.
    metrics
        Metrics to tabulate (those absent from the table are skipped).

    Returns
    -------
    Markdown text.
    """
    present = [m for m in metrics if m in set(results["metric"])]
    summ = summarize(results, present)
    learners = list(dict.fromkeys(results["learner"]))
    aligners = [a for a in dict.fromkeys(results["aligner"]) if a]
    parts = []
    for (ds, st, pr), part in summ.groupby(["dataset", "setting", "protocol"], sort=False):
        title = " · ".join(x for x in (ds, st, pr) if x)
        parts.append(f"## {title}\n")
        for metric in present:
            sub = part[part["metric"] == metric]
            if sub.empty:
                continue
            wide = mean_se_grid(sub, learners, aligners)
            n = int(sub["n_seeds"].max())
            direction = "lower is better" if lower_is_better(metric) else "higher is better"
            parts.append(f"**{metric}** ({direction}; mean ± SE over {n} seeds)\n")
            parts.append(markdown_table(wide.reset_index()) + "\n")
    return "\n".join(parts)


def write_report(
    results: pd.DataFrame,
    out: str | Path,
    *,
    metrics: Sequence[str] = KEY_METRICS,
    figures: bool = True,
) -> dict[str, Path]:
    """Write the summary tables, statistical tests, rankings and figures of a results table.

    Parameters
    ----------
    results
        The tidy table of :func:`groove_sc.benchmark.run`.
    out
        Output directory.
    metrics
        Metrics for the markdown summary, the tests, the rankings and the figures.
    figures
        Draw the figures (``figures/<metric>__<dataset>__<protocol>.png``).

    Returns
    -------
    Paths written, by kind.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    present = [m for m in metrics if m in set(results["metric"])]
    summarize(results).to_csv(out / "summary.csv", index=False)
    paths["summary"] = out / "summary.csv"
    (out / "summary.md").write_text(summary_markdown(results, present))
    paths["summary_md"] = out / "summary.md"

    tests, ranks = [], []
    learners = set(results["learner"])
    baselines = [x for x in learners if not str(x).startswith(GROOVE_PREFIX)]
    for metric in present:
        if "groove" in learners:
            t_all = wilcoxon_vs_best(results, metric).assign(versus="best_other")
            t_base = wilcoxon_vs_best(results, metric, others=baselines).assign(
                versus="best_baseline"
            )
            tests += [t_all, t_base]
            named = sorted(x for x in learners if str(x).startswith(NAMED_COMPETITORS))
            for other in named:  # GROOVE against a named competitor, when it ran
                tests.append(wilcoxon_vs_best(results, metric, others=[other]).assign(versus=other))
        ranks.append(rank_learners(results, metric).rename(columns={"learner": "name"}))
        ranks[-1].insert(1, "kind", "learner")
        ranks.append(rank_aligners(results, metric).rename(columns={"aligner": "name"}))
        ranks[-1].insert(1, "kind", "aligner")
    tests = [t[~t["degenerate"]] for t in tests if not t.empty]  # no test without differences
    if tests:
        pd.concat(tests, ignore_index=True).to_csv(out / "wilcoxon.csv", index=False)
        paths["wilcoxon"] = out / "wilcoxon.csv"
    if ranks:
        pd.concat(ranks, ignore_index=True).to_csv(out / "ranking.csv", index=False)
        paths["ranking"] = out / "ranking.csv"
    if figures:
        paths["figures"] = _figures(results, out / "figures", present)
    return paths


def _figures(results: pd.DataFrame, out: Path, metrics: Sequence[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    ok = results[results["status"].fillna("ok") == "ok"] if "status" in results else results
    ok = ok.assign(setting=ok["setting"].fillna("").astype(str))
    learners = list(dict.fromkeys(results["learner"]))
    aligners = [a for a in dict.fromkeys(results["aligner"]) if a]
    for (ds, pr), part in ok.groupby(["dataset", "protocol"], sort=False):
        for metric in metrics:
            sub = part[part["metric"] == metric]
            if sub.empty or sub["value"].notna().sum() == 0:
                continue
            plot_benchmark(
                sub,
                metric=metric,
                kind="heatmap",
                learners=[x for x in learners if x in set(sub["learner"])],
                aligners=[a for a in aligners if a in set(sub["aligner"])],
                ncols=3,
                show=False,
                save=str(out / f"{metric}__{ds}__{pr}.png"),
            )
            plt.close("all")
    return out
