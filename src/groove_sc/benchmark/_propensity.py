"""Propensity scores (Xi et al. 2024) as a benchmark learner."""

from __future__ import annotations

import warnings

import numpy as np
from mudata import MuData
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from ._learner import Learner, dense_features, options, register_learner, standardiser

__all__ = ["PropensityScoreLearner"]


class PropensityScoreLearner(Learner):
    """Propensity scores (Xi et al. 2024): predicted label probabilities as the shared space.

    One multinomial logistic regression per modality predicts the label from the standardised
    features (reduced to ``n_pcs`` principal components first when there are more features);
    each cell's vector of predicted probabilities over the labels (the union of both
    modalities' training labels, zero for a label the modality never saw) is its embedding.

    Parameters
    ----------
    name
        Name in the results table.
    C
        Inverse L2 regularisation strength of :class:`sklearn.linear_model.LogisticRegression`.
    n_pcs
        Principal components used as classifier input when a modality has more features.
    max_iter
        Iterations of the solver.
    """

    def __init__(
        self,
        name: str | None = "propensity_score",
        *,
        C: float = 1.0,
        n_pcs: int = 50,
        max_iter: int = 500,
    ):
        super().__init__(name, **options(locals()))

    def _fit(self, train: MuData, label_key: str, seed: int) -> None:
        labels = [train.mod[m].obs[label_key].astype(str).to_numpy() for m in self.modalities]
        self.classes = np.unique(np.concatenate(labels))
        self.scalers, self.pcas, self.models = [], [], []
        for m, y in zip(self.modalities, labels):
            x = dense_features(train.mod[m].X)
            scaler = standardiser(x)
            x = scaler.transform(x)
            n_pcs = self.params["n_pcs"]
            pca = PCA(n_pcs, svd_solver="full").fit(x) if x.shape[1] > n_pcs else None
            if pca is not None:
                x = pca.transform(x)
            clf = LogisticRegression(
                C=self.params["C"], max_iter=self.params["max_iter"], random_state=seed
            )
            if len(np.unique(y)) < 2:
                raise ValueError(f"modality {m!r} has fewer than two training labels.")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(x, y)
            self.scalers.append(scaler)
            self.pcas.append(pca)
            self.models.append(clf)

    def _transform(self, mdata: MuData) -> dict[str, np.ndarray]:
        out = {}
        for i, m in enumerate(self.modalities):
            x = self.scalers[i].transform(dense_features(mdata.mod[m].X))
            if self.pcas[i] is not None:
                x = self.pcas[i].transform(x)
            prob = self.models[i].predict_proba(x)
            full = np.zeros((len(x), len(self.classes)))
            full[:, np.searchsorted(self.classes, self.models[i].classes_)] = prob
            out[m] = full
        return out


register_learner("propensity_score", PropensityScoreLearner)
