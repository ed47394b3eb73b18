"""One unit of the benchmark: fit one learner on one split, score it with every aligner."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mudata import MuData

from .._results import error_text, metric_rows
from ..data import split_disjoint
from ._config import BenchmarkConfig, DatasetConfig
from ._data import Split
from ._learner import Learner, LearnerNotApplicable, make_learner
from ._scoring import (
    SELECTION_METRICS,
    align_coupling,
    decoder_metrics,
    equals_labels_only,
    label_transfer_vs_training,
    latent_metrics,
    row_metrics,
    score_coupling,
    score_translation,
    selection_values,
    workspace,
)

__all__ = ["Fit", "fit_learner", "run_unit", "training_data"]

#: Aligner methods that need both modalities in one space.
SHARED_SPACE_METHODS = ("sinkhorn", "emd", "fgw")
#: ``.obsm`` key of the learner's embedding in the aligners' workspace.
_REP = "X_benchmark"


@dataclass
class Fit:
    """A fitted learner, its embeddings and the scores of its shared space.

    Attributes
    ----------
    learner
        The fitted learner.
    emb, emb_train
        Embeddings of the test and (shared-space learners) training cells per modality.
    seconds
        Time of the fit and the embeddings.
    latent
        Latent metrics and the scores the fit reports about itself.
    metrics
        Metrics of the coupling rows of this fit, in order.
    """

    learner: Learner
    emb: dict[str, np.ndarray]
    emb_train: dict[str, np.ndarray]
    seconds: float
    latent: dict[str, float] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)


def training_data(learner: Learner, split: Split, dataset: DatasetConfig) -> MuData:
    """The cells ``learner`` trains on: the pair's, and with ``extra_modalities`` the extras'.

    Raises :class:`LearnerNotApplicable` for a learner with ``extra_modalities: true`` on a
    dataset without ``extra_modalities``.
    """
    if not learner.uses_extra_modalities:
        return split.train
    if split.train_extra is None:
        raise LearnerNotApplicable(
            f"learner {learner.name!r} has `extra_modalities: true`, but dataset "
            f"{dataset.name!r} has no `extra_modalities`."
        )
    return split.train_extra


def fit_learner(learner: Learner, split: Split, dataset: DatasetConfig, seed: int) -> Fit:
    """Fit a learner on the split's training cells and embed its test cells.

    Raises whatever the fit raises (:class:`LearnerNotApplicable` when it does not apply).
    """
    train = training_data(learner, split, dataset)
    start = time.perf_counter()
    learner.fit(train, dataset.label_key, seed)
    emb = learner.transform(split.test)
    emb_train = learner.transform(split.train) if learner.shared_space else {}
    seconds = time.perf_counter() - start
    for m, z in emb.items():
        if not np.isfinite(z).all():
            raise FloatingPointError(f"embedding of {m!r} has non-finite values")
    latent: dict[str, float] = {}
    if learner.shared_space:
        latent = latent_metrics(emb, split.test, dataset.eval_label_key)
        if split.protocol == "heldout_cells":  # held-out labels have no training reference
            heldout, trained = label_transfer_vs_training(
                emb,
                split.test,
                emb_train,
                split.train,
                dataset.eval_label_key,
                learner.training_obs_names,
                seed,
            )
            latent.update(label_transfer_heldout=heldout, label_transfer_train=trained)
    latent.update(learner.fit_metrics)
    metrics = row_metrics(
        learner.shared_space, dataset.extra_eval_spaces, split.protocol, learner.fit_metrics
    )
    return Fit(learner, emb, emb_train, seconds, latent, metrics)


def _replicates(
    name: str, cfg: BenchmarkConfig, split: Split, dataset: DatasetConfig, seed: int
) -> list[dict[str, np.ndarray]]:
    """Two refits of a learner on disjoint halves of the training cells, embedding the test."""
    learner = make_learner(name, cfg.learners[name], cfg.learner_defaults)
    label_key = dataset.label_key
    halves = split_disjoint(training_data(learner, split, dataset), label_key, n_parts=2, seed=seed)
    out = []
    for k, half in enumerate(halves):
        learner = make_learner(name, cfg.learners[name], cfg.learner_defaults)
        learner.fit(half, label_key, seed + k + 1)
        out.append(learner.transform(split.test))
    return out


def run_unit(
    name: str,
    split: Split,
    cfg: BenchmarkConfig,
    dataset: DatasetConfig,
    base: Mapping[str, Any],
    seed: int,
) -> list[dict[str, Any]]:
    """Fit the learner ``name`` on one split and score it with every aligner.

    A failed fit, replicate fit or alignment is recorded in the rows (``failed`` with the
    error), never raised; a learner that does not apply gives ``not_applicable`` rows with the
    reason. Neither the split's MuData nor anything else given is modified.

    Parameters
    ----------
    name
        Learner name (a key of ``cfg.learners``).
    split
        The train / test split.
    cfg
        The configuration.
    dataset
        The dataset's configuration.
    base
        Facet columns of the rows (dataset, setting, protocol, fold, learner, seed).
    seed
        Seed of the fit.

    Returns
    -------
    The result rows of the unit.
    """
    learner = make_learner(name, cfg.learners[name], cfg.learner_defaults)
    aligners = cfg.aligners_for(name)
    label_key = dataset.label_key
    try:
        fit = fit_learner(learner, split, dataset, seed)
    except Exception as exc:  # a failed fit is recorded for each aligner, never fatal
        na = isinstance(exc, LearnerNotApplicable)
        err = str(exc)[:500] if na else error_text(exc)
        status = "not_applicable" if na else "failed"
        metrics = row_metrics(learner.shared_space, dataset.extra_eval_spaces)
        rows: list[dict[str, Any]] = []
        for aligner in aligners:
            rows += metric_rows({**base, "aligner": aligner}, {}, metrics, np.nan, status, err)
        return rows
    reps = {_REP: fit.emb}
    replicate_error, replicate_seconds = "", 0.0
    if learner.shared_space and any(p.get("method") == "auto" for p in aligners.values()):
        try:
            start = time.perf_counter()
            for k, rep in enumerate(_replicates(name, cfg, split, dataset, seed)):
                reps[f"{_REP}_rep{k}"] = rep
            replicate_seconds = time.perf_counter() - start
        except Exception as exc:
            replicate_error = error_text(exc)
    work = workspace(split.test, reps)
    reference = None
    if any(p.get("method") not in ("decoder", "uniform") for p in aligners.values()):
        reference, _ = align_coupling(work, label_key=label_key, params={"method": "uniform"})
    rows = []
    for aligner, params in aligners.items():
        rows += _aligner_rows(
            aligner,
            dict(params),
            fit,
            split,
            dataset,
            {**base, "aligner": aligner},
            work,
            reference,
            [k for k in reps if k != _REP],
            replicate_error,
            replicate_seconds,
        )
    return rows


def _aligner_rows(
    aligner: str,
    params: dict[str, Any],
    fit: Fit,
    split: Split,
    dataset: DatasetConfig,
    row_base: dict[str, Any],
    work: Any,
    reference: Any,
    replicate_keys: list[str],
    replicate_error: str,
    replicate_seconds: float,
) -> list[dict[str, Any]]:
    """The rows of one aligner on one fit."""
    learner, metrics = fit.learner, fit.metrics
    method = params.get("method")
    if method == "decoder":
        dec_metrics = decoder_metrics(metrics)
        if not learner.can_translate:
            return metric_rows(row_base, {}, dec_metrics, np.nan, "not_applicable")
        try:
            start = time.perf_counter()
            values = {**score_translation(split.test, learner), **fit.latent}
            seconds = fit.seconds + time.perf_counter() - start
            return metric_rows(row_base, values, dec_metrics, seconds)
        except Exception as exc:
            return metric_rows(row_base, {}, dec_metrics, np.nan, "failed", error_text(exc))
    if method in SHARED_SPACE_METHODS and not learner.shared_space and "use_rep" not in params:
        return metric_rows(row_base, {}, metrics, np.nan, "not_applicable")
    auto = method == "auto"
    row_metrics = metrics + (SELECTION_METRICS if auto else [])
    if auto and not learner.shared_space:
        return metric_rows(row_base, {}, row_metrics, np.nan, "not_applicable")
    if auto and replicate_error:
        return metric_rows(row_base, {}, row_metrics, np.nan, "failed", replicate_error)
    if auto:
        params["replicates"] = replicate_keys
    params.setdefault("use_rep", _REP)
    try:
        start = time.perf_counter()
        coupling, record = align_coupling(work, label_key=dataset.label_key, params=params)
        seconds = fit.seconds + time.perf_counter() - start
        if auto:
            seconds += replicate_seconds
        values = score_coupling(
            split.test,
            coupling,
            label_key=dataset.label_key,
            eval_label_key=dataset.eval_label_key,
            extra_eval_spaces=dataset.extra_eval_spaces,
        )
        values.update(fit.latent)
        if auto:
            values.update(selection_values(record["selection"]))
        labels_only = method == "uniform" or (
            reference is not None and equals_labels_only(coupling, reference)
        )
        return metric_rows(row_base, values, row_metrics, seconds, labels_only=labels_only)
    except Exception as exc:
        return metric_rows(row_base, {}, row_metrics, np.nan, "failed", error_text(exc))
