"""Build weakly paired :class:`~mudata.MuData` objects from AnnData objects."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import anndata as ad
import mudata as md
import numpy as np

__all__ = ["DEFAULT_LABEL_KEY", "SETUP_UNS_KEY", "from_anndatas", "recorded_label_key"]

#: ``mdata.uns`` entry where :func:`from_anndatas` and ``GROOVE.setup_mudata`` record the label
#: column (``{"label_key": ...}``); ``tl`` and ``pl`` default to it.
SETUP_UNS_KEY = "groove_sc"
#: Label column assumed when nothing was recorded.
DEFAULT_LABEL_KEY = "perturbation"


def record_label_key(mdata: md.MuData, label_key: str) -> None:
    """Record ``label_key`` as the MuData's label column (``mdata.uns["groove_sc"]``)."""
    entry = dict(mdata.uns.get(SETUP_UNS_KEY, {}) or {})
    entry["label_key"] = str(label_key)
    mdata.uns[SETUP_UNS_KEY] = entry


def recorded_label_key(mdata: md.MuData, group_key: str | None = None) -> str:
    """The label column to use: an explicit one, the recorded one, or ``"perturbation"``.

    ``group_key`` wins when given; otherwise the column recorded by :func:`from_anndatas` or
    ``GROOVE.setup_mudata`` in ``mdata.uns["groove_sc"]``.

    Parameters
    ----------
    mdata
        The MuData.
    group_key
        An explicit choice (it always wins).

    Returns
    -------
    The column name.
    """
    if group_key is not None:
        return group_key
    entry = mdata.uns.get(SETUP_UNS_KEY, None)
    if isinstance(entry, Mapping) and entry.get("label_key"):
        return str(entry["label_key"])
    return DEFAULT_LABEL_KEY


def _make_mudata(mods: Mapping[str, ad.AnnData], uns: Mapping[str, Any] | None = None) -> md.MuData:
    """Construct a MuData without pulling modality columns into the global ``obs``/``var``.

    Uses the future mudata default (``pull_on_update=False``) locally, so no FutureWarning is
    emitted and the global mudata options are left untouched; mudata's notice that feature
    names repeat across modalities (genes and their proteins) is not shown.
    """
    with md.set_options(pull_on_update=False), warnings.catch_warnings():
        # features may share names across modalities (genes and their proteins): harmless here
        warnings.filterwarnings("ignore", message=".*var_names are not unique.*")
        warnings.filterwarnings("ignore", message=".*var_names are intersecting.*")
        mdata = md.MuData(dict(mods))
    if uns:
        mdata.uns.update(dict(uns))
    return mdata


def _check_label_key(adata: ad.AnnData, label_key: str, modality: str) -> None:
    """Raise a KeyError naming ``label_key``, the modality and the available columns."""
    if label_key not in adata.obs.columns:
        raise KeyError(
            f"label_key={label_key!r} is not a column of modality {modality!r} obs; "
            f"available columns: {list(map(str, adata.obs.columns))}."
        )


def from_anndatas(
    adatas: Mapping[str, ad.AnnData],
    *,
    label_key: str | None = "perturbation",
) -> md.MuData:
    """Build a weakly paired MuData from AnnData objects (two or more) measured in different cells.

    Each AnnData is copied (the inputs are never modified, views are materialised). MuData treats
    equal ``obs_names`` in different modalities as the *same* cell, which is wrong for weakly
    paired data; so when any observation name occurs in two modalities, every modality's
    ``obs_names`` are prefixed with the modality name (``"rna:cell1"``) and a warning says so.

    Parameters
    ----------
    adatas
        Mapping of two (or more) modality names to AnnData objects (cells x features). The
        objects hold different cells; the only link between them is the label column.
    label_key
        Column of each ``.obs`` holding the group (perturbation) label. It must exist in both
        modalities. ``None`` skips the check.

    Returns
    -------
    MuData with the modalities, in the order of ``adatas``.

    Raises
    ------
    TypeError
        If ``adatas`` is not a mapping of names to AnnData objects.
    ValueError
        If there are fewer than two modalities, or ``obs_names`` are not unique within a
        modality.
    KeyError
        If ``label_key`` is missing from a modality's ``obs``.
    """
    if not isinstance(adatas, Mapping):
        raise TypeError(
            f"`adatas` must be a mapping of modality name to AnnData, got {type(adatas).__name__}."
        )
    if len(adatas) < 2:
        raise ValueError(
            "`adatas` must hold at least two modalities (exactly two, or more), got "
            f"{len(adatas)}: {list(adatas)}."
        )
    mods: dict[str, ad.AnnData] = {}
    for name, adata in adatas.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"`adatas` keys must be non-empty strings, got {name!r}.")
        if not isinstance(adata, ad.AnnData):
            raise TypeError(f"`adatas[{name!r}]` must be an AnnData, got {type(adata).__name__}.")
        if label_key is not None:
            _check_label_key(adata, label_key, name)
        if not adata.obs_names.is_unique:
            raise ValueError(
                f"obs_names of modality {name!r} are not unique; "
                "call `adata.obs_names_make_unique()` first."
            )
        mods[name] = adata.copy()

    names = list(mods)
    if len(names) == 2:
        shared = mods[names[0]].obs_names.intersection(mods[names[1]].obs_names)
        where = "both modalities"
    else:
        every = np.concatenate([mods[n].obs_names.to_numpy().astype(str) for n in names])
        values, counts = np.unique(every, return_counts=True)
        shared = values[counts > 1]
        where = "more than one of the modalities"
    if len(shared) > 0:
        warnings.warn(
            f"{len(shared)} obs_names occur in {where} {names} (e.g. {shared[0]!r}); "
            "MuData would treat them as the same cell. Prefixing obs_names with the modality "
            "name (e.g. 'rna:cell1').",
            UserWarning,
            stacklevel=2,
        )
        for name, adata in mods.items():
            adata.obs_names = np.char.add(f"{name}:", adata.obs_names.to_numpy().astype(str))
    mdata = _make_mudata(mods)
    if label_key is not None:
        record_label_key(mdata, label_key)
    return mdata
