"""Split jointly measured data into a weakly paired training set and a paired test set."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from numbers import Real

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

from ._mudata import _check_label_key, _make_mudata

__all__ = ["split_disjoint", "split_weakly_paired"]


def _resolve_modalities(mdata: md.MuData, modalities: Sequence[str] | None) -> tuple[str, ...]:
    available = list(mdata.mod)
    if modalities is None:
        if len(available) != 2:
            raise ValueError(
                f"`mdata` has {len(available)} modalities {available}; pass `modalities` to "
                "choose two (or more)."
            )
        return available[0], available[1]
    if isinstance(modalities, str) or len(modalities) < 2:
        raise ValueError(f"`modalities` must name two or more modalities, got {modalities!r}.")
    unknown = [m for m in modalities if m not in mdata.mod]
    if unknown:
        raise ValueError(
            f"`modalities` contains unknown modality names {unknown}; available: {available}."
        )
    if len(set(modalities)) != len(modalities):
        raise ValueError(f"`modalities` must name different modalities, got {modalities!r}.")
    return tuple(modalities)


def _cell_keys(a: ad.AnnData, b: ad.AnnData, names: tuple[str, str]) -> tuple[pd.Index, pd.Index]:
    """Identity of each row: ``obs["pair_id"]`` if present in both, else ``obs_names``."""
    has = ["pair_id" in x.obs.columns for x in (a, b)]
    if has[0] != has[1]:
        which = names[0] if has[0] else names[1]
        raise ValueError(
            f"obs['pair_id'] is present only in modality {which!r}; it must be in both "
            "modalities (or in neither, then obs_names identify the cells)."
        )
    if has[0]:
        keys = []
        for x, name in zip((a, b), names):
            pid = x.obs["pair_id"]
            if pid.isna().any():
                raise ValueError(f"obs['pair_id'] of modality {name!r} has missing values.")
            keys.append(pd.Index(pid.to_numpy()))
    else:
        keys = [pd.Index(a.obs_names), pd.Index(b.obs_names)]
    for k, name in zip(keys, names):
        if not k.is_unique:
            what = "obs['pair_id']" if has[0] else "obs_names"
            raise ValueError(f"{what} of modality {name!r} is not unique; cannot identify cells.")
    return keys[0], keys[1]


def _stratified_mask(
    labels: np.ndarray, n_take: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Pick ``n_take[c]`` random cells of each label code ``c``; vectorised over cells."""
    n = labels.shape[0]
    order = np.lexsort((rng.random(n), labels))  # by label, random within label
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.arange(n) - starts
    mask = np.zeros(n, dtype=bool)
    mask[order] = rank < n_take[sorted_labels]
    return mask


def _subset(
    adata: ad.AnnData,
    idx: np.ndarray,
    label_key: str,
    pair_id: np.ndarray,
    obs_names: pd.Index,
) -> ad.AnnData:
    """Copy rows ``idx`` of ``adata``; set ``pair_id``, ``obs_names`` and keep label categories."""
    out = adata[idx].copy()
    out.obs["pair_id"] = pair_id
    out.obs_names = obs_names
    col = adata.obs[label_key]
    if isinstance(col.dtype, pd.CategoricalDtype):
        out.obs[label_key] = out.obs[label_key].cat.set_categories(col.cat.categories)
    return out


def _cells_record(
    seed: int | None,
    test_size: float,
    label_key: str,
    stratify: bool,
    names: Sequence[str],
    n_test: int,
) -> dict:
    """The ``uns["split"]`` entries every held-out-cells split records."""
    return {
        "protocol": "cells",
        "seed": -1 if seed is None else int(seed),
        "test_size": float(test_size),
        "label_key": label_key,
        "stratify": bool(stratify),
        "modalities": list(names),
        "n_test": int(n_test),
    }


def _train_test(
    mdata: md.MuData, train_mods: dict, test_mods: dict, record: dict
) -> tuple[md.MuData, md.MuData]:
    """Training and test MuData, each with a copy of ``mdata.uns`` and its split record."""
    out = []
    for mods, role in ((train_mods, "train"), (test_mods, "test")):
        uns = copy.deepcopy(dict(mdata.uns))
        uns["split"] = {**record, "role": role}
        out.append(_make_mudata(mods, uns=uns))
    return out[0], out[1]


def split_weakly_paired(
    mdata: md.MuData,
    label_key: str = "perturbation",
    *,
    test_size: float = 0.2,
    modalities: Sequence[str] | None = None,
    seed: int | None = 0,
    stratify: bool = True,
) -> tuple[md.MuData, md.MuData]:
    """Split jointly measured data into weakly paired training and paired test sets.

    The input holds two modalities measured in the **same** cells (identified by
    ``obs["pair_id"]`` when both modalities have it, else by ``obs_names``). A fraction
    ``test_size`` of the cells measured in both modalities is held out as the test set, keeping
    both modalities (for scoring matching and imputation against the truth). The remaining
    paired cells are split into two disjoint halves: the first modality is observed only on one
    half, the second only on the other, so in training the label is the only link. Cells present
    in only one modality go to that modality's training part.

    Parameters
    ----------
    mdata
        Jointly measured MuData (not a view). It is never modified.
    label_key
        Column of each modality's ``obs`` holding the group label, used for stratification.
    test_size
        Fraction in (0, 1) of the paired cells held out as test cells.
    modalities
        The modalities to use, in order (A, B, ...): two, or three and more (see Notes).
        ``None`` requires ``mdata`` to have exactly two modalities. Other modalities are
        dropped from the output.
    seed
        Seed of :func:`numpy.random.default_rng` for every random choice (``None``: not
        reproducible, recorded as -1).
    stratify
        Stratify both the test split and the split of the training cells between the
        modalities by label (the labels of the first modality): each label with at least two
        paired cells has ``max(1, round(test_size * n_label))`` test cells (at most
        ``n_label - 1``), and its training cells are split in halves (a random modality gets the
        odd cell). Without stratification the cells are split at random overall.

    Returns
    -------
    train
        Weakly paired MuData: each modality holds only its own training cells (disjoint sets
        of cells). ``obs_names`` are prefixed with the modality name (``"rna:cell12"``) so that
        MuData does not take them for the same cell. ``obs["pair_id"]`` holds the cell identity
        (created from the row position of the first modality when absent). ``uns["split"]``
        records the split.
    test
        Paired MuData of the held-out cells: row ``i`` of each modality is the same cell, with
        the same ``obs_names`` (those of the first modality) and ``obs["pair_id"]``.

    Both outputs are copies: ``X``, ``obs``, ``var``, ``layers``, ``obsm`` and ``uns`` of each
    modality are kept, and ``mdata.uns`` is copied. Categories of a categorical ``label_key`` are
    kept in full in every output modality, even if a label has no cells there.

    Raises
    ------
    TypeError
        If ``mdata`` is not a MuData.
    ValueError
        If ``mdata`` is a view, the modalities are not exactly two (or unknown names are given),
        ``test_size`` is outside (0, 1), the modalities share no cell, or the cell identities are
        not unique.
    KeyError
        If ``label_key`` is not a column of a modality's ``obs``.

    Notes
    -----
    With three or more ``modalities`` the test cells are drawn (stratified by the first
    modality's labels) from the cells measured in *all* of them and keep every modality; each
    label's remaining such cells are dealt out in turn to the modalities (from a random
    start), so each modality trains on its own cells, about a third each with three. A cell
    measured in some of the modalities only goes to one of those at random. ``uns["split"]``
    records ``n_train_<modality>`` and ``n_partial_<modality>`` (cells of that modality not
    measured in all). With two modalities the split is the one described above, unchanged.
    """
    if not isinstance(mdata, md.MuData):
        raise TypeError(f"`mdata` must be a MuData, got {type(mdata).__name__}.")
    if mdata.is_view:
        raise ValueError("`mdata` is a MuData view; pass a copy (`mdata.copy()`).")
    names = _resolve_modalities(mdata, modalities)
    if isinstance(test_size, bool) or not isinstance(test_size, Real):
        raise ValueError(f"`test_size` must be a number in (0, 1), got {test_size!r}.")
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"`test_size` must be in (0, 1), got {test_size!r}.")
    if len(names) > 2:
        return _split_many(mdata, names, label_key, float(test_size), seed, stratify)
    a, b = mdata.mod[names[0]], mdata.mod[names[1]]
    for x, name in zip((a, b), names):
        if x.is_view:
            raise ValueError(f"modality {name!r} of `mdata` is a view; pass a copy.")
        _check_label_key(x, label_key, name)
    rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ identify cells
    key_a, key_b = _cell_keys(a, b, names)
    pos_b_of_a = key_b.get_indexer(key_a)  # row of B holding A's cell i, or -1
    paired_a = np.flatnonzero(pos_b_of_a >= 0)
    if paired_a.size == 0:
        raise ValueError(
            f"modalities {names[0]!r} and {names[1]!r} share no cell (by "
            f"{'pair_id' if 'pair_id' in a.obs.columns else 'obs_names'}); "
            "split_weakly_paired needs jointly measured data."
        )
    paired_b = pos_b_of_a[paired_a]
    only_a = np.flatnonzero(pos_b_of_a < 0)
    only_b = np.setdiff1d(np.arange(b.n_obs), paired_b)

    # integer cell ids: keep pair_id if present, else positions (A first, then B-only cells)
    if "pair_id" in a.obs.columns:
        pid_a = a.obs["pair_id"].to_numpy()
        pid_b = b.obs["pair_id"].to_numpy()
    else:
        pid_a = np.arange(a.n_obs)
        pid_b = np.empty(b.n_obs, dtype=np.int64)
        pid_b[paired_b] = paired_a
        pid_b[only_b] = a.n_obs + np.arange(only_b.size)

    # ------------------------------------------------------------------ test / train split
    labels_paired = a.obs[label_key].to_numpy()[paired_a].astype(str)
    _, codes = np.unique(labels_paired, return_inverse=True)
    n_paired = paired_a.size
    if stratify:
        n_per = np.bincount(codes)
        n_test = np.where(
            n_per >= 2,
            np.clip(np.round(test_size * n_per).astype(np.int64), 1, n_per - 1),
            0,
        )
        is_test = _stratified_mask(codes, n_test, rng)
    else:
        n_test_total = int(np.clip(round(test_size * n_paired), 1, n_paired - 1))
        is_test = np.zeros(n_paired, dtype=bool)
        is_test[rng.permutation(n_paired)[:n_test_total]] = True

    train = np.flatnonzero(~is_test)
    if stratify:
        n_per_train = np.bincount(codes[train], minlength=codes.max() + 1)
        extra = rng.integers(0, 2, size=n_per_train.size)  # who gets the odd cell
        to_a_sub = _stratified_mask(codes[train], n_per_train // 2 + (n_per_train % 2) * extra, rng)
    else:
        n_a = train.size // 2 + (train.size % 2) * int(rng.integers(0, 2))
        to_a_sub = np.zeros(train.size, dtype=bool)
        to_a_sub[rng.permutation(train.size)[:n_a]] = True

    test_idx = np.flatnonzero(is_test)
    if test_idx.size == 0:
        raise ValueError(
            f"the test set would be empty: too few paired cells ({n_paired}) for "
            f"test_size={test_size} (with stratify=True a label needs >= 2 paired cells)."
        )
    rows_a_test, rows_b_test = paired_a[test_idx], paired_b[test_idx]
    rows_a_train = np.sort(np.concatenate([paired_a[train[to_a_sub]], only_a]))
    rows_b_train = np.sort(np.concatenate([paired_b[train[~to_a_sub]], only_b]))

    # ------------------------------------------------------------------ build outputs
    # base names: the input obs_names, or "cell<pair_id>" where they are not unique
    def base_names(x: ad.AnnData, pid: np.ndarray) -> np.ndarray:
        if x.obs_names.is_unique:
            return x.obs_names.to_numpy().astype(str)
        return np.char.add("cell", pid.astype(str))

    names_a, names_b = base_names(a, pid_a), base_names(b, pid_b)
    train_mods = {
        names[0]: _subset(
            a,
            rows_a_train,
            label_key,
            pid_a[rows_a_train],
            pd.Index(np.char.add(f"{names[0]}:", names_a[rows_a_train])),
        ),
        names[1]: _subset(
            b,
            rows_b_train,
            label_key,
            pid_b[rows_b_train],
            pd.Index(np.char.add(f"{names[1]}:", names_b[rows_b_train])),
        ),
    }
    test_names = pd.Index(names_a[rows_a_test])
    test_mods = {
        names[0]: _subset(a, rows_a_test, label_key, pid_a[rows_a_test], test_names),
        names[1]: _subset(b, rows_b_test, label_key, pid_b[rows_b_test], test_names),
    }

    record = {
        **_cells_record(seed, test_size, label_key, stratify, names, test_idx.size),
        f"n_train_{names[0]}": int(rows_a_train.size),
        f"n_train_{names[1]}": int(rows_b_train.size),
        f"n_only_{names[0]}": int(only_a.size),
        f"n_only_{names[1]}": int(only_b.size),
    }
    return _train_test(mdata, train_mods, test_mods, record)


def _split_many(
    mdata: md.MuData,
    names: Sequence[str],
    label_key: str,
    test_size: float,
    seed: int | None,
    stratify: bool,
) -> tuple[md.MuData, md.MuData]:
    """:func:`split_weakly_paired` for three or more modalities (see its Notes)."""
    mods = [mdata.mod[m] for m in names]
    for x, name in zip(mods, names):
        if x.is_view:
            raise ValueError(f"modality {name!r} of `mdata` is a view; pass a copy.")
        _check_label_key(x, label_key, name)
    rng = np.random.default_rng(seed)
    has = ["pair_id" in x.obs.columns for x in mods]
    if any(has) and not all(has):
        which = [n for n, h in zip(names, has) if not h]
        raise ValueError(
            f"obs['pair_id'] is missing in modalities {which}; it must be in every modality "
            "(or in none, then obs_names identify the cells)."
        )
    keys = []
    for x, name in zip(mods, names):
        k = pd.Index(x.obs["pair_id"].to_numpy() if has[0] else x.obs_names)
        what = "obs['pair_id']" if has[0] else "obs_names"
        if has[0] and x.obs["pair_id"].isna().any():
            raise ValueError(f"obs['pair_id'] of modality {name!r} has missing values.")
        if not k.is_unique:
            raise ValueError(f"{what} of modality {name!r} is not unique; cannot identify cells.")
        keys.append(k)
    union = keys[0]
    for k in keys[1:]:
        union = union.append(k.difference(union))
    pos = np.stack([k.get_indexer(union) for k in keys], axis=1)  # (n_union, n_mod), -1 absent
    n_mod = len(names)
    in_all = np.flatnonzero((pos >= 0).all(axis=1))
    if in_all.size == 0:
        raise ValueError(
            f"no cell is measured in all modalities {list(names)}; split_weakly_paired needs "
            "jointly measured data."
        )
    labels = mods[0].obs[label_key].to_numpy()[pos[in_all, 0]].astype(str)
    _, codes = np.unique(labels, return_inverse=True)
    n_paired = in_all.size
    if stratify:
        n_per = np.bincount(codes)
        n_test = np.where(
            n_per >= 2, np.clip(np.round(test_size * n_per).astype(np.int64), 1, n_per - 1), 0
        )
        is_test = _stratified_mask(codes, n_test, rng)
    else:
        n_test_total = int(np.clip(round(test_size * n_paired), 1, n_paired - 1))
        is_test = np.zeros(n_paired, dtype=bool)
        is_test[rng.permutation(n_paired)[:n_test_total]] = True
    if not is_test.any():
        raise ValueError(
            f"the test set would be empty: too few cells in all modalities ({n_paired}) for "
            f"test_size={test_size} (with stratify=True a label needs >= 2 such cells)."
        )
    train = np.flatnonzero(~is_test)
    # deal each label's training cells out to the modalities in turn, from a random start
    if stratify:
        order = np.lexsort((rng.random(train.size), codes[train]))
        sorted_codes = codes[train][order]
        rank = np.arange(train.size) - np.searchsorted(sorted_codes, sorted_codes, side="left")
        offset = rng.integers(0, n_mod, size=codes.max() + 1)
        owner = np.empty(train.size, dtype=np.int64)
        owner[order] = (rank + offset[sorted_codes]) % n_mod
    else:
        owner = rng.permutation(np.arange(train.size) % n_mod)
    # a cell measured in some modalities only goes to one of those, at random
    partial = np.flatnonzero(~(pos >= 0).all(axis=1))
    present = pos[partial] >= 0
    partial_owner = np.argmax(rng.random(present.shape) * present, axis=1)

    pid = union.to_numpy() if has[0] else np.arange(len(union))

    def base_names(x: ad.AnnData, m: int) -> np.ndarray:
        if x.obs_names.is_unique:
            return x.obs_names.to_numpy().astype(str)
        return np.char.add("cell", pid[union.get_indexer(keys[m])].astype(str))

    test_cells = in_all[is_test]
    test_names = pd.Index(base_names(mods[0], 0)[pos[test_cells, 0]])
    record = _cells_record(seed, test_size, label_key, stratify, names, test_cells.size)
    train_mods, test_mods = {}, {}
    for m, (x, name) in enumerate(zip(mods, names)):
        cells = np.concatenate([in_all[train[owner == m]], partial[partial_owner == m]])
        cells = cells[np.argsort(pos[cells, m])]
        rows = pos[cells, m]
        train_mods[name] = _subset(
            x,
            rows,
            label_key,
            pid[cells],
            pd.Index(np.char.add(f"{name}:", base_names(x, m)[rows])),
        )
        rows_test = pos[test_cells, m]
        test_mods[name] = _subset(x, rows_test, label_key, pid[test_cells], test_names)
        record[f"n_train_{name}"] = int(rows.size)
        record[f"n_partial_{name}"] = int((pos[partial, m] >= 0).sum())
    return _train_test(mdata, train_mods, test_mods, record)


def split_disjoint(
    mdata: md.MuData,
    label_key: str = "perturbation",
    *,
    n_parts: int = 2,
    modalities: Sequence[str] | None = None,
    seed: int | None = 0,
) -> list[md.MuData]:
    """Split every modality's cells into disjoint parts, stratified by label.

    For replicate fits that share no training cell (e.g.
    :meth:`groove_sc.model.GROOVE.train_replicates`): within each modality the cells of each
    label are dealt out at random to ``n_parts`` parts of (nearly) equal size, the part that
    receives a label's first odd cell being random too. Cells with a missing label form their
    own group. Weakly paired and paired input both work; nothing is paired across modalities.

    Parameters
    ----------
    mdata
        MuData (not a view); it is never modified.
    label_key
        Label column of each modality's ``.obs``.
    n_parts
        Number of parts, at least 2.
    modalities
        Modalities to split and keep (default: all).
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    ``n_parts`` MuData objects; each holds, for every modality, a copy of its part of the
    cells (``obs_names`` unchanged) and ``uns["split"]`` recording the part.
    """
    if not isinstance(mdata, md.MuData):
        raise TypeError(f"`mdata` must be a MuData, got {type(mdata).__name__}.")
    if mdata.is_view:
        raise ValueError("`mdata` is a MuData view; pass a copy (`mdata.copy()`).")
    if isinstance(n_parts, bool) or not isinstance(n_parts, (int, np.integer)) or n_parts < 2:
        raise ValueError(f"`n_parts` must be an integer >= 2, got {n_parts!r}.")
    names = list(mdata.mod) if modalities is None else list(modalities)
    unknown = [m for m in names if m not in mdata.mod]
    if unknown:
        raise ValueError(
            f"`modalities` contains unknown modality names {unknown}; available: {list(mdata.mod)}."
        )
    rng = np.random.default_rng(seed)
    parts: list[dict[str, ad.AnnData]] = [{} for _ in range(n_parts)]
    for m in names:
        adata = mdata.mod[m]
        _check_label_key(adata, label_key, m)
        if adata.n_obs < n_parts:
            raise ValueError(
                f"modality {m!r} has {adata.n_obs} cells, fewer than `n_parts`={n_parts}."
            )
        labels = adata.obs[label_key].astype(object).fillna("__missing__").astype(str)
        _, codes = np.unique(labels.to_numpy(), return_inverse=True)
        order = np.lexsort((rng.random(adata.n_obs), codes))
        sorted_codes = codes[order]
        rank = np.arange(adata.n_obs) - np.searchsorted(sorted_codes, sorted_codes, side="left")
        offset = rng.integers(0, n_parts, size=codes.max() + 1)
        part = np.empty(adata.n_obs, dtype=np.int64)
        part[order] = (rank + offset[sorted_codes]) % n_parts
        for k in range(n_parts):
            parts[k][m] = adata[np.flatnonzero(part == k)].copy()
    out = []
    for k, mods in enumerate(parts):
        uns = copy.deepcopy(dict(mdata.uns))
        uns["split"] = {
            "protocol": "disjoint",
            "part": k,
            "n_parts": int(n_parts),
            "label_key": label_key,
            "seed": -1 if seed is None else int(seed),
        }
        out.append(_make_mudata(mods, uns=uns))
    return out
