"""Tables and figures of docs/benchmark.md from the committed benchmark results.

Reads ``benchmarks/results/<name>/results.csv`` (simulation, real and, when present,
defaults_check, decoder, real_eval_spaces and robustness), prints the markdown tables used in
``docs/benchmark.md`` and writes the figures to ``docs/_static/benchmark/``.

Usage::

    python benchmarks/benchmark_report.py > /tmp/tables.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import groove_sc as gs
import groove_sc.benchmark as gb

ROOT = Path(__file__).resolve().parents[1]
LEARNERS = [
    "groove",
    "groove_previous_default",
    "groove_no_groupclip",
    "groove_no_backtranslation",
    "autoencoder",
    "clip_random_pairs",
    "vae_adversarial",
    "propensity_score",
    "pca",
]
ALIGNERS = ["uniform", "sinkhorn", "emd", "gw", "fgw", "coot", "auto_matching", "auto_imputation"]


def read(name: str) -> pd.DataFrame | None:
    path = ROOT / "benchmarks" / "results" / name / "results.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    df["setting"] = df["setting"].fillna("").astype(str)
    return df


def fmt(m: float, s: float) -> str:
    if not np.isfinite(m):
        return "n/a"
    return f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}"


def md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(out)


def headline(df: pd.DataFrame, metric: str) -> str:
    h = gb.headline_table(df, metric)
    h = h[h.aligner != "uniform"]
    rows = []
    for r in h.itertuples(index=False):
        p = "" if not np.isfinite(r.p_value) else f"{r.p_value:.3f}"
        rows.append(
            {
                "data": " · ".join(x for x in (r.dataset, r.setting, r.protocol) if x),
                "aligner": r.aligner,
                "GROOVE": fmt(r.learner_mean, r.learner_se),
                "best baseline": f"{r.best_baseline}: {fmt(r.baseline_mean, r.baseline_se)}",
                "p (Wilcoxon)": p,
                "uniform": fmt(r.reference_mean, r.reference_se),
            }
        )
    return md_table(pd.DataFrame(rows))


def pooled(df: pd.DataFrame, metric: str, by: tuple[str, ...]) -> str:
    """GROOVE against the best baseline, pooled over the facets not in ``by``."""
    base = [x for x in dict.fromkeys(df.learner) if not str(x).startswith("groove")]
    w = gb.wilcoxon_vs_best(df, metric, others=base, by=by)
    w = w[w.aligner != "uniform"]
    cols = [*by, "mean", "best_other", "best_other_mean", "n_learner_better", "n_pairs"]
    out = w[cols].copy()
    out["p_value"] = [f"{p:.2g}" for p in w["p_value"]]
    return md_table(out.round(3))


def grid(df: pd.DataFrame, metric: str, **where: str) -> str:
    s = gb.summarize(df, metric)
    for k, v in where.items():
        s = s[s[k] == v]
    s = s.assign(txt=[fmt(m, e) for m, e in zip(s["mean"], s["se"])])
    wide = s.pivot(index="learner", columns="aligner", values="txt")
    wide = wide.reindex(
        index=[x for x in LEARNERS if x in wide.index],
        columns=[a for a in ALIGNERS if a in wide.columns],
    ).fillna("n/a")
    return md_table(wide.reset_index())


def best_cells(df: pd.DataFrame, metric: str, k: int = 5) -> str:
    s = gb.summarize(df, metric)
    lower = gb.lower_is_better(metric)
    out = []
    for (ds, st, pr), part in s.groupby(["dataset", "setting", "protocol"], sort=False):
        part = part.dropna(subset=["mean"]).sort_values("mean", ascending=lower).head(k)
        cells = ", ".join(f"{r.learner}+{r.aligner} {r.mean:.3f}" for r in part.itertuples())
        out.append({"data": " · ".join(x for x in (ds, st, pr) if x), f"best {k}": cells})
    return md_table(pd.DataFrame(out))


def default_comparison(
    df: pd.DataFrame, new: str = "groove", old: str = "groove_previous_default"
) -> str:
    """The package defaults (beta 0.3, tau 0.5) against the previous ones (beta 1, tau 0.1).

    Per data set (mean over seeds, previous → new) and pooled over all data sets (runs in
    which the new defaults are better, paired Wilcoxon test), on the facets that have both.
    """
    df = df[df.learner.isin([new, old])]
    both = df.groupby(["dataset", "setting", "protocol"])["learner"].transform("nunique") == 2
    df = df[both]
    rows = []
    for metric, aligners in (
        ("foscttm", ["uniform"]),
        ("trace_ratio", ["sinkhorn", "emd", "gw"]),
        ("foscttm_barycentric", ["sinkhorn", "emd", "gw"]),
        ("impute_pearson_cell_delta", ["sinkhorn", "gw"]),
    ):
        for a in aligners:
            sub = df[df.aligner == a]
            s = gb.summarize(sub, metric)
            per = []
            for (ds, st, pr), part in s.groupby(["dataset", "setting", "protocol"], sort=False):
                v = part.set_index("learner")
                per.append(
                    f"{' '.join(x for x in (ds, st, pr.replace('heldout_', '')) if x)}: "
                    f"{v.loc[old, 'mean']:.3f} → {v.loc[new, 'mean']:.3f}"
                )
            w = gb.wilcoxon_vs_best(sub, metric, learner=new, others=[old], by=()).iloc[0]
            rows.append(
                {
                    "metric (aligner)": f"{metric} ({'latent' if metric == 'foscttm' else a})",
                    "previous → new default, per data set": "; ".join(per),
                    "new better": f"{w.n_learner_better} of {w.n_pairs}",
                    "p (pooled Wilcoxon)": f"{w.p_value:.2g}",
                }
            )
    return md_table(pd.DataFrame(rows))


def rho_figure(df: pd.DataFrame, path: Path) -> None:
    sim = df[(df.protocol == "heldout_cells") & (df.status == "ok")]
    sim = sim[sim.setting.str.startswith("rho=")]  # the null setting has no rho axis
    panels = [
        ("foscttm", None),
        ("trace_ratio", "sinkhorn"),
        ("foscttm_barycentric", "sinkhorn"),
        ("foscttm_barycentric", "gw"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    learners = [x for x in LEARNERS if x in set(sim.learner)]
    colors = dict(zip(learners, plt.cm.tab10(np.linspace(0, 1, 10))))
    for ax, (metric, aligner) in zip(axes, panels):
        sub = sim if aligner is None else sim[sim.aligner == aligner]
        if aligner is None:
            sub = sub[sub.aligner == "uniform"]  # latent metric: any aligner, one copy
        s = gb.summarize(sub, metric)
        s["rho"] = s["setting"].str.replace("rho=", "").astype(float)
        for learner in learners:
            part = s[s.learner == learner].sort_values("rho")
            if part.empty or part["mean"].isna().all():
                continue
            ax.errorbar(
                part["rho"],
                part["mean"],
                yerr=part["se"],
                marker="o",
                ms=3,
                capsize=2,
                label=learner,
                color=colors[learner],
                lw=2.2 if learner == "groove" else 1.0,
            )
        if aligner is not None:
            ref = gb.summarize(sim[sim.aligner == "uniform"], metric)
            ref = ref[ref.learner == "groove"].assign(
                rho=lambda x: x["setting"].str.replace("rho=", "").astype(float)
            )
            ax.plot(ref["rho"], ref["mean"], "k--", lw=1, label="uniform (labels only)")
        ax.set_xlabel("shared fraction rho")
        direction = "lower" if gb.lower_is_better(metric) else "higher"
        ax.set_title(f"{metric}" + (f" · {aligner}" if aligner else " (latent)"), fontsize=10)
        ax.set_ylabel(f"{direction} is better")
        ax.invert_xaxis()
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def heatmaps(df: pd.DataFrame, metric: str, path: Path, **where: str) -> None:
    sub = df[df.status == "ok"]
    for k, v in where.items():
        sub = sub[sub[k] == v]
    gs.pl.benchmark(
        sub,
        metric=metric,
        learners=[x for x in LEARNERS if x in set(sub.learner)],
        aligners=[a for a in ALIGNERS if a in set(sub.aligner)],
        ncols=3,
        show=False,
        save=str(path),
    )
    plt.close("all")


def noise_figure(df: pd.DataFrame, path: Path) -> None:
    ok = df[df.status == "ok"]
    noise = ok[ok.setting.str.startswith("label_noise")]
    panels = [
        ("trace_ratio", "sinkhorn"),
        ("label_transfer_accuracy", "sinkhorn"),
        ("foscttm", None),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.5))
    for ax, (metric, aligner) in zip(axes, panels):
        sub = noise[noise.aligner == (aligner or "uniform")]
        s = gb.summarize(sub, metric)
        s["noise"] = s["setting"].str.replace("label_noise=", "").astype(float)
        for learner in [x for x in LEARNERS if x in set(s.learner)]:
            part = s[s.learner == learner].sort_values("noise")
            if part["mean"].isna().all():
                continue
            ax.errorbar(
                part["noise"],
                part["mean"],
                yerr=part["se"],
                marker="o",
                ms=3,
                capsize=2,
                label=learner,
                lw=2.2 if learner == "groove" else 1.0,
            )
        ax.set_xlabel("label noise (fraction of cells)")
        ax.set_title(f"{metric}" + (f" · {aligner}" if aligner else " (latent)"), fontsize=10)
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--figures", default=str(ROOT / "docs" / "_static" / "benchmark"))
    args = parser.parse_args()
    figs = Path(args.figures)
    figs.mkdir(parents=True, exist_ok=True)
    sim, real, rob = read("simulation"), read("real"), read("robustness")
    for name, df in (("simulation", sim), ("real", real)):
        if df is None:
            continue
        print(f"\n# {name}\n")
        print(
            df.drop_duplicates(
                ["dataset", "setting", "protocol", "fold", "learner", "aligner", "seed"]
            )["status"]
            .value_counts()
            .to_string()
        )
        for metric in (
            "foscttm_barycentric",
            "trace_ratio",
            "foscttm",
            "impute_pearson_cell_delta",
            "label_transfer_accuracy",
            "label_transfer_heldout",
        ):
            print(f"\n## headline {metric}\n")
            print(headline(df, metric))
        for metric in ("foscttm_barycentric", "trace_ratio", "foscttm"):
            print(f"\n## pooled over settings/datasets: {metric}\n")
            print(pooled(df, metric, ("protocol", "aligner")))
        for metric in ("foscttm_barycentric", "trace_ratio"):
            print(f"\n## best cells {metric}\n")
            print(best_cells(df, metric))
        for metric in (
            "foscttm_barycentric",
            "trace_ratio",
            "foscttm",
            "impute_pearson_cell_delta",
        ):
            print(f"\n## ranking {metric}\n")
            print(md_table(gb.rank_learners(df, metric).round(2)))
            print()
            print(md_table(gb.rank_aligners(df, metric).round(2)))
        for (ds, st, pr), _ in df.groupby(["dataset", "setting", "protocol"], sort=False):
            for metric in ("foscttm_barycentric", "trace_ratio", "foscttm"):
                print(f"\n## grid {ds} {st} {pr} {metric}\n")
                print(grid(df, metric, dataset=ds, setting=st, protocol=pr))
    for name, df, previous in (
        ("defaults_check", read("defaults_check"), "beta 1, tau 0.1"),
        ("simulation", sim, "alpha 1, no input dropout, 250 fixed steps"),
        ("real", real, "alpha 1, no input dropout, 250 fixed steps"),
    ):
        if df is not None and "groove_previous_default" in set(df.learner):
            print(f"\n# groove vs groove_previous_default (previous: {previous}): {name}\n")
            print(default_comparison(df))
    dec = read("decoder")
    if dec is not None:
        print("\n# decoder imputation\n")
        for metric in (
            "foscttm_barycentric",
            "impute_pearson_cell_delta",
            "impute_pearson_feature",
        ):
            s = gb.summarize(dec, metric)
            s = s.assign(txt=[fmt(m, e) for m, e in zip(s["mean"], s["se"])])
            wide = s.pivot(index="learner", columns=["dataset", "aligner"], values="txt")
            wide.columns = [f"{d} {a}" for d, a in wide.columns]
            print(f"\n## {metric}\n")
            print(md_table(wide.reset_index()))
    if sim is not None:
        rho_figure(sim, figs / "simulation_rho.png")
        for metric in ("trace_ratio", "foscttm_barycentric"):
            heatmaps(
                sim,
                metric,
                figs / f"simulation_rho08_{metric}.png",
                setting="rho=0.8",
                protocol="heldout_cells",
            )
            heatmaps(
                sim,
                metric,
                figs / f"simulation_heldout_labels_{metric}.png",
                protocol="heldout_labels",
            )
    if real is not None:
        for ds in dict.fromkeys(real.dataset):
            for metric in ("foscttm_barycentric", "trace_ratio", "impute_pearson_cell_delta"):
                heatmaps(
                    real, metric, figs / f"{ds}_{metric}.png", dataset=ds, protocol="heldout_cells"
                )
        for metric in ("foscttm_barycentric", "trace_ratio"):
            heatmaps(
                real,
                metric,
                figs / f"citeseq_heldout_labels_{metric}.png",
                dataset="citeseq",
                protocol="heldout_labels",
            )
    spaces = read("real_eval_spaces")
    if spaces is not None:
        print("\n# evaluation spaces (SNARE-seq, CITE-seq)\n")
        for metric in (
            "foscttm_barycentric",
            "foscttm_barycentric@standardize",
            "foscttm_barycentric@l2",
            "impute_pearson_cell_delta@standardize",
        ):
            print(f"\n## headline {metric}\n")
            print(headline(spaces, metric))
            for ds in dict.fromkeys(spaces.dataset):
                print(f"\n## grid {ds} {metric}\n")
                print(grid(spaces, metric, dataset=ds))
            print(f"\n## best cells {metric}\n")
            print(best_cells(spaces, metric))
        for ds in dict.fromkeys(spaces.dataset):
            heatmaps(
                spaces,
                "foscttm_barycentric@l2",
                figs / f"{ds}_foscttm_barycentric_l2.png",
                dataset=ds,
            )
    if rob is not None:
        print("\n# robustness\n")
        for metric in ("trace_ratio", "label_transfer_accuracy", "foscttm", "foscttm_barycentric"):
            print(f"\n## headline {metric}\n")
            print(headline(rob, metric))
        noise_figure(rob, figs / "robustness_label_noise.png")
        heatmaps(
            rob[rob.setting.str.startswith(("missing", "disjoint"))],
            "trace_ratio",
            figs / "robustness_missing_labels.png",
        )
    print(f"\nfigures in {figs}")


if __name__ == "__main__":
    main()
