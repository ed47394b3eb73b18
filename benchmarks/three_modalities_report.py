"""The two-modality GROOVE against the three-modality one, from a three_modalities run.

    python benchmarks/three_modalities_report.py benchmarks/results/three_modalities

writes ``comparison.md`` and ``wilcoxon_pairs.csv`` into that folder. ``comparison.md``: per
dataset and setting, each metric of A-B matching for ``groove`` (trained on A and B) and
``groove_abc`` (on A, B and C; also ``groove_abc_beta_x3``), mean ± SE over seeds, the paired
difference (three minus two modalities, mean ± SE over seeds), the seeds
where the third modality helps, the exact two-sided Wilcoxon signed-rank p-value over the
paired seeds (``scipy.stats.wilcoxon``, as ``wilcoxon.csv``; 5 pairs cannot go below 0.0625)
and the labels-only value (the ``uniform`` aligner); then the same tests pooled over the
simulation settings (25 pairs). ``wilcoxon_pairs.csv``: the same tests as
:func:`groove_sc.benchmark.wilcoxon_vs_best` rows (``learner``: the three-modality learner,
``best_other``: ``groove``, ``versus``: ``groove``; ``setting`` ``all`` for the pooled ones),
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

TWO, THREE = "groove", "groove_abc"
#: the learners compared with ``groove`` (A+B), by their column label
LABELS = {THREE: "A+B+C", "groove_abc_beta_x3": "A+B+C, beta x3"}
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


def _versus(wide: pd.DataFrame, metric: str, other: str) -> dict[str, str]:
    """``other`` against the two-modality GROOVE on their paired (setting, seed) cells."""
    pair = wide[[TWO, other]].dropna()
    two, three = pair[TWO].to_numpy(), pair[other].to_numpy()
    diff = three - two
    better = (diff < 0) if lower_is_better(metric) else (diff > 0)
    p = float("nan")
    if np.any(np.abs(diff) > 1e-12):
        p = float(wilcoxon(three, two, zero_method="wilcox").pvalue)
    return {
        LABELS[other]: mean_se_text(float(three.mean()), _se(three)),
        f"{LABELS[other]} - A+B": mean_se_text(float(diff.mean()), _se(diff)),
        f"{LABELS[other]}: better, p": (
            f"{int(better.sum())}/{len(diff)}, " + ("no difference" if np.isnan(p) else f"{p:.2g}")
        ),
    }


def _row(res: pd.DataFrame, metric: str, aligner: str) -> dict[str, str] | None:
    wide = _pairs(res, metric, aligner)
    if TWO not in wide:
        return None
    others = [o for o in LABELS if o in wide]
    if not others:
        return None
    direction = "↓" if lower_is_better(metric) else "↑"
    where = "latent" if metric in LATENT else aligner
    two = wide[TWO].dropna().to_numpy()
    row = {"metric": f"{metric} {direction} ({where})", "A+B": mean_se_text(two.mean(), _se(two))}
    for other in others:
        row.update(_versus(wide, metric, other))
    labels_only = "n/a"
    ref = _pairs(res, metric, "uniform")
    if metric not in LATENT and TWO in ref:
        r = ref[TWO].dropna().to_numpy()
        labels_only = mean_se_text(float(r.mean()), _se(r))
    row["labels only"] = labels_only
    return row


def _table(res: pd.DataFrame) -> str:
    rows = [r for m, aligners in ROWS for a in aligners if (r := _row(res, m, a))]
    return markdown_table(pd.DataFrame(rows))


def comparison_markdown(res: pd.DataFrame) -> str:
    """The markdown text of ``comparison.md``."""
    res = res.assign(setting=res["setting"].fillna("").astype(str))
    res = res[res["protocol"] == "heldout_cells"]
    parts = [
        "# A third modality for training: groove (A+B) against groove_abc (A+B+C)\n",
        "A-B matching on the held-out test cells; mean ± SE over seeds; `A+B+C - A+B` is the "
        "paired difference (mean ± SE over seeds); `better, p`: the seeds where the third "
        "modality improves the metric, and the exact two-sided Wilcoxon signed-rank p-value "
        "over the paired seeds (5 pairs: never below 0.0625); `A+B+C, beta x3`: the diagnostic "
        "learner `groove_abc_beta_x3` (beta 0.9, so the A-B GroupCLIP term weighs as in the "
        "two-modality model); labels only: the `uniform` aligner (the same test cells, no "
        "learned information). ↑ higher is better, ↓ lower is better.\n",
    ]
    for (ds, setting), part in res.groupby(["dataset", "setting"], sort=False):
        parts.append(f"## {ds} · {setting}\n" if setting else f"## {ds}\n")
        parts.append(_table(part) + "\n")
    sims = res[res["dataset"].str.startswith("simulation")]
    if sims["setting"].nunique() > 1:
        parts.append(
            f"## {sims['dataset'].iloc[0]} · all {sims['setting'].nunique()} settings pooled "
            "(pairs: setting x seed)\n"
        )
        parts.append(_table(sims) + "\n")
    return "\n".join(parts)


def wilcoxon_pairs(res: pd.DataFrame) -> pd.DataFrame:
    """Each three-modality learner against ``groove``, per setting and pooled over settings."""
    res = res.assign(setting=res["setting"].fillna("").astype(str))
    out = []
    for other in [o for o in LABELS if o in set(res["learner"])]:
        for metric in dict.fromkeys(res["metric"]):
            per = gb.wilcoxon_vs_best(res, metric, learner=other, others=[TWO])
            pooled = gb.wilcoxon_vs_best(
                res, metric, learner=other, others=[TWO], by=("dataset", "protocol", "aligner")
            ).assign(setting="all")
            out += [per.assign(versus=TWO), pooled.assign(versus=TWO)]
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
