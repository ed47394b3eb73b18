"""Plotting (scanpy ``pl`` conventions: ``ax=``, ``show=``, ``return_fig=``)."""

from ._history import history

__all__ = ["history"]
