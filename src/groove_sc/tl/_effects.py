r"""Perturbation-level effects per modality and their agreement across modalities.

On a weakly paired screen the cells of one assay have no partner in the other, and per-cell
matching often carries little beyond the labels. What the labels always support is a
perturbation-level analysis: how far each perturbation moves the cells of each modality away
from that modality's control cells, whether that shift is larger than chance, and whether the
modalities agree on which perturbations move the cells most.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from ..data import recorded_label_key
from ._cells import format_labels, modality_list, obs_labels, read_rep

__all__ = ["perturbation_effects"]

#: Columns of the long table, in order.
COLUMNS = (
    "perturbation",
    "modality",
    "n_cells",
    "n_control",
    "mean_shift",
    "energy_distance",
    "p_value",
    "p_adjusted",
)
#: Statistics whose cross-modal Spearman correlation is stored in ``uns[key]["agreement"]``.
AGREEMENT_STATISTICS = ("energy_distance", "mean_shift")

_CHUNK_VALUES = 4_000_000  # values (32 MB) densified at a time when a statistic runs over a group
_PERM_BATCH = 64  # permutations evaluated in one matrix product


def perturbation_effects(
    mdata: MuData,
    *,
    group_key: str | None = None,
    control: str = "control",
    use_rep: str | None = None,
    layer: str | None = None,
    modalities: str | Sequence[str] | None = None,
    n_permutations: int = 199,
    max_cells: int = 200,
    seed: int = 0,
    key_added: str = "perturbation_effects",
    copy: bool = False,
) -> pd.DataFrame | MuData:
    r"""Effect of each perturbation against the control, per modality, and its agreement.

    For every modality :math:`m` and every label :math:`p` other than ``control`` with cells in
    :math:`m`, the cells :math:`y_1, \dots, y_n` of :math:`p` are compared with the control
    cells :math:`x_1, \dots, x_{n_0}` of the same modality, in the representation ``use_rep``
    (cells of different modalities are never compared with each other).

    **Mean shift** (unit-free): the distance between the two means, relative to the spread
    of the control cells,

    .. math::

        s_p = \frac{\lVert \bar y - \bar x \rVert}
                   {\sqrt{\frac{1}{n_0} \sum_{i=1}^{n_0} \lVert x_i - \bar x \rVert^2}},

    computed on all cells of both groups.

    **Energy distance** (the E-statistic of Székely and Rizzo, as scPerturb's ``etest``):

    .. math::

        E_p = \frac{2}{n n_0} \sum_{i, j} \lVert y_i - x_j \rVert
            - \frac{1}{n (n - 1)} \sum_{i \ne i'} \lVert y_i - y_{i'} \rVert
            - \frac{1}{n_0 (n_0 - 1)} \sum_{j \ne j'} \lVert x_j - x_{j'} \rVert,

    an unbiased estimate of :math:`2\,\mathbb{E}\lVert Y - X\rVert - \mathbb{E}\lVert Y - Y'
    \rVert - \mathbb{E}\lVert X - X'\rVert`, which is zero if and only if the two
    distributions are equal (so it sees changes in spread and shape, not only in the mean; it
    can be slightly negative by chance). It uses Euclidean distances (scPerturb defaults to
    squared ones, whose E-statistic only sees the means) on at most ``max_cells`` cells of
    each group, a seeded random subsample when a group is larger; the control subsample is
    drawn once per modality and shared by its perturbations, so their energy distances are
    measured against the same reference cells.

    **Permutation test**: the labels of the pooled (subsampled) cells of :math:`p` and the
    control are permuted ``n_permutations`` times; all permutations index one pooled distance
    matrix. With :math:`E^{(b)}_p` the statistic of permutation :math:`b`,

    .. math::

        \text{p-value}_p = \frac{1 + \#\{b : E^{(b)}_p \ge E_p\}}{1 + B},

    and ``p_adjusted`` is the Benjamini-Hochberg adjustment over the perturbations of each
    modality (:math:`\tilde p_{(k)} = \min_{k' \ge k} \min(1, K p_{(k')} / k')` for the
    :math:`K` p-values of the modality in increasing order).

    **Agreement**: for each pair of modalities, Spearman's rank correlation of
    ``energy_distance`` (and of ``mean_shift``) over the perturbations present in both. A high
    correlation says that the modalities agree on which perturbations have large effects;
    it needs no cell-level pairing.

    Parameters
    ----------
    mdata
        MuData with one modality per assay, each with the label column ``group_key`` in its
        ``.obs``.
    group_key
        Label column (the perturbation of each cell); default: the recorded one
        (:func:`groove_sc.data.recorded_label_key`). Cells with a missing label are ignored.
    control
        Label of the control cells (e.g. ``"non-targeting"``); it must have at least 2 cells
        in every analysed modality.
    use_rep
        Key of ``.obsm`` holding the representation of every modality (e.g. the GROOVE latent
        ``"X_groove"``, written by :func:`groove_sc.tl.latent`). ``None`` (or ``"X"``): each
        modality's own features, ``.X`` or ``.layers[layer]``; sparse matrices are densified
        only a group of cells at a time (log-normalise counts first: the distances are
        Euclidean).
    layer
        With ``use_rep=None``: use ``.layers[layer]`` instead of ``.X``.
    modalities
        Modalities to analyse (a name or a list); default: all of ``mdata.mod``.
    n_permutations
        Label permutations per perturbation; 0 computes no p-values (``p_value`` and
        ``p_adjusted`` are NaN). The smallest attainable p-value is
        :math:`1 / (1 + B)`.
    max_cells
        At most this many cells of each group (a perturbation, the control) enter the energy
        distance and its permutations; the cost is :math:`O((2 \cdot \text{max\_cells})^2)`
        per permutation.
    seed
        Seed of the subsampling and the permutations. Each (modality, perturbation) draws
        from its own stream, derived from ``seed`` and the names, so its numbers do not
        depend on which other perturbations or modalities are analysed.
    key_added
        Key of ``mdata.uns`` where the results are written.
    copy
        Return a modified copy of ``mdata`` instead of the table (``mdata`` is left
        unchanged).

    Returns
    -------
    The long table (a :class:`pandas.DataFrame` with one row per perturbation and modality and
    the columns ``perturbation``, ``modality``, ``n_cells``, ``n_control``, ``mean_shift``,
    ``energy_distance``, ``p_value``, ``p_adjusted``), sorted by modality (in the order
    analysed), then by ``energy_distance``, largest first; with ``copy=True`` the modified
    copy of ``mdata`` instead. Either way ``mdata.uns[key_added]`` (of ``mdata``, or of the
    copy) holds, as h5mu-writable dicts of columns:

    - ``"effects"``: the long table;
    - ``"wide"``: ``"perturbation"`` and one column per modality with its energy distance
      (NaN where the perturbation has no cells in that modality);
    - ``"agreement"``: columns ``statistic``, ``modality_x``, ``modality_y``, ``spearman``,
      ``spearman_p`` (its two-sided p-value) and ``n`` (perturbations present in both; the
      correlation is NaN below 3) for each pair of modalities and each of
      ``energy_distance`` and ``mean_shift``;
    - ``"params"``: the arguments used (``use_rep`` and ``layer`` only when given).

    Raises
    ------
    TypeError
        If ``mdata`` is not a MuData.
    ValueError
        If ``mdata`` is a view, an argument is out of range, the data contain NaN or inf, the
        control has fewer than 2 cells in a modality, or no perturbation has 2 or more cells.
    KeyError
        If a modality, the label column, the control label, ``use_rep`` or ``layer`` is
        missing.

    Warns
    -----
    UserWarning
        For each perturbation skipped because it has fewer than 2 cells in a modality.

    Examples
    --------
    >>> import groove_sc as gs
    >>> mdata = gs.datasets.simulate(n_perturbations=6, cells_per_perturbation=40)
    >>> effects = gs.tl.perturbation_effects(mdata, n_permutations=49, max_cells=40)
    >>> list(effects.columns[:4])
    ['perturbation', 'modality', 'n_cells', 'n_control']
    >>> agreement = mdata.uns["perturbation_effects"]["agreement"]
    >>> list(agreement["statistic"])
    ['energy_distance', 'mean_shift']
    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"`mdata` must be a MuData, got {type(mdata).__name__}.")
    if mdata.is_view:
        raise ValueError(
            "`mdata` is a view of another MuData; call .copy() on it first (results are "
            "written to mdata.uns)."
        )
    mods = _check_modalities(mdata, modalities)
    n_permutations = _check_int("n_permutations", n_permutations, 0)
    max_cells = _check_int("max_cells", max_cells, 2)
    seed = _check_int("seed", seed, 0)
    if not isinstance(control, str) or not control:
        raise ValueError(f"`control` must be a non-empty string, got {control!r}.")
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"`key_added` must be a non-empty string, got {key_added!r}.")
    if use_rep == "X":
        use_rep = None
    if use_rep is not None and layer is not None:
        raise ValueError(
            f"`layer`={layer!r} applies to the features only; pass `use_rep=None` with it "
            f"(got `use_rep`={use_rep!r})."
        )
    key = recorded_label_key(mdata, group_key)

    # ---------------------------------------------------------------- validate every modality
    inputs: dict[str, tuple[Any, np.ndarray]] = {}
    for mod in mods:
        adata = mdata.mod[mod]
        if key not in adata.obs:
            raise KeyError(
                f"`group_key`={key!r} is not a column of mdata.mod[{mod!r}].obs "
                f"(columns: {format_labels(adata.obs.columns)})."
            )
        labels = obs_labels(adata, key)
        n_ctrl = int(np.sum(labels == control))
        if n_ctrl == 0:
            present = sorted({v for v in labels if v is not None})
            raise KeyError(
                f"`control`={control!r} is not a label of mdata.mod[{mod!r}].obs[{key!r}] "
                f"(labels: {format_labels(present)})."
            )
        if n_ctrl < 2:
            raise ValueError(
                f"`control`={control!r} has {n_ctrl} cell in modality {mod!r}; at least 2 "
                "are needed."
            )
        inputs[mod] = (_read_data(adata, mod, use_rep, layer), labels)

    # ---------------------------------------------------------------- statistics
    rows: list[dict[str, Any]] = []
    for mod in mods:
        x, labels = inputs[mod]
        rows.extend(
            _modality_effects(x, labels, mod, control, n_permutations, max_cells, seed, key)
        )
    if not rows:
        raise ValueError(
            f"No perturbation other than `control`={control!r} has at least 2 cells in "
            f"modalities {mods} (labels from `group_key`={key!r})."
        )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["p_adjusted"] = np.nan
    for mod in mods:
        sel = (table["modality"] == mod).to_numpy()
        table.loc[sel, "p_adjusted"] = _bh(table.loc[sel, "p_value"].to_numpy())
    order = {m: i for i, m in enumerate(mods)}
    table = (
        table.assign(_mod=table["modality"].map(order))
        .sort_values(["_mod", "energy_distance", "perturbation"], ascending=[True, False, True])
        .drop(columns="_mod")
        .reset_index(drop=True)
    )
    table["n_cells"] = table["n_cells"].astype(np.int64)
    table["n_control"] = table["n_control"].astype(np.int64)

    # ---------------------------------------------------------------- agreement and storage
    wide = _wide(table, mods, "energy_distance")
    agreement = _agreement(table, mods)
    params: dict[str, Any] = {
        "group_key": key,
        "control": control,
        "modalities": np.array(mods, dtype=object),
        "n_permutations": n_permutations,
        "max_cells": max_cells,
        "seed": seed,
        "representation": _describe(use_rep, layer),
    }
    if use_rep is not None:
        params["use_rep"] = use_rep
    if layer is not None:
        params["layer"] = layer
    entry = {
        "effects": _columns(table),
        "wide": _columns(wide),
        "agreement": _columns(agreement),
        "params": params,
    }
    out = mdata.copy() if copy else mdata
    out.uns[key_added] = entry
    return out if copy else table


# -------------------------------------------------------------------------------------------
# validation and reading


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    if value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    return int(value)


def _check_modalities(mdata: MuData, modalities: str | Sequence[str] | None) -> list[str]:
    mods = modality_list(mdata, modalities)
    if not mods:
        raise ValueError("`modalities` must name at least one modality of `mdata`.")
    if len(set(mods)) != len(mods):
        raise ValueError(f"`modalities` names a modality twice: {mods}.")
    return mods


def _read_data(adata: Any, mod: str, use_rep: str | None, layer: str | None) -> Any:
    """The representation: a dense float64 array (``.obsm``) or the feature matrix as stored."""
    if use_rep is not None:
        if use_rep not in adata.obsm:
            raise KeyError(
                f"`use_rep`={use_rep!r} is not in mdata.mod[{mod!r}].obsm (available: "
                f"{list(adata.obsm.keys())}); run groove_sc.tl.latent first for 'X_groove', "
                "or pass use_rep=None for the features."
            )
        return read_rep(adata, mod, use_rep, None)  # checks shape and finiteness
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(
                f"`layer`={layer!r} is not in mdata.mod[{mod!r}].layers (available: "
                f"{list(adata.layers.keys())})."
            )
        x, what = adata.layers[layer], f"`layer`={layer!r}"
    else:
        x, what = adata.X, "`use_rep`=None (the features .X)"
    if x is None:
        raise ValueError(f"mdata.mod[{mod!r}].X is empty; pass `use_rep` or `layer`.")
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        finite = np.isfinite(x.data).all()
    else:
        x = np.asarray(x)
        finite = np.isfinite(x).all() if np.issubdtype(x.dtype, np.floating) else True
    if x.ndim != 2 or x.shape[0] != adata.n_obs:
        raise ValueError(f"{what} of modality {mod!r} must be a cells x features matrix.")
    if not finite:
        raise ValueError(f"{what} of modality {mod!r} contains NaN or inf.")
    return x


def _describe(use_rep: str | None, layer: str | None) -> str:
    if use_rep is not None:
        return f"obsm[{use_rep!r}]"
    return "X" if layer is None else f"layers[{layer!r}]"


def _rows(x: Any, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``x`` as a dense float64 array."""
    sub = x[idx]
    if sp.issparse(sub):
        sub = sub.toarray()
    return np.asarray(sub, dtype=np.float64)


def _chunks(x: Any, idx: np.ndarray) -> Iterator[np.ndarray]:
    """Rows ``idx`` of ``x``, densified a bounded block of rows at a time."""
    step = max(1, min(4096, _CHUNK_VALUES // max(1, x.shape[1])))
    for start in range(0, len(idx), step):
        yield _rows(x, idx[start : start + step])


def _mean(x: Any, idx: np.ndarray) -> np.ndarray:
    total = np.zeros(x.shape[1], dtype=np.float64)
    for block in _chunks(x, idx):
        total += block.sum(axis=0)
    return total / len(idx)


def _mean_sq_dist(x: Any, idx: np.ndarray, center: np.ndarray) -> float:
    total = 0.0
    for block in _chunks(x, idx):
        d = block - center
        total += float(np.einsum("ij,ij->", d, d))
    return total / len(idx)


def _rng(seed: int, mod: str, label: str) -> np.random.Generator:
    """A stream of its own for each (modality, label), derived from ``seed`` and the names."""
    return np.random.default_rng(
        [seed, zlib.crc32(mod.encode("utf-8")), zlib.crc32(label.encode("utf-8"))]
    )


def _subsample(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(idx) <= n:
        return idx
    return np.sort(rng.choice(idx, n, replace=False))


# -------------------------------------------------------------------------------------------
# statistics


def _pairwise_distances(z: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``z`` from one Gram matrix (zero diagonal)."""
    z = z - z.mean(axis=0)  # centring reduces cancellation in |a|^2 + |b|^2 - 2ab
    sq = np.einsum("ij,ij->i", z, z)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2, out=d2)


def _energy_from_assignments(d: np.ndarray, a: np.ndarray, n: int) -> np.ndarray:
    """E-statistic for each row of the 0/1 matrix ``a`` (``n`` ones: the first group).

    With ``r = D 1`` and ``T = 1^T D 1``: ``S_xx = a^T D a``, ``S_xy = a^T r - S_xx`` and
    ``S_yy = T - 2 a^T r + S_xx``; the diagonal of ``D`` is zero, so the sums run over
    distinct pairs.
    """
    m = d.shape[0] - n
    r = d.sum(axis=1)
    total = float(r.sum())
    s_xx = np.einsum("bi,bi->b", a @ d, a)
    s_x = a @ r
    s_xy = s_x - s_xx
    s_yy = total - 2.0 * s_x + s_xx
    return 2.0 * s_xy / (n * m) - s_xx / (n * (n - 1)) - s_yy / (m * (m - 1))


def _energy_test(
    y: np.ndarray, x: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Energy distance between the rows of ``y`` and ``x`` and its permutation p-value."""
    n, m = len(y), len(x)
    d = _pairwise_distances(np.concatenate([y, x], axis=0))
    observed = np.zeros((1, n + m))
    observed[0, :n] = 1.0
    e_obs = float(_energy_from_assignments(d, observed, n)[0])
    if n_permutations == 0:
        return e_obs, float("nan")
    exceed = 0
    for start in range(0, n_permutations, _PERM_BATCH):
        b = min(_PERM_BATCH, n_permutations - start)
        first = np.argsort(rng.random((b, n + m)), axis=1)[:, :n]
        a = np.zeros((b, n + m))
        np.put_along_axis(a, first, 1.0, axis=1)
        e_perm = _energy_from_assignments(d, a, n)
        # a tolerance so that a permutation equal to the observed split counts despite rounding
        exceed += int(np.sum(e_perm >= e_obs - 1e-12 * max(1.0, abs(e_obs))))
    return e_obs, (1.0 + exceed) / (1.0 + n_permutations)


def _energy_distance(y: np.ndarray, x: np.ndarray) -> float:
    """The E-statistic of two samples (rows of ``y`` and ``x``), as in the permutation test."""
    y, x = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    d = _pairwise_distances(np.concatenate([y, x], axis=0))
    a = np.zeros((1, len(d)))
    a[0, : len(y)] = 1.0
    return float(_energy_from_assignments(d, a, len(y))[0])


def _modality_effects(
    x: Any,
    labels: np.ndarray,
    mod: str,
    control: str,
    n_permutations: int,
    max_cells: int,
    seed: int,
    key: str,
) -> list[dict[str, Any]]:
    ctrl_idx = np.flatnonzero(labels == control)
    ctrl_mean = _mean(x, ctrl_idx)
    ctrl_scale = np.sqrt(_mean_sq_dist(x, ctrl_idx, ctrl_mean))
    ctrl_sub = _rows(x, _subsample(ctrl_idx, max_cells, _rng(seed, mod, "\0control\0" + control)))
    present = sorted({v for v in labels if v is not None and v != control})
    out = []
    skipped = []
    for label in present:
        idx = np.flatnonzero(labels == label)
        if len(idx) < 2:
            skipped.append(label)
            continue
        rng = _rng(seed, mod, label)
        shift = float(np.linalg.norm(_mean(x, idx) - ctrl_mean))
        mean_shift = shift / ctrl_scale if ctrl_scale > 0 else float("nan")
        y = _rows(x, _subsample(idx, max_cells, rng))
        energy, p_value = _energy_test(y, ctrl_sub, n_permutations, rng)
        out.append(
            {
                "perturbation": label,
                "modality": mod,
                "n_cells": len(idx),
                "n_control": len(ctrl_idx),
                "mean_shift": mean_shift,
                "energy_distance": energy,
                "p_value": p_value,
                "p_adjusted": np.nan,
            }
        )
    if skipped:
        warnings.warn(
            f"perturbation_effects: skipped {len(skipped)} label(s) of `group_key`={key!r} with "
            f"fewer than 2 cells in modality {mod!r}: {format_labels(skipped)}.",
            UserWarning,
            stacklevel=3,
        )
    if ctrl_scale == 0:
        warnings.warn(
            f"perturbation_effects: the control cells of modality {mod!r} are all identical; "
            "mean_shift is NaN.",
            UserWarning,
            stacklevel=3,
        )
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    k = ok.size
    scaled = p[order] * k / np.arange(1, k + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out[order] = np.minimum(adjusted, 1.0)
    return out


# -------------------------------------------------------------------------------------------
# cross-modal tables


def _wide(table: pd.DataFrame, mods: list[str], statistic: str) -> pd.DataFrame:
    """One row per perturbation, one column per modality with ``statistic``."""
    wide = table.pivot(index="perturbation", columns="modality", values=statistic)
    wide = wide.reindex(columns=mods).astype(np.float64)
    wide = wide.reindex(sorted(wide.index))
    wide.columns = [str(c) for c in wide.columns]
    return wide.rename_axis(index="perturbation", columns=None).reset_index()


def _agreement(table: pd.DataFrame, mods: list[str]) -> pd.DataFrame:
    from scipy.stats import spearmanr

    rows = []
    for statistic in AGREEMENT_STATISTICS:
        wide = _wide(table, mods, statistic)
        for i, a in enumerate(mods):
            for b in mods[i + 1 :]:
                both = wide[[a, b]].dropna()
                n = len(both)
                rho = p = float("nan")
                va, vb = both[a].to_numpy(), both[b].to_numpy()
                if n >= 3 and np.ptp(va) > 0 and np.ptp(vb) > 0:
                    res = spearmanr(va, vb)
                    rho, p = float(res.statistic), float(res.pvalue)
                rows.append(
                    {
                        "statistic": statistic,
                        "modality_x": a,
                        "modality_y": b,
                        "spearman": rho,
                        "spearman_p": p,
                        "n": n,
                    }
                )
    cols = ["statistic", "modality_x", "modality_y", "spearman", "spearman_p", "n"]
    out = pd.DataFrame(rows, columns=cols)
    return out.astype({"spearman": np.float64, "spearman_p": np.float64, "n": np.int64})


def _columns(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """A DataFrame as a dict of h5mu-writable columns (strings, floats, integers)."""
    out: dict[str, np.ndarray] = {}
    for col in df.columns:
        values = df[col]
        if pd.api.types.is_integer_dtype(values):
            out[str(col)] = values.to_numpy(dtype=np.int64)
        elif pd.api.types.is_numeric_dtype(values):
            out[str(col)] = values.to_numpy(dtype=np.float64)
        else:
            out[str(col)] = np.array([str(v) for v in values], dtype=object)
    return out
