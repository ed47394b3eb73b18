"""Sensitivity of GROOVE to beta (GroupCLIP weight) and tau (temperature), with Optuna.

Trains GROOVE for each (beta, tau) on simulations with shared fractions 1.0, 0.8 and 0.5
(optionally also SNARE-seq and CITE-seq), couples the held-out test cells with labeled Sinkhorn
and writes the trials (trace, barycentric FOSCTTM, latent FOSCTTM, ... averaged over the
datasets and seeds) and the landscape figure. Needs ``pip install 'groove-sc[tune]'``.

Usage::

    # a 4 x 3 grid (the most readable landscape), 1 seed
    python benchmarks/tune_groove.py --grid --out benchmarks/results/tune
    # 30 TPE trials over log-uniform ranges
    python benchmarks/tune_groove.py --trials 30 --out benchmarks/results/tune_tpe
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mudata

import groove_sc.benchmark as gb

SIM = {"n_perturbations": 20, "cells_per_perturbation": 60, "effect_size": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/tune")
    parser.add_argument("--grid", action="store_true", help="grid instead of TPE")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.3, 1.0, 3.0])
    parser.add_argument("--taus", type=float, nargs="+", default=[0.05, 0.1, 0.5])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=250, help="training steps per fit")
    parser.add_argument("--real", action="store_true", help="add SNARE-seq and CITE-seq")
    args = parser.parse_args()
    mudata.set_options(pull_on_update=False)
    datasets = [
        {
            "name": f"rho={rho}",
            "loader": "simulate",
            "label_key": "perturbation",
            "params": {**SIM, "shared_fraction": rho},
        }
        for rho in (1.0, 0.8, 0.5)
    ]
    if args.real:
        datasets += [
            {"name": "snareseq", "loader": "snareseq", "label_key": "cell_type"},
            {"name": "citeseq", "loader": "citeseq_pbmc", "label_key": "group"},
        ]
    trials = gb.tune(
        n_trials=args.trials,
        datasets=datasets,
        seeds=args.seeds,
        grid={"beta": args.betas, "tau": args.taus} if args.grid else None,
        learner_kwargs={"n_steps": args.steps, "batch_size": 256},
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trials.to_csv(out / "trials.csv", index=False)
    gb.plot_landscape(
        trials,
        metrics=("trace", "foscttm_barycentric", "foscttm"),
        defaults={"beta": 0.3, "tau": 0.5},
        save=str(out / "landscape.png"),
    )
    cols = ["beta", "tau", "trace", "trace_ratio", "foscttm_barycentric", "foscttm"]
    print(trials.sort_values("foscttm_barycentric")[cols].round(4).to_string(index=False))
    print(f"written: {out / 'trials.csv'}, {out / 'landscape.png'}")


if __name__ == "__main__":
    main()
