"""Cross-modal label transfer of held-out cells, scored while the model trains.

The training loss of GroupCLIP falls as soon as the model tells the training cells' labels
apart, also when it only memorises them. What generalises is whether *held-out* cells of one
modality land next to the other modality's cells of their label. :class:`LabelTransferMonitor`
measures that every validation epoch, for validation cells and for a same-size sample of
training cells (their gap is the memorisation), with the definition of
:func:`knn_label_transfer`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: Neighbours that vote in the label transfer logged during training (and in the benchmark).
LABEL_TRANSFER_NEIGHBORS = 15
#: Cells of each modality scored per set (validation, training sample) in each epoch.
LABEL_TRANSFER_CELLS = 1000
#: Training cells of each modality used as the reference of the label transfer.
LABEL_TRANSFER_REFERENCE = 5000
#: Query cells per distance chunk (memory: chunk x reference distances).
_CHUNK = 1024


def knn_label_transfer(
    z_query: torch.Tensor,
    labels_query: torch.Tensor,
    z_reference: torch.Tensor,
    labels_reference: torch.Tensor,
    *,
    n_neighbors: int = LABEL_TRANSFER_NEIGHBORS,
) -> tuple[int, int]:
    r"""Cross-modal k-nearest-neighbour label transfer: correct and scored query cells.

    Each query cell takes the majority label of its ``k`` nearest reference cells (Euclidean;
    the vote of the :math:`r`-th nearest neighbour weighs :math:`1 + 10^{-6}(k - r)`, so ties
    go to the nearer neighbours), the same rule as
    :func:`groove_sc.tl.label_transfer_accuracy`. Query cells whose label does not occur in
    the reference cannot be transferred and are not scored.

    Parameters
    ----------
    z_query, z_reference
        Embeddings, ``(n_query, d)`` and ``(n_reference, d)``.
    labels_query, labels_reference
        Integer label codes of one vocabulary.
    n_neighbors
        Neighbours that vote (``min(n_neighbors, n_reference)``).

    Returns
    -------
    ``(n_correct, n_scored)``; the accuracy is their ratio.
    """
    if z_reference.shape[0] == 0 or z_query.shape[0] == 0:
        return 0, 0
    present = torch.isin(labels_query, labels_reference)
    z_query, labels_query = z_query[present], labels_query[present]
    if z_query.shape[0] == 0:
        return 0, 0
    k = int(min(n_neighbors, z_reference.shape[0]))
    n_labels = int(max(labels_query.max(), labels_reference.max())) + 1
    weights = 1.0 + 1e-6 * torch.arange(k, 0, -1, dtype=z_query.dtype, device=z_query.device)
    correct = 0
    for start in range(0, z_query.shape[0], _CHUNK):
        zq = z_query[start : start + _CHUNK]
        d = torch.cdist(zq, z_reference)
        idx = torch.topk(d, k, dim=1, largest=False, sorted=True).indices
        votes = torch.zeros(zq.shape[0], n_labels, dtype=zq.dtype, device=zq.device)
        votes.scatter_add_(1, labels_reference[idx], weights.expand(zq.shape[0], k))
        pred = votes.argmax(dim=1)
        correct += int((pred == labels_query[start : start + _CHUNK]).sum())
    return correct, int(z_query.shape[0])


def chance_label_transfer(
    labels_query: np.ndarray,
    labels_reference: np.ndarray,
    *,
    n_neighbors: int = LABEL_TRANSFER_NEIGHBORS,
    n_draws: int = 4000,
    seed: int = 0,
) -> float:
    """Label transfer accuracy of an embedding without cross-modal structure.

    The ``k`` neighbours of a query cell are then a random sample of the reference cells, so
    its predicted label is the plurality of ``k`` labels drawn from the reference label
    frequencies; the chance accuracy is the probability that it equals the query label
    (query cells whose label is absent from the reference are not scored, as in
    :func:`knn_label_transfer`). Estimated by ``n_draws`` seeded draws.

    Parameters
    ----------
    labels_query, labels_reference
        Integer label codes.
    n_neighbors
        Neighbours that vote.
    n_draws
        Monte Carlo draws.
    seed
        Seed of the draws.

    Returns
    -------
    The chance accuracy in ``[0, 1]``.
    """
    labels_query = np.asarray(labels_query, dtype=np.int64)
    labels_reference = np.asarray(labels_reference, dtype=np.int64)
    if len(labels_reference) == 0:
        return float("nan")
    labels_query = labels_query[np.isin(labels_query, labels_reference)]
    if len(labels_query) == 0:
        return float("nan")
    n_labels = int(max(labels_query.max(), labels_reference.max())) + 1
    k = int(min(n_neighbors, len(labels_reference)))
    rng = np.random.default_rng(seed)
    drawn = labels_reference[rng.integers(0, len(labels_reference), size=(n_draws, k))]
    votes = np.zeros((n_draws, n_labels))
    weights = 1.0 + 1e-6 * np.arange(k, 0, -1)
    np.add.at(votes, (np.repeat(np.arange(n_draws), k), drawn.ravel()), np.tile(weights, n_draws))
    p_pred = np.bincount(votes.argmax(1), minlength=n_labels) / n_draws
    p_query = np.bincount(labels_query, minlength=n_labels) / len(labels_query)
    return float((p_pred * p_query).sum())


@dataclass(frozen=True)
class CellSample:
    """Row positions of a fixed sample of cells of each modality.

    Attributes
    ----------
    rows
        One integer array per modality (positions in that modality's data).
    """

    rows: tuple[np.ndarray, ...]


#: Reads one mini-batch of each modality: ``fetch((rows_a, rows_b, ...))`` -> one dict per
#: modality with ``"X"``, ``"labels"`` and optionally ``"batch"``
#: (:class:`~groove_sc.data.PairedStepDataset`).
Fetch = Callable[[tuple[np.ndarray, ...]], Sequence[Mapping[str, torch.Tensor]]]


class LabelTransferMonitor:
    """Cross-modal label transfer of fixed cell samples, scored with the current weights.

    For each query set (``"validation"``: held-out cells; ``"train"``: a same-size sample of
    training cells) and each direction (modality A's query cells against modality B's
    reference, and B's against A's), every query cell takes the majority label of its
    ``n_neighbors`` nearest reference cells of the other modality in the latent space
    (:func:`knn_label_transfer`); the score of a set is the mean of the two directions'
    accuracies. The reference is a fixed sample of each modality's training cells.

    With more than two modalities the score of a set is the mean over every ordered pair of
    modalities (query, reference), and, when ``modality_names`` are given, the score of each
    pair ``a < b`` (mean of its two directions) is returned too, as ``"<a>_<b>_<set>"``.

    Parameters
    ----------
    fetch
        Reader of cells by row position (see :data:`Fetch`).
    reference
        Training cells of each modality the queries are compared with.
    queries
        Query cells per set name.
    n_neighbors
        Neighbours that vote.
    modality_names
        Names of the modalities (in the order of the samples' rows); with more than two, the
        per-pair scores are returned under these names.
    """

    def __init__(
        self,
        fetch: Fetch,
        reference: CellSample,
        queries: Mapping[str, CellSample],
        *,
        n_neighbors: int = LABEL_TRANSFER_NEIGHBORS,
        modality_names: Sequence[str] | None = None,
    ):
        self.fetch = fetch
        self.reference = reference
        self.queries = dict(queries)
        self.n_neighbors = int(n_neighbors)
        self.modality_names = None if modality_names is None else list(modality_names)

    def _encode(self, module, sample: CellSample) -> list[tuple[torch.Tensor, torch.Tensor]]:
        device = next(module.parameters()).device
        out = []
        for m, rows in enumerate(sample.rows):
            zs, labs = [], []
            for start in range(0, len(rows), _CHUNK):
                chunk = [np.zeros(0, dtype=np.int64)] * len(sample.rows)
                chunk[m] = rows[start : start + _CHUNK]
                part = self.fetch(tuple(chunk))[m]
                batch = part.get("batch")
                zs.append(
                    module.encode(
                        part["X"].to(device), m, None if batch is None else batch.to(device)
                    )[1]
                )
                labs.append(part["labels"].to(device))
            if zs:
                out.append((torch.cat(zs), torch.cat(labs)))
            else:
                n_latent = module.n_latent
                empty = torch.zeros(0, n_latent, device=device)
                out.append((empty, torch.zeros(0, dtype=torch.long, device=device)))
        return out

    @torch.no_grad()
    def score(self, module) -> dict[str, float]:
        """Label transfer accuracy of each query set (NaN when nothing can be scored).

        The module is put in eval mode while scoring and its previous mode restored.
        """
        was_training = module.training
        module.eval()
        try:
            ref = self._encode(module, self.reference)
            out = {}
            n_mod = len(ref)
            names = self.modality_names
            per_pair = names is not None and n_mod > 2
            for name, sample in self.queries.items():
                query = self._encode(module, sample)
                accs, pair_accs = [], {}
                for m in range(n_mod):
                    for other in range(n_mod):
                        if other == m:
                            continue
                        correct, n = knn_label_transfer(
                            query[m][0],
                            query[m][1],
                            ref[other][0],
                            ref[other][1],
                            n_neighbors=self.n_neighbors,
                        )
                        if n:
                            accs.append(correct / n)
                            pair_accs.setdefault((min(m, other), max(m, other)), []).append(
                                correct / n
                            )
                out[name] = float(np.mean(accs)) if accs else float("nan")
                if per_pair:
                    for a in range(n_mod):
                        for b in range(a + 1, n_mod):
                            values = pair_accs.get((a, b))
                            out[f"{names[a]}_{names[b]}_{name}"] = (
                                float(np.mean(values)) if values else float("nan")
                            )
        finally:
            module.train(was_training)
        return out


def sample_rows(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``n`` of ``rows``, drawn without replacement and sorted."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) <= n:
        return np.sort(rows)
    return np.sort(rng.choice(rows, size=n, replace=False))
