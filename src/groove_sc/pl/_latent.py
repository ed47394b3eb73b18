"""Embedding of the shared latent space (UMAP of ``X_groove``), coloured by modality and label."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import matplotlib.patheffects as pe
import numpy as np
import pandas as pd
import scipy.sparse as sp
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..data._mudata import recorded_label_key
from ..tl._embedding import embedding_key, joint_embedding, resolve_embedded
from ._utils import (
    NA_COLOR,
    categories_of,
    finish,
    legend_columns,
    new_axes,
    resolve_palette,
)

__all__ = ["latent"]


def latent(
    mdata: Any,
    *,
    use_rep: str = "X_groove",
    color: str | Sequence[str] | None = None,
    group_key: str | None = None,
    groups: Sequence[str] | None = None,
    modalities: Sequence[str] | None = None,
    basis: str = "umap",
    n_neighbors: int = 15,
    random_state: int = 0,
    key_added: str | None = None,
    palette: Any = None,
    size: float | None = None,
    alpha: float = 0.8,
    legend_loc: Literal["right margin", "on data"] | None = "right margin",
    max_legend_categories: int = 40,
    ncols: int = 2,
    ax: Axes | Sequence[Axes] | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
) -> Figure | Axes | list[Axes] | None:
    """Plot a 2-D embedding of the shared latent space of all modalities.

    The per-modality representations ``mdata.mod[m].obsm[use_rep]`` (written by
    :func:`groove_sc.tl.latent`) are stacked into one temporary AnnData with a ``modality``
    column; its UMAP (:func:`scanpy.pp.neighbors` and :func:`scanpy.tl.umap` on ``use_rep``)
    or first two principal components are drawn, one panel per ``color`` key. Cells of a
    weakly paired MuData and of a paired test MuData (the same ``obs_names`` in both
    modalities) are all drawn: each cell once per modality it was measured in. Points are drawn
    in a random order so that one modality does not hide the other.

    ``mdata`` is not modified unless ``key_added`` is given.

    Cells the model trained on (flagged by :func:`groove_sc.tl.latent` in
    ``.obs[use_rep + "_training"]``) are drawn too, with a warning: a model can memorise its
    training cells' labels, so that they form crisp cross-modal clusters where held-out cells
    do not. Draw held-out cells to judge the alignment.

    Parameters
    ----------
    mdata
        MuData whose modalities hold ``use_rep`` in ``.obsm``.
    use_rep
        Key of the shared latent representation in each modality's ``.obsm``.
    color
        Keys to colour by, one panel each: ``"modality"``, a column of the modalities' ``.obs``
        (categorical or numeric; cells of a modality without the column are grey) or a feature
        name of one modality (its cells coloured by ``.X``, the other modality's cells grey).
        Default: ``("modality", group_key)``.
    group_key
        Label column (in each modality's ``.obs``); used by the default ``color`` and by
        ``groups``. Default: the recorded one (:func:`groove_sc.data.recorded_label_key`).
    groups
        Highlight these labels of ``group_key`` in its panel; the other cells are grey and
        left out of the legend.
    modalities
        Modalities to draw; default every modality that holds ``use_rep``.
    basis
        ``"umap"`` or ``"pca"`` of ``use_rep``: the embedding :func:`groove_sc.tl.embedding`
        stored (``.obsm[use_rep + "_umap"]``; nothing is recomputed), else computed here for
        this plot only (compute it once with :func:`groove_sc.tl.embedding` to draw it
        again cheaply); or the key of any 2-D embedding in every modality's ``.obsm``.
    n_neighbors
        Neighbours of the UMAP graph (lowered to the number of cells minus one if needed).
    random_state
        Seed of the UMAP and of the drawing order.
    key_added
        If given, store the computed 2-D coordinates in ``mdata.mod[m].obsm[key_added]`` for
        every drawn modality (reuse them with ``basis=key_added``). Default: nothing is written.
    palette
        Colours of categorical keys: a dict ``{category: colour}``, a list, or a matplotlib
        colormap name. Default: colours stored in a modality's ``.uns[f"{key}_colors"]`` when
        they cover the categories, else scanpy's default palettes.
    size
        Marker size; default ``120000 / n_cells`` clipped to ``[2, 40]``.
    alpha
        Marker opacity.
    legend_loc
        ``"right margin"`` (outside the axes, several columns for many categories),
        ``"on data"`` (category names at the median position of their cells) or ``None``.
    max_legend_categories
        With more categories than this, the right-margin legend is replaced by a short note.
    ncols
        Panels per row.
    ax
        Axes to draw into, one per ``color`` key; default: a new figure.
    show
        Show the figure; default: only when the function created it, ``save`` is ``None`` and
        the backend is interactive.
    return_fig
        Return the Figure instead of the Axes.
    save
        Write the figure to this path (any format matplotlib knows, from the extension).

    Returns
    -------
    The Figure if ``return_fig``; else the Axes (a list with one per ``color`` key when there
    are several); ``None`` when shown.

    Raises
    ------
    KeyError
        If ``use_rep``, a ``color`` key, ``group_key``/``groups``, ``basis`` or a modality is
        missing (the message names the argument).

    Examples
    --------
    >>> gs.tl.latent(model, test)
    >>> gs.pl.latent(test, color=["modality", "perturbation"])
    >>> gs.pl.latent(test, key_added="X_groove_umap", show=False)  # store the UMAP
    >>> gs.pl.latent(test, basis="X_groove_umap", color="perturbation", groups=["P01", "P02"])
    """
    mods = resolve_embedded(mdata, use_rep, modalities)
    group_key = recorded_label_key(mdata, group_key)
    if color is None:
        color = ("modality", group_key)
    keys = [color] if isinstance(color, str) else list(color)
    if not keys:
        raise ValueError("`color` must name at least one key.")
    if legend_loc not in ("right margin", "on data", None):
        raise ValueError(
            f"`legend_loc` must be 'right margin', 'on data' or None, got {legend_loc!r}."
        )
    obs = _stacked_obs(mdata, mods)
    _warn_training_cells(mdata, mods, use_rep)
    if groups is not None:
        if group_key not in obs:
            raise KeyError(f"`group_key`={group_key!r} is not a column of the modalities' .obs.")
        present = set(obs[group_key].dropna().astype(str))
        unknown = [g for g in groups if str(g) not in present]
        if unknown:
            raise KeyError(f"`groups` {unknown} are not labels of `group_key`={group_key!r}.")
    values = {k: _color_values(mdata, mods, obs, k) for k in keys}

    coords, labels = _embedding(mdata, mods, use_rep, basis, n_neighbors, random_state)
    if key_added is not None:
        start = 0
        for m in mods:
            n = mdata.mod[m].n_obs
            mdata.mod[m].obsm[key_added] = coords[start : start + n].copy()
            start += n

    n = coords.shape[0]
    if size is None:
        size = float(np.clip(120000 / max(n, 1), 2, 40))
    order = np.random.default_rng(random_state).permutation(n)
    n_legend = max(
        (len(categories_of(v)) for v in values.values() if not _is_numeric(v)), default=0
    )
    width = 4.0 + (
        1.4 * legend_columns(n_legend)
        if legend_loc == "right margin" and 0 < n_legend <= max_legend_categories
        else 1.0
    )
    fig, axes, ax_given = new_axes(len(keys), ncols=ncols, panel_size=(width, 4.0), ax=ax)
    for key, a in zip(keys, axes):
        vals = values[key]
        if _is_numeric(vals):
            _draw_continuous(a, coords, vals, order, size)
        else:
            stored = _stored_colors(mdata, mods, key)
            sel = groups if key == group_key else None
            _draw_categorical(
                a,
                coords,
                vals,
                order,
                size,
                alpha,
                palette=palette,
                stored=stored,
                groups=sel,
                legend_loc=legend_loc,
                max_legend=max_legend_categories,
            )
        a.set_title(_title(mdata, mods, key))
        a.set_xlabel(labels[0])
        a.set_ylabel(labels[1])
        a.set_xticks([])
        a.set_yticks([])
    out = axes[0] if len(axes) == 1 else axes
    return finish(fig, out, ax_given=ax_given, show=show, return_fig=return_fig, save=save)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def _warn_training_cells(mdata: Any, mods: list[str], use_rep: str) -> None:
    column = use_rep + "_training"
    counts = {
        m: int(np.asarray(mdata.mod[m].obs[column], dtype=bool).sum())
        for m in mods
        if column in mdata.mod[m].obs
    }
    if any(counts.values()):
        shown = ", ".join(f"{n} {m!r}" for m, n in counts.items() if n)
        warnings.warn(
            f"The plot shows {shown} cells the model trained on (.obs[{column!r}]); their "
            "latent overstates how well the modalities align (a model can memorise the "
            "labels of its training cells). Plot held-out cells to judge the alignment: the "
            f"cells with .obs[{column!r}] False in each modality, or a test split.",
            UserWarning,
            stacklevel=3,
        )


def _stacked_obs(mdata: Any, mods: list[str]) -> pd.DataFrame:
    frames = []
    for m in mods:
        o = mdata.mod[m].obs.copy()
        o["modality"] = m
        o.index = [f"{m}:{i}" for i in o.index]
        frames.append(o)
    obs = pd.concat(frames, axis=0, join="outer")
    for col in obs.columns:  # restore categoricals lost by concatenating unequal categories
        src = [mdata.mod[m].obs[col] for m in mods if col in mdata.mod[m].obs]
        if src and all(isinstance(s.dtype, pd.CategoricalDtype) for s in src):
            cats: list[Any] = []
            for s in src:
                cats += [c for c in s.cat.categories if c not in cats]
            obs[col] = pd.Categorical(obs[col], categories=cats)
    obs["modality"] = pd.Categorical(obs["modality"], categories=mods)
    return obs


def _is_numeric(values: pd.Series) -> bool:
    return (
        not isinstance(values.dtype, pd.CategoricalDtype)
        and pd.api.types.is_numeric_dtype(values.dtype)
        and not pd.api.types.is_bool_dtype(values.dtype)
    )


def _feature_modality(mdata: Any, mods: list[str], key: str) -> str | None:
    for m in mods:
        if key in mdata.mod[m].var_names:
            return m
    return None


def _color_values(mdata: Any, mods: list[str], obs: pd.DataFrame, key: str) -> pd.Series:
    if key in obs.columns:
        return obs[key]
    m = _feature_modality(mdata, mods, key)
    if m is None:
        raise KeyError(
            f"`color`={key!r} is neither 'modality', a column of the modalities' .obs "
            f"({[c for c in obs.columns if c != 'modality']}) nor a feature of {mods}."
        )
    ad = mdata.mod[m]
    col = ad[:, key].X
    col = col.toarray() if sp.issparse(col) else np.asarray(col)
    out = pd.Series(np.nan, index=obs.index, dtype=float)
    out[obs["modality"].to_numpy() == m] = col.ravel().astype(float)
    return out


def _title(mdata: Any, mods: list[str], key: str) -> str:
    if key == "modality" or any(key in mdata.mod[m].obs for m in mods):
        return key
    return f"{key} ({_feature_modality(mdata, mods, key)})"


def _stored_colors(mdata: Any, mods: list[str], key: str) -> list[str] | None:
    for m in mods:
        colors = mdata.mod[m].uns.get(f"{key}_colors")
        if colors is not None:
            return [str(c) for c in colors]
    return None


def _embedding(
    mdata: Any,
    mods: list[str],
    use_rep: str,
    basis: str,
    n_neighbors: int,
    random_state: int,
) -> tuple[np.ndarray, tuple[str, str]]:
    """The 2-D coordinates to draw and their axis labels.

    A stored basis, the embedding :func:`groove_sc.tl.embedding` stored, or one computed here
    (not stored).
    """
    stored = basis
    if basis in ("umap", "pca"):
        stored = embedding_key(use_rep, basis)
        if not all(stored in mdata.mod[m].obsm for m in mods):
            x = np.vstack([np.asarray(mdata.mod[m].obsm[use_rep], dtype=np.float32) for m in mods])
            return joint_embedding(
                x, method=basis, n_neighbors=n_neighbors, random_state=random_state
            )
    missing = [m for m in mods if stored not in mdata.mod[m].obsm]
    if missing:
        raise KeyError(
            f"`basis`={basis!r} is neither 'umap', 'pca' nor a key of .obsm in modalities "
            f"{missing}."
        )
    coords = np.vstack([np.asarray(mdata.mod[m].obsm[stored])[:, :2] for m in mods])
    axes = (
        mdata.uns.get(stored, {}).get("axes") if isinstance(mdata.uns.get(stored), dict) else None
    )
    if axes is None or len(axes) != 2:
        name = stored[2:] if stored.startswith("X_") else stored
        axes = (f"{name}1", f"{name}2")
    return coords.astype(float), (str(axes[0]), str(axes[1]))


# --------------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------------
def _draw_categorical(
    a: Axes,
    coords: np.ndarray,
    values: pd.Series,
    order: np.ndarray,
    size: float,
    alpha: float,
    *,
    palette: Any,
    stored: list[str] | None,
    groups: Sequence[str] | None,
    legend_loc: str | None,
    max_legend: int,
) -> None:
    cats = categories_of(values)
    if stored is not None and isinstance(values.dtype, pd.CategoricalDtype):
        all_cats = [str(c) for c in values.cat.categories]
        if len(stored) >= len(all_cats):  # scanpy stores one colour per category, in order
            stored = [stored[all_cats.index(c)] for c in cats]
        else:
            stored = None
    colors = resolve_palette(cats, palette, stored)
    shown = cats if groups is None else [c for c in cats if c in {str(g) for g in groups}]
    vals = values.astype(str).where(values.notna(), None).to_numpy(dtype=object)
    shown_set = set(shown)
    highlight = pd.Series(vals).isin(shown_set).to_numpy()
    # grey cells first (underneath), then the coloured ones in random order
    draw = np.concatenate([order[~highlight[order]], order[highlight[order]]])
    rgba = pd.Series(vals).map(colors).where(highlight, NA_COLOR).to_numpy(dtype=object)
    a.scatter(
        coords[draw, 0],
        coords[draw, 1],
        c=list(rgba[draw]),
        s=size,
        alpha=alpha,
        linewidths=0,
        rasterized=len(draw) > 5000,
        plotnonfinite=True,
    )
    if legend_loc is None or not shown:
        return
    if legend_loc == "on data":
        for c in shown:
            pts = coords[vals == c]
            x, y = np.median(pts, axis=0)
            a.text(
                x,
                y,
                c,
                fontsize="small",
                fontweight="bold",
                ha="center",
                va="center",
                path_effects=[pe.withStroke(linewidth=2.5, foreground="white")],
            )
        return
    if len(shown) > max_legend:
        a.text(
            1.02,
            0.5,
            f"{len(shown)} categories:\nlegend omitted\n(use groups= or\nlegend_loc='on data')",
            transform=a.transAxes,
            fontsize="small",
            va="center",
            ha="left",
        )
        return
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colors[c], markersize=6, label=c)
        for c in shown
    ]
    a.legend(
        handles=handles,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        fontsize="small",
        ncol=legend_columns(len(shown)),
        handletextpad=0.2,
        columnspacing=0.8,
        borderaxespad=0.3,
    )


def _draw_continuous(
    a: Axes, coords: np.ndarray, values: pd.Series, order: np.ndarray, size: float
) -> None:
    v = values.to_numpy(dtype=float)
    na = ~np.isfinite(v)
    a.scatter(
        coords[na, 0], coords[na, 1], c=NA_COLOR, s=size, linewidths=0, rasterized=na.sum() > 5000
    )
    idx = np.flatnonzero(~na)
    idx = idx[np.argsort(v[idx], kind="stable")]  # high values on top
    sc = a.scatter(
        coords[idx, 0],
        coords[idx, 1],
        c=v[idx],
        cmap="viridis",
        s=size,
        linewidths=0,
        rasterized=len(idx) > 5000,
    )
    a.figure.colorbar(sc, ax=a, shrink=0.7, pad=0.02)
