"""Results a user can trust: the checks on the committed ``real`` and ``simulation`` runs.

Reads the tidy ``results.csv`` of benchmark runs and prints (and with ``--out`` writes) four
Markdown tables:

1. **Validation against test.** For GROOVE, the final ``label_transfer_validation`` of
   training (validation cells held out of the weakly paired training data) against the same
   15-NN label transfer computed on the held-out *test* cells of the benchmark
   (``label_transfer_heldout``), per dataset and seed, with the binomial standard error of the
   validation estimate ``sqrt(p (1 - p) / (2 n_val))`` (``n_val`` validation cells per
   modality, from :func:`groove_sc.data.default_validation_cells`).
2. **New against previous defaults** (``groove`` vs ``groove_previous_default``) on held-out
   test cells: latent FOSCTTM and Sinkhorn trace ratio, mean +- SE over seeds per dataset and
   a paired Wilcoxon test pooled over the real datasets.
3. **Memorisation**: label transfer of held-out test cells and of training cells, and their
   gap, for both.
4. **The auto aligner** (``auto_matching``, ``auto_imputation``) next to the uniform coupling
   and the best fixed aligner of the same learner.

Usage::

    python benchmarks/trust_report.py benchmarks/results/real benchmarks/results/simulation \\
        --out benchmarks/results/trust.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

REAL = ("snareseq", "citeseq", "papalexi_two_view")
FIXED = ("sinkhorn", "emd", "gw", "fgw", "coot")


def _load(folders: list[Path]) -> pd.DataFrame:
    parts = []
    for f in folders:
        df = pd.read_csv(f / "results.csv", keep_default_na=False, na_values=[""])
        df["setting"] = df["setting"].fillna("").astype(str)
        df["run"] = f.name
        parts.append(df)
    df = pd.concat(parts, ignore_index=True)
    df = df[df.status == "ok"]
    df["data"] = np.where(df.setting != "", df.dataset + " " + df.setting, df.dataset)
    return df


def _value(df: pd.DataFrame, learner: str, aligner: str, metric: str) -> pd.Series:
    sel = df[(df.learner == learner) & (df.aligner == aligner) & (df.metric == metric)]
    return sel.set_index(["data", "protocol", "seed"])["value"]


def _mse(x: pd.Series) -> str:
    x = x.dropna()
    if len(x) == 0:
        return "n/a"
    se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return f"{x.mean():.3f} ± {se:.3f}"


def validation_table(df: pd.DataFrame, n_val: dict[str, int]) -> str:
    """label_transfer_validation vs the same metric on the test cells, per seed."""
    v = _value(df, "groove", "uniform", "label_transfer_validation")
    t = _value(df, "groove", "uniform", "label_transfer_heldout")
    both = pd.concat({"validation": v, "test": t}, axis=1).dropna()
    both = both.xs("heldout_cells", level="protocol")
    rows = []
    for (data, seed), r in both.iterrows():
        n = n_val.get(data.split(" ")[0], np.nan)
        p = r.validation
        se = np.sqrt(max(p * (1 - p), 1e-12) / (2 * n)) if np.isfinite(n) else np.nan
        rows.append(
            {
                "dataset": data,
                "seed": seed,
                "validation": p,
                "test": r.test,
                "difference": p - r.test,
                "binomial SE": se,
                "within 2 SE": abs(p - r.test) <= 2 * se,
                "validation cells per modality": n,
            }
        )
    out = pd.DataFrame(rows)
    summary = out.groupby("dataset").agg(
        mean_difference=("difference", "mean"),
        max_abs_difference=("difference", lambda x: float(np.abs(x).max())),
        seeds_within_2_se=("within 2 SE", "sum"),
        seeds=("seed", "size"),
    )
    return (
        out.round(3).to_markdown(index=False)
        + "\n\nPer dataset:\n\n"
        + summary.round(3).to_markdown()
    )


def defaults_table(df: pd.DataFrame) -> str:
    """groove vs groove_previous_default on held-out cells, pooled Wilcoxon (real, simulated)."""
    lines = []
    rows = []
    for metric, aligner, better in (
        ("foscttm", "uniform", "lower"),
        ("trace_ratio", "sinkhorn", "higher"),
        ("label_transfer_heldout", "uniform", "higher"),
    ):
        new = _value(df, "groove", aligner, metric)
        old = _value(df, "groove_previous_default", aligner, metric)
        pair = pd.concat({"new": new, "old": old}, axis=1).dropna()
        pair = pair.xs("heldout_cells", level="protocol")
        for data, g in pair.groupby(level="data"):
            rows.append(
                {"metric": metric, "dataset": data, "new": _mse(g.new), "previous": _mse(g.old)}
            )
        is_real = pair.index.get_level_values("data").isin(REAL)
        for scope, part in (("real datasets", pair[is_real]), ("simulations", pair[~is_real])):
            if len(part) < 2:
                continue
            diff = part.new - part.old
            wins = int((diff < 0).sum() if better == "lower" else (diff > 0).sum())
            p = wilcoxon(part.new, part.old).pvalue if (diff != 0).any() else 1.0
            lines.append(
                f"- {metric} ({better} is better; aligner {aligner}), pooled over the {scope}: "
                f"new better in {wins} of {len(part)} paired runs, mean difference "
                f"{diff.mean():+.4f}, Wilcoxon p = {p:.3g}."
            )
    return pd.DataFrame(rows).to_markdown(index=False) + "\n\n" + "\n".join(lines)


def memorisation_table(df: pd.DataFrame) -> str:
    rows = []
    for learner in ("groove", "groove_previous_default", "clip_random_pairs"):
        test = _value(df, learner, "uniform", "label_transfer_heldout")
        train = _value(df, learner, "uniform", "label_transfer_train")
        both = pd.concat({"test": test, "train": train}, axis=1).dropna()
        both = both.xs("heldout_cells", level="protocol")
        for data, g in both.groupby(level="data"):
            rows.append(
                {
                    "dataset": data,
                    "learner": learner,
                    "held-out cells": _mse(g.test),
                    "training cells": _mse(g.train),
                    "gap": _mse(g.train - g.test),
                }
            )
    return pd.DataFrame(rows).sort_values(["dataset", "learner"]).to_markdown(index=False)


def auto_table(df: pd.DataFrame) -> str:
    rows = []
    for learner in ("groove", "clip_random_pairs"):
        for (data, protocol), g in df[df.learner == learner].groupby(["data", "protocol"]):
            piv = g.pivot_table(index="seed", columns=["aligner", "metric"], values="value")
            if ("auto_matching", "trace_ratio") not in piv:
                continue
            fixed = [a for a in FIXED if (a, "trace_ratio") in piv]
            means = {a: piv[(a, "trace_ratio")].mean() for a in fixed}
            best = max(means, key=means.get) if means else None
            bary_best = (
                min(fixed, key=lambda a: piv[(a, "foscttm_barycentric")].mean()) if fixed else None
            )
            m = piv[("auto_matching", "trace_ratio")]
            rows.append(
                {
                    "dataset": data,
                    "protocol": protocol,
                    "learner": learner,
                    "auto(matching) trace ratio": _mse(m),
                    "best fixed trace ratio": f"{best}: {_mse(piv[(best, 'trace_ratio')])}"
                    if best
                    else "n/a",
                    "auto / best": f"{m.mean() / means[best]:.2f}" if best else "n/a",
                    "auto(imputation) bary FOSCTTM": _mse(
                        piv[("auto_imputation", "foscttm_barycentric")]
                    ),
                    "uniform bary FOSCTTM": _mse(piv[("uniform", "foscttm_barycentric")]),
                    "best fixed bary FOSCTTM": f"{bary_best}: "
                    f"{_mse(piv[(bary_best, 'foscttm_barycentric')])}"
                    if bary_best
                    else "n/a",
                    "auto(imputation) Pearson": _mse(
                        piv[("auto_imputation", "impute_pearson_cell")]
                    ),
                    "uniform Pearson": _mse(piv[("uniform", "impute_pearson_cell")]),
                    "signal verdicts": int(piv[("auto_matching", "within_label_signal")].sum()),
                    "seeds": len(piv),
                }
            )
    return pd.DataFrame(rows).to_markdown(index=False)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from groove_sc import datasets
    from groove_sc.benchmark._data import load_dataset
    from groove_sc.data import default_validation_cells, split_weakly_paired

    df = _load(args.folders)
    # validation cells per modality of the real datasets' weakly paired training data
    n_val = {}
    for name, loader, key, extra in (
        ("citeseq", "citeseq_pbmc", "group", {}),
        ("snareseq", "snareseq", "cell_type", {}),
        (
            "papalexi_two_view",
            "papalexi_two_view",
            "perturbation",
            {"params": {"seed": 0}, "subsample_per_label": 100, "log1p": True},
        ),
    ):
        try:
            mdata = load_dataset(loader, label_key=key, seed=0, **extra)
        except FileNotFoundError:
            continue
        train, _ = split_weakly_paired(mdata, key, test_size=0.2, seed=0)
        n_val[name] = int(min(default_validation_cells(train.mod[m].n_obs) for m in train.mod))
    # simulation.yaml: 20 labels x 60 cells per modality, 20 % held out for the test
    n_val["simulation"] = int(default_validation_cells(round(20 * 60 * 0.8)))
    del datasets
    text = "\n\n".join(
        [
            "# Results a user can trust: checks on the committed runs",
            "## 1. label_transfer_validation against the held-out test cells (GROOVE)",
            validation_table(df, n_val),
            "## 2. New defaults against the previous ones (held-out test cells)",
            defaults_table(df),
            "## 3. Memorisation: label transfer of held-out and of training cells",
            memorisation_table(df),
            "## 4. method='auto' against uniform and the best fixed aligner",
            auto_table(df),
        ]
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
