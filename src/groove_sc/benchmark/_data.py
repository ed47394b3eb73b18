"""Benchmark datasets (jointly measured, with truth) and the two evaluation protocols."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
from scipy import sparse

from .. import datasets
from ..data import split_weakly_paired
from ..data._mudata import _make_mudata
from ..data._split import _stratified_mask
from ._config import LOADERS, ConfigError, DatasetConfig, Preprocess
from ._preprocess import preprocess_modality

__all__ = [
    "Split",
    "heldout_label_folds",
    "iter_splits",
    "load_dataset",
    "load_dataset_config",
    "split_heldout_labels",
]


@dataclass
class Split:
    """One train/test split of a protocol: weakly paired training cells, paired test cells."""

    #: ``"heldout_cells"`` or ``"heldout_labels"``
    protocol: str
    #: fold index (``heldout_labels``), 0 for ``heldout_cells``
    fold: int
    #: weakly paired training MuData (different cells per modality)
    train: md.MuData
    #: paired test MuData (row ``i`` of each modality is the same cell)
    test: md.MuData
    #: extra information (held-out labels, sizes)
    info: dict[str, Any] = field(default_factory=dict)
    #: ``train`` plus the dataset's ``extra_modalities`` (their training cells), for the
    #: learners with ``extra_modalities: true``; ``None`` without extra modalities
    train_extra: md.MuData | None = None


# --------------------------------------------------------------------------------------------
def _subsample(mdata: md.MuData, label_key: str, per_label: int, seed: int) -> md.MuData:
    """At most ``per_label`` jointly measured cells per label (same rows in every modality)."""
    first = mdata.mod[next(iter(mdata.mod))]
    labels = first.obs[label_key].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    keep = []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        keep.append(rng.choice(idx, size=min(per_label, idx.size), replace=False))
    rows = np.sort(np.concatenate(keep))
    mods = {m: mdata.mod[m][rows].copy() for m in mdata.mod}
    return _make_mudata(mods, uns=copy.deepcopy(dict(mdata.uns)))


def _log1p_normalise(adata: ad.AnnData, target_sum: float = 1e4) -> None:
    """``X <- log1p(X / total * target_sum)`` in place; raw counts kept in ``layers["counts"]``."""
    x = adata.X
    adata.layers["counts"] = x.copy()
    totals = np.asarray(x.sum(axis=1)).ravel()
    scale = target_sum / np.where(totals > 0, totals, 1.0)
    if sparse.issparse(x):
        y = sparse.diags(scale) @ sparse.csr_matrix(x, dtype=np.float32)
        y.data = np.log1p(y.data)
        adata.X = y.toarray().astype(np.float32)
    else:
        adata.X = np.log1p(np.asarray(x, dtype=np.float64) * scale[:, None]).astype(np.float32)


def resolve_loader(loader: str | Callable[..., Any]) -> str | Callable[..., Any]:
    """A loader name of :data:`LOADERS`, or the callable of ``"package.module:function"``."""
    if callable(loader) or loader in LOADERS:
        return loader
    if isinstance(loader, str) and ":" in loader:
        module, _, attr = loader.partition(":")
        try:
            func = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise KeyError(f"cannot import the loader {loader!r}: {exc}") from exc
        if not callable(func):
            raise KeyError(f"the loader {loader!r} is not callable.")
        return func
    raise KeyError(
        f"Unknown dataset loader {loader!r}; known: {list(LOADERS)}, or a Python callable "
        "'package.module:function' returning a MuData."
    )


def _select_modalities(
    mdata: md.MuData, modalities: Sequence[str] | None, extra: Sequence[str] = ()
) -> md.MuData:
    if modalities is not None:
        for option, names in (("modalities", modalities), ("extra_modalities", extra)):
            missing = [m for m in names if m not in mdata.mod]
            if missing:
                raise KeyError(
                    f"`{option}:` names {missing}, which the data do not have; its modalities "
                    f"are {list(mdata.mod)}."
                )
        mdata = _make_mudata(
            {m: mdata.mod[m].copy() for m in [*modalities, *extra]},
            uns=copy.deepcopy(dict(mdata.uns)),
        )
    if len(mdata.mod) != 2 + len(extra):
        raise ValueError(
            f"the dataset must have two modalities, got {list(mdata.mod)}; choose two with "
            "`modalities: [A, B]` in the dataset's configuration."
        )
    return mdata


def load_dataset(
    loader: str | Callable[..., Any],
    *,
    label_key: str,
    params: Mapping[str, Any] | None = None,
    setting: Mapping[str, Any] | None = None,
    seed: int = 0,
    subsample_per_label: int | None = None,
    log1p: bool = False,
    modalities: Sequence[str] | None = None,
    preprocess: Mapping[str, Preprocess] | None = None,
    option: str = "datasets",
    extra_modalities: Sequence[str] = (),
) -> md.MuData:
    """Load or simulate one jointly measured dataset for the benchmark.

    Parameters
    ----------
    loader
        ``"simulate"`` (:func:`groove_sc.datasets.simulate` with ``params``, ``setting`` and
        ``seed``), ``"snareseq"``, ``"citeseq_pbmc"``, ``"papalexi_two_view"`` (the bundled
        files; ``params`` may give ``path``), ``"h5mu"`` (``params["path"]``: any jointly
        measured ``.h5mu`` with ``obs["pair_id"]`` or shared ``obs_names``; ``{seed}`` in the
        path is replaced by ``seed``, one file per seed), or a callable
        ``loader(seed=seed, **params)`` returning such a MuData (also as the string
        ``"package.module:function"``).
    label_key
        Label column (used for subsampling).
    params
        Keyword arguments of the loader.
    setting
        More keyword arguments of the loader (the setting being varied, e.g.
        ``{"shared_fraction": 0.5}``); they override ``params``.
    seed
        Seed of the simulation (``simulate`` only) and of the subsampling.
    subsample_per_label
        Keep at most this many cells per label (random, seeded).
    log1p
        Normalise counts to 1e4 per cell and take ``log1p`` (counts kept in
        ``layers["counts"]``), so that every learner reads the same continuous features.
    modalities
        Keep these two modalities (default: all, which must be two).
    preprocess
        Modality -> :class:`~groove_sc.benchmark.Preprocess` steps (after ``log1p``).
    option
        Dotted path of the dataset in the configuration (for error messages).
    extra_modalities
        Keep these modalities too, after ``modalities`` (which must then be given): training
        only, see :func:`iter_splits`.

    Returns
    -------
    Jointly measured MuData with ``obs["pair_id"]`` in each modality.
    """
    kw = {**dict(params or {}), **dict(setting or {})}
    loader = resolve_loader(loader)
    if callable(loader):
        mdata = loader(seed=seed, **kw)
        if not isinstance(mdata, md.MuData):
            raise TypeError(
                f"the loader {loader!r} returned a {type(mdata).__name__}, not a MuData."
            )
    elif loader == "simulate":
        mdata = datasets.simulate(**kw, seed=seed)
    elif loader == "snareseq":
        mdata = datasets.snareseq(kw.get("path"))
    elif loader == "citeseq_pbmc":
        mdata = datasets.citeseq_pbmc(kw.get("path"))
    elif loader == "papalexi_two_view":
        mdata = datasets.papalexi_two_view(**kw)
    elif loader == "h5mu":
        if "path" not in kw:
            raise KeyError("loader 'h5mu' needs `params: {path: FILE}`.")
        mdata = md.read_h5mu(str(kw["path"]).replace("{seed}", str(seed)))
    mdata = _select_modalities(mdata, modalities, extra_modalities)
    if not all("pair_id" in mdata.mod[m].obs for m in mdata.mod):
        ids = pd.Index(mdata.mod[next(iter(mdata.mod))].obs_names)
        for m in mdata.mod:  # identify cells by obs_names; cells of one modality get new ids
            pos = ids.get_indexer(mdata.mod[m].obs_names)
            unmatched = np.flatnonzero(pos < 0)
            pos[unmatched] = len(ids) + np.arange(unmatched.size)
            mdata.mod[m].obs["pair_id"] = pos
    if subsample_per_label is not None:
        mdata = _subsample(mdata, label_key, int(subsample_per_label), seed)
    if log1p:
        for m in mdata.mod:
            _log1p_normalise(mdata.mod[m])
    if preprocess:
        unknown = [m for m in preprocess if m not in mdata.mod]
        if unknown:
            raise ConfigError(
                f"{option}.preprocess",
                f"names {unknown}, which are not modalities of the data ({list(mdata.mod)}; "
                "choose them with `modalities:`).",
            )
        mods = {
            m: preprocess_modality(mdata.mod[m], preprocess[m], option=f"{option}.preprocess.{m}")
            if m in preprocess
            else mdata.mod[m]
            for m in mdata.mod
        }
        mdata = _make_mudata(mods, uns=copy.deepcopy(dict(mdata.uns)))
    for m in mdata.mod:
        adata = mdata.mod[m]
        if sparse.issparse(adata.X):
            adata.X = adata.X.toarray()
        adata.X = np.asarray(adata.X, dtype=np.float32)
    return mdata


# --------------------------------------------------------------------------------------------
def heldout_label_folds(
    labels: Sequence[str], n_folds: int, seed: int, keep: Sequence[str] = ()
) -> list[list[str]]:
    """Assign labels to ``n_folds`` folds at random (labels in ``keep`` are never held out).

    Parameters
    ----------
    labels
        The label set.
    n_folds
        Number of folds (at most the number of labels that can be held out).
    seed
        Seed of the assignment.
    keep
        Labels that always stay in training (e.g. the control).

    Returns
    -------
    The held-out labels of each fold (sorted).
    """
    pool = sorted(set(map(str, labels)) - set(map(str, keep)))
    if not 2 <= n_folds <= len(pool):
        raise ValueError(
            f"`n_folds` must be between 2 and the number of labels that can be held out "
            f"({len(pool)}), got {n_folds}."
        )
    order = np.random.default_rng(seed).permutation(len(pool))
    return [sorted(pool[i] for i in order[f::n_folds]) for f in range(n_folds)]


def split_heldout_labels(
    mdata: md.MuData,
    label_key: str,
    test_labels: Sequence[str],
    *,
    seed: int = 0,
) -> tuple[md.MuData, md.MuData]:
    """Hold out whole labels: their cells form the paired test set, unseen in training.

    The cells (measured in both modalities) of ``test_labels`` are the test set, both
    modalities kept. The cells of the other labels are split in two halves stratified by
    label; the first modality is observed on one half, the second on the other (as in
    :func:`groove_sc.data.split_weakly_paired`), and cells present in one modality only go to
    that modality's training part. ``obs_names`` follow :func:`~groove_sc.data.split_weakly_paired`:
    prefixed with the modality in training, shared in test.

    Parameters
    ----------
    mdata
        Jointly measured MuData with ``obs["pair_id"]`` in both modalities.
    label_key
        Label column.
    test_labels
        Labels held out.
    seed
        Seed of the split of the training cells between the modalities.

    Returns
    -------
    ``(train, test)``.
    """
    names = list(mdata.mod)
    a, b = (mdata.mod[m] for m in names)
    pid_a, pid_b = a.obs["pair_id"].to_numpy(), b.obs["pair_id"].to_numpy()
    pos_b = pd.Index(pid_b).get_indexer(pid_a)
    lab_a = a.obs[label_key].astype(str).to_numpy()
    lab_b = b.obs[label_key].astype(str).to_numpy()
    held = set(map(str, test_labels))
    is_test_a = np.isin(lab_a, list(held)) & (pos_b >= 0)
    test_a = np.flatnonzero(is_test_a)
    if test_a.size < 2:
        raise ValueError(f"fewer than two paired cells carry the held-out labels {sorted(held)}.")
    test_b = pos_b[test_a]
    in_test_b = np.zeros(b.n_obs, dtype=bool)
    in_test_b[test_b] = True
    # training candidates: not held-out labels
    train_a_all = np.flatnonzero(~np.isin(lab_a, list(held)))
    train_b_all = np.flatnonzero(~np.isin(lab_b, list(held)) & ~in_test_b)
    paired = train_a_all[pos_b[train_a_all] >= 0]
    only_a = train_a_all[pos_b[train_a_all] < 0]
    only_b = np.setdiff1d(train_b_all, pos_b[paired])
    rng = np.random.default_rng(seed)
    _, codes = np.unique(lab_a[paired], return_inverse=True)
    n_per = np.bincount(codes)
    extra = rng.integers(0, 2, size=n_per.size)
    to_a = _stratified_mask(codes, n_per // 2 + (n_per % 2) * extra, rng)
    rows_a = np.sort(np.concatenate([paired[to_a], only_a]))
    rows_b = np.sort(np.concatenate([pos_b[paired[~to_a]], only_b]))

    def sub(x: ad.AnnData, rows: np.ndarray, obs_names: pd.Index) -> ad.AnnData:
        out = x[rows].copy()
        out.obs_names = obs_names
        col = x.obs[label_key]
        if isinstance(col.dtype, pd.CategoricalDtype):
            out.obs[label_key] = out.obs[label_key].cat.set_categories(col.cat.categories)
        return out

    base_a = np.char.add("cell", pid_a.astype(str))
    base_b = np.char.add("cell", pid_b.astype(str))
    train_mods = {
        names[0]: sub(a, rows_a, pd.Index(np.char.add(f"{names[0]}:", base_a[rows_a]))),
        names[1]: sub(b, rows_b, pd.Index(np.char.add(f"{names[1]}:", base_b[rows_b]))),
    }
    test_names = pd.Index(base_a[test_a])
    test_mods = {
        names[0]: sub(a, test_a, test_names),
        names[1]: sub(b, test_b, test_names),
    }
    record = {
        "protocol": "labels",
        "seed": int(seed),
        "label_key": label_key,
        "test_labels": sorted(held),
        "modalities": names,
        "n_test": int(test_a.size),
    }
    uns = copy.deepcopy(dict(mdata.uns))
    train = _make_mudata(train_mods, uns={**uns, "split": {**record, "role": "train"}})
    test = _make_mudata(test_mods, uns={**copy.deepcopy(uns), "split": {**record, "role": "test"}})
    return train, test


def iter_splits(
    mdata: md.MuData,
    label_key: str,
    protocol: str,
    *,
    seed: int,
    test_size: float = 0.2,
    n_folds: int = 5,
    folds: Sequence[int] | None = None,
    keep_labels: Sequence[str] = (),
    extra_modalities: Sequence[str] = (),
) -> Iterator[Split]:
    """The train/test splits of one protocol.

    With ``extra_modalities`` the other two modalities of ``mdata`` are the scored pair: they
    are split exactly as without the extra ones (same seed, same cells), and each extra
    modality trains on a label-stratified random half of its cells outside the pair's test
    cells (and, held out labels, outside the held-out labels), about as many cells as each
    modality of the pair trains on, drawn with a seed of its own (``Split.train_extra``).

    Parameters
    ----------
    mdata
        Jointly measured MuData.
    label_key
        Label column.
    protocol
        ``"heldout_cells"``: one :func:`groove_sc.data.split_weakly_paired` split with
        ``test_size``. ``"heldout_labels"``: ``n_folds`` folds over the labels (Ryu et al.
        2024), each fold's labels unseen in training (:func:`split_heldout_labels`).
    seed
        Seed of the split (and of the fold assignment).
    test_size
        Fraction of paired cells held out (``heldout_cells``).
    n_folds
        Number of label folds (``heldout_labels``).
    folds
        Run only these folds (default: all).
    keep_labels
        Labels never held out (``heldout_labels``), e.g. the control.
    extra_modalities
        Modalities of ``mdata`` for training only (see above).

    Yields
    ------
    :class:`Split`
    """
    if extra_modalities:
        extra = list(extra_modalities)
        pair = _make_mudata(
            {m: mdata.mod[m] for m in mdata.mod if m not in extra},
            uns=copy.deepcopy(dict(mdata.uns)),
        )
        for split in iter_splits(
            pair,
            label_key,
            protocol,
            seed=seed,
            test_size=test_size,
            n_folds=n_folds,
            folds=folds,
            keep_labels=keep_labels,
        ):
            split.train_extra = _with_extra(mdata, split, extra, label_key, seed)
            yield split
        return
    if protocol == "heldout_cells":
        train, test = split_weakly_paired(mdata, label_key, test_size=test_size, seed=seed)
        yield Split(protocol, 0, train, test, {"n_test": test.mod[next(iter(test.mod))].n_obs})
    elif protocol == "heldout_labels":
        first = mdata.mod[next(iter(mdata.mod))]
        labels = first.obs[label_key].astype(str).unique()
        keep = [k for k in keep_labels if k in set(labels)]
        assignment = heldout_label_folds(labels, n_folds, seed, keep)
        for f in folds if folds is not None else range(n_folds):
            train, test = split_heldout_labels(mdata, label_key, assignment[f], seed=seed)
            info = {"test_labels": assignment[f], "n_test": test.mod[next(iter(test.mod))].n_obs}
            yield Split(protocol, int(f), train, test, info)
    else:
        raise KeyError(f"Unknown protocol {protocol!r}; known: 'heldout_cells', 'heldout_labels'.")


def _with_extra(
    mdata: md.MuData, split: Split, extra: Sequence[str], label_key: str, seed: int
) -> md.MuData:
    """The split's training MuData plus the training cells of each extra modality."""
    first = next(iter(split.test.mod))
    test_ids = set(split.test.mod[first].obs["pair_id"].tolist())
    held = set(map(str, split.info.get("test_labels", [])))
    mods = {m: split.train.mod[m] for m in split.train.mod}
    sizes = {}
    for k, m in enumerate(extra):
        adata = mdata.mod[m]
        labels = adata.obs[label_key].astype(str).to_numpy()
        ok = ~adata.obs["pair_id"].isin(test_ids).to_numpy() & ~np.isin(labels, list(held))
        rows = np.flatnonzero(ok)
        rng = np.random.default_rng([seed, 0xE7, k])
        _, codes = np.unique(labels[rows], return_inverse=True)
        n_per = np.bincount(codes)
        take = n_per // 2 + (n_per % 2) * rng.integers(0, 2, size=n_per.size)
        rows = rows[_stratified_mask(codes, take, rng)]
        out = adata[rows].copy()
        out.obs_names = pd.Index([f"{m}:{name}" for name in adata.obs_names[rows]])
        col = adata.obs[label_key]
        if isinstance(col.dtype, pd.CategoricalDtype):
            out.obs[label_key] = out.obs[label_key].cat.set_categories(col.cat.categories)
        mods[m] = out
        sizes[f"n_train_{m}"] = int(rows.size)
    uns = copy.deepcopy(dict(split.train.uns))
    uns["split"] = {**dict(uns.get("split", {})), "extra_modalities": list(extra), **sizes}
    return _make_mudata(mods, uns=uns)


def load_dataset_config(dataset: DatasetConfig, setting: str, seed: int) -> md.MuData:
    """Load one dataset of a configuration for one setting and seed.

    Errors name the option they concern: a modality missing from the data names
    ``datasets.<name>.modalities`` (or ``extra_modalities``), a wrong label column
    ``datasets.<name>.label_key``, a failing loader ``datasets.<name>.loader``
    (:class:`~groove_sc.benchmark.ConfigError`).

    Parameters
    ----------
    dataset
        The dataset's configuration.
    setting
        Name of the setting (a key of ``dataset.settings``).
    seed
        Seed of the run (the data seed when ``dataset.data_seed == "run"``).

    Returns
    -------
    The jointly measured MuData.
    """
    data_seed = seed if dataset.data_seed == "run" else int(dataset.data_seed)
    where = f"datasets.{dataset.name}"
    try:
        mdata = load_dataset(
            dataset.loader,
            label_key=dataset.label_key,
            params=dataset.params,
            setting=dataset.settings[setting],
            seed=data_seed,
            subsample_per_label=dataset.subsample_per_label,
            log1p=dataset.log1p,
            modalities=dataset.modalities,
            preprocess=dataset.preprocess,
            option=where,
            extra_modalities=dataset.extra_modalities,
        )
    except ConfigError:
        raise
    except Exception as exc:
        text = str(exc).strip("'\"")
        option = "modalities" if "modalities" in text else "loader"
        if "`extra_modalities:`" in text:
            option = "extra_modalities"
        raise ConfigError(f"{where}.{option}", f"{type(exc).__name__}: {text}") from exc
    for key, name in ((dataset.label_key, "label_key"), (dataset.eval_label_key, "eval_label_key")):
        for m in mdata.mod:
            if key not in mdata.mod[m].obs:
                raise ConfigError(
                    f"{where}.{name}",
                    f"{key!r} is not a column of modality {m!r} .obs (available: "
                    f"{list(map(str, mdata.mod[m].obs.columns))}).",
                )
    return mdata
