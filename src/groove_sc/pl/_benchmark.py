"""Benchmark figures from the tidy results table: learner x aligner heatmap and bar chart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._results import FACETS, RESULT_COLUMNS, mean_and_se, per_seed_values
from .._results import lower_is_better as lower_better
from ._utils import (
    AxesArg,
    PlotResult,
    default_palette,
    figure_docs,
    finish,
    legend_columns,
    new_axes,
)

__all__ = ["benchmark"]


def _summarize(
    results: pd.DataFrame,
    *,
    metric: str,
    dataset: str | Sequence[str] | None = None,
    setting: str | Sequence[str] | None = None,
    protocol: str | Sequence[str] | None = None,
    learners: Sequence[str] | None = None,
    aligners: Sequence[str] | None = None,
) -> pd.DataFrame:
    r"""Mean and standard error over seeds of one metric, per learner and aligner.

    Rows with the same ``(dataset, setting, protocol, learner, aligner, seed)`` (e.g. folds of
    the held-out-labels protocol) are first averaged into one value per seed; the mean and the
    standard error :math:`s / \sqrt{n}` (``s`` the sample standard deviation, ddof 1; NaN for
    one seed) are then taken over seeds. Rows whose ``status`` (if the column exists) is not
    ``"ok"`` and NaN values are left out; failed runs are counted in ``n_failed`` (rows with
    status ``"not_applicable"`` are not failures).

    Parameters
    ----------
    results
        Tidy table with the columns dataset, setting, protocol, learner, aligner, seed,
        metric, value (and seconds), as written by ``groove_sc.benchmark``. Missing
        dataset, setting or protocol columns are treated as one value.
    metric
        Metric to summarise (a value of the ``metric`` column), or ``"seconds"`` for the run
        time column.
    dataset, setting, protocol
        Keep only these values (one or several); default all.
    learners, aligners
        Keep only these, in this order; default (or empty) all, in order of appearance.
        Rows without an aligner (metrics of the learner alone) have the aligner ``"none"``.

    Returns
    -------
    DataFrame with columns dataset, setting, protocol, learner, aligner, mean, se,
    n_seeds and n_failed.
    """
    df = _select(results, metric, dataset, setting, protocol, learners, aligners)
    keys = [*FACETS, "learner", "aligner"]
    out = mean_and_se(per_seed_values(df, keys), keys)
    failed = df.groupby([*keys, "seed"], sort=False, observed=True)["_failed"].any()
    n_failed = failed.groupby(keys, sort=False, observed=True).sum().rename("n_failed")
    out = out.merge(n_failed.reset_index(), on=keys, how="left")
    out["n_failed"] = out["n_failed"].fillna(0).astype(int)
    return out


@figure_docs
def benchmark(
    results: pd.DataFrame,
    *,
    metric: str,
    kind: Literal["heatmap", "bar"] = "heatmap",
    dataset: str | Sequence[str] | None = None,
    setting: str | Sequence[str] | None = None,
    protocol: str | Sequence[str] | None = None,
    learners: Sequence[str] | None = None,
    aligners: Sequence[str] | None = None,
    lower_is_better: bool | None = None,
    cmap: str | None = None,
    ncols: int = 2,
    annotate: bool = True,
    ax: AxesArg = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
) -> PlotResult:
    r"""Plot one metric of the combinatorial benchmark: learners x aligners, mean +- SE.

    The tidy results table (one row per dataset, setting, protocol, learner, aligner, seed and
    metric) is summarised per learner and aligner: folds (``fold`` column, held-out-labels
    protocol) are averaged within a seed, then the mean and the standard error
    :math:`s / \sqrt{n}` (ddof 1) are taken over seeds. Rows whose ``status`` is not ``"ok"``
    (failed or not applicable runs) and NaN values are left out. One panel is drawn per
    remaining combination of ``dataset``, ``setting`` and ``protocol`` (filter them to get one
    panel).

    ``kind="heatmap"``: rows are learners, columns aligners, the colour is the mean and each
    cell reads ``mean`` and ``\u00b1 SE``; the best learner of each aligner is in bold (none
    when all learners are equal, as for the uniform reference). Missing
    combinations are grey and read ``n/a``.

    ``kind="bar"``: one group of bars per learner, one bar per aligner, error bars of one SE.

    Parameters
    ----------
    results
        Tidy table with the columns dataset, setting, protocol, learner, aligner, seed,
        metric and value (the output of ``groove_sc.benchmark``, or :func:`pandas.read_csv`
        of its ``results.csv``).
    metric
        Metric to draw (a value of the ``metric`` column), or ``"seconds"``.
    kind
        ``"heatmap"`` or ``"bar"``.
    dataset, setting, protocol
        Keep only these values; default all (one panel each).
    learners, aligners
        Keep only these, in this order; default (or empty) all, in order of appearance.
        Rows without an aligner (metrics of the learner alone, e.g. the latent FOSCTTM) are
        drawn in one column ``"none"``.
    lower_is_better
        Direction of the metric, used for the colour map and the bold best entries; default:
        lower for names containing ``foscttm``, ``mse``, ``error``, ``seconds``, ``time``,
        ``memory``, higher otherwise.
    cmap
        Colormap of the heatmap; default ``"viridis"``, reversed when lower is better so that
        bright is always better.
    ncols
        Panels per row.
    annotate
        Write mean and SE into the heatmap cells.
    {figure_params}

    Returns
    -------
    The Figure if ``return_fig``; else the Axes (a list when there are several panels);
    ``None`` when shown.

    Raises
    ------
    KeyError
        If a required column is missing or ``metric`` (or a filter value) is not in the table.
    """
    if kind not in ("heatmap", "bar"):
        raise ValueError(f"`kind` must be 'heatmap' or 'bar', got {kind!r}.")
    facets = {"dataset": dataset, "setting": setting, "protocol": protocol}
    summary = _summarize(results, metric=metric, learners=learners, aligners=aligners, **facets)
    if lower_is_better is None:
        lower_is_better = lower_better(metric)
    row_order = list(dict.fromkeys(summary["learner"]))
    col_order = list(dict.fromkeys(summary["aligner"]))
    if learners:
        row_order = [str(x) for x in learners if str(x) in set(row_order)]
    if aligners:
        col_order = [str(x) for x in aligners if str(x) in set(col_order)]
    panels = list(summary.groupby(list(FACETS), sort=False, observed=True))
    if kind == "heatmap":
        size = (1.25 * len(col_order) + 2.6, 0.55 * len(row_order) + 1.6)
    else:
        size = (max(4.5, 0.45 * len(row_order) * max(1, len(col_order)) ** 0.5 + 3.5), 3.8)
    fig, axes, ax_given = new_axes(len(panels), ncols=ncols, panel_size=size, ax=ax)
    direction = "lower is better" if lower_is_better else "higher is better"
    for (facet, part), a in zip(panels, axes):
        mean = part.pivot(index="learner", columns="aligner", values="mean")
        se = part.pivot(index="learner", columns="aligner", values="se")
        mean = mean.reindex(index=row_order, columns=col_order)
        se = se.reindex(index=row_order, columns=col_order)
        title = " \u00b7 ".join(str(f) for f in facet if str(f) not in ("", "nan", "None"))
        if kind == "heatmap":
            _heatmap(a, mean, se, lower_is_better, cmap, annotate, f"{metric} ({direction})")
        else:
            _bars(a, mean, se, metric, direction)
        a.set_title(title or metric)
    out = axes[0] if len(axes) == 1 else axes
    return finish(fig, out, ax_given=ax_given, show=show, return_fig=return_fig, save=save)


# --------------------------------------------------------------------------------------------
def _as_list(x: Any) -> list[Any] | None:
    if x is None:
        return None
    return [x] if isinstance(x, (str, int, float)) else list(x)


def _select(
    results: pd.DataFrame,
    metric: str,
    dataset: Any,
    setting: Any,
    protocol: Any,
    learners: Sequence[str] | None,
    aligners: Sequence[str] | None,
) -> pd.DataFrame:
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"`results` must be a pandas DataFrame, got {type(results).__name__}.")
    required = ["learner", "aligner", "seed"] + ([] if metric == "seconds" else ["metric", "value"])
    missing = [c for c in required if c not in results.columns]
    if metric == "seconds" and "seconds" not in results.columns:
        missing.append("seconds")
    if missing:
        raise KeyError(
            f"`results` lacks the columns {missing}; expected the tidy benchmark table with "
            f"columns {list(RESULT_COLUMNS)}."
        )
    df = results.copy()
    for col in FACETS:
        if col not in df.columns:
            df[col] = ""
        df[col] = df[col].fillna("").astype(str)
    # metrics of the learner alone (no aligner) carry an empty aligner: one column "none"
    df["aligner"] = df["aligner"].fillna("").astype(str).replace("", "none")
    df["learner"] = df["learner"].astype(str)
    if "status" in df.columns:
        status = df["status"].fillna("ok").astype(str)
        df["_failed"] = ~status.isin(["ok", "not_applicable"])
        ok = (status == "ok").to_numpy()
    else:
        df["_failed"] = False
        ok = np.ones(len(df), dtype=bool)
    if metric == "seconds":
        # one run time per run (the table repeats it on every metric row of the run)
        keys = [*FACETS, "learner", "aligner", "seed"] + (["fold"] if "fold" in df else [])
        df["value"] = np.where(ok, pd.to_numeric(df["seconds"], errors="coerce"), np.nan)
        df = df.drop_duplicates(keys)[[*keys, "value", "_failed"]]
    else:
        available = list(dict.fromkeys(df["metric"].astype(str)))
        if metric not in available:
            raise KeyError(f"`metric`={metric!r} is not in the table; available: {available}.")
        df = df.assign(value=np.where(ok, pd.to_numeric(df["value"], errors="coerce"), np.nan))
        df = df[df["metric"].astype(str) == metric]
    for arg, col, value in (
        ("dataset", "dataset", dataset),
        ("setting", "setting", setting),
        ("protocol", "protocol", protocol),
        ("learners", "learner", learners),
        ("aligners", "aligner", aligners),
    ):
        values = _as_list(value)
        if not values:  # None or empty: keep all
            continue
        values = [str(v) for v in values]
        present = set(df[col].astype(str))
        unknown = [v for v in values if v not in present]
        if unknown:
            raise KeyError(
                f"`{arg}` {unknown} not found for metric {metric!r}; available: {sorted(present)}."
            )
        df = df[df[col].astype(str).isin(values)]
    if df.empty:
        raise ValueError(f"No rows left for `metric`={metric!r} after filtering.")
    return df.copy()


def _heatmap(
    a: Axes,
    mean: pd.DataFrame,
    se: pd.DataFrame,
    lower_is_better: bool,
    cmap: str | None,
    annotate: bool,
    cbar_label: str,
) -> None:
    from matplotlib import colormaps

    cm = colormaps[cmap or ("viridis_r" if lower_is_better else "viridis")]
    cm = cm.with_extremes(bad="#e0e0e0")
    m = mean.to_numpy(dtype=float)
    s = se.to_numpy(dtype=float)
    im = a.imshow(np.ma.masked_invalid(m), cmap=cm, aspect="auto", interpolation="nearest")
    a.set_xticks(np.arange(m.shape[1]), [str(c) for c in mean.columns], rotation=30, ha="right")
    a.set_yticks(np.arange(m.shape[0]), [str(r) for r in mean.index])
    a.set_xlabel("aligner")
    a.set_ylabel("learner")
    a.tick_params(length=0)
    cbar = a.figure.colorbar(im, ax=a, shrink=0.85, pad=0.02)
    cbar.set_label(cbar_label)
    if not annotate:
        return
    best = np.full(m.shape, False)
    for j in range(m.shape[1]):
        col = m[:, j]
        finite = col[np.isfinite(col)]
        if finite.size > 1 and finite.min() < finite.max():  # no winner when all are equal
            target = finite.min() if lower_is_better else finite.max()
            best[:, j] = col == target
    digits = _digits(m)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if not np.isfinite(m[i, j]):
                a.text(j, i, "n/a", ha="center", va="center", fontsize="small", color="0.35")
                continue
            rgb = im.cmap(im.norm(m[i, j]))[:3]
            lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
            txt = f"{m[i, j]:.{digits}f}"
            if np.isfinite(s[i, j]):
                txt += f"\n\u00b1{s[i, j]:.{digits}f}"
            a.text(
                j,
                i,
                txt,
                ha="center",
                va="center",
                fontsize="small",
                linespacing=1.0,
                fontweight="bold" if best[i, j] else "normal",
                color="white" if lum < 0.45 else "black",
            )


def _digits(m: np.ndarray) -> int:
    finite = np.abs(m[np.isfinite(m)])
    if finite.size == 0:
        return 2
    top = float(finite.max())
    return 3 if top < 1 else 2 if top < 100 else 0


def _bars(a: Axes, mean: pd.DataFrame, se: pd.DataFrame, metric: str, direction: str) -> None:
    n_l, n_a = mean.shape
    width = 0.8 / max(n_a, 1)
    colors = default_palette(n_a)
    x = np.arange(n_l)
    for j, aligner in enumerate(mean.columns):
        offs = x - 0.4 + width * (j + 0.5)
        err = se[aligner].to_numpy(dtype=float)
        a.bar(
            offs,
            mean[aligner].to_numpy(dtype=float),
            width=width,
            yerr=np.where(np.isfinite(err), err, 0.0),
            capsize=2 if n_a * n_l <= 40 else 0,
            color=colors[j],
            label=str(aligner),
            error_kw={"elinewidth": 0.8},
        )
    a.set_xticks(x, [str(v) for v in mean.index], rotation=30, ha="right")
    a.set_xlabel("learner")
    a.set_ylabel(f"{metric}, mean \u00b1 SE\n({direction})")
    a.spines[["top", "right"]].set_visible(False)
    if n_a > 1:
        a.legend(
            title="aligner",
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            frameon=False,
            fontsize="small",
            ncol=legend_columns(n_a),
        )
