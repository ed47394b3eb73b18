"""Data: building and splitting weakly paired MuData objects, and the training data module."""

from ._datamodule import GrooveDataModule, PairedStepDataset, default_validation_cells
from ._mudata import from_anndatas, recorded_label_key
from ._sampler import LabelBalancedPairSampler
from ._split import split_disjoint, split_weakly_paired

__all__ = [
    "GrooveDataModule",
    "LabelBalancedPairSampler",
    "PairedStepDataset",
    "default_validation_cells",
    "from_anndatas",
    "recorded_label_key",
    "split_disjoint",
    "split_weakly_paired",
]
