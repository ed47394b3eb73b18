"""The two-modality GROOVE against the three-modality one, from a three_modalities run.

    python benchmarks/three_modalities_report.py benchmarks/results/three_modalities

writes ``comparison.md`` and ``wilcoxon_pairs.csv`` into that folder. ``comparison.md``: per
dataset and setting, each metric of A-B matching for ``groove`` (trained on A and B) and
``groove_abc`` (on A, B and C), and ``groove_beta_x3`` against ``groove_abc_beta_x3``,
mean ± SE over seeds, the paired difference (three minus two modalities, mean ± SE over
seeds), the seeds
where the third modality helps, the exact two-sided Wilcoxon signed-rank p-value over the
paired seeds (``scipy.stats.wilcoxon``, as ``wilcoxon.csv``; 5 pairs cannot go below 0.0625)
and the labels-only value (the ``uniform`` aligner); then the same tests pooled over the
simulation settings (25 pairs). ``wilcoxon_pairs.csv``: the same tests as
:func:`groove_sc.benchmark.wilcoxon_vs_best` rows (``learner``: the three-modality learner,
``best_other`` and ``versus``: its two-modality one; ``setting`` ``all`` for the pooled ones),
for every metric and aligner.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

import groove_sc.benchmark as gb
from groove_sc._results import lower_is_better, markdown_table, mean_se_text, read_results

#: (two-modality learner, three-modality learner, what they share): the comparisons
COMPARISONS = [
    ("groove", "groove_abc", "beta 0.3 (the default)"),
    ("groove_beta_x3", "groove_abc_beta_x3", "beta 0.9 (diagnostic and its control)"),
]
#: metrics that do not depend on the aligner (read from the ``uniform`` rows)
LATENT = ("foscttm", "label_transfer_latent", "label_transfer_heldout")
#: (metric, aligners) of the tables
ROWS = [
    ("trace_ratio", ["sinkhorn", "emd"]),
    ("foscttm_barycentric", ["sinkhorn", "emd"]),
    ("foscttm", ["uniform"]),
    ("label_transfer_latent", ["uniform"]),
    ("label_transfer_heldout", ["uniform"]),
    ("impute_pearson_cell_delta", ["sinkhorn", "emd"]),
]


def _se(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def _pairs(res: pd.DataFrame, metric: str, aligner: str) -> pd.DataFrame:
    sub = res[(res["metric"] == metric) & (res["aligner"] == aligner) & (res["status"] == "ok")]
    return sub.pivot_table(index=["setting", "seed"], columns="learner", values="value")


def _row(res: pd.DataFrame, metric: str, aligner: str, two: str, three: str) -> dict | None:
    wide = _pairs(res, metric, aligner)
    if two not in wide or three not in wide:
        return None
    pair = wide[[two, three]].dropna()
    a, b = pair[two].to_numpy(), pair[three].to_numpy()
    diff = b - a
    better = (diff < 0) if lower_is_better(metric) else (diff > 0)
    p = float("nan")
    if np.any(np.abs(diff) > 1e-12):
        p = float(wilcoxon(b, a, zero_method="wilcox").pvalue)
    labels_only = "n/a"
    ref = _pairs(res, metric, "uniform")
    if metric not in LATENT and two in ref:
        r = ref[two].dropna().to_numpy()
        labels_only = mean_se_text(float(r.mean()), _se(r))
    direction = "↓" if lower_is_better(metric) else "↑"
    where = "latent" if metric in LATENT else aligner
    return {
        "metric": f"{metric} {direction} ({where})",
        "A+B": mean_se_text(float(a.mean()), _se(a)),
        "A+B+C": mean_se_text(float(b.mean()), _se(b)),
        "A+B+C - A+B": mean_se_text(float(diff.mean()), _se(diff)),
        "C better": f"{int(better.sum())} of {len(diff)}",
        "p": "no difference" if np.isnan(p) else f"{p:.2g}",
        "labels only": labels_only,
    }


def _tables(res: pd.DataFrame) -> list[str]:
    parts = []
    for two, three, what in COMPARISONS:
        rows = [r for m, al in ROWS for a in al if (r := _row(res, m, a, two, three))]
        if rows:
            parts.append(f"*{two} (A+B) against {three} (A+B+C), {what}*\n")
            parts.append(markdown_table(pd.DataFrame(rows)) + "\n")
    return parts


def comparison_markdown(res: pd.DataFrame) -> str:
    """The markdown text of ``comparison.md``."""
    res = res.assign(setting=res["setting"].fillna("").astype(str))
    res = res[res["protocol"] == "heldout_cells"]
    parts = [
        "# A third modality for training: groove (A+B) against groove_abc (A+B+C)\n",
        "A-B matching on the held-out test cells; mean ± SE over seeds; `A+B+C - A+B` is the "
        "paired difference (mean ± SE over seeds); `C better`: the seeds where the third "
        "modality improves the metric; `p`: exact two-sided Wilcoxon signed-rank test over the "
        "paired seeds (5 pairs: never below 0.0625); labels only: the `uniform` aligner (the "
        "same test cells, no learned information). The beta 0.9 pair is a diagnostic: with "
        "three modalities GroupCLIP is the mean over three pairs, so at beta 0.9 the A-B term "
        "weighs as at beta 0.3 with two; `groove_beta_x3` is its two-modality control. "
        "↑ higher is better, ↓ lower is better.\n",
    ]
    for (ds, setting), part in res.groupby(["dataset", "setting"], sort=False):
        parts.append(f"## {ds} · {setting}\n" if setting else f"## {ds}\n")
        parts += _tables(part)
    sims = res[res["dataset"].str.startswith("simulation")]
    if sims["setting"].nunique() > 1:
        parts.append(
            f"## {sims['dataset'].iloc[0]} · all {sims['setting'].nunique()} settings pooled "
            "(pairs: setting x seed)\n"
        )
        parts += _tables(sims)
    return "\n".join(parts)


def wilcoxon_pairs(res: pd.DataFrame) -> pd.DataFrame:
    """Each three-modality learner against its two-modality one, per setting and pooled."""
    res = res.assign(setting=res["setting"].fillna("").astype(str))
    out = []
    for two, three, _ in COMPARISONS:
        if not {two, three} <= set(res["learner"]):
            continue
        for metric in dict.fromkeys(res["metric"]):
            per = gb.wilcoxon_vs_best(res, metric, learner=three, others=[two])
            pooled = gb.wilcoxon_vs_best(
                res, metric, learner=three, others=[two], by=("dataset", "protocol", "aligner")
            ).assign(setting="all")
            out += [per.assign(versus=two), pooled.assign(versus=two)]
    table = pd.concat([t for t in out if not t.empty], ignore_index=True)
    return table[~table["degenerate"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a three_modalities results folder (results.csv)")
    args = parser.parse_args()
    folder = Path(args.folder)
    text = comparison_markdown(read_results(folder / "results.csv"))
    (folder / "comparison.md").write_text(text)
    wilcoxon_pairs(read_results(folder / "results.csv")).to_csv(
        folder / "wilcoxon_pairs.csv", index=False
    )
    print(text)


if __name__ == "__main__":
    main()
