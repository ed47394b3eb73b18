"""Tables and figures of docs/benchmark.md from the committed benchmark results.

Reads ``benchmarks/results/<name>/results.csv`` (simulation, real and, when present,
defaults_check, decoder, real_eval_spaces and robustness), prints the markdown tables used in
``docs/benchmark.md`` and writes the figures to ``docs/_static/benchmark/``; the work is
:func:`groove_sc.benchmark.docs_report`.

Usage::

    python benchmarks/benchmark_report.py > /tmp/tables.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

import groove_sc.benchmark as gb

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--figures", default=str(ROOT / "docs" / "_static" / "benchmark"))
    args = parser.parse_args()
    matplotlib.use("Agg")
    print(gb.docs_report(args.results, args.figures))


if __name__ == "__main__":
    main()
