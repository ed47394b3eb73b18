"""Encoder and decoder networks (pure torch, built on :class:`scvi.nn.FCLayers`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from scvi.nn import FCLayers
from torch import nn


class GrooveEncoder(nn.Module):
    """Map one modality's (normalised) features to the shared latent space.

    Parameters
    ----------
    n_input
        Number of input features.
    n_latent
        Dimension of the shared latent space.
    n_hidden
        Width of the hidden layers.
    n_layers
        Number of hidden layers.
    dropout_rate
        Dropout in the hidden layers.
    n_cat_list
        Number of categories of each categorical covariate (e.g. batch) injected in every layer.
    variational
        If ``True``, output a Gaussian posterior (mean and variance) and sample from it in
        training mode; in eval mode the mean is returned. If ``False`` the encoder is
        deterministic and the variance is ``None``.
    input_dropout
        Probability of zeroing each input feature in training mode (a denoising
        augmentation: the encoder cannot rely on any single feature of a cell); the kept
        features are scaled by ``1 / (1 - input_dropout)``. ``0`` turns it off.
    """

    def __init__(
        self,
        n_input: int,
        n_latent: int,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        n_cat_list: Sequence[int] | None = None,
        variational: bool = False,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        self.variational = variational
        self.input_dropout = nn.Dropout(input_dropout) if input_dropout > 0 else nn.Identity()
        self.body = FCLayers(
            n_in=n_input,
            n_out=n_hidden,
            n_cat_list=list(n_cat_list or []),
            n_layers=n_layers,
            n_hidden=n_hidden,
            dropout_rate=dropout_rate,
            use_batch_norm=False,
            use_layer_norm=True,
        )
        self.mean = nn.Linear(n_hidden, n_latent)
        self.log_var = nn.Linear(n_hidden, n_latent) if variational else None

    def forward(
        self, x: torch.Tensor, *cat_list: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Encode ``x``; returns ``(z, mean, var)`` (``var`` is ``None`` if deterministic)."""
        h = self.body(self.input_dropout(x), *cat_list)
        mean = self.mean(h)
        if self.log_var is None:
            return mean, mean, None
        var = torch.exp(self.log_var(h).clamp(-10.0, 10.0)) + 1e-4
        z = mean + var.sqrt() * torch.randn_like(mean) if self.training else mean
        return z, mean, var


class GrooveDecoder(nn.Module):
    """Map the shared latent space back to one modality.

    For a Gaussian likelihood the output is the mean of the (standardised) features; for a
    negative binomial likelihood it is the per-feature proportions (a softmax), multiplied by
    the library size outside this class, and a per-feature inverse dispersion is learned.

    Parameters
    ----------
    n_latent
        Dimension of the shared latent space.
    n_output
        Number of output features.
    n_hidden
        Width of the hidden layers.
    n_layers
        Number of hidden layers.
    dropout_rate
        Dropout in the hidden layers.
    n_cat_list
        Number of categories of each categorical covariate injected in every layer.
    likelihood
        ``"gaussian"`` or ``"nb"``.
    """

    def __init__(
        self,
        n_latent: int,
        n_output: int,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        n_cat_list: Sequence[int] | None = None,
        likelihood: str = "gaussian",
    ):
        super().__init__()
        self.likelihood = likelihood
        self.body = FCLayers(
            n_in=n_latent,
            n_out=n_hidden,
            n_cat_list=list(n_cat_list or []),
            n_layers=n_layers,
            n_hidden=n_hidden,
            dropout_rate=dropout_rate,
            use_batch_norm=False,
            use_layer_norm=True,
        )
        self.out = nn.Linear(n_hidden, n_output)
        if likelihood == "nb":
            self.log_theta = nn.Parameter(torch.zeros(n_output))

    def forward(self, z: torch.Tensor, *cat_list: torch.Tensor) -> torch.Tensor:
        """Decode ``z`` into feature means (Gaussian) or proportions (NB)."""
        h = self.out(self.body(z, *cat_list))
        if self.likelihood == "nb":
            return torch.softmax(h, dim=-1)
        return h


class ProjectionHead(nn.Module):
    """A small MLP applied to the latent before GroupCLIP (SimCLR-style), optional."""

    def __init__(self, n_latent: int, n_hidden: int = 128, n_output: int | None = None):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_latent, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_output or n_latent)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Project ``z``."""
        return self.net(z)
