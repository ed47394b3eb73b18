"""Truth-free agreement scores of labeled couplings (array level)."""

import numpy as np
import pytest

from groove_sc.tl._agreement import agreement_ratio, agreement_test, imputation_gain


def _perm_block(n, rng):
    p = np.zeros((n, n))
    p[np.arange(n), rng.permutation(n)] = 1.0 / n
    return p


def _uniform(n, m):
    return np.full((n, m), 1.0 / (n * m))


def test_agreement_ratio_reference_values():
    rng = np.random.default_rng(0)
    sizes = [10, 20, 5]
    weights = [s / sum(sizes) for s in sizes]
    perms = [_perm_block(n, rng) for n in sizes]
    # labels only: 1; a permutation against itself: the trace ratio of the truth, n_l per label
    assert agreement_ratio([_uniform(n, n) for n in sizes], perms, weights) == pytest.approx(1.0)
    # sum_l w_l n_l <p_l, p_l> / sum_l w_l / n_l with <p_l, p_l> = 1 / n_l
    assert agreement_ratio(perms, perms, weights) == pytest.approx(
        1.0 / sum(w / n for w, n in zip(weights, sizes))
    )
    # the scale of the blocks does not matter (blocks are normalised to unit mass)
    assert agreement_ratio([3 * p for p in perms], perms, weights) == pytest.approx(
        agreement_ratio(perms, perms, weights)
    )


def test_agreement_ratio_checks_shapes():
    with pytest.raises(ValueError, match="one entry per label block"):
        agreement_ratio([np.ones((2, 2))], [], [1.0])
    with pytest.raises(ValueError, match="same shape"):
        agreement_ratio([np.ones((2, 2))], [np.ones((2, 3))], [1.0])


def test_identical_couplings_agree_significantly():
    rng = np.random.default_rng(1)
    blocks = [_perm_block(30, rng) for _ in range(5)]
    t = agreement_test(blocks, blocks, [0.2] * 5, n_permutations=500, seed=0)
    assert t.p_value == pytest.approx(1 / 501)
    assert t.ratio == pytest.approx(30.0)
    assert t.null_mean == pytest.approx(1.0, abs=0.1)
    assert t.correlation == pytest.approx(1.0)


def test_unrelated_couplings_are_calibrated_under_the_null():
    rng = np.random.default_rng(2)
    p_values, corrs = [], []
    for trial in range(60):
        a = [_perm_block(12, rng) for _ in range(6)]
        b = [_perm_block(12, rng) for _ in range(6)]
        t = agreement_test(a, b, [1 / 6] * 6, n_permutations=200, seed=trial)
        p_values.append(t.p_value)
        corrs.append(t.correlation)
    p_values = np.asarray(p_values)
    assert (p_values < 0.05).mean() <= 0.15  # about 5 % expected
    assert (p_values > 0.5).mean() >= 0.3
    assert abs(np.mean(corrs)) < 0.05


def test_soft_couplings_that_share_structure_agree():
    rng = np.random.default_rng(3)
    blocks_a, blocks_b = [], []
    for _ in range(4):
        z = rng.normal(size=(40, 2))  # shared within-label state
        xa = z + 0.3 * rng.normal(size=z.shape)
        xb = z + 0.3 * rng.normal(size=z.shape)
        for x, out in ((xa, blocks_a), (xb, blocks_b)):
            y = z + 0.3 * rng.normal(size=z.shape)
            c = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
            k = np.exp(-c / 0.5)
            out.append(k / k.sum(1, keepdims=True) / 40)
    t = agreement_test(blocks_a, blocks_b, [0.25] * 4, n_permutations=300, seed=0)
    assert t.p_value < 0.01 and t.ratio > 1.5 and 0 < t.correlation < 1


def test_imputation_gain_of_uniform_is_zero_and_of_the_reference_positive():
    rng = np.random.default_rng(4)
    sizes = [15, 25]
    perms = [_perm_block(n, rng) for n in sizes]
    targets = [rng.normal(size=(n, 6)) for n in sizes]
    g = imputation_gain([_uniform(n, n) for n in sizes], perms, targets)
    assert g.gain == pytest.approx(0.0, abs=1e-12)
    g = imputation_gain(perms, perms, targets)
    assert g.gain == pytest.approx(1.0)  # the reference's partners imputed exactly
    # a sharp coupling unrelated to the reference imputes worse than the label means
    other = [_perm_block(n, rng) for n in sizes]
    assert imputation_gain(other, perms, targets).gain < 0


def test_imputation_gain_checks_blocks():
    with pytest.raises(ValueError, match="targets have 3 cells"):
        imputation_gain([np.ones((2, 2))], [np.ones((2, 2))], [np.ones((3, 4))])
    with pytest.raises(ValueError, match="one entry per label block"):
        imputation_gain([np.ones((2, 2))], [], [])
