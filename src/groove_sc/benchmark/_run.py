"""The combinatorial benchmark: datasets x settings x protocols x seeds x learners x aligners."""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mudata import MuData

from ._data import iter_splits, load_dataset
from ._learners import Learner, LearnerNotApplicable, make_learner

__all__ = [
    "COUPLING_METRICS",
    "DECODER_METRICS",
    "LATENT_METRICS",
    "RESULT_COLUMNS",
    "eval_matrix",
    "load_config",
    "run",
    "score_coupling",
    "score_translation",
]

#: Columns of the tidy results table, in order.
RESULT_COLUMNS = [
    "dataset",
    "setting",
    "protocol",
    "fold",
    "learner",
    "aligner",
    "seed",
    "metric",
    "value",
    "seconds",
    "status",
    "error",
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
#: Aligner methods that need both modalities in one space.
SHARED_SPACE_METHODS = ("sinkhorn", "emd", "fgw")

DEFAULT_LEARNERS = [
    "groove",
    "groove_no_groupclip",
    "groove_no_backtranslation",
    "autoencoder",
    "clip_random_pairs",
    "vae_adversarial",
    "propensity_score",
    "pca",
]
DEFAULT_ALIGNERS = {
    "uniform": {"method": "uniform"},
    "sinkhorn": {"method": "sinkhorn"},
    "emd": {"method": "emd"},
    "gw": {"method": "gw"},
    "fgw": {"method": "fgw"},
    "coot": {"method": "coot"},
}
_PROTOCOLS = ("heldout_cells", "heldout_labels")
_REP = "X_benchmark"
_KEY = "benchmark_coupling"


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
def load_config(config: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read (YAML file) and normalise a benchmark configuration.

    A configuration is a mapping with the keys below (all but ``datasets`` optional)::

        name: simulation            # used in output names
        seeds: [0, 1, 2, 3, 4]      # each seed: data (simulate), split, learner init/training
        n_threads: 1                # torch CPU threads during the run
        protocols:                  # protocol -> options (default: heldout_cells only)
          heldout_cells: {test_size: 0.2}
          heldout_labels: {n_folds: 5, folds: [0, 1], keep_labels: [control]}
        datasets:                   # name -> options (or a list of mappings with `name`)
          simulation:
            loader: simulate        # simulate | snareseq | citeseq_pbmc | papalexi_two_view | h5mu
            label_key: perturbation
            eval_label_key: perturbation_true   # label for the label-transfer metrics
            params: {n_perturbations: 20}       # loader keyword arguments
            settings:                           # setting name -> extra loader arguments
              rho=1.0: {shared_fraction: 1.0}
            data_seed: run          # "run": the seed of the run (simulate); an int: fixed
            subsample_per_label: null
            log1p: false
            protocols: [heldout_cells]          # subset of the protocols for this dataset
            protocol_options: {heldout_labels: {n_folds: 4}}   # per-dataset overrides
            extra_eval_spaces: [l2]  # also score barycentric FOSCTTM/imputation in these spaces
        learner_defaults: {max_epochs: 100, n_latent: 16}
        learners:                   # name -> options (`kind` when the name is not a kind)
          groove: {}
          groove_previous_default: {kind: groove, beta: 1.0, tau: 0.1}
        aligners:                   # name -> groove_sc.tl.align keyword arguments
          sinkhorn: {method: sinkhorn, epsilon: 0.05}
          decoder: {method: decoder}  # imputation through the decoders (no coupling)
          auto_matching:              # truth-free choice (replicates refitted on halves)
            {method: auto, objective: matching, learners: [groove, clip_random_pairs]}

    An aligner with ``learners:`` is run only with those learners (no rows for the others).

    Parameters
    ----------
    config
        Path of a YAML file, or the mapping itself.

    Returns
    -------
    The normalised configuration (a new dict; defaults filled in).

    Raises
    ------
    KeyError, ValueError
        On unknown protocols, loaders, learners or missing required keys.
    """
    if isinstance(config, (str, Path)):
        import yaml

        with open(config) as fh:
            cfg = yaml.safe_load(fh)
        cfg.setdefault("name", Path(config).stem)
    else:
        cfg = copy.deepcopy(dict(config))
    cfg.setdefault("name", "benchmark")
    seeds = cfg.get("seeds", [0])
    cfg["seeds"] = [int(s) for s in (seeds if isinstance(seeds, (list, tuple)) else [seeds])]
    cfg["n_threads"] = cfg.get("n_threads", 1)
    protocols = cfg.get("protocols") or {"heldout_cells": {}}
    if isinstance(protocols, (list, tuple)):
        protocols = {p: {} for p in protocols}
    for p in protocols:
        if p not in _PROTOCOLS:
            raise KeyError(f"Unknown protocol {p!r}; known: {list(_PROTOCOLS)}.")
    cfg["protocols"] = {p: dict(o or {}) for p, o in protocols.items()}

    datasets = cfg.get("datasets")
    if not datasets:
        raise KeyError("the configuration needs `datasets`.")
    if isinstance(datasets, Mapping):
        datasets = [{"name": k, **dict(v or {})} for k, v in datasets.items()]
    norm = []
    for d in datasets:
        d = dict(d)
        if "name" not in d:
            raise KeyError(f"a dataset entry has no `name`: {d}.")
        d.setdefault("loader", d["name"])
        if "label_key" not in d:
            raise KeyError(f"dataset {d['name']!r} needs `label_key`.")
        d.setdefault("eval_label_key", d["label_key"])
        d["params"] = dict(d.get("params") or {})
        settings = d.get("settings") or {"": {}}
        if isinstance(settings, (list, tuple)):
            settings = {
                str(s.get("name", i)): dict(s.get("params", s)) for i, s in enumerate(settings)
            }
        d["settings"] = {str(k): dict(v or {}) for k, v in settings.items()}
        d.setdefault("data_seed", "run" if d["loader"] == "simulate" else 0)
        d.setdefault("subsample_per_label", None)
        d.setdefault("log1p", False)
        d.setdefault("modalities", None)
        d["extra_eval_spaces"] = list(d.get("extra_eval_spaces") or [])
        for space in d["extra_eval_spaces"]:
            if space not in EVAL_SPACES or space == "X":
                raise KeyError(
                    f"dataset {d['name']!r}: unknown extra_eval_spaces entry {space!r}; "
                    "known: 'standardize', 'l2'."
                )
        d["protocols"] = list(d.get("protocols") or cfg["protocols"])
        d["protocol_options"] = {
            p: dict(o or {}) for p, o in (d.get("protocol_options") or {}).items()
        }
        for p in d["protocols"]:
            if p not in cfg["protocols"]:
                raise KeyError(
                    f"dataset {d['name']!r} asks for protocol {p!r}, which is not in "
                    f"`protocols` ({list(cfg['protocols'])})."
                )
        norm.append(d)
    cfg["datasets"] = norm

    learners = cfg.get("learners") or DEFAULT_LEARNERS
    if isinstance(learners, (list, tuple)):
        learners = {name: {} for name in learners}
    cfg["learners"] = {k: dict(v or {}) for k, v in learners.items()}
    cfg["learner_defaults"] = dict(cfg.get("learner_defaults") or {})
    for name, params in cfg["learners"].items():  # fail early on unknown kinds
        make_learner(name, params, cfg["learner_defaults"])

    aligners = cfg.get("aligners") or DEFAULT_ALIGNERS
    if isinstance(aligners, (list, tuple)):
        aligners = {a: {"method": a} for a in aligners}
    cfg["aligners"] = {k: {"method": k, **dict(v or {})} for k, v in aligners.items()}
    for name, params in cfg["aligners"].items():
        only = params.get("learners")
        if only is not None:
            unknown = [x for x in only if x not in cfg["learners"]]
            if unknown:
                raise KeyError(
                    f"aligner {name!r}: `learners` names {unknown}, which are not in "
                    f"`learners` ({list(cfg['learners'])})."
                )
    return cfg


def _protocol_options(cfg: Mapping[str, Any], d: Mapping[str, Any], protocol: str) -> dict:
    return {**cfg["protocols"][protocol], **d["protocol_options"].get(protocol, {})}


def _n_folds(cfg: Mapping[str, Any], d: Mapping[str, Any], protocol: str) -> int:
    opts = _protocol_options(cfg, d, protocol)
    if protocol == "heldout_cells":
        return 1
    folds = opts.get("folds")
    return len(folds) if folds is not None else int(opts.get("n_folds", 5))


def _count_units(cfg: Mapping[str, Any]) -> int:
    total = 0
    for d in cfg["datasets"]:
        per_seed = sum(_n_folds(cfg, d, p) for p in d["protocols"])
        total += len(d["settings"]) * len(cfg["seeds"]) * per_seed * len(cfg["learners"])
    return total


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------
def _mean2(a: float, b: float) -> float:
    vals = [v for v in (a, b) if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


#: Metrics that depend on the feature space they are computed in (see ``eval_spaces``).
SPACE_METRICS = [
    "foscttm_barycentric",
    "impute_pearson_cell",
    "impute_pearson_cell_delta",
    "impute_pearson_feature",
    "impute_mse",
]
#: Feature spaces for the barycentric FOSCTTM and the imputation metrics.
EVAL_SPACES = ("X", "standardize", "l2")


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
    from scipy import sparse

    x = np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)
    if space == "X":
        return x
    if space == "standardize":
        sd = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)
    if space == "l2":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norm > 0, norm, 1.0)
    raise KeyError(f"Unknown evaluation space {space!r}; known: {list(EVAL_SPACES)}.")


def _space_reads(test: MuData, coupling_key: str, s: str, t: str, space: str) -> dict:
    """Barycentric FOSCTTM and imputation from ``s`` onto ``t`` in an evaluation space."""
    from ..tl import get_coupling, imputation_metrics, matching_metrics
    from ..tl._impute import barycentric_projection

    key = "_bench_eval"
    for m in (s, t):
        test.mod[m].obsm[key] = eval_matrix(test.mod[m].X, space)
    try:
        mm = matching_metrics(
            test, coupling_key=coupling_key, source=s, target=t, group_key=False, use_rep=key
        )
        coupling = get_coupling(test, coupling_key, source=s, target=t)
        with np.errstate(all="ignore"):
            pred, _ = barycentric_projection(coupling, test.mod[t].obsm[key])
        cols = pd.Index(test.mod[t].var_names)
        im = imputation_metrics(
            pd.DataFrame(pred, index=test.mod[s].obs_names, columns=cols),
            pd.DataFrame(test.mod[t].obsm[key], index=test.mod[t].obs_names, columns=cols),
        )
    finally:
        for m in (s, t):
            del test.mod[m].obsm[key]
    return {
        "foscttm_barycentric": mm["foscttm_barycentric"],
        "impute_pearson_cell": im["pearson_cell"],
        "impute_pearson_cell_delta": im["pearson_cell_delta"],
        "impute_pearson_feature": im["pearson_feature"],
        "impute_mse": im["mse"],
    }


def score_coupling(
    test: MuData,
    *,
    label_key: str,
    eval_label_key: str | None = None,
    coupling_key: str = _KEY,
    extra_eval_spaces: Sequence[str] = (),
) -> dict[str, float]:
    """Score a coupling of the paired test cells: matching and imputation, both directions.

    Every metric is the mean of its reading from the first modality to the second and back
    (the same coupling, transposed). The barycentric FOSCTTM and the imputation are computed in
    each target modality's own feature space ``.X`` (the same for every learner, so values are
    comparable across learners and aligners), as SCOT does; ``extra_eval_spaces`` adds them in
    other spaces (:func:`eval_matrix`), named ``"<metric>@<space>"``.

    Parameters
    ----------
    test
        Paired test MuData holding the coupling in ``obsp[coupling_key]``.
    label_key
        Label column the coupling was restricted by (for the uniform reference of the trace).
    eval_label_key
        Label column for the label transfer accuracy (e.g. the true label when the observed
        one is noisy); default ``label_key``.
    coupling_key
        Key of the coupling.
    extra_eval_spaces
        More spaces (``"standardize"``, ``"l2"``) for the :data:`SPACE_METRICS`.

    Returns
    -------
    The :data:`COUPLING_METRICS`, and ``"<metric>@<space>"`` for each extra space.
    """
    from ..tl import imputation_metrics, impute, matching_metrics

    a, b = list(test.mod)
    reads = []
    for s, t in ((a, b), (b, a)):
        mm = matching_metrics(
            test,
            coupling_key=coupling_key,
            source=s,
            target=t,
            group_key=label_key,
            use_rep="X",
            label_key=eval_label_key or label_key,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            impute(test, coupling_key=coupling_key, source=s, target=t, key_added="_bench_imputed")
            im = imputation_metrics(test.mod[s].obsm["_bench_imputed"], test.mod[t])
            del test.mod[s].obsm["_bench_imputed"]
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
                extra = _space_reads(test, coupling_key, s, t, space)
                read.update({f"{k}@{space}": v for k, v in extra.items()})
        reads.append(read)
    return {k: _mean2(reads[0][k], reads[1].get(k, np.nan)) for k in reads[0]}


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
    from ..tl import foscttm, imputation_metrics

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


def _latent_metrics(emb: Mapping[str, np.ndarray], test: MuData, label_key: str) -> dict:
    from ..tl import foscttm, label_transfer_accuracy

    a, b = list(test.mod)
    za, zb = emb[a], emb[b]
    la = test.mod[a].obs[label_key].astype(str).to_numpy()
    lb = test.mod[b].obs[label_key].astype(str).to_numpy()
    transfer = (
        label_transfer_accuracy(za, la, zb, lb) + label_transfer_accuracy(zb, lb, za, la)
    ) / 2
    return {"foscttm": foscttm(za, zb), "label_transfer_latent": transfer}


def _label_transfer_vs_training(
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
    from ..train._monitor import LABEL_TRANSFER_REFERENCE, knn_label_transfer, sample_rows

    mods = list(test.mod)
    vocab = pd.Index(
        sorted(
            set().union(
                *(set(x.mod[m].obs[label_key].astype(str)) for x in (test, train) for m in mods)
            )
        )
    )

    def codes(adata) -> torch.Tensor:
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
    scores = {"heldout": [], "train": []}
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


def _replicate_embeddings(
    name: str,
    params: Mapping[str, Any],
    defaults: Mapping[str, Any],
    split: Any,
    label_key: str,
    seed: int,
) -> list[dict[str, np.ndarray]]:
    """Two refits of a learner on disjoint halves of the training cells, embedding the test."""
    from ..data import split_disjoint

    halves = split_disjoint(split.train, label_key, n_parts=2, seed=seed)
    out = []
    for k, half in enumerate(halves):
        learner = make_learner(name, params, defaults)
        learner.fit(half, label_key, seed + k + 1)
        out.append(learner.transform(split.test))
    return out


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    names = ("lightning", "lightning.pytorch", "lightning.fabric", "scvi", "pytorch_lightning")
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for n, level in old.items():
            logging.getLogger(n).setLevel(level)


def _rows(
    base: dict[str, Any],
    values: Mapping[str, float],
    metrics: list[str],
    seconds: float,
    status: str = "ok",
    error: str = "",
) -> list[dict[str, Any]]:
    return [
        {
            **base,
            "metric": m,
            "value": float(values.get(m, np.nan)),
            "seconds": float(seconds),
            "status": status,
            "error": error,
        }
        for m in metrics
    ]


def _error_text(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def _run_unit(
    learner: Learner,
    split: Any,
    cfg: Mapping[str, Any],
    dataset: Mapping[str, Any],
    base: dict[str, Any],
    seed: int,
    learner_params: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Fit one learner on one split and score it with every aligner."""
    from ..tl import align

    label_key, eval_key = dataset["label_key"], dataset["eval_label_key"]
    spaces = list(dataset["extra_eval_spaces"])
    extra = [f"{m}@{sp}" for sp in spaces for m in SPACE_METRICS]
    metrics = list(COUPLING_METRICS) + extra
    metrics += list(LATENT_METRICS) if learner.shared_space else []
    rows: list[dict[str, Any]] = []
    test = split.test
    try:
        start = time.perf_counter()
        learner.fit(split.train, label_key, seed)
        emb = learner.transform(test)
        emb_train = learner.transform(split.train) if learner.shared_space else {}
        fit_seconds = time.perf_counter() - start
        for m, z in emb.items():
            if not np.isfinite(z).all():
                raise FloatingPointError(f"embedding of {m!r} has non-finite values")
    except Exception as exc:  # a failed fit is recorded for each aligner, never fatal
        # a learner that does not apply to the data says why (not_applicable, not failed)
        na = isinstance(exc, LearnerNotApplicable)
        err = str(exc)[:500] if na else _error_text(exc)
        status = "not_applicable" if na else "failed"
        for aligner, p in cfg["aligners"].items():
            if p.get("learners") is None or base["learner"] in p["learners"]:
                rows += _rows({**base, "aligner": aligner}, {}, metrics, np.nan, status, err)
        return rows
    latent = {}
    if learner.shared_space:
        latent = _latent_metrics(emb, test, eval_key)
        if split.protocol == "heldout_cells":  # held-out labels have no training reference
            heldout, trained = _label_transfer_vs_training(
                emb, test, emb_train, split.train, eval_key, learner.training_obs_names, seed
            )
            latent.update(label_transfer_heldout=heldout, label_transfer_train=trained)
        else:
            metrics = [m for m in metrics if m not in TRAIN_REFERENCE_METRICS]
    latent.update(learner.fit_metrics)
    fit_metrics = [m for m in FIT_METRICS if m in learner.fit_metrics]
    metrics += fit_metrics
    for m, z in emb.items():
        test.mod[m].obsm[_REP] = z
    replicate_keys: list[str] = []
    replicate_error = ""
    aligners = {
        a: dict(p)
        for a, p in cfg["aligners"].items()
        if p.get("learners") is None or base["learner"] in p["learners"]
    }
    for p in aligners.values():
        p.pop("learners", None)
    wants_auto = any(p.get("method") == "auto" for p in aligners.values())
    if wants_auto and learner.shared_space:
        try:
            start = time.perf_counter()
            reps = _replicate_embeddings(
                base["learner"], learner_params, cfg["learner_defaults"], split, label_key, seed
            )
            replicate_seconds = time.perf_counter() - start
            for k, rep in enumerate(reps):
                key = f"{_REP}_rep{k}"
                for m, z in rep.items():
                    test.mod[m].obsm[key] = z
                replicate_keys.append(key)
        except Exception as exc:
            replicate_error = _error_text(exc)
    for aligner, params in aligners.items():
        params = dict(params)
        row_base = {**base, "aligner": aligner}
        method = params.get("method")
        if method == "decoder":
            dec_metrics = DECODER_METRICS + [m for m in metrics if m in LATENT_METRICS]
            if not learner.can_translate:
                rows += _rows(row_base, {}, dec_metrics, np.nan, "not_applicable")
                continue
            try:
                start = time.perf_counter()
                values = {**score_translation(test, learner), **latent}
                seconds = fit_seconds + time.perf_counter() - start
                rows += _rows(row_base, values, dec_metrics, seconds)
            except Exception as exc:
                rows += _rows(row_base, {}, dec_metrics, np.nan, "failed", _error_text(exc))
            continue
        if method in SHARED_SPACE_METHODS and not learner.shared_space and "use_rep" not in params:
            rows += _rows(row_base, {}, metrics, np.nan, "not_applicable")
            continue
        auto = method == "auto"
        row_metrics = metrics + (SELECTION_METRICS if auto else [])
        if auto and not learner.shared_space:
            rows += _rows(row_base, {}, row_metrics, np.nan, "not_applicable")
            continue
        if auto and replicate_error:
            rows += _rows(row_base, {}, row_metrics, np.nan, "failed", replicate_error)
            continue
        if auto:
            params["replicates"] = replicate_keys
        params.setdefault("use_rep", _REP)
        try:
            start = time.perf_counter()
            source, target = list(test.mod)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                align(
                    test,
                    source=source,
                    target=target,
                    group_key=label_key,
                    key_added=_KEY,
                    **params,
                )
            seconds = fit_seconds + time.perf_counter() - start
            if auto:
                seconds += replicate_seconds
            values = score_coupling(
                test, label_key=label_key, eval_label_key=eval_key, extra_eval_spaces=spaces
            )
            values.update(latent)
            if auto:
                values.update(_selection_values(test.uns[_KEY]["selection"]))
            rows += _rows(row_base, values, row_metrics, seconds)
        except Exception as exc:
            rows += _rows(row_base, {}, row_metrics, np.nan, "failed", _error_text(exc))
        finally:
            if _KEY in test.obsp:
                del test.obsp[_KEY]
            test.uns.pop(_KEY, None)
    for m in emb:
        for key in [_REP, *replicate_keys]:
            test.mod[m].obsm.pop(key, None)
    return rows


def _selection_values(selection: Mapping[str, Any]) -> dict[str, float]:
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


def run(
    config: str | Path | Mapping[str, Any],
    *,
    progress: bool = True,
    results_path: str | Path | None = None,
    resume: bool = False,
) -> pd.DataFrame:
    """Run the combinatorial benchmark and return the tidy results table.

    For each dataset, setting and seed the jointly measured data are loaded (or simulated,
    with the seed), split by each protocol (``heldout_cells``: one weakly paired split;
    ``heldout_labels``: k folds over the labels, the test fold's labels unseen in training);
    each learner is fitted on the weakly paired training cells and embeds the paired test
    cells; each aligner couples the test cells of the two modalities within labels on that
    embedding; the coupling is scored against the true pairs (:func:`score_coupling`) and the
    embedding by the latent FOSCTTM and 1-NN label transfer. A learner without a shared space
    (``pca``) is not combined with ``sinkhorn``/``emd``/``fgw`` (``status="not_applicable"``);
    a learner whose fit raises :class:`~groove_sc.benchmark._learners.LearnerNotApplicable`
    (``diagvi`` on data without feature links) gets ``not_applicable`` rows with the reason in
    ``error``.
    The pseudo-aligner ``{method: decoder}`` scores the imputation through the learner's
    decoders instead of a coupling (:func:`score_translation`; learners with decoders only).
    A fit or an alignment that raises is recorded (``status="failed"``, ``error``), never fatal.
    The same configuration and seeds give the same values (``seconds`` aside).

    Parameters
    ----------
    config
        A YAML file or a mapping, see :func:`load_config`.
    progress
        Show a progress bar over the (dataset, setting, seed, protocol, fold, learner) units.
    results_path
        Append each unit's rows to this CSV as soon as they are computed (a long run that is
        interrupted keeps what it did).
    resume
        With ``results_path``: skip the units already in that file and return old and new rows.

    Returns
    -------
    DataFrame with the columns :data:`RESULT_COLUMNS`: one row per dataset, setting, protocol,
    fold, learner, aligner, seed and metric. ``seconds`` is the learner's fit and embedding
    time plus the aligner's time for that cell; ``status`` is ``"ok"``, ``"failed"`` or
    ``"not_applicable"`` (value NaN) and ``error`` the error message of a failure.
    """
    from tqdm.auto import tqdm

    cfg = load_config(config)
    done: set[tuple] = set()
    old = None
    if results_path is not None:
        results_path = Path(results_path)
        results_path.parent.mkdir(parents=True, exist_ok=True)
        if resume and results_path.exists():
            old = pd.read_csv(results_path, keep_default_na=False, na_values=[""])
            old["setting"] = old["setting"].fillna("").astype(str)
            keys = ["dataset", "setting", "protocol", "fold", "seed", "learner"]
            done = set(old[keys].drop_duplicates().itertuples(index=False, name=None))
        elif results_path.exists():
            results_path.unlink()
    all_rows: list[dict[str, Any]] = []
    bar = tqdm(total=_count_units(cfg), disable=not progress, desc=cfg["name"], unit="fit")
    with _threads(cfg["n_threads"]), _quiet():
        for d in cfg["datasets"]:
            for setting, extra in d["settings"].items():
                for seed in cfg["seeds"]:
                    data_seed = seed if d["data_seed"] == "run" else int(d["data_seed"])
                    base0 = {"dataset": d["name"], "setting": setting, "seed": seed}
                    try:
                        mdata = load_dataset(
                            d["loader"],
                            label_key=d["label_key"],
                            params=d["params"],
                            setting=extra,
                            seed=data_seed,
                            subsample_per_label=d["subsample_per_label"],
                            log1p=d["log1p"],
                            modalities=d["modalities"],
                        )
                    except Exception as exc:
                        n = sum(_n_folds(cfg, d, p) for p in d["protocols"])
                        n *= len(cfg["learners"])
                        bar.update(n)
                        all_rows += _failed_dataset(cfg, d, base0, _error_text(exc), results_path)
                        continue
                    for protocol in d["protocols"]:
                        opts = _protocol_options(cfg, d, protocol)
                        try:
                            splits = list(
                                iter_splits(mdata, d["label_key"], protocol, seed=seed, **opts)
                            )
                        except Exception as exc:
                            bar.update(_n_folds(cfg, d, protocol) * len(cfg["learners"]))
                            rows = []
                            for learner in cfg["learners"]:
                                rows += _rows(
                                    {
                                        **base0,
                                        "protocol": protocol,
                                        "fold": 0,
                                        "learner": learner,
                                        "aligner": "",
                                    },
                                    {},
                                    ["split"],
                                    np.nan,
                                    "failed",
                                    _error_text(exc),
                                )
                            all_rows += _flush(rows, results_path)
                            continue
                        for split in splits:
                            for name, params in cfg["learners"].items():
                                key = (d["name"], setting, protocol, split.fold, seed, name)
                                bar.set_postfix_str(f"{d['name']} {setting} {protocol} {name}")
                                if key in done:
                                    bar.update(1)
                                    continue
                                learner = make_learner(name, params, cfg["learner_defaults"])
                                base = {
                                    **base0,
                                    "protocol": protocol,
                                    "fold": split.fold,
                                    "learner": name,
                                }
                                rows = _run_unit(learner, split, cfg, d, base, seed, params)
                                all_rows += _flush(rows, results_path)
                                bar.update(1)
    bar.close()
    out = pd.DataFrame(all_rows, columns=RESULT_COLUMNS)
    if old is not None:
        out = pd.concat([old[RESULT_COLUMNS], out], ignore_index=True)
    return out


def _flush(rows: list[dict[str, Any]], path: Path | None) -> list[dict[str, Any]]:
    if path is not None and rows:
        df = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        df.to_csv(path, mode="a", header=not path.exists(), index=False)
    return rows


def _failed_dataset(
    cfg: Mapping[str, Any], d: Mapping[str, Any], base0: dict, err: str, path: Path | None
) -> list[dict[str, Any]]:
    rows = []
    for protocol in d["protocols"]:
        for learner in cfg["learners"]:
            rows += _rows(
                {**base0, "protocol": protocol, "fold": 0, "learner": learner, "aligner": ""},
                {},
                ["load"],
                np.nan,
                "failed",
                err,
            )
    return _flush(rows, path)
