"""The tables and figures of ``docs/benchmark.md``, from a folder of committed results.

:func:`docs_report` reads ``<results>/<name>/results.csv`` (simulation, real and, when present,
defaults_check, decoder, real_eval_spaces and robustness), returns the markdown tables and
writes the figures; ``benchmarks/benchmark_report.py`` is its command line. The building blocks
(:func:`headline_markdown`, :func:`grid_markdown`, ...) work on any results table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .._results import lower_is_better, markdown_table, mean_se_grid, mean_se_text, read_results
from ..pl import benchmark as plot_benchmark
from ._config import DEFAULT_ALIGNERS, DEFAULT_LEARNERS
from ._stats import headline_table, rank_aligners, rank_learners, summarize, wilcoxon_vs_best

__all__ = [
    "DOCS_ALIGNERS",
    "DOCS_LEARNERS",
    "best_cells_markdown",
    "default_comparison_markdown",
    "docs_report",
    "grid_markdown",
    "headline_markdown",
    "pooled_markdown",
    "setting_curves",
]

#: Learners of the docs' tables, in their order.
DOCS_LEARNERS = [DEFAULT_LEARNERS[0], "groove_previous_default", *DEFAULT_LEARNERS[1:]]
#: Aligners of the docs' tables, in their order.
DOCS_ALIGNERS = [*DEFAULT_ALIGNERS, "auto_matching", "auto_imputation"]
_UNIT_CELLS = ["dataset", "setting", "protocol", "fold", "learner", "aligner", "seed"]


def _facet(*parts: str) -> str:
    return " · ".join(x for x in parts if x)


def headline_markdown(df: pd.DataFrame, metric: str) -> str:
    """GROOVE, the best baseline (Wilcoxon p) and the uniform reference per aligner."""
    h = headline_table(df, metric)
    h = h[h.aligner != "uniform"]
    rows = [
        {
            "data": _facet(r.dataset, r.setting, r.protocol),
            "aligner": r.aligner,
            "GROOVE": mean_se_text(r.learner_mean, r.learner_se),
            "best baseline": f"{r.best_baseline}: {mean_se_text(r.baseline_mean, r.baseline_se)}",
            "p (Wilcoxon)": "" if not np.isfinite(r.p_value) else f"{r.p_value:.3f}",
            "uniform": mean_se_text(r.reference_mean, r.reference_se),
        }
        for r in h.itertuples(index=False)
    ]
    return markdown_table(pd.DataFrame(rows))


def pooled_markdown(df: pd.DataFrame, metric: str, by: tuple[str, ...]) -> str:
    """GROOVE against the best baseline, pooled over the facets not in ``by``."""
    base = [x for x in dict.fromkeys(df.learner) if not str(x).startswith("groove")]
    w = wilcoxon_vs_best(df, metric, others=base, by=by)
    w = w[w.aligner != "uniform"]
    cols = [*by, "mean", "best_other", "best_other_mean", "n_learner_better", "n_pairs"]
    out = w[cols].copy()
    out["p_value"] = [f"{p:.2g}" for p in w["p_value"]]
    return markdown_table(out.round(3))


def grid_markdown(df: pd.DataFrame, metric: str, **where: str) -> str:
    """Learner x aligner table of mean ± SE of one metric on the rows matching ``where``."""
    s = summarize(df, metric)
    for k, v in where.items():
        s = s[s[k] == v]
    return markdown_table(mean_se_grid(s, DOCS_LEARNERS, DOCS_ALIGNERS).reset_index())


def best_cells_markdown(df: pd.DataFrame, metric: str, k: int = 5) -> str:
    """The ``k`` best learner + aligner cells of each dataset, setting and protocol."""
    s = summarize(df, metric)
    lower = lower_is_better(metric)
    out = []
    for (ds, st, pr), part in s.groupby(["dataset", "setting", "protocol"], sort=False):
        part = part.dropna(subset=["mean"]).sort_values("mean", ascending=lower).head(k)
        cells = ", ".join(f"{r.learner}+{r.aligner} {r.mean:.3f}" for r in part.itertuples())
        out.append({"data": _facet(ds, st, pr), f"best {k}": cells})
    return markdown_table(pd.DataFrame(out))


def default_comparison_markdown(
    df: pd.DataFrame, new: str = "groove", old: str = "groove_previous_default"
) -> str:
    """The package defaults against the previous ones, per data set and pooled.

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
            s = summarize(sub, metric)
            per = []
            for (ds, st, pr), part in s.groupby(["dataset", "setting", "protocol"], sort=False):
                v = part.set_index("learner")
                per.append(
                    f"{' '.join(x for x in (ds, st, pr.replace('heldout_', '')) if x)}: "
                    f"{v.loc[old, 'mean']:.3f} → {v.loc[new, 'mean']:.3f}"
                )
            w = wilcoxon_vs_best(sub, metric, learner=new, others=[old], by=()).iloc[0]
            rows.append(
                {
                    "metric (aligner)": f"{metric} ({'latent' if metric == 'foscttm' else a})",
                    "previous → new default, per data set": "; ".join(per),
                    "new better": f"{w.n_learner_better} of {w.n_pairs}",
                    "p (pooled Wilcoxon)": f"{w.p_value:.2g}",
                }
            )
    return markdown_table(pd.DataFrame(rows))


def setting_curves(
    df: pd.DataFrame,
    path: Path,
    *,
    prefix: str,
    panels: Sequence[tuple[str, str | None]],
    xlabel: str,
    reference: bool = False,
    invert: bool = False,
    fixed_colors: bool = False,
    height: float = 3.5,
) -> None:
    """Mean ± SE of metrics against a numeric setting (``<prefix><value>``), one line a learner.

    Parameters
    ----------
    df
        The ``ok`` rows of one protocol.
    path
        The figure file.
    prefix
        Settings named ``prefix + number`` are drawn, at that number.
    panels
        ``(metric, aligner)`` per panel; aligner ``None``: a latent metric (read once, from the
        ``uniform`` rows).
    xlabel
        Label of the horizontal axis.
    reference
        Draw the uniform (labels-only) coupling's value of each coupling metric.
    invert
        Invert the horizontal axis and say on the vertical one which direction is better.
    fixed_colors
        One ``tab10`` colour per learner, in the order of :data:`DOCS_LEARNERS`.
    height
        Height of the figure in inches.
    """
    sub_all = df[df.setting.str.startswith(prefix)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), height))
    learners = [x for x in DOCS_LEARNERS if x in set(sub_all.learner)]
    colors = dict(zip(learners, plt.cm.tab10(np.linspace(0, 1, 10))))
    for ax, (metric, aligner) in zip(axes, panels):
        s = summarize(sub_all[sub_all.aligner == (aligner or "uniform")], metric)
        s["x"] = s["setting"].str.replace(prefix, "").astype(float)
        for learner in learners:
            part = s[s.learner == learner].sort_values("x")
            if part.empty or part["mean"].isna().all():
                continue
            ax.errorbar(
                part["x"],
                part["mean"],
                yerr=part["se"],
                marker="o",
                ms=3,
                capsize=2,
                label=learner,
                color=colors[learner] if fixed_colors else None,
                lw=2.2 if learner == "groove" else 1.0,
            )
        if reference and aligner is not None:
            ref = summarize(sub_all[sub_all.aligner == "uniform"], metric)
            ref = ref[ref.learner == "groove"]
            x = ref["setting"].str.replace(prefix, "").astype(float)
            ax.plot(x, ref["mean"], "k--", lw=1, label="uniform (labels only)")
        ax.set_xlabel(xlabel)
        ax.set_title(f"{metric}" + (f" · {aligner}" if aligner else " (latent)"), fontsize=10)
        if invert:
            direction = "lower" if lower_is_better(metric) else "higher"
            ax.set_ylabel(f"{direction} is better")
            ax.invert_xaxis()
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def _heatmaps(df: pd.DataFrame, metric: str, path: Path, **where: str) -> None:
    sub = df[df.status == "ok"]
    for k, v in where.items():
        sub = sub[sub[k] == v]
    plot_benchmark(
        sub,
        metric=metric,
        learners=[x for x in DOCS_LEARNERS if x in set(sub.learner)],
        aligners=[a for a in DOCS_ALIGNERS if a in set(sub.aligner)],
        ncols=3,
        show=False,
        save=str(path),
    )
    plt.close("all")


def _read(results: Path, name: str) -> pd.DataFrame | None:
    path = results / name / "results.csv"
    return read_results(path) if path.exists() else None


def _main_tables(df: pd.DataFrame) -> list[str]:
    out = [df.drop_duplicates(_UNIT_CELLS)["status"].value_counts().to_string()]
    for metric in (
        "foscttm_barycentric",
        "trace_ratio",
        "foscttm",
        "impute_pearson_cell_delta",
        "label_transfer_accuracy",
        "label_transfer_heldout",
    ):
        out += [f"\n## headline {metric}\n", headline_markdown(df, metric)]
    for metric in ("foscttm_barycentric", "trace_ratio", "foscttm"):
        out += [f"\n## pooled over settings/datasets: {metric}\n"]
        out += [pooled_markdown(df, metric, ("protocol", "aligner"))]
    for metric in ("foscttm_barycentric", "trace_ratio"):
        out += [f"\n## best cells {metric}\n", best_cells_markdown(df, metric)]
    for metric in ("foscttm_barycentric", "trace_ratio", "foscttm", "impute_pearson_cell_delta"):
        out += [f"\n## ranking {metric}\n", markdown_table(rank_learners(df, metric).round(2))]
        out += ["", markdown_table(rank_aligners(df, metric).round(2))]
    for (ds, st, pr), _ in df.groupby(["dataset", "setting", "protocol"], sort=False):
        for metric in ("foscttm_barycentric", "trace_ratio", "foscttm"):
            out += [f"\n## grid {ds} {st} {pr} {metric}\n"]
            out += [grid_markdown(df, metric, dataset=ds, setting=st, protocol=pr)]
    return out


def _decoder_tables(dec: pd.DataFrame) -> list[str]:
    out = ["\n# decoder imputation\n"]
    for metric in ("foscttm_barycentric", "impute_pearson_cell_delta", "impute_pearson_feature"):
        s = summarize(dec, metric)
        s = s.assign(txt=[mean_se_text(m, e) for m, e in zip(s["mean"], s["se"])])
        wide = s.pivot(index="learner", columns=["dataset", "aligner"], values="txt")
        wide.columns = [f"{d} {a}" for d, a in wide.columns]
        out += [f"\n## {metric}\n", markdown_table(wide.reset_index())]
    return out


def _space_tables(spaces: pd.DataFrame, figures: Path) -> list[str]:
    out = ["\n# evaluation spaces (SNARE-seq, CITE-seq)\n"]
    for metric in (
        "foscttm_barycentric",
        "foscttm_barycentric@standardize",
        "foscttm_barycentric@l2",
        "impute_pearson_cell_delta@standardize",
    ):
        out += [f"\n## headline {metric}\n", headline_markdown(spaces, metric)]
        for ds in dict.fromkeys(spaces.dataset):
            out += [f"\n## grid {ds} {metric}\n", grid_markdown(spaces, metric, dataset=ds)]
        out += [f"\n## best cells {metric}\n", best_cells_markdown(spaces, metric)]
    for ds in dict.fromkeys(spaces.dataset):
        path = figures / f"{ds}_foscttm_barycentric_l2.png"
        _heatmaps(spaces, "foscttm_barycentric@l2", path, dataset=ds)
    return out


def _figures(sim: pd.DataFrame | None, real: pd.DataFrame | None, figures: Path) -> None:
    if sim is not None:
        setting_curves(
            sim[(sim.protocol == "heldout_cells") & (sim.status == "ok")],
            figures / "simulation_rho.png",
            prefix="rho=",
            panels=[
                ("foscttm", None),
                ("trace_ratio", "sinkhorn"),
                ("foscttm_barycentric", "sinkhorn"),
                ("foscttm_barycentric", "gw"),
            ],
            xlabel="shared fraction rho",
            reference=True,
            invert=True,
            fixed_colors=True,
            height=3.6,
        )
        for metric in ("trace_ratio", "foscttm_barycentric"):
            path = figures / f"simulation_rho08_{metric}.png"
            _heatmaps(sim, metric, path, setting="rho=0.8", protocol="heldout_cells")
            path = figures / f"simulation_heldout_labels_{metric}.png"
            _heatmaps(sim, metric, path, protocol="heldout_labels")
    if real is not None:
        for ds in dict.fromkeys(real.dataset):
            for metric in ("foscttm_barycentric", "trace_ratio", "impute_pearson_cell_delta"):
                path = figures / f"{ds}_{metric}.png"
                _heatmaps(real, metric, path, dataset=ds, protocol="heldout_cells")
        for metric in ("foscttm_barycentric", "trace_ratio"):
            path = figures / f"citeseq_heldout_labels_{metric}.png"
            _heatmaps(real, metric, path, dataset="citeseq", protocol="heldout_labels")


def docs_report(results: str | Path, figures: str | Path) -> str:
    """The markdown tables of ``docs/benchmark.md``; the figures are written to ``figures``.

    Parameters
    ----------
    results
        Folder of the committed results (``benchmarks/results``).
    figures
        Folder for the figures (created).

    Returns
    -------
    Markdown text.
    """
    results, figures = Path(results), Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    sim, real, rob = _read(results, "simulation"), _read(results, "real"), None
    rob = _read(results, "robustness")
    out: list[str] = []
    for name, df in (("simulation", sim), ("real", real)):
        if df is not None:
            out += [f"\n# {name}\n", *_main_tables(df)]
    for name, df, previous in (
        ("defaults_check", _read(results, "defaults_check"), "beta 1, tau 0.1"),
        ("simulation", sim, "alpha 1, no input dropout, 250 fixed steps"),
        ("real", real, "alpha 1, no input dropout, 250 fixed steps"),
    ):
        if df is not None and "groove_previous_default" in set(df.learner):
            out += [f"\n# groove vs groove_previous_default (previous: {previous}): {name}\n"]
            out += [default_comparison_markdown(df)]
    dec = _read(results, "decoder")
    if dec is not None:
        out += _decoder_tables(dec)
    _figures(sim, real, figures)
    spaces = _read(results, "real_eval_spaces")
    if spaces is not None:
        out += _space_tables(spaces, figures)
    if rob is not None:
        out += ["\n# robustness\n"]
        for metric in ("trace_ratio", "label_transfer_accuracy", "foscttm", "foscttm_barycentric"):
            out += [f"\n## headline {metric}\n", headline_markdown(rob, metric)]
        setting_curves(
            rob[rob.status == "ok"],
            figures / "robustness_label_noise.png",
            prefix="label_noise=",
            panels=[
                ("trace_ratio", "sinkhorn"),
                ("label_transfer_accuracy", "sinkhorn"),
                ("foscttm", None),
            ],
            xlabel="label noise (fraction of cells)",
        )
        missing = rob[rob.setting.str.startswith(("missing", "disjoint"))]
        _heatmaps(missing, "trace_ratio", figures / "robustness_missing_labels.png")
    out += [f"\nfigures in {figures}"]
    return "\n".join(out)
