"""Input checks shared by the public entry points. They never modify their input."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy import sparse


def check_mudata(mdata: object, argument: str = "mdata") -> MuData:
    """Raise a clear error unless ``mdata`` is a MuData that is not a view."""
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"`{argument}` must be a mudata.MuData with one AnnData per modality, got "
            f"{type(mdata).__name__}. Build one with groove_sc.data.from_anndatas()."
        )
    if mdata.is_view:
        raise ValueError(
            f"`{argument}` is a view of a MuData; pass `{argument}.copy()` (a view cannot be "
            "registered or written to)."
        )
    for name, mod in mdata.mod.items():
        if mod.is_view:
            raise ValueError(
                f"`{argument}.mod[{name!r}]` is a view of an AnnData; pass a MuData built from "
                "copies (e.g. `adata[mask].copy()`)."
            )
        if not mod.obs_names.is_unique:
            dup = mod.obs_names[mod.obs_names.duplicated()].unique()
            raise ValueError(
                f"`{argument}.mod[{name!r}].obs_names` are not unique ({len(dup)} repeated, e.g. "
                f"{list(dup[:3])}); call `{argument}.mod[{name!r}].obs_names_make_unique()` and "
                f"`{argument}.update()` first."
            )
    return mdata


def resolve_modalities(mdata: MuData, modalities: Sequence[str] | None) -> list[str]:
    """Two or more distinct modality names present in ``mdata``, in the order given.

    ``None`` means every modality of ``mdata`` (at least two).
    """
    available = list(mdata.mod)
    if modalities is None:
        if len(available) < 2:
            raise ValueError(
                f"GROOVE needs at least two modalities; `mdata` has {len(available)} "
                f"({available}). Pass `modalities=[name_a, name_b, ...]` to choose them."
            )
        return available
    if isinstance(modalities, str) or not isinstance(modalities, Sequence) or len(modalities) < 2:
        raise ValueError(
            f"`modalities` must be a sequence of two or more modality names, got {modalities!r}."
        )
    modalities = [str(m) for m in modalities]
    for m in modalities:
        if m not in mdata.mod:
            raise KeyError(
                f"`modalities` names {m!r}, which is not a modality of `mdata` "
                f"(available: {available})."
            )
    repeated = sorted({m for m in modalities if modalities.count(m) > 1})
    if repeated:
        raise ValueError(
            f"`modalities` must name different modalities, got {modalities} ({repeated} repeated)."
        )
    return modalities


def resolve_layers(
    modalities: Sequence[str], layers: str | dict[str, str | None] | None
) -> dict[str, str | None]:
    """Per-modality layer (``None`` = ``.X``)."""
    if layers is None or isinstance(layers, str):
        return {m: layers for m in modalities}
    if not isinstance(layers, dict):
        raise TypeError(
            f"`layers` must be None, a layer name or a dict {{modality: layer}}, got "
            f"{type(layers).__name__}."
        )
    unknown = set(layers) - set(modalities)
    if unknown:
        raise KeyError(
            f"`layers` names modalities {sorted(unknown)} that are not among {list(modalities)}."
        )
    return {m: layers.get(m) for m in modalities}


def get_matrix(adata: AnnData, layer: str | None, modality: str):
    """The data matrix of one modality (``.X`` or a layer), with a clear error if absent."""
    if layer is None:
        if adata.X is None:
            raise ValueError(f"Modality {modality!r} has no `.X`; pass `layers={{...}}`.")
        return adata.X
    if layer not in adata.layers:
        raise KeyError(
            f"`layers` asks for layer {layer!r} in modality {modality!r}, which has layers "
            f"{list(adata.layers)}."
        )
    return adata.layers[layer]


def check_finite(x, where: str) -> None:
    """Raise if ``x`` (dense or sparse) holds NaN or inf."""
    data = x.data if sparse.issparse(x) else np.asarray(x)
    if data.dtype.kind not in "fiub":
        raise TypeError(f"{where} must be numeric, got dtype {data.dtype}.")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        n_bad = int((~np.isfinite(data)).sum())
        raise ValueError(
            f"{where} contains {n_bad} NaN or infinite values; remove or impute them first."
        )


#: Entries inspected when checking whether a matrix holds counts (a seeded sample).
_COUNT_SAMPLE = 1_000_000


def _sample_values(x) -> np.ndarray:
    data = x.data if sparse.issparse(x) else np.asarray(x).ravel()
    if data.size > _COUNT_SAMPLE:
        idx = np.random.default_rng(0).choice(data.size, _COUNT_SAMPLE, replace=False)
        data = data[idx]
    return np.asarray(data, dtype=np.float64)


def check_counts(x, where: str) -> None:
    """Raise unless ``x`` holds raw counts (non-negative integers), as ``likelihood='nb'`` needs.

    Non-integer values (e.g. log-normalised or scaled data) are detected on a seeded sample
    of the entries.
    """
    data = x.data if sparse.issparse(x) else np.asarray(x)
    if data.size and data.min() < 0:
        raise ValueError(
            f"{where} holds negative values, but `likelihood='nb'` needs raw counts; use "
            "likelihood='gaussian' for normalised or scaled data, or register the counts "
            "with setup_mudata(..., layers='counts')."
        )
    sample = _sample_values(x)
    frac = sample[np.abs(sample - np.round(sample)) > 1e-6]
    if frac.size:
        raise ValueError(
            f"{where} holds non-integer values (e.g. {frac[0]:.4g}), but `likelihood='nb'` "
            "needs raw counts: register the counts layer with setup_mudata(..., "
            "layers={'<modality>': 'counts'}), or use likelihood='gaussian' for normalised "
            "data."
        )


def looks_like_counts(x) -> bool:
    """Whether ``x`` looks like raw counts: non-negative integers with a wide range."""
    sample = _sample_values(x)
    if not sample.size or sample.min() < 0:
        return False
    if np.abs(sample - np.round(sample)).max() > 1e-6:
        return False
    return float(sample.max()) > 20


def label_column(adata: AnnData, key: str, modality: str, argument: str) -> pd.Series:
    """The label column of one modality, with clear errors for absent or missing labels."""
    if key not in adata.obs.columns:
        raise KeyError(
            f"`{argument}`={key!r} is not a column of mdata.mod[{modality!r}].obs "
            f"(columns: {list(adata.obs.columns)})."
        )
    col = adata.obs[key]
    if col.isna().any():
        raise ValueError(
            f"`{argument}`={key!r} has {int(col.isna().sum())} missing labels in modality "
            f"{modality!r}; drop or label those cells first."
        )
    return col.astype(str)
