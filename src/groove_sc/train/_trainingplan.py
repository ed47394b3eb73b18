"""Training plan: GroupCLIP + reconstruction step, then a backtranslation step."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from scvi.train import TrainingPlan

from ..module import GrooveModule
from ..module._module import X_KEY
from ._monitor import LabelTransferMonitor


class GrooveTrainingPlan(TrainingPlan):
    """Manual-optimisation training plan of :class:`~groove_sc.module.GrooveModule`.

    Each training step makes two optimiser steps (Gorla et al. 2026):

    1. ``L1 = sum_m rec_m + beta * GroupCLIP`` (+ ``kl_weight * KL`` if variational);
    2. ``L2 = alpha * backtranslation`` (skipped when ``alpha == 0``).

    Logged per epoch (``model.history``): ``loss``, ``reconstruction_<modality>``,
    ``groupclip``, ``backtranslation`` and ``kl`` (variational only), each with the suffix
    ``_train`` or ``_validation``. With a ``label_transfer`` monitor, every validation epoch
    also logs ``label_transfer_validation`` and ``label_transfer_train``: the cross-modal
    k-NN label transfer of held-out cells and of a same-size sample of training cells
    (:class:`~groove_sc.train.LabelTransferMonitor`).

    With more than two modalities the same keys hold the totals (``groupclip``: the mean over
    the pairs of modalities with positives; ``backtranslation``: ``alpha`` times the sum over
    source modalities of the mean over their targets; ``label_transfer_*``: the mean over
    every ordered pair), and each pair has its own key: ``groupclip_<a>_<b>`` (pairs
    ``a < b`` in the model's modality order; 0 on a step where the pair has no positive),
    ``backtranslation_<source>_<target>`` (the unweighted reconstruction of the source cells
    translated into the target and back; with ``backtranslation_targets`` the mean over the
    training steps that drew the pair), each ``_train`` / ``_validation``, and
    ``label_transfer_<a>_<b>_validation`` / ``_train`` (both directions of the pair).

    Parameters
    ----------
    module
        The module to train.
    modality_names
        Names of the modalities, used in the logged keys.
    lr
        Learning rate of Adam.
    weight_decay
        Weight decay of Adam.
    eps
        Adam's epsilon.
    label_transfer
        Scores the cross-modal label transfer at the end of each validation epoch.
    **kwargs
        Passed to :class:`scvi.train.TrainingPlan`.
    """

    def __init__(
        self,
        module: GrooveModule,
        *,
        modality_names: Sequence[str] = ("mod0", "mod1"),
        lr: float = 1e-3,
        weight_decay: float = 1e-6,
        eps: float = 1e-8,
        label_transfer: LabelTransferMonitor | None = None,
        **kwargs,
    ):
        super().__init__(module, lr=lr, weight_decay=weight_decay, eps=eps, **kwargs)
        self.modality_names = list(modality_names)
        self.label_transfer = label_transfer
        self.automatic_optimization = False

    def on_fit_start(self) -> None:
        """Put the module in train mode (a second ``model.train()`` starts in eval mode)."""
        self.module.train()

    def _log_terms(
        self,
        step1,
        backtranslation: tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]] | None,
        batch,
        mode: str,
    ) -> None:
        n = int(sum(part[X_KEY].shape[0] for part in batch))
        extra = step1.extra_metrics
        names = self.modality_names
        bt_total = None if backtranslation is None else backtranslation[0]
        terms = {
            "loss": step1.loss.detach() + (bt_total.detach() if bt_total is not None else 0.0),
        }
        for m, name in enumerate(names):
            terms[f"reconstruction_{name}"] = extra[f"reconstruction_{m}"]
        terms["groupclip"] = extra["groupclip"]
        many = len(names) > 2
        if many:
            for a in range(len(names)):
                for b in range(a + 1, len(names)):
                    key = f"groupclip_{a}_{b}"
                    if key in extra:
                        terms[f"groupclip_{names[a]}_{names[b]}"] = extra[key]
        if bt_total is not None:
            terms["backtranslation"] = bt_total.detach()
            if many:
                for (s, t), value in backtranslation[1].items():
                    terms[f"backtranslation_{names[s]}_{names[t]}"] = value.detach()
        if "kl" in extra:
            terms["kl"] = extra["kl"]
        for key, value in terms.items():
            self.log(
                f"{key}_{mode}",
                value,
                on_step=False,
                on_epoch=True,
                batch_size=n,
                prog_bar=key == "loss",
                sync_dist=self.use_sync_dist,
            )

    def training_step(self, batch, batch_idx):
        """Two optimiser steps: reconstruction + GroupCLIP, then backtranslation."""
        opt = self.optimizers()
        step1 = self.module.loss(batch)
        opt.zero_grad()
        self.manual_backward(step1.loss)
        opt.step()
        backtranslation = None
        if self.module.alpha > 0:
            backtranslation = self.module.backtranslation(batch)
            opt.zero_grad()
            self.manual_backward(backtranslation[0])
            opt.step()
        self._log_terms(step1, backtranslation, batch, "train")

    def on_validation_epoch_end(self) -> None:
        """Log the cross-modal label transfer of validation and training cells."""
        if self.label_transfer is None or self.trainer.sanity_checking:
            return
        for name, value in self.label_transfer.score(self.module).items():
            self.log(
                f"label_transfer_{name}",
                value,
                on_step=False,
                on_epoch=True,
                sync_dist=self.use_sync_dist,
            )

    def validation_step(self, batch, batch_idx):
        """Evaluate every loss term on validation cells (no optimiser step)."""
        step1 = self.module.loss(batch)
        backtranslation = None
        if self.module.alpha > 0:
            backtranslation = self.module.backtranslation(batch, sample=False)
        self._log_terms(step1, backtranslation, batch, "validation")
