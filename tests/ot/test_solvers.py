"""The solvers of ``groove_sc.ot`` on arrays (``_solvers.py``, ``_blocks.py``) against POT."""

from __future__ import annotations

import numpy as np
import ot
import pytest

import groove_sc.ot as got


# --------------------------------------------------------------------------------------------
# solvers on arrays
# --------------------------------------------------------------------------------------------
def _arrays(sizes_s=(12, 20, 8), sizes_t=(15, 10, 9), d=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes_s), d)) * 3
    ls = np.repeat([f"p{i}" for i in range(len(sizes_s))], sizes_s).astype(object)
    lt = np.repeat([f"p{i}" for i in range(len(sizes_t))], sizes_t).astype(object)
    ps, pt = rng.permutation(len(ls)), rng.permutation(len(lt))
    ls, lt = ls[ps], lt[pt]
    code_s = np.array([int(v[1:]) for v in ls])
    code_t = np.array([int(v[1:]) for v in lt])
    xs = centres[code_s] + rng.normal(size=(len(ls), d))
    xt = centres[code_t] + rng.normal(size=(len(lt), d)) + 0.3
    return ls, lt, xs, xt


def _unit_cost(xs, xt):
    c = ot.dist(xs, xt)
    return c / c.mean()


def test_label_blocks_of_two_label_arrays():
    ls = np.array(["a", "b", None, "a", "only_s"], dtype=object)
    lt = np.array(["b", "a", "a", "only_t", None], dtype=object)
    blocks, only_s, only_t = got.label_blocks(ls, lt, target_order=np.array([4, 3, 2, 1, 0]))
    assert [b.label for b in blocks] == ["a", "b"]
    assert only_s == ["only_s"] and only_t == ["only_t"]
    np.testing.assert_array_equal(blocks[0].src, [0, 3])
    np.testing.assert_array_equal(blocks[0].tgt, [2, 1])  # sorted by target_order
    assert blocks[0].weight == pytest.approx(2 / 3) and blocks[1].shape == (1, 1)
    assert got.label_blocks(["a"], ["b"])[0] == []
    sub = got.subsample_blocks(blocks, 1, seed=0)
    assert [b.shape for b in sub] == [(1, 1), (1, 1)] and sub[0].weight == blocks[0].weight


def test_sinkhorn_solver_matches_pot_per_label():
    ls, lt, xs, xt = _arrays()
    blocks, _, _ = got.label_blocks(ls, lt)
    solver = got.make_solver("sinkhorn", epsilon=0.1, tol=1e-10, max_iter=20000, dtype="float64")
    results = solver.solve(blocks, xs, xt).collect()
    assert [r.block for r in results] == [0, 1, 2]
    for res, blk in zip(results, blocks):
        n, m = blk.shape
        c = _unit_cost(xs[blk.src], xt[blk.tgt])
        ref = ot.sinkhorn(
            np.full(n, 1 / n), np.full(m, 1 / m), c, 0.1, stopThr=1e-13, numItermax=10**6
        )
        assert res.converged and res.plan.shape == (n, m)
        np.testing.assert_allclose(res.plan, ref, atol=1e-9)
        assert res.cost == pytest.approx(float((ref * c).sum()), rel=1e-6)
        assert res.mass == pytest.approx(1.0) and res.marginal_error < 1e-8


def test_emd_solver_matches_pot_per_label():
    ls, lt, xs, xt = _arrays(seed=1)
    blocks, _, _ = got.label_blocks(ls, lt)
    for res in got.make_solver("emd").solve(blocks, xs, xt):
        blk = blocks[res.block]
        n, m = blk.shape
        c = _unit_cost(xs[blk.src], xt[blk.tgt])
        ref = ot.emd(np.full(n, 1 / n), np.full(m, 1 / m), c)
        assert res.converged
        assert res.cost == pytest.approx(float((ref * c).sum()), rel=1e-10)
        np.testing.assert_allclose(res.plan, ref, atol=1e-12)


def test_uniform_solver_needs_no_points():
    ls, lt, _, _ = _arrays()
    blocks, _, _ = got.label_blocks(ls, lt)
    for res in got.UniformSolver().solve(blocks):
        n, m = blocks[res.block].shape
        assert res.plan.dtype == np.float32 and np.allclose(res.plan, 1.0 / (n * m))
        assert np.isnan(res.cost) and res.converged


def test_labeled_gw_fills_the_total_cost():
    ls, lt, xs, xt = _arrays(seed=2)
    blocks, _, _ = got.label_blocks(ls, lt)
    solution = got.GWSolver(epsilon=0.1).solve(blocks, xs, xt[:, :2])  # no shared space needed
    results = solution.collect()
    extras = solution.extras
    assert extras.feature_coupling is None and extras.total_cost is not None
    weighted = sum(r.cost * blocks[r.block].weight for r in results)
    assert extras.total_cost == pytest.approx(weighted, rel=1e-5)
    assert got.GWSolver(gw_form="ryu").joint and not got.GWSolver(gw_form="per_label").joint
    per_label = got.GWSolver(gw_form="per_label").solve(blocks, xs, xt)
    assert len(per_label.collect()) == 3 and per_label.extras.total_cost is None


def test_coot_fills_the_feature_coupling_once_consumed():
    ls, lt, xs, xt = _arrays(seed=3, d=4)
    blocks, _, _ = got.label_blocks(ls, lt)
    solution = got.make_solver("coot", max_iter=20).solve(blocks, xs, xt[:, :3])
    assert solution.extras.feature_coupling is None  # nothing is solved before iterating
    results = list(solution)
    pi_f = solution.extras.feature_coupling
    assert len(results) == 3 and pi_f.shape == (4, 3)
    np.testing.assert_allclose(pi_f.sum(1), 1 / 4, atol=1e-5)
    np.testing.assert_allclose(pi_f.sum(0), 1 / 3, atol=1e-5)
    assert "feature_coupling" in solution.extras.to_dict()


def test_make_solver_checks_each_methods_parameters():
    with pytest.raises(ValueError, match=r"`epsilon` must be > 0 for method='sinkhorn'"):
        got.make_solver("sinkhorn", epsilon=0.0)
    with pytest.raises(ValueError, match=r"`reg_m` \(unbalanced OT\).*not 'gw'"):
        got.make_solver("gw", reg_m=1.0)
    got.make_solver("gw", reg_m=None)  # refused only when set
    with pytest.raises(ValueError, match="semi_relaxed"):
        got.make_solver("coot", semi_relaxed=True)
    with pytest.raises(ValueError, match="gw_form='per_label'"):
        got.make_solver("gw", semi_relaxed=True)
    with pytest.raises(ValueError, match="Unknown `metric`"):
        got.make_solver("sinkhorn", metric="manhattan")
    with pytest.raises(ValueError, match="alpha"):
        got.make_solver("fgw", alpha=2.0)
    with pytest.raises(TypeError, match="epsilon"):
        got.make_solver("emd", epsilon=0.1)
    with pytest.raises(ValueError, match="Unknown `method`"):
        got.make_solver("magic")
    solver = got.make_solver("sinkhorn", reg_m=1.0, semi_relaxed=True)
    assert (solver.fa, solver.fb) == (1.0, pytest.approx(1 / 1.05))
    assert solver.params()["epsilon"] == 0.05 and solver.params()["device"] == "cpu"
    assert got.EMDSolver().max_iter == 1_000_000 and not got.EMDSolver.dense_plans


def test_sinkhorn_groups_are_its_batches():
    ls, lt, _, _ = _arrays(sizes_s=(30, 25, 12, 40), sizes_t=(28, 40, 9, 33))
    blocks, _, _ = got.label_blocks(ls, lt)
    solver = got.SinkhornSolver(batch_size=2)
    assert solver.independent_groups(blocks) == got.make_batches(blocks, batch_size=2)
    assert got.COOTSolver().independent_groups(blocks) == [[0, 1, 2, 3]]
    groups = got.EMDSolver().independent_groups(blocks, max_entries=1000)
    assert len(groups) > 1 and sorted(i for g in groups for i in g) == [0, 1, 2, 3]
