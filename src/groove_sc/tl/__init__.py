"""Tools: latents to ``.obsm``, aligners, imputation, metrics and perturbation effects.

They follow the scanpy ``tl`` conventions.

The aligners are the MuData front end of the array-level OT engine :mod:`groove_sc.ot`.
"""

from ._align import align
from ._coupling import get_coupling
from ._effects import perturbation_effects
from ._embedding import embedding
from ._impute import impute
from ._latent import latent, replicate_latents
from ._metrics import foscttm, imputation_metrics, label_transfer_accuracy, matching_metrics
from ._selection import (
    DEFAULT_CANDIDATES,
    Selection,
    WithinLabelSignal,
    select_coupling,
    within_label_signal,
)

__all__ = [
    "DEFAULT_CANDIDATES",
    "Selection",
    "WithinLabelSignal",
    "align",
    "embedding",
    "foscttm",
    "get_coupling",
    "imputation_metrics",
    "impute",
    "label_transfer_accuracy",
    "latent",
    "matching_metrics",
    "perturbation_effects",
    "replicate_latents",
    "select_coupling",
    "within_label_signal",
]
