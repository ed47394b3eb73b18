"""The GROOVE module: one encoder/decoder per modality into one latent space (pure torch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from scvi.distributions import NegativeBinomial
from scvi.module.base import BaseModuleClass, LossOutput
from torch import nn

from ..nn import GrooveDecoder, GrooveEncoder, ProjectionHead
from ._groupclip import multimodal_group_clip_loss

Likelihood = Literal["gaussian", "nb"]

#: keys of one modality's part of a training batch
X_KEY = "X"
LABELS_KEY = "labels"
BATCH_KEY = "batch"


def _sum(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """``values[0] + values[1] + ...`` in that order (the float order of the two-modality code)."""
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def _safe_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean that is 0, not NaN, for an empty batch (a step of labels one modality lacks)."""
    return values.sum() / max(values.numel(), 1)


class GrooveModule(BaseModuleClass):
    """Autoencoders sharing one latent space, trained with GroupCLIP and backtranslation.

    One encoder and decoder per modality (two or more). A training batch is a sequence of one
    dictionary per modality, each holding ``"X"`` (cells x features), ``"labels"`` (integer
    codes of one shared vocabulary) and optionally ``"batch"`` (integer batch codes). The
    modalities hold different cells.

    With more than two modalities GroupCLIP is the mean over the pairs of modalities that
    have positives (:func:`~groove_sc.module.multimodal_group_clip_loss`) and backtranslation
    runs through every ordered pair (see :meth:`backtranslation`); with two modalities both
    are exactly the two-modality losses.

    Features of a Gaussian modality are standardised internally with ``feature_mean`` and
    ``feature_std`` (so that modalities and features on different scales weigh the same);
    reconstruction is the mean squared error of the standardised features. A negative binomial
    modality is encoded from ``log1p`` counts and reconstructed with the NB negative
    log-likelihood averaged over features, with the cell's observed library size.

    Parameters
    ----------
    n_input
        Number of features of each modality (two or more).
    n_latent
        Dimension of the shared latent space.
    n_hidden
        Width of the hidden layers.
    n_layers
        Number of hidden layers of each encoder and decoder.
    dropout_rate
        Dropout in the hidden layers.
    input_dropout
        Probability of zeroing each (normalised) input feature of the encoders in training
        mode (see :class:`~groove_sc.nn.GrooveEncoder`).
    likelihood
        Likelihood of each modality, ``"gaussian"`` or ``"nb"`` (default: all Gaussian).
    n_batch
        Number of batch categories of each modality (0 or 1 means no batch covariate;
        default: none).
    variational
        Variational encoders with a KL term of weight ``kl_weight`` towards N(0, I).
    kl_weight
        Weight of the KL term when ``variational``.
    beta
        Weight of the GroupCLIP term (0 disables it).
    tau
        GroupCLIP temperature.
    alpha
        Weight of the backtranslation term (0 disables it).
    groupclip
        GroupCLIP variant, ``"in"`` or ``"out"`` (see :func:`~groove_sc.module.group_clip_loss`).
    contrastive
        ``"groupclip"`` (default): positives are all cells of the other modality with the same
        label. ``"random_pairs"``: the CLIP baseline on random within-label pairs: each step
        pairs the cells of each label 1:1 at random
        (:func:`~groove_sc.module.random_pair_labels`) and only the pseudo-partner is a
        positive. Redrawn every step, so over many steps its expectation is the ``"out"``
        variant's; each step is a plain CLIP loss with one positive per anchor.
    projection_head
        Apply a small MLP to the latent before GroupCLIP.
    feature_mean, feature_std
        Per-modality feature means and standard deviations used to standardise Gaussian
        modalities (``None``: no standardisation).
    library_size
        Per-modality typical library size used when a negative binomial modality is decoded
        from another modality (translation and backtranslation pseudo-samples).
    backtranslation_targets
        With three or more modalities: the number of target modalities each source modality is
        backtranslated through per training step, drawn at random (without replacement, from
        the global torch generator) every step; ``None`` (default): every other modality, all
        ordered pairs. Fewer targets make an epoch cheaper, with the same loss in expectation
        (see :meth:`backtranslation`). Validation always uses every pair.
    """

    def __init__(
        self,
        n_input: Sequence[int],
        *,
        n_latent: int = 16,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        input_dropout: float = 0.2,
        likelihood: Sequence[Likelihood] | None = None,
        n_batch: Sequence[int] | None = None,
        variational: bool = False,
        kl_weight: float = 1e-3,
        beta: float = 0.3,
        tau: float = 0.5,
        alpha: float = 0.3,
        groupclip: Literal["in", "out"] = "in",
        contrastive: Literal["groupclip", "random_pairs"] = "groupclip",
        projection_head: bool = False,
        feature_mean: Sequence[Sequence[float] | None] | None = None,
        feature_std: Sequence[Sequence[float] | None] | None = None,
        library_size: Sequence[float] | None = None,
        backtranslation_targets: int | None = None,
    ):
        super().__init__()
        if len(n_input) < 2:
            raise ValueError(f"GROOVE needs at least two modalities, got {len(n_input)}.")
        n_mod = len(n_input)
        likelihood = ["gaussian"] * n_mod if likelihood is None else list(likelihood)
        n_batch = [0] * n_mod if n_batch is None else list(n_batch)
        for name, value in (("likelihood", likelihood), ("n_batch", n_batch)):
            if len(value) != n_mod:
                raise ValueError(
                    f"`{name}` must hold one entry per modality ({n_mod}), got {len(value)}."
                )
        for lk in likelihood:
            if lk not in ("gaussian", "nb"):
                raise ValueError(f"`likelihood` must be 'gaussian' or 'nb', got {lk!r}.")
        if groupclip not in ("in", "out"):
            raise ValueError(f"`groupclip` must be 'in' or 'out', got {groupclip!r}.")
        if contrastive not in ("groupclip", "random_pairs"):
            raise ValueError(
                f"`contrastive` must be 'groupclip' or 'random_pairs', got {contrastive!r}."
            )
        if tau <= 0:
            raise ValueError(f"`tau` must be > 0, got {tau}.")
        if not 0 <= input_dropout < 1:
            raise ValueError(f"`input_dropout` must be in [0, 1), got {input_dropout!r}.")
        if beta < 0 or alpha < 0:
            raise ValueError(f"`beta` and `alpha` must be >= 0, got beta={beta}, alpha={alpha}.")
        if backtranslation_targets is not None and (
            isinstance(backtranslation_targets, bool)
            or not isinstance(backtranslation_targets, int)
            or not 1 <= backtranslation_targets <= n_mod - 1
        ):
            raise ValueError(
                f"`backtranslation_targets` must be None or an integer in [1, {n_mod - 1}] "
                f"(the other modalities), got {backtranslation_targets!r}."
            )
        self.n_input = list(map(int, n_input))
        self.n_modalities = n_mod
        self.backtranslation_targets = backtranslation_targets
        self.n_latent = n_latent
        self.likelihood = list(likelihood)
        self.n_batch = [int(b) for b in n_batch]
        self.variational = variational
        self.kl_weight = kl_weight
        self.beta = beta
        self.tau = tau
        self.alpha = alpha
        self.groupclip = groupclip
        self.contrastive = contrastive

        self.encoders = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for m in range(n_mod):
            cats = [self.n_batch[m]] if self.n_batch[m] > 1 else []
            self.encoders.append(
                GrooveEncoder(
                    self.n_input[m],
                    n_latent,
                    n_hidden,
                    n_layers,
                    dropout_rate,
                    cats,
                    variational,
                    input_dropout=input_dropout,
                )
            )
            self.decoders.append(
                GrooveDecoder(
                    n_latent,
                    self.n_input[m],
                    n_hidden,
                    n_layers,
                    dropout_rate,
                    cats,
                    self.likelihood[m],
                )
            )
        self.projection = ProjectionHead(n_latent, n_hidden) if projection_head else None

        for m in range(n_mod):
            mean = feature_mean[m] if feature_mean is not None else None
            std = feature_std[m] if feature_std is not None else None
            mean_t = torch.zeros(self.n_input[m]) if mean is None else torch.as_tensor(mean)
            std_t = torch.ones(self.n_input[m]) if std is None else torch.as_tensor(std)
            self.register_buffer(f"feature_mean_{m}", mean_t.float().reshape(-1))
            self.register_buffer(f"feature_std_{m}", std_t.float().reshape(-1).clamp(min=1e-6))
            lib = 1e4 if library_size is None else float(library_size[m])
            self.register_buffer(f"library_size_{m}", torch.tensor(lib, dtype=torch.float32))

    # ------------------------------------------------------------------ building blocks
    def _cats(self, m: int, batch_index: torch.Tensor | None, n: int, device) -> list[torch.Tensor]:
        if self.n_batch[m] <= 1:
            return []
        if batch_index is None:
            batch_index = torch.zeros(n, 1, dtype=torch.long, device=device)
        return [batch_index.reshape(-1, 1).long()]

    def normalise(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Encoder input of modality ``m``: standardised features or ``log1p`` counts."""
        if self.likelihood[m] == "nb":
            return torch.log1p(x)
        return (x - getattr(self, f"feature_mean_{m}")) / getattr(self, f"feature_std_{m}")

    def encode(
        self, x: torch.Tensor, m: int, batch_index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Encode data-space ``x`` of modality ``m``; returns ``(z, mean, var)``."""
        cats = self._cats(m, batch_index, x.shape[0], x.device)
        return self.encoders[m](self.normalise(x, m), *cats)

    def decode_raw(
        self, z: torch.Tensor, m: int, batch_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decoder output: standardised means (Gaussian) or proportions (NB)."""
        return self.decoders[m](z, *self._cats(m, batch_index, z.shape[0], z.device))

    def decode(
        self,
        z: torch.Tensor,
        m: int,
        batch_index: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode ``z`` into the data space of modality ``m`` (feature means)."""
        raw = self.decode_raw(z, m, batch_index)
        if self.likelihood[m] == "nb":
            if library is None:
                library = getattr(self, f"library_size_{m}")
            return raw * library.reshape(-1, 1) if library.dim() else raw * library
        return raw * getattr(self, f"feature_std_{m}") + getattr(self, f"feature_mean_{m}")

    def reconstruction_loss(
        self,
        z: torch.Tensor,
        x: torch.Tensor,
        m: int,
        batch_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-cell reconstruction loss of data-space ``x`` (modality ``m``) from ``z``."""
        raw = self.decode_raw(z, m, batch_index)
        if self.likelihood[m] == "nb":
            library = x.sum(dim=-1, keepdim=True).clamp(min=1.0)
            theta = torch.exp(self.decoders[m].log_theta).clamp(min=1e-4, max=1e6)
            nll = -NegativeBinomial(mu=raw * library + 1e-8, theta=theta).log_prob(x)
            return nll.mean(dim=-1)
        return ((self.normalise(x, m) - raw) ** 2).mean(dim=-1)

    def contrastive_embedding(self, z: torch.Tensor) -> torch.Tensor:
        """Embedding fed to GroupCLIP (the latent, or its projection)."""
        return z if self.projection is None else self.projection(z)

    # ------------------------------------------------------------------ scvi interface
    def _get_inference_input(self, tensors: dict[str, torch.Tensor], modality: int = 0):
        return {
            "x": tensors[X_KEY],
            "modality": modality,
            "batch_index": tensors.get(BATCH_KEY),
        }

    def _get_generative_input(self, tensors, inference_outputs, modality: int = 0):
        return {"z": inference_outputs["z"], "modality": modality}

    def inference(
        self, x: torch.Tensor, modality: int, batch_index: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor | None]:
        """Encode one modality: ``{"z", "qz_mean", "qz_var"}``."""
        z, mean, var = self.encode(x, modality, batch_index)
        return {"z": z, "qz_mean": mean, "qz_var": var}

    def generative(
        self,
        z: torch.Tensor,
        modality: int,
        batch_index: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Decode into modality ``modality``: ``{"px_mean"}`` in data space."""
        return {"px_mean": self.decode(z, modality, batch_index, library)}

    def _kl(self, mean: torch.Tensor, var: torch.Tensor | None) -> torch.Tensor:
        if var is None:
            return torch.zeros(mean.shape[0], device=mean.device)
        return 0.5 * (var + mean**2 - 1.0 - torch.log(var)).sum(dim=-1)

    def loss(self, batch: Sequence[dict[str, torch.Tensor]]) -> LossOutput:
        """Step 1 of a training step: reconstruction of each modality plus beta * GroupCLIP.

        ``extra_metrics`` holds each term: ``reconstruction_<m>`` for each modality index
        ``m``, ``groupclip`` and (variational only) ``kl``; with more than two modalities also
        ``groupclip_<a>_<b>``, the GroupCLIP loss of each pair of modality indices ``a < b``
        (``groupclip`` is their mean over the pairs with positives).
        """
        batch = list(batch)
        if len(batch) != self.n_modalities:
            raise ValueError(
                f"The batch holds {len(batch)} modalities, the module {self.n_modalities}."
            )
        recs, kls, zs = [], [], []
        for m in range(self.n_modalities):
            x = batch[m][X_KEY]
            b = batch[m].get(BATCH_KEY)
            z, mean, var = self.encode(x, m, b)
            recs.append(_safe_mean(self.reconstruction_loss(z, x, m, b)))
            kls.append(_safe_mean(self._kl(mean, var)))
            zs.append(mean)
        pair_clip: dict[tuple[int, int], torch.Tensor] = {}
        if self.beta > 0:
            clip, pair_clip = multimodal_group_clip_loss(
                [self.contrastive_embedding(z) for z in zs],
                [part[LABELS_KEY] for part in batch],
                tau=self.tau,
                variant=self.groupclip,
                random_pairs=self.contrastive == "random_pairs",
            )
        else:
            clip = torch.zeros((), device=zs[0].device)
        rec, kl = _sum(recs), _sum(kls)
        total = rec + self.beta * clip
        if self.variational:
            total = total + self.kl_weight * kl
        extra = {f"reconstruction_{m}": r.detach() for m, r in enumerate(recs)}
        extra["groupclip"] = clip.detach()
        if self.n_modalities > 2:
            for a in range(self.n_modalities):
                for b in range(a + 1, self.n_modalities):
                    term = pair_clip.get((a, b))
                    extra[f"groupclip_{a}_{b}"] = (
                        term.detach() if term is not None else torch.zeros_like(extra["groupclip"])
                    )
        if self.variational:
            extra["kl"] = kl.detach()
        return LossOutput(
            loss=total,
            reconstruction_loss=rec.detach(),
            extra_metrics=extra,
            n_obs_minibatch=int(sum(part[X_KEY].shape[0] for part in batch)),
        )

    def _backtranslation_pairs(self, sample: bool) -> list[tuple[int, int]]:
        """Ordered ``(source, target)`` pairs of one step, grouped by source."""
        n_mod, k = self.n_modalities, self.backtranslation_targets
        if not sample or k is None or k >= n_mod - 1:
            return [(m, t) for m in range(n_mod) for t in range(n_mod) if t != m]
        pairs = []
        for m in range(n_mod):
            others = [t for t in range(n_mod) if t != m]
            picked = torch.randperm(len(others))[:k].sort().values.tolist()
            pairs += [(m, others[i]) for i in picked]
        return pairs

    def backtranslation(
        self, batch: Sequence[dict[str, torch.Tensor]], *, sample: bool = True
    ) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]]:
        r"""Step 2 of a training step: the backtranslation loss and its term per ordered pair.

        For every ordered pair of modalities ``(s, t)``, pseudo-samples
        :math:`\tilde x^{s \to t} = D_t(E_s(x_s))` are made in eval mode without gradients
        (the previous mode is restored afterwards); the term of the pair is
        :math:`r_{st} = \mathrm{rec}(D_s(E_t(\tilde x^{s \to t})), x_s)`. The loss is

        .. math::

            L_2 = \alpha \sum_s \frac{1}{M - 1} \sum_{t \ne s} r_{st}

        (one term per source modality, as the reconstruction has one per modality), which
        with two modalities is :math:`\alpha\,[r_{AB} + r_{BA}]`, the loss of Gorla et al.
        2026. Its cost grows with the :math:`M (M - 1)` ordered pairs (measured in
        ``benchmarks/three_modalities_epoch_cost.py``). With ``backtranslation_targets = k``
        (and ``sample=True``) each source uses ``k`` targets drawn at random per step, and
        the inner mean runs over those: an unbiased estimate of :math:`L_2` at about
        :math:`k / (M - 1)` of its cost. With two modalities nothing is drawn.

        Parameters
        ----------
        batch
            One dict per modality.
        sample
            Draw the targets when ``backtranslation_targets`` is set (training); ``False``:
            every pair (validation).

        Returns
        -------
        ``(alpha * L, {(s, t): r_st})`` (the terms unweighted, for the pairs used).
        """
        batch = list(batch)
        n_mod = self.n_modalities
        pairs = self._backtranslation_pairs(sample)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                pseudo: dict[tuple[int, int], torch.Tensor] = {}
                for m in range(n_mod):
                    x = batch[m][X_KEY]
                    _, mean, _ = self.encode(x, m, batch[m].get(BATCH_KEY))
                    for s, t in pairs:
                        if s == m:
                            pseudo[(m, t)] = self.decode(mean, t)  # cells of m, seen as t
        finally:
            self.train(was_training)
        terms: dict[tuple[int, int], torch.Tensor] = {}
        for (m, t), x_tilde in pseudo.items():
            # x_tilde lives in modality t; encode it there and reconstruct x_m
            z, _, _ = self.encode(x_tilde, t)
            x = batch[m][X_KEY]
            terms[(m, t)] = _safe_mean(self.reconstruction_loss(z, x, m, batch[m].get(BATCH_KEY)))
        total = torch.zeros((), device=batch[0][X_KEY].device)
        for m in range(n_mod):
            own = [value for (s, _), value in terms.items() if s == m]
            total = total + (own[0] if len(own) == 1 else _sum(own) / len(own))
        return self.alpha * total, terms

    def backtranslation_loss(self, batch: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
        """Step 2 of a training step: the on-the-fly backtranslation loss.

        Pseudo-samples ``x~_B = D_B(E_A(x_A))`` and ``x~_A = D_A(E_B(x_B))`` are made in eval
        mode without gradients (the previous mode is restored afterwards); then
        ``alpha * [rec(D_A(E_B(x~_B)), x_A) + rec(D_B(E_A(x~_A)), x_B)]`` is returned. With
        more than two modalities, every ordered pair (see :meth:`backtranslation`).
        """
        return self.backtranslation(batch)[0]

    @torch.inference_mode()
    def sample(self, z: torch.Tensor, modality: int) -> torch.Tensor:
        """Decode latent points ``z`` into the data space of ``modality`` (feature means)."""
        return self.decode(z, modality)
