"""Optimal-transport aligners between the cells of two modalities of a MuData.

``align`` couples the cells of a *source* modality with the cells of a *target* modality, either
within labels (``labeled=True``: only cells carrying the same perturbation label may be coupled)
or globally. The coupling is stored sparse in ``mdata.obsp`` (union rows x union columns) and its
parameters and per-label diagnostics in ``mdata.uns``.

Solvers
-------
* ``sinkhorn`` and the inner problems of labeled ``gw`` (Ryu form) and labeled ``coot`` use a
  batched, stabilised Sinkhorn written in torch (below): many labels are padded into one
  ``(B, n, m)`` tensor (padding carries zero mass, which is exact), the iterations run in the
  kernel domain with log-domain absorption (Schmitzer 2019), so float32 with a tiny ``epsilon``
  neither underflows into an all-zero plan nor silently returns one, and the tensors live on
  ``device`` (CPU or CUDA). ``ot.solve_batch`` (POT 0.9.7) was considered: it has no unbalanced
  marginals, no warm start and no per-problem convergence flag, all of which are needed here.
* ``gw``, ``fgw`` and ``coot`` (labeled and global) run their own outer loops on the same
  batched solver; exact variants (``epsilon=0``) take per-label ``ot.emd`` steps. They match
  POT's ``(entropic_)(fused_)gromov_wasserstein`` and ``co_optimal_transport`` on one label
  (tested), and never form an ``n x n`` intra-modality matrix.
* ``emd`` and the semi-relaxed GW/FGW variants call POT on CPU.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from mudata import MuData

__all__ = ["align"]

_METHODS = ("sinkhorn", "emd", "gw", "fgw", "coot", "uniform", "perfect")
_GW_FORMS = ("ryu", "per_label")
_METRICS = ("sqeuclidean", "euclidean", "cosine")
_NORMALIZE = ("mean", "max", None)
_DEFAULT_EPSILON = {"sinkhorn": 0.05, "gw": 0.05, "fgw": 0.05, "coot": 0.05}
_DEFAULT_MAX_ITER = {"sinkhorn": 1000, "emd": 1_000_000, "gw": 200, "fgw": 200, "coot": 100}
#: Entries per padded tensor of a label batch (float32: 16 MiB); a larger label runs alone.
_BATCH_ENTRIES = 2**22
#: Absorb the Sinkhorn scalings into the log-potentials when |log u| or |log v| exceeds this.
_ABSORB_LOG = 20.0
_INNER_MAX_ITER = 1000
#: On CPU, problems with at least this many entries use one gemv each instead of a bmm.
_GEMV_MIN_ENTRIES = 2**10
#: Epsilon scaling: a Sinkhorn solve with a smaller epsilon starts at this one and halves it,
#: spending at most ``_LEVEL_ITER`` iterations per intermediate level.
_EPS_START = 0.05
_LEVEL_ITER = 100
#: ... and is used when the costs' standard deviation exceeds this multiple of epsilon.
_SCALING_RATIO = 8.0
#: Inner Sinkhorn tolerance of GW/COOT by dtype (float32 cannot resolve much below 1e-6).
_INNER_TOL = {torch.float32: 1e-6, torch.float64: 1e-9}
_ALL = "__all__"


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
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
    group_key: str = "perturbation",
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
    label is its own problem (except labeled GW in the Ryu et al. form, see ``gw_form``), so the
    work and memory are :math:`\sum_l n_l m_l`, never :math:`n \times m`.

    **Masses.** Each label block is solved with uniform unit mass on both sides and then scaled
    by :math:`w_l = n_l / n`, where :math:`n_l` is the number of source cells of label ``l`` and
    :math:`n` the number of matched source cells. In the balanced case every matched source cell
    has row mass :math:`1/n`, the target cells of label ``l`` share :math:`w_l` uniformly and the
    whole coupling has mass 1. Without labels (``labeled=False``) both marginals are uniform over
    all cells. Cells whose label is missing (NaN) or present in one modality only are left
    unmatched (zero row/column mass) with a warning naming the labels.

    **Costs.** ``metric`` gives the cross-modality cost (``sinkhorn``, ``emd``, ``fgw``) between
    the two representations, which must live in one shared space. ``normalize="mean"`` divides
    the cost matrix of each problem (each label when labeled, the whole matrix otherwise) by its
    mean, so ``epsilon`` is relative to the typical cost of that problem; ``"max"`` divides by
    the maximum. GW and FGW use squared Euclidean intra-modality distances normalised in the same
    way (per label for ``per_label`` / ``fgw``, over all cells of the modality for ``ryu`` and
    the global problem); with heavy-tailed distances (outlier cells) the GW gradient is large
    against ``epsilon`` and the solves need many iterations: prefer a PCA or latent
    representation, a larger ``epsilon`` or ``normalize="max"``. COOT divides each modality's
    feature matrix by its root mean square.

    **Epsilon.** Sinkhorn needs about ``1 / epsilon`` iterations on sharp problems; when
    ``epsilon`` is small against the spread of the costs the solver anneals it (epsilon
    scaling from the costs' standard deviation, halving), which is much faster than starting
    at the target value.

    Parameters
    ----------
    mdata
        MuData with the two modalities. Source and target cells are placed into the union row
        space through ``mdata.obsmap``; weakly paired data (distinct ``obs_names``) and paired
        test data (shared ``obs_names``, each cell once in the union) both work.
    source, target
        Modality names; rows of the coupling are source cells, columns target cells.
    method
        ``"sinkhorn"``: entropic OT (batched stabilised Sinkhorn, torch, CPU or GPU).
        ``"emd"``: exact OT (``ot.emd``, CPU).
        ``"gw"``: Gromov-Wasserstein on intra-modality distances (no shared space needed):
        entropic when ``epsilon > 0``, exact (conditional gradient) when ``epsilon == 0``.
        ``"fgw"``: fused GW, ``(1 - alpha) * OT + alpha * GW`` (needs a shared space for the
        linear term); entropic or exact as for ``gw``.
        ``"coot"``: co-optimal transport (Redko et al. 2020) between the feature matrices; with
        labels, one sample coupling per label and one shared feature coupling.
        ``"uniform"``: uniform within label, the reference every method must beat (needs no
        representation).
        ``"perfect"``: for evaluation only, mass ``1 / n_pairs`` on each true pair given by
        ``truth_key`` (jointly measured test cells); ignores labels and representations.
        ``"auto"``: choose among ``candidates`` without ground truth, for ``objective``
        (:func:`groove_sc.tl.select_coupling`), from two replicate representations
        (``replicates``); the chosen aligner is then run on ``use_rep``. When the
        replicates show no within-label signal the uniform coupling is returned, with a
        warning. Needs ``labeled=True``.
    objective
        ``method="auto"`` only: ``"matching"`` (partners per cell; favours sharp couplings)
        or ``"imputation"`` (profiles per cell; favours smoother couplings).
    candidates
        ``method="auto"`` only: ``tl.align`` keyword arguments of the aligners to choose
        among (default :data:`groove_sc.tl.DEFAULT_CANDIDATES`: uniform, Sinkhorn at
        ``epsilon`` 1, 0.3, 0.1, 0.03, 0.01, and EMD).
    replicates
        ``method="auto"`` only: two ``.obsm`` keys holding representations of the cells from
        independent fits on disjoint cells; default: those recorded for ``use_rep`` by
        :func:`groove_sc.tl.replicate_latents`.
    labeled
        Restrict the coupling to same-label pairs. ``False`` solves one global problem and
        stores a dense ``n x m`` block (mind the memory).
    group_key
        Label column in ``mdata.mod[source].obs`` and ``mdata.mod[target].obs``.
    use_rep
        Representation: a key of ``.obsm`` in both modalities (default the shared GROOVE latent
        ``"X_groove"``), ``"X"`` for the raw features (densified; for GW/COOT, which need no
        shared space), or ``"X_pca"``: ``.obsm["X_pca"]`` when present (first ``n_pcs``
        columns), otherwise a per-modality PCA of ``.X`` with ``n_pcs`` (default 50) components
        computed on the fly and not stored.
    epsilon
        Entropic regularisation relative to the normalised cost; ``None`` uses 0.05 (with
        mean-normalised costs about 20 effective partners per cell among 1000 unstructured
        ones; smaller values sharpen the plan but need more iterations: labeled GW at 0.01
        often stops at ``max_iter``). ``0`` selects the exact solver
        for ``gw``, ``fgw`` and ``coot``; ``sinkhorn`` needs ``epsilon > 0``; ``emd`` and
        ``uniform`` ignore it.
    reg_m
        Unbalanced OT: KL penalty on the marginals (``sinkhorn``, and ``emd`` through
        ``ot.unbalanced.mm_unbalanced``). ``None`` is balanced. Useful when the cell
        composition within a label differs between modalities.
    semi_relaxed
        Keep the source marginal exact and relax the target marginal: penalised by ``reg_m``
        (``sinkhorn``) or left free when ``reg_m`` is ``None`` (``sinkhorn``: each source cell
        spreads its mass by a softmin over its label's targets; ``emd``: each source cell goes
        to its nearest target; ``gw``/``fgw``: POT's semi-relaxed solvers, per label).
    gw_form
        Labeled GW only. ``"ryu"`` (Ryu et al. 2024): one GW problem with intra-modality
        distances over all matched cells and the label mask on the coupling; squared Euclidean
        distances factorise exactly (rank ``d + 2``), so it never forms an ``n x n`` matrix.
        ``"per_label"``: an independent GW problem per label on intra-label distances (POT).
    alpha
        Weight of the GW term in ``fgw``.
    metric
        Cross-modality cost: ``"sqeuclidean"``, ``"euclidean"`` or ``"cosine"``.
    normalize
        Cost normalisation, see above (``None``: raw costs).
    n_pcs
        Components for ``use_rep="X_pca"``.
    max_iter
        Iterations: Sinkhorn iterations (default 1000) for ``sinkhorn``; network-simplex
        iterations (default 1e6) for ``emd``; outer iterations for ``gw``/``fgw`` (200) and
        block-coordinate iterations for ``coot`` (100). Inner Sinkhorn solves of labeled
        GW/COOT use up to 1000 iterations, warm-started, with tolerance 1e-6 (float32) or 1e-9
        (float64).
    tol
        Convergence tolerance, default 1e-5. Sinkhorn: largest relative row-marginal error
        :math:`\max_i |(T1)_i - a_i| / a_i` (columns are exact after each iteration), or the
        largest change of the log-scalings when unbalanced (float32 cannot go much below 1e-6).
        GW/FGW: relative (Frobenius) change of the coupling between outer iterations for the
        labeled Ryu form, POT's criteria otherwise. COOT: L1 change of the sample coupling.
    batch_size
        Maximum number of labels solved together in one padded batch (``None``: as many as fit
        in about ``2**22`` entries per tensor; labels are sorted by size so padding is small).
    prune
        Drop stored entries smaller than ``prune`` times the largest entry of their row
        (``0``: keep the dense blocks). The dropped mass is reported per label.
    top_k
        Keep only the ``top_k`` largest entries of each row of each label block (``None``: all).
        The stored coupling then has at most ``top_k`` entries per source cell, so its size is
        ``n_source x top_k`` instead of :math:`\sum_l n_l m_l`: at a million cells in 1000
        labels the full blocks hold 1e9 entries (about 8 GB), ``top_k=50`` about 0.4 GB. Kept
        entries are not renormalised; the dropped mass is reported per label in
        ``diagnostics["dropped_mass"]`` and in total in ``uns[key_added]["dropped_mass"]``.
        Applied block by block as the solver yields them, so memory stays bounded by one batch
        of labels plus the kept entries (up to twice those while the final CSR matrix is
        assembled). Combine with ``prune`` to drop small entries too.
    dtype
        Floating type of the torch solver and of the stored coupling. ``emd``, exact GW/FGW/COOT
        (``epsilon=0``) and the semi-relaxed GW/FGW (POT) solve in float64 and store in
        ``dtype``.
    device
        Torch device of the batched solver (``None``: CPU; ``"cuda"``): ``sinkhorn`` and the
        entropic ``gw``/``fgw``/``coot``. EMD steps and POT calls always run on CPU.
    n_threads
        Torch intra-op threads on CPU during the call (restored afterwards). The iterations are
        memory-bound matrix-vector products; 1 avoids thread-wake-up overhead that dominated on
        small VMs. ``None`` leaves torch's setting untouched. With ``dask_client`` it applies
        inside each task on the workers.
    dask_client
        A :class:`distributed.Client` (optional extra ``groove-sc[dask]``). The label batches
        are solved as tasks on the cluster's workers (processes or machines) and the blocks
        streamed back into the coupling as they finish (``top_k`` and ``prune`` are applied on
        the workers, so only the kept entries travel). Each task receives only its labels'
        cells, and the batches are the same as in the single-process path, so the coupling is
        the same. Needs independent label problems: every method except labeled ``gw`` with
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
        :class:`scipy.sparse.csr_matrix` of shape ``(mdata.n_obs, mdata.n_obs)``; non-zero only
        in rows of source cells and columns of target cells (placed through ``mdata.obsmap``).
        Read it back with the orientation of the modalities using
        ``groove_sc.tl.impute`` / ``groove_sc.tl.matching_metrics``.
    ``mdata.uns[key_added]``
        ``"params"`` (the arguments, ``None`` values omitted), ``"selection"``
        (``method="auto"`` only: the objective, the candidates and their scores, the verdict
        ``within_label_signal`` and the choice), ``"diagnostics"`` (a dict of
        arrays, one entry per label: ``label``, ``n_source``, ``n_target``, ``mass`` (stored block
        mass), ``cost`` (objective of the unit-mass block on normalised costs, without entropy;
        NaN for ``uniform``), ``converged``, ``n_iter``, ``marginal_error`` (largest relative
        error of the row and column marginals of the unit-mass block), ``dropped_mass`` and
        ``seconds`` (a batch's time is shared among its labels by size)),
        ``"unmatched_source_labels"``, ``"unmatched_target_labels"`` and ``"dropped_mass"``
        (total mass removed by ``top_k``/``prune``). All h5mu-writable.

    Examples
    --------
    >>> import groove_sc as gs
    >>> gs.tl.align(mdata, source="rna", target="protein", method="sinkhorn")
    >>> T = mdata.obsp["groove_coupling"]
    """
    if method == "auto":
        return _align_auto(
            mdata,
            dict(
                source=source,
                target=target,
                labeled=labeled,
                group_key=group_key,
                use_rep=use_rep,
                reg_m=reg_m,
                semi_relaxed=semi_relaxed,
                gw_form=gw_form,
                alpha=alpha,
                metric=metric,
                normalize=normalize,
                n_pcs=n_pcs,
                max_iter=max_iter,
                tol=tol,
                batch_size=batch_size,
                prune=prune,
                top_k=top_k,
                dtype=dtype,
                device=device,
                n_threads=n_threads,
                dask_client=dask_client,
                truth_key=truth_key,
                key_added=key_added,
                copy=copy,
            ),
            objective=objective,
            candidates=candidates,
            replicates=replicates,
            epsilon=epsilon,
        )
    for name, value in (("objective", objective), ("candidates", candidates)):
        if value is not None:
            raise ValueError(f"`{name}` is only used with method='auto', got method={method!r}.")
    opts = _validate(
        mdata,
        source=source,
        target=target,
        method=method,
        labeled=labeled,
        group_key=group_key,
        use_rep=use_rep,
        epsilon=epsilon,
        reg_m=reg_m,
        semi_relaxed=semi_relaxed,
        gw_form=gw_form,
        alpha=alpha,
        metric=metric,
        normalize=normalize,
        n_pcs=n_pcs,
        max_iter=max_iter,
        tol=tol,
        batch_size=batch_size,
        prune=prune,
        top_k=top_k,
        dtype=dtype,
        device=device,
        n_threads=n_threads,
        dask_client=dask_client,
        truth_key=truth_key,
    )
    t_start = time.perf_counter()
    src_pos = _union_positions(mdata, source)
    tgt_pos = _union_positions(mdata, target)
    if opts.method == "perfect":
        coupling, diag_table = _perfect_coupling(mdata, opts, truth_key, src_pos, tgt_pos)
        return _write(mdata, opts, coupling, diag_table, ([], []), t_start, key_added, copy)
    blocks, unmatched = _make_blocks(mdata, opts, tgt_pos)
    _check_memory(blocks, opts)

    with _torch_threads(opts.n_threads if opts.device.type == "cpu" else None):
        reps = _load_reps(mdata, opts, blocks)
        builder = _CSRBuilder(
            n_obs=mdata.n_obs,
            blocks=blocks,
            src_pos=src_pos,
            tgt_pos=tgt_pos,
            dense=opts.dense_blocks,
            dtype=opts.np_dtype,
        )
        diags: dict[int, dict[str, Any]] = {}
        if dask_client is not None:
            from ._distributed import solve_on_dask

            results = solve_on_dask(dask_client, blocks, reps, opts)
        else:
            results = (
                (bid, *_compress_block(plan, blocks[bid], opts), diag)
                for bid, plan, diag in _SOLVERS[opts.method](blocks, reps, opts)
            )
        for bid, plan, dropped, diag in results:
            builder.add(bid, plan)
            diag["dropped_mass"] = dropped * blocks[bid].weight
            diags[bid] = diag
        coupling = builder.finish()
        opts.extra["dropped_mass"] = float(sum(d["dropped_mass"] for d in diags.values()))

    diag_table = _diagnostics_table(blocks, diags)
    return _write(mdata, opts, coupling, diag_table, unmatched, t_start, key_added, copy)


def _align_auto(
    mdata: MuData,
    kwargs: dict[str, Any],
    *,
    objective: str | None,
    candidates: Sequence[dict[str, Any]] | None,
    replicates: Sequence[str] | None,
    epsilon: float | None,
) -> MuData | None:
    """``align(method="auto")``: choose a candidate without truth, then run it."""
    from ._selection import select_coupling  # the selection module builds on this one

    if objective is None:
        raise ValueError(
            "method='auto' needs `objective`: 'matching' (partners per cell; sharp couplings "
            "win) or 'imputation' (profiles per cell; smoother couplings win)."
        )
    if not kwargs["labeled"]:
        raise ValueError("method='auto' chooses among labeled couplings; use labeled=True.")
    if epsilon is not None:
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
        replicates=replicates,
        candidates=candidates,
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
    chosen = {**kwargs, **selection.choice}
    out = align(mdata, **chosen)
    target = out if kwargs["copy"] else mdata
    record = dict(target.uns[kwargs["key_added"]])
    record["selection"] = selection.to_dict()
    record["params"] = {**record["params"], "auto_objective": objective}
    target.uns[kwargs["key_added"]] = record
    return out


def _write(
    mdata: MuData,
    opts: _Options,
    coupling: sp.csr_matrix,
    diag_table: dict[str, Any],
    unmatched: tuple[list[str], list[str]],
    t_start: float,
    key_added: str,
    copy: bool,
) -> MuData | None:
    bad = ~diag_table["converged"]
    if bad.any():
        names = _format_labels(diag_table["label"][bad])
        worst = float(np.nanmax(diag_table["marginal_error"][bad]))
        warnings.warn(
            f"align(method={opts.method!r}): {int(bad.sum())} problem(s) did not reach "
            f"tol={opts.tol:g} within max_iter={opts.max_iter} (largest relative marginal error "
            f"{worst:.1e}; labels: {names}); increase `max_iter` or `epsilon`, or loosen `tol`. "
            "See mdata.uns[key_added]['diagnostics'].",
            UserWarning,
            stacklevel=2,
        )
    uns = {
        "params": opts.params(),
        "diagnostics": diag_table,
        "unmatched_source_labels": np.asarray(unmatched[0], dtype=object).astype(str),
        "unmatched_target_labels": np.asarray(unmatched[1], dtype=object).astype(str),
        "seconds": float(time.perf_counter() - t_start),
        **opts.extra,
    }

    out = mdata.copy() if copy else mdata
    out.obsp[key_added] = coupling
    out.uns[key_added] = uns
    return out if copy else None


# --------------------------------------------------------------------------------------------
# options and validation
# --------------------------------------------------------------------------------------------
@dataclass
class _Options:
    source: str
    target: str
    method: str
    labeled: bool
    group_key: str
    use_rep: str
    epsilon: float
    reg_m: float | None
    semi_relaxed: bool
    gw_form: str
    alpha: float
    metric: str
    normalize: str | None
    n_pcs: int | None
    max_iter: int
    tol: float
    batch_size: int | None
    prune: float
    top_k: int | None
    dtype: str
    device: torch.device
    n_threads: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def torch_dtype(self) -> torch.dtype:
        return torch.float32 if self.dtype == "float32" else torch.float64

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def dense_blocks(self) -> bool:
        return self.method != "emd" and self.prune == 0 and self.top_k is None

    @property
    def fa(self) -> float:
        """Exponent of the source scaling update (1 = exact marginal)."""
        if self.reg_m is None or self.semi_relaxed:
            return 1.0
        return self.reg_m / (self.reg_m + self.epsilon)

    @property
    def fb(self) -> float:
        """Exponent of the target scaling update (0 = free marginal)."""
        if self.reg_m is None:
            return 0.0 if self.semi_relaxed else 1.0
        return self.reg_m / (self.reg_m + self.epsilon)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "source": self.source,
            "target": self.target,
            "labeled": self.labeled,
            "group_key": self.group_key,
            "use_rep": self.use_rep,
            "epsilon": self.epsilon,
            "reg_m": self.reg_m,
            "semi_relaxed": self.semi_relaxed,
            "gw_form": self.gw_form if self.method == "gw" and self.labeled else None,
            "alpha": self.alpha if self.method == "fgw" else None,
            "metric": self.metric,
            "normalize": self.normalize,
            "n_pcs": self.n_pcs,
            "max_iter": self.max_iter,
            "tol": self.tol,
            "prune": self.prune,
            "top_k": self.top_k,
            "dtype": self.dtype,
            "device": str(self.device),
        }
        return {k: v for k, v in out.items() if v is not None}


def _validate(mdata: MuData, **kw: Any) -> _Options:
    if not isinstance(mdata, MuData):
        raise TypeError(f"`mdata` must be a MuData, got {type(mdata).__name__}.")
    for arg in ("source", "target"):
        name = kw[arg]
        if name not in mdata.mod:
            raise KeyError(
                f"`{arg}`={name!r} is not a modality of `mdata`; available: {list(mdata.mod)}."
            )
    if kw["source"] == kw["target"]:
        raise ValueError("`source` and `target` must be different modalities.")
    for arg in ("source", "target"):
        if mdata.mod[kw[arg]].n_obs == 0:
            raise ValueError(f"`{arg}`={kw[arg]!r} has no cells; there is nothing to align.")
    method = kw["method"]
    if method not in _METHODS:
        raise ValueError(f"Unknown `method`={method!r}; choose one of {list(_METHODS)}.")
    if kw["gw_form"] not in _GW_FORMS:
        raise ValueError(f"Unknown `gw_form`={kw['gw_form']!r}; choose one of {list(_GW_FORMS)}.")
    if kw["metric"] not in _METRICS:
        raise ValueError(f"Unknown `metric`={kw['metric']!r}; choose one of {list(_METRICS)}.")
    if kw["normalize"] not in _NORMALIZE:
        raise ValueError(
            f"Unknown `normalize`={kw['normalize']!r}; choose one of {list(_NORMALIZE)}."
        )
    if kw["dtype"] not in ("float32", "float64"):
        raise ValueError(f"`dtype` must be 'float32' or 'float64', got {kw['dtype']!r}.")
    eps = kw["epsilon"]
    if eps is None:
        eps = _DEFAULT_EPSILON.get(method, 0.0)
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"`epsilon` must be a finite number >= 0, got {kw['epsilon']!r}.")
    if method == "sinkhorn" and eps == 0:
        raise ValueError("`epsilon` must be > 0 for method='sinkhorn' (use method='emd').")
    reg_m = kw["reg_m"]
    if reg_m is not None:
        reg_m = float(reg_m)
        if not (reg_m > 0 and math.isfinite(reg_m)):
            raise ValueError(f"`reg_m` must be a finite number > 0 or None, got {kw['reg_m']!r}.")
        if method not in ("sinkhorn", "emd", "uniform"):
            raise ValueError(
                f"`reg_m` (unbalanced OT) is supported for method='sinkhorn' and 'emd', not "
                f"{method!r}; for GW/FGW use `semi_relaxed=True`."
            )
        if method == "emd" and kw["semi_relaxed"]:
            raise ValueError(
                "method='emd' with `semi_relaxed=True` supports only `reg_m=None` (free target "
                "marginal); use method='sinkhorn' for a penalised target marginal."
            )
    if kw["semi_relaxed"] and method == "coot":
        raise ValueError("`semi_relaxed=True` is not available for method='coot'.")
    if kw["semi_relaxed"] and method == "gw" and kw["labeled"] and kw["gw_form"] == "ryu":
        raise ValueError(
            "`semi_relaxed=True` with labeled GW needs gw_form='per_label' (POT's semi-relaxed "
            "GW solver is applied per label)."
        )
    if not 0.0 <= float(kw["alpha"]) <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {kw['alpha']!r}.")
    n_pcs = kw["n_pcs"]
    if n_pcs is not None and int(n_pcs) < 1:
        raise ValueError(f"`n_pcs` must be a positive integer, got {n_pcs!r}.")
    max_iter = kw["max_iter"]
    if max_iter is None:
        max_iter = _DEFAULT_MAX_ITER.get(method, 1)
    if int(max_iter) < 1:
        raise ValueError(f"`max_iter` must be >= 1, got {kw['max_iter']!r}.")
    tol = kw["tol"]
    if tol is None:
        tol = 1e-5
    if not float(tol) > 0:
        raise ValueError(f"`tol` must be > 0, got {kw['tol']!r}.")
    if kw["batch_size"] is not None and int(kw["batch_size"]) < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {kw['batch_size']!r}.")
    prune = float(kw["prune"])
    if not 0.0 <= prune < 1.0:
        raise ValueError(f"`prune` must be in [0, 1), got {kw['prune']!r}.")
    top_k = kw["top_k"]
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise ValueError(f"`top_k` must be a positive integer or None, got {top_k!r}.")
        top_k = int(top_k)
    if kw["dask_client"] is not None:
        _check_dask(kw["dask_client"], method, kw)
    device = torch.device("cpu" if kw["device"] is None else kw["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device`={kw['device']!r} requested but CUDA is not available.")
    if kw["n_threads"] is not None and int(kw["n_threads"]) < 1:
        raise ValueError(
            f"`n_threads` must be a positive integer or None, got {kw['n_threads']!r}."
        )

    src, tgt = mdata.mod[kw["source"]], mdata.mod[kw["target"]]
    if method == "perfect":
        for arg, ad in (("source", src), ("target", tgt)):
            if kw["truth_key"] not in ad.obs:
                raise KeyError(
                    f"`truth_key`={kw['truth_key']!r} is not a column of "
                    f"mdata.mod[{kw[arg]!r}].obs (the {arg} modality)."
                )
    elif kw["labeled"] or method == "uniform":
        for arg, ad in (("source", src), ("target", tgt)):
            if kw["group_key"] not in ad.obs:
                raise KeyError(
                    f"`group_key`={kw['group_key']!r} is not a column of "
                    f"mdata.mod[{kw[arg]!r}].obs (the {arg} modality)."
                )
    if method not in ("uniform", "perfect"):
        use_rep = kw["use_rep"]
        for arg, ad in (("source", src), ("target", tgt)):
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
        labeled=bool(kw["labeled"]),
        group_key=kw["group_key"],
        use_rep=kw["use_rep"],
        epsilon=eps,
        reg_m=reg_m,
        semi_relaxed=bool(kw["semi_relaxed"]),
        gw_form=kw["gw_form"],
        alpha=float(kw["alpha"]),
        metric=kw["metric"],
        normalize=kw["normalize"],
        n_pcs=None if n_pcs is None else int(n_pcs),
        max_iter=int(max_iter),
        tol=float(tol),
        batch_size=None if kw["batch_size"] is None else int(kw["batch_size"]),
        prune=prune,
        top_k=top_k,
        dtype=kw["dtype"],
        device=device,
        n_threads=None if kw["n_threads"] is None else int(kw["n_threads"]),
    )


def _check_dask(client: Any, method: str, kw: dict[str, Any]) -> None:
    try:
        from distributed import Client
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "`dask_client` needs the optional dependency distributed: "
            "pip install 'groove-sc[dask]'."
        ) from err
    if not isinstance(client, Client):
        raise TypeError(
            f"`dask_client` must be a distributed.Client or None, got {type(client).__name__}."
        )
    coupled = kw["labeled"] and (
        method == "coot" or (method == "gw" and kw["gw_form"] == "ryu" and not kw["semi_relaxed"])
    )
    if coupled or method == "perfect":
        what = "labeled gw with gw_form='ryu'" if method == "gw" else f"method={method!r}"
        raise ValueError(
            f"`dask_client` distributes independent label problems; {what} solves all labels "
            "as one problem. Use gw_form='per_label' (or another method), or no client."
        )


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------
# cells, labels and blocks
# --------------------------------------------------------------------------------------------
def _union_positions(mdata: MuData, mod: str) -> np.ndarray:
    """Row of ``mdata`` (union row space) of every cell of modality ``mod``, in its order."""
    n_mod = mdata.mod[mod].n_obs
    obsmap = np.asarray(mdata.obsmap[mod]).astype(np.int64)
    if obsmap.shape[0] != mdata.n_obs:
        raise ValueError(
            f"mdata.obsmap[{mod!r}] has {obsmap.shape[0]} entries but mdata has {mdata.n_obs} "
            "rows; call mdata.update() after changing the modalities."
        )
    present = np.flatnonzero(obsmap > 0)
    pos = np.full(n_mod, -1, dtype=np.int64)
    pos[obsmap[present] - 1] = present
    if present.size != n_mod or (pos < 0).any():
        raise ValueError(
            f"mdata.obsmap[{mod!r}] does not cover the {n_mod} cells of modality {mod!r} "
            "(duplicated obs_names or a stale MuData); call mdata.update() and make obs_names "
            "unique within each modality."
        )
    return pos


def _labels(adata: Any, key: str) -> np.ndarray:
    col = adata.obs[key]
    out = col.astype(object).to_numpy()
    missing = pd.isna(col).to_numpy()
    out = np.where(missing, None, out)
    return np.asarray([None if v is None else str(v) for v in out], dtype=object)


@dataclass
class _Block:
    label: str
    src: np.ndarray  # indices into the source modality
    tgt: np.ndarray  # indices into the target modality, sorted by union position
    weight: float  # mass of the block in the stored coupling

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.src), len(self.tgt)


def _format_labels(labels: Sequence[Any], limit: int = 20) -> str:
    labels = [str(x) for x in labels]
    head = ", ".join(repr(x) for x in labels[:limit])
    return head + (f", ... ({len(labels)} in total)" if len(labels) > limit else "")


def _make_blocks(
    mdata: MuData, opts: _Options, tgt_pos: np.ndarray
) -> tuple[list[_Block], tuple[list[str], list[str]]]:
    src_ad, tgt_ad = mdata.mod[opts.source], mdata.mod[opts.target]
    if not opts.labeled:
        if src_ad.n_obs == 0 or tgt_ad.n_obs == 0:
            raise ValueError("Both modalities need at least one cell.")
        tgt = np.argsort(tgt_pos, kind="stable")
        return [_Block(_ALL, np.arange(src_ad.n_obs), tgt, 1.0)], ([], [])
    ls = _labels(src_ad, opts.group_key)
    lt = _labels(tgt_ad, opts.group_key)
    n_missing = int(sum(v is None for v in ls)), int(sum(v is None for v in lt))
    if any(n_missing):
        warnings.warn(
            f"{n_missing[0]} source and {n_missing[1]} target cells have no "
            f"`{opts.group_key}` label (NaN); they are left unmatched.",
            UserWarning,
            stacklevel=3,
        )
    set_s = {v for v in ls if v is not None}
    set_t = {v for v in lt if v is not None}
    shared = sorted(set_s & set_t)
    only_s, only_t = sorted(set_s - set_t), sorted(set_t - set_s)
    if not shared:
        raise ValueError(
            f"No `{opts.group_key}` label is present in both {opts.source!r} and "
            f"{opts.target!r}; a labeled coupling would be empty."
        )
    if only_s or only_t:
        n_s = int(pd.Series(ls, dtype=object).isin(only_s).sum())
        n_t = int(pd.Series(lt, dtype=object).isin(only_t).sum())
        warnings.warn(
            f"Labels present in only one modality are left unmatched ({n_s} source and {n_t} "
            f"target cells get zero mass): only in {opts.source!r}: [{_format_labels(only_s)}]; "
            f"only in {opts.target!r}: [{_format_labels(only_t)}].",
            UserWarning,
            stacklevel=3,
        )
    codes_s = pd.Categorical(ls, categories=shared).codes
    codes_t = pd.Categorical(lt, categories=shared).codes
    order_s = np.argsort(codes_s, kind="stable")
    # target cells grouped by label, sorted by union position within each label
    order_t = np.lexsort((tgt_pos, codes_t))
    bounds_s = np.searchsorted(codes_s[order_s], np.arange(len(shared) + 1))
    bounds_t = np.searchsorted(codes_t[order_t], np.arange(len(shared) + 1))
    n_matched = int(bounds_s[-1] - bounds_s[0])
    blocks = []
    for k, lab in enumerate(shared):
        src = order_s[bounds_s[k] : bounds_s[k + 1]]
        tgt = order_t[bounds_t[k] : bounds_t[k + 1]]
        blocks.append(_Block(lab, src, tgt, len(src) / n_matched))
    return blocks, (only_s, only_t)


# --------------------------------------------------------------------------------------------
# representations
# --------------------------------------------------------------------------------------------
@dataclass
class _Reps:
    source: np.ndarray | None
    target: np.ndarray | None


def _dense(x: Any, dtype: np.dtype) -> np.ndarray:
    if sp.issparse(x):
        x = x.toarray()
    return np.ascontiguousarray(np.asarray(x), dtype=dtype)


def _get_rep(adata: Any, mod: str, opts: _Options) -> np.ndarray:
    use_rep = opts.use_rep
    dtype = np.dtype(np.float64)
    if use_rep == "X":
        x = _dense(adata.X, dtype)
    elif use_rep == "X_pca" and "X_pca" not in adata.obsm:
        from scanpy.pp import pca

        n_comps = opts.n_pcs or 50
        n_comps = max(1, min(n_comps, min(adata.n_obs, adata.n_vars) - 1))
        x = _dense(pca(adata.X, n_comps=n_comps), dtype)
    else:
        x = adata.obsm[use_rep]
        if isinstance(x, pd.DataFrame):
            x = x.to_numpy()
        x = _dense(x, dtype)
        if use_rep == "X_pca" and opts.n_pcs is not None:
            x = x[:, : opts.n_pcs]
    if x.ndim != 2 or x.shape[0] != adata.n_obs:
        raise ValueError(
            f"`use_rep`={use_rep!r} of modality {mod!r} must be a cells x dims matrix."
        )
    if not np.isfinite(x).all():
        raise ValueError(f"`use_rep`={use_rep!r} of modality {mod!r} contains NaN or inf.")
    return x


def _load_reps(mdata: MuData, opts: _Options, blocks: list[_Block]) -> _Reps:
    if opts.method == "uniform":
        return _Reps(None, None)
    xs = _get_rep(mdata.mod[opts.source], opts.source, opts)
    xt = _get_rep(mdata.mod[opts.target], opts.target, opts)
    if opts.method in ("sinkhorn", "emd", "fgw") and xs.shape[1] != xt.shape[1]:
        raise ValueError(
            f"method={opts.method!r} needs a shared space but `use_rep`={opts.use_rep!r} has "
            f"{xs.shape[1]} dims in {opts.source!r} and {xt.shape[1]} in {opts.target!r}; use "
            "method='gw' or 'coot' for representations that differ."
        )
    return _Reps(xs, xt)


# --------------------------------------------------------------------------------------------
# batched stabilised Sinkhorn (torch)
# --------------------------------------------------------------------------------------------
def _ratio(m: torch.Tensor, s: torch.Tensor, f: float, valid: torch.Tensor) -> torch.Tensor:
    q = m / s
    if f != 1.0:
        q = q.pow(f)
    return torch.where(valid, q, torch.zeros((), dtype=q.dtype, device=q.device))


def _lse_step(
    cs: torch.Tensor,
    other: torch.Tensor,
    logm: torch.Tensor,
    f: float,
    valid: torch.Tensor,
    dim: int,
) -> torch.Tensor:
    """Exact log-domain half step ``f * (log m - LSE(other - C/eps))`` along ``dim``."""
    t = other[:, None, :] - cs if dim == 2 else other[:, :, None] - cs
    out = f * (logm - torch.logsumexp(t, dim=dim))
    del t
    return torch.where(valid, out, torch.full((), -math.inf, dtype=out.dtype, device=out.device))


def _kernel(k: torch.Tensor, cs: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> None:
    torch.add(alpha[:, :, None], beta[:, None, :], out=k)
    k.sub_(cs).exp_()


def _matvec(k: torch.Tensor, x: torch.Tensor, transpose: bool) -> torch.Tensor:
    # on CPU one gemv per large problem is several times faster than bmm with a vector;
    # many small problems go through one bmm (a Python loop would dominate)
    if k.device.type == "cpu" and k.shape[1] * k.shape[2] >= _GEMV_MIN_ENTRIES:
        if transpose:
            return torch.stack([torch.mv(k[i].T, x[i]) for i in range(k.shape[0])])
        return torch.stack([torch.mv(k[i], x[i]) for i in range(k.shape[0])])
    if transpose:
        return torch.bmm(x[:, None, :], k)[:, 0, :]
    return torch.bmm(k, x[:, :, None])[:, :, 0]


@dataclass
class _SinkhornResult:
    plan: torch.Tensor  # (B, n, m), unit mass per problem (balanced)
    alpha: torch.Tensor  # log-potentials (cost/eps units), -inf at padding
    beta: torch.Tensor
    n_iter: np.ndarray
    converged: np.ndarray
    error: np.ndarray


def _cost_spread(cost: torch.Tensor, rv: torch.Tensor, cv: torch.Tensor) -> float:
    """Largest standard deviation of the valid costs over (up to 32 of) the problems."""
    ns, ms = rv.sum(1).tolist(), cv.sum(1).tolist()
    picks = np.unique(np.linspace(0, cost.shape[0] - 1, min(cost.shape[0], 32)).astype(int))
    spread = 0.0
    for i in picks:
        view = cost[i, : min(int(ns[i]), 1024), : int(ms[i])]
        if view.numel() > 1:
            spread = max(spread, float(view.std()))
    return spread


def _sinkhorn_batched(
    cost: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    eps: float,
    *,
    fa: float = 1.0,
    fb: float = 1.0,
    max_iter: int = 1000,
    tol: float = 1e-5,
    check_every: int = 10,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> _SinkhornResult:
    r"""Solve ``B`` entropic OT problems at once.

    ``cost`` (B, n, m) is overwritten; padded rows/columns carry zero mass in ``a``/``b`` and
    any finite cost. Iterations run on the stabilised kernel
    :math:`K = \exp(\alpha_i + \beta_j - C_{ij}/\varepsilon)` with scalings ``u, v``; whenever
    ``|log u|`` or ``|log v|`` exceeds ``_ABSORB_LOG`` (or a kernel row underflows) the scalings
    are absorbed into the log-potentials by an exact log-domain step, so the plan never
    underflows to zero even in float32 with a tiny ``eps``. ``fa``/``fb`` < 1 give the KL
    unbalanced updates (``reg_m / (reg_m + eps)``), 0 a free marginal.

    Without ``init`` and when ``eps`` is small against the spread (standard deviation) of the
    costs (``spread > _SCALING_RATIO * eps``, or ``eps < _EPS_START``), epsilon scaling: the
    problem is first solved loosely at that spread and halved epsilons (at most
    ``_LEVEL_ITER`` iterations each, potentials carried over), then at ``eps``; ``n_iter``
    counts all iterations.
    """
    bsz = cost.shape[0]
    rv, cv = a > 0, b > 0
    loga, logb = a.log(), b.log()
    ninf = torch.full((), -math.inf, dtype=cost.dtype, device=cost.device)
    zero = torch.zeros((), dtype=cost.dtype, device=cost.device)
    balanced = fa == 1.0 and fb == 1.0
    levels = [eps]
    if init is None and fa == 1.0 and fb in (0.0, 1.0):
        # epsilon scaling from the spread of the costs (or _EPS_START for tiny eps)
        spread = _cost_spread(cost, rv, cv)
        start = max(spread, _EPS_START)
        if eps < _EPS_START or spread > _SCALING_RATIO * eps:
            levels = [start * 0.5**k for k in range(64) if start * 0.5**k > eps] + [eps]
    cs = cost.div_(levels[0])
    if init is None:
        beta = torch.where(cv, torch.zeros_like(b), ninf)
    else:
        beta = init[1]
    alpha = _lse_step(cs, beta, loga, fa, rv, 2)
    beta = _lse_step(cs, alpha, logb, fb, cv, 1)
    k = torch.empty_like(cs)
    _kernel(k, cs, alpha, beta)
    u, v = rv.to(cost.dtype), cv.to(cost.dtype)
    err = np.full(bsz, np.inf)
    n_iter = np.full(bsz, max_iter, dtype=np.int64)
    done = np.zeros(bsz, dtype=bool)

    def _rescue(v_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # exact log-domain iteration from the last finite state, then a fresh kernel
        nonlocal alpha, beta
        bt = torch.where(cv, beta + v_.log(), ninf)
        alpha = _lse_step(cs, bt, loga, fa, rv, 2)
        beta = _lse_step(cs, alpha, logb, fb, cv, 1)
        _kernel(k, cs, alpha, beta)
        return rv.to(cost.dtype), cv.to(cost.dtype)

    def _check(it: int, kv: torch.Tensor, u_new: torch.Tensor | None) -> np.ndarray:
        if balanced:
            e = torch.where(rv, (u * kv - a).abs() / torch.where(rv, a, 1.0), zero).amax(1)
        else:
            ratio = torch.where(rv, u_new / torch.where(rv, u, 1.0), 1.0)
            e = torch.where(rv, ratio.log().abs(), zero).amax(1)
        out = e.double().cpu().numpy()
        return np.where(np.isfinite(out), out, np.inf)

    total = 0
    for lvl, e_lvl in enumerate(levels):
        final = lvl == len(levels) - 1
        if lvl:
            # carry the potentials (cost units) over to the next epsilon
            r = levels[lvl - 1] / e_lvl
            beta = torch.where(cv, (beta + v.log()) * r, ninf)
            cs.mul_(r)
            u, v = _rescue(torch.ones_like(v))  # exact log step: no row or column underflows
        # intermediate levels use at most half of max_iter in total
        share = max(1, max_iter // (2 * len(levels)))
        budget = max_iter - total if final else min(_LEVEL_ITER, share)
        level_tol = tol if final else max(tol, 1e-2)
        for it in range(budget):
            kv = _matvec(k, v, transpose=False)
            u_new = _ratio(a, kv, fa, rv)
            check = it % check_every == 0 and (balanced or it > 0)
            if check:
                err = _check(it, kv, u_new)
                if final:
                    newly = (err <= tol) & ~done
                    n_iter[newly] = total + it
                    done |= newly
                    if done.all():
                        break
                elif (err <= level_tol).all():
                    break
            if not bool(torch.isfinite(u_new).all()):
                u, v = _rescue(v)
                continue
            u = u_new
            v_new = _ratio(b, _matvec(k, u, transpose=True), fb, cv)
            if not bool(torch.isfinite(v_new).all()):
                u, v = _rescue(v)
                continue
            v = v_new
            lu = torch.where(rv, u.log().abs(), zero).amax()
            lv = torch.where(cv, v.log().abs(), zero).amax()
            if float(torch.maximum(lu, lv)) > _ABSORB_LOG:
                alpha = torch.where(rv, alpha + u.log(), ninf)
                beta = torch.where(cv, beta + v.log(), ninf)
                _kernel(k, cs, alpha, beta)
                u, v = rv.to(cost.dtype), cv.to(cost.dtype)
        total += it + 1 if budget else 0
    alpha = torch.where(rv, alpha + u.log(), ninf)
    beta = torch.where(cv, beta + v.log(), ninf)
    plan = k.mul_(u[:, :, None]).mul_(v[:, None, :])
    if not bool(torch.isfinite(plan).all()):
        raise FloatingPointError(
            "Sinkhorn produced NaN/inf in the coupling; increase `epsilon` or use dtype='float64'."
        )
    rows = plan.sum(2)
    empty = (rows <= 0) & rv
    if bool(empty.any()):
        raise FloatingPointError(
            f"Sinkhorn returned {int(empty.sum())} source cells with zero mass (underflow); "
            "increase `epsilon` or use dtype='float64'."
        )
    if balanced:
        e = torch.where(rv, (rows - a).abs() / torch.where(rv, a, 1.0), zero).amax(1)
        err = e.double().cpu().numpy()
    converged = done | (err <= tol)
    return _SinkhornResult(plan, alpha, beta, n_iter, converged, err)


# --------------------------------------------------------------------------------------------
# batching helpers
# --------------------------------------------------------------------------------------------
def _make_batches(blocks: list[_Block], opts: _Options) -> list[list[int]]:
    """Group labels of similar size; each padded batch stays within ``_BATCH_ENTRIES``."""
    order = sorted(range(len(blocks)), key=lambda i: blocks[i].shape, reverse=True)
    cap = opts.batch_size or len(blocks)
    batches: list[list[int]] = []
    cur: list[int] = []
    n_max = m_max = 0
    for i in order:
        n, m = blocks[i].shape
        nn, mm = max(n_max, n), max(m_max, m)
        if cur and (len(cur) >= cap or (len(cur) + 1) * nn * mm > _BATCH_ENTRIES):
            batches.append(cur)
            cur, nn, mm = [], n, m
        cur.append(i)
        n_max, m_max = nn, mm
    if cur:
        batches.append(cur)
    return batches


@dataclass
class _Batch:
    ids: list[int]
    n: np.ndarray
    m: np.ndarray
    src: torch.Tensor  # (B, n_max) local indices (0 at padding)
    tgt: torch.Tensor
    a: torch.Tensor  # (B, n_max) unit-mass uniform marginals, 0 at padding
    b: torch.Tensor
    w: torch.Tensor  # (B,) block weights

    @property
    def size(self) -> int:
        return len(self.ids)


def _pack(blocks: list[_Block], ids: list[int], opts: _Options) -> _Batch:
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
    dev, dt = opts.device, opts.torch_dtype
    return _Batch(
        ids=list(ids),
        n=n,
        m=m,
        src=torch.from_numpy(src).to(dev),
        tgt=torch.from_numpy(tgt).to(dev),
        a=torch.from_numpy(a).to(dev, dt),
        b=torch.from_numpy(b).to(dev, dt),
        w=torch.tensor([blocks[i].weight for i in ids], device=dev, dtype=dt),
    )


def _gather(x: torch.Tensor, idx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Rows ``x[idx]`` as (B, n_max, d) with zero rows at padding."""
    return x[idx] * mask[:, :, None].to(x.dtype)


def _cross_cost(xs: torch.Tensor, xt: torch.Tensor, metric: str) -> torch.Tensor:
    """Batched cost (B, n, m) between padded point sets (B, n, d) and (B, m, d)."""
    if metric == "cosine":
        xs = xs / xs.norm(dim=2, keepdim=True).clamp_min(1e-12)
        xt = xt / xt.norm(dim=2, keepdim=True).clamp_min(1e-12)
        c = torch.bmm(xs, xt.transpose(1, 2)).neg_().add_(1.0)
        return c.clamp_min_(0.0)
    c = torch.baddbmm(
        (xs * xs).sum(2)[:, :, None] + (xt * xt).sum(2)[:, None, :],
        xs,
        xt.transpose(1, 2),
        alpha=-2.0,
    ).clamp_min_(0.0)
    if metric == "euclidean":
        c.sqrt_()
    return c


def _normalize_blocks(c: torch.Tensor, batch: _Batch, mode: str | None) -> np.ndarray:
    """Divide each block's valid entries' cost by its mean/max (in place); return the scales."""
    scales = np.ones(batch.size)
    if mode is None:
        return scales
    for k in range(batch.size):
        view = c[k, : batch.n[k], : batch.m[k]]
        s = float(view.mean() if mode == "mean" else view.max())
        if s > 0 and math.isfinite(s):
            c[k].div_(s)
            scales[k] = s
    return scales


def _centred_batch(
    xs: torch.Tensor, xt: torch.Tensor, batch: _Batch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather a batch's points, centred on the source mean (better float32 distances)."""
    ms, mt = batch.a > 0, batch.b > 0
    ps = _gather(xs, batch.src, ms)
    pt = _gather(xt, batch.tgt, mt)
    mu = ps.sum(1, keepdim=True) / torch.from_numpy(batch.n).to(ps)[:, None, None]
    return (ps - mu) * ms[:, :, None].to(ps), (pt - mu) * mt[:, :, None].to(pt)


def _block_diag(
    blocks: list[_Block],
    ids: list[int],
    seconds: float,
    **columns: np.ndarray,
) -> list[dict[str, Any]]:
    sizes = np.array([blocks[i].shape[0] * blocks[i].shape[1] for i in ids], dtype=float)
    share = sizes / sizes.sum() if sizes.sum() > 0 else np.full(len(ids), 1.0 / len(ids))
    out = []
    for k in range(len(ids)):
        d = {name: col[k] for name, col in columns.items()}
        d["seconds"] = float(seconds * share[k])
        out.append(d)
    return out


def _marginal_error(plan: torch.Tensor, batch: _Batch) -> np.ndarray:
    zero = torch.zeros((), dtype=plan.dtype, device=plan.device)
    ra = batch.a > 0
    rb = batch.b > 0
    er = torch.where(ra, (plan.sum(2) - batch.a).abs() / torch.where(ra, batch.a, 1.0), zero)
    ec = torch.where(rb, (plan.sum(1) - batch.b).abs() / torch.where(rb, batch.b, 1.0), zero)
    return torch.maximum(er.amax(1), ec.amax(1)).double().cpu().numpy()


def _to_device(x: np.ndarray, opts: _Options) -> torch.Tensor:
    return torch.from_numpy(x).to(opts.device, opts.torch_dtype)


def _plans(plan: torch.Tensor, batch: _Batch) -> list[np.ndarray]:
    return [plan[k, : batch.n[k], : batch.m[k]].cpu().numpy() for k in range(batch.size)]


# --------------------------------------------------------------------------------------------
# solvers: each yields (block id, unit-mass plan (n_l, m_l), diagnostics)
# --------------------------------------------------------------------------------------------
_Yield = Iterator[tuple[int, np.ndarray, dict[str, Any]]]


def _solve_uniform(blocks: list[_Block], reps: _Reps, opts: _Options) -> _Yield:
    for i, blk in enumerate(blocks):
        t0 = time.perf_counter()
        n, m = blk.shape
        plan = np.full((n, m), 1.0 / (n * m), dtype=opts.np_dtype)
        yield (
            i,
            plan,
            {
                "cost": np.nan,
                "converged": True,
                "n_iter": 0,
                "marginal_error": 0.0,
                "mass": 1.0,
                "seconds": time.perf_counter() - t0,
            },
        )


def _solve_sinkhorn(blocks: list[_Block], reps: _Reps, opts: _Options) -> _Yield:
    xs = _to_device(reps.source, opts)
    xt = _to_device(reps.target, opts)
    for ids in _make_batches(blocks, opts):
        t0 = time.perf_counter()
        batch = _pack(blocks, ids, opts)
        ps, pt = _centred_batch(xs, xt, batch)
        cost = _cross_cost(ps, pt, opts.metric)
        del ps, pt
        _normalize_blocks(cost, batch, opts.normalize)
        res = _sinkhorn_batched(
            cost,
            batch.a,
            batch.b,
            opts.epsilon,
            fa=opts.fa,
            fb=opts.fb,
            max_iter=opts.max_iter,
            tol=opts.tol,
        )
        plan = res.plan
        # cost holds C / eps now
        lin = (plan * cost).sum((1, 2)).double().cpu().numpy() * opts.epsilon
        del cost
        mass = plan.sum((1, 2)).double().cpu().numpy()
        merr = _marginal_error(plan, batch)
        plans = _plans(plan, batch)
        converged, n_iter = res.converged, res.n_iter
        del plan, res
        diag = _block_diag(
            blocks,
            ids,
            time.perf_counter() - t0,
            cost=lin / np.where(mass > 0, mass, 1.0),
            converged=converged,
            n_iter=n_iter,
            marginal_error=merr,
            mass=mass,
        )
        for k, i in enumerate(ids):
            yield i, plans[k], diag[k]
        del plans


def _np_cost(x: np.ndarray, y: np.ndarray, metric: str, normalize: str | None) -> np.ndarray:
    import ot

    if metric == "cosine":
        c = ot.dist(x, y, metric="cosine")
    else:
        mu = x.mean(0)
        c = ot.dist(x - mu, y - mu, metric="sqeuclidean")
        np.maximum(c, 0, out=c)
        if metric == "euclidean":
            np.sqrt(c, out=c)
    return _np_normalize(c, normalize)


def _np_normalize(c: np.ndarray, normalize: str | None) -> np.ndarray:
    if normalize is None or c.size == 0:
        return c
    s = float(c.mean() if normalize == "mean" else c.max())
    return c / s if s > 0 else c


def _solve_emd(blocks: list[_Block], reps: _Reps, opts: _Options) -> _Yield:
    import ot

    for i, blk in enumerate(blocks):
        t0 = time.perf_counter()
        n, m = blk.shape
        c = _np_cost(reps.source[blk.src], reps.target[blk.tgt], opts.metric, opts.normalize)
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
        n_iter = 0
        if opts.semi_relaxed:
            plan = np.zeros((n, m))
            plan[np.arange(n), c.argmin(1)] = 1.0 / n
            converged = True
        elif opts.reg_m is not None:
            plan, log = ot.unbalanced.mm_unbalanced(
                a, b, c, opts.reg_m, div="kl", numItermax=opts.max_iter, stopThr=1e-15, log=True
            )
            converged = True
        else:
            plan, log = ot.emd(a, b, c, numItermax=opts.max_iter, log=True)
            converged = int(log.get("result_code", 1)) == 1
            if log.get("warning"):
                converged = False
        mass = float(plan.sum())
        merr = max(
            float(np.abs(plan.sum(1) - a).max() * n), float(np.abs(plan.sum(0) - b).max() * m)
        )
        yield (
            i,
            plan,
            {
                "cost": float((plan * c).sum()) / (mass if mass > 0 else 1.0),
                "converged": converged,
                "n_iter": n_iter,
                "marginal_error": merr,
                "mass": mass,
                "seconds": time.perf_counter() - t0,
            },
        )


# ---------------------------------- Gromov-Wasserstein family --------------------------------
def _sqdist_np(x: np.ndarray) -> np.ndarray:
    import ot

    x = x - x.mean(0)
    c = ot.dist(x, x, metric="sqeuclidean")
    np.maximum(c, 0, out=c)
    return c


def _pot_gw_pair(
    xs: np.ndarray, xt: np.ndarray, opts: _Options, fused: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """One (F)GW problem with POT on CPU, unit uniform masses; returns plan and diagnostics.

    Entropic solvers stop on the Frobenius change of the plan, given to POT as an absolute
    threshold ``tol / sqrt(n m)`` (about ``tol`` relative to the plan's norm); exact ones on the
    relative change of the loss. POT's inner Sinkhorn warnings are silenced: the marginal error
    of the final plan is checked instead (``converged`` needs it to be at most ``tol``).
    """
    import ot

    n, m = len(xs), len(xt)
    a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
    c1 = _np_normalize(_sqdist_np(xs), opts.normalize)
    c2 = _np_normalize(_sqdist_np(xt), opts.normalize)
    eps, it = opts.epsilon, opts.max_iter
    tol_abs = opts.tol / math.sqrt(n * m)
    g = ot.gromov
    kw: dict[str, Any] = {"max_iter": it, "log": True}
    if eps > 0:
        kw.update(epsilon=eps, tol=tol_abs)
    else:
        kw.update(tol_rel=opts.tol)
    if fused:
        kw["alpha"] = opts.alpha
        mcost = _np_cost(xs, xt, opts.metric, opts.normalize)
        if opts.semi_relaxed:
            fn = (
                g.entropic_semirelaxed_fused_gromov_wasserstein
                if eps > 0
                else (g.semirelaxed_fused_gromov_wasserstein)
            )
            args: tuple[Any, ...] = (mcost, c1, c2, a, "square_loss")
        else:
            fn = g.entropic_fused_gromov_wasserstein if eps > 0 else g.fused_gromov_wasserstein
            args = (mcost, c1, c2, a, b, "square_loss")
    elif opts.semi_relaxed:
        fn = (
            g.entropic_semirelaxed_gromov_wasserstein
            if eps > 0
            else (g.semirelaxed_gromov_wasserstein)
        )
        args = (c1, c2, a, "square_loss")
    else:
        fn = g.entropic_gromov_wasserstein if eps > 0 else g.gromov_wasserstein
        args = (c1, c2, a, b, "square_loss")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        warnings.filterwarnings("ignore", message=".*numerical errors.*")
        plan, log = fn(*args, **kw)
    value = log.get("fgw_dist" if fused else "gw_dist", np.nan)
    plan = np.asarray(plan, dtype=np.float64)
    mass = float(plan.sum())
    if not np.isfinite(plan).all() or mass <= 0:
        raise FloatingPointError(
            "The GW solver returned an empty or non-finite coupling; increase `epsilon`."
        )
    n_iter = len(log.get("err", [])) * 10 if eps > 0 else len(log.get("loss", []))
    merr = float(np.abs(plan.sum(1) - a).max() * n)
    if not opts.semi_relaxed:
        merr = max(merr, float(np.abs(plan.sum(0) - b).max() * m))
    converged = n_iter < it and (eps == 0 or merr <= max(opts.tol, 1e-9))
    return plan, {
        "cost": float(value),
        "converged": bool(converged),
        "n_iter": int(n_iter),
        "marginal_error": merr,
        "mass": mass,
    }


def _solve_pot_gw(blocks: list[_Block], reps: _Reps, opts: _Options, fused: bool) -> _Yield:
    for i, blk in enumerate(blocks):
        t0 = time.perf_counter()
        plan, diag = _pot_gw_pair(reps.source[blk.src], reps.target[blk.tgt], opts, fused)
        diag["seconds"] = time.perf_counter() - t0
        yield i, plan, diag


def _solve_gw_each(blocks: list[_Block], reps: _Reps, opts: _Options, fused: bool) -> _Yield:
    """Independent (F)GW problem per block (per-label form, or the single global block)."""
    for i, blk in enumerate(blocks):
        unit = _Block(blk.label, blk.src, blk.tgt, 1.0)
        for _, plan, diag in _gw_engine([unit], reps, opts, fused=fused):
            yield i, plan, diag


def _solve_gw(blocks: list[_Block], reps: _Reps, opts: _Options) -> _Yield:
    if opts.semi_relaxed:
        yield from _solve_pot_gw(blocks, reps, opts, fused=False)
    elif opts.labeled and opts.gw_form == "ryu":
        yield from _gw_engine(blocks, reps, opts, fused=False)
    else:
        yield from _solve_gw_each(blocks, reps, opts, fused=False)


def _solve_fgw(blocks: list[_Block], reps: _Reps, opts: _Options) -> _Yield:
    if opts.semi_relaxed:
        yield from _solve_pot_gw(blocks, reps, opts, fused=True)
    else:
        yield from _solve_gw_each(blocks, reps, opts, fused=True)


def _lowrank_sqdist(
    x: np.ndarray, p: np.ndarray, normalize: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    r"""Exact factors of the normalised squared-distance matrix ``C = A B^T / s``.

    With :math:`r_i = \|x_i\|^2`, :math:`D = r 1^T + 1 r^T - 2 X X^T = A B^T` for
    ``A = [r, 1, -2X]`` and ``B = [1, r, X]``. Also returns ``c = (D * D) p / s^2`` in closed
    form (``O(n d^2)``) and the scale ``s`` (mean of ``D`` over all pairs, or its max computed
    in chunks).
    """
    x = x - x.mean(0)
    r = (x * x).sum(1)
    n = len(x)
    pw = p.sum()
    er, er2 = p @ r, p @ (r * r)
    ex, erx = p @ x, (p * r) @ x
    exx = (x * p[:, None]).T @ x
    c = (
        pw * r * r
        + 2.0 * r * er
        + er2
        - 4.0 * r * (x @ ex)
        - 4.0 * (x @ erx)
        + 4.0 * np.einsum("id,de,ie->i", x, exx, x)
    )
    c = np.maximum(c, 0.0)
    if normalize == "rms":
        s = math.sqrt(float(p @ c) / pw) if pw > 0 else 1.0
    elif normalize == "mean":
        s = 2.0 * float(r.mean() - (x.mean(0) ** 2).sum())
    elif normalize == "max":
        s = 0.0
        step = max(1, 2**22 // max(n, 1))
        for start in range(0, n, step):
            d = r[start : start + step, None] + r[None, :] - 2.0 * x[start : start + step] @ x.T
            s = max(s, float(d.max()))
    else:
        s = 1.0
    if not s > 0:
        s = 1.0
    ones = np.ones(n)
    fa = np.column_stack([r, ones, -2.0 * x]) / s
    fb = np.column_stack([ones, r, x])
    return fa, fb, c / s**2, s


def _gw_engine(blocks: list[_Block], reps: _Reps, opts: _Options, *, fused: bool) -> _Yield:
    r"""(Fused) Gromov-Wasserstein with the coupling restricted to the label blocks.

    One problem over all ``blocks``: intra-modality squared distances over all their cells
    (normalised once) and the label mask on the coupling, i.e. the labeled GW of Ryu et al.
    (2024). With a single block it is ordinary GW / FGW (used per label and globally).

    The square-loss gradient on block ``l`` is ``2 (c1[I] + c2[J] - 2 C1[I, :] T C2[:, J])``;
    the exact factorisation ``C = A B^T`` of squared distances gives
    ``C1 T C2^T = A1 (B1^T T B2) A2^T`` with a ``(d1 + 2) x (d2 + 2)`` middle factor, so no
    ``n x n`` matrix is formed. FGW adds ``(1 - alpha) M`` (cross cost, normalised per block)
    and weights the GW part by ``alpha``, as POT. Entropic (``epsilon > 0``): projected
    gradient as POT's ``entropic_(fused_)gromov_wasserstein``, each step a batched Sinkhorn
    per label, warm-started; stops when the relative Frobenius change of the coupling is at
    most ``tol``. Exact (``epsilon == 0``): conditional gradient (Frank-Wolfe) with a
    per-label EMD direction and exact line search, in float64, as POT's
    ``(fused_)gromov_wasserstein``; stops when the relative change of the loss is at most
    ``tol``.
    """
    import ot

    exact = opts.epsilon == 0
    dt = torch.float64 if exact else opts.torch_dtype
    dev = opts.device
    gw_w = opts.alpha if fused else 1.0
    lin_w = 1.0 - opts.alpha if fused else 0.0
    src_all = np.concatenate([b.src for b in blocks])
    tgt_all = np.concatenate([b.tgt for b in blocks])
    # masses of the coupling (blocks scaled by their weight)
    p = np.zeros(reps.source.shape[0])
    q = np.zeros(reps.target.shape[0])
    for blk in blocks:
        p[blk.src] = blk.weight / len(blk.src)
        q[blk.tgt] = blk.weight / len(blk.tgt)
    f1a, f1b, c1, _ = _lowrank_sqdist(reps.source[src_all], p[src_all], opts.normalize)
    f2a, f2b, c2, _ = _lowrank_sqdist(reps.target[tgt_all], q[tgt_all], opts.normalize)

    def _full(x: np.ndarray, idx: np.ndarray, n: int) -> torch.Tensor:
        out = np.zeros((n, *x.shape[1:]))
        out[idx] = x
        return torch.from_numpy(out).to(dev, dt)

    ns, nt = reps.source.shape[0], reps.target.shape[0]
    a1, b1, cc1 = _full(f1a, src_all, ns), _full(f1b, src_all, ns), _full(c1, src_all, ns)
    a2, b2, cc2 = _full(f2a, tgt_all, nt), _full(f2b, tgt_all, nt), _full(c2, tgt_all, nt)
    sub = _Options(**{**opts.__dict__, "dtype": "float64" if exact else opts.dtype})
    batches = [_pack(blocks, ids, sub) for ids in _make_batches(blocks, opts)]
    if fused:
        xs_t = torch.from_numpy(reps.source).to(dev, dt)
        xt_t = torch.from_numpy(reps.target).to(dev, dt)
    g = []  # per batch: A1, B1, c1, A2, B2, c2 gathered, and the normalised cross cost
    for bt in batches:
        ms, mt = bt.a > 0, bt.b > 0
        mcost = None
        if fused:
            ps, pt = _centred_batch(xs_t, xt_t, bt)
            mcost = _cross_cost(ps, pt, opts.metric)
            _normalize_blocks(mcost, bt, opts.normalize)
        g.append(
            (
                _gather(a1, bt.src, ms),
                _gather(b1, bt.src, ms),
                cc1[bt.src] * ms.to(dt),
                _gather(a2, bt.tgt, mt),
                _gather(b2, bt.tgt, mt),
                cc2[bt.tgt] * mt.to(dt),
                mcost,
            )
        )
    plans = [bt.a[:, :, None] * bt.b[:, None, :] for bt in batches]  # unit-mass blocks
    pots: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(batches)
    inner_ok = [np.ones(bt.size, dtype=bool) for bt in batches]
    t0 = time.perf_counter()

    def _wsum(ts: list[torch.Tensor], left: int, right: int) -> torch.Tensor:
        # sum_l F_left[I_l]^T (w_l T_l) F_right[J_l]
        km = torch.zeros(a1.shape[1], a2.shape[1], dtype=dt, device=dev)
        for bt, gg, t in zip(batches, g, ts):
            km += torch.einsum("bnd,bnm,bme->de", gg[left], t * bt.w[:, None, None], gg[right])
        return km

    def _tensor(k: int, km: torch.Tensor) -> torch.Tensor:
        # c1[I] + c2[J] - 2 C1 T C2^T on the blocks of batch k
        gg = g[k]
        out = torch.bmm(torch.matmul(gg[0], km), gg[3].transpose(1, 2)).mul_(-2.0)
        return out.add_(gg[2][:, :, None]).add_(gg[5][:, None, :])

    def _grad(k: int, km: torch.Tensor) -> torch.Tensor:
        out = _tensor(k, km).mul_(2.0 * gw_w)
        if fused:
            out.add_(g[k][6], alpha=lin_w)
        return out

    def _frob(ts: list[torch.Tensor]) -> float:
        return math.sqrt(
            sum(float(((t * bt.w[:, None, None]) ** 2).sum()) for bt, t in zip(batches, ts))
        )

    def _loss(ts: list[torch.Tensor]) -> list[np.ndarray]:
        km = _wsum(ts, 1, 4)
        out = []
        for k, bt in enumerate(batches):
            val = gw_w * (_tensor(k, km) * ts[k]).sum((1, 2))
            if fused:
                val = val + lin_w * (g[k][6] * ts[k]).sum((1, 2))
            out.append(val.double().cpu().numpy() * bt.w.double().cpu().numpy())
        return out

    converged = False
    n_outer = 0
    rel_change = 1.0
    loss_prev = float(sum(x.sum() for x in _loss(plans))) if exact else 0.0
    for it in range(1, opts.max_iter + 1):
        n_outer = it
        km = _wsum(plans, 1, 4)
        if exact:
            dirs = []
            for k, bt in enumerate(batches):
                gk = _grad(k, km).cpu().numpy()
                dk = torch.zeros_like(plans[k])
                for j in range(bt.size):
                    n, m = int(bt.n[j]), int(bt.m[j])
                    s = ot.emd(np.full(n, 1.0 / n), np.full(m, 1.0 / m), gk[j, :n, :m])
                    dk[j, :n, :m] = torch.from_numpy(s).to(dk)
                dirs.append(dk - plans[k])
            kd, ad = _wsum(dirs, 1, 4), _wsum(dirs, 0, 3)
            lin_d = 0.0
            for bt, gg, d in zip(batches, g, dirs):
                dw = d * bt.w[:, None, None]
                lin_d += gw_w * float(((gg[2][:, :, None] + gg[5][:, None, :]) * dw).sum())
                if fused:
                    lin_d += lin_w * float((gg[6] * dw).sum())
            qa = -2.0 * gw_w * float((kd * ad).sum())
            qb = lin_d - 4.0 * gw_w * float((km * ad).sum())
            if qa > 0:
                tau = min(1.0, max(0.0, -qb / (2.0 * qa)))
            else:
                tau = 1.0 if qa + qb < 0 else 0.0
            plans = [t + tau * d for t, d in zip(plans, dirs)]
            loss = loss_prev + qa * tau * tau + qb * tau
            if tau == 0.0 or abs(loss_prev - loss) <= opts.tol * max(abs(loss), 1e-300):
                converged = True
                break
            loss_prev = loss
        else:
            # inexact inner solves while the coupling still moves a lot (tolerance a tenth of
            # the last relative change), strict ones near convergence
            inner_tol = max(_INNER_TOL[dt], min(1e-2, 0.1 * rel_change))
            new = []
            for k, bt in enumerate(batches):
                res = _sinkhorn_batched(
                    _grad(k, km),
                    bt.a,
                    bt.b,
                    opts.epsilon,
                    max_iter=_INNER_MAX_ITER,
                    tol=inner_tol,
                    init=pots[k],
                )
                pots[k] = (res.alpha, res.beta)
                inner_ok[k] = res.converged
                new.append(res.plan)
            diff = _frob([t1 - t0_ for t1, t0_ in zip(new, plans)])
            plans = new
            rel_change = diff / max(_frob(plans), 1e-300)
            if rel_change <= opts.tol:
                converged = True
                break
    losses = _loss(plans)
    seconds = time.perf_counter() - t0
    if len(blocks) > 1:
        opts.extra["total_cost"] = float(sum(x.sum() for x in losses))
    total = sum(float((b.n * b.m).sum()) for b in batches)
    for k, bt in enumerate(batches):
        w = bt.w.double().cpu().numpy()
        diag = _block_diag(
            blocks,
            bt.ids,
            seconds * float((bt.n * bt.m).sum()) / total,
            cost=losses[k] / w,
            converged=np.full(bt.size, converged) & inner_ok[k],
            n_iter=np.full(bt.size, n_outer),
            marginal_error=_marginal_error(plans[k], bt),
            mass=plans[k].sum((1, 2)).double().cpu().numpy(),
        )
        pk = _plans(plans[k].to(opts.torch_dtype), bt)
        for j, i in enumerate(bt.ids):
            yield i, pk[j], diag[j]


def _solve_coot(blocks: list[_Block], reps: _Reps, opts: _Options) -> _Yield:
    # labeled: one sample coupling per label; global: the single all-cells block
    yield from _solve_coot_labeled(blocks, reps, opts)


def _rms_scale(x: np.ndarray) -> np.ndarray:
    s = math.sqrt(float((x * x).mean())) if x.size else 1.0
    return x / s if s > 0 else x


def _solve_coot_labeled(blocks: list[_Block], reps: _Reps, opts: _Options) -> _Yield:
    """Labeled COOT: one sample coupling per label, one feature coupling shared by all labels.

    Block-coordinate descent as ``ot.coot.co_optimal_transport``: the sample coupling of every
    label is updated from the feature coupling (batched Sinkhorn / per-label EMD), then the
    feature coupling from all sample couplings.
    """
    import ot

    exact = opts.epsilon == 0
    dt = torch.float64 if exact else opts.torch_dtype
    dev = opts.device
    src_all = np.concatenate([b.src for b in blocks])
    tgt_all = np.concatenate([b.tgt for b in blocks])
    xs_np = np.zeros_like(reps.source)
    xt_np = np.zeros_like(reps.target)
    xs_np[src_all] = _rms_scale(reps.source[src_all])
    xt_np[tgt_all] = _rms_scale(reps.target[tgt_all])
    xs = torch.from_numpy(xs_np).to(dev, dt)
    xt = torch.from_numpy(xt_np).to(dev, dt)
    d1, d2 = xs.shape[1], xt.shape[1]
    wx = torch.full((d1,), 1.0 / d1, dtype=dt, device=dev)
    wy = torch.full((d2,), 1.0 / d2, dtype=dt, device=dev)
    sub = _Options(**{**opts.__dict__, "dtype": "float64" if exact else opts.dtype})
    batches = [_pack(blocks, ids, sub) for ids in _make_batches(blocks, opts)]
    pts = [(_gather(xs, bt.src, bt.a > 0), _gather(xt, bt.tgt, bt.b > 0)) for bt in batches]
    plans = [bt.a[:, :, None] * bt.b[:, None, :] for bt in batches]
    pi_f = wx[:, None] * wy[None, :]
    pots: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(batches)
    pots_f: tuple[torch.Tensor, torch.Tensor] | None = None
    inner_ok = [np.ones(bt.size, dtype=bool) for bt in batches]
    t0 = time.perf_counter()
    converged = False
    n_outer = 0
    costs: list[np.ndarray] = [np.zeros(bt.size) for bt in batches]

    def _linear(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor, k: int | None) -> torch.Tensor:
        nonlocal pots_f
        if exact:
            out = torch.zeros_like(c)
            cn = c.cpu().numpy()
            an, bn = a.cpu().numpy(), b.cpu().numpy()
            for j in range(c.shape[0]):
                ra, rb = an[j] > 0, bn[j] > 0
                s = ot.emd(an[j][ra], bn[j][rb], cn[j][np.ix_(ra, rb)], numItermax=1_000_000)
                out[j, : ra.sum(), : rb.sum()] = torch.from_numpy(s).to(out)
            return out
        res = _sinkhorn_batched(
            c,
            a,
            b,
            opts.epsilon,
            max_iter=_INNER_MAX_ITER,
            tol=_INNER_TOL[dt],
            init=pots[k] if k is not None else pots_f,
        )
        if k is None:
            pots_f = (res.alpha, res.beta)
        else:
            pots[k] = (res.alpha, res.beta)
            inner_ok[k] = res.converged
        return res.plan

    for it in range(1, opts.max_iter + 1):
        n_outer = it
        wxf, wyf = pi_f.sum(1), pi_f.sum(0)
        new, change, norm = [], 0.0, 0.0
        for k, (bt, (ps, pt)) in enumerate(zip(batches, pts)):
            c = (
                ((ps * ps) @ wxf)[:, :, None]
                + ((pt * pt) @ wyf)[:, None, :]
                - 2.0 * torch.bmm(torch.matmul(ps, pi_f), pt.transpose(1, 2))
            )
            tk = _linear(c.contiguous(), bt.a, bt.b, k)
            w = bt.w[:, None, None]
            change += float((((tk - plans[k]) * w).abs()).sum())
            norm += float((tk * w).sum())
            new.append(tk)
        plans = new
        # feature coupling from all sample couplings
        cross = torch.zeros(d1, d2, dtype=dt, device=dev)
        sx = torch.zeros(d1, dtype=dt, device=dev)
        sy = torch.zeros(d2, dtype=dt, device=dev)
        for bt, (ps, pt), t in zip(batches, pts, plans):
            tw = t * bt.w[:, None, None]
            cross += torch.einsum("bnd,bnm,bme->de", ps, tw, pt)
            sx += torch.einsum("bnd,bn->d", ps * ps, tw.sum(2))
            sy += torch.einsum("bme,bm->e", pt * pt, tw.sum(1))
        cf = sx[:, None] + sy[None, :] - 2.0 * cross
        pi_f = _linear(cf[None].contiguous(), wx[None], wy[None], None)[0]
        if change <= opts.tol * norm:
            converged = True
            break
    wxf, wyf = pi_f.sum(1), pi_f.sum(0)
    for k, (ps, pt) in enumerate(pts):
        c = (
            ((ps * ps) @ wxf)[:, :, None]
            + ((pt * pt) @ wyf)[:, None, :]
            - 2.0 * torch.bmm(torch.matmul(ps, pi_f), pt.transpose(1, 2))
        )
        costs[k] = (c * plans[k]).sum((1, 2)).double().cpu().numpy()
    opts.extra["feature_coupling"] = pi_f.double().cpu().numpy()
    seconds = time.perf_counter() - t0
    total = sum(float((b.n * b.m).sum()) for b in batches)
    for k, bt in enumerate(batches):
        diag = _block_diag(
            blocks,
            bt.ids,
            seconds * float((bt.n * bt.m).sum()) / total,
            cost=costs[k],
            converged=np.full(bt.size, converged) & inner_ok[k],
            n_iter=np.full(bt.size, n_outer),
            marginal_error=_marginal_error(plans[k], bt),
            mass=plans[k].sum((1, 2)).double().cpu().numpy(),
        )
        pk = _plans(plans[k].to(opts.torch_dtype), bt)
        for j, i in enumerate(bt.ids):
            yield i, pk[j], diag[j]


_SOLVERS = {
    "sinkhorn": _solve_sinkhorn,
    "emd": _solve_emd,
    "gw": _solve_gw,
    "fgw": _solve_fgw,
    "coot": _solve_coot,
    "uniform": _solve_uniform,
}


# --------------------------------------------------------------------------------------------
# sparse storage
# --------------------------------------------------------------------------------------------
def _compress_block(
    plan: np.ndarray, blk: _Block, opts: _Options
) -> tuple[np.ndarray | sp.csr_matrix, float]:
    """Apply ``top_k`` and ``prune`` to a unit-mass block plan.

    Returns the plan to store (the dense block when nothing is dropped, else a local CSR matrix
    in the block's row/column order) and the dropped unit-block mass.
    """
    plan = np.asarray(plan)
    if plan.shape != blk.shape:
        raise RuntimeError(f"Plan of label {blk.label!r} has shape {plan.shape}, not {blk.shape}.")
    if opts.dense_blocks:
        return plan, 0.0
    n, m = plan.shape
    total = float(plan.sum(dtype=np.float64))
    if opts.top_k is not None and opts.top_k < m:
        k = opts.top_k
        cols = np.argpartition(plan, m - k, axis=1)[:, m - k :]
        cols.sort(axis=1)
        vals = np.take_along_axis(plan, cols, axis=1)
        local = sp.csr_matrix(
            (vals.ravel(), cols.ravel(), np.arange(0, n * k + 1, k)), shape=(n, m)
        )
    else:
        local = sp.csr_matrix(plan)
    if opts.prune > 0 and local.nnz:
        rmax = np.zeros(n, dtype=local.dtype)
        lens = np.diff(local.indptr)
        nonempty = lens > 0
        rmax[nonempty] = np.maximum.reduceat(local.data, local.indptr[:-1][nonempty])
        local.data[local.data < opts.prune * np.repeat(rmax, lens)] = 0
    local.eliminate_zeros()
    local.sort_indices()
    local = local.astype(opts.np_dtype, copy=False)
    return local, total - float(local.sum(dtype=np.float64))


class _CSRBuilder:
    """Assemble the union-space CSR coupling block by block.

    Dense mode (``dense=True``): every block is stored in full, so each row's number of entries
    is known up front and blocks stream straight into preallocated ``data``/``indices`` arrays
    (no COO intermediate). Sparse mode (``top_k``, ``prune`` or EMD) keeps each block's local
    CSR matrix (see :func:`_compress_block`) and assembles at the end.
    """

    _CHUNK = 2**22

    def __init__(
        self,
        *,
        n_obs: int,
        blocks: list[_Block],
        src_pos: np.ndarray,
        tgt_pos: np.ndarray,
        dense: bool,
        dtype: np.dtype,
    ) -> None:
        self.n_obs, self.blocks = n_obs, blocks
        self.src_pos, self.tgt_pos = src_pos, tgt_pos
        self.dense, self.dtype = dense, dtype
        self.pieces: dict[int, sp.csr_matrix] = {}
        if dense:
            counts = np.zeros(n_obs, dtype=np.int64)
            for blk in blocks:
                counts[src_pos[blk.src]] = len(blk.tgt)
            self._allocate(counts)

    def _allocate(self, counts: np.ndarray) -> None:
        nnz = int(counts.sum())
        idx_dtype = np.int32 if max(nnz, self.n_obs) < np.iinfo(np.int32).max else np.int64
        self.indptr = np.zeros(self.n_obs + 1, dtype=idx_dtype)
        np.cumsum(counts, out=self.indptr[1:])
        self.data = np.empty(nnz, dtype=self.dtype)
        self.indices = np.empty(nnz, dtype=idx_dtype)

    def add(self, bid: int, plan: np.ndarray | sp.csr_matrix) -> None:
        """Store block ``bid``: a unit-mass plan, columns in the block's target order.

        A dense array in dense mode, the local CSR from :func:`_compress_block` otherwise.
        """
        blk = self.blocks[bid]
        if not self.dense:
            self.pieces[bid] = sp.csr_matrix(plan) if not sp.issparse(plan) else plan
            return
        plan = np.asarray(plan)
        rows = self.src_pos[blk.src]
        cols = self.tgt_pos[blk.tgt].astype(self.indices.dtype)
        m = len(cols)
        step = max(1, self._CHUNK // max(m, 1))
        ar = np.arange(m, dtype=np.int64)
        for start in range(0, len(rows), step):
            r = rows[start : start + step]
            pos = self.indptr[r].astype(np.int64)[:, None] + ar[None, :]
            self.data[pos] = plan[start : start + step] * blk.weight
            self.indices[pos] = cols[None, :]

    def finish(self) -> sp.csr_matrix:
        if not self.dense:
            counts = np.zeros(self.n_obs, dtype=np.int64)
            for bid, local in self.pieces.items():
                counts[self.src_pos[self.blocks[bid].src]] = np.diff(local.indptr)
            self._allocate(counts)
            for bid in list(self.pieces):
                local = self.pieces.pop(bid)
                blk = self.blocks[bid]
                rows = self.src_pos[blk.src]
                lens = np.diff(local.indptr)
                start = self.indptr[rows].astype(np.int64) - local.indptr[:-1]
                pos = np.repeat(start, lens) + np.arange(local.nnz)
                self.data[pos] = local.data * blk.weight
                self.indices[pos] = self.tgt_pos[blk.tgt][local.indices]
        mat = sp.csr_matrix(
            (self.data, self.indices, self.indptr), shape=(self.n_obs, self.n_obs), copy=False
        )
        mat.has_sorted_indices = True
        return mat


def _diagnostics_table(blocks: list[_Block], diags: dict[int, dict[str, Any]]) -> dict[str, Any]:
    ids = sorted(diags)
    cols = ["mass", "cost", "converged", "n_iter", "marginal_error", "dropped_mass", "seconds"]
    out: dict[str, Any] = {
        "label": np.array([blocks[i].label for i in ids], dtype=object).astype(str),
        "n_source": np.array([blocks[i].shape[0] for i in ids], dtype=np.int64),
        "n_target": np.array([blocks[i].shape[1] for i in ids], dtype=np.int64),
    }
    for c in cols:
        vals = [diags[i].get(c, np.nan) for i in ids]
        if c == "converged":
            out[c] = np.array(vals, dtype=bool)
        elif c == "n_iter":
            out[c] = np.array(vals, dtype=np.int64)
        else:
            out[c] = np.array(vals, dtype=np.float64)
    # stored block mass = weight x unit-block mass
    out["mass"] = out["mass"] * np.array([blocks[i].weight for i in ids])
    return out


# --------------------------------------------------------------------------------------------
# reading a stored coupling back (used by impute and matching_metrics)
# --------------------------------------------------------------------------------------------
def read_coupling(mdata: MuData, key: str, *, source: str, target: str) -> sp.csr_matrix:
    """Return the stored coupling as a ``source cells x target cells`` CSR matrix.

    Rows follow ``mdata.mod[source].obs_names`` and columns ``mdata.mod[target].obs_names``. When
    the coupling was computed the other way round (``uns[key]["params"]`` says so), the block is
    transposed.

    Parameters
    ----------
    mdata
        MuData holding ``mdata.obsp[key]``.
    key
        Key of the coupling in ``mdata.obsp``.
    source, target
        Modalities of the rows and columns of the returned matrix.

    Returns
    -------
    The coupling restricted to the two modalities, shape ``(n_source, n_target)``.
    """
    for arg, name in (("source", source), ("target", target)):
        if name not in mdata.mod:
            raise KeyError(f"`{arg}`={name!r} is not a modality; available: {list(mdata.mod)}.")
    if key not in mdata.obsp:
        raise KeyError(
            f"No coupling {key!r} in mdata.obsp (available: {list(mdata.obsp.keys())}); run "
            "groove_sc.tl.align first."
        )
    t = mdata.obsp[key]
    t = t.tocsr() if sp.issparse(t) else sp.csr_matrix(np.asarray(t))
    params = (
        mdata.uns.get(key, {}).get("params", {}) if isinstance(mdata.uns.get(key), dict) else {}
    )
    s0, t0 = params.get("source", source), params.get("target", target)
    if {s0, t0} != {source, target}:
        raise ValueError(f"Coupling {key!r} links {s0!r} -> {t0!r}, not {source!r} and {target!r}.")
    rows = _union_positions(mdata, s0)
    cols = _union_positions(mdata, t0)
    block = t[rows][:, cols].tocsr()
    if s0 != source:
        block = block.T.tocsr()
    return block


def _perfect_coupling(
    mdata: MuData, opts: _Options, truth_key: str, src_pos: np.ndarray, tgt_pos: np.ndarray
) -> tuple[sp.csr_matrix, dict[str, Any]]:
    """Mass ``1 / n_pairs`` on every true pair (evaluation reference)."""
    from ._metrics import _obs_strings, _partners

    t0 = time.perf_counter()
    src, tgt = mdata.mod[opts.source], mdata.mod[opts.target]
    ids_s = _obs_strings(src, truth_key, "truth_key", opts.source)
    ids_t = _obs_strings(tgt, truth_key, "truth_key", opts.target)
    partner = _partners(ids_s, ids_t, truth_key, opts.target)
    paired = np.flatnonzero(partner >= 0)
    if paired.size == 0:
        raise ValueError(
            f"No {opts.source!r} cell has a partner in {opts.target!r} by "
            f"`truth_key`={truth_key!r}."
        )
    n = paired.size
    coupling = sp.csr_matrix(
        (
            np.full(n, 1.0 / n, dtype=opts.np_dtype),
            (src_pos[paired], tgt_pos[partner[paired]]),
        ),
        shape=(mdata.n_obs, mdata.n_obs),
    )
    diag = {
        "label": np.array(["__truth__"]),
        "n_source": np.array([n]),
        "n_target": np.array([n]),
        "mass": np.array([1.0]),
        "cost": np.array([np.nan]),
        "converged": np.array([True]),
        "n_iter": np.array([0]),
        "marginal_error": np.array([0.0]),
        "dropped_mass": np.array([0.0]),
        "seconds": np.array([time.perf_counter() - t0]),
    }
    return coupling, diag


def _available_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return math.inf


def _check_memory(blocks: list[_Block], opts: _Options) -> None:
    """Refuse (before allocating) a coupling whose stored size alone exceeds physical memory."""
    k = opts.top_k
    nnz = sum(b.shape[0] * (b.shape[1] if k is None else min(k, b.shape[1])) for b in blocks)
    largest = max(b.shape[0] * b.shape[1] for b in blocks)
    # stored CSR (data + indices) plus the working tensors of the largest problem
    work = 8 if opts.method in ("emd", "gw", "fgw", "coot") else opts.np_dtype.itemsize
    need = nnz * (opts.np_dtype.itemsize + 4) + largest * work * 4
    avail = _available_memory()
    if need > avail:
        what = "the global (labeled=False) coupling" if not opts.labeled else "the coupling"
        raise MemoryError(
            f"{what} needs about {need / 2**30:.1f} GiB ({nnz:,} stored entries) but the machine "
            f"has {avail / 2**30:.1f} GiB; use labeled=True, more labels, `top_k` or `prune`."
        )
