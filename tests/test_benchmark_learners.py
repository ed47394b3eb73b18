"""Benchmark learners, and the random-pairs contrastive option of GrooveModule."""

import numpy as np
import pytest
import torch

import groove_sc as gs
from groove_sc.benchmark import LEARNERS, make_learner
from groove_sc.module import GrooveModule, group_clip_loss, random_pair_labels
from groove_sc.module._module import LABELS_KEY, X_KEY


# --------------------------------------------------------------------------------------------
# random within-label pairs (clip_random_pairs)
# --------------------------------------------------------------------------------------------
def test_random_pair_labels_pairs_within_labels_one_to_one():
    la = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    lb = torch.tensor([0, 0, 1, 1, 1, 1, 2, 4])
    ids_a, ids_b = random_pair_labels(la, lb, generator=torch.Generator().manual_seed(0))
    assert ids_a.shape == la.shape and ids_b.shape == lb.shape
    # ids are unique within a modality
    assert len(set(ids_a.tolist())) == len(la) and len(set(ids_b.tolist())) == len(lb)
    match = ids_a[:, None] == ids_b[None, :]
    assert (match.sum(1) <= 1).all() and (match.sum(0) <= 1).all()
    ia, ib = torch.nonzero(match, as_tuple=True)
    assert (la[ia] == lb[ib]).all()  # partners share the label
    # min(n_a, n_b) pairs per label: 0 -> 2, 1 -> 2, 2 -> 1, 3 -> 0, 4 -> 0
    assert match.sum().item() == 5


def test_random_pair_labels_is_random_and_seeded():
    la = torch.zeros(20, dtype=torch.long)
    lb = torch.zeros(20, dtype=torch.long)
    draws = [
        random_pair_labels(la, lb, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1)
    ]

    def partner(ids):
        a, b = ids
        return torch.nonzero(a[:, None] == b[None, :])[:, 1]

    assert torch.equal(partner(draws[0]), partner(draws[1]))
    assert not torch.equal(partner(draws[0]), partner(draws[2]))


def _batch(seed=0, n=12, d=5, n_labels=3):
    g = torch.Generator().manual_seed(seed)
    return [
        {X_KEY: torch.randn(n, d, generator=g), LABELS_KEY: torch.arange(n) % n_labels}
        for _ in range(2)
    ]


def test_module_default_contrastive_is_groupclip_unchanged():
    torch.manual_seed(0)
    module = GrooveModule([5, 5], n_latent=4, n_hidden=8, tau=0.2)
    assert module.contrastive == "groupclip"
    module.eval()
    batch = _batch()
    out = module.loss(batch)
    za = module.encode(batch[0][X_KEY], 0)[1]
    zb = module.encode(batch[1][X_KEY], 1)[1]
    expected = group_clip_loss(za, batch[0][LABELS_KEY], zb, batch[1][LABELS_KEY], tau=0.2)
    assert out.extra_metrics["groupclip"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_module_random_pairs_is_clip_on_pseudo_pairs():
    torch.manual_seed(0)
    module = GrooveModule([5, 5], n_latent=4, n_hidden=8, tau=0.2, contrastive="random_pairs")
    module.eval()
    batch = _batch()
    torch.manual_seed(3)
    out = module.loss(batch)
    torch.manual_seed(3)
    ids_a, ids_b = random_pair_labels(batch[0][LABELS_KEY], batch[1][LABELS_KEY])
    za = module.encode(batch[0][X_KEY], 0)[1]
    zb = module.encode(batch[1][X_KEY], 1)[1]
    expected = group_clip_loss(za, ids_a, zb, ids_b, tau=0.2)
    assert out.extra_metrics["groupclip"].item() == pytest.approx(expected.item(), rel=1e-6)
    grouped = group_clip_loss(za, batch[0][LABELS_KEY], zb, batch[1][LABELS_KEY], tau=0.2)
    assert expected.item() != pytest.approx(grouped.item())  # not GroupCLIP
    with pytest.raises(ValueError, match="contrastive"):
        GrooveModule([5, 5], contrastive="pairs")


# --------------------------------------------------------------------------------------------
# learners
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def split():
    mdata = gs.datasets.simulate(
        n_perturbations=5, cells_per_perturbation=40, n_features=(12, 10), seed=0
    )
    return gs.data.split_weakly_paired(mdata, "perturbation", test_size=0.25, seed=0)


SMALL = {"max_epochs": 3, "n_latent": 4, "n_hidden": 16, "batch_size": 32}


# diagvi needs feature links, which the simulator has none of (tests/test_benchmark_diagvi.py)
@pytest.mark.parametrize("kind", sorted(set(LEARNERS) - {"diagvi"}))
def test_every_learner_fits_and_embeds(split, kind):
    train, test = split
    learner = make_learner(kind, {}, SMALL)
    assert learner.fit(train, "perturbation", seed=0) is learner
    emb = learner.transform(test)
    assert set(emb) == set(test.mod)
    for m, z in emb.items():
        assert z.shape[0] == test.mod[m].n_obs
        assert np.isfinite(z).all()
    dims = {z.shape[1] for z in emb.values()}
    assert (len(dims) == 1) == learner.shared_space or kind == "pca"
    assert learner.fit_seconds > 0


def test_learner_kinds_and_options(split):
    _train, test = split
    assert not make_learner("pca").shared_space
    groove = make_learner("groove_no_backtranslation", {"tau": 0.5}, SMALL)
    assert groove.params["alpha"] == 0.0 and groove.params["tau"] == 0.5
    assert make_learner("clip_random_pairs").params["contrastive"] == "random_pairs"
    assert make_learner("autoencoder").params["beta"] == 0.0
    # GROOVE-only defaults are dropped for the other kinds; n_latent sets the PCA width
    pca = make_learner("pca", {}, {"tau": 0.3, "max_epochs": 5, "n_latent": 3})
    assert pca.params == {"n_comps": 3}
    alias = make_learner("groove_tau0.5", {"kind": "groove", "tau": 0.5}, SMALL)
    assert alias.name == "groove_tau0.5" and alias.params["tau"] == 0.5
    with pytest.raises(KeyError, match="Unknown learner"):
        make_learner("scot")
    with pytest.raises(RuntimeError, match="not fitted"):
        make_learner("pca").transform(test)


def test_propensity_scores_are_probabilities(split):
    train, test = split
    emb = make_learner("propensity_score").fit(train, "perturbation", 0).transform(test)
    for z in emb.values():
        assert z.shape[1] == 5
        np.testing.assert_allclose(z.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["groove", "vae_adversarial"])
def test_learners_are_deterministic(split, kind):
    train, test = split
    a = make_learner(kind, {}, SMALL).fit(train, "perturbation", 1).transform(test)
    b = make_learner(kind, {}, SMALL).fit(train, "perturbation", 1).transform(test)
    c = make_learner(kind, {}, SMALL).fit(train, "perturbation", 2).transform(test)
    m = next(iter(a))
    np.testing.assert_array_equal(a[m], b[m])
    assert not np.allclose(a[m], c[m])
