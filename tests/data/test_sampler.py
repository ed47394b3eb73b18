import numpy as np
import pytest

from groove_sc.data import LabelBalancedPairSampler


def _make(n_labels_a=10, n_labels_b=10, n=500, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    la = rng.integers(0, n_labels_a, size=n)
    lb = rng.integers(0, n_labels_b, size=int(n * 1.3))
    cells = [np.arange(len(la)) + 1000, np.arange(len(lb))]  # row positions differ from order
    return la, lb, LabelBalancedPairSampler([la, lb], cells, **kwargs)


def test_every_step_draws_the_same_labels_in_both_modalities():
    la, lb, sampler = _make(batch_size=64, cells_per_label=8)
    steps = list(sampler)
    assert len(steps) == len(sampler) == int(np.ceil(len(lb) / 64))
    for rows_a, rows_b in steps:
        labs_a, labs_b = la[rows_a - 1000], lb[rows_b]
        assert set(labs_a) == set(labs_b)
        assert len(set(labs_a)) == 8  # 64 // 8 labels per step
        # balanced: the same number of cells of each label in each modality
        assert set(np.bincount(labs_a)[np.unique(labs_a)]) == {8}
        assert set(np.bincount(labs_b)[np.unique(labs_b)]) == {8}


def test_labels_in_one_modality_are_drawn_only_there():
    la, lb, sampler = _make(n_labels_a=12, n_labels_b=10, batch_size=40, cells_per_label=4, seed=1)
    seen_only_a = set()
    for rows_a, rows_b in sampler:
        labs_a, labs_b = set(la[rows_a - 1000]), set(lb[rows_b])
        assert labs_b <= labs_a
        seen_only_a |= labs_a - labs_b
    assert seen_only_a == {10, 11}


def test_few_labels_take_more_cells_per_label():
    _, _, sampler = _make(n_labels_a=4, n_labels_b=4, batch_size=128, cells_per_label=8)
    assert sampler.labels_per_step == 4
    assert sampler.cells_per_label == 32
    rows_a, _ = next(iter(sampler))
    assert len(rows_a) == 128


def test_deterministic_given_seed_and_epoch_and_reshuffled_between_epochs():
    *_, s1 = _make(batch_size=32, seed=0)
    *_, s2 = _make(batch_size=32, seed=0)
    e1a, e1b = list(s1), list(s1)
    e2a = list(s2)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(e1a, e2a))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(e1a, e1b))
    s2.set_epoch(1)
    e2b = list(s2)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(e1b, e2b))


def test_validation_sampler_repeats_itself():
    *_, s = _make(batch_size=32, shuffle=False)
    a, b = list(s), list(s)
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))


def test_small_label_is_drawn_with_repetition_and_every_cell_is_a_valid_row():
    la = np.array([0] * 3 + [1] * 50)
    lb = np.array([0] * 40 + [1] * 2)
    s = LabelBalancedPairSampler(
        [la, lb], [np.arange(53), np.arange(42)], batch_size=16, cells_per_label=8
    )
    for rows_a, rows_b in s:
        assert rows_a.max() < 53 and rows_b.max() < 42
        assert len(rows_a) == len(rows_b) == 16


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        LabelBalancedPairSampler([np.array([0]), np.array([0])], [np.arange(1)] * 2, batch_size=0)


@pytest.mark.parametrize("n_labels", [3, 1000, 70_000])
def test_stable_order_matches_a_stable_argsort(n_labels):
    """Radix path (<= 65536 labels) and fallback give numpy's stable order."""
    from groove_sc.data._sampler import _stable_order

    codes = np.random.default_rng(0).integers(0, n_labels, 5000)
    np.testing.assert_array_equal(_stable_order(codes, n_labels), np.argsort(codes, kind="stable"))
