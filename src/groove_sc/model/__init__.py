"""Models (scvi-tools API)."""

from ._model import GROOVE

__all__ = ["GROOVE"]
