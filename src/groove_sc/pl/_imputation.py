"""Imputed versus observed values, one panel per feature, with the Pearson correlation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.sparsefuncs import mean_variance_axis

from ..data._mudata import recorded_label_key
from ..tl._cells import read_layer
from ._utils import AxesArg, PlotResult, check_modality, figure_docs, finish, new_axes

__all__ = ["imputation"]


@figure_docs
def imputation(
    mdata: Any,
    *,
    source: str,
    target: str,
    key: str | None = None,
    predicted: Any = None,
    features: Sequence[str] | None = None,
    n_features: int = 6,
    observed: Any = None,
    layer: str | None = None,
    group_key: str | None = None,
    size: float | None = None,
    color: str = "#1f77b4",
    ncols: int = 3,
    ax: AxesArg = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
) -> PlotResult:
    """Scatter imputed against observed values of target features on the source cells.

    One panel per feature: each point is a source cell, at its observed value of the feature
    (x) and the value imputed for it (y), with the identity line and the Pearson correlation
    across cells in the title. The predictions are the ones :func:`groove_sc.tl.impute` stored
    in ``mdata.mod[source].obsm[key]`` (or any ``predicted`` table, e.g. the decoder
    translation :meth:`groove_sc.model.GROOVE.translate`); they are matched to the observed
    values by cell name (``obs_names``) and feature name.

    Parameters
    ----------
    mdata
        MuData with the two modalities (typically paired held-out test cells).
    source
        Modality whose cells received the imputed profiles.
    target
        Modality whose features were imputed.
    key
        Key of the imputed :class:`~pandas.DataFrame` in ``mdata.mod[source].obsm``; default
        ``f"{target}_imputed"`` (the default of :func:`groove_sc.tl.impute`).
    predicted
        Predicted profiles to draw instead of ``key``: a DataFrame (cells x features) or an
        AnnData (uses ``.X``), with the source cells' names.
    features
        Features to draw; default: the ``n_features`` features with the largest variance of
        the observed values.
    n_features
        Number of features chosen when ``features`` is ``None``.
    observed
        Observed values of the target features on the same cells: a MuData (uses
        ``.mod[target]``), an AnnData (``.X`` or ``layer``) or a DataFrame. Default:
        ``mdata.mod[target]``, which works when the source and target cells are the same cells
        with the same ``obs_names`` (paired test data from
        :func:`groove_sc.data.split_weakly_paired`).
    layer
        Layer of the observed AnnData to compare with; default ``.X``.
    group_key
        Label column used when ``mdata`` is weakly paired (no cell in both modalities and no
        ``observed``): each point is then a label, at the mean observed value of its target
        cells and the mean imputed value of its source cells (a truth-free check that the
        imputation keeps the labels' profiles). Default: the recorded label column
        (:func:`groove_sc.data.recorded_label_key`).
    size
        Marker size; default ``3000 / n_cells`` clipped to ``[2, 20]``.
    color
        Marker colour.
    ncols
        Panels per row.
    {figure_params}

    Returns
    -------
    ``None`` when shown; else the Figure with ``return_fig``, or the Axes (one per feature,
    a list when there are several).

    Raises
    ------
    KeyError
        If ``key`` is not in ``mdata.mod[source].obsm``, a modality or a feature is unknown,
        or ``layer`` is missing.
    ValueError
        If the predicted and observed values share no cell name.
    """
    check_modality(mdata, source, "source")
    check_modality(mdata, target, "target")
    pred = _predicted(mdata, source, target, key, predicted)
    o_mat, o_rows, o_cols = _observed(mdata, target, observed, layer)
    cells = pred.index.intersection(o_rows, sort=False)
    per_label = len(cells) == 0 and observed is None
    if per_label:  # weakly paired data: no cell is in both modalities, compare label means
        key_ = recorded_label_key(mdata, group_key)
        pred, o_mat, o_rows = _label_means(mdata, source, target, key_, pred, o_mat, o_rows)
        cells = pred.index.intersection(o_rows, sort=False)
    if len(cells) == 0:
        raise ValueError(
            "The predicted and `observed` values share no cell name: pass `observed=` with the "
            f"observed {target!r} values of the {source!r} cells (a paired MuData, AnnData or "
            "DataFrame indexed by the same obs_names)."
        )
    common = pred.columns.intersection(o_cols, sort=False)
    o_cells = o_mat[o_rows.get_indexer(cells)]
    if features is None:
        if len(common) == 0:
            raise ValueError("The predicted and observed values share no feature name.")
        var = pd.Series(_column_var(o_cells[:, o_cols.get_indexer(common)]), index=common)
        features = list(var.sort_values(ascending=False, kind="stable").index[:n_features])
    else:
        features = [features] if isinstance(features, str) else list(features)
        missing = sorted(set(features) - set(common), key=features.index)
        if missing:
            raise KeyError(
                f"`features` {missing} are not in both the predicted and the observed values "
                f"of {target!r}."
            )
    if not features:
        raise ValueError("No feature to draw.")
    p = pred.loc[cells, features].to_numpy(dtype=float)
    o = o_cells[:, o_cols.get_indexer(features)]
    o = o.toarray() if sp.issparse(o) else np.asarray(o)
    o = o.astype(float)
    if size is None:
        size = float(np.clip(3000 / max(len(cells), 1), 2, 20))
    fig, axes, ax_given = new_axes(len(features), ncols=ncols, panel_size=(3.3, 3.3), ax=ax)
    for j, (feat, a) in enumerate(zip(features, axes)):
        ok = np.isfinite(p[:, j]) & np.isfinite(o[:, j])
        x, y = o[ok, j], p[ok, j]
        a.scatter(x, y, s=size, color=color, alpha=0.6, linewidths=0, rasterized=len(x) > 5000)
        r = _pearson(x, y)
        if len(x):
            lo = float(min(x.min(), y.min()))
            hi = float(max(x.max(), y.max()))
            pad = 0.05 * (hi - lo) if hi > lo else 0.5
            a.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="0.5", lw=0.8, zorder=0)
        a.set_title(f"{feat}\nr = {r:.2f}" if np.isfinite(r) else f"{feat}\nr = n/a")
        if per_label:
            a.set_xlabel(f"observed mean per {key_} ({target})")
            a.set_ylabel(f"imputed mean per {key_}")
        else:
            a.set_xlabel(f"observed ({target})")
            a.set_ylabel("imputed")
    out = axes[0] if len(axes) == 1 else axes
    return finish(fig, out, ax_given=ax_given, show=show, return_fig=return_fig, save=save)


def _label_means(
    mdata: Any,
    source: str,
    target: str,
    group_key: str,
    pred: pd.DataFrame,
    o_mat: Any,
    o_rows: pd.Index,
) -> tuple[pd.DataFrame, np.ndarray, pd.Index]:
    """Mean imputed profile per label of the source cells and mean observed per label."""
    for arg, m in (("source", source), ("target", target)):
        if group_key not in mdata.mod[m].obs:
            raise KeyError(
                f"The {arg} and target cells share no name (weakly paired data), so labels are "
                f"compared: `group_key`={group_key!r} is not a column of mdata.mod[{m!r}].obs."
            )
    src_lab = mdata.mod[source].obs[group_key].astype(str)
    pred_means = pred.groupby(src_lab.reindex(pred.index).to_numpy()).mean()
    tgt_lab = mdata.mod[target].obs[group_key].astype(str).reindex(o_rows).to_numpy()
    labels, codes = np.unique(tgt_lab, return_inverse=True)
    onehot = sp.csr_matrix(
        (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(len(labels), len(codes))
    )
    sums = onehot @ o_mat
    sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums)
    counts = np.asarray(onehot.sum(1)).ravel()
    return pred_means, sums / counts[:, None], pd.Index(labels)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    den = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / den) if den > 0 else float("nan")


def _column_var(x: Any) -> np.ndarray:
    """Variance of each column (NaN-aware for dense input), without densifying sparse input."""
    if sp.issparse(x):
        return mean_variance_axis(x.tocsc().astype(np.float64), axis=0)[1]
    with np.errstate(invalid="ignore"):
        return np.nanvar(np.asarray(x, dtype=np.float64), axis=0)


def _frame(x: Any, index: Any, columns: Any) -> pd.DataFrame:
    if sp.issparse(x):
        x = x.toarray()
    return pd.DataFrame(np.asarray(x), index=pd.Index(index).astype(str), columns=columns)


def _predicted(
    mdata: Any, source: str, target: str, key: str | None, predicted: Any
) -> pd.DataFrame:
    if predicted is not None:
        if isinstance(predicted, pd.DataFrame):
            out = predicted.copy()
            out.index = out.index.astype(str)
            return out
        if hasattr(predicted, "obs_names") and hasattr(predicted, "X"):
            return _frame(predicted.X, predicted.obs_names, predicted.var_names)
        raise TypeError("`predicted` must be a DataFrame or an AnnData.")
    key = key or f"{target}_imputed"
    obsm = mdata.mod[source].obsm
    if key not in obsm:
        raise KeyError(
            f"`key`={key!r} is not in mdata.mod[{source!r}].obsm (available: "
            f"{list(obsm.keys())}); run groove_sc.tl.impute(mdata, source={source!r}, "
            f"target={target!r}) first or pass `predicted=`."
        )
    val = obsm[key]
    if isinstance(val, pd.DataFrame):
        out = val.copy()
        out.index = out.index.astype(str)
        return out
    val = np.asarray(val)
    if val.shape[1] != mdata.mod[target].n_vars:
        raise ValueError(
            f"mdata.mod[{source!r}].obsm[{key!r}] is an array with {val.shape[1]} columns, not "
            f"the {mdata.mod[target].n_vars} features of {target!r}; pass a DataFrame."
        )
    return _frame(val, mdata.mod[source].obs_names, mdata.mod[target].var_names)


def _observed(
    mdata: Any, target: str, observed: Any, layer: str | None
) -> tuple[Any, pd.Index, pd.Index]:
    """(matrix, cell names, feature names) of the observed values; sparse stays sparse."""
    if observed is None:
        observed = mdata.mod[target]
    elif hasattr(observed, "mod"):
        check_modality(observed, target, "target")
        observed = observed.mod[target]
    if isinstance(observed, pd.DataFrame):
        return observed.to_numpy(), pd.Index(observed.index).astype(str), observed.columns
    if not (hasattr(observed, "obs_names") and hasattr(observed, "X")):
        raise TypeError("`observed` must be a MuData, an AnnData or a DataFrame.")
    x = read_layer(observed, layer, f"the observed {target!r} data")
    x = x.tocsr() if sp.issparse(x) else np.asarray(x)
    return x, pd.Index(observed.obs_names).astype(str), pd.Index(observed.var_names)
