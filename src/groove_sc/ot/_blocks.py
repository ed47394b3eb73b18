"""Label blocks and their batching: which cells are coupled, and which problems run together.

A labeled coupling is block diagonal up to a permutation: only cells carrying the same label
are coupled. A :class:`LabelBlock` holds the cells of one label (positions in the source and
target arrays) and the mass of its block in the whole coupling. Solvers batch blocks of similar
size into padded tensors (:func:`make_batches`, :func:`pack`); the single-process and the Dask
paths use the same batches, so they give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

__all__ = [
    "ALL_CELLS",
    "BATCH_ENTRIES",
    "Batch",
    "LabelBlock",
    "gather",
    "label_blocks",
    "make_batches",
    "pack",
    "single_block",
    "subsample_blocks",
]

#: Entries per padded tensor of a label batch (float32: 16 MiB); a larger label runs alone.
BATCH_ENTRIES = 2**22
#: Smallest share of its padded block that a block of a batch fills (padding at most 2x).
MIN_FILL = 0.5
#: Label of the single block of a global (unlabeled) coupling.
ALL_CELLS = "__all__"


@dataclass
class LabelBlock:
    """The cells of one label and the mass of their block in the coupling.

    Attributes
    ----------
    label
        The label.
    src
        Positions of the label's cells in the source array.
    tgt
        Positions of the label's cells in the target array (the block's column order).
    weight
        Mass of the block in the whole coupling (the solvers return unit-mass blocks).
    """

    label: str
    src: np.ndarray
    tgt: np.ndarray
    weight: float

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_source, n_target)`` cells of the block."""
        return len(self.src), len(self.tgt)


def _target_sort(n: int, target_order: np.ndarray | None) -> np.ndarray:
    if target_order is None:
        return np.arange(n)
    target_order = np.asarray(target_order)
    if target_order.shape != (n,):
        raise ValueError(f"`target_order` must have one entry per target cell ({n}).")
    return target_order


def single_block(
    n_source: int, n_target: int, *, target_order: np.ndarray | None = None
) -> LabelBlock:
    """The one block of a global coupling: every source cell against every target cell.

    Parameters
    ----------
    n_source, n_target
        Number of cells.
    target_order
        Sort key of the target cells (the block's column order, stable); default their order.
    """
    if n_source == 0 or n_target == 0:
        raise ValueError("Both modalities need at least one cell.")
    tgt = np.argsort(_target_sort(n_target, target_order), kind="stable")
    return LabelBlock(ALL_CELLS, np.arange(n_source), tgt, 1.0)


def label_blocks(
    labels_source: Sequence[str | None] | np.ndarray,
    labels_target: Sequence[str | None] | np.ndarray,
    *,
    target_order: np.ndarray | None = None,
) -> tuple[list[LabelBlock], list[str], list[str]]:
    """One block per label present on both sides.

    Parameters
    ----------
    labels_source, labels_target
        Label of every source and target cell (strings; ``None`` for a missing label).
    target_order
        Sort key of the target cells within each label (the block's column order, e.g. the
        cells' rows in a union space); default their order.

    Returns
    -------
    blocks
        One :class:`LabelBlock` per shared label, in sorted label order; ``src`` in the
        cells' order, ``tgt`` sorted by ``target_order``. A block's weight is its share of the
        matched source cells (the blocks' weights sum to 1). Empty when no label is shared.
    only_source, only_target
        The labels present on one side only (sorted); their cells, and those without a label,
        are in no block.
    """
    ls = np.asarray(labels_source, dtype=object)
    lt = np.asarray(labels_target, dtype=object)
    set_s = {v for v in ls if v is not None}
    set_t = {v for v in lt if v is not None}
    shared = sorted(set_s & set_t)
    only_s, only_t = sorted(set_s - set_t), sorted(set_t - set_s)
    if not shared:
        return [], only_s, only_t
    codes_s = pd.Categorical(ls, categories=shared).codes
    codes_t = pd.Categorical(lt, categories=shared).codes
    order_s = np.argsort(codes_s, kind="stable")
    # target cells grouped by label, sorted by target_order within each label
    order_t = np.lexsort((_target_sort(len(lt), target_order), codes_t))
    bounds_s = np.searchsorted(codes_s[order_s], np.arange(len(shared) + 1))
    bounds_t = np.searchsorted(codes_t[order_t], np.arange(len(shared) + 1))
    n_matched = int(bounds_s[-1] - bounds_s[0])
    blocks = []
    for k, lab in enumerate(shared):
        src = order_s[bounds_s[k] : bounds_s[k + 1]]
        tgt = order_t[bounds_t[k] : bounds_t[k + 1]]
        blocks.append(LabelBlock(lab, src, tgt, len(src) / n_matched))
    return blocks, only_s, only_t


def subsample_blocks(
    blocks: Sequence[LabelBlock], max_cells: int | None, *, seed: int = 0
) -> list[LabelBlock]:
    """Blocks with at most ``max_cells`` cells per side (a seeded subsample, kept sorted).

    The weights are kept: a subsampled block still stands for all cells of its label.
    """
    if max_cells is None:
        return list(blocks)
    rng = np.random.default_rng(seed)
    out = []
    for blk in blocks:
        src, tgt = blk.src, blk.tgt
        if len(src) > max_cells:
            src = np.sort(rng.choice(src, max_cells, replace=False))
        if len(tgt) > max_cells:
            tgt = np.sort(rng.choice(tgt, max_cells, replace=False))
        out.append(LabelBlock(blk.label, src, tgt, blk.weight))
    return out


def make_batches(
    blocks: Sequence[LabelBlock],
    *,
    batch_size: int | None = None,
    max_entries: int = BATCH_ENTRIES,
) -> list[list[int]]:
    """Group blocks of similar size; each padded batch stays within ``max_entries``.

    Blocks are sorted by size (entries, largest first) and cut into batches of at most
    ``batch_size`` blocks (``None``: no limit) whose padded ``(B, n_max, m_max)`` tensor has at
    most ``max_entries`` entries (a larger block runs alone), and in which every block fills
    at least ``MIN_FILL`` of the padded block (so unequal label sizes do not pay for padding:
    a 100 x 100 label is not padded to the 1000 x 1000 of the control). Returns the block
    indices per batch.
    """
    order = sorted(
        range(len(blocks)),
        key=lambda i: (blocks[i].shape[0] * blocks[i].shape[1], blocks[i].shape),
        reverse=True,
    )
    cap = batch_size or len(blocks)
    batches: list[list[int]] = []
    cur: list[int] = []
    n_max = m_max = 0
    for i in order:
        n, m = blocks[i].shape
        nn, mm = max(n_max, n), max(m_max, m)
        sparse_fill = n * m < MIN_FILL * nn * mm
        if cur and (len(cur) >= cap or (len(cur) + 1) * nn * mm > max_entries or sparse_fill):
            batches.append(cur)
            cur, nn, mm = [], n, m
        cur.append(i)
        n_max, m_max = nn, mm
    if cur:
        batches.append(cur)
    return batches


@dataclass
class Batch:
    """Blocks padded into common tensors.

    Attributes
    ----------
    ids
        Indices of the blocks.
    n, m
        Cells per block on each side.
    src, tgt
        ``(B, n_max)`` / ``(B, m_max)`` positions of the cells (0 at padding).
    a, b
        Unit-mass uniform marginals, 0 at padding.
    w
        ``(B,)`` block weights.
    """

    ids: list[int]
    n: np.ndarray
    m: np.ndarray
    src: torch.Tensor
    tgt: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    w: torch.Tensor

    @property
    def size(self) -> int:
        """Number of blocks."""
        return len(self.ids)

    def unpad(self, plan: torch.Tensor) -> list[np.ndarray]:
        """The ``(n_l, m_l)`` block of every problem of a padded ``(B, n, m)`` tensor."""
        return [plan[k, : self.n[k], : self.m[k]].cpu().numpy() for k in range(self.size)]

    def marginal_error(
        self,
        plan: torch.Tensor,
        rows: torch.Tensor | None = None,
        cols: torch.Tensor | None = None,
    ) -> np.ndarray:
        """Largest relative error of the row and column marginals of each unit-mass block.

        ``rows`` / ``cols``: the plan's row / column sums when the caller has them already.
        """
        zero = torch.zeros((), dtype=plan.dtype, device=plan.device)
        rows = plan.sum(2) if rows is None else rows
        cols = plan.sum(1) if cols is None else cols
        ra = self.a > 0
        rb = self.b > 0
        er = torch.where(ra, (rows - self.a).abs() / torch.where(ra, self.a, 1.0), zero)
        ec = torch.where(rb, (cols - self.b).abs() / torch.where(rb, self.b, 1.0), zero)
        return torch.maximum(er.amax(1), ec.amax(1)).double().cpu().numpy()


def pack(
    blocks: Sequence[LabelBlock],
    ids: Sequence[int],
    *,
    device: torch.device,
    dtype: torch.dtype,
) -> Batch:
    """Pad the blocks ``ids`` into one :class:`Batch` on ``device``."""
    n = np.array([blocks[i].shape[0] for i in ids])
    m = np.array([blocks[i].shape[1] for i in ids])
    bsz, n_max, m_max = len(ids), int(n.max()), int(m.max())
    src = np.zeros((bsz, n_max), dtype=np.int64)
    tgt = np.zeros((bsz, m_max), dtype=np.int64)
    a = np.zeros((bsz, n_max))
    b = np.zeros((bsz, m_max))
    for k, i in enumerate(ids):
        src[k, : n[k]] = blocks[i].src
        tgt[k, : m[k]] = blocks[i].tgt
        a[k, : n[k]] = 1.0 / n[k]
        b[k, : m[k]] = 1.0 / m[k]
    return Batch(
        ids=list(ids),
        n=n,
        m=m,
        src=torch.from_numpy(src).to(device),
        tgt=torch.from_numpy(tgt).to(device),
        a=torch.from_numpy(a).to(device, dtype),
        b=torch.from_numpy(b).to(device, dtype),
        w=torch.tensor([blocks[i].weight for i in ids], device=device, dtype=dtype),
    )


def gather(x: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Rows ``x[idx]`` as ``(B, n_max, d)`` with zero rows at padding."""
    return x[idx] * mask[:, :, None].to(x.dtype)
