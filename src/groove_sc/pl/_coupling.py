"""Heatmaps of a coupling: label x label mass, and the cell-level block of one label."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..data._mudata import recorded_label_key
from ..tl import get_coupling
from ._utils import categories_of, check_modality, figure_docs, finish, new_axes

__all__ = ["coupling"]


@figure_docs
def coupling(
    mdata: Any,
    *,
    key: str = "groove_coupling",
    source: str | None = None,
    target: str | None = None,
    group_key: str | None = None,
    label: str | None = None,
    normalize: Literal["row", "total"] | None = "row",
    order_key: str | None = "pair_id",
    max_cells: int = 500,
    annotate: bool | None = None,
    cmap: str = "Reds",
    random_state: int = 0,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
) -> Figure | Axes | None:
    r"""Plot a coupling stored by :func:`groove_sc.tl.align` as a heatmap.

    **Label view** (``label=None``): the mass the coupling :math:`T` (source cells x target
    cells) moves from each source label :math:`l` to each target label :math:`k`,
    :math:`M_{lk} = \sum_{i: l_i = l} \sum_{j: l_j = k} T_{ij}`. A labeled coupling is
    diagonal by construction; a global one shows where mass leaks across labels.

    **Cell view** (``label`` given): the block of :math:`T` between the source and the target
    cells of that label. Cells are ordered by ``order_key`` (the true pair identifier of
    jointly measured test cells): the cells with a partner on the other side first, partners
    at the same position, so a coupling that recovers the true pairs shows a bright diagonal,
    marked by small open circles. Without ``order_key`` the target cells are ordered by the
    source cell that sends them most mass.

    Parameters
    ----------
    mdata
        MuData holding ``mdata.obsp[key]`` (and ``mdata.uns[key]``) written by
        :func:`groove_sc.tl.align`.
    key
        Key of the coupling in ``mdata.obsp``.
    source, target
        Modalities of the rows and columns; default: those recorded in
        ``mdata.uns[key]["params"]``. Swapping them transposes the coupling.
    group_key
        Label column in both modalities' ``.obs``; default: the one the coupling was computed
        with (``mdata.uns[key]["params"]``), else the recorded one
        (:func:`groove_sc.data.recorded_label_key`).
    label
        Draw the cell-level block of this label instead of the label x label matrix.
    normalize
        ``"row"``: each row sums to 1 (the share of a source label's, or a source cell's,
        mass that goes to each column; rows without mass are 0); ``"total"``: divide by the
        total mass of the drawn matrix; ``None``: the stored masses.
    order_key
        Cell view: column of both modalities' ``.obs`` that identifies true partners (ignored
        when absent).
    max_cells
        Cell view: at most this many cells per side (a random subset, favouring cells with a
        partner; the title says so).
    annotate
        Write the values into the label view's cells; default: when there are at most 15
        labels.
    cmap
        Matplotlib colormap.
    random_state
        Seed of the cell subsampling.
    {figure_params}

    Returns
    -------
    The Figure if ``return_fig``, else the Axes (``None`` when shown). The drawn matrix is the
    array of ``ax.images[0]`` (rows top to bottom as labelled).

    Raises
    ------
    KeyError
        If ``key`` is not in ``mdata.obsp``, ``group_key`` is not in both modalities, a
        modality is unknown or ``label`` is not a label of both modalities.
    """
    if key not in mdata.obsp:
        raise KeyError(
            f"`key`={key!r} is not in mdata.obsp (available: {list(mdata.obsp.keys())}); run "
            "groove_sc.tl.align first."
        )
    params = {}
    if isinstance(mdata.uns.get(key), dict):
        params = dict(mdata.uns[key].get("params", {}))
    if source is None:
        source = params.get("source")
    if target is None:
        target = params.get("target")
    if source is None or target is None:
        raise ValueError(
            f"`source` and `target` are needed: mdata.uns[{key!r}] does not record them."
        )
    group_key = recorded_label_key(mdata, group_key or params.get("group_key"))
    check_modality(mdata, source, "source")
    check_modality(mdata, target, "target")
    if normalize not in ("row", "total", None):
        raise ValueError(f"`normalize` must be 'row', 'total' or None, got {normalize!r}.")
    for arg, m in (("source", source), ("target", target)):
        if group_key not in mdata.mod[m].obs:
            raise KeyError(
                f"`group_key`={group_key!r} is not a column of mdata.mod[{m!r}].obs (the {arg})."
            )
    t = get_coupling(mdata, key, source=source, target=target)
    ls = mdata.mod[source].obs[group_key]
    lt = mdata.mod[target].obs[group_key]
    method = params.get("method")
    what = key if method is None else str(method)
    if method is not None and not params.get("labeled", True):
        what += " (global)"

    fig, axes, ax_given = new_axes(1, ncols=1, panel_size=(6.0, 5.0), ax=ax)
    a = axes[0]

    if label is None:
        rows, cols, mat = _label_matrix(t, ls, lt)
        mat = _normalize(mat, normalize)
        if not ax_given:
            side = float(np.clip(0.32 * max(len(rows), len(cols)) + 2.5, 4.5, 12))
            fig.set_size_inches(side + 1.2, side)
        im = a.imshow(mat, cmap=cmap, aspect="auto", interpolation="nearest", vmin=0)
        _label_ticks(a, rows, cols)
        a.set_xlabel(f"{target} label")
        a.set_ylabel(f"{source} label")
        a.set_title(f"{what}: {source} \u2192 {target} mass by {group_key}")
        if annotate is None:
            annotate = max(len(rows), len(cols)) <= 15
        if annotate:
            _annotate(a, mat, im)
    else:
        mat, truth, note = _cell_block(
            mdata, t, source, target, ls, lt, label, order_key, max_cells, random_state
        )
        mat = _normalize(mat, normalize)
        if not ax_given:
            fig.set_size_inches(6.2, 5.0)
        im = a.imshow(mat, cmap=cmap, aspect="auto", interpolation="nearest", vmin=0)
        xlabel = f"{target} cells ({mat.shape[1]})"
        if truth is not None and len(truth[0]):
            a.scatter(
                truth[1],
                truth[0],
                s=max(4.0, min(30.0, 3000.0 / max(mat.shape))),
                facecolors="none",
                edgecolors="#1f77b4",
                linewidths=0.6,
            )
            xlabel += "; blue circles: true partners"
        a.set_xlabel(xlabel)
        a.set_ylabel(f"{source} cells ({mat.shape[0]})")
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(f"{what}: {group_key} {label!s}{note}")
    cbar = fig.colorbar(im, ax=a, shrink=0.8, pad=0.02)
    cbar.set_label(
        {
            "row": "share of the row's mass",
            "total": "share of the total mass",
            None: "coupling mass",
        }[normalize]
    )
    return finish(fig, a, ax_given=ax_given, show=show, return_fig=return_fig, save=save)


# --------------------------------------------------------------------------------------------
def _codes(values: pd.Series, categories: list[str]) -> np.ndarray:
    vals = values.astype(object).where(values.notna(), None).to_numpy()
    index = pd.Index(categories)
    codes = index.get_indexer([None if v is None else str(v) for v in vals])
    return codes


def _label_matrix(
    t: sp.csr_matrix, ls: pd.Series, lt: pd.Series
) -> tuple[list[str], list[str], np.ndarray]:
    """Label x label mass; rows and columns in one shared order (shared labels first)."""
    cs, ct = categories_of(ls), categories_of(lt)
    shared = [c for c in cs if c in set(ct)]
    rows = shared + [c for c in cs if c not in set(shared)]
    cols = shared + [c for c in ct if c not in set(shared)]
    a = _codes(ls, rows)
    b = _codes(lt, cols)
    ia = np.flatnonzero(a >= 0)
    ib = np.flatnonzero(b >= 0)
    ind_s = sp.csr_matrix((np.ones(ia.size), (a[ia], ia)), shape=(len(rows), len(a)))
    ind_t = sp.csr_matrix((np.ones(ib.size), (ib, b[ib])), shape=(len(b), len(cols)))
    mat = (ind_s @ t.astype(np.float64) @ ind_t).toarray()
    return rows, cols, mat


def _normalize(mat: np.ndarray, normalize: str | None) -> np.ndarray:
    mat = np.asarray(mat, dtype=np.float64)
    if normalize == "row":
        s = mat.sum(1, keepdims=True)
        return np.divide(mat, s, out=np.zeros_like(mat), where=s > 0)
    if normalize == "total":
        s = mat.sum()
        return mat / s if s > 0 else mat
    return mat


def _label_ticks(a: Axes, rows: list[str], cols: list[str]) -> None:
    n = max(len(rows), len(cols))
    if n > 60:
        a.set_xticks([])
        a.set_yticks([])
        return
    fs = "small" if n <= 30 else "x-small"
    a.set_yticks(np.arange(len(rows)), rows, fontsize=fs)
    a.set_xticks(np.arange(len(cols)), cols, fontsize=fs, rotation=90)


def _annotate(a: Axes, mat: np.ndarray, im: Any) -> None:
    vmax = float(np.nanmax(mat)) if mat.size else 0.0
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            v = mat[i, j]
            if v == 0 or (vmax >= 0.01 and v < 0.005):  # leave cells that would read 0.00 empty
                continue
            rgb = im.cmap(im.norm(v))[:3]
            lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
            txt = f"{v:.2f}" if vmax >= 0.01 else f"{v:.1e}"
            a.text(
                j,
                i,
                txt,
                ha="center",
                va="center",
                fontsize="x-small",
                color="white" if lum < 0.5 else "black",
            )


def _cell_block(
    mdata: Any,
    t: sp.csr_matrix,
    source: str,
    target: str,
    ls: pd.Series,
    lt: pd.Series,
    label: str,
    order_key: str | None,
    max_cells: int,
    random_state: int,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None, str]:
    lab = str(label)
    s_idx = np.flatnonzero(ls.notna().to_numpy() & (ls.astype(str).to_numpy() == lab))
    t_idx = np.flatnonzero(lt.notna().to_numpy() & (lt.astype(str).to_numpy() == lab))
    if s_idx.size == 0 or t_idx.size == 0:
        missing = [m for m, ix in ((source, s_idx), (target, t_idx)) if ix.size == 0]
        raise KeyError(f"`label`={label!r} has no cells in modalities {missing}.")
    rng = np.random.default_rng(random_state)
    has_order = (
        order_key is not None
        and order_key in mdata.mod[source].obs
        and order_key in mdata.mod[target].obs
    )
    note = ""
    if has_order:
        ids_s = mdata.mod[source].obs[order_key].astype(str).to_numpy()[s_idx]
        ids_t = mdata.mod[target].obs[order_key].astype(str).to_numpy()[t_idx]
        common = np.intersect1d(ids_s, ids_t)
        n_keep = min(len(common), max_cells)
        if n_keep < len(common):
            common = np.sort(rng.choice(common, n_keep, replace=False))
        pos_s = pd.Index(ids_s)
        pos_t = pd.Index(ids_t)
        paired_s = s_idx[pos_s.get_indexer(common)] if len(common) else np.array([], int)
        paired_t = t_idx[pos_t.get_indexer(common)] if len(common) else np.array([], int)
        rest_s = np.setdiff1d(s_idx, paired_s)
        rest_t = np.setdiff1d(t_idx, paired_t)
        extra_s = _subsample(rest_s, max_cells - len(paired_s), rng)
        extra_t = _subsample(rest_t, max_cells - len(paired_t), rng)
        rows = np.concatenate([paired_s, extra_s]).astype(int)
        cols = np.concatenate([paired_t, extra_t]).astype(int)
        truth = (np.arange(len(paired_s)), np.arange(len(paired_t)))
    else:
        rows = np.sort(_subsample(s_idx, max_cells, rng)).astype(int)
        cols = _subsample(t_idx, max_cells, rng).astype(int)
        truth = None
    if len(rows) < len(s_idx) or len(cols) < len(t_idx):
        note = (
            f"\n({len(rows)} of {len(s_idx)} {source}, {len(cols)} of {len(t_idx)} {target} cells)"
        )
    mat = t[rows][:, cols].toarray().astype(np.float64)
    if not has_order:
        # order target cells by the source row that sends them most mass (a diagonal if 1:1)
        best = np.where(mat.sum(0) > 0, mat.argmax(0), mat.shape[0])
        perm = np.lexsort((-mat.max(0), best))
        mat, cols = mat[:, perm], cols[perm]
    return mat, truth, note


def _subsample(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    n = max(0, int(n))
    if len(idx) <= n:
        return np.asarray(idx)
    return np.sort(rng.choice(idx, n, replace=False))
