"""Matching and imputation metrics.

Every metric states its definition and direction in its docstring. Array-level functions take
plain arrays; MuData-level wrappers live next to the aligners.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


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
    0 is perfect, 0.5 is random. Memory is ``chunk_size x n``, never ``n x n``.

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
    if len(labels_source) != len(x_source) or len(labels_target) != len(x_target):
        raise ValueError("Each label array must have one entry per row of its embedding.")
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
