"""Benchmark learners (the random-pairs option of GrooveModule: tests/module)."""

import numpy as np
import pytest

import groove_sc as gs
from groove_sc.benchmark import LEARNERS, make_learner


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


# diagvi needs feature links, which the simulator has none of (tests/benchmark/test_diagvi.py)
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
