"""Label-balanced batch sampler for two or more modalities of different cells."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def _stable_order(codes: np.ndarray, n_labels: int) -> np.ndarray:
    """Stable argsort of label codes in O(n): numpy radix-sorts integers of 16 bits or less."""
    if n_labels <= np.iinfo(np.uint16).max + 1:
        return np.argsort(codes.astype(np.uint16), kind="stable")
    return np.argsort(codes, kind="stable")


def _group_by_label(codes: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(order, offsets, counts)``: cell positions sorted by label, in O(n)."""
    order = _stable_order(codes, n_labels)
    counts = np.bincount(codes, minlength=n_labels)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, offsets, counts


class LabelBalancedPairSampler(Sampler):
    """Yield one array of row positions per modality per training step, balanced by label.

    Every step draws the same ``labels_per_step`` labels in every modality and
    ``cells_per_label`` cells of each drawn label from each modality that has it (abundant labels
    are undersampled; a label with fewer cells than ``cells_per_label`` is drawn with
    repetition). Each step's labels are distinct and drawn uniformly from the labels of all
    modalities, so each label appears equally often in expectation. A label present in only some
    modalities is drawn in those (it trains their reconstruction, and is a GroupCLIP positive
    between them) and is absent from the others' part of the step.

    Two or more modalities; with two, ``(indices_a, indices_b)``. An epoch has
    ``ceil(max_m n_m / batch_size)`` steps. The sampler is deterministic
    given ``seed`` and the epoch number (its ``set_epoch`` or its own counter).

    Parameters
    ----------
    labels
        Integer label codes of the cells of each modality (one shared vocabulary).
    cells
        Row positions (in the modality's AnnData) of the cells to draw from, per modality;
        ``labels[m]`` is aligned with ``cells[m]``.
    batch_size
        Cells per modality per step (approximately).
    cells_per_label
        Minimum number of cells per label per modality in a step.
    seed
        Random seed.
    shuffle
        If ``False`` every epoch repeats the draws of epoch 0 (for validation).
    """

    def __init__(
        self,
        labels: Sequence[np.ndarray],
        cells: Sequence[np.ndarray],
        *,
        batch_size: int = 128,
        cells_per_label: int = 8,
        seed: int = 0,
        shuffle: bool = True,
    ):
        if batch_size < 1 or cells_per_label < 1:
            raise ValueError(
                f"`batch_size` and `cells_per_label` must be >= 1, got {batch_size}, "
                f"{cells_per_label}."
            )
        if len(labels) != len(cells) or len(labels) < 1:
            raise ValueError(
                f"`labels` and `cells` must hold one array per modality, got {len(labels)} and "
                f"{len(cells)}."
            )
        self.labels = [np.asarray(c, dtype=np.int64).ravel() for c in labels]
        self.cells = [np.asarray(c, dtype=np.int64).ravel() for c in cells]
        n_labels = int(max((c.max() + 1) if len(c) else 0 for c in self.labels))
        self.n_labels = n_labels
        self.groups = [_group_by_label(c, n_labels) for c in self.labels]
        present = np.zeros(n_labels, dtype=bool)
        for _, _, counts in self.groups:
            present |= counts > 0
        self.label_pool = np.flatnonzero(present)
        if len(self.label_pool) == 0:
            raise ValueError("No cells to sample from.")
        self.labels_per_step = int(min(len(self.label_pool), max(1, batch_size // cells_per_label)))
        self.cells_per_label = int(max(cells_per_label, batch_size // self.labels_per_step))
        n_max = max(len(c) for c in self.cells)
        self.n_steps = int(max(1, -(-n_max // batch_size)))
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def __len__(self) -> int:
        return self.n_steps

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch used to seed the next iteration."""
        self.epoch = epoch

    def _schedule(self, rng: np.random.Generator) -> np.ndarray:
        """Distinct labels of each step, shape ``(n_steps, labels_per_step)``.

        Each step takes ``labels_per_step`` distinct labels uniformly at random (random keys,
        partial sort), processed in chunks of steps so memory stays small.
        """
        k, n_pool = self.labels_per_step, len(self.label_pool)
        out = np.empty((self.n_steps, k), dtype=np.int64)
        chunk = max(1, 2**22 // n_pool)
        for start in range(0, self.n_steps, chunk):
            stop = min(start + chunk, self.n_steps)
            keys = rng.random((stop - start, n_pool))
            if k < n_pool:
                picked = np.argpartition(keys, k - 1, axis=1)[:, :k]
            else:
                picked = np.argsort(keys, axis=1)
            out[start:stop] = self.label_pool[picked]
        return out

    def _draw(self, rng: np.random.Generator, schedule: np.ndarray, m: int) -> np.ndarray:
        """Cell rows for each slot of the schedule, shape ``(n_slots, cells_per_label)``."""
        order, offsets, counts = self.groups[m]
        k = self.cells_per_label
        flat = schedule.ravel()
        out = np.full((len(flat), k), -1, dtype=np.int64)
        slot_order = _stable_order(flat, self.n_labels)
        slot_counts = np.bincount(flat, minlength=self.n_labels)
        slot_starts = np.concatenate([[0], np.cumsum(slot_counts)[:-1]])
        for label in np.flatnonzero((slot_counts > 0) & (counts > 0)):  # loop over labels
            n_l, n_slots = counts[label], slot_counts[label]
            n_draw = n_slots * k
            n_perm = -(-n_draw // n_l)
            stream = np.argsort(rng.random((n_perm, n_l)), axis=1).ravel()[:n_draw]
            members = order[offsets[label] + stream]
            slots = slot_order[slot_starts[label] : slot_starts[label] + n_slots]
            out[slots] = self.cells[m][members].reshape(n_slots, k)
        return out.reshape(schedule.shape[0], -1)

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        epoch = self.epoch if self.shuffle else 0
        rng = np.random.default_rng([self.seed, epoch])
        schedule = self._schedule(rng)
        draws = [self._draw(rng, schedule, m) for m in range(len(self.groups))]
        if self.shuffle:
            self.epoch += 1
        for step in range(self.n_steps):
            yield tuple(d[step][d[step] >= 0] for d in draws)
