"""Labeled Sinkhorn: ``groove_sc.tl.align`` against POT (the ``ot`` package), one CPU thread.

Every shape ``CELLS/LABELS`` is a synthetic problem: two modalities with ``CELLS`` cells each,
every cell a 16-dimensional point ``label_centre + N(0, I)`` (centres ``N(0, 4 I)``), cells in
random order. Equal shapes give every label ``CELLS / LABELS`` cells in both modalities;
``unequal:CELLS/LABELS`` draws log-normal label sizes (sigma 1, seeded; at least 2 cells) for
all labels but the last, a control label holding 10 % of the cells (same sizes in both
modalities, so the blocks are square but of very different sizes). Each label is its own entropic
OT problem: squared Euclidean cost between the label's source and target cells (centred on the
label's source mean), divided by its mean, ``epsilon = 0.05``, uniform unit-mass marginals, at
most 1000 iterations, tolerance ``1e-5``. Methods, each in a fresh worker process:

``groove``
    ``groove_sc.tl.align(mdata, method="sinkhorn", group_key=..., epsilon=0.05, tol=1e-5,
    dtype="float32")`` on a MuData with ``.obsm["X_groove"]`` in both modalities (batched,
    stabilised torch Sinkhorn with epsilon scaling). Stopping rule: largest relative row-marginal
    error ``max_i |(T 1)_i - a_i| / a_i <= tol`` (columns exact after each iteration); checked
    every 10 iterations, per label. Only the ``align`` call is timed (it includes grouping the
    cells by label, the costs, and assembling the sparse coupling of all the blocks); the MuData
    is built before.
``pot_sinkhorn_f64``
    A Python loop over labels: ``ot.dist`` (float64), ``ot.sinkhorn(a, b, C, reg=0.05,
    method="sinkhorn", numItermax=1000, stopThr=tol * ||b||_2)``. POT's Sinkhorn-Knopp makes the
    rows exact and stops when ``||T^T 1 - b||_2 <= stopThr`` (checked every 10 iterations), so
    the rule is a relative L2 column-marginal error ``<= tol``; since
    ``||e||_2 <= sqrt(m) max|e_j|`` it is implied by (never stricter than) groove's relative
    max-error rule at the same ``tol``, and can be up to ``sqrt(m)`` times looser (a 434-cell
    label stopped at a relative L2 error 9e-6 had a largest relative row error 2e-4).
    ``--pot-stop max`` uses ``stopThr = tol * b_j = tol / m`` instead, which implies groove's
    rule (never looser): groove's rule lies between the two. This run is also the reference of
    the ``|T - T_pot64|`` columns.
``pot_sinkhorn_log_f32``
    The same loop in float32 with ``method="sinkhorn_log"`` (log-domain; same stopping rule).
``pot_solve_batch_f32``
    ``ot.solve_batch(M, reg=0.05, a, b, max_iter=1000, tol=tol, method="log_sinkhorn",
    grad="detach")`` (float32) on chunks of labels (sorted by size; a chunk's padded
    ``(B, n_max, m_max)`` cost tensor stays within ``2**24`` entries unless a single label is
    larger) with costs from ``ot.batch.dist_batch``; labels of unequal size are padded with
    zero-mass rows and columns (exact). ``solve_batch`` makes the columns exact and stops when
    the largest row error ``max_B ||T_B 1 - a_B||_2 <= tol`` over the whole chunk (one absolute
    ``tol`` and one iteration count for all the problems of a chunk). To give every label the
    same relative rule as the loops, each problem's marginals are scaled to mass ``sqrt(n_l)``
    so that ``||a_l||_2 = 1`` (``--pot-stop max``: mass ``n_l``, ``a_l,i = 1``); Sinkhorn is
    scale-equivariant (the plan scales by the same factor, the iterates are the same), and the
    plan is divided back. Its ``converged`` column re-checks the rule in float64 after the
    solve, which a label that POT's float32 check passed just under ``tol`` can miss.

The POT loops keep only the blocks of the first 5 labels and drop the others (groove assembles
the whole coupling). The POT backend is numpy unless ``--pot-backend torch``.

Reported per shape and method: ``seconds`` (wall, best of ``--repeats``), ``ratio to groove``
(seconds / groove's seconds at that shape), ``peak MiB`` (resident-set high-water mark of the
worker during the timed call: ``VmHWM`` of ``/proc/self/status``, reset with
``/proc/self/clear_refs`` before it; it includes what is already resident, ``data MiB``: the
resident set before the call, imports included; only the groove worker imports ``groove_sc``),
iterations per label (mean / max; groove counts the
epsilon-scaling levels too) and the fraction of labels that met the stopping rule, and the
difference of the unit-mass coupling blocks (each sums to 1) of the first 5 labels against
``pot_sinkhorn_f64`` (computed in the worker): ``max |dT|`` (largest entry), ``mean |dT|``
(mean over the entries) and ``L1`` (``sum |dT|`` of a block, largest of the 5; 0 = identical,
2 = disjoint). A summary gives ``groove / fastest POT`` per shape.

Before the timed call every worker solves the first label (warm-up), then the first few labels
(at least ``--estimate-labels``, default ``max(3, labels / 100)``, and 1 % of the cost entries);
that time, scaled by the number of cost entries (``sum_l n_l m_l`` for the loops; padded
entries of the chunks for ``pot_solve_batch_f32`` and for groove, whose batching of up to
``2**22`` padded entries is mirrored), estimates the full run, and the method is skipped at
that shape ("skipped (est. X s)") when the estimate exceeds ``--max-seconds`` (``0``: never
skip). Fixed costs make it an overestimate on small shapes; a padded chunk can take longer than
its first labels suggest (all the problems of a chunk iterate until the slowest has converged).

All workers run with one thread: ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` are 1 before numpy/torch are imported, and ``torch.set_num_threads(1)``.

Usage::

    python benchmarks/ot_vs_pot.py                              # the default shapes
    python benchmarks/ot_vs_pot.py --shapes 20000/200 unequal:20000/200
    python benchmarks/ot_vs_pot.py --methods groove pot_solve_batch_f32 --repeats 3 \\
        --max-seconds 300 --out benchmarks/results/ot_vs_pot
    python benchmarks/ot_vs_pot.py --shapes 2000/20 unequal:2000/20 --pot-backend torch

Prints a Markdown table; with ``--out DIR`` also writes ``DIR/ot_vs_pot.csv`` and
``DIR/ot_vs_pot.md`` (the tables, the command line, the CPU model, the versions of torch, POT
and numpy, and the thread settings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
for _var in _THREAD_VARS:  # before numpy (and torch, imported by POT) is imported
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

METHODS = ("groove", "groove_ot", "pot_sinkhorn_f64", "pot_sinkhorn_log_f32", "pot_solve_batch_f32")
#: the groove_sc rows (the others are POT)
GROOVE_METHODS = ("groove", "groove_ot")
DEFAULT_SHAPES = ("20000/200", "100000/1000", "200000/200", "1000000/1000", "unequal:100000/1000")
DIM = 16
N_REF = 5  # labels compared against the float64 POT reference
BATCH_ENTRIES = 2**24  # padded entries per solve_batch chunk


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


# ------------------------------------------------------------------------------------- data
def parse_shape(text: str) -> dict:
    """``"20000/200"`` or ``"unequal:100000/1000"`` -> kind, cells, labels."""
    kind, _, rest = text.rpartition(":")
    kind = kind or "equal"
    if kind not in ("equal", "unequal"):
        raise argparse.ArgumentTypeError(f"unknown shape kind {kind!r} in {text!r}")
    try:
        cells, labels = (int(v) for v in rest.split("/"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not CELLS/LABELS") from err
    if labels < 1 or cells < 2 * labels or (kind == "unequal" and labels < 2):
        raise argparse.ArgumentTypeError(
            f"shape {text!r}: need labels >= 1 (2 for unequal) and at least 2 cells per label"
        )
    return {"shape": text, "kind": kind, "cells": cells, "labels": labels}


def label_sizes(kind: str, n: int, n_labels: int, seed: int) -> np.ndarray:
    """Cells per label (the same in both modalities); they sum to ``n``."""
    if kind == "equal":
        sizes = np.full(n_labels, n // n_labels, dtype=np.int64)
        sizes[: n - int(sizes.sum())] += 1
        return sizes
    rng = np.random.default_rng([seed, 1])
    control = max(2, round(0.1 * n))
    rest = n - control
    w = rng.lognormal(0.0, 1.0, n_labels - 1)
    sizes = rng.multinomial(rest - 2 * (n_labels - 1), w / w.sum()) + 2
    return np.append(sizes, control).astype(np.int64)


class Data:
    """Points (float32) and label codes of both modalities, and the cells of each label."""

    def __init__(self, kind: str, n: int, n_labels: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.sizes = label_sizes(kind, n, n_labels, seed)
        self.n_labels = n_labels
        centres = rng.normal(size=(n_labels, DIM)) * 2.0
        self.x, self.codes, self.idx = [], [], []
        for _ in range(2):
            codes = rng.permutation(np.repeat(np.arange(n_labels), self.sizes))
            x = (centres[codes] + rng.normal(size=(n, DIM))).astype(np.float32)
            order = np.argsort(codes, kind="stable")  # each label's cells in position order
            self.x.append(x)
            self.codes.append(codes)
            self.idx.append(np.split(order, np.cumsum(self.sizes)[:-1]))

    def chunks(self, labels: list[int], limit: float | None) -> list[list[int]]:
        """Labels by decreasing size, in chunks whose padded ``B * n_max * m_max <= limit``."""
        order = sorted(labels, key=lambda lab: self.sizes[lab], reverse=True)
        out: list[list[int]] = []
        for lab in order:  # same sizes in both modalities: a chunk's first label is its largest
            if (
                out
                and limit is not None
                and (len(out[-1]) + 1) * self.sizes[out[-1][0]] ** 2 <= limit
            ):
                out[-1].append(lab)
            else:
                out.append([lab])
        return out

    def work(self, labels: list[int], limit: float | None = 0) -> float:
        """Cost entries of ``labels``: ``sum_l n_l m_l`` (``limit=0``), or padded in chunks."""
        if limit == 0:
            s = self.sizes[np.asarray(labels, dtype=np.int64)].astype(float)
            return float((s * s).sum())
        return float(sum(len(c) * float(self.sizes[c[0]]) ** 2 for c in self.chunks(labels, limit)))

    def label_points(self, label: int, dtype) -> tuple[np.ndarray, np.ndarray]:
        """The label's source and target points, centred on its source mean."""
        xs = self.x[0][self.idx[0][label]].astype(dtype)
        xt = self.x[1][self.idx[1][label]].astype(dtype)
        mu = xs.mean(0)
        return xs - mu, xt - mu


# ---------------------------------------------------------------------------------- methods
class _Method:
    """``prepare(labels)`` (untimed), ``run()`` (timed), ``collect()`` (untimed)."""

    def __init__(self, data: Data, args: argparse.Namespace) -> None:
        self.data, self.args = data, args

    #: padded entries per batch of the method's own batching (0: one label at a time)
    batch_entries: float = 0

    def prepare(self, labels: list[int], keep: list[int]) -> None:
        self.labels, self.keep = labels, keep

    def run(self) -> None:
        raise NotImplementedError

    def collect(self) -> dict:
        """``n_iter``, ``converged`` (per label) and ``plans`` (unit mass, ``keep`` labels)."""
        return self.result

    def clear(self) -> None:
        self.result = None


class Groove(_Method):
    batch_entries = 2**22  # groove_sc.ot.BATCH_ENTRIES (estimate only)

    def prepare(self, labels: list[int], keep: list[int]) -> None:
        import anndata as ad
        import mudata as md
        import pandas as pd

        super().prepare(labels, keep)
        md.set_options(pull_on_update=False)
        names = np.asarray([f"p{i}" for i in range(self.data.n_labels)])
        cats = names[np.asarray(labels)]
        lab = np.zeros(self.data.n_labels, dtype=bool)
        lab[labels] = True
        self.cells = []
        mods = {}
        for prefix, x, codes in zip(("rna", "other"), self.data.x, self.data.codes):
            cells = np.flatnonzero(lab[codes])
            self.cells.append(cells)
            adata = ad.AnnData(
                obs=pd.DataFrame(
                    {"perturbation": pd.Categorical(names[codes[cells]], categories=cats)},
                    index=pd.Index([f"{prefix}{i}" for i in cells]),
                )
            )
            adata.obsm["X_groove"] = x[cells]
            mods[prefix] = adata
        self.mdata = md.MuData(mods)

    def run(self) -> None:
        from groove_sc.tl import align

        a = self.args
        extra = {} if a.top_k is None else {"top_k": a.top_k}
        align(
            self.mdata,
            source="rna",
            target="other",
            method="sinkhorn",
            group_key="perturbation",
            epsilon=a.epsilon,
            tol=a.tol,
            max_iter=a.max_iter,
            dtype="float32",
            n_threads=1,
            **extra,
        )

    def clear(self) -> None:
        if "groove_coupling" in self.mdata.obsp:
            del self.mdata.obsp["groove_coupling"]
        self.mdata.uns.pop("groove_coupling", None)

    def collect(self) -> dict:
        diag = self.mdata.uns["groove_coupling"]["diagnostics"]
        t = self.mdata.obsp["groove_coupling"].tocsr()
        pos = []
        for mod in ("rna", "other"):
            om = np.asarray(self.mdata.obsmap[mod]).astype(np.int64)
            present = np.flatnonzero(om > 0)
            p = np.empty(self.mdata.mod[mod].n_obs, dtype=np.int64)
            p[om[present] - 1] = present
            pos.append(p)
        n_src = len(self.cells[0])
        plans = {}
        for label in self.keep:
            # rows/columns of the label's cells, in modality order, in the subset MuData
            rs = np.searchsorted(self.cells[0], self.data.idx[0][label])
            rt = np.searchsorted(self.cells[1], self.data.idx[1][label])
            block = t[pos[0][rs]][:, pos[1][rt]].toarray().astype(np.float64)
            plans[label] = block / (len(rs) / n_src)  # stored block mass is n_l / n
        return {
            "n_iter": np.asarray(diag["n_iter"], dtype=float),
            "converged": np.asarray(diag["converged"], dtype=bool),
            "plans": plans,
        }


class GrooveOT(_Method):
    """The array-level engine alone: ``groove_sc.ot`` label blocks and ``SinkhornSolver``,
    one unit-mass plan per label (what the POT loops compute), no MuData and no stored
    coupling."""

    batch_entries = 2**22

    def prepare(self, labels: list[int], keep: list[int]) -> None:
        import groove_sc.ot as got

        super().prepare(labels, keep)
        lab = np.zeros(self.data.n_labels, dtype=bool)
        lab[labels] = True
        self.cells = [np.flatnonzero(lab[c]) for c in self.data.codes]
        self.x = [x[c] for x, c in zip(self.data.x, self.cells)]
        names = np.asarray([f"{i}" for i in range(self.data.n_labels)], dtype=object)
        codes = [names[c[cells]] for c, cells in zip(self.data.codes, self.cells)]
        self.blocks, _, _ = got.label_blocks(codes[0], codes[1])
        a = self.args
        self.solver = got.make_solver(
            "sinkhorn", epsilon=a.epsilon, tol=a.tol, max_iter=a.max_iter, dtype="float32"
        )

    def run(self) -> None:
        keep = set(self.keep)
        plans, n_iter, converged = {}, {}, {}
        for r in self.solver.solve(self.blocks, self.x[0], self.x[1]):
            label = int(self.blocks[r.block].label)
            n_iter[label], converged[label] = r.n_iter, r.converged
            if label in keep:
                blk = self.blocks[r.block]
                # rows / columns in the order of the label's cells (data.idx)
                src = self.cells[0][blk.src]
                tgt = self.cells[1][blk.tgt]
                rs = np.argsort(np.argsort(src))
                rt = np.argsort(np.argsort(tgt))
                plan = np.empty_like(r.plan, dtype=np.float64)
                plan[np.ix_(rs, rt)] = r.plan
                plans[label] = plan
        self.result = {
            "n_iter": np.asarray([n_iter[lab] for lab in self.labels], dtype=float),
            "converged": np.asarray([converged[lab] for lab in self.labels], dtype=bool),
            "plans": plans,
        }


def _stop_scale(n: int, rule: str) -> float:
    """Mass ``c`` of uniform marginals ``c / n`` at which POT's absolute L2 rule ``<= tol`` is
    the relative one; for unit-mass marginals the threshold is ``tol / c``. ``sqrt(n)`` gives
    ``||a||_2 = 1`` (``"l2"``: ``||e||_2 <= tol ||a||_2``), ``n`` gives ``a_i = 1``
    (``"max"``: ``||e||_2 <= tol a_i``, which implies groove's ``max_i |e_i| / a_i <= tol``)."""
    return math.sqrt(n) if rule == "l2" else float(n)


def _to_backend(x: np.ndarray, backend: str):
    if backend == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(x))
    return x


def _to_numpy(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


class PotLoop(_Method):
    """One ``ot.sinkhorn`` call per label."""

    def __init__(self, data: Data, args: argparse.Namespace, method: str, dtype) -> None:
        super().__init__(data, args)
        self.method, self.dtype = method, dtype

    def run(self) -> None:
        import ot

        a_, be = self.args, self.args.pot_backend
        n_iter, converged, plans = [], [], {}
        keep = set(self.keep)
        for label in self.labels:
            xs, xt = self.data.label_points(label, self.dtype)
            n, m = len(xs), len(xt)
            c = ot.dist(_to_backend(xs, be), _to_backend(xt, be))
            c /= c.mean()
            a = _to_backend(np.full(n, 1.0 / n, dtype=self.dtype), be)
            b = _to_backend(np.full(m, 1.0 / m, dtype=self.dtype), be)
            stop = a_.tol / _stop_scale(m, a_.pot_stop)  # tol * ||b||_2 or tol * b_j
            plan, log = ot.sinkhorn(
                a,
                b,
                c,
                a_.epsilon,
                method=self.method,
                numItermax=a_.max_iter,
                stopThr=stop,
                log=True,
                warn=False,
            )
            n_iter.append(int(log["niter"]) + 1)  # POT logs the 0-based index of the last one
            converged.append(bool(log["err"]) and float(log["err"][-1]) < stop)
            if label in keep:
                plans[label] = _to_numpy(plan).astype(np.float64)
            del plan, c
        self.result = {
            "n_iter": np.asarray(n_iter, dtype=float),
            "converged": np.asarray(converged, dtype=bool),
            "plans": plans,
        }


class PotBatch(_Method):
    """``ot.solve_batch`` on padded chunks of labels."""

    dtype = np.float32
    batch_entries = BATCH_ENTRIES

    def run(self) -> None:
        import ot

        a_, be, dt = self.args, self.args.pot_backend, self.dtype
        n_iter, converged, plans = {}, {}, {}
        keep = set(self.keep)
        for chunk in self.data.chunks(self.labels, BATCH_ENTRIES):
            ns = [len(self.data.idx[0][lab]) for lab in chunk]
            ms = [len(self.data.idx[1][lab]) for lab in chunk]
            nb, nmax, mmax = len(chunk), max(ns), max(ms)
            xs = np.zeros((nb, nmax, DIM), dtype=dt)
            xt = np.zeros((nb, mmax, DIM), dtype=dt)
            a = np.zeros((nb, nmax), dtype=dt)
            b = np.zeros((nb, mmax), dtype=dt)
            for k, lab in enumerate(chunk):
                n, m = ns[k], ms[k]
                xs[k, :n], xt[k, :m] = self.data.label_points(lab, dt)
                # marginals of mass c: tol becomes relative (see _stop_scale)
                c = _stop_scale(n, a_.pot_stop)
                a[k, :n] = c / n
                b[k, :m] = c / m
            cost = ot.batch.dist_batch(_to_backend(xs, be), _to_backend(xt, be))
            for k in range(nb):
                n, m = ns[k], ms[k]
                cost[k] /= cost[k, :n, :m].mean()
                cost[k, n:, :] = 0.0
                cost[k, :, m:] = 0.0
            with np.errstate(divide="ignore", invalid="ignore"):  # log(0) of the padding
                res = ot.solve_batch(
                    cost,
                    a_.epsilon,
                    a=_to_backend(a, be),
                    b=_to_backend(b, be),
                    max_iter=a_.max_iter,
                    tol=a_.tol,
                    method="log_sinkhorn",
                    grad="detach",
                )
            plan = _to_numpy(res.plan)
            it = int(res.log["n_iter"]) + 1  # one count per chunk, 0-based in POT
            for k, lab in enumerate(chunk):
                n, m = ns[k], ms[k]
                c = _stop_scale(n, a_.pot_stop)
                err = float(np.linalg.norm(plan[k, :n].sum(1, dtype=np.float64) - c / n))
                n_iter[lab] = it
                converged[lab] = err <= a_.tol  # re-checked in float64
                if lab in keep:
                    plans[lab] = plan[k, :n, :m].astype(np.float64) / c
            del res, plan, cost
        self.result = {
            "n_iter": np.asarray([n_iter[lab] for lab in self.labels], dtype=float),
            "converged": np.asarray([converged[lab] for lab in self.labels], dtype=bool),
            "plans": plans,
        }


def make_method(name: str, data: Data, args: argparse.Namespace) -> _Method:
    if name == "groove":
        return Groove(data, args)
    if name == "groove_ot":
        return GrooveOT(data, args)
    if name == "pot_sinkhorn_f64":
        return PotLoop(data, args, "sinkhorn", np.float64)
    if name == "pot_sinkhorn_log_f32":
        return PotLoop(data, args, "sinkhorn_log", np.float32)
    if name == "pot_solve_batch_f32":
        return PotBatch(data, args)
    raise ValueError(name)


# ----------------------------------------------------------------------------------- worker
def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("groove_sc").setLevel(logging.ERROR)


def worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(1)
    _quiet()
    import ot  # noqa: F401 - imported before any timing

    if args.worker in GROOVE_METHODS:
        import groove_sc.tl  # noqa: F401

    spec = parse_shape(args.worker_shape)
    data = Data(spec["kind"], spec["cells"], spec["labels"], args.seed)
    labels = list(range(spec["labels"]))
    keep = labels[:N_REF]
    out: dict = {"n_ref": len(keep)}

    # warm-up on the first label, then a quick run on the first labels for the time estimate:
    # at least --estimate-labels of them and 1 % of the cost entries
    total = data.work(labels)
    n_quick = max(1, min(len(labels), args.estimate_labels))
    while n_quick < len(labels) and data.work(labels[:n_quick]) < 0.01 * total:
        n_quick += 1
    quick = labels[:n_quick]
    limit = make_method(args.worker, data, args).batch_entries
    for subset in (labels[:1], quick):
        meth = make_method(args.worker, data, args)
        meth.prepare(subset, [])
        t0 = time.perf_counter()
        meth.run()
        quick_s = time.perf_counter() - t0
        meth.clear()
        del meth
    est = quick_s * data.work(labels, limit) / data.work(quick, limit)
    out.update(estimate_s=est, estimate_labels=len(quick))
    if args.max_seconds > 0 and est > args.max_seconds:
        out["note"] = f"skipped (est. {est:,.0f} s)" if est >= 10 else f"skipped (est. {est:.1f} s)"
        return out

    meth = make_method(args.worker, data, args)
    meth.prepare(labels, keep)
    times, peaks, before = [], [], []
    for _ in range(args.repeats):
        meth.clear()
        with _Phase() as ph:
            meth.run()
        times.append(ph.seconds)
        peaks.append(ph.peak)
        before.append(ph.before)
    res = meth.collect()
    del meth
    it, conv = res["n_iter"], res["converged"]
    out.update(
        seconds=min(times),
        all_seconds=times,
        peak_mib=max(peaks),
        data_mib=min(before),
        iter_mean=float(it.mean()),
        iter_max=float(it.max()),
        iter_sum=float(it.sum()),
        converged=float(conv.mean()),
    )

    # the float64 POT loop on the first labels is the reference
    if args.worker == "pot_sinkhorn_f64":
        ref = res["plans"]
    else:
        r = PotLoop(data, args, "sinkhorn", np.float64)
        r.prepare(keep, keep)
        r.run()
        ref = r.collect()["plans"]
    diffs = [np.abs(res["plans"][lab] - ref[lab]) for lab in keep]
    out.update(
        diff_max=float(max(d.max() for d in diffs)),
        diff_mean=float(np.mean([d.mean() for d in diffs])),
        diff_l1=float(max(d.sum() for d in diffs)),
    )
    return out


# ----------------------------------------------------------------------------------- driver
def run_worker(spec: dict, method: str, args: argparse.Namespace) -> dict:
    row: dict = {"shape": spec["shape"], "method": method, **spec}
    cmd = [sys.executable, __file__, "--worker", method, "--worker-shape", spec["shape"]]
    for flag in ("seed", "epsilon", "tol", "max_iter", "repeats", "max_seconds"):
        cmd += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    cmd += ["--estimate-labels", str(args.estimate_labels), "--pot-backend", args.pot_backend]
    cmd += ["--pot-stop", args.pot_stop]
    if args.top_k is not None:
        cmd += ["--top-k", str(args.top_k)]
    env = {**os.environ, **dict.fromkeys(_THREAD_VARS, "1")}
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


def _iters(r: dict) -> str | None:
    if r.get("iter_mean") is None:
        return None
    return f"{r['iter_mean']:.0f} / {r['iter_max']:.0f}"


COLS = [
    ("shape", "shape", "{}"),
    ("method", "method", "{}"),
    ("seconds", "seconds", "{:.2f}"),
    ("ratio_to_groove", "ratio to groove", "{:.2f}"),
    ("peak_mib", "peak MiB", "{:,.0f}"),
    ("data_mib", "data MiB", "{:,.0f}"),
    ("iterations", "iterations (mean / max)", "{}"),
    ("converged", "converged", "{:.0%}"),
    ("diff_max", "max abs(T - T_pot64)", "{:.2e}"),
    ("diff_mean", "mean abs(T - T_pot64)", "{:.2e}"),
    ("diff_l1", "L1(T - T_pot64)", "{:.2e}"),
    ("note", "note", "{}"),
]
SUMMARY_COLS = [
    ("shape", "shape", "{}"),
    ("groove_s", "tl.align s", "{:.2f}"),
    ("engine_s", "groove_sc.ot s", "{:.2f}"),
    ("fastest_pot", "fastest POT", "{}"),
    ("fastest_pot_s", "fastest POT s", "{:.2f}"),
    ("pot_over_groove", "speed-up of tl.align", "{:.2f}x"),
    ("pot_over_engine", "speed-up of groove_sc.ot", "{:.2f}x"),
]


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """Markdown table of ``rows`` with the given ``(key, header, format)`` columns."""
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [fmt.format(r[k]) if r.get(k) is not None else "" for k, _, fmt in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    import platform

    return platform.processor() or "unknown"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("torch", "POT", "numpy", "groove-sc"):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist} ?")
    return ", ".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--shapes",
        nargs="+",
        default=list(DEFAULT_SHAPES),
        help="CELLS/LABELS or unequal:CELLS/LABELS",
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--repeats", type=int, default=1, help="timed runs; the best is reported")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=900.0,
        help="skip a method at a shape when its estimate exceeds this (0: never)",
    )
    p.add_argument(
        "--estimate-labels",
        type=int,
        default=None,
        help="labels of the quick estimate run (default max(3, labels / 100))",
    )
    p.add_argument("--epsilon", type=float, default=0.05)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--max-iter", type=int, default=1000)
    p.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="groove only: keep the top_k entries per row (default: dense blocks)",
    )
    p.add_argument("--pot-backend", default="numpy", choices=["numpy", "torch"])
    p.add_argument(
        "--pot-stop",
        default="l2",
        choices=["l2", "max"],
        help="POT tolerance: tol * ||b||_2 (l2, default) or tol * b_j (max; implies groove's rule)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=int, default=7200, help="seconds per worker")
    p.add_argument("--out", default=None, help="folder for ot_vs_pot.csv and ot_vs_pot.md")
    p.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--worker-shape", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return

    specs = [parse_shape(s) for s in args.shapes]
    rows, summary = [], []
    for spec in specs:
        shape_args = argparse.Namespace(**vars(args))
        if shape_args.estimate_labels is None:
            shape_args.estimate_labels = max(3, spec["labels"] // 100)
        shape_rows = []
        for method in args.methods:
            shape_rows.append(run_worker(spec, method, shape_args))
            print(json.dumps(shape_rows[-1]), file=sys.stderr, flush=True)
        by = {r["method"]: r for r in shape_rows if r.get("seconds") is not None}
        g = by.get("groove")
        for r in shape_rows:
            r["iterations"] = _iters(r)
            if g is not None and r.get("seconds") is not None:
                r["ratio_to_groove"] = r["seconds"] / g["seconds"]
        pots = [r for m, r in by.items() if m not in GROOVE_METHODS]
        engine = by.get("groove_ot")
        if (g is not None or engine is not None) and pots:
            best = min(pots, key=lambda r: r["seconds"])
            summary.append(
                {
                    "shape": spec["shape"],
                    "groove_s": None if g is None else g["seconds"],
                    "engine_s": None if engine is None else engine["seconds"],
                    "fastest_pot": best["method"],
                    "fastest_pot_s": best["seconds"],
                    "pot_over_groove": None if g is None else best["seconds"] / g["seconds"],
                    "pot_over_engine": (
                        None if engine is None else best["seconds"] / engine["seconds"]
                    ),
                }
            )
        rows += shape_rows

    pot_thr, batch_thr = {
        "l2": ("tol * ||b||_2", "tol * ||a_l||_2"),
        "max": ("tol * b_j", "tol * a_l,i"),
    }[args.pot_stop]
    threads = ", ".join(f"{v}=1" for v in _THREAD_VARS) + ", torch.set_num_threads(1)"
    header = (
        f"Labeled entropic OT, epsilon {args.epsilon} on mean-normalised squared Euclidean "
        f"costs (dim {DIM}), max {args.max_iter} iterations, tol {args.tol:g}. Stopping: "
        f"groove max_i |(T1)_i - a_i| / a_i <= tol; POT loops ||T^T 1 - b||_2 <= {pot_thr}; "
        f"solve_batch, over each chunk, max_l ||T_l 1 - a_l||_2 <= {batch_thr} "
        f"(--pot-stop {args.pot_stop}). "
        f"POT backend {args.pot_backend}; groove top_k {args.top_k}. "
        f"`ratio to groove` = seconds / groove seconds; `T - T_pot64`: unit-mass blocks of the "
        f"first {N_REF} labels against pot_sinkhorn_f64.\n\n"
        f"CPU: {_cpu_model()} ({os.cpu_count()} CPUs, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM); "
        f"{_versions()}; threads: {threads}."
    )
    text = "### groove_sc vs POT: labeled Sinkhorn\n\n" + header + "\n\n" + table(rows, COLS)
    if summary:
        text += "\n\n" + table(summary, SUMMARY_COLS)
    command = shlex.join(["python", *sys.argv] if argv is None else argv)
    text += f"\n\nCommand: `{command}`\n"
    print("\n" + text)
    if args.out:
        import pandas as pd

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out / "ot_vs_pot.csv", index=False)
        (out / "ot_vs_pot.md").write_text(text)


if __name__ == "__main__":
    main()
