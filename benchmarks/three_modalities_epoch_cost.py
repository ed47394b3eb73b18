"""Epoch cost of a three-modality GROOVE model against a two-modality one on the same cells.

A jointly measured screen is simulated with three modalities (``simulate(n_modalities=3)``:
``rna``, ``protein``, ``atac``; Gaussian features) and made weakly paired by giving each
modality's cells their own ``obs_names`` (every modality keeps all ``--cells`` cells, so both
models read the same ``rna`` and ``protein`` cells and the three-modality model reads the
``atac`` cells as well). Each model (the default architecture: 2 hidden layers of 128, 16
latent dimensions) trains ``--epochs`` epochs of ``ceil(cells / batch_size)`` label-balanced
steps (the same number of steps for both models), with no validation cells, no label-transfer
monitor and no early stopping, on one CPU thread (``torch.set_num_threads(1)``). Epoch times
come from a Lightning callback (``on_train_epoch_start`` to ``on_train_epoch_end``), so they
exclude setup; the first epoch is a warm-up and a run's time is the median of the others.
Each setting is run ``--repeats`` times, the two- and three-modality models alternating, and
the fastest run is reported (the least disturbed by other processes on a shared machine).

Settings per size: the default ``alpha = 0.3`` (backtranslation through every ordered pair of
modalities: 2 with two modalities, 6 with three), ``alpha = 0.3`` with
``backtranslation_targets=1`` (three modalities: each modality backtranslated through one
randomly drawn other modality per step, 3 pairs) and ``alpha = 0`` (no backtranslation:
reconstruction and GroupCLIP only; GroupCLIP over 1 or 3 pairs). ``vs 2`` is the epoch time
over that of the two-modality model with the same ``alpha``.

Usage::

    python benchmarks/three_modalities_epoch_cost.py                 # 2000 and 20000 cells
    python benchmarks/three_modalities_epoch_cost.py --cells 2000 --epochs 3 \\
        --out benchmarks/results/three_modalities

Prints a Markdown table; with ``--out`` also writes ``epoch_cost.csv`` and ``epoch_cost.md``.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

import groove_sc as gs
from groove_sc.data._mudata import _make_mudata
from groove_sc.model import GROOVE

MODALITIES = ["rna", "protein", "atac"]


class _EpochTimer(Callback):
    """Wall time of every training epoch."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._t0)


def weakly_paired(n_cells: int, n_labels: int, n_features: list[int], seed: int):
    """Three modalities of ``n_cells`` cells each, each modality its own cells (obs_names)."""
    per_label = -(-n_cells // n_labels)
    sim = gs.datasets.simulate(
        n_modalities=3,
        n_perturbations=n_labels,
        cells_per_perturbation=per_label,
        n_features=n_features,
        seed=seed,
    )
    mods = {}
    for m in MODALITIES:
        adata = sim.mod[m][:n_cells].copy()
        adata.obs_names = [f"{m}:{name}" for name in adata.obs_names]
        mods[m] = adata
    return mods


def epoch_seconds(
    mods: dict, modalities: list[str], alpha: float, targets: int | None, args
) -> tuple[float, int]:
    """Median epoch time (after a warm-up epoch) and the steps per epoch."""
    mdata = _make_mudata({m: mods[m].copy() for m in modalities})
    GROOVE.setup_mudata(mdata, perturbation_key="perturbation", modalities=modalities)
    model = GROOVE(mdata, alpha=alpha, seed=args.seed, backtranslation_targets=targets)
    timer = _EpochTimer()
    model.train(
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        validation_size=0,
        early_stopping=False,
        label_transfer_cells=0,
        accelerator="cpu",
        seed=args.seed,
        callbacks=[timer],
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=None,
    )
    steps = -(-max(mdata.mod[m].n_obs for m in modalities) // args.batch_size)
    return float(np.median(timer.seconds[1:])), int(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--features", type=int, nargs=3, default=[2000, 100, 1000])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # Lightning's notices; not what is measured

    settings = [(2, 0.3, None), (3, 0.3, None), (3, 0.3, 1), (2, 0.0, None), (3, 0.0, None)]
    rows = []
    for n_cells in args.cells:
        mods = weakly_paired(n_cells, args.labels, args.features, args.seed)
        runs: dict[tuple, list[float]] = {setting: [] for setting in settings}
        steps = {}
        for _ in range(args.repeats):  # the settings alternate within each repeat
            for k, alpha, targets in settings:
                sec, steps[k] = epoch_seconds(mods, MODALITIES[:k], alpha, targets, args)
                runs[(k, alpha, targets)].append(sec)
        best = {setting: min(v) for setting, v in runs.items()}
        for k, alpha, targets in settings:
            sec = best[(k, alpha, targets)]
            rows.append(
                {
                    "cells per modality": n_cells,
                    "labels": args.labels,
                    "modalities": k,
                    "alpha": alpha,
                    "backtranslation targets": "all" if targets is None else targets,
                    "steps per epoch": steps[k],
                    "epoch s": round(sec, 3),
                    "ms per step": round(1000 * sec / steps[k], 2),
                    "runs s": " / ".join(f"{v:.3f}" for v in runs[(k, alpha, targets)]),
                    "vs 2": round(sec / best[(2, alpha, None)], 2),
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    md_table = table.to_markdown(index=False)
    header = (
        f"Features: rna {args.features[0]}, protein {args.features[1]}, atac "
        f"{args.features[2]} (Gaussian); batch size {args.batch_size}; {args.epochs} epochs "
        f"(median of all but the first), fastest of {args.repeats} runs; 1 torch thread; "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}.\n\n"
    )
    print(header + md_table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "epoch_cost.csv", index=False)
        (args.out / "epoch_cost.md").write_text(
            "# Epoch cost: three modalities against two on the same cells\n\n"
            "`python benchmarks/three_modalities_epoch_cost.py "
            f"--cells {' '.join(map(str, args.cells))} --epochs {args.epochs} "
            f"--repeats {args.repeats} --out {args.out}`"
            "\n\n" + header + md_table + "\n"
        )


if __name__ == "__main__":
    main()
