"""Tools: latents to ``.obsm``, aligners, imputation and metrics (scanpy ``tl`` conventions)."""

from ._align import align
from ._impute import impute
from ._latent import latent
from ._metrics import foscttm, imputation_metrics, label_transfer_accuracy, matching_metrics

__all__ = [
    "align",
    "foscttm",
    "imputation_metrics",
    "impute",
    "label_transfer_accuracy",
    "latent",
    "matching_metrics",
]
