"""Training plans (Lightning) and what they monitor."""

from ._monitor import LabelTransferMonitor, chance_label_transfer, knn_label_transfer
from ._trainingplan import GrooveTrainingPlan

__all__ = [
    "GrooveTrainingPlan",
    "LabelTransferMonitor",
    "chance_label_transfer",
    "knn_label_transfer",
]
