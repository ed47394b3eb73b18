r"""One solver class per method, each with its own parameters and checks.

A solver couples the cells of every :class:`~groove_sc.ot.LabelBlock` given two arrays of
points (cells x dims) and yields one :class:`~groove_sc.ot.BlockResult` per block, the block's
unit-mass plan with its diagnostics; :class:`~groove_sc.ot.SolveExtras` carry what belongs to
the whole solve::

    solver = make_solver("sinkhorn", epsilon=0.1)
    solution = solver.solve(blocks, x_source, x_target)
    plans = {r.block: r.plan for r in solution}
    solution.extras  # complete once the results are consumed

Error messages name the parameters as :func:`groove_sc.tl.align` takes them.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ._blocks import BATCH_ENTRIES, LabelBlock, make_batches, pack
from ._coot import LabeledCOOT
from ._costs import METRICS, NORMALIZE, centred_batch, cross_cost, normalize_blocks
from ._gw import MaskedGW
from ._pot import emd_block, gw_block
from ._results import BlockResult, Solution, SolveExtras, batch_results
from ._sinkhorn import sinkhorn_batched

__all__ = [
    "GW_FORMS",
    "METHODS",
    "SOLVERS",
    "COOTSolver",
    "EMDSolver",
    "FGWSolver",
    "GWSolver",
    "SinkhornSolver",
    "Solver",
    "UniformSolver",
    "make_solver",
    "solver_class",
]

METHODS = ("sinkhorn", "emd", "gw", "fgw", "coot", "uniform")
GW_FORMS = ("ryu", "per_label")
_NO_REG_M = (
    "`reg_m` (unbalanced OT) is supported for method='sinkhorn' and 'emd', not {method!r}; for "
    "GW/FGW use `semi_relaxed=True`."
)


# --------------------------------------------------------------------------------------------
# checks shared by several solvers
# --------------------------------------------------------------------------------------------
def _choice(name: str, value: Any, options: Sequence[Any]) -> Any:
    if value not in options:
        raise ValueError(f"Unknown `{name}`={value!r}; choose one of {list(options)}.")
    return value


def _epsilon(value: float | None, default: float) -> float:
    eps = float(default if value is None else value)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"`epsilon` must be a finite number >= 0, got {value!r}.")
    return eps


def _reg_m(value: float | None) -> float | None:
    if value is None:
        return None
    reg_m = float(value)
    if not (reg_m > 0 and math.isfinite(reg_m)):
        raise ValueError(f"`reg_m` must be a finite number > 0 or None, got {value!r}.")
    return reg_m


def _max_iter(value: int | None, default: int) -> int:
    max_iter = default if value is None else value
    if int(max_iter) < 1:
        raise ValueError(f"`max_iter` must be >= 1, got {value!r}.")
    return int(max_iter)


def _tol(value: float | None) -> float:
    tol = 1e-5 if value is None else value
    if not float(tol) > 0:
        raise ValueError(f"`tol` must be > 0, got {value!r}.")
    return float(tol)


def _batch_size(value: int | None) -> int | None:
    if value is not None and int(value) < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {value!r}.")
    return None if value is None else int(value)


def _points(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


# --------------------------------------------------------------------------------------------
# base
# --------------------------------------------------------------------------------------------
class Solver:
    """Base of the solvers: dtype and device, the call protocol and the solver's traits.

    Parameters
    ----------
    dtype
        ``"float32"`` or ``"float64"``: floating type of the torch iterations and of the
        returned plans.
    device
        Torch device of the batched iterations (``None``: CPU; ``"cuda"``); POT steps always
        run on CPU.

    Attributes
    ----------
    method
        Name of the method (``tl.align(method=...)``).
    shared_space
        Whether both point sets must live in one space (a cross cost).
    uses_points
        Whether the solver reads the points at all.
    dense_plans
        Whether the plans are dense (``False``: mostly zeros, stored sparse).
    float64_work
        Whether the working tensors are float64 whatever ``dtype`` (memory estimates).
    unsupported
        ``tl.align`` parameters this method refuses when set, with the error message.
    """

    method: ClassVar[str] = ""
    shared_space: ClassVar[bool] = False
    uses_points: ClassVar[bool] = True
    dense_plans: ClassVar[bool] = True
    float64_work: ClassVar[bool] = False
    unsupported: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        *,
        dtype: str = "float32",
        device: str | torch.device | None = None,
    ) -> None:
        if dtype not in ("float32", "float64"):
            raise ValueError(f"`dtype` must be 'float32' or 'float64', got {dtype!r}.")
        self.dtype = dtype
        dev = torch.device("cpu" if device is None else device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"`device`={device!r} requested but CUDA is not available.")
        self.device = dev

    # ------------------------------------------------------------------------- traits
    @classmethod
    def parameters(cls) -> tuple[str, ...]:
        """Names of the solver's parameters (keyword arguments of the constructor)."""
        sig = inspect.signature(cls.__init__)
        return tuple(p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY)

    @classmethod
    def takes(cls, name: str) -> bool:
        """Whether ``name`` is a parameter of the method or one it refuses when set."""
        return name in cls.parameters() or name in cls.unsupported

    @property
    def torch_dtype(self) -> torch.dtype:
        """Torch floating type of the iterations and plans."""
        return torch.float32 if self.dtype == "float32" else torch.float64

    @property
    def np_dtype(self) -> np.dtype:
        """Numpy floating type of the plans."""
        return np.dtype(self.dtype)

    @property
    def work_itemsize(self) -> int:
        """Bytes per entry of the working tensors."""
        return 8 if self.float64_work else self.np_dtype.itemsize

    @property
    def joint(self) -> bool:
        """Whether all blocks form one problem (their plans depend on each other)."""
        return False

    def params(self) -> dict[str, Any]:
        """The resolved parameters (``None`` omitted; the device as a string)."""
        out = {name: getattr(self, name) for name in self.parameters()}
        out["device"] = str(self.device)
        return {k: v for k, v in out.items() if v is not None}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------------- solving
    def independent_groups(
        self, blocks: Sequence[LabelBlock], max_entries: int = BATCH_ENTRIES
    ) -> list[list[int]]:
        """Groups of blocks that can be solved apart (e.g. as tasks) with the same results.

        Consecutive blocks up to about ``max_entries`` entries per group; one group when the
        blocks form one problem (:attr:`joint`).
        """
        if self.joint:
            return [list(range(len(blocks)))]
        groups: list[list[int]] = []
        cur: list[int] = []
        size = 0
        for i, blk in enumerate(blocks):
            n, m = blk.shape
            if cur and size + n * m > max_entries:
                groups.append(cur)
                cur, size = [], 0
            cur.append(i)
            size += n * m
        if cur:
            groups.append(cur)
        return groups

    def solve(
        self,
        blocks: Sequence[LabelBlock],
        x_source: np.ndarray | None = None,
        x_target: np.ndarray | None = None,
    ) -> Solution:
        """Couple the cells of every block.

        Parameters
        ----------
        blocks
            The label blocks; ``src`` / ``tgt`` index the rows of ``x_source`` / ``x_target``.
        x_source, x_target
            ``(n_cells, d)`` points; unused by the uniform coupling. Floating arrays are used
            as they are (:func:`groove_sc.tl.align` passes float64; the torch iterations run
            in ``dtype``), others are converted to float64.

        Returns
        -------
        A :class:`~groove_sc.ot.Solution`: iterate it for one
        :class:`~groove_sc.ot.BlockResult` per block (in the solver's order); its ``extras``
        are complete once it is exhausted.
        """
        blocks = list(blocks)
        for blk in blocks:
            if min(blk.shape) == 0:
                raise ValueError(f"Block {blk.label!r} has no cell on one side.")
        xs = xt = None
        if self.uses_points:
            if x_source is None or x_target is None:
                raise ValueError(f"method={self.method!r} needs the points of both sides.")
            xs, xt = _points(x_source), _points(x_target)
            if xs.ndim != 2 or xt.ndim != 2:
                raise ValueError("`x_source` and `x_target` must be cells x dims matrices.")
            if self.shared_space and xs.shape[1] != xt.shape[1]:
                raise ValueError(
                    f"method={self.method!r} needs a shared space, got {xs.shape[1]} and "
                    f"{xt.shape[1]} dims."
                )
        extras = SolveExtras()
        return Solution(self._solve(blocks, xs, xt, extras), extras)

    def _solve(
        self,
        blocks: list[LabelBlock],
        xs: np.ndarray | None,
        xt: np.ndarray | None,
        extras: SolveExtras,
    ) -> Iterator[BlockResult]:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# the methods
# --------------------------------------------------------------------------------------------
class UniformSolver(Solver):
    """Uniform coupling within each block: the reference every method must beat.

    Needs no points; the cost is NaN.

    Parameters
    ----------
    dtype, device
        As in :class:`Solver` (the device is unused).
    """

    method = "uniform"
    uses_points = False

    def __init__(self, *, dtype: str = "float32", device: str | torch.device | None = None) -> None:
        super().__init__(dtype=dtype, device=device)

    def _solve(
        self,
        blocks: list[LabelBlock],
        xs: np.ndarray | None,
        xt: np.ndarray | None,
        extras: SolveExtras,
    ) -> Iterator[BlockResult]:
        for i, blk in enumerate(blocks):
            t0 = time.perf_counter()
            n, m = blk.shape
            plan = np.full((n, m), 1.0 / (n * m), dtype=self.np_dtype)
            yield BlockResult(i, plan, np.nan, True, 0, 0.0, 1.0, time.perf_counter() - t0)


class SinkhornSolver(Solver):
    r"""Entropic OT per block with the batched stabilised Sinkhorn (torch, CPU or GPU).

    Blocks of similar size are padded into one ``(B, n, m)`` tensor (at most ``batch_size``
    blocks, about ``2**22`` entries) and solved together by
    :func:`~groove_sc.ot.sinkhorn_batched`. Sinkhorn needs about ``1 / epsilon`` iterations
    on sharp problems; when ``epsilon`` is small against the spread of the costs it is
    annealed (epsilon scaling from the costs' standard deviation, halving).

    Parameters
    ----------
    epsilon
        Entropic regularisation relative to the normalised cost (``None``: 0.05; must be
        ``> 0``, exact OT is :class:`EMDSolver`).
    reg_m
        KL penalty on the marginals (unbalanced OT); ``None``: balanced.
    semi_relaxed
        Keep the source marginal exact and relax the target one: penalised by ``reg_m``, or
        free when ``reg_m`` is ``None`` (each source cell spreads its mass by a softmin over
        its block's targets).
    metric
        Cross cost: ``"sqeuclidean"``, ``"euclidean"`` or ``"cosine"``.
    normalize
        Divide each block's cost by its ``"mean"`` or ``"max"`` (``None``: raw costs).
    max_iter
        Sinkhorn iterations (``None``: 1000).
    tol
        Largest relative row-marginal error :math:`\max_i |(T1)_i - a_i| / a_i` (columns are
        exact after each iteration), or the largest change of the log-scalings when
        unbalanced (``None``: 1e-5; float32 cannot go much below 1e-6).
    batch_size
        Most blocks per padded batch (``None``: as many as fit).
    dtype, device
        As in :class:`Solver`.
    """

    method = "sinkhorn"
    shared_space = True
    default_epsilon: ClassVar[float] = 0.05
    default_max_iter: ClassVar[int] = 1000

    def __init__(
        self,
        *,
        epsilon: float | None = None,
        reg_m: float | None = None,
        semi_relaxed: bool = False,
        metric: str = "sqeuclidean",
        normalize: str | None = "mean",
        max_iter: int | None = None,
        tol: float | None = None,
        batch_size: int | None = None,
        dtype: str = "float32",
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        self.metric = _choice("metric", metric, METRICS)
        self.normalize = _choice("normalize", normalize, NORMALIZE)
        self.epsilon = _epsilon(epsilon, self.default_epsilon)
        if self.epsilon == 0:
            raise ValueError("`epsilon` must be > 0 for method='sinkhorn' (use method='emd').")
        self.reg_m = _reg_m(reg_m)
        self.semi_relaxed = bool(semi_relaxed)
        self.max_iter = _max_iter(max_iter, self.default_max_iter)
        self.tol = _tol(tol)
        self.batch_size = _batch_size(batch_size)

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

    def independent_groups(
        self, blocks: Sequence[LabelBlock], max_entries: int = BATCH_ENTRIES
    ) -> list[list[int]]:
        """The padded batches (solved jointly, so a group is exactly one batch)."""
        return make_batches(blocks, batch_size=self.batch_size)

    def _solve(
        self,
        blocks: list[LabelBlock],
        xs: np.ndarray | None,
        xt: np.ndarray | None,
        extras: SolveExtras,
    ) -> Iterator[BlockResult]:
        xs = torch.from_numpy(xs).to(self.device, self.torch_dtype)
        xt = torch.from_numpy(xt).to(self.device, self.torch_dtype)
        for ids in make_batches(blocks, batch_size=self.batch_size):
            t0 = time.perf_counter()
            batch = pack(blocks, ids, device=self.device, dtype=self.torch_dtype)
            ps, pt = centred_batch(xs, xt, batch)
            cost = cross_cost(ps, pt, self.metric)
            del ps, pt
            normalize_blocks(cost, batch, self.normalize)
            res = sinkhorn_batched(
                cost,
                batch.a,
                batch.b,
                self.epsilon,
                fa=self.fa,
                fb=self.fb,
                max_iter=self.max_iter,
                tol=self.tol,
            )
            plan = res.plan
            # cost holds C / eps now
            lin = _inner(plan, cost).double().cpu().numpy() * self.epsilon
            del cost
            rows = plan.sum(2) if res.row_sums is None else res.row_sums
            mass = rows.sum(1).double().cpu().numpy()
            merr = batch.marginal_error(plan, rows=rows, cols=plan.sum(1))
            plans = batch.unpad(plan)
            converged, n_iter = res.converged, res.n_iter
            del plan, res
            yield from batch_results(
                blocks,
                batch,
                plans,
                time.perf_counter() - t0,
                cost=lin / np.where(mass > 0, mass, 1.0),
                converged=converged,
                n_iter=n_iter,
                marginal_error=merr,
                mass=mass,
            )
            del plans


def _inner(plan: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
    """``<plan_k, cost_k>`` of every problem of a batch.

    On CPU one dot product per problem: no ``(B, n, m)`` temporary, faster there than a
    batched reduction.
    """
    if plan.device.type != "cpu":
        return torch.einsum("bij,bij->b", plan, cost)
    return torch.stack([torch.dot(p.reshape(-1), c.reshape(-1)) for p, c in zip(plan, cost)])


class EMDSolver(Solver):
    """Exact OT per block with POT on CPU (float64).

    Parameters
    ----------
    reg_m
        Unbalanced: KL penalty on the marginals (``ot.unbalanced.mm_unbalanced``).
    semi_relaxed
        Free target marginal: each source cell goes to its nearest target (needs
        ``reg_m=None``).
    metric, normalize
        As in :class:`SinkhornSolver`.
    max_iter
        Network-simplex iterations (``None``: 1e6).
    dtype, device
        As in :class:`Solver` (the plans are float64; the device is unused).
    """

    method = "emd"
    shared_space = True
    dense_plans = False
    float64_work = True
    default_max_iter: ClassVar[int] = 1_000_000

    def __init__(
        self,
        *,
        reg_m: float | None = None,
        semi_relaxed: bool = False,
        metric: str = "sqeuclidean",
        normalize: str | None = "mean",
        max_iter: int | None = None,
        dtype: str = "float32",
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        self.metric = _choice("metric", metric, METRICS)
        self.normalize = _choice("normalize", normalize, NORMALIZE)
        self.reg_m = _reg_m(reg_m)
        self.semi_relaxed = bool(semi_relaxed)
        if self.reg_m is not None and self.semi_relaxed:
            raise ValueError(
                "method='emd' with `semi_relaxed=True` supports only `reg_m=None` (free target "
                "marginal); use method='sinkhorn' for a penalised target marginal."
            )
        self.max_iter = _max_iter(max_iter, self.default_max_iter)

    def _solve(
        self,
        blocks: list[LabelBlock],
        xs: np.ndarray | None,
        xt: np.ndarray | None,
        extras: SolveExtras,
    ) -> Iterator[BlockResult]:
        for i, blk in enumerate(blocks):
            yield emd_block(
                i,
                xs[blk.src],
                xt[blk.tgt],
                metric=self.metric,
                normalize=self.normalize,
                reg_m=self.reg_m,
                semi_relaxed=self.semi_relaxed,
                max_iter=self.max_iter,
            )


class _GWFamily(Solver):
    """GW and FGW: the masked engine over all blocks, per block, or POT (semi-relaxed)."""

    float64_work = True
    unsupported: ClassVar[dict[str, str]] = {"reg_m": _NO_REG_M}
    default_epsilon: ClassVar[float] = 0.05
    default_max_iter: ClassVar[int] = 200
    fused: ClassVar[bool] = False

    def _common(
        self,
        epsilon: float | None,
        semi_relaxed: bool,
        normalize: str | None,
        max_iter: int | None,
        tol: float | None,
        batch_size: int | None,
    ) -> None:
        self.normalize = _choice("normalize", normalize, NORMALIZE)
        self.epsilon = _epsilon(epsilon, self.default_epsilon)
        self.semi_relaxed = bool(semi_relaxed)
        self.max_iter = _max_iter(max_iter, self.default_max_iter)
        self.tol = _tol(tol)
        self.batch_size = _batch_size(batch_size)

    @property
    def _form(self) -> str:
        return "per_label"

    @property
    def joint(self) -> bool:
        """Whether all blocks form one problem."""
        return self._form == "ryu" and not self.semi_relaxed

    def _fused_args(self) -> dict[str, Any]:
        return {}

    def _engine(self, blocks: list[LabelBlock], xs: np.ndarray, xt: np.ndarray) -> MaskedGW:
        return MaskedGW(
            blocks,
            xs,
            xt,
            fused=self.fused,
            epsilon=self.epsilon,
            **self._fused_args(),
            normalize=self.normalize,
            max_iter=self.max_iter,
            tol=self.tol,
            batch_size=self.batch_size,
            dtype=self.torch_dtype,
            device=self.device,
        )

    def _solve(
        self,
        blocks: list[LabelBlock],
        xs: np.ndarray | None,
        xt: np.ndarray | None,
        extras: SolveExtras,
    ) -> Iterator[BlockResult]:
        if self.semi_relaxed:
            for i, blk in enumerate(blocks):
                yield gw_block(
                    i,
                    xs[blk.src],
                    xt[blk.tgt],
                    fused=self.fused,
                    epsilon=self.epsilon,
                    **self._fused_args(),
                    normalize=self.normalize,
                    semi_relaxed=True,
                    max_iter=self.max_iter,
                    tol=self.tol,
                )
        elif self._form == "ryu":
            results, total_cost = self._engine(blocks, xs, xt).run()
            if len(blocks) > 1:
                extras.total_cost = total_cost
            yield from results
        else:
            for i, blk in enumerate(blocks):
                unit = LabelBlock(blk.label, blk.src, blk.tgt, 1.0)
                results, _ = self._engine([unit], xs, xt).run()
                for res in results:
                    yield res._replace(block=i)


class GWSolver(_GWFamily):
    """Gromov-Wasserstein on intra-modality distances (no shared space needed).

    Squared Euclidean intra-modality distances, normalised like the costs. Labeled GW in the
    Ryu et al. (2024) form (``gw_form="ryu"``) is one problem over all blocks: distances over
    all their cells (normalised once) and the label mask on the coupling; squared distances
    factorise exactly (rank ``d + 2``), so no ``n x n`` matrix is formed
    (:class:`~groove_sc.ot.MaskedGW`). With heavy-tailed distances (outlier cells) the GW
    gradient is large against ``epsilon`` and the solves need many iterations: prefer a PCA
    or latent representation, a larger ``epsilon`` or ``normalize="max"``.

    Parameters
    ----------
    epsilon
        Entropic regularisation (``None``: 0.05): projected gradient, each step a
        warm-started batched Sinkhorn (up to 1000 iterations, tolerance 1e-6 in float32,
        1e-9 in float64). ``0``: exact, conditional gradient with per-block EMD steps
        (float64). Small values (0.01) often stop at ``max_iter``.
    semi_relaxed
        POT's semi-relaxed GW per block (free target marginal; needs
        ``gw_form="per_label"``).
    gw_form
        ``"ryu"``: one masked problem over all blocks. ``"per_label"``: an independent
        problem per block on intra-block distances.
    normalize
        Divide the distances by their ``"mean"`` or ``"max"`` (``None``: raw).
    max_iter
        Outer iterations (``None``: 200).
    tol
        Relative (Frobenius) change of the coupling between outer iterations (entropic),
        relative change of the loss (exact); POT's criteria when semi-relaxed (``None``:
        1e-5).
    batch_size
        Most blocks per padded batch (``None``: as many as fit).
    dtype, device
        As in :class:`Solver` (exact GW iterates in float64).
    """

    method = "gw"

    def __init__(
        self,
        *,
        epsilon: float | None = None,
        semi_relaxed: bool = False,
        gw_form: str = "ryu",
        normalize: str | None = "mean",
        max_iter: int | None = None,
        tol: float | None = None,
        batch_size: int | None = None,
        dtype: str = "float32",
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        self.gw_form = _choice("gw_form", gw_form, GW_FORMS)
        self._common(epsilon, semi_relaxed, normalize, max_iter, tol, batch_size)
        if self.semi_relaxed and self.gw_form == "ryu":
            raise ValueError(
                "`semi_relaxed=True` with labeled GW needs gw_form='per_label' (POT's "
                "semi-relaxed GW solver is applied per label)."
            )

    @property
    def _form(self) -> str:
        return self.gw_form


class FGWSolver(_GWFamily):
    """Fused GW, ``(1 - alpha) * OT + alpha * GW``, an independent problem per block.

    Needs a shared space for the linear term (the cross cost of :class:`SinkhornSolver`);
    the GW term is as in :class:`GWSolver` (``gw_form="per_label"``).

    Parameters
    ----------
    epsilon, semi_relaxed, normalize, max_iter, tol, batch_size, dtype, device
        As in :class:`GWSolver`.
    alpha
        Weight of the GW term, in ``[0, 1]``.
    metric
        Cross cost of the linear term, as in :class:`SinkhornSolver`.
    """

    method = "fgw"
    shared_space = True
    fused = True

    def __init__(
        self,
        *,
        epsilon: float | None = None,
        semi_relaxed: bool = False,
        alpha: float = 0.5,
        metric: str = "sqeuclidean",
        normalize: str | None = "mean",
        max_iter: int | None = None,
        tol: float | None = None,
        batch_size: int | None = None,
        dtype: str = "float32",
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        self.metric = _choice("metric", metric, METRICS)
        self._common(epsilon, semi_relaxed, normalize, max_iter, tol, batch_size)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1], got {alpha!r}.")
        self.alpha = float(alpha)

    def _fused_args(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "metric": self.metric}


class COOTSolver(Solver):
    """Co-optimal transport (Redko et al. 2020) between the feature matrices.

    One sample coupling per block and one feature coupling shared by all blocks
    (:class:`~groove_sc.ot.LabeledCOOT`), so the blocks form one problem; the feature coupling
    is in :attr:`SolveExtras.feature_coupling <groove_sc.ot.SolveExtras>`. Each modality's
    features are divided by their root mean square; no shared space is needed.

    Parameters
    ----------
    epsilon
        Entropic regularisation of both couplings (``None``: 0.05); ``0``: exact (per-block
        EMD steps, float64).
    max_iter
        Block-coordinate iterations (``None``: 100).
    tol
        L1 change of the sample coupling (``None``: 1e-5).
    batch_size, dtype, device
        As in :class:`SinkhornSolver`.
    """

    method = "coot"
    float64_work = True
    unsupported: ClassVar[dict[str, str]] = {
        "reg_m": _NO_REG_M,
        "semi_relaxed": "`semi_relaxed=True` is not available for method='coot'.",
    }
    default_epsilon: ClassVar[float] = 0.05
    default_max_iter: ClassVar[int] = 100

    def __init__(
        self,
        *,
        epsilon: float | None = None,
        max_iter: int | None = None,
        tol: float | None = None,
        batch_size: int | None = None,
        dtype: str = "float32",
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__(dtype=dtype, device=device)
        self.epsilon = _epsilon(epsilon, self.default_epsilon)
        self.max_iter = _max_iter(max_iter, self.default_max_iter)
        self.tol = _tol(tol)
        self.batch_size = _batch_size(batch_size)

    @property
    def joint(self) -> bool:
        """Whether all blocks form one problem."""
        return True

    def _solve(
        self,
        blocks: list[LabelBlock],
        xs: np.ndarray | None,
        xt: np.ndarray | None,
        extras: SolveExtras,
    ) -> Iterator[BlockResult]:
        engine = LabeledCOOT(
            blocks,
            xs,
            xt,
            epsilon=self.epsilon,
            max_iter=self.max_iter,
            tol=self.tol,
            batch_size=self.batch_size,
            dtype=self.torch_dtype,
            device=self.device,
        )
        results, extras.feature_coupling = engine.run()
        yield from results


# --------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------
SOLVERS: dict[str, type[Solver]] = {
    "sinkhorn": SinkhornSolver,
    "emd": EMDSolver,
    "gw": GWSolver,
    "fgw": FGWSolver,
    "coot": COOTSolver,
    "uniform": UniformSolver,
}


def solver_class(method: str) -> type[Solver]:
    """The solver class of ``method``."""
    if method not in SOLVERS:
        raise ValueError(f"Unknown `method`={method!r}; choose one of {list(METHODS)}.")
    return SOLVERS[method]


def make_solver(method: str, **params: Any) -> Solver:
    """The solver of ``method`` with ``params``.

    A parameter the method refuses (:attr:`Solver.unsupported`) is an error when set (not
    ``None`` / ``False``) and ignored otherwise; any other parameter the method does not take
    is a :class:`TypeError`.
    """
    cls = solver_class(method)
    names = cls.parameters()
    for name, value in params.items():
        if name in cls.unsupported:
            if value is not None and value is not False:
                raise ValueError(cls.unsupported[name].format(method=method))
        elif name not in names:
            raise TypeError(
                f"method={method!r} takes no parameter `{name}`; it takes {list(names)}."
            )
    return cls(**{k: v for k, v in params.items() if k in names})
