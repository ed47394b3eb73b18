"""Datasets: the weakly paired simulator and loaders for the bundled real data."""

from ._real import citeseq_pbmc, citeseq_three_view, papalexi_thp1, papalexi_two_view, snareseq
from ._simulate import simulate

__all__ = [
    "citeseq_pbmc",
    "citeseq_three_view",
    "papalexi_thp1",
    "papalexi_two_view",
    "simulate",
    "snareseq",
]
