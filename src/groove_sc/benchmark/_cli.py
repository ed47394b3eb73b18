"""``groove-sc benchmark --config FILE --out DIR``: run, then write tables and figures."""

from __future__ import annotations

import argparse
import importlib.metadata as im
import json
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import mudata
import numpy as np
import pandas as pd
import yaml

from .._results import read_results
from ..datasets import _real
from ._config import BenchmarkConfig, ConfigError, DatasetConfig, load_config
from ._report import write_report
from ._run import first_failure, run

__all__ = ["cli_main", "closing_line"]

#: Bundled files of the real-data loaders (recorded in ``run_info.json``).
_FILES = {
    "snareseq": _real.SNARESEQ_FILE,
    "citeseq_pbmc": _real.CITESEQ_FILE,
    "papalexi_two_view": _real.PAPALEXI_FILE,
}


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``groove-sc benchmark``: run a configuration and write results, tables and figures.

    Writes into ``--out``: ``results.csv`` (the tidy table, appended run by run),
    ``summary.csv`` and ``summary.md`` (mean ± SE over seeds), ``wilcoxon.csv`` (GROOVE
    against the best other learner, the best non-GROOVE baseline and, when run, ``diagvi``;
    comparisons without any difference, such as the ``uniform`` aligner, are not tested),
    ``ranking.csv``, ``figures/*.png``, ``config.yaml`` (a copy) and ``run_info.json`` (time,
    versions, files). The last line counts the result rows that are ok, failed and not
    applicable.

    Parameters
    ----------
    argv
        Command line arguments after ``benchmark`` (default ``sys.argv[1:]``).

    Returns
    -------
    Exit status: 0; 1 when no result is ok (the first error and the option it concerns are
    printed to stderr); 2 for a configuration error.
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
    try:
        return _main(args)
    except ConfigError as exc:
        print(f"groove-sc benchmark: configuration error in {exc}", file=sys.stderr)
        return 2


def closing_line(results: pd.DataFrame, results_path: Path) -> str:
    """``"N of M result rows ok, F failed, A not applicable; results in PATH"``."""
    status = results["status"].fillna("ok")
    counts = {s: int((status == s).sum()) for s in ("ok", "failed", "not_applicable")}
    return (
        f"{counts['ok']} of {len(status)} result rows ok, {counts['failed']} failed, "
        f"{counts['not_applicable']} not applicable; results in {results_path}"
    )


def _main(args: argparse.Namespace) -> int:
    mudata.set_options(pull_on_update=False)
    matplotlib.use("Agg")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(args.config)
    if args.seeds:
        cfg.seeds = [int(s) for s in args.seeds]
    results_path = out / "results.csv"
    start = time.time()
    if args.report_only:
        results = read_results(results_path)
    else:
        if Path(args.config).resolve() != (out / "config.yaml").resolve():
            shutil.copyfile(args.config, out / "config.yaml")
        results = run(
            cfg, progress=not args.no_progress, results_path=results_path, resume=args.resume
        )
        results.to_csv(results_path, index=False)
        _write_run_info(args.config, cfg, results, out, time.time() - start)
    results["setting"] = results["setting"].fillna("").astype(str)
    n_ok = int((results["status"].fillna("ok") == "ok").sum())
    if n_ok:
        write_report(results, out, figures=not args.no_figures)
    print(closing_line(results, results_path))
    if n_ok:
        return 0
    failure = first_failure(results)
    if failure is None:
        print("groove-sc benchmark: no result is ok (all are not applicable).", file=sys.stderr)
    else:
        option, error = failure
        print(
            f"groove-sc benchmark: every unit failed; the first error concerns `{option}`: {error}",
            file=sys.stderr,
        )
    return 1


def _write_run_info(
    config: str, cfg: BenchmarkConfig, results: pd.DataFrame, out: Path, seconds: float
) -> None:
    cells = ["dataset", "setting", "protocol", "fold", "learner", "aligner", "seed"]
    info = {
        "config": str(config),
        "seeds": cfg.seeds,
        "wall_seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "datasets": [_dataset_info(d) for d in cfg.datasets],
        "status_counts": results.drop_duplicates(cells)["status"].value_counts().to_dict(),
        "versions": _versions(),
    }
    (out / "run_info.json").write_text(json.dumps(info, indent=2, default=str))
    plain = _plain(cfg.to_dict())
    (out / "config_resolved.yaml").write_text(yaml.safe_dump(plain, sort_keys=False))


def _versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("groove-sc", "scvi-tools", "torch", "pot", "numpy", "scipy", "anndata"):
        try:
            out[pkg] = im.version(pkg)
        except im.PackageNotFoundError:
            out[pkg] = None
    return out


def _dataset_info(d: DatasetConfig) -> dict[str, Any]:
    loader = d.loader if isinstance(d.loader, str) else f"{d.loader.__module__}:{d.loader.__name__}"
    entry: dict[str, Any] = {"name": d.name, "loader": loader}
    if loader in _FILES:
        try:
            entry["file"] = str(_real._find_file(_FILES[loader], d.params.get("path")))
        except FileNotFoundError as exc:
            entry["file"] = f"not found: {exc}"
    elif loader == "h5mu":
        entry["file"] = d.params.get("path")
    return entry


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    return x
