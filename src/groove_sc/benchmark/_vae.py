"""A VAE per modality with an adversarial modality classifier (MultiVI-like), as a learner."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mudata import MuData
from scvi.nn import Encoder, FCLayers
from torch import nn

from ._learner import Learner, dense_features, options, register_learner, standardiser

__all__ = ["AdversarialVAE", "AdversarialVAELearner", "train_adversarial_vae"]


class AdversarialVAE(nn.Module):
    """Two VAEs (one per modality) with one latent space aligned by an adversarial classifier.

    Each modality ``m`` has a Gaussian encoder ``q(z | x_m)`` (:class:`scvi.nn.Encoder`) and a
    decoder (:class:`scvi.nn.FCLayers` and a linear output) with a Gaussian likelihood of unit
    variance on standardised features. A classifier predicts the modality from ``z``; the
    encoders are trained to fool it (the target of their adversarial term is the *other*
    modality), as MultiVI and scvi-tools' ``AdversarialTrainingPlan`` do. The labels are not used:
    this is the unsupervised VAE baseline of Gorla et al. 2026.

    Parameters
    ----------
    n_input
        Features of each of the two modalities.
    n_latent
        Latent dimension.
    n_hidden, n_layers
        Width and number of the hidden layers of each encoder and decoder.
    dropout_rate
        Dropout in the hidden layers.
    """

    def __init__(
        self,
        n_input: tuple[int, ...] | Sequence[int],
        *,
        n_latent: int = 16,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
    ):
        super().__init__()
        self.n_latent = n_latent
        self.encoders = nn.ModuleList(
            Encoder(
                int(n),
                n_latent,
                n_layers=n_layers,
                n_hidden=n_hidden,
                dropout_rate=dropout_rate,
            )
            for n in n_input
        )
        self.decoders = nn.ModuleList(
            nn.Sequential(
                FCLayers(
                    n_latent,
                    n_hidden,
                    n_layers=n_layers,
                    n_hidden=n_hidden,
                    dropout_rate=dropout_rate,
                ),
                nn.Linear(n_hidden, int(n)),
            )
            for n in n_input
        )
        self.classifier = nn.Sequential(
            nn.Linear(n_latent, n_hidden), nn.ReLU(), nn.Linear(n_hidden, 2)
        )

    def encode(self, x: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean, var, z)`` of modality ``m``'s posterior (``z`` a sample)."""
        return self.encoders[m](x)

    def vae_loss(
        self, xs: Sequence[torch.Tensor], kl_weight: float, adversarial_weight: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction + ``kl_weight`` * KL + ``adversarial_weight`` * fooling loss."""
        total = torch.zeros(())
        parts: dict[str, float] = {}
        for m, x in enumerate(xs):
            mean, var, z = self.encode(x, m)
            rec = ((self.decoders[m](z) - x) ** 2).sum(-1).mean()
            kl = 0.5 * (var + mean**2 - 1.0 - torch.log(var)).sum(-1).mean()
            fool = torch.full((len(x),), 1 - m, dtype=torch.long)
            adv = F.cross_entropy(self.classifier(z), fool)
            total = total + rec + kl_weight * kl + adversarial_weight * adv
            parts[f"reconstruction_{m}"] = float(rec.detach())
            parts[f"kl_{m}"] = float(kl.detach())
        return total, parts

    def classifier_loss(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the modality classifier on detached latents."""
        losses = []
        for m, x in enumerate(xs):
            with torch.no_grad():
                _, _, z = self.encode(x, m)
            target = torch.full((len(x),), m, dtype=torch.long)
            losses.append(F.cross_entropy(self.classifier(z), target))
        return torch.stack(losses).mean()


def train_adversarial_vae(
    module: AdversarialVAE,
    xs: Sequence[np.ndarray],
    *,
    n_steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    kl_weight: float = 1.0,
    adversarial_weight: float = 1.0,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Train :class:`AdversarialVAE` by alternating VAE and classifier steps.

    Each step draws ``batch_size`` random cells of each modality (independently: the
    modalities hold different cells), makes one Adam step on the VAE loss and one on the
    classifier.

    Parameters
    ----------
    module
        The model (modified in place).
    xs
        Standardised training features of each modality (float32 arrays).
    n_steps
        Training steps.
    batch_size
        Cells per modality per step.
    lr
        Learning rate of both optimisers.
    kl_weight
        Weight of the KL term.
    adversarial_weight
        Weight of the encoders' fooling term.
    seed
        Seed of the cell draws, dropout and reparametrisation noise.

    Returns
    -------
    One dict of loss terms per step.
    """
    rng = np.random.default_rng(seed)
    data = [torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in xs]
    vae_params = [p for n, p in module.named_parameters() if not n.startswith("classifier")]
    opt_vae = torch.optim.Adam(vae_params, lr=lr, weight_decay=1e-6)
    opt_clf = torch.optim.Adam(module.classifier.parameters(), lr=lr)
    history = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module.train()
        for _ in range(n_steps):
            batch = [d[rng.integers(0, len(d), size=min(batch_size, len(d)))] for d in data]
            loss, parts = module.vae_loss(batch, kl_weight, adversarial_weight)
            opt_vae.zero_grad()
            loss.backward()
            opt_vae.step()
            clf = module.classifier_loss(batch)
            opt_clf.zero_grad()
            clf.backward()
            opt_clf.step()
            parts["classifier"] = float(clf.detach())
            history.append(parts)
    module.eval()
    return history


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
        n_steps: int | None = None,
        max_epochs: int = 100,
        batch_size: int = 128,
        n_latent: int = 16,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        lr: float = 1e-3,
        kl_weight: float = 1.0,
        adversarial_weight: float = 1.0,
    ):
        super().__init__(name, **options(locals()))

    def _fit(self, train: MuData, label_key: str, seed: int) -> None:
        p = self.params
        xs = [dense_features(train.mod[m].X) for m in self.modalities]
        self.scalers = [standardiser(x) for x in xs]
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
            [s.transform(x) for s, x in zip(self.scalers, xs)],
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
            x = self.scalers[i].transform(dense_features(mdata.mod[m].X))
            x = torch.as_tensor(x, dtype=torch.float32)
            out[m] = self.module.encode(x, i)[0].numpy()  # posterior mean
        return out

    can_translate = True

    @torch.inference_mode()
    def translate(self, mdata: MuData, source: str, target: str) -> np.ndarray:
        """Decode the posterior mean of each source cell with the target's decoder."""
        s, t = self.modalities.index(source), self.modalities.index(target)
        self.module.eval()
        x = self.scalers[s].transform(dense_features(mdata.mod[source].X))
        x = torch.as_tensor(x, dtype=torch.float32)
        y = self.module.decoders[t](self.module.encode(x, s)[0]).numpy()
        return y * self.scalers[t].scale_ + self.scalers[t].mean_


register_learner("vae_adversarial", AdversarialVAELearner, ignored_defaults={"kl_weight"})
