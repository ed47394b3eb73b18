"""Compare two benchmark ``results.csv`` files: same rows and columns, values within a tolerance.

Used to check that a refactor reproduces a run (the closing notes of the OT-engine and the
benchmark-library issues)::

    python -m groove_sc.benchmark --config benchmarks/configs/quick.yaml --out /tmp/before
    # ... change the code ...
    python -m groove_sc.benchmark --config benchmarks/configs/quick.yaml --out /tmp/after
    python benchmarks/compare_results.py /tmp/before/results.csv /tmp/after/results.csv

Prints the columns of both files, rows found in only one, the largest absolute difference of
``value`` per aligner, and status / error mismatches; exits 1 when a row is missing, a status
differs or a value differs by more than ``--tol``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

KEYS = ["dataset", "setting", "protocol", "fold", "learner", "aligner", "seed", "metric"]


def _read(path: str) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in ("setting", "aligner", "error"):
        if col in frame:
            frame[col] = frame[col].fillna("").astype(str)
    return frame


def compare(before: pd.DataFrame, after: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows matched on the unit keys, and the largest ``value`` difference per aligner."""
    merged = before.merge(
        after, on=KEYS, how="outer", suffixes=("_before", "_after"), indicator=True
    )
    x = merged["value_before"].to_numpy(float)
    y = merged["value_after"].to_numpy(float)
    both = ~np.isnan(x) & ~np.isnan(y)
    diff = np.full(len(merged), np.nan)
    with np.errstate(invalid="ignore"):  # equal infinities differ by 0, not by inf - inf
        diff[both] = np.where(x[both] == y[both], 0.0, np.abs(x[both] - y[both]))
    merged["abs_diff"] = diff
    merged["nan_mismatch"] = np.isnan(x) != np.isnan(y)
    per_aligner = merged.groupby("aligner").agg(
        rows=("metric", "size"),
        max_abs_diff=("abs_diff", "max"),
        nan_mismatches=("nan_mismatch", "sum"),
    )
    return merged, per_aligner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tol", type=float, default=1e-6, help="largest allowed |difference|")
    args = parser.parse_args(argv)
    before, after = _read(args.before), _read(args.after)
    print("columns before:", list(before.columns))
    print("columns after: ", list(after.columns))
    merged, per_aligner = compare(before, after)
    only_one = int((merged["_merge"] != "both").sum())
    status = int((merged["status_before"].fillna("") != merged["status_after"].fillna("")).sum())
    print(f"rows: {len(before)} / {len(after)}; in only one file: {only_one}")
    print(f"status mismatches: {status}")
    print(per_aligner.to_string())
    worst = float(np.nanmax(merged["abs_diff"])) if merged["abs_diff"].notna().any() else 0.0
    nan_mismatch = int(merged["nan_mismatch"].sum())
    print(f"largest |value difference|: {worst:.3g}; NaN in one file only: {nan_mismatch}")
    failed = only_one or status or nan_mismatch or worst > args.tol
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
