"""The benchmark's results table: columns, metric directions, rows, CSV files, summaries.

One definition for everything that writes or reads the tidy table of
:func:`groove_sc.benchmark.run`: the benchmark itself (:mod:`groove_sc.benchmark`), its
statistics and report, and the figure :func:`groove_sc.pl.benchmark`. It depends on numpy and
pandas only, so both the ``benchmark`` and the ``pl`` layer import it.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FACETS",
    "LOWER_IS_BETTER",
    "RESULT_COLUMNS",
    "STATUSES",
    "UNIT_KEYS",
    "ResultsFile",
    "error_text",
    "lower_is_better",
    "markdown_table",
    "mean_and_se",
    "mean_se_grid",
    "mean_se_text",
    "metric_rows",
    "per_seed_values",
    "read_results",
]

#: Columns of the tidy results table, in order. ``labels_only``: the coupling equals the
#: labels-only (uniform-within-label) coupling of the same cells (tables written before the
#: column existed read as ``False``).
RESULT_COLUMNS = [
    "dataset",
    "setting",
    "protocol",
    "fold",
    "learner",
    "aligner",
    "seed",
    "metric",
    "value",
    "seconds",
    "status",
    "error",
    "labels_only",
]
#: Facets of a comparison: within one of them, learners and aligners are compared.
FACETS = ["dataset", "setting", "protocol"]
#: Columns that identify one unit of work (one fit of one learner): the resume key.
UNIT_KEYS = ["dataset", "setting", "protocol", "fold", "seed", "learner"]
#: Values of the ``status`` column.
STATUSES = ("ok", "failed", "not_applicable")
#: Substrings of metric names for which lower values are better.
LOWER_IS_BETTER = ("foscttm", "mse", "error", "seconds", "time", "memory")


def lower_is_better(metric: str) -> bool:
    """Whether lower values of ``metric`` are better (FOSCTTMs, MSE, errors, time, memory).

    Parameters
    ----------
    metric
        A metric name (a value of the ``metric`` column, or ``"seconds"``).

    Returns
    -------
    ``True`` when the name contains one of :data:`LOWER_IS_BETTER`.
    """
    name = str(metric).lower()
    return any(s in name for s in LOWER_IS_BETTER)


def error_text(exc: BaseException) -> str:
    """``"Type: message at file.py:line"`` of an exception (at most 500 characters)."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def metric_rows(
    base: Mapping[str, Any],
    values: Mapping[str, float],
    metrics: Iterable[str],
    seconds: float = float("nan"),
    status: str = "ok",
    error: str = "",
    labels_only: bool = False,
) -> list[dict[str, Any]]:
    """One row per metric of one (unit, aligner) cell.

    Parameters
    ----------
    base
        The facet columns (``dataset`` ... ``seed``, without ``metric``).
    values
        Metric values (missing ones are NaN).
    metrics
        The metrics to write, in order.
    seconds
        Time of the cell.
    status
        One of :data:`STATUSES`.
    error
        Error message (failed) or reason (not applicable).
    labels_only
        The coupling equals the labels-only one.

    Returns
    -------
    Rows (dicts keyed by :data:`RESULT_COLUMNS`).
    """
    if status not in STATUSES:
        raise ValueError(f"`status` must be one of {STATUSES}, got {status!r}.")
    return [
        {
            **base,
            "metric": m,
            "value": float(values.get(m, np.nan)),
            "seconds": float(seconds),
            "status": status,
            "error": error,
            "labels_only": bool(labels_only),
        }
        for m in metrics
    ]


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Fill the columns a table may lack and the empty facets of a CSV round trip."""
    df = df.copy()
    for col in FACETS:
        if col not in df.columns:
            df[col] = ""
        df[col] = df[col].fillna("").astype(str)
    if "fold" not in df.columns:
        df["fold"] = 0
    if "status" in df.columns:
        df["status"] = df["status"].fillna("ok").astype(str)
    if "error" in df.columns:
        df["error"] = df["error"].fillna("").astype(str)
    if "labels_only" not in df.columns:
        df["labels_only"] = False
    else:
        df["labels_only"] = df["labels_only"].astype(str).str.lower().isin(["true", "1", "1.0"])
    return df


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a ``results.csv`` (also one written before the ``labels_only`` column existed).

    Parameters
    ----------
    path
        The CSV file.

    Returns
    -------
    The tidy table with the :data:`RESULT_COLUMNS` (and any extra columns of the file).
    """
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return _normalise(df)


class ResultsFile:
    """A ``results.csv`` that grows unit by unit (a long run that stops keeps what it did).

    Parameters
    ----------
    path
        The CSV file; ``None``: nothing is written (:meth:`append` only returns the rows).
    resume
        Keep the rows already in the file (:attr:`done` holds their units); otherwise the
        file is started afresh. A file written before the ``labels_only`` column existed is
        rewritten with it.
    """

    def __init__(self, path: str | Path | None, *, resume: bool = False):
        self.path = None if path is None else Path(path)
        self.old = pd.DataFrame(columns=RESULT_COLUMNS)
        self.done: set[tuple] = set()
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.exists():
            self.old = read_results(self.path)
            units = self.old[UNIT_KEYS].drop_duplicates()
            self.done = set(units.itertuples(index=False, name=None))
            self.old[RESULT_COLUMNS].to_csv(self.path, index=False)  # the current columns
        elif self.path.exists():
            self.path.unlink()

    def append(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append rows to the file (with the header when it is new) and return them."""
        if self.path is not None and rows:
            frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
            frame.to_csv(self.path, mode="a", header=not self.path.exists(), index=False)
        return rows

    def table(self, new_rows: list[dict[str, Any]]) -> pd.DataFrame:
        """The rows kept from the file followed by ``new_rows``."""
        new = pd.DataFrame(new_rows, columns=RESULT_COLUMNS)
        if self.old.empty:
            return new
        return pd.concat([self.old[RESULT_COLUMNS], new], ignore_index=True)


def per_seed_values(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One value per seed of each group: folds (and repeated rows) averaged within a seed."""
    return df.groupby([*keys, "seed"], sort=False, observed=True)["value"].mean().reset_index()


def mean_and_se(per_seed: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    r"""Mean and standard error over seeds of the per-seed values of each group.

    The standard error is :math:`s / \sqrt{n}` (``s`` the sample standard deviation, ddof 1,
    over the ``n`` seeds with a value; NaN for one seed).

    Parameters
    ----------
    per_seed
        Output of :func:`per_seed_values` (a ``value`` column, one row per group and seed).
    keys
        Grouping columns.

    Returns
    -------
    DataFrame with ``keys``, ``mean``, ``se`` and ``n_seeds``.
    """
    grouped = per_seed.groupby(list(keys), sort=False, observed=True)["value"]
    out = grouped.agg(mean="mean", sd=lambda v: v.std(ddof=1), n_seeds="count").reset_index()
    out["se"] = out["sd"] / np.sqrt(out["n_seeds"].where(out["n_seeds"] > 1))
    return out[[*keys, "mean", "se", "n_seeds"]]


def mean_se_text(mean: float, se: float, digits: int = 3) -> str:
    """``"mean ± se"`` (``"mean"`` without an SE, ``"n/a"`` without a mean)."""
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if np.isfinite(se) else f"{mean:.{digits}f}"


def mean_se_grid(
    summary: pd.DataFrame, learners: Sequence[str], aligners: Sequence[str]
) -> pd.DataFrame:
    """Learner x aligner table of ``"mean ± se"`` texts (``"n/a"`` where a cell is missing).

    Parameters
    ----------
    summary
        Rows of one metric with ``learner``, ``aligner``, ``mean`` and ``se`` (a part of
        :func:`groove_sc.benchmark.summarize`).
    learners, aligners
        Row and column order; names absent from ``summary`` are left out.

    Returns
    -------
    The table (learners as index, aligners as columns).
    """
    text = [mean_se_text(m, s) for m, s in zip(summary["mean"], summary["se"])]
    wide = summary.assign(txt=text).pivot(index="learner", columns="aligner", values="txt")
    return wide.reindex(
        index=[x for x in learners if x in wide.index],
        columns=[a for a in aligners if a in wide.columns],
    ).fillna("n/a")


def markdown_table(df: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table of a DataFrame (its index is not written).

    Parameters
    ----------
    df
        The table.
    columns
        Header labels (default: the column names).

    Returns
    -------
    Markdown text without a trailing newline.
    """
    cols = [str(c) for c in (columns if columns is not None else df.columns)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)
