"""Scoring of one fitted learner on paired test cells: couplings, latents, decoders.

Everything here reads the test MuData and never writes into it: the aligners run on a private
MuData that holds only what :func:`groove_sc.tl.align` reads (:func:`workspace`), the coupling
comes back as a matrix (:func:`groove_sc.tl.get_coupling`), and the metrics are the
array-level cores of :mod:`groove_sc.tl`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from mudata import MuData

from ..data._mudata import _make_mudata
from ..tl import align, foscttm, get_coupling, imputation_metrics, label_transfer_accuracy
from ..tl._cells import obs_strings
from ..tl._impute import barycentric_projection
from ..tl._metrics import coupling_metrics
from ..train._monitor import LABEL_TRANSFER_REFERENCE, knn_label_transfer, sample_rows
from ._config import EVAL_SPACES
from ._learner import Learner

__all__ = [
    "COUPLING_METRICS",
    "DECODER_METRICS",
    "FIT_METRICS",
    "LATENT_METRICS",
    "SELECTION_METRICS",
    "SPACE_METRICS",
    "TRAIN_REFERENCE_METRICS",
    "align_coupling",
    "decoder_metrics",
    "equals_labels_only",
    "eval_matrix",
    "latent_metrics",
    "row_metrics",
    "score_coupling",
    "score_translation",
    "workspace",
]

#: Metrics of every (learner, aligner) cell, read through the coupling.
COUPLING_METRICS = [
    "trace",
    "trace_ratio",
    "foscttm_barycentric",
    "label_transfer_accuracy",
    "impute_pearson_cell",
    "impute_pearson_cell_delta",
    "impute_pearson_feature",
    "impute_mse",
]
#: Metrics of the learner's shared space (learners with ``shared_space`` only):
#: ``label_transfer_heldout`` / ``_train``: 15-NN cross-modal label transfer of the test cells
#: (of as many training cells) against the training cells of the other modality, the
#: definition of ``label_transfer_validation`` logged by ``GROOVE.train``.
LATENT_METRICS = [
    "foscttm",
    "label_transfer_latent",
    "label_transfer_heldout",
    "label_transfer_train",
]
#: Latent metrics against the training cells (``heldout_cells`` protocol only: with held-out
#: labels the test labels have no training cells to transfer from).
TRAIN_REFERENCE_METRICS = ["label_transfer_heldout", "label_transfer_train"]
#: Scores a fit reports about itself (GROOVE with validation cells).
FIT_METRICS = ["label_transfer_validation"]
#: Extra metrics of ``method: auto`` rows: the truth-free verdict and the chosen candidate
#: (``chosen_epsilon``: ``inf`` for the uniform coupling, 0 for EMD).
SELECTION_METRICS = [
    "within_label_signal",
    "signal_agreement_ratio",
    "signal_reliability",
    "signal_p_value",
    "chosen_epsilon",
]
#: Metrics of the ``decoder`` pseudo-aligner (imputation through the learner's decoders).
DECODER_METRICS = [
    "foscttm_barycentric",
    "impute_pearson_cell",
    "impute_pearson_cell_delta",
    "impute_pearson_feature",
    "impute_mse",
]
#: Metrics that depend on the feature space they are computed in (see ``extra_eval_spaces``).
SPACE_METRICS = [
    "foscttm_barycentric",
    "impute_pearson_cell",
    "impute_pearson_cell_delta",
    "impute_pearson_feature",
    "impute_mse",
]


def row_metrics(
    shared_space: bool,
    extra_eval_spaces: Sequence[str] = (),
    protocol: str | None = None,
    fit_metrics: Sequence[str] = (),
) -> list[str]:
    """The metrics of a coupling row of one fit, in order.

    Parameters
    ----------
    shared_space
        The learner embeds both modalities in one space (adds the :data:`LATENT_METRICS`).
    extra_eval_spaces
        Extra spaces of the :data:`SPACE_METRICS` (``"<metric>@<space>"``).
    protocol
        ``"heldout_labels"`` drops the :data:`TRAIN_REFERENCE_METRICS`; ``None`` (a fit that
        failed) keeps them.
    fit_metrics
        Scores the fit reported about itself (those of :data:`FIT_METRICS` are added).

    Returns
    -------
    Metric names.
    """
    extra = [f"{m}@{sp}" for sp in extra_eval_spaces for m in SPACE_METRICS]
    out = list(COUPLING_METRICS) + extra + (list(LATENT_METRICS) if shared_space else [])
    if shared_space and protocol is not None and protocol != "heldout_cells":
        out = [m for m in out if m not in TRAIN_REFERENCE_METRICS]
    return out + [m for m in FIT_METRICS if m in fit_metrics]


def decoder_metrics(metrics: Sequence[str]) -> list[str]:
    """The metrics of a ``decoder`` row: :data:`DECODER_METRICS` and the latent ones."""
    return DECODER_METRICS + [m for m in metrics if m in LATENT_METRICS]


#: Key of the coupling in the private workspace of :func:`align_coupling`.
_KEY = "benchmark_coupling"


def _mean2(a: float, b: float) -> float:
    vals = [v for v in (a, b) if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def eval_matrix(x: Any, space: str) -> np.ndarray:
    """A modality's features in an evaluation space.

    ``"X"``: as stored; ``"standardize"``: each feature centred and scaled to unit variance
    over the given cells (features on very different scales weigh the same); ``"l2"``: each
    cell scaled to unit Euclidean norm (the normalisation SCOT applies before computing
    FOSCTTM).

    Parameters
    ----------
    x
        Cells x features (dense or sparse).
    space
        One of :data:`EVAL_SPACES`.

    Returns
    -------
    Dense float64 array.
    """
    x = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)
    if space == "X":
        return x
    if space == "standardize":
        sd = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)
    if space == "l2":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norm > 0, norm, 1.0)
    raise KeyError(f"Unknown evaluation space {space!r}; known: {list(EVAL_SPACES)}.")


# --------------------------------------------------------------------------------------------
# couplings
# --------------------------------------------------------------------------------------------
def workspace(test: MuData, reps: Mapping[str, Mapping[str, np.ndarray]]) -> MuData:
    """A private MuData for :func:`groove_sc.tl.align`: the test cells and the embeddings.

    Each modality shares the test MuData's ``.X`` (not copied, never written) and carries a
    copy of its ``.obs`` / ``.var`` and the given representations in ``.obsm``; the aligners
    write their couplings into it, not into ``test``.

    Parameters
    ----------
    test
        Paired test MuData (not modified).
    reps
        ``{obsm key: {modality: array}}``.

    Returns
    -------
    The new MuData (same modalities, cells and order as ``test``).
    """
    mods = {}
    for m in test.mod:
        src = test.mod[m]
        mods[m] = ad.AnnData(
            X=src.X,
            obs=src.obs.copy(),
            var=src.var.copy(),
            obsm={key: np.asarray(rep[m]) for key, rep in reps.items()},
        )
    return _make_mudata(mods, uns=copy.deepcopy(dict(test.uns)))


def align_coupling(
    work: MuData, *, label_key: str, params: Mapping[str, Any]
) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """Run one aligner on a :func:`workspace` from its first modality to its second.

    Parameters
    ----------
    work
        The private MuData (the coupling is written into it, under a private key).
    label_key
        Label column the coupling is restricted by.
    params
        :func:`groove_sc.tl.align` arguments (``method``, ``use_rep``, ...).

    Returns
    -------
    ``(coupling, record)``: the first x second modality coupling and its ``uns`` record.
    """
    source, target = list(work.mod)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        align(work, source=source, target=target, group_key=label_key, key_added=_KEY, **params)
    coupling = get_coupling(work, _KEY, source=source, target=target)
    record = dict(work.uns[_KEY])
    del work.obsp[_KEY]
    del work.uns[_KEY]
    return coupling, record


def equals_labels_only(coupling: sp.spmatrix, reference: sp.spmatrix, rtol: float = 1e-4) -> bool:
    """Whether a coupling is the labels-only one (``reference``, the uniform coupling).

    Both are normalised to total mass 1; every entry must lie within ``rtol`` times the
    reference's largest entry (float32 solvers that return the uniform coupling, as COOT does
    on propensity scores, differ from it by about 1e-6 of that).
    """
    if coupling.shape != reference.shape:
        return False
    a = sp.csr_matrix(coupling, dtype=np.float64)
    b = sp.csr_matrix(reference, dtype=np.float64)
    a, b = a / max(a.sum(), 1e-300), b / max(b.sum(), 1e-300)
    diff = abs(a - b)
    scale = max(abs(b).max(), 1e-300)
    return bool((diff.max() if diff.nnz else 0.0) <= rtol * scale)


def _space_reads(
    test: MuData, coupling: sp.csr_matrix, s: str, t: str, space: str
) -> dict[str, float]:
    """Barycentric FOSCTTM and imputation from ``s`` onto ``t`` in an evaluation space."""
    xs, xt = eval_matrix(test.mod[s].X, space), eval_matrix(test.mod[t].X, space)
    mm = coupling_metrics(
        coupling,
        obs_strings(test.mod[s], "pair_id", "truth_key", s),
        obs_strings(test.mod[t], "pair_id", "truth_key", t),
        reps=(xs, xt),
        names=(s, t),
    )
    with np.errstate(all="ignore"):
        pred, _ = barycentric_projection(coupling, xt)
    cols = pd.Index(test.mod[t].var_names)
    im = imputation_metrics(
        pd.DataFrame(pred, index=test.mod[s].obs_names, columns=cols),
        pd.DataFrame(xt, index=test.mod[t].obs_names, columns=cols),
    )
    return {
        "foscttm_barycentric": mm["foscttm_barycentric"],
        "impute_pearson_cell": im["pearson_cell"],
        "impute_pearson_cell_delta": im["pearson_cell_delta"],
        "impute_pearson_feature": im["pearson_feature"],
        "impute_mse": im["mse"],
    }


def _reads(
    test: MuData,
    coupling: sp.csr_matrix,
    s: str,
    t: str,
    label_key: str,
    eval_label_key: str,
    extra_eval_spaces: Sequence[str],
) -> dict[str, float]:
    """Every coupling metric from ``s`` onto ``t`` (``coupling``: ``s`` x ``t``)."""
    src, tgt = test.mod[s], test.mod[t]
    mm = coupling_metrics(
        coupling,
        obs_strings(src, "pair_id", "truth_key", s),
        obs_strings(tgt, "pair_id", "truth_key", t),
        groups=(
            obs_strings(src, label_key, "group_key", s),
            obs_strings(tgt, label_key, "group_key", t),
        ),
        reps=(eval_matrix(src.X, "X"), eval_matrix(tgt.X, "X")),
        labels=(
            obs_strings(src, eval_label_key, "label_key", s),
            obs_strings(tgt, eval_label_key, "label_key", t),
        ),
        names=(s, t),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred, _ = barycentric_projection(coupling, tgt.X)
        imputed = pd.DataFrame(pred, index=src.obs_names.copy(), columns=tgt.var_names.copy())
        im = imputation_metrics(imputed, tgt)
        read = {
            "trace": mm["trace"],
            "trace_ratio": mm["trace_ratio"],
            "foscttm_barycentric": mm["foscttm_barycentric"],
            "label_transfer_accuracy": mm["label_transfer_accuracy"],
            "impute_pearson_cell": im["pearson_cell"],
            "impute_pearson_cell_delta": im["pearson_cell_delta"],
            "impute_pearson_feature": im["pearson_feature"],
            "impute_mse": im["mse"],
        }
        for space in extra_eval_spaces:
            extra = _space_reads(test, coupling, s, t, space)
            read.update({f"{k}@{space}": v for k, v in extra.items()})
    return read


def score_coupling(
    test: MuData,
    coupling: sp.spmatrix | np.ndarray | None = None,
    *,
    label_key: str,
    eval_label_key: str | None = None,
    coupling_key: str | None = None,
    extra_eval_spaces: Sequence[str] = (),
) -> dict[str, float]:
    """Score a coupling of the paired test cells: matching and imputation, both directions.

    Every metric is the mean of its reading from the first modality to the second and back
    (the same coupling, transposed). The barycentric FOSCTTM and the imputation are computed in
    each target modality's own feature space ``.X`` (the same for every learner, so values are
    comparable across learners and aligners), as SCOT does; ``extra_eval_spaces`` adds them in
    other spaces (:func:`eval_matrix`), named ``"<metric>@<space>"``. ``test`` is only read.

    Parameters
    ----------
    test
        Paired test MuData (``obs["pair_id"]`` in both modalities).
    coupling
        The first x second modality coupling; default: read from ``test.obsp[coupling_key]``
        (:func:`groove_sc.tl.get_coupling`).
    label_key
        Label column the coupling was restricted by (for the uniform reference of the trace).
    eval_label_key
        Label column for the label transfer accuracy (e.g. the true label when the observed
        one is noisy); default ``label_key``.
    coupling_key
        Key of a coupling stored in ``test`` (when ``coupling`` is not given).
    extra_eval_spaces
        More spaces (``"standardize"``, ``"l2"``) for the :data:`SPACE_METRICS`.

    Returns
    -------
    The :data:`COUPLING_METRICS`, and ``"<metric>@<space>"`` for each extra space.
    """
    a, b = list(test.mod)
    if coupling is None:
        if coupling_key is None:
            raise ValueError("pass `coupling` or the `coupling_key` of one stored in `test`.")
        coupling = get_coupling(test, coupling_key, source=a, target=b)
    coupling = sp.csr_matrix(coupling)
    eval_key = eval_label_key or label_key
    reads = [
        _reads(test, coupling, a, b, label_key, eval_key, extra_eval_spaces),
        _reads(test, coupling.T.tocsr(), b, a, label_key, eval_key, extra_eval_spaces),
    ]
    return {k: _mean2(reads[0][k], reads[1].get(k, np.nan)) for k in reads[0]}


def selection_values(selection: Mapping[str, Any]) -> dict[str, float]:
    """The verdict and the chosen candidate of an ``auto`` coupling, as numbers."""
    choice = selection["choice"]
    if choice["method"] == "uniform":
        eps = float("inf")
    elif choice["method"] == "emd":
        eps = 0.0
    else:
        eps = float(choice.get("epsilon", np.nan))
    signal = selection["signal"]
    return {
        "within_label_signal": float(bool(selection["within_label_signal"])),
        "signal_agreement_ratio": float(signal["agreement_ratio"]),
        "signal_reliability": float(signal["reliability"]),
        "signal_p_value": float(signal["p_value"]),
        "chosen_epsilon": eps,
    }


# --------------------------------------------------------------------------------------------
# decoders and latents
# --------------------------------------------------------------------------------------------
def score_translation(test: MuData, learner: Learner) -> dict[str, float]:
    """Score the decoders' imputation ``D_B(E_A(x_A))`` of the paired test cells.

    The ``decoder`` pseudo-aligner: no coupling; each cell's predicted profile in the other
    modality is compared with its measured one. ``foscttm_barycentric`` is here the FOSCTTM of
    the predicted profiles against the measured ones in the target's feature space (the
    analogue of the barycentric FOSCTTM, with the decoder's prediction in place of the
    barycentric projection); the ``impute_*`` metrics are those of
    :func:`groove_sc.tl.imputation_metrics`. Both directions averaged.

    Parameters
    ----------
    test
        Paired test MuData.
    learner
        A fitted learner with :attr:`~Learner.can_translate`.

    Returns
    -------
    The :data:`DECODER_METRICS`.
    """
    a, b = list(test.mod)
    reads = []
    for s, t in ((a, b), (b, a)):
        pred = learner.translate(test, s, t)
        obs = np.asarray(test.mod[t].X, dtype=np.float64)
        im = imputation_metrics(pred, obs)
        reads.append(
            {
                "foscttm_barycentric": foscttm(pred, obs),
                "impute_pearson_cell": im["pearson_cell"],
                "impute_pearson_cell_delta": im["pearson_cell_delta"],
                "impute_pearson_feature": im["pearson_feature"],
                "impute_mse": im["mse"],
            }
        )
    return {k: _mean2(reads[0][k], reads[1][k]) for k in DECODER_METRICS}


def latent_metrics(emb: Mapping[str, np.ndarray], test: MuData, label_key: str) -> dict:
    """Latent FOSCTTM and 1-NN cross-modal label transfer of the paired test cells."""
    a, b = list(test.mod)
    za, zb = emb[a], emb[b]
    la = test.mod[a].obs[label_key].astype(str).to_numpy()
    lb = test.mod[b].obs[label_key].astype(str).to_numpy()
    transfer = (
        label_transfer_accuracy(za, la, zb, lb) + label_transfer_accuracy(zb, lb, za, la)
    ) / 2
    return {"foscttm": foscttm(za, zb), "label_transfer_latent": transfer}


def label_transfer_vs_training(
    emb: Mapping[str, np.ndarray],
    test: MuData,
    emb_train: Mapping[str, np.ndarray],
    train: MuData,
    label_key: str,
    training_obs_names: Mapping[str, np.ndarray] | None,
    seed: int,
) -> tuple[float, float]:
    """Cross-modal 15-NN label transfer of test cells and of as many training cells.

    The reference of each direction is the other modality's training cells (those the fit
    trained on), as for ``label_transfer_validation`` during ``GROOVE.train``
    (:class:`groove_sc.train.LabelTransferMonitor`), so the three are comparable.
    """
    mods = list(test.mod)
    vocab = pd.Index(
        sorted(
            set().union(
                *(set(x.mod[m].obs[label_key].astype(str)) for x in (test, train) for m in mods)
            )
        )
    )

    def codes(adata: ad.AnnData) -> torch.Tensor:
        return torch.as_tensor(vocab.get_indexer(adata.obs[label_key].astype(str)))

    rng = np.random.default_rng([seed, 0x4C54])
    ref_rows, query_rows = {}, {}
    for m in mods:
        names = train.mod[m].obs_names
        fitted = np.arange(len(names))
        if training_obs_names is not None and m in training_obs_names:
            fitted = np.flatnonzero(names.isin(np.asarray(training_obs_names[m], dtype=str)))
        ref_rows[m] = sample_rows(fitted, LABEL_TRANSFER_REFERENCE, rng)
        query_rows[m] = sample_rows(fitted, test.mod[m].n_obs, rng)
    scores: dict[str, list[float]] = {"heldout": [], "train": []}
    for s_mod, t_mod in ((mods[0], mods[1]), (mods[1], mods[0])):
        z_ref = torch.as_tensor(np.asarray(emb_train[t_mod])[ref_rows[t_mod]], dtype=torch.float32)
        l_ref = codes(train.mod[t_mod])[ref_rows[t_mod]]
        for what, z_q, l_q in (
            ("heldout", np.asarray(emb[s_mod]), codes(test.mod[s_mod])),
            (
                "train",
                np.asarray(emb_train[s_mod])[query_rows[s_mod]],
                codes(train.mod[s_mod])[query_rows[s_mod]],
            ),
        ):
            correct, n = knn_label_transfer(
                torch.as_tensor(z_q, dtype=torch.float32), l_q, z_ref, l_ref
            )
            if n:
                scores[what].append(correct / n)
    return (
        float(np.mean(scores["heldout"])) if scores["heldout"] else float("nan"),
        float(np.mean(scores["train"])) if scores["train"] else float("nan"),
    )
