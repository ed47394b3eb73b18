"""Time and peak memory of labeled Sinkhorn alignment (``groove_sc.tl.align``).

For each number of cells per modality and number of labels, a fresh worker process builds a
weakly paired MuData (two modalities with different cells, a latent of dimension ``--dim`` in
``.obsm["X_groove"]``, labels drawn uniformly, label-dependent means) and runs
``align(method="sinkhorn", labeled=True)``. Beside it, the dense global Sinkhorn
(``labeled=False``) is run where its ``n x n`` coupling fits in memory; sizes that do not fit
are listed as skipped with the memory they would need.

Measurements (one worker process per row):

* ``seconds``: wall time of the ``align`` call (``time.perf_counter``), including cost matrices,
  the solver and writing the sparse coupling.
* ``peak MiB``: peak resident set size of the worker (``resource.getrusage(...).ru_maxrss``),
  i.e. everything: Python, torch, the input MuData and the coupling.
* ``align MiB``: ``peak MiB`` minus the RSS high-water mark just before ``align`` (the memory
  ``align`` itself added: working tensors plus the stored coupling). ``tracemalloc`` is not
  used because it does not see torch's allocations.
* ``coupling MiB``: size of the stored CSR matrix (data + indices + indptr).

Usage::

    python benchmarks/align_scaling.py                       # 10k and 100k cells, 100/1000 labels
    python benchmarks/align_scaling.py --cells 10000 100000 1000000 --labels 100 1000
    python benchmarks/align_scaling.py --cells 100000 --labels 100 --no-global
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

BYTES_PER_ENTRY = 8  # float32 data + int32 index per stored coupling entry


def _mem_total() -> float:
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(args: argparse.Namespace) -> None:
    import anndata as ad
    import mudata as md

    md.set_options(pull_on_update=False)
    import warnings

    warnings.filterwarnings("ignore")
    from groove_sc.tl import align

    n, n_labels, dim = args.n, args.n_labels, args.dim
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(size=(n_labels, dim)).astype(np.float32) * 2

    def modality(prefix: str) -> ad.AnnData:
        codes = rng.integers(0, n_labels, n)
        z = centres[codes] + rng.normal(size=(n, dim)).astype(np.float32)
        obs = {"perturbation": np.asarray([f"p{c}" for c in range(n_labels)])[codes]}
        adata = ad.AnnData(obs=obs)
        adata.obs_names = [f"{prefix}{i}" for i in range(n)]
        adata.obsm["X_groove"] = z
        return adata

    mdata = md.MuData({"a": modality("a"), "b": modality("b")})
    before = _rss_mib()
    t0 = time.perf_counter()
    align(
        mdata,
        source="a",
        target="b",
        method="sinkhorn",
        labeled=args.mode == "labeled",
        epsilon=args.epsilon,
        device=args.device,
        prune=args.prune,
    )
    seconds = time.perf_counter() - t0
    peak = _rss_mib()
    t = mdata.obsp["groove_coupling"]
    diag = mdata.uns["groove_coupling"]["diagnostics"]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mib": peak,
                "align_mib": peak - before,
                "nnz": int(t.nnz),
                "coupling_mib": (t.data.nbytes + t.indices.nbytes + t.indptr.nbytes) / 2**20,
                "iter_median": float(np.median(diag["n_iter"])),
                "iter_max": int(diag["n_iter"].max()),
                "converged": float(diag["converged"].mean()),
            }
        )
    )


def run_one(n: int, n_labels: int, mode: str, args: argparse.Namespace) -> dict:
    row = {"cells": n, "labels": n_labels if mode == "labeled" else "-", "mode": mode}
    entries = n * n / (n_labels if mode == "labeled" else 1)
    # stored coupling + working tensors of the dense problem (cost and kernel, float32)
    need = entries * BYTES_PER_ENTRY + (0 if mode == "labeled" else entries * 4 * 3)
    if need > 0.8 * _mem_total():
        row["note"] = f"skipped: needs ~{need / 2**30:.0f} GiB (> 80% of RAM)"
        return row
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--n",
        str(n),
        "--n-labels",
        str(n_labels),
        "--mode",
        mode,
        "--dim",
        str(args.dim),
        "--epsilon",
        str(args.epsilon),
        "--prune",
        str(args.prune),
        "--seed",
        str(args.seed),
    ]
    if args.device:
        cmd += ["--device", args.device]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
    except subprocess.TimeoutExpired:
        row["note"] = f"skipped: over the {args.timeout} s time limit"
        return row
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["?"]
        row["note"] = f"failed: {tail[0][:80]}"
        return row
    row.update(json.loads(lines[-1]))
    return row


def _fmt(rows: list[dict]) -> str:
    cols = [
        ("cells", "cells/modality", "{:,}"),
        ("labels", "labels", "{}"),
        ("mode", "mode", "{}"),
        ("seconds", "seconds", "{:.1f}"),
        ("peak_mib", "peak MiB", "{:.0f}"),
        ("align_mib", "align MiB", "{:.0f}"),
        ("coupling_mib", "coupling MiB", "{:.0f}"),
        ("nnz", "stored entries", "{:,}"),
        ("iter_median", "iter (median)", "{:.0f}"),
        ("iter_max", "iter (max)", "{}"),
        ("converged", "converged", "{:.0%}"),
        ("note", "note", "{}"),
    ]
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    lines = [head, sep]
    for r in rows:
        cells = [fmt.format(r[k]) if k in r else "" for k, _, fmt in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--labels", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--epsilon", type=float, default=0.05)
    p.add_argument("--prune", type=float, default=0.0)
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per run")
    p.add_argument("--no-global", action="store_true", help="skip the dense global Sinkhorn")
    p.add_argument("--out", default=None, help="also write the rows as JSON lines here")
    # worker mode (internal)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--n-labels", type=int, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="labeled", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return
    rows = []
    for n in args.cells:
        for n_labels in args.labels:
            rows.append(run_one(n, n_labels, "labeled", args))
            print(rows[-1], file=sys.stderr, flush=True)
        if not args.no_global:
            rows.append(run_one(n, 1, "global", args))
            print(rows[-1], file=sys.stderr, flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    print(
        f"\nLabeled Sinkhorn (epsilon={args.epsilon}, dim={args.dim}, float32, "
        f"device={args.device or 'cpu'}, {os.cpu_count()} CPUs, "
        f"{_mem_total() / 2**30:.0f} GiB RAM)\n"
    )
    print(_fmt(rows))


if __name__ == "__main__":
    main()
