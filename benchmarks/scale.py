"""Scale benchmark: GROOVE training epoch vs scvi-tools' SCVI, and labeled alignment.

For each number of cells per modality (``--cells``) and number of perturbation labels
(``--labels``) two fresh worker processes run:

``train``
    A weakly paired MuData of sparse (CSR) negative-binomial counts: modality ``rna`` with
    ``--genes[0]`` features and modality ``other`` with ``--genes[1]``, each with ``cells``
    distinct cells whose means depend on their label. GROOVE (``likelihood="nb"``, the default
    architecture: 2 hidden layers of 128, 16 latent dimensions) trains one epoch
    (``ceil(cells / batch_size)`` label-balanced steps, ``batch_size`` cells of each modality per
    step, no validation); then SCVI (same architecture, ``gene_likelihood="nb"``, same batch
    size, no validation) trains one epoch on each modality. SCVI has no way to read two feature
    spaces, so "SCVI on the same cells" is one SCVI epoch per modality: the ratio
    ``GROOVE / SCVI`` divides GROOVE's epoch by the sum of the two SCVI epochs (all the cells
    GROOVE reads in its epoch); ``GROOVE / SCVI(rna)`` divides by the ``rna`` epoch alone.
    Epoch times come from Lightning callbacks (``on_train_epoch_start`` to
    ``on_train_epoch_end``), so they exclude setup; ``setup s`` is ``setup_mudata`` plus model
    construction.

``align``
    A MuData whose two modalities hold ``cells`` cells each with a label-structured latent
    (``--dim`` dimensions) in ``.obsm["X_groove"]``; ``groove_sc.tl.align(method="sinkhorn",
    labeled=True, top_k=--top-k)`` (float32, ``epsilon=0.05``). Stored entries, the dropped
    mass of the top-k sparsification, iterations and convergence are reported.

Memory: ``peak MiB`` is the resident-set high-water mark of the worker during the phase
(``VmHWM`` of ``/proc/self/status``, reset with ``/proc/self/clear_refs`` before each phase, so
it includes the input data already in memory); ``data MiB`` is the resident set before the
phase (imports and data). ``tracemalloc`` is not used because it does not see torch's
allocations.

Usage::

    python benchmarks/scale.py                                   # 10k and 100k cells
    python benchmarks/scale.py --cells 10000 100000 1000000 --labels 100 1000 \\
        --out benchmarks/results/scale
    python benchmarks/scale.py --cells 1000000 --labels 1000 --parts align

Prints a Markdown table per part; with ``--out`` also writes ``scale.csv`` and ``scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


# ----------------------------------------------------------------------------------- memory
def _status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def _reset_peak() -> None:
    """Reset the resident-set high-water mark (Linux >= 4.0; no-op elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # pragma: no cover - not Linux
        pass


class _Phase:
    """Wall time, resident set before, and peak resident set of a block of code."""

    def __enter__(self) -> _Phase:
        _reset_peak()
        self.before = _status_mib("VmRSS")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.peak = _status_mib("VmHWM")


# ------------------------------------------------------------------------------------ data
def _counts(rng: np.random.Generator, codes: np.ndarray, n_genes: int, n_labels: int):
    """Sparse NB counts (CSR, float32) with label-dependent means, built in chunks."""
    import scipy.sparse as sp

    base = rng.normal(-1.5, 1.0, size=n_genes)
    effect = rng.normal(0.0, 0.7, size=(n_labels, n_genes)) * (rng.random(n_genes) < 0.2)
    mu = np.exp(base[None, :] + effect).astype(np.float32)  # (labels, genes)
    chunks = []
    step = max(1, 2**25 // n_genes)
    for start in range(0, len(codes), step):
        lam = mu[codes[start : start + step]]
        lam *= rng.gamma(2.0, 0.5, size=lam.shape).astype(np.float32)  # NB = gamma-Poisson
        chunks.append(sp.csr_matrix(rng.poisson(lam).astype(np.float32)))
    return sp.vstack(chunks, format="csr")


def _training_mudata(n: int, n_labels: int, genes: tuple[int, int], seed: int):
    import anndata as ad
    import mudata as md
    import pandas as pd

    rng = np.random.default_rng(seed)
    mods = {}
    names = np.asarray([f"p{i}" for i in range(n_labels)])
    for prefix, n_genes in zip(("rna", "other"), genes):
        codes = rng.integers(0, n_labels, n)
        adata = ad.AnnData(
            _counts(rng, codes, n_genes, n_labels),
            obs=pd.DataFrame(
                {"perturbation": pd.Categorical(names[codes], categories=names)},
                index=pd.Index([f"{prefix}{i}" for i in range(n)]),
            ),
        )
        adata.var_names = [f"{prefix}_g{j}" for j in range(n_genes)]
        mods[prefix] = adata
    return md.MuData(mods)


def _latent_mudata(n: int, n_labels: int, dim: int, seed: int):
    import anndata as ad
    import mudata as md
    import pandas as pd

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_labels, dim)).astype(np.float32) * 2
    names = np.asarray([f"p{i}" for i in range(n_labels)])
    mods = {}
    for prefix in ("rna", "other"):
        codes = rng.integers(0, n_labels, n)
        adata = ad.AnnData(
            obs=pd.DataFrame(
                {"perturbation": pd.Categorical(names[codes], categories=names)},
                index=pd.Index([f"{prefix}{i}" for i in range(n)]),
            )
        )
        adata.obsm["X_groove"] = centres[codes] + rng.normal(size=(n, dim)).astype(np.float32)
        mods[prefix] = adata
    return md.MuData(mods)


# --------------------------------------------------------------------------------- workers
def _epoch_timer():
    from lightning.pytorch.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.steps = 0

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.seconds.append(time.perf_counter() - self._t0)
            self.steps = int(trainer.num_training_batches)

    return EpochTimer()


def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "scvi", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def worker_train(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    _quiet()
    import scvi

    import groove_sc as gs

    accelerator = "gpu" if args.device == "cuda" else "cpu"
    t0 = time.perf_counter()
    mdata = _training_mudata(args.n, args.n_labels, tuple(args.genes), args.seed)
    out: dict = {"data_seconds": time.perf_counter() - t0}
    arch = {"n_latent": 16, "n_hidden": 128, "n_layers": 2}
    common = {
        "max_epochs": 1,
        "batch_size": args.batch_size,
        "accelerator": accelerator,
        "devices": 1,
        "enable_progress_bar": False,
    }

    with _Phase() as ph:
        t_setup = time.perf_counter()
        gs.model.GROOVE.setup_mudata(mdata, perturbation_key="perturbation")
        model = gs.model.GROOVE(mdata, likelihood="nb", seed=args.seed, **arch)
        setup = time.perf_counter() - t_setup
        timer = _epoch_timer()
        model.train(validation_size=0.0, callbacks=[timer], seed=args.seed, **common)
    out.update(
        groove_epoch_s=timer.seconds[-1],
        groove_steps=timer.steps,
        groove_setup_s=setup,
        groove_peak_mib=ph.peak,
        data_mib=ph.before,
    )
    del model

    scvi.settings.seed = args.seed
    total = 0.0
    peak = 0.0
    for name in ("rna", "other"):
        adata = mdata.mod[name]
        with _Phase() as ph:
            scvi.model.SCVI.setup_anndata(adata)
            ref = scvi.model.SCVI(adata, gene_likelihood="nb", **arch)
            timer = _epoch_timer()
            ref.train(train_size=1.0, callbacks=[timer], **common)
        out[f"scvi_{name}_epoch_s"] = timer.seconds[-1]
        out[f"scvi_{name}_steps"] = timer.steps
        total += timer.seconds[-1]
        peak = max(peak, ph.peak)
        del ref
    out["scvi_epoch_s"] = total
    out["scvi_peak_mib"] = peak
    out["ratio"] = out["groove_epoch_s"] / total
    out["ratio_rna"] = out["groove_epoch_s"] / out["scvi_rna_epoch_s"]
    return out


def worker_align(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    _quiet()
    import mudata as md

    md.set_options(pull_on_update=False)
    from groove_sc.tl import align

    mdata = _latent_mudata(args.n, args.n_labels, args.dim, args.seed)
    with _Phase() as ph:
        align(
            mdata,
            source="rna",
            target="other",
            method="sinkhorn",
            epsilon=0.05,
            top_k=args.top_k,
            device=args.device,
            n_threads=args.threads,
        )
    t = mdata.obsp["groove_coupling"]
    uns = mdata.uns["groove_coupling"]
    diag = uns["diagnostics"]
    return {
        "align_s": ph.seconds,
        "align_peak_mib": ph.peak,
        "data_mib": ph.before,
        "nnz": int(t.nnz),
        "coupling_mib": (t.data.nbytes + t.indices.nbytes + t.indptr.nbytes) / 2**20,
        "dropped_mass": float(uns["dropped_mass"]),
        "iter_median": float(np.median(diag["n_iter"])),
        "converged": float(diag["converged"].mean()),
    }


# ---------------------------------------------------------------------------------- driver
def run_worker(part: str, n: int, n_labels: int, args: argparse.Namespace) -> dict:
    row: dict = {
        "part": part,
        "cells": n,
        "labels": n_labels,
        "device": args.device,
        "threads": args.threads,
    }
    cmd = [sys.executable, __file__, "--worker", part, "--n", str(n), "--n-labels", str(n_labels)]
    for flag in ("dim", "top_k", "batch_size", "seed", "device", "threads"):
        cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    cmd += ["--genes", *map(str, args.genes)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    try:
        res = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.timeout, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        row["note"] = f"over the {args.timeout} s limit"
        return row
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["?"]
        row["note"] = f"failed: {tail[0][:100]}"
        return row
    row.update(json.loads(lines[-1]))
    row["worker_s"] = time.perf_counter() - t0
    return row


TRAIN_COLS = [
    ("cells", "cells/modality", "{:,}"),
    ("labels", "labels", "{:,}"),
    ("device", "device", "{}"),
    ("groove_steps", "steps", "{:,}"),
    ("groove_epoch_s", "GROOVE epoch s", "{:.1f}"),
    ("scvi_rna_epoch_s", "SCVI rna s", "{:.1f}"),
    ("scvi_other_epoch_s", "SCVI other s", "{:.1f}"),
    ("ratio", "GROOVE / SCVI", "{:.2f}"),
    ("ratio_rna", "GROOVE / SCVI(rna)", "{:.2f}"),
    ("groove_setup_s", "setup s", "{:.1f}"),
    ("data_mib", "data MiB", "{:,.0f}"),
    ("groove_peak_mib", "GROOVE peak MiB", "{:,.0f}"),
    ("scvi_peak_mib", "SCVI peak MiB", "{:,.0f}"),
    ("note", "note", "{}"),
]
ALIGN_COLS = [
    ("cells", "cells/modality", "{:,}"),
    ("labels", "labels", "{:,}"),
    ("device", "device", "{}"),
    ("align_s", "align s", "{:.1f}"),
    ("align_peak_mib", "peak MiB", "{:,.0f}"),
    ("data_mib", "data MiB", "{:,.0f}"),
    ("nnz", "stored entries", "{:,}"),
    ("coupling_mib", "coupling MiB", "{:,.0f}"),
    ("dropped_mass", "dropped mass", "{:.3f}"),
    ("iter_median", "iter (median)", "{:.0f}"),
    ("converged", "converged", "{:.0%}"),
    ("note", "note", "{}"),
]


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """Markdown table of ``rows`` with the given ``(key, header, format)`` columns."""
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [fmt.format(r[k]) if r.get(k) is not None else "" for k, _, fmt in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--labels", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--parts", nargs="+", default=["train", "align"], choices=["train", "align"])
    p.add_argument("--genes", type=int, nargs=2, default=[2000, 1000])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--dim", type=int, default=16, help="latent dimensions for the alignment")
    p.add_argument("--top-k", type=int, default=50, help="entries kept per row of the coupling")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=int, default=3600, help="seconds per worker")
    p.add_argument("--out", default=None, help="folder for scale.csv and scale.md")
    p.add_argument("--worker", choices=["train", "align"], help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--n-labels", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        fn = worker_train if args.worker == "train" else worker_align
        print(json.dumps(fn(args)), flush=True)
        return

    rows = []
    for n in args.cells:
        for n_labels in args.labels:
            for part in args.parts:
                rows.append(run_worker(part, n, n_labels, args))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    header = (
        f"device={args.device}, torch threads={args.threads}, {os.cpu_count()} CPUs, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM; "
        f"genes {args.genes[0]} + {args.genes[1]}, batch size {args.batch_size}; alignment: "
        f"labeled Sinkhorn, epsilon 0.05, float32, latent dim {args.dim}, top_k {args.top_k}"
    )
    parts = []
    if "train" in args.parts:
        tr = [r for r in rows if r["part"] == "train"]
        parts.append("### Training: one epoch, GROOVE vs SCVI\n\n" + table(tr, TRAIN_COLS))
    if "align" in args.parts:
        al = [r for r in rows if r["part"] == "align"]
        parts.append("### Labeled alignment\n\n" + table(al, ALIGN_COLS))
    text = header + "\n\n" + "\n\n".join(parts) + "\n"
    print("\n" + text)
    if args.out:
        import pandas as pd

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out / "scale.csv", index=False)
        (out / "scale.md").write_text(text)


if __name__ == "__main__":
    main()
