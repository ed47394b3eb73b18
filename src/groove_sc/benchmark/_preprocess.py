"""Per-modality preprocessing of a benchmark dataset (``preprocess:`` in a config).

Scanpy does the work (normalisation, ``log1p``, highly variable genes, scaling, PCA); the
centred log-ratio of protein counts follows :func:`muon.prot.pp.clr` (muon is not a
dependency). The steps run on all cells of the jointly measured data, before the split, and
use no labels: the same for every learner.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from scipy import sparse

from ._config import ConfigError, Preprocess

__all__ = ["clr", "preprocess_modality"]


def clr(x: np.ndarray | sparse.spmatrix, axis: int = 0) -> np.ndarray:
    r"""Centred log-ratio, as :func:`muon.prot.pp.clr`: :math:`\log(1 + x / g)`.

    ``g`` is the geometric mean of :math:`1 + x` along ``axis`` (0: of each feature across
    cells, muon's and Seurat's default for antibody counts; 1: of each cell across features).

    Parameters
    ----------
    x
        Cells x features, non-negative counts.
    axis
        Axis of the geometric mean.

    Returns
    -------
    Dense float64 array of the same shape.
    """
    x = np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)
    if (x < 0).any():
        raise ValueError("CLR needs non-negative values (counts); found negative entries.")
    geo = np.exp(np.log1p(x).mean(axis=axis, keepdims=True))
    return np.log1p(x / geo)


def preprocess_modality(adata: ad.AnnData, steps: Preprocess, *, option: str) -> ad.AnnData:
    """Preprocess one modality: the steps of ``steps`` in the order of :class:`Preprocess`.

    Parameters
    ----------
    adata
        The modality (not modified).
    steps
        The steps.
    option
        Dotted path of the options in the configuration (for error messages).

    Returns
    -------
    A new AnnData (``pca``: the components as features ``PC1``, ``PC2``, ...).
    """
    out = adata.copy()
    if steps.layer is not None:
        if steps.layer not in out.layers:
            raise ConfigError(
                f"{option}.layer",
                f"{steps.layer!r} is not a layer of this modality "
                f"(available: {list(out.layers.keys())}).",
            )
        out.X = out.layers[steps.layer].copy()
    out.X = out.X.astype(np.float32)
    if steps.normalize_total is not None:
        sc.pp.normalize_total(out, target_sum=float(steps.normalize_total))
    if steps.log1p:
        sc.pp.log1p(out)
    if steps.highly_variable_genes is not None and steps.highly_variable_genes < out.n_vars:
        sc.pp.highly_variable_genes(
            out, n_top_genes=int(steps.highly_variable_genes), flavor="seurat"
        )
        out = out[:, out.var["highly_variable"].to_numpy()].copy()
    if steps.clr:
        try:
            out.X = clr(out.X).astype(np.float32)
        except ValueError as exc:
            raise ConfigError(f"{option}.clr", str(exc)) from exc
    if steps.scale:
        if sparse.issparse(out.X):
            out.X = out.X.toarray()
        sc.pp.scale(out)
    if steps.pca is not None:
        n_comps = max(1, min(int(steps.pca), min(out.n_obs, out.n_vars) - 1))
        x = sc.pp.pca(out.X, n_comps=n_comps, random_state=0)
        out = ad.AnnData(
            X=np.asarray(x, dtype=np.float32),
            obs=out.obs.copy(),
            var=pd.DataFrame(index=[f"PC{i + 1}" for i in range(x.shape[1])]),
        )
    return out
