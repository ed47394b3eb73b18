"""Optimal-transport engine on arrays: label blocks, costs, solvers (no AnnData / MuData).

:func:`groove_sc.tl.align` is the MuData front end of this layer; here everything takes and
returns arrays. A labeled coupling is block diagonal up to a permutation: only cells with the
same label are coupled, and each label is a :class:`LabelBlock` (:func:`label_blocks`). A
solver (one class per method, :func:`make_solver`) couples the cells of every block given two
point arrays and yields one :class:`BlockResult` per block (a unit-mass plan and its
diagnostics); results of the whole solve (the total cost of labeled GW, COOT's feature
coupling) are in :class:`SolveExtras`::

    import groove_sc.ot as got

    blocks, only_source, only_target = got.label_blocks(labels_x, labels_y)
    solution = got.make_solver("sinkhorn", epsilon=0.1).solve(blocks, x, y)
    plans = {r.block: r.plan for r in solution}

The solvers:

* :class:`SinkhornSolver`, and the inner problems of :class:`GWSolver` / :class:`FGWSolver` /
  :class:`COOTSolver`: the batched stabilised Sinkhorn :func:`sinkhorn_batched` (torch, CPU or
  GPU), many blocks padded into one ``(B, n, m)`` tensor (:func:`make_batches`,
  :func:`pack`).
* :class:`GWSolver` (labeled in the Ryu et al. 2024 form with :class:`MaskedGW`),
  :class:`FGWSolver` and :class:`COOTSolver` (:class:`LabeledCOOT`) run their own outer loops
  on the same batched solver; exact variants (``epsilon=0``) take per-block ``ot.emd`` steps.
  They match POT's ``(entropic_)(fused_)gromov_wasserstein`` and ``co_optimal_transport`` on
  one block, and never form an ``n x n`` intra-modality matrix.
* :class:`EMDSolver` and the semi-relaxed GW/FGW call POT on CPU.
* :class:`UniformSolver`: the uniform coupling within blocks.

:func:`solve_on_dask` runs the independent blocks of a solver as tasks on a Dask cluster.
"""

from ._blocks import (
    ALL_CELLS,
    BATCH_ENTRIES,
    Batch,
    LabelBlock,
    gather,
    label_blocks,
    make_batches,
    pack,
    single_block,
    subsample_blocks,
)
from ._coot import LabeledCOOT
from ._costs import (
    METRICS,
    NORMALIZE,
    centred_batch,
    cross_cost,
    lowrank_sqdist,
    normalize_blocks,
    normalize_cost,
    pairwise_cost,
    rms_scale,
    sqdist,
)
from ._dask import check_client, solve_on_dask
from ._gw import GWBatch, MaskedGW
from ._pot import emd_batch, emd_block, gw_block
from ._results import BlockResult, Solution, SolveExtras
from ._sinkhorn import SinkhornResult, sinkhorn_batched
from ._solvers import (
    GW_FORMS,
    METHODS,
    SOLVERS,
    COOTSolver,
    EMDSolver,
    FGWSolver,
    GWSolver,
    SinkhornSolver,
    Solver,
    UniformSolver,
    make_solver,
    solver_class,
)
from ._threads import torch_threads

__all__ = [
    "ALL_CELLS",
    "BATCH_ENTRIES",
    "GW_FORMS",
    "METHODS",
    "METRICS",
    "NORMALIZE",
    "SOLVERS",
    "Batch",
    "BlockResult",
    "COOTSolver",
    "EMDSolver",
    "FGWSolver",
    "GWBatch",
    "GWSolver",
    "LabelBlock",
    "LabeledCOOT",
    "MaskedGW",
    "SinkhornResult",
    "SinkhornSolver",
    "Solution",
    "SolveExtras",
    "Solver",
    "UniformSolver",
    "centred_batch",
    "check_client",
    "cross_cost",
    "emd_batch",
    "emd_block",
    "gather",
    "gw_block",
    "label_blocks",
    "lowrank_sqdist",
    "make_batches",
    "make_solver",
    "normalize_blocks",
    "normalize_cost",
    "pack",
    "pairwise_cost",
    "rms_scale",
    "single_block",
    "sinkhorn_batched",
    "solve_on_dask",
    "solver_class",
    "sqdist",
    "subsample_blocks",
    "torch_threads",
]
