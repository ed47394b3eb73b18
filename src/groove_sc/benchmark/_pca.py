"""PCA per modality as a benchmark learner (no shared space)."""

from __future__ import annotations

import numpy as np
from mudata import MuData
from sklearn.decomposition import PCA

from ._learner import Learner, dense_features, register_learner, standardiser

__all__ = ["PCALearner"]


class PCALearner(Learner):
    """PCA per modality (standardised features), fitted on each modality's training cells.

    There is no shared space (``shared_space = False``): only aligners that compare
    intra-modality geometry (GW, COOT, uniform) use it.

    Parameters
    ----------
    name
        Name in the results table.
    n_comps
        Components per modality (at most the number of features).
    """

    shared_space = False

    def __init__(self, name: str | None = "pca", *, n_comps: int = 16):
        super().__init__(name, n_comps=n_comps)

    def _fit(self, train: MuData, label_key: str, seed: int) -> None:
        self.scalers, self.pcas = [], []
        for m in self.modalities:
            x = dense_features(train.mod[m].X)
            scaler = standardiser(x)
            self.scalers.append(scaler)
            n_comps = min(self.params["n_comps"], x.shape[1])
            self.pcas.append(PCA(n_comps, svd_solver="full").fit(scaler.transform(x)))

    def _transform(self, mdata: MuData) -> dict[str, np.ndarray]:
        return {
            m: self.pcas[i].transform(self.scalers[i].transform(dense_features(mdata.mod[m].X)))
            for i, m in enumerate(self.modalities)
        }


register_learner("pca", PCALearner, renamed_defaults={"n_latent": "n_comps"})
