"""Data: building and splitting weakly paired MuData objects."""

from ._mudata import from_anndatas
from ._split import split_weakly_paired

__all__ = ["from_anndatas", "split_weakly_paired"]
