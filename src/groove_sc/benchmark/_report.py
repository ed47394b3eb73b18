"""``groove-sc benchmark --config FILE --out DIR``: run, then write tables and figures."""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["cli_main", "write_report"]

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


def _fmt(mean: float, se: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.3f} ± {se:.3f}" if np.isfinite(se) else f"{mean:.3f}"


def _markdown(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


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
    from ._stats import lower_is_better, summarize

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
            cell = sub.assign(txt=[_fmt(m, s) for m, s in zip(sub["mean"], sub["se"])])
            wide = cell.pivot(index="learner", columns="aligner", values="txt")
            wide = wide.reindex(
                index=[x for x in learners if x in wide.index],
                columns=[a for a in aligners if a in wide.columns],
            ).fillna("n/a")
            n = int(sub["n_seeds"].max())
            direction = "lower is better" if lower_is_better(metric) else "higher is better"
            parts.append(f"**{metric}** ({direction}; mean ± SE over {n} seeds)\n")
            parts.append(_markdown(wide.reset_index()) + "\n")
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
    from ._stats import rank_aligners, rank_learners, summarize, wilcoxon_vs_best

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
            path = out / f"{metric}__{ds}__{pr}.png"
            try:
                from ..pl import benchmark as pl_benchmark

                pl_benchmark(
                    sub,
                    metric=metric,
                    kind="heatmap",
                    learners=[x for x in learners if x in set(sub["learner"])],
                    aligners=[a for a in aligners if a in set(sub["aligner"])],
                    ncols=3,
                    show=False,
                    save=str(path),
                )
            except ImportError:  # plotting module absent: a plain matplotlib heatmap
                _plain_heatmap(sub, metric, path)
            plt.close("all")
    return out


def _plain_heatmap(sub: pd.DataFrame, metric: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    mean = sub.pivot_table(index="learner", columns="aligner", values="value", aggfunc="mean")
    fig, ax = plt.subplots(figsize=(1.2 * mean.shape[1] + 3, 0.5 * mean.shape[0] + 1.5))
    im = ax.imshow(mean.to_numpy(), cmap="viridis")
    ax.set_xticks(range(mean.shape[1]), mean.columns, rotation=45, ha="right")
    ax.set_yticks(range(mean.shape[0]), mean.index)
    fig.colorbar(im, ax=ax, label=metric)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _versions() -> dict[str, Any]:
    import importlib.metadata as im

    out: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("groove-sc", "scvi-tools", "torch", "pot", "numpy", "scipy", "anndata"):
        try:
            out[pkg] = im.version(pkg)
        except im.PackageNotFoundError:
            out[pkg] = None
    return out


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``groove-sc benchmark``: run a configuration and write results, tables and figures.

    Writes into ``--out``: ``results.csv`` (the tidy table, appended run by run),
    ``summary.csv`` and ``summary.md`` (mean ± SE over seeds), ``wilcoxon.csv`` (GROOVE
    against the best other learner, the best non-GROOVE baseline and, when run, ``diagvi``),
    ``ranking.csv``,
    ``figures/*.png``, ``config.yaml`` (a copy) and ``run_info.json`` (time, versions, files).

    Parameters
    ----------
    argv
        Command line arguments after ``benchmark`` (default ``sys.argv[1:]``).

    Returns
    -------
    Exit status: 0, or 1 when every run failed.
    """
    parser = argparse.ArgumentParser(
        prog="groove-sc benchmark",
        description="Run the combinatorial benchmark (learners x aligners x datasets x seeds).",
    )
    parser.add_argument("--config", required=True, help="YAML configuration file")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--resume", action="store_true", help="keep out/results.csv and skip the runs in it"
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="override the seeds of the config")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures")
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite tables/figures from results.csv"
    )
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    return _main(args)


def _main(args: argparse.Namespace) -> int:
    import mudata
    import yaml

    from ._run import load_config, run

    mudata.set_options(pull_on_update=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.config)
    if args.seeds:
        cfg["seeds"] = list(args.seeds)
    results_path = out / "results.csv"
    start = time.time()
    if args.report_only:
        results = pd.read_csv(results_path, keep_default_na=False, na_values=[""])
    else:
        if Path(args.config).resolve() != (out / "config.yaml").resolve():
            shutil.copyfile(args.config, out / "config.yaml")
        results = run(
            cfg, progress=not args.no_progress, results_path=results_path, resume=args.resume
        )
        results.to_csv(results_path, index=False)
    results["setting"] = results["setting"].fillna("").astype(str)
    write_report(results, out, figures=not args.no_figures)
    if not args.report_only:
        info = {
            "config": str(args.config),
            "seeds": cfg["seeds"],
            "wall_seconds": round(time.time() - start, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "datasets": _dataset_info(cfg["datasets"]),
            "status_counts": results.drop_duplicates(
                ["dataset", "setting", "protocol", "fold", "learner", "aligner", "seed"]
            )["status"]
            .value_counts()
            .to_dict(),
            "versions": _versions(),
        }
        (out / "run_info.json").write_text(json.dumps(info, indent=2, default=str))
        (out / "config_resolved.yaml").write_text(yaml.safe_dump(_plain(cfg), sort_keys=False))
    status = results["status"].fillna("ok")
    n_ok, n = int((status == "ok").sum()), len(status)
    print(f"{n_ok} of {n} result rows ok; results in {results_path}")
    return 0 if n_ok > 0 else 1


def _dataset_info(datasets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    from ..datasets import _real

    files = {
        "snareseq": _real.SNARESEQ_FILE,
        "citeseq_pbmc": _real.CITESEQ_FILE,
        "papalexi_two_view": _real.PAPALEXI_FILE,
    }
    out = []
    for d in datasets:
        entry = {"name": d["name"], "loader": d["loader"]}
        if d["loader"] in files:
            try:
                entry["file"] = str(_real._find_file(files[d["loader"]], d["params"].get("path")))
            except FileNotFoundError as exc:
                entry["file"] = f"not found: {exc}"
        elif d["loader"] == "h5mu":
            entry["file"] = d["params"].get("path")
        out.append(entry)
    return out


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    return x
