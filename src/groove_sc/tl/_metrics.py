"""Matching and imputation metrics.

Every metric states its definition and direction in its docstring. Array-level functions take
plain arrays (``foscttm``, ``label_transfer_accuracy``, ``imputation_metrics``);
``matching_metrics`` reads a coupling stored by :func:`groove_sc.tl.align` from a MuData.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData
from scipy.spatial import cKDTree

from ..data._mudata import recorded_label_key
from ._cells import obs_strings, partners
from ._coupling import get_coupling
from ._impute import barycentric_projection

#: Largest number of pairwise distances (or output entries) held by one chunk.
_MAX_CHUNK_ENTRIES = 2**24


def _check_paired(
    x: np.ndarray, y: np.ndarray, names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"`{names[0]}` and `{names[1]}` must be 2-D arrays (cells x dims).")
    if x.shape != y.shape:
        raise ValueError(
            f"`{names[0]}` {x.shape} and `{names[1]}` {y.shape} must have the same shape: "
            "row i of both must be the same (jointly measured) cell."
        )
    if x.shape[0] < 2:
        raise ValueError("FOSCTTM needs at least two paired cells.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"`{names[0]}` and `{names[1]}` must not contain NaN or inf.")
    return x, y


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _foscttm_one_direction(x: np.ndarray, y: np.ndarray, chunk_size: int) -> np.ndarray:
    n = x.shape[0]
    out = np.empty(n)
    chunk_size = max(1, min(int(chunk_size), _MAX_CHUNK_ENTRIES // max(n, 1)))
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        d = _sq_dists(x[start:stop], y)  # (chunk, n)
        true = d[np.arange(stop - start), np.arange(start, stop)][:, None]
        # relative tolerance so that exact ties (e.g. identical rows) count as ties
        tol = 1e-9 * np.maximum(np.abs(true), 1e-12)
        closer = (d < true - tol).sum(1)
        ties = (np.abs(d - true) <= tol).sum(1) - 1  # the true partner is not a tie
        out[start:stop] = (closer + 0.5 * ties) / (n - 1)
    return out


def foscttm(
    x: np.ndarray,
    y: np.ndarray,
    *,
    chunk_size: int = 2048,
    return_per_cell: bool = False,
) -> float | tuple[np.ndarray, np.ndarray]:
    """Fraction Of Samples Closer Than the True Match (FOSCTTM).

    Row ``i`` of ``x`` and row ``i`` of ``y`` are the same cell measured in two modalities,
    embedded in one space. For a cell ``i`` of ``x``, its score is the fraction of the other
    ``n - 1`` cells ``j`` of ``y`` that are closer (Euclidean) to ``x_i`` than its true partner
    ``y_i``; the same is computed from ``y`` to ``x``. Ties count as half (mid-rank), so an
    embedding that carries no information scores 0.5, not 0.25 as with the strict ``<`` of
    SCOT/Pamona. The returned value is the mean over cells of both directions.
    0 is perfect, 0.5 is random. Memory is ``chunk_size x n`` (``chunk_size`` is lowered so
    that a chunk holds at most ``2**24`` distances), never ``n x n``.

    Parameters
    ----------
    x
        Embedding of the cells in modality A, shape ``(n, d)``.
    y
        Embedding of the same cells in modality B, shape ``(n, d)``.
    chunk_size
        Rows processed at a time.
    return_per_cell
        Return the per-cell scores of both directions instead of the mean.

    Returns
    -------
    The mean FOSCTTM over both directions, or ``(per_cell_x_to_y, per_cell_y_to_x)``.
    """
    x, y = _check_paired(x, y, ("x", "y"))
    a = _foscttm_one_direction(x, y, chunk_size)
    b = _foscttm_one_direction(y, x, chunk_size)
    if return_per_cell:
        return a, b
    return float((a.mean() + b.mean()) / 2.0)


def label_transfer_accuracy(
    x_source: np.ndarray,
    labels_source: np.ndarray,
    x_target: np.ndarray,
    labels_target: np.ndarray,
    *,
    n_neighbors: int = 1,
) -> float:
    """Cross-modal label transfer accuracy by nearest neighbours.

    Each cell of the target modality receives the majority label of its ``n_neighbors`` nearest
    source cells (Euclidean, in the shared space; ties broken by the nearest neighbour) and the
    score is the fraction of target cells whose transferred label equals their own. 1 is
    perfect; a space without cross-modal structure scores about the frequency of the majority
    label.

    Parameters
    ----------
    x_source
        Embedding of the reference cells, shape ``(n_source, d)``.
    labels_source
        Labels of the reference cells, length ``n_source``.
    x_target
        Embedding of the query cells, shape ``(n_target, d)``.
    labels_target
        True labels of the query cells, length ``n_target``.
    n_neighbors
        Number of neighbours that vote.

    Returns
    -------
    Accuracy in ``[0, 1]``.
    """
    x_source = np.asarray(x_source, dtype=np.float64)
    x_target = np.asarray(x_target, dtype=np.float64)
    labels_source = np.asarray(labels_source)
    labels_target = np.asarray(labels_target)
    if x_source.ndim != 2 or x_target.ndim != 2 or x_source.shape[1] != x_target.shape[1]:
        raise ValueError(
            "`x_source` and `x_target` must be 2-D arrays with the same number of columns, "
            f"got {x_source.shape} and {x_target.shape}."
        )
    for side, labels, x in (
        ("source", labels_source, x_source),
        ("target", labels_target, x_target),
    ):
        if len(labels) != len(x):
            raise ValueError(
                f"`labels_{side}` has {len(labels)} entries but `x_{side}` has {len(x)} rows; "
                "each label array must have one entry per row of its embedding."
            )
    if len(x_source) == 0 or len(x_target) == 0:
        raise ValueError("Label transfer needs at least one source and one target cell.")
    k = int(min(n_neighbors, len(x_source)))
    if k < 1:
        raise ValueError(f"`n_neighbors` must be >= 1, got {n_neighbors}.")
    _, idx = cKDTree(x_source).query(x_target, k=k)
    idx = np.asarray(idx).reshape(len(x_target), k)
    codes, uniques = _encode(labels_source, labels_target)
    src_codes = codes[0][idx]  # (n_target, k)
    if k == 1:
        pred = src_codes[:, 0]
    else:
        n_classes = len(uniques)
        # vote weights favour nearer neighbours very slightly to break ties deterministically
        weights = 1.0 + 1e-6 * (k - np.arange(k))[None, :]
        votes = np.zeros((len(x_target), n_classes))
        np.add.at(
            votes,
            (np.repeat(np.arange(len(x_target)), k), src_codes.ravel()),
            np.tile(weights[0], len(x_target)),
        )
        pred = votes.argmax(1)
    return float((pred == codes[1]).mean())


def _encode(a: np.ndarray, b: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    uniques, inv = np.unique(np.concatenate([a.astype(str), b.astype(str)]), return_inverse=True)
    return (inv[: len(a)], inv[len(a) :]), uniques


# --------------------------------------------------------------------------------------------
# coupling-level metrics
# --------------------------------------------------------------------------------------------
def _rep(adata: Any, use_rep: str | None) -> np.ndarray | None:
    if use_rep is None:
        return None
    if use_rep == "X":
        x = adata.X
    elif use_rep in adata.obsm:
        x = adata.obsm[use_rep]
    else:
        return None
    if isinstance(x, pd.DataFrame):
        x = x.to_numpy()
    if sp.issparse(x):
        x = x.toarray()
    return np.asarray(x, dtype=np.float64)


def _coupling_label_argmax(
    t: sp.csr_matrix, codes_t: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Label with the largest coupling mass in each row, and whether the row has any mass."""
    ok = codes_t >= 0
    onehot = sp.csr_matrix(
        (np.ones(int(ok.sum())), (np.flatnonzero(ok), codes_t[ok])),
        shape=(t.shape[1], n_classes),
    )
    pred = np.full(t.shape[0], -1, dtype=np.int64)
    has = np.zeros(t.shape[0], dtype=bool)
    step = max(1, _MAX_CHUNK_ENTRIES // max(n_classes, 1))
    for start in range(0, t.shape[0], step):
        block = (t[start : start + step] @ onehot).toarray()
        pred[start : start + step] = block.argmax(1)
        has[start : start + step] = block.sum(1) > 0
    return pred, has


def matching_metrics(
    mdata: MuData,
    *,
    coupling_key: str = "groove_coupling",
    source: str,
    target: str,
    truth_key: str = "pair_id",
    group_key: str | Literal[False] | None = None,
    use_rep: str | None = "X_groove",
    label_key: str | None = None,
) -> dict[str, float]:
    r"""Score a coupling against the true pairs of jointly measured cells.

    The coupling :math:`T` (source x target) is read from ``mdata.obsp[coupling_key]`` through
    ``mdata.obsmap``, so it works for paired test data (shared ``obs_names``) and for weakly
    paired data. A source cell ``i`` and a target cell ``p(i)`` are true partners when they
    have the same ``truth_key`` value; :math:`P` is the set of source cells with a partner and
    :math:`r_i = \sum_j T_{ij}` the row mass.

    Metrics (all in the returned dict):

    ``trace``
        :math:`\sum_{i \in P} T_{i,p(i)} / \sum_{i \in P} r_i`: the share of the paired cells'
        mass that sits on the true partner. 1 is perfect.
    ``trace_uniform``
        The same for the uniform-within-label coupling with the same row masses:
        :math:`\sum_{i \in P} r_i [l_i = l_{p(i)}] / m_{l_i} \,/\, \sum_{i \in P} r_i`, with
        :math:`m_l` the number of target cells of label ``l`` (``group_key``).
    ``trace_ratio``
        ``trace / trace_uniform``: 1.0 for a method that only uses the labels; above 1 means
        the coupling uses within-label structure. NaN without ``group_key``.
    ``foscttm``
        :func:`foscttm` between ``use_rep`` of the paired source cells and of their partners
        (mid-rank ties, mean of both directions; 0 perfect, 0.5 random). Independent of the
        coupling; NaN unless ``use_rep`` exists in both modalities with the same width.
    ``foscttm_barycentric``
        :func:`foscttm` between the barycentric projection
        :math:`\hat y_i = \sum_j T_{ij} y_j / r_i` of the target representation ``use_rep``
        onto each paired source cell with mass, and the representation :math:`y_{p(i)}` of its
        partner, both in the target's space (so GW/COOT couplings without a shared space are
        scored too). Both directions, mid-rank ties. It rewards averaging: the uniform
        coupling projects every cell of a label onto the label mean and scores well, so read it
        next to ``trace``. NaN when ``use_rep`` is absent from the target.
    ``label_transfer_accuracy``
        Each source cell with mass is assigned the label (``label_key``, default
        ``group_key``) carrying the largest coupling mass in its row,
        :math:`\arg\max_l \sum_{j: l_j = l} T_{ij}`; the score is the fraction of those cells
        whose own label matches. A labeled coupling scores 1 on its own ``group_key`` by
        construction; pass e.g. ``label_key="cell_type"`` to evaluate something else.
    ``n_pairs``, ``fraction_matched``
        Number of source cells with a partner, and the fraction of them with positive mass.

    Parameters
    ----------
    mdata
        MuData with the coupling and both modalities.
    coupling_key
        Key of the coupling in ``mdata.obsp``.
    source, target
        Modalities of the rows and columns (a coupling stored the other way is transposed).
    truth_key
        Column of both modalities' ``.obs`` holding the pair identifier (unique per modality;
        NaN for cells without a partner).
    group_key
        Label column for the uniform reference; default: the recorded one
        (:func:`groove_sc.data.recorded_label_key`), skipped when that column is absent;
        ``False`` skips it.
    use_rep
        Representation for the FOSCTTMs: an ``.obsm`` key or ``"X"``.
    label_key
        Label column for the label transfer accuracy (default ``group_key``).

    Returns
    -------
    Dict of floats as described above.
    """
    t = get_coupling(mdata, coupling_key, source=source, target=target)
    src, tgt = mdata.mod[source], mdata.mod[target]
    if group_key is False:
        group_key = None
    elif group_key is None:
        group_key = recorded_label_key(mdata)
        if group_key not in src.obs or group_key not in tgt.obs:
            group_key = None
    lkey = label_key or group_key
    return coupling_metrics(
        t,
        obs_strings(src, truth_key, "truth_key", source),
        obs_strings(tgt, truth_key, "truth_key", target),
        groups=None
        if group_key is None
        else (
            obs_strings(src, group_key, "group_key", source),
            obs_strings(tgt, group_key, "group_key", target),
        ),
        reps=(_rep(src, use_rep), _rep(tgt, use_rep)),
        labels=None
        if lkey is None
        else (
            obs_strings(src, lkey, "label_key", source),
            obs_strings(tgt, lkey, "label_key", target),
        ),
        truth_key=truth_key,
        names=(source, target),
    )


def coupling_metrics(
    t: sp.csr_matrix,
    ids_s: np.ndarray,
    ids_t: np.ndarray,
    *,
    groups: tuple[np.ndarray, np.ndarray] | None = None,
    reps: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    labels: tuple[np.ndarray, np.ndarray] | None = None,
    truth_key: str = "pair_id",
    names: tuple[str, str] = ("source", "target"),
) -> dict[str, float]:
    """The metrics of :func:`matching_metrics` on arrays (the core it wraps).

    Parameters
    ----------
    t
        Coupling, source x target (CSR).
    ids_s, ids_t
        Pair identifiers of the source and target cells (strings, ``None`` where missing).
    groups
        Labels (source, target) of the uniform reference, or ``None`` to skip it.
    reps
        Representations (source, target) for the FOSCTTMs (``None``: NaN).
    labels
        Labels (source, target) for the label transfer accuracy, or ``None`` (NaN).
    truth_key, names
        The pair identifier's column and the modality names, for error messages.

    Returns
    -------
    Dict of floats as :func:`matching_metrics` describes.
    """
    source, target = names
    partner = partners(ids_s, ids_t, truth_key, target)
    paired = np.flatnonzero(partner >= 0)
    if paired.size < 2:
        raise ValueError(
            f"Fewer than two {source!r} cells have a partner in {target!r} by "
            f"`truth_key`={truth_key!r}; matching metrics need jointly measured cells."
        )
    mass = np.asarray(t.sum(1), dtype=np.float64).ravel()
    mp = float(mass[paired].sum())
    on_pair = np.asarray(t[paired, partner[paired]], dtype=np.float64).ravel()
    out: dict[str, float] = {
        "n_pairs": int(paired.size),
        "fraction_matched": float((mass[paired] > 0).mean()),
        "trace": float(on_pair.sum() / mp) if mp > 0 else float("nan"),
        "trace_uniform": float("nan"),
        "trace_ratio": float("nan"),
    }
    if groups is not None:
        ls, lt = groups
        counts = pd.Series(lt[[v is not None for v in lt]]).value_counts()
        lp = ls[paired]
        same = np.array(
            [a is not None and a == b for a, b in zip(lp, lt[partner[paired]])], dtype=bool
        )
        m_l = counts.reindex(pd.Index(lp.astype(str))).to_numpy(dtype=np.float64)
        share = np.where(same, 1.0 / np.where(same, m_l, 1.0), 0.0)
        if mp > 0:
            out["trace_uniform"] = float((mass[paired] * share).sum() / mp)
            if out["trace_uniform"] > 0:
                out["trace_ratio"] = out["trace"] / out["trace_uniform"]
    zs, zt = reps
    out["foscttm"] = float("nan")
    if zs is not None and zt is not None and zs.shape[1] == zt.shape[1]:
        out["foscttm"] = foscttm(zs[paired], zt[partner[paired]])
    out["foscttm_barycentric"] = float("nan")
    if zt is not None:
        keep = paired[mass[paired] > 0]
        if keep.size >= 2:
            proj, _ = barycentric_projection(t[keep], zt)
            out["foscttm_barycentric"] = foscttm(proj, zt[partner[keep]])
    out["label_transfer_accuracy"] = float("nan")
    if labels is not None:
        ls, lt = labels
        cats = pd.Index(sorted({v for v in np.concatenate([ls, lt]) if v is not None}))
        codes_t = cats.get_indexer(lt.astype(str))
        codes_t[[v is None for v in lt]] = -1
        pred, has = _coupling_label_argmax(t, codes_t, len(cats))
        codes_s = cats.get_indexer(ls.astype(str))
        ok = has & np.array([v is not None for v in ls], dtype=bool)
        if ok.any():
            out["label_transfer_accuracy"] = float((pred[ok] == codes_s[ok]).mean())
    return out


# --------------------------------------------------------------------------------------------
# imputation metrics
# --------------------------------------------------------------------------------------------
def _as_frame_parts(obj: Any, name: str) -> tuple[Any, pd.Index | None, pd.Index | None]:
    """(matrix, row names, column names) of an AnnData / DataFrame / array."""
    if isinstance(obj, pd.DataFrame):
        return obj.to_numpy(), obj.index, obj.columns
    if hasattr(obj, "obs_names") and hasattr(obj, "var_names") and hasattr(obj, "X"):
        return obj.X, obj.obs_names, obj.var_names
    if sp.issparse(obj):
        return obj.tocsr(), None, None
    arr = np.asarray(obj)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (cells x features), got shape {arr.shape}.")
    return arr, None, None


def _rows(x: Any, idx: np.ndarray) -> np.ndarray:
    block = x[idx]
    if sp.issparse(block):
        block = block.toarray()
    return np.asarray(block, dtype=np.float64)


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (a * b).sum(1) / den, np.nan)


def imputation_metrics(
    predicted: Any,
    observed: Any,
    *,
    reference: Any = None,
) -> dict[str, float]:
    r"""Compare imputed profiles with observed ones.

    ``predicted`` and ``observed`` are cells x features. When both carry names (a DataFrame
    such as ``mdata.mod[source].obsm["protein_imputed"]`` and an AnnData or DataFrame of the
    observed profiles of the same cells) they are aligned on the shared cell and feature
    names; plain arrays must have equal shapes. Cells whose prediction contains NaN (no
    coupling mass) are left out and counted in ``n_cells_skipped``. Sparse observed matrices
    are densified chunk by chunk. With :math:`\hat x_c` and :math:`x_c` the predicted and
    observed profiles of cell ``c`` over the ``G`` features:

    ``pearson_cell``
        Mean over cells of :math:`\mathrm{corr}(\hat x_c, x_c)` across features. Dominated by
        the mean expression profile (a constant prediction already scores high).
    ``pearson_cell_delta``
        Mean over cells of :math:`\mathrm{corr}(\hat x_c - \mu, x_c - \mu)`, with :math:`\mu`
        the ``reference`` profile: by default the mean observed profile of the scored cells;
        pass a control profile (e.g. the mean of non-targeting cells) to score perturbation
        effects.
    ``pearson_feature``
        Mean over features of the correlation across cells between predicted and observed
        values (features constant in either are skipped, see ``n_features_skipped``).
    ``mse``
        :math:`\frac{1}{n G} \sum_{c, g} (\hat x_{cg} - x_{cg})^2`.

    Cells or features whose correlation is undefined (zero variance) are left out of the
    corresponding mean.

    Parameters
    ----------
    predicted
        Predicted profiles: DataFrame (cells x features), array or AnnData.
    observed
        Observed profiles: AnnData (uses ``.X``), DataFrame, array or sparse matrix.
    reference
        Profile subtracted for ``pearson_cell_delta``: array of length ``G`` or a Series
        indexed by feature names; default the observed mean profile.

    Returns
    -------
    Dict with the four metrics and ``n_cells``, ``n_features``, ``n_cells_skipped``,
    ``n_features_skipped``.
    """
    p_mat, p_rows, p_cols = _as_frame_parts(predicted, "predicted")
    o_mat, o_rows, o_cols = _as_frame_parts(observed, "observed")
    if p_rows is not None and o_rows is not None:
        rows = p_rows.intersection(o_rows, sort=False)
        cols = p_cols.intersection(o_cols, sort=False)
        if len(rows) == 0 or len(cols) == 0:
            raise ValueError(
                "`predicted` and `observed` share no cell names or no feature names "
                f"({len(rows)} cells, {len(cols)} features in common)."
            )
        ri_p, ri_o = p_rows.get_indexer(rows), o_rows.get_indexer(rows)
        ci_p, ci_o = p_cols.get_indexer(cols), o_cols.get_indexer(cols)
        names = cols
    else:
        if p_mat.shape != o_mat.shape:
            raise ValueError(
                f"`predicted` {p_mat.shape} and `observed` {o_mat.shape} must have the same "
                "shape when they carry no cell/feature names."
            )
        ri_p = ri_o = np.arange(p_mat.shape[0])
        ci_p = ci_o = np.arange(p_mat.shape[1])
        names = p_cols if p_cols is not None else o_cols
    if sp.issparse(p_mat):
        p_mat = p_mat.tocsr()
    if sp.issparse(o_mat):
        o_mat = o_mat.tocsr()
    n_feat = len(ci_p)
    step = max(1, _MAX_CHUNK_ENTRIES // max(n_feat, 1))

    def _chunks() -> Any:
        for start in range(0, len(ri_p), step):
            pb = _rows(p_mat, ri_p[start : start + step])[:, ci_p]
            ob = _rows(o_mat, ri_o[start : start + step])[:, ci_o]
            keep = np.isfinite(pb).all(1)
            yield pb[keep], ob[keep], int((~keep).sum())

    # pass 1: column sums (means) and cell-level metrics that need no reference
    n_cells, skipped = 0, 0
    sum_p, sum_o = np.zeros(n_feat), np.zeros(n_feat)
    for pb, ob, sk in _chunks():
        n_cells += len(pb)
        skipped += sk
        sum_p += pb.sum(0)
        sum_o += ob.sum(0)
    if n_cells == 0:
        raise ValueError("No cell has a finite prediction to score.")
    mean_p, mean_o = sum_p / n_cells, sum_o / n_cells
    if reference is None:
        ref = mean_o
    elif isinstance(reference, pd.Series) and names is not None:
        ref = reference.reindex(names).to_numpy(dtype=np.float64)
        if np.isnan(ref).any():
            raise ValueError("`reference` lacks some of the scored features.")
    else:
        ref = np.asarray(reference, dtype=np.float64).ravel()
        if ref.shape[0] != n_feat:
            raise ValueError(
                f"`reference` has {ref.shape[0]} entries but {n_feat} features are scored."
            )
    # pass 2: everything else
    r_cell, r_delta = [], []
    sxy, sxx, syy, sse = np.zeros(n_feat), np.zeros(n_feat), np.zeros(n_feat), 0.0
    for pb, ob, _ in _chunks():
        r_cell.append(_rowwise_pearson(pb, ob))
        r_delta.append(_rowwise_pearson(pb - ref, ob - ref))
        dp, do = pb - mean_p, ob - mean_o
        sxy += (dp * do).sum(0)
        sxx += (dp * dp).sum(0)
        syy += (do * do).sum(0)
        sse += float(((pb - ob) ** 2).sum())
    den = np.sqrt(sxx * syy)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_feat = np.where(den > 0, sxy / den, np.nan)
    rc, rd = np.concatenate(r_cell), np.concatenate(r_delta)

    def _mean(v: np.ndarray) -> float:
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    if skipped:
        warnings.warn(
            f"{skipped} cells with NaN predictions (no coupling mass) were left out.",
            UserWarning,
            stacklevel=2,
        )
    return {
        "pearson_cell": _mean(rc),
        "pearson_cell_delta": _mean(rd),
        "pearson_feature": _mean(r_feat),
        "mse": sse / (n_cells * n_feat),
        "n_cells": int(n_cells),
        "n_features": int(n_feat),
        "n_cells_skipped": int(skipped),
        "n_features_skipped": int((~np.isfinite(r_feat)).sum()),
    }
