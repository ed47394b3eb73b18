"""Data: building and splitting weakly paired MuData objects, and the training data module."""

from ._datamodule import GrooveDataModule, PairedStepDataset
from ._mudata import from_anndatas
from ._sampler import LabelBalancedPairSampler
from ._split import split_disjoint, split_weakly_paired

__all__ = [
    "GrooveDataModule",
    "LabelBalancedPairSampler",
    "PairedStepDataset",
    "from_anndatas",
    "split_disjoint",
    "split_weakly_paired",
]
