"""The batched Sinkhorn of ``groove_sc.ot`` against POT, on arrays (no AnnData)."""

import numpy as np
import ot
import pytest
import torch

from groove_sc.ot import LabelBlock, make_batches
from groove_sc.ot._sinkhorn import BatchedSinkhorn, sinkhorn_batched


def _batch(sizes, dim=4, seed=0, dtype=torch.float64):
    """A padded batch of squared-Euclidean problems (costs / mean), and the unpadded costs."""
    rng = np.random.default_rng(seed)
    n_max = max(n for n, _ in sizes)
    m_max = max(m for _, m in sizes)
    cost = torch.zeros(len(sizes), n_max, m_max, dtype=dtype)
    a = torch.zeros(len(sizes), n_max, dtype=dtype)
    b = torch.zeros(len(sizes), m_max, dtype=dtype)
    costs = []
    for k, (n, m) in enumerate(sizes):
        x, y = rng.normal(size=(n, dim)), rng.normal(size=(m, dim)) + 0.5
        c = ot.dist(x, y)
        c /= c.mean()
        costs.append(c)
        cost[k, :n, :m] = torch.as_tensor(c)
        a[k, :n], b[k, :m] = 1.0 / n, 1.0 / m
    return cost, a, b, costs


@pytest.mark.parametrize("sizes", [[(30, 30)] * 5, [(12, 40), (40, 12), (25, 25), (3, 7)]])
def test_balanced_blocks_match_pot(sizes):
    cost, a, b, costs = _batch(sizes)
    res = sinkhorn_batched(cost, a, b, 0.1, tol=1e-9, max_iter=5000)
    assert res.converged.all()
    for k, c in enumerate(costs):
        n, m = c.shape
        ref = ot.sinkhorn(
            np.full(n, 1 / n), np.full(m, 1 / m), c, 0.1, stopThr=1e-12, numItermax=10**5
        )
        np.testing.assert_allclose(res.plan[k, :n, :m].numpy(), ref, atol=1e-8)
        assert float(res.plan[k, n:, :].abs().sum() + res.plan[k, :, m:].abs().sum()) == 0.0


def test_unbalanced_blocks_match_pot():
    cost, a, b, costs = _batch([(20, 30), (30, 20)], seed=1)
    eps, reg_m = 0.1, 1.0
    f = reg_m / (reg_m + eps)
    res = sinkhorn_batched(cost, a, b, eps, fa=f, fb=f, tol=1e-10, max_iter=10000)
    for k, c in enumerate(costs):
        n, m = c.shape
        # the entropy (not KL to a b^T) regulariser: the kernel exp(-C / eps)
        ref = ot.unbalanced.sinkhorn_unbalanced(
            np.full(n, 1 / n),
            np.full(m, 1 / m),
            c,
            eps,
            reg_m,
            reg_type="entropy",
            stopThr=1e-13,
            numItermax=10**5,
        )
        np.testing.assert_allclose(res.plan[k, :n, :m].numpy(), ref, atol=1e-7)


def test_free_target_marginal_is_a_softmin_per_row():
    cost, a, b, costs = _batch([(15, 25)], seed=2)
    res = sinkhorn_batched(cost, a, b, 0.2, fb=0.0, tol=1e-12)
    c = costs[0]
    soft = np.exp(-c / 0.2)
    soft /= soft.sum(1, keepdims=True) * c.shape[0]
    np.testing.assert_allclose(res.plan[0].numpy(), soft, atol=1e-10)


def test_float32_with_tiny_epsilon_keeps_every_row():
    cost, a, b, _ = _batch([(50, 50)] * 3, seed=3, dtype=torch.float32)
    res = sinkhorn_batched(cost, a, b, 1e-3, tol=1e-4, max_iter=3000)
    rows = res.plan.sum(2)
    assert (rows > 0).all()
    assert np.nanmax(res.error) < 1e-3


def test_a_slow_problem_does_not_keep_the_others_iterating():
    # one sharp problem among smooth ones: each stops at its own iteration count
    cost, a, b, _ = _batch([(40, 40)] * 4, seed=4)
    cost[0] *= 4.0  # a sharper problem at the same epsilon
    res = BatchedSinkhorn(0.1, tol=1e-5, max_iter=20000).solve(cost, a, b)
    assert res.converged.all()
    assert res.n_iter[0] > 3 * res.n_iter[1:].max()
    # the smooth problems reach the same plans as without the slow one (to the tolerance: the
    # epsilon schedule follows the spread of the batch's costs)
    cost2, a2, b2, _ = _batch([(40, 40)] * 4, seed=4)
    alone = BatchedSinkhorn(0.1, tol=1e-5, max_iter=20000).solve(cost2[1:], a2[1:], b2[1:])
    np.testing.assert_allclose(res.plan[1:].numpy(), alone.plan.numpy(), rtol=1e-3, atol=1e-9)


def test_warm_start_from_the_potentials_converges_at_once():
    cost, a, b, _ = _batch([(20, 20)] * 2, seed=5)
    first = sinkhorn_batched(cost.clone(), a, b, 0.1, tol=1e-9)
    again = sinkhorn_batched(cost.clone(), a, b, 0.1, tol=1e-9, init=(first.alpha, first.beta))
    assert again.n_iter.max() <= 10
    np.testing.assert_allclose(again.plan.numpy(), first.plan.numpy(), atol=1e-8)


def test_batches_do_not_pad_small_labels_to_the_largest():
    rng = np.random.default_rng(0)
    sizes = [1000, *rng.integers(20, 200, 60).tolist()]  # a control and smaller labels
    blocks = [LabelBlock(str(k), np.arange(s), np.arange(s), 1.0) for k, s in enumerate(sizes)]
    batches = make_batches(blocks)
    assert sorted(i for b in batches for i in b) == list(range(len(blocks)))
    for batch in batches:
        n_max = max(blocks[i].shape[0] for i in batch)
        m_max = max(blocks[i].shape[1] for i in batch)
        for i in batch:
            n, m = blocks[i].shape
            assert n * m >= 0.5 * n_max * m_max
    assert [0] in batches  # the control runs alone
