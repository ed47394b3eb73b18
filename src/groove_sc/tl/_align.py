"""Optimal-transport alignment of the cells of two modalities of a MuData.

``align`` is the MuData front end of :mod:`groove_sc.ot`: it checks the MuData-level
arguments (modalities, label column, representation), reads the representations, builds the
label blocks, runs the method's solver (:func:`groove_sc.ot.make_solver`) on them, locally or
on a Dask cluster, and stores the coupling (:mod:`groove_sc.tl._coupling`).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from mudata import MuData

from ..data._mudata import recorded_label_key
from ..ot import (
    METHODS,
    LabelBlock,
    Solver,
    check_client,
    label_blocks,
    make_solver,
    single_block,
    solve_on_dask,
    solver_class,
    torch_threads,
)
from ._cells import check_source_target, format_labels, obs_labels, read_rep, union_positions
from ._coupling import (
    Compression,
    CSRBuilder,
    diagnostics_table,
    get_coupling,
    perfect_coupling,
    write_coupling,
)
from ._selection import select_coupling

__all__ = ["align"]

_METHODS = (*METHODS, "perfect")
#: ``align`` arguments that configure the solver (each method takes some of them).
_SOLVER_ARGS = ("epsilon", "reg_m", "semi_relaxed", "gw_form", "alpha", "metric", "normalize")
_SOLVER_ARGS += ("max_iter", "tol", "batch_size", "dtype", "device")
#: Kept for callers of the former private name.
read_coupling = get_coupling


def align(
    mdata: MuData,
    *,
    source: str,
    target: str,
    method: Literal[
        "sinkhorn", "emd", "gw", "fgw", "coot", "uniform", "perfect", "auto"
    ] = "sinkhorn",
    objective: Literal["matching", "imputation"] | None = None,
    candidates: Sequence[dict[str, Any]] | None = None,
    replicates: Sequence[str] | None = None,
    labeled: bool = True,
    group_key: str | None = None,
    use_rep: str = "X_groove",
    epsilon: float | None = None,
    reg_m: float | None = None,
    semi_relaxed: bool = False,
    gw_form: Literal["ryu", "per_label"] = "ryu",
    alpha: float = 0.5,
    metric: Literal["sqeuclidean", "euclidean", "cosine"] = "sqeuclidean",
    normalize: Literal["mean", "max"] | None = "mean",
    n_pcs: int | None = None,
    max_iter: int | None = None,
    tol: float | None = None,
    batch_size: int | None = None,
    prune: float = 0.0,
    top_k: int | None = None,
    dtype: Literal["float32", "float64"] = "float32",
    device: str | torch.device | None = None,
    n_threads: int | None = 1,
    dask_client: Any = None,
    truth_key: str = "pair_id",
    key_added: str = "groove_coupling",
    copy: bool = False,
) -> MuData | None:
    r"""Couple the cells of two modalities with optimal transport.

    The coupling :math:`T` (source cells x target cells, non-negative) is computed on the
    representation ``use_rep`` of each modality. With ``labeled=True`` only cells with the same
    ``group_key`` label are coupled: :math:`T` is block diagonal up to a permutation and each
    label is its own problem (except labeled GW in the Ryu et al. form and labeled COOT), so
    the work and memory are :math:`\sum_l n_l m_l`, never :math:`n \times m`.

    **Masses.** Each label block is solved with uniform unit mass on both sides and then scaled
    by :math:`w_l = n_l / n`, where :math:`n_l` is the number of source cells of label ``l`` and
    :math:`n` the number of matched source cells: every matched source cell has row mass
    :math:`1/n` (balanced), the target cells of label ``l`` share :math:`w_l` and the coupling
    has mass 1. Without labels both marginals are uniform over all cells. Cells whose label is
    missing (NaN) or present in one modality only are left unmatched (zero mass) with a warning.

    **Costs.** ``metric`` is the cross-modality cost (``sinkhorn``, ``emd``, ``fgw``), which
    needs one shared space; ``normalize="mean"`` divides each problem's cost by its mean, so
    ``epsilon`` is relative to the typical cost of that problem (``"max"``: by the maximum).
    GW/FGW use normalised squared Euclidean intra-modality distances; COOT scales each
    modality's features to unit root mean square.

    The methods and their parameters are the solvers of :mod:`groove_sc.ot`:
    :class:`~groove_sc.ot.SinkhornSolver`, :class:`~groove_sc.ot.EMDSolver`,
    :class:`~groove_sc.ot.GWSolver`, :class:`~groove_sc.ot.FGWSolver`,
    :class:`~groove_sc.ot.COOTSolver`, :class:`~groove_sc.ot.UniformSolver`; a parameter a
    method does not use is ignored (``reg_m`` and ``semi_relaxed`` are refused where they
    have no meaning).

    Parameters
    ----------
    mdata
        MuData with the two modalities. Source and target cells are placed into the union row
        space through ``mdata.obsmap`` (weakly paired or paired data).
    source, target
        Modality names; rows of the coupling are source cells, columns target cells.
    method
        ``"sinkhorn"`` (entropic OT, batched Sinkhorn in torch, CPU or GPU), ``"emd"`` (exact
        OT, POT), ``"gw"`` (Gromov-Wasserstein on intra-modality distances: no shared space
        needed), ``"fgw"`` (fused GW, ``(1 - alpha) * OT + alpha * GW``), ``"coot"``
        (co-optimal transport between the feature matrices; labeled: one sample coupling per
        label, one shared feature coupling), ``"uniform"`` (uniform within label: the
        reference every method must beat), ``"perfect"`` (evaluation only: mass
        ``1 / n_pairs`` on each true pair given by ``truth_key``) or ``"auto"``: choose among
        ``candidates`` without ground truth, for ``objective``
        (:func:`groove_sc.tl.select_coupling`), from two replicate representations
        (``replicates``), then run the choice on ``use_rep``; without within-label signal the
        uniform coupling is returned, with a warning. Needs ``labeled=True``.
    objective
        ``method="auto"`` only: ``"matching"`` (partners per cell; favours sharp couplings)
        or ``"imputation"`` (profiles per cell; favours smoother couplings).
    candidates
        ``method="auto"`` only: ``tl.align`` keyword arguments of the aligners to choose
        among (default :data:`groove_sc.tl.DEFAULT_CANDIDATES`).
    replicates
        ``method="auto"`` only: two ``.obsm`` keys of independent fits on disjoint cells;
        default: those recorded for ``use_rep`` by :func:`groove_sc.tl.replicate_latents`.
    labeled
        Restrict the coupling to same-label pairs. ``False`` solves one global problem and
        stores a dense ``n x m`` block (mind the memory).
    group_key
        Label column in ``mdata.mod[source].obs`` and ``mdata.mod[target].obs``. Default:
        the one recorded by ``GROOVE.setup_mudata`` / :func:`groove_sc.data.from_anndatas` /
        :func:`groove_sc.tl.latent` (:func:`groove_sc.data.recorded_label_key`), else
        ``"perturbation"``.
    use_rep
        A key of ``.obsm`` in both modalities (default the GROOVE latent ``"X_groove"``),
        ``"X"`` (the features, densified; for GW/COOT) or ``"X_pca"``: ``.obsm["X_pca"]``
        when present (first ``n_pcs`` columns), else a per-modality PCA of ``.X`` with
        ``n_pcs`` (default 50) components, not stored.
    epsilon
        Entropic regularisation relative to the normalised cost (``None``: 0.05, about 20
        effective partners per cell among 1000 unstructured ones); ``0`` is the exact solver
        of ``gw``, ``fgw`` and ``coot``; ``sinkhorn`` needs ``epsilon > 0``.
    reg_m
        Unbalanced OT (``sinkhorn``, ``emd``): KL penalty on the marginals; ``None``:
        balanced.
    semi_relaxed
        Exact source marginal, relaxed target marginal (``sinkhorn``, ``emd``, ``gw``,
        ``fgw``; see the solvers).
    gw_form
        Labeled ``gw`` only: ``"ryu"`` (Ryu et al. 2024: one problem, intra-modality
        distances over all matched cells, the label mask on the coupling) or ``"per_label"``.
    alpha
        Weight of the GW term in ``fgw``.
    metric
        Cross-modality cost: ``"sqeuclidean"``, ``"euclidean"`` or ``"cosine"``.
    normalize
        Cost normalisation, see above (``None``: raw costs).
    n_pcs
        Components for ``use_rep="X_pca"``.
    max_iter, tol
        Iterations and convergence tolerance of the solver (defaults per method: 1000
        Sinkhorn iterations, 1e6 network-simplex iterations, 200 outer GW/FGW iterations, 100
        COOT iterations; ``tol`` 1e-5).
    batch_size
        Most labels solved together in one padded batch (``None``: as many as fit in about
        ``2**22`` entries; labels are sorted by size so padding is small).
    prune
        Drop stored entries smaller than ``prune`` times the largest entry of their row
        (``0``: keep the dense blocks). The dropped mass is reported per label.
    top_k
        Keep only the ``top_k`` largest entries of each row of each label block, so the
        stored coupling has at most ``n_source x top_k`` entries instead of
        :math:`\sum_l n_l m_l` (a million cells in 1000 labels: 1e9 entries, about 8 GB;
        ``top_k=50``: about 0.4 GB). Kept entries are not renormalised; the dropped mass is
        reported. Applied block by block as the solver yields them, so memory stays bounded
        by one batch of labels plus the kept entries (twice those while assembling).
    dtype
        Floating type of the torch solver and of the stored coupling (POT and exact solvers
        compute in float64).
    device
        Torch device of the batched solver (``None``: CPU; ``"cuda"``).
    n_threads
        Torch intra-op threads on CPU during the call (restored afterwards; ``None``:
        untouched); with ``dask_client`` inside each task.
    dask_client
        A :class:`distributed.Client` (extra ``groove-sc[dask]``): independent label batches
        are solved as tasks on the workers and streamed back (``top_k``/``prune`` applied on
        the workers); the same coupling as in one process. Not for labeled ``gw`` with
        ``gw_form="ryu"`` and labeled ``coot`` (one problem coupling all labels).
    truth_key
        ``.obs`` column with the pair identifiers, for ``method="perfect"`` only.
    key_added
        Key of the outputs in ``mdata.obsp`` and ``mdata.uns``.
    copy
        Return a modified copy instead of writing into ``mdata``.

    Returns
    -------
    ``None`` or a copy of ``mdata`` (``copy=True``), with

    ``mdata.obsp[key_added]``
        :class:`scipy.sparse.csr_matrix` of shape ``(mdata.n_obs, mdata.n_obs)``, non-zero only
        in rows of source cells and columns of target cells; read it back in the modalities'
        orientation with :func:`groove_sc.tl.get_coupling`.
    ``mdata.uns[key_added]``
        ``"params"`` (the arguments the method used, ``None`` omitted), ``"selection"``
        (``method="auto"`` only), ``"diagnostics"`` (one entry per label: ``label``,
        ``n_source``, ``n_target``, ``mass`` (stored block mass), ``cost`` (objective of the
        unit-mass block on normalised costs, without entropy; NaN for ``uniform``),
        ``converged``, ``n_iter``, ``marginal_error`` (largest relative marginal error of the
        unit-mass block), ``dropped_mass``, ``seconds``), ``"unmatched_source_labels"``,
        ``"unmatched_target_labels"``, ``"dropped_mass"`` (total) and the extras of the solve
        (``"total_cost"`` of labeled GW, COOT's ``"feature_coupling"``). All h5mu-writable.

    Examples
    --------
    >>> import groove_sc as gs
    >>> gs.tl.align(mdata, source="rna", target="protein", method="sinkhorn")
    >>> T = gs.tl.get_coupling(mdata, "groove_coupling", source="rna", target="protein")
    """
    if group_key is None:
        group_key = recorded_label_key(mdata) if isinstance(mdata, MuData) else "perturbation"
    args = {k: v for k, v in locals().items() if k != "mdata"}
    if method == "auto":
        return _align_auto(mdata, args)
    for name, value in (("objective", objective), ("candidates", candidates)):
        if value is not None:
            raise ValueError(f"`{name}` is only used with method='auto', got method={method!r}.")
    opts = _validate(mdata, **args)
    t_start = time.perf_counter()
    src_pos = union_positions(mdata, source)
    tgt_pos = union_positions(mdata, target)
    if opts.solver is None:  # method="perfect"
        coupling, table = perfect_coupling(
            mdata, source, target, truth_key, src_pos, tgt_pos, opts.np_dtype
        )
        unmatched, extras = ([], []), {}
    else:
        coupling, table, unmatched, extras = _solve(mdata, opts, src_pos, tgt_pos, dask_client)
    return write_coupling(
        mdata,
        key_added,
        coupling,
        params=opts.params(),
        diagnostics=table,
        unmatched=unmatched,
        seconds=time.perf_counter() - t_start,
        extras=extras,
        copy=copy,
    )


def _solve(
    mdata: MuData,
    opts: _Options,
    src_pos: np.ndarray,
    tgt_pos: np.ndarray,
    dask_client: Any,
) -> tuple[sp.csr_matrix, dict[str, Any], tuple[list, list], dict[str, Any]]:
    """Solve every label block: the coupling, its diagnostics, unmatched labels, extras."""
    solver = opts.solver
    blocks, unmatched = _make_blocks(mdata, opts, tgt_pos)
    _check_memory(blocks, opts)
    with torch_threads(opts.n_threads if solver.device.type == "cpu" else None):
        xs, xt = _load_reps(mdata, opts)
        builder = CSRBuilder(
            n_obs=mdata.n_obs,
            blocks=blocks,
            src_pos=src_pos,
            tgt_pos=tgt_pos,
            dense=opts.dense_blocks,
            dtype=opts.np_dtype,
        )
        store = Compression(opts.dense_blocks, opts.top_k, opts.prune, opts.np_dtype)
        solution = None
        if dask_client is not None:
            done = solve_on_dask(
                dask_client, solver, blocks, xs, xt, finish=store, n_threads=opts.n_threads
            )
        else:
            solution = solver.solve(blocks, xs, xt)
            done = ((res.block, store(res, blocks[res.block])) for res in solution)
        results, dropped = {}, {}
        for bid, (res, lost) in done:
            builder.add(bid, res.plan)
            results[bid], dropped[bid] = res._replace(plan=None), lost
        coupling = builder.finish()
    table = diagnostics_table(blocks, results, dropped)
    _warn_unconverged(solver, table)
    extras = {} if solution is None else solution.extras.to_dict()
    extras["dropped_mass"] = float(sum(lost * blocks[b].weight for b, lost in dropped.items()))
    return coupling, table, unmatched, extras


def _align_auto(mdata: MuData, args: dict[str, Any]) -> MuData | None:
    """``align(method="auto")``: choose a candidate without truth, then run it."""
    kwargs = dict(args)
    for name in ("method", "objective", "candidates", "replicates", "epsilon"):
        kwargs.pop(name)
    objective = args["objective"]
    if objective is None:
        raise ValueError(
            "method='auto' needs `objective`: 'matching' (partners per cell; sharp couplings "
            "win) or 'imputation' (profiles per cell; smoother couplings win)."
        )
    if not kwargs["labeled"]:
        raise ValueError("method='auto' chooses among labeled couplings; use labeled=True.")
    if args["epsilon"] is not None:
        raise ValueError(
            "method='auto' chooses epsilon itself; give the values to choose among in "
            "`candidates` instead of `epsilon`."
        )
    if not isinstance(mdata, MuData):
        raise TypeError(f"`mdata` must be a MuData, got {type(mdata).__name__}.")
    selection = select_coupling(
        mdata,
        source=kwargs["source"],
        target=kwargs["target"],
        objective=objective,
        group_key=kwargs["group_key"],
        use_rep=kwargs["use_rep"],
        replicates=args["replicates"],
        candidates=args["candidates"],
        n_threads=kwargs["n_threads"],
    )
    if not selection.signal.within_label_signal:
        warnings.warn(
            "align(method='auto'): no within-label signal was found "
            f"({selection.reason}); returning the uniform-within-label coupling. Analyse the "
            "perturbations at the label level (effects against the control in each "
            "modality) rather than per cell.",
            UserWarning,
            stacklevel=3,
        )
    out = align(mdata, **{**kwargs, **selection.choice})
    target = out if kwargs["copy"] else mdata
    record = dict(target.uns[kwargs["key_added"]])
    record["selection"] = selection.to_dict()
    record["params"] = {**record["params"], "auto_objective": objective}
    target.uns[kwargs["key_added"]] = record
    return out


def _warn_unconverged(solver: Solver, table: dict[str, Any]) -> None:
    bad = ~table["converged"]
    if not bad.any():
        return
    names = format_labels(table["label"][bad])
    worst = float(np.nanmax(table["marginal_error"][bad]))
    reached = f"reach tol={solver.tol:g}" if hasattr(solver, "tol") else "converge"
    warnings.warn(
        f"align(method={solver.method!r}): {int(bad.sum())} problem(s) did not {reached} "
        f"within max_iter={getattr(solver, 'max_iter', None)} (largest relative marginal "
        f"error {worst:.1e}; labels: {names}); increase `max_iter` or `epsilon`, or loosen "
        "`tol`. See mdata.uns[key_added]['diagnostics'].",
        UserWarning,
        stacklevel=4,  # user -> align -> _solve -> here,
    )


# --------------------------------------------------------------------------------------------
# MuData-level arguments
# --------------------------------------------------------------------------------------------
@dataclass
class _Options:
    """The checked arguments of one ``align`` call, and its solver (``None``: perfect)."""

    source: str
    target: str
    method: str
    labeled: bool
    group_key: str
    use_rep: str
    n_pcs: int | None
    prune: float
    top_k: int | None
    n_threads: int | None
    dtype: str
    device: torch.device
    solver: Solver | None

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def dense_blocks(self) -> bool:
        dense = self.solver is None or self.solver.dense_plans
        return dense and self.prune == 0 and self.top_k is None

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "source": self.source,
            "target": self.target,
            "labeled": self.labeled,
            "group_key": self.group_key,
            "use_rep": self.use_rep,
        }
        if self.solver is not None:
            out.update(self.solver.params())
            if not self.labeled:
                out.pop("gw_form", None)  # one problem: the forms coincide
        out.update(
            n_pcs=self.n_pcs,
            prune=self.prune,
            top_k=self.top_k,
            dtype=self.dtype,
            device=str(self.device),
        )
        return {k: v for k, v in out.items() if v is not None}


def _validate(mdata: MuData, **kw: Any) -> _Options:
    if not isinstance(mdata, MuData):
        raise TypeError(f"`mdata` must be a MuData, got {type(mdata).__name__}.")
    check_source_target(mdata, kw["source"], kw["target"])
    for arg in ("source", "target"):
        if mdata.mod[kw[arg]].n_obs == 0:
            raise ValueError(f"`{arg}`={kw[arg]!r} has no cells; there is nothing to align.")
    method, labeled = kw["method"], bool(kw["labeled"])
    if method not in _METHODS:
        raise ValueError(f"Unknown `method`={method!r}; choose one of {list(_METHODS)}.")
    solver = None
    if method == "perfect":
        base = Solver(dtype=kw["dtype"], device=kw["device"])  # checks dtype and device
        dtype, device = base.dtype, base.device
    else:
        cls = solver_class(method)
        params = {k: kw[k] for k in _SOLVER_ARGS if cls.takes(k)}
        if not labeled and params.get("gw_form") in ("ryu", "per_label"):
            params["gw_form"] = "per_label"  # one global problem
        solver = make_solver(method, **params)
        dtype, device = solver.dtype, solver.device
    n_pcs = kw["n_pcs"]
    if n_pcs is not None and int(n_pcs) < 1:
        raise ValueError(f"`n_pcs` must be a positive integer, got {n_pcs!r}.")
    prune = float(kw["prune"])
    if not 0.0 <= prune < 1.0:
        raise ValueError(f"`prune` must be in [0, 1), got {kw['prune']!r}.")
    top_k = kw["top_k"]
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"`top_k` must be a positive integer or None, got {top_k!r}.")
        top_k = int(top_k)
    if kw["dask_client"] is not None:
        check_client(kw["dask_client"])
        if method == "perfect" or (labeled and solver.joint):
            what = "labeled gw with gw_form='ryu'" if method == "gw" else f"method={method!r}"
            raise ValueError(
                f"`dask_client` distributes independent label problems; {what} solves all "
                "labels as one problem. Use gw_form='per_label' (or another method), or no "
                "client."
            )
    if kw["n_threads"] is not None and int(kw["n_threads"]) < 1:
        raise ValueError(
            f"`n_threads` must be a positive integer or None, got {kw['n_threads']!r}."
        )
    mods = {"source": mdata.mod[kw["source"]], "target": mdata.mod[kw["target"]]}
    column = "truth_key" if method == "perfect" else "group_key"
    if method == "perfect" or labeled or method == "uniform":
        for arg, ad in mods.items():
            if kw[column] not in ad.obs:
                raise KeyError(
                    f"`{column}`={kw[column]!r} is not a column of mdata.mod[{kw[arg]!r}].obs "
                    f"(the {arg} modality)."
                )
    if solver is not None and solver.uses_points:
        use_rep = kw["use_rep"]
        for arg, ad in mods.items():
            if use_rep not in ("X", "X_pca") and use_rep not in ad.obsm:
                raise KeyError(
                    f"`use_rep`={use_rep!r} is not in mdata.mod[{kw[arg]!r}].obsm (the {arg} "
                    f"modality; available: {list(ad.obsm.keys())}). Compute the latent first "
                    "(e.g. groove_sc.tl.latent) or pass use_rep='X' / 'X_pca'."
                )
    return _Options(
        source=kw["source"],
        target=kw["target"],
        method=method,
        labeled=labeled,
        group_key=kw["group_key"],
        use_rep=kw["use_rep"],
        n_pcs=None if n_pcs is None else int(n_pcs),
        prune=prune,
        top_k=top_k,
        n_threads=None if kw["n_threads"] is None else int(kw["n_threads"]),
        dtype=dtype,
        device=device,
        solver=solver,
    )


def _make_blocks(
    mdata: MuData, opts: _Options, tgt_pos: np.ndarray
) -> tuple[list[LabelBlock], tuple[list[str], list[str]]]:
    src_ad, tgt_ad = mdata.mod[opts.source], mdata.mod[opts.target]
    if not opts.labeled:
        return [single_block(src_ad.n_obs, tgt_ad.n_obs, target_order=tgt_pos)], ([], [])
    ls = obs_labels(src_ad, opts.group_key)
    lt = obs_labels(tgt_ad, opts.group_key)
    n_missing = int(sum(v is None for v in ls)), int(sum(v is None for v in lt))
    if any(n_missing):
        warnings.warn(
            f"{n_missing[0]} source and {n_missing[1]} target cells have no "
            f"`{opts.group_key}` label (NaN); they are left unmatched.",
            UserWarning,
            stacklevel=4,  # user -> align -> _solve -> here,
        )
    blocks, only_s, only_t = label_blocks(ls, lt, target_order=tgt_pos)
    if not blocks:
        raise ValueError(
            f"No `{opts.group_key}` label is present in both {opts.source!r} and "
            f"{opts.target!r}; a labeled coupling would be empty."
        )
    if only_s or only_t:
        n_s = int(pd.Series(ls, dtype=object).isin(only_s).sum())
        n_t = int(pd.Series(lt, dtype=object).isin(only_t).sum())
        warnings.warn(
            f"Labels present in only one modality are left unmatched ({n_s} source and {n_t} "
            f"target cells get zero mass): only in {opts.source!r}: [{format_labels(only_s)}]; "
            f"only in {opts.target!r}: [{format_labels(only_t)}].",
            UserWarning,
            stacklevel=4,  # user -> align -> _solve -> here,
        )
    return blocks, (only_s, only_t)


def _available_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return math.inf


def _check_memory(blocks: list[LabelBlock], opts: _Options) -> None:
    """Refuse (before allocating) a coupling whose stored size alone exceeds physical memory."""
    k = opts.top_k
    nnz = sum(b.shape[0] * (b.shape[1] if k is None else min(k, b.shape[1])) for b in blocks)
    largest = max(b.shape[0] * b.shape[1] for b in blocks)
    # stored CSR (data + indices) plus the working tensors of the largest problem
    work = opts.solver.work_itemsize if opts.solver is not None else opts.np_dtype.itemsize
    need = nnz * (opts.np_dtype.itemsize + 4) + largest * work * 4
    avail = _available_memory()
    if need > avail:
        what = "the global (labeled=False) coupling" if not opts.labeled else "the coupling"
        raise MemoryError(
            f"{what} needs about {need / 2**30:.1f} GiB ({nnz:,} stored entries) but the machine "
            f"has {avail / 2**30:.1f} GiB; use labeled=True, more labels, `top_k` or `prune`."
        )


# --------------------------------------------------------------------------------------------
# representations
# --------------------------------------------------------------------------------------------
def _load_reps(mdata: MuData, opts: _Options) -> tuple[np.ndarray | None, np.ndarray | None]:
    if opts.solver is None or not opts.solver.uses_points:
        return None, None
    xs = read_rep(mdata.mod[opts.source], opts.source, opts.use_rep, opts.n_pcs)
    xt = read_rep(mdata.mod[opts.target], opts.target, opts.use_rep, opts.n_pcs)
    if opts.solver.shared_space and xs.shape[1] != xt.shape[1]:
        raise ValueError(
            f"method={opts.method!r} needs a shared space but `use_rep`={opts.use_rep!r} has "
            f"{xs.shape[1]} dims in {opts.source!r} and {xt.shape[1]} in {opts.target!r}; use "
            "method='gw' or 'coot' for representations that differ."
        )
    return xs, xt
