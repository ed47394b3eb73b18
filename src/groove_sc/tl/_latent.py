"""Write GROOVE latents into a MuData (``.obsm``) and record which cells the model trained on."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from mudata import MuData

from ..data._mudata import record_label_key
from ..data._validate import check_mudata
from ._embedding import embedding_key

#: Suffix of the ``.obs`` column flagging the cells the model trained on.
TRAINING_SUFFIX = "_training"
#: Key of ``mdata.uns`` listing replicate representations (``replicate_latents``).
REPLICATES_KEY = "groove_replicates"


def latent(
    model,
    mdata: MuData | None = None,
    *,
    key_added: str = "X_groove",
    batch_size: int = 1024,
    copy: bool = False,
) -> MuData | None:
    """Compute the shared latent representation and store it in the MuData.

    Writes ``mdata.mod[m].obsm[key_added]`` for each of the model's modalities that
    ``mdata`` holds (a query measured with one assay works) and
    ``mdata.obsm[key_added]`` (union rows, placed through ``mdata.obsmap``; rows observed in
    no modality of the model are NaN; a cell observed in both modalities, as in paired test
    data, takes the first modality's latent, the per-modality latents being in ``.mod``),
    with ``mdata.obs["modality"]`` (the modality of each row's latent) and the model's
    label column in ``mdata.obs`` (when absent; the column is also recorded in
    ``mdata.uns["groove_sc"]["label_key"]``, the default ``group_key`` of ``tl`` and ``pl``),
    so that scanpy works on the global object:
    ``sc.pp.neighbors(mdata, use_rep="X_groove"); sc.tl.umap(mdata);
    sc.pl.umap(mdata, color=["modality", "perturbation"])``.

    It also records which cells the model trained on, by ``obs_names``, in the boolean column
    ``mdata.mod[m].obs[key_added + "_training"]``, and counts them in ``mdata.uns[key_added]``.
    The latent of training cells overstates how well the modalities align: a model can
    memorise the labels of the cells it trained on, so that they form crisp cross-modal
    clusters even where held-out cells of the same experiments do not. A warning says so when
    training cells are among those written; judge the alignment on held-out cells (the
    model's validation cells, ``model.validation_indices``, or a split made with
    :func:`groove_sc.data.split_weakly_paired`) and with ``label_transfer_validation`` in
    ``model.history``.

    Parameters
    ----------
    model
        A trained :class:`~groove_sc.model.GROOVE`.
    mdata
        MuData with the model's modalities; default: the model's training data.
    key_added
        Key in ``.obsm``.
    batch_size
        Cells per forward pass.
    copy
        Return a modified copy instead of writing in place.

    Returns
    -------
    The MuData if ``copy=True``, else ``None``.
    """
    mdata = model.adata if mdata is None else check_mudata(mdata)
    latents = model.get_latent_representation(mdata, batch_size=batch_size)  # fails before writing
    if copy:
        mdata = mdata.copy()
    n_latent = next(iter(latents.values())).shape[1]
    union = np.full((mdata.n_obs, n_latent), np.nan, dtype=np.float32)
    filled = np.zeros(mdata.n_obs, dtype=bool)
    source = np.full(mdata.n_obs, None, dtype=object)  # modality each union row's latent is from
    labels = np.full(mdata.n_obs, None, dtype=object)
    key = getattr(model, "perturbation_key", None)
    for m, z in latents.items():
        mdata.mod[m].obsm[key_added] = z
        for method in ("umap", "pca"):  # an embedding of the previous latent is stale now
            mdata.mod[m].obsm.pop(embedding_key(key_added, method), None)
        rows = np.asarray(mdata.obsmap[m]).ravel()
        if len(rows) != mdata.n_obs:
            raise ValueError("`mdata` is out of sync with its modalities; call mdata.update().")
        present = np.flatnonzero(rows > 0)
        take = present[~filled[present]]
        union[take] = z[rows[take] - 1]
        filled[take] = True
        source[take] = m
        if key is not None and key in mdata.mod[m].obs:
            labels[take] = mdata.mod[m].obs[key].astype(object).to_numpy()[rows[take] - 1]
    mdata.obsm[key_added] = union
    for method in ("umap", "pca"):
        mdata.uns.pop(embedding_key(key_added, method), None)
    _write_union_obs(mdata, source, labels, key)
    _record_training_cells(model, mdata, key_added, list(latents))
    if key is not None and all(key in mdata.mod[m].obs for m in latents):
        record_label_key(mdata, key)  # the default group_key of tl and pl from now on
    return mdata if copy else None


def _write_union_obs(mdata: MuData, source: np.ndarray, labels: np.ndarray, key: str | None):
    """``mdata.obs["modality"]`` and the label column, so that scanpy can colour by them.

    With these, ``sc.pp.neighbors(mdata, use_rep="X_groove")`` and
    ``sc.pl.umap(mdata, color=["modality", key])`` work on the global MuData. Columns the user
    already has are left alone.
    """
    if "modality" not in mdata.obs:
        mdata.obs["modality"] = pd.Categorical(source)
    if key is not None and key not in mdata.obs and any(v is not None for v in labels):
        mdata.obs[key] = pd.Categorical(labels)


def _record_training_cells(model, mdata: MuData, key_added: str, mods: list[str]) -> None:
    names = getattr(model, "training_obs_names_", None)
    column = key_added + TRAINING_SUFFIX
    counts, totals = {}, {}
    for m in mods:
        adata = mdata.mod[m]
        trained = names.get(m) if names else None
        flag = (
            np.zeros(adata.n_obs, dtype=bool)
            if trained is None
            else adata.obs_names.isin(np.asarray(trained, dtype=str))
        )
        adata.obs[column] = flag
        counts[m], totals[m] = int(flag.sum()), int(adata.n_obs)
    mdata.uns[key_added] = {
        "modalities": mods,
        "n_training_cells": counts,
        "n_cells": totals,
        "training_column": column,
    }
    if any(counts.values()):
        shown = ", ".join(f"{counts[m]} of {totals[m]} {m!r}" for m in mods)
        warnings.warn(
            f"{shown} cells are cells the model trained on (flagged in "
            f".obs[{column!r}]). Their latent overstates how well the modalities align: a "
            "model can memorise the labels of its training cells. Judge the alignment on "
            "held-out cells (the validation cells, or a split from "
            "groove_sc.data.split_weakly_paired) and with "
            "model.history['label_transfer_validation'].",
            UserWarning,
            stacklevel=3,
        )


def replicate_latents(
    replicates: Sequence,
    mdata: MuData,
    *,
    key_added: str = "X_groove",
    batch_size: int = 1024,
    copy: bool = False,
) -> MuData | None:
    """Write the latent of every replicate model (:meth:`GROOVE.train_replicates`).

    Replicate ``k`` is written to ``mdata.mod[m].obsm[f"{key_added}_rep{k}"]`` for each
    modality, and ``mdata.uns["groove_replicates"][key_added]`` lists the keys, which is where
    :func:`groove_sc.tl.within_label_signal` and ``groove_sc.tl.align(method="auto")`` look
    for them.

    Parameters
    ----------
    replicates
        Two or more trained models with the same modalities, fitted on disjoint cells.
    mdata
        MuData with those modalities (all cells are written, the ones each replicate trained
        on included: each cell was seen by at most one replicate).
    key_added
        Base key in ``.obsm``.
    batch_size
        Cells per forward pass.
    copy
        Return a modified copy instead of writing in place.

    Returns
    -------
    The MuData if ``copy=True``, else ``None``.
    """
    replicates = list(replicates)
    if len(replicates) < 2:
        raise ValueError(f"`replicates` needs at least two models, got {len(replicates)}.")
    mods = list(replicates[0].modalities)
    for k, rep in enumerate(replicates):
        if list(rep.modalities) != mods:
            raise ValueError(
                f"replicate {k} has modalities {list(rep.modalities)}, replicate 0 {mods}; "
                "replicates must be copies of one model."
            )
    mdata = check_mudata(mdata)
    latents = [rep.get_latent_representation(mdata, batch_size=batch_size) for rep in replicates]
    if copy:
        mdata = mdata.copy()
    keys = [f"{key_added}_rep{k}" for k in range(len(replicates))]
    for key, z in zip(keys, latents):
        for m, zm in z.items():
            mdata.mod[m].obsm[key] = zm
    registry = dict(mdata.uns.get(REPLICATES_KEY, {}))
    registry[key_added] = {"keys": keys, "modalities": mods}
    mdata.uns[REPLICATES_KEY] = registry
    return mdata if copy else None
