"""GROOVE on SNARE-seq (real data, weakly paired split): latent FOSCTTM and label transfer.

Reads ``../shared/data/snareseq_cellmix.h5mu`` (or ``--path``), splits it into disjoint training
cells per modality and paired held-out test cells (:func:`groove_sc.data.split_weakly_paired`),
trains GROOVE and, as the no-GroupCLIP baseline, the same model with ``beta=0``, for several
seeds, and prints mean and standard deviation over seeds of:

- latent FOSCTTM on the test pairs (0 perfect, 0.5 random; mid-rank ties, both directions);
- 1-NN cross-modal label transfer on the test cells (both directions averaged).

Usage::

    python benchmarks/snareseq_groove.py --seeds 0 1 2 --epochs 200
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import mudata
import pandas as pd
import torch

import groove_sc as gs


def run(path: str | None, seeds: list[int], epochs: int, configs: dict[str, dict]) -> pd.DataFrame:
    mdata = gs.datasets.snareseq(path)
    rows = []
    for seed in seeds:
        train, test = gs.data.split_weakly_paired(mdata, "cell_type", test_size=0.2, seed=seed)
        a, b = list(train.mod)
        for name, kwargs in configs.items():
            data = train.copy()
            gs.model.GROOVE.setup_mudata(data, perturbation_key="cell_type")
            model = gs.model.GROOVE(data, seed=seed, **kwargs)
            start = time.perf_counter()
            model.train(
                max_epochs=epochs, seed=seed, enable_progress_bar=False, enable_model_summary=False
            )
            seconds = time.perf_counter() - start
            z = model.get_latent_representation(test)
            la = test.mod[a].obs["cell_type"].to_numpy()
            lb = test.mod[b].obs["cell_type"].to_numpy()
            transfer = (
                gs.tl.label_transfer_accuracy(z[a], la, z[b], lb)
                + gs.tl.label_transfer_accuracy(z[b], lb, z[a], la)
            ) / 2
            rows.append(
                {
                    "model": name,
                    "seed": seed,
                    "latent_foscttm": gs.tl.foscttm(z[a], z[b]),
                    "label_transfer": transfer,
                    "seconds": seconds,
                }
            )
            print(
                f"seed {seed} {name:>14}: FOSCTTM {rows[-1]['latent_foscttm']:.3f}  "
                f"label transfer {transfer:.3f}  ({seconds:.0f} s)",
                flush=True,
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--path", default=None, help="snareseq_cellmix.h5mu (default: ../shared/data)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    mudata.set_options(pull_on_update=False)
    configs = {"GROOVE": {}, "GROOVE beta=0": {"beta": 0.0}}
    df = run(args.path, args.seeds, args.epochs, configs)
    summary = df.groupby("model", sort=False)[["latent_foscttm", "label_transfer", "seconds"]].agg(
        ["mean", "std"]
    )
    print()
    print(
        f"SNARE-seq, weakly paired split, test_size 0.2, {len(args.seeds)} seeds, "
        f"{args.epochs} epochs"
    )
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        print(summary)
    print("reference: unsupervised SCOT FOSCTTM 0.150 (no labels); random 0.5")


if __name__ == "__main__":
    main()
