"""Neural network building blocks (pure torch)."""

from ._networks import GrooveDecoder, GrooveEncoder, ProjectionHead

__all__ = ["GrooveDecoder", "GrooveEncoder", "ProjectionHead"]
