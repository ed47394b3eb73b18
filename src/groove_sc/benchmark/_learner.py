"""Representation learners of the benchmark behind one interface (fit, transform)."""

from __future__ import annotations

import logging
import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from mudata import MuData
from scipy import sparse

__all__ = [
    "LEARNERS",
    "AdversarialVAELearner",
    "GrooveLearner",
    "Learner",
    "LearnerNotApplicable",
    "PCALearner",
    "PropensityScoreLearner",
    "make_learner",
]


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


class _Standardiser:
    """Per-feature standardisation fitted on training cells (constant features kept at 0)."""

    def __init__(self, x: np.ndarray):
        self.mean = x.mean(axis=0)
        sd = x.std(axis=0)
        self.sd = np.where(sd > 1e-8, sd, 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.sd


class LearnerNotApplicable(Exception):
    """Raised by :meth:`Learner.fit` when the learner does not apply to the data.

    The benchmark records it as ``not_applicable`` rows whose ``error`` column holds the reason
    (e.g. DIAGVI on a dataset without feature links), never as a failure.
    """


class Learner(ABC):
    """A representation learner: fitted on weakly paired data, it embeds cells of each modality.

    Subclasses implement :meth:`_fit` and :meth:`_transform`. ``shared_space`` tells whether
    the two modalities are embedded into one space (needed by ``sinkhorn``, ``emd``, ``fgw``
    and by the latent metrics); ``pca`` has none.

    Parameters
    ----------
    name
        Name used in the results table.
    **params
        Learner options (see each subclass).
    """

    #: Whether both modalities are embedded into one shared space.
    shared_space: bool = True

    def __init__(self, name: str | None = None, **params: Any):
        self.name = name or type(self).__name__
        self.params = dict(params)
        self.modalities: list[str] = []
        self.fit_seconds: float = float("nan")
        #: ``obs_names`` of the cells the fit trained on, per modality (``None``: all of them)
        self.training_obs_names: dict[str, np.ndarray] | None = None
        #: scores the fit reports about itself (e.g. ``label_transfer_validation``)
        self.fit_metrics: dict[str, float] = {}

    def fit(self, train: MuData, label_key: str, seed: int = 0) -> Learner:
        """Fit on a weakly paired MuData (two modalities of different cells).

        Parameters
        ----------
        train
            Training data; it is not modified.
        label_key
            Label column of each modality's ``.obs``.
        seed
            Seed of every random choice of the fit.

        Returns
        -------
        ``self``.
        """
        if len(train.mod) != 2:
            raise ValueError(f"`train` must have exactly two modalities, got {list(train.mod)}.")
        self.modalities = list(train.mod)
        start = time.perf_counter()
        self._fit(train, label_key, seed)
        self.fit_seconds = time.perf_counter() - start
        return self

    def transform(self, mdata: MuData) -> dict[str, np.ndarray]:
        """Embed every cell of each modality of ``mdata``.

        Returns
        -------
        ``{modality: array (n_cells, d_m)}``; ``d_m`` is the same for both modalities when
        :attr:`shared_space`.
        """
        if not self.modalities:
            raise RuntimeError(f"Learner {self.name!r} is not fitted; call fit() first.")
        return {m: np.asarray(z, dtype=np.float32) for m, z in self._transform(mdata).items()}

    #: Whether the learner has decoders (:meth:`translate`), used by the ``decoder`` aligner.
    can_translate: bool = False

    def translate(self, mdata: MuData, source: str, target: str) -> np.ndarray:
        """Predict each ``source`` cell's profile in ``target`` through the decoders.

        Only for learners with decoders (:attr:`can_translate`); the prediction is in the
        target's feature space (``.X`` units).

        Returns
        -------
        Array ``(n_source_cells, n_target_features)``.
        """
        raise NotImplementedError(f"learner {self.name!r} has no decoders to translate with.")

    @abstractmethod
    def _fit(self, train: MuData, label_key: str, seed: int) -> None: ...

    @abstractmethod
    def _transform(self, mdata: MuData) -> dict[str, np.ndarray]: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, params={self.params})"


# --------------------------------------------------------------------------------------------
def _epochs_for_steps(train: MuData, batch_size: int, n_steps: int) -> int:
    n_max = max(train.mod[m].n_obs for m in train.mod)
    steps_per_epoch = max(1, math.ceil(n_max / batch_size))
    return max(1, round(n_steps / steps_per_epoch))


class GrooveLearner(Learner):
    """GROOVE (and its ablations) as a benchmark learner.

    Parameters
    ----------
    name
        Name in the results table.
    max_epochs
        Training epochs (ignored when ``n_steps`` is given); ``None``: the model's default
        (at most, with early stopping).
    n_steps
        Training steps; converted to epochs of ``ceil(max(n_a, n_b) / batch_size)`` steps, so
        that datasets of different sizes get the same number of updates.
    batch_size, cells_per_label, lr
        Passed to :meth:`groove_sc.model.GROOVE.train`.
    validation_size, early_stopping, early_stopping_monitor, early_stopping_patience
        Passed to :meth:`groove_sc.model.GROOVE.train`; the defaults are the model's
        (validation cells held out of the fit, early stopping on
        ``groupclip_validation``). With validation cells, the final
        ``label_transfer_validation`` is reported as a metric of the fit.
    accelerator
        Lightning accelerator (default ``"cpu"``).
    **model_kwargs
        Passed to :class:`groove_sc.model.GROOVE` (``beta``, ``alpha``, ``tau``, ``n_latent``,
        ``groupclip``, ``contrastive``, ``likelihood``, ...).
    """

    def __init__(
        self,
        name: str | None = "groove",
        *,
        max_epochs: int | None = None,
        n_steps: int | None = None,
        batch_size: int = 128,
        cells_per_label: int = 8,
        lr: float = 1e-3,
        validation_size: float | None = None,
        early_stopping: bool | None = None,
        early_stopping_monitor: str | None = None,
        early_stopping_patience: int = 20,
        accelerator: str = "cpu",
        **model_kwargs: Any,
    ):
        super().__init__(
            name,
            max_epochs=max_epochs,
            n_steps=n_steps,
            batch_size=batch_size,
            cells_per_label=cells_per_label,
            lr=lr,
            validation_size=validation_size,
            early_stopping=early_stopping,
            early_stopping_monitor=early_stopping_monitor,
            early_stopping_patience=early_stopping_patience,
            accelerator=accelerator,
            **model_kwargs,
        )
        self.model_kwargs = model_kwargs
        self.model = None

    def _fit(self, train: MuData, label_key: str, seed: int) -> None:
        from ..model import GROOVE

        p = self.params
        data = train.copy()
        epochs = p["max_epochs"]
        if p["n_steps"] is not None:
            epochs = _epochs_for_steps(data, p["batch_size"], int(p["n_steps"]))
        validates = p["validation_size"] is None or p["validation_size"] > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GROOVE.setup_mudata(data, perturbation_key=label_key)
            self.model = GROOVE(data, seed=seed, **self.model_kwargs)
            self.model.train(
                max_epochs=None if epochs is None else int(epochs),
                batch_size=p["batch_size"],
                cells_per_label=p["cells_per_label"],
                lr=p["lr"],
                validation_size=p["validation_size"],
                check_val_every_n_epoch=1 if validates else None,
                early_stopping=p["early_stopping"],
                early_stopping_monitor=p["early_stopping_monitor"],
                early_stopping_patience=p["early_stopping_patience"],
                accelerator=p["accelerator"],
                devices=1,
                seed=seed,
                enable_progress_bar=False,
                enable_model_summary=False,
                logger=None if validates else False,
                enable_checkpointing=False,
            )
        self.training_obs_names = dict(self.model.training_obs_names_)
        history = self.model.history or {}
        if "label_transfer_validation" in history:
            values = history["label_transfer_validation"].to_numpy(dtype=float).ravel()
            self.fit_metrics = {"label_transfer_validation": float(values[-1])}

    can_translate = True

    def _transform(self, mdata: MuData) -> dict[str, np.ndarray]:
        return self.model.get_latent_representation(mdata)

    def translate(self, mdata: MuData, source: str, target: str) -> np.ndarray:
        """``D_target(E_source(x))`` with :meth:`groove_sc.model.GROOVE.translate`."""
        return np.asarray(self.model.translate(mdata, source=source, target=target).X)


# --------------------------------------------------------------------------------------------
class AdversarialVAELearner(Learner):
    """A VAE per modality with an adversarial modality classifier (MultiVI-like, no labels).

    Inputs are the features standardised per modality on the training cells. See
    :class:`~groove_sc.benchmark._vae.AdversarialVAE`.

    Parameters
    ----------
    name
        Name in the results table.
    n_latent, n_hidden, n_layers, dropout_rate
        Architecture.
    max_epochs, n_steps, batch_size
        Training length: ``n_steps`` steps, or ``max_epochs`` epochs of
        ``ceil(max(n_a, n_b) / batch_size)`` steps.
    lr, kl_weight, adversarial_weight
        Optimisation and loss weights.
    """

    def __init__(
        self,
        name: str | None = "vae_adversarial",
        *,
        n_latent: int = 16,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        max_epochs: int = 100,
        n_steps: int | None = None,
        batch_size: int = 128,
        lr: float = 1e-3,
        kl_weight: float = 1.0,
        adversarial_weight: float = 1.0,
    ):
        super().__init__(
            name,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            max_epochs=max_epochs,
            n_steps=n_steps,
            batch_size=batch_size,
            lr=lr,
            kl_weight=kl_weight,
            adversarial_weight=adversarial_weight,
        )

    def _fit(self, train: MuData, label_key: str, seed: int) -> None:
        from ._vae import AdversarialVAE, train_adversarial_vae

        p = self.params
        xs = [_dense(train.mod[m].X) for m in self.modalities]
        self.scalers = [_Standardiser(x) for x in xs]
        n_steps = p["n_steps"]
        if n_steps is None:
            n_max = max(len(x) for x in xs)
            n_steps = p["max_epochs"] * max(1, math.ceil(n_max / p["batch_size"]))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.module = AdversarialVAE(
                [x.shape[1] for x in xs],
                n_latent=p["n_latent"],
                n_hidden=p["n_hidden"],
                n_layers=p["n_layers"],
                dropout_rate=p["dropout_rate"],
            )
        self.history = train_adversarial_vae(
            self.module,
            [s(x) for s, x in zip(self.scalers, xs)],
            n_steps=int(n_steps),
            batch_size=p["batch_size"],
            lr=p["lr"],
            kl_weight=p["kl_weight"],
            adversarial_weight=p["adversarial_weight"],
            seed=seed,
        )

    @torch.inference_mode()
    def _transform(self, mdata: MuData) -> dict[str, np.ndarray]:
        self.module.eval()
        out = {}
        for i, m in enumerate(self.modalities):
            x = torch.as_tensor(self.scalers[i](_dense(mdata.mod[m].X)), dtype=torch.float32)
            out[m] = self.module.encode(x, i)[0].numpy()  # posterior mean
        return out

    can_translate = True

    @torch.inference_mode()
    def translate(self, mdata: MuData, source: str, target: str) -> np.ndarray:
        """Decode the posterior mean of each source cell with the target's decoder."""
        s, t = self.modalities.index(source), self.modalities.index(target)
        self.module.eval()
        x = torch.as_tensor(self.scalers[s](_dense(mdata.mod[source].X)), dtype=torch.float32)
        y = self.module.decoders[t](self.module.encode(x, s)[0]).numpy()
        return y * self.scalers[t].sd + self.scalers[t].mean


# --------------------------------------------------------------------------------------------
class PropensityScoreLearner(Learner):
    """Propensity scores (Xi et al. 2024): predicted label probabilities as the shared space.

    One multinomial logistic regression per modality predicts the label from the standardised
    features (reduced to ``n_pcs`` principal components first when there are more features);
    each cell's vector of predicted probabilities over the labels (the union of both
    modalities' training labels, zero for a label the modality never saw) is its embedding.

    Parameters
    ----------
    name
        Name in the results table.
    C
        Inverse L2 regularisation strength of :class:`sklearn.linear_model.LogisticRegression`.
    n_pcs
        Principal components used as classifier input when a modality has more features.
    max_iter
        Iterations of the solver.
    """

    def __init__(
        self,
        name: str | None = "propensity_score",
        *,
        C: float = 1.0,
        n_pcs: int = 50,
        max_iter: int = 500,
    ):
        super().__init__(name, C=C, n_pcs=n_pcs, max_iter=max_iter)

    def _fit(self, train: MuData, label_key: str, seed: int) -> None:
        from sklearn.linear_model import LogisticRegression

        labels = [train.mod[m].obs[label_key].astype(str).to_numpy() for m in self.modalities]
        self.classes = np.unique(np.concatenate(labels))
        self.scalers, self.pcas, self.models = [], [], []
        for m, y in zip(self.modalities, labels):
            x = _dense(train.mod[m].X)
            scaler = _Standardiser(x)
            x = scaler(x)
            pca = _PCA(self.params["n_pcs"]).fit(x) if x.shape[1] > self.params["n_pcs"] else None
            if pca is not None:
                x = pca.transform(x)
            clf = LogisticRegression(
                C=self.params["C"], max_iter=self.params["max_iter"], random_state=seed
            )
            if len(np.unique(y)) < 2:
                raise ValueError(f"modality {m!r} has fewer than two training labels.")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(x, y)
            self.scalers.append(scaler)
            self.pcas.append(pca)
            self.models.append(clf)

    def _transform(self, mdata: MuData) -> dict[str, np.ndarray]:
        out = {}
        for i, m in enumerate(self.modalities):
            x = self.scalers[i](_dense(mdata.mod[m].X))
            if self.pcas[i] is not None:
                x = self.pcas[i].transform(x)
            prob = self.models[i].predict_proba(x)
            full = np.zeros((len(x), len(self.classes)))
            full[:, np.searchsorted(self.classes, self.models[i].classes_)] = prob
            out[m] = full
        return out


# --------------------------------------------------------------------------------------------
class _PCA:
    """Deterministic PCA by SVD (signs fixed by the largest loading of each component)."""

    def __init__(self, n_comps: int):
        self.n_comps = int(n_comps)

    def fit(self, x: np.ndarray) -> _PCA:
        self.mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        k = min(self.n_comps, vt.shape[0])
        vt = vt[:k]
        signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
        self.components = vt * np.where(signs == 0, 1.0, signs)[:, None]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.components.T


class PCALearner(Learner):
    """PCA per modality (standardised features), fitted on each modality's training cells.

    There is no shared space (``shared_space = False``): only aligners that compare
    intra-modality geometry (GW, COOT, uniform) use it.

    Parameters
    ----------
    name
        Name in the results table.
    n_comps
        Components per modality (at most the number of features).
    """

    shared_space = False

    def __init__(self, name: str | None = "pca", *, n_comps: int = 16):
        super().__init__(name, n_comps=n_comps)

    def _fit(self, train: MuData, label_key: str, seed: int) -> None:
        self.scalers, self.pcas = [], []
        for m in self.modalities:
            x = _dense(train.mod[m].X)
            scaler = _Standardiser(x)
            self.scalers.append(scaler)
            self.pcas.append(_PCA(min(self.params["n_comps"], x.shape[1])).fit(scaler(x)))

    def _transform(self, mdata: MuData) -> dict[str, np.ndarray]:
        return {
            m: self.pcas[i].transform(self.scalers[i](_dense(mdata.mod[m].X)))
            for i, m in enumerate(self.modalities)
        }


# --------------------------------------------------------------------------------------------
def _groove(**defaults: Any) -> Callable[..., Learner]:
    def build(name: str, **params: Any) -> Learner:
        return GrooveLearner(name, **{**defaults, **params})

    return build


#: Learner kinds: name -> factory ``f(name, **params) -> Learner``.
LEARNERS: dict[str, Callable[..., Learner]] = {
    "groove": _groove(),
    "groove_no_groupclip": _groove(beta=0.0),
    "groove_no_backtranslation": _groove(alpha=0.0),
    "autoencoder": _groove(beta=0.0, alpha=0.0),
    "clip_random_pairs": _groove(contrastive="random_pairs", alpha=0.0),
    "vae_adversarial": lambda name, **p: AdversarialVAELearner(name, **p),
    "propensity_score": lambda name, **p: PropensityScoreLearner(name, **p),
    "pca": lambda name, **p: PCALearner(name, **p),
    # "diagvi" is registered by groove_sc.benchmark._diagvi (imported by the package)
}

# parameters that only some learner kinds accept
_GROOVE_ONLY = {"beta", "alpha", "tau", "groupclip", "contrastive", "likelihood", "variational"}
_GROOVE_ONLY |= {"kl_weight", "projection_head", "cells_per_label", "accelerator"}
_GROOVE_ONLY |= {"validation_size", "early_stopping", "early_stopping_monitor"}
_GROOVE_ONLY |= {"early_stopping_patience", "input_dropout"}
_TRAINED = {"max_epochs", "n_steps", "batch_size", "lr", "n_latent", "n_hidden", "n_layers"}
_TRAINED |= {"dropout_rate"}
# GROOVE options that the diagvi kind also takes
_DIAGVI_TAKES = {"accelerator", "validation_size", "early_stopping", "early_stopping_patience"}


def make_learner(
    name: str, params: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None
) -> Learner:
    """Build a learner from its name (or ``params["kind"]``) and options.

    Parameters
    ----------
    name
        Name in the results table; also the kind (a key of :data:`LEARNERS`) unless
        ``params`` has ``kind``.
    params
        Options of this learner (override ``defaults``).
    defaults
        Options shared by all learners (e.g. ``max_epochs``); those a kind does not accept are
        dropped (``pca`` ignores ``max_epochs``, only GROOVE kinds take ``tau``).

    Returns
    -------
    The (unfitted) learner.
    """
    params = dict(params or {})
    kind = params.pop("kind", name)
    if kind not in LEARNERS:
        raise KeyError(f"Unknown learner kind {kind!r}; known: {sorted(LEARNERS)}.")
    merged = dict(defaults or {})
    if kind in ("pca", "propensity_score"):
        merged = {k: v for k, v in merged.items() if k not in _GROOVE_ONLY | _TRAINED}
        if kind == "pca" and "n_latent" in (defaults or {}):
            merged.setdefault("n_comps", defaults["n_latent"])
    elif kind == "vae_adversarial":
        merged = {k: v for k, v in merged.items() if k not in _GROOVE_ONLY}
    elif kind == "diagvi":
        merged = {k: v for k, v in merged.items() if k not in _GROOVE_ONLY - _DIAGVI_TAKES}
    merged.update(params)
    return LEARNERS[kind](name, **merged)


def _quiet_lightning() -> None:
    for logger in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi"):
        logging.getLogger(logger).setLevel(logging.ERROR)
