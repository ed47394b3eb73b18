"""GROOVE and its ablations as benchmark learners."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from mudata import MuData

from ..model import GROOVE
from ._learner import Learner, options, register_learner

__all__ = ["GrooveLearner"]


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
    extra_modalities
        Also train on the dataset's ``extra_modalities`` (a dataset option: modalities kept
        for training only, never scored); the model then has three or more modalities and
        embeds the scored pair's test cells as before.
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
        extra_modalities: bool = False,
        **model_kwargs: Any,
    ):
        arguments = options(locals())
        self.model_kwargs = arguments.pop("model_kwargs")
        super().__init__(name, **arguments, **self.model_kwargs)
        self.model = None

    multimodal = True

    def _fit(self, train: MuData, label_key: str, seed: int) -> None:
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


def _groove(**defaults: Any) -> Callable[..., Learner]:
    def build(name: str, **params: Any) -> Learner:
        return GrooveLearner(name, **{**defaults, **params})

    return build


register_learner("groove", _groove())
register_learner("groove_no_groupclip", _groove(beta=0.0))
register_learner("groove_no_backtranslation", _groove(alpha=0.0))
register_learner("autoencoder", _groove(beta=0.0, alpha=0.0))
register_learner("clip_random_pairs", _groove(contrastive="random_pairs", alpha=0.0))
