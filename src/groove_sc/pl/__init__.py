"""Plotting, with scanpy's ``pl`` conventions.

The data object comes first, options are keyword-only, ``ax=`` draws into given Axes,
``show=`` / ``return_fig=`` / ``save=`` control the output, and each function reads the keys
that the matching :mod:`groove_sc.tl` function wrote:

- :func:`latent`: UMAP of the shared latent ``X_groove`` by modality and perturbation;
- :func:`coupling`: label x label mass of a coupling, or the cell-level block of one label;
- :func:`imputation`: imputed versus observed values per feature, with Pearson's r;
- :func:`history`: training curves of each loss term;
- :func:`benchmark`: learner x aligner heatmap or bar chart of a benchmark metric;
- :func:`perturbation_effects`: each perturbation's effect in one modality against another.
"""

from ._benchmark import benchmark
from ._coupling import coupling
from ._effects import perturbation_effects
from ._history import history
from ._imputation import imputation
from ._latent import latent

__all__ = [
    "benchmark",
    "coupling",
    "history",
    "imputation",
    "latent",
    "perturbation_effects",
]
