"""groove_sc: group contrastive learning for weakly paired multimodal single-cell data.

Submodules follow the scvi-tools / scanpy layout:

- :mod:`groove_sc.data`: building and splitting weakly paired MuData objects.
- :mod:`groove_sc.datasets`: the simulator and loaders for the bundled real data.
- :mod:`groove_sc.nn`, :mod:`groove_sc.module`, :mod:`groove_sc.train`: pure torch pieces.
- :mod:`groove_sc.model`: the scvi-tools model :class:`~groove_sc.model.GROOVE`.
- :mod:`groove_sc.ot`: the optimal-transport engine on arrays (label blocks, solvers).
- :mod:`groove_sc.tl`: latents, aligners, imputation and metrics.
- :mod:`groove_sc.pl`: plots.
"""

from importlib.metadata import PackageNotFoundError, version

from . import data, datasets, model, module, nn, ot, pl, tl, train

try:
    __version__ = version("groove-sc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__", "data", "datasets", "model", "module", "nn", "ot", "pl", "tl", "train"]
