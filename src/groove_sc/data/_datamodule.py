"""Per-modality datasets and a Lightning data module for weakly paired training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from ._sampler import LabelBalancedPairSampler

#: Default validation cells per modality: this fraction of the cells ...
VALIDATION_FRACTION = 0.1
#: ... but at least this many (a label transfer estimate within about +-0.1 at p = 0.5) ...
MIN_VALIDATION_CELLS = 50
#: ... and at most this fraction of a small modality.
MAX_VALIDATION_FRACTION = 0.25


def default_validation_cells(n_cells: int) -> int:
    """Validation cells of a modality with ``n_cells`` cells when ``validation_size=None``.

    10 % of the cells, at least 50 and at most a quarter of them: with ``n`` validation
    cells per modality the binomial standard error of the held-out label transfer (both
    directions) is ``sqrt(p (1 - p) / (2 n))``: 0.05 at ``p = 0.5`` and 50 cells, 0.035 at
    100, 0.016 at 500. A 10 % split of a 200-cell experiment (20 cells) would give 0.08.
    (More validation cells cost training cells: 100 per modality instead of 40 lost 0.01
    of latent FOSCTTM on the 400-cell CITE-seq modalities.)
    """
    n = max(round(VALIDATION_FRACTION * n_cells), MIN_VALIDATION_CELLS)
    return int(min(n, np.floor(MAX_VALIDATION_FRACTION * n_cells)))


class PairedStepDataset(Dataset):
    """Fetch one training step: a mini-batch of each modality from its own cells.

    ``dataset[(rows_a, rows_b, ...)]`` (one array per modality) returns
    ``[{"X", "labels"[, "batch"]}, {...}, ...]``. Each
    modality is read from its own :class:`scvi.data.AnnTorchDataset` (created without
    ``indices``: row positions index the modality itself, never the MuData union), so sparse
    matrices stay sparse until the mini-batch is sliced and densified.

    Parameters
    ----------
    datasets
        One :class:`scvi.data.AnnTorchDataset` per modality.
    keys
        Per modality, a mapping from ``"X"``, ``"labels"`` and optionally ``"batch"`` to the
        registry keys of that modality.
    """

    def __init__(self, datasets: Sequence[Dataset], keys: Sequence[dict[str, str]]):
        self.datasets = list(datasets)
        self.keys = [dict(k) for k in keys]

    def __len__(self) -> int:
        return len(self.datasets[0])

    def __getitem__(self, rows: tuple[np.ndarray, ...]) -> list[dict[str, torch.Tensor]]:
        out = []
        for m, idx in enumerate(rows):
            idx = np.asarray(idx, dtype=np.int64)
            if len(idx):
                fetched = self.datasets[m][idx]
            else:
                fetched = {key: None for key in self.keys[m].values()}
            item = {}
            for name, key in self.keys[m].items():
                value = fetched[key]
                if value is None:
                    n_cols = self.n_features[m] if name == "X" else 1
                    value = np.zeros((0, n_cols), dtype=np.float32 if name == "X" else np.int64)
                tensor = torch.as_tensor(np.asarray(value))
                item[name] = tensor.reshape(-1) if name != "X" else tensor
            out.append(item)
        return out

    @property
    def n_features(self) -> list[int]:
        """Number of features of each modality."""
        return [int(ds.data[k["X"]].shape[1]) for ds, k in zip(self.datasets, self.keys)]


class GrooveDataModule(LightningDataModule):
    """Training and validation loaders of label-balanced paired steps.

    Each modality's cells are split at random into training and validation cells (its own
    split); a :class:`~groove_sc.data.LabelBalancedPairSampler` draws the steps.

    Parameters
    ----------
    dataset
        The :class:`PairedStepDataset` to read from.
    labels
        Integer label codes of every cell of each modality.
    validation_size
        Fraction of each modality's cells held out for validation (0 disables validation);
        ``None``: :func:`default_validation_cells` of each modality.
    batch_size
        Cells per modality per step.
    cells_per_label
        Minimum cells per label per modality in a step.
    seed
        Seed of the split and of the sampler.
    num_workers
        Worker processes of the loaders.
    """

    def __init__(
        self,
        dataset: PairedStepDataset,
        labels: Sequence[np.ndarray],
        *,
        validation_size: float | None = None,
        batch_size: int = 128,
        cells_per_label: int = 8,
        seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__()
        if validation_size is not None and not 0.0 <= validation_size < 1.0:
            raise ValueError(
                f"`validation_size` must be in [0, 1) or None, got {validation_size!r}."
            )
        self.dataset = dataset
        self.labels = [np.asarray(c, dtype=np.int64) for c in labels]
        self.validation_size = validation_size
        self.batch_size = batch_size
        self.cells_per_label = cells_per_label
        self.seed = seed
        self.num_workers = num_workers
        rng = np.random.default_rng(seed)
        self.train_idx, self.val_idx = [], []
        for codes in self.labels:
            perm = rng.permutation(len(codes))
            if validation_size is None:
                n_val = default_validation_cells(len(codes))
            else:
                n_val = int(np.floor(validation_size * len(codes)))
            self.val_idx.append(np.sort(perm[:n_val]))
            self.train_idx.append(np.sort(perm[n_val:]))
        self.n_train = int(sum(len(i) for i in self.train_idx))
        self.n_val = int(sum(len(i) for i in self.val_idx))

    def _loader(self, idx: list[np.ndarray], shuffle: bool) -> DataLoader:
        sampler = LabelBalancedPairSampler(
            [c[i] for c, i in zip(self.labels, idx)],
            idx,
            batch_size=self.batch_size,
            cells_per_label=self.cells_per_label,
            seed=self.seed,
            shuffle=shuffle,
        )
        return DataLoader(
            self.dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Label-balanced training steps (reshuffled every epoch)."""
        return self._loader(self.train_idx, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """Label-balanced validation steps (the same every epoch)."""
        if self.n_val == 0 or any(len(i) == 0 for i in self.val_idx):
            return []
        return self._loader(self.val_idx, shuffle=False)
