"""GROOVE on three (or more) modalities: losses, sampler, simulation, split, model, errors.

The two-modality losses are checked against a copy of the two-modality code path as it was
before more modalities were supported (``_reference_two_modality_*``), on the same batch and
the same dropout draws.
"""

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import groove_sc as gs
from groove_sc.data import LabelBalancedPairSampler
from groove_sc.model import GROOVE
from groove_sc.module import GrooveModule, group_clip_loss, multimodal_group_clip_loss
from groove_sc.module._groupclip import random_pair_labels
from groove_sc.module._module import _safe_mean
from groove_sc.tl import label_transfer_accuracy

MODS = ["rna", "protein", "atac"]
QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "logger": None}


# --------------------------------------------------------------------------------- references
def _naive_pair_loss(za, la, zb, lb, tau, variant):
    """Per-anchor double loop of the GroupCLIP equation (DESIGN.md section 2) for one pair."""
    za, zb = F.normalize(za, dim=1), F.normalize(zb, dim=1)
    s = (za @ zb.T / tau).tolist()
    la, lb = la.tolist(), lb.tolist()

    def direction(sim, lq, lr):
        losses = []
        for i, row in enumerate(sim):
            pos = [j for j in range(len(lr)) if lr[j] == lq[i]]
            if not pos:
                continue
            log_den = math.log(sum(math.exp(v) for v in row))
            if variant == "in":
                losses.append(-(math.log(sum(math.exp(row[j]) for j in pos)) - log_den))
            else:
                losses.append(-sum(row[j] - log_den for j in pos) / len(pos))
        return losses

    terms = [direction(s, la, lb), direction([list(c) for c in zip(*s)], lb, la)]
    means = [sum(t) / len(t) for t in terms if t]
    return sum(means) / len(means) if means else None


def _naive_multimodal(zs, labels, tau, variant):
    values = [
        _naive_pair_loss(zs[a], labels[a], zs[b], labels[b], tau, variant)
        for a in range(len(zs))
        for b in range(a + 1, len(zs))
    ]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else 0.0


def _reference_two_modality_loss(module, batch):
    """GrooveModule.loss as it was for exactly two modalities (before this change)."""
    recs, kls, zs = [], [], []
    for m in range(2):
        x = batch[m]["X"]
        b = batch[m].get("batch")
        z, mean, var = module.encode(x, m, b)
        recs.append(_safe_mean(module.reconstruction_loss(z, x, m, b)))
        kls.append(_safe_mean(module._kl(mean, var)))
        zs.append(mean)
    if module.beta > 0:
        labels_a, labels_b = batch[0]["labels"], batch[1]["labels"]
        if module.contrastive == "random_pairs":
            labels_a, labels_b = random_pair_labels(labels_a, labels_b)
        clip = group_clip_loss(
            module.contrastive_embedding(zs[0]),
            labels_a,
            module.contrastive_embedding(zs[1]),
            labels_b,
            tau=module.tau,
            variant=module.groupclip,
        )
    else:
        clip = torch.zeros(())
    kl = kls[0] + kls[1]
    total = recs[0] + recs[1] + module.beta * clip
    if module.variational:
        total = total + module.kl_weight * kl
    extra = {"reconstruction_0": recs[0], "reconstruction_1": recs[1], "groupclip": clip}
    if module.variational:
        extra["kl"] = kl
    return total, extra


def _reference_two_modality_backtranslation(module, batch):
    """GrooveModule.backtranslation_loss as it was for exactly two modalities."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            pseudo = []
            for m in range(2):
                _, mean, _ = module.encode(batch[m]["X"], m, batch[m].get("batch"))
                pseudo.append(module.decode(mean, 1 - m))
    finally:
        module.train(was_training)
    total = torch.zeros(())
    for m in range(2):
        z, _, _ = module.encode(pseudo[m], 1 - m)
        x = batch[m]["X"]
        total = total + _safe_mean(module.reconstruction_loss(z, x, m, batch[m].get("batch")))
    return module.alpha * total


def _batch(sizes=(9, 11, 7), features=(5, 4, 6), n_labels=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        {"X": torch.randn(n, p, generator=gen), "labels": torch.arange(n) % n_labels}
        for n, p in zip(sizes, features)
    ]


# ----------------------------------------------------------------------------------- GroupCLIP
@pytest.mark.parametrize("variant", ["in", "out"])
def test_multimodal_group_clip_equals_the_naive_double_loop(variant):
    gen = torch.Generator().manual_seed(1)
    zs = [torch.randn(n, 4, generator=gen, dtype=torch.float64) for n in (7, 5, 6)]
    # label 3 only in modality 0 and 2; label 4 only in modality 1 (no positive anywhere)
    labels = [torch.tensor([0, 1, 2, 3, 3, 0, 1]), torch.tensor([0, 1, 4, 2, 2]), None]
    labels[2] = torch.tensor([3, 0, 1, 1, 2, 3])
    got, pairs = multimodal_group_clip_loss(zs, labels, tau=0.3, variant=variant)
    assert got.item() == pytest.approx(_naive_multimodal(zs, labels, 0.3, variant), abs=1e-10)
    assert set(pairs) == {(0, 1), (0, 2), (1, 2)}
    for (a, b), term in pairs.items():
        expected = _naive_pair_loss(zs[a], labels[a], zs[b], labels[b], 0.3, variant)
        assert term.item() == pytest.approx(expected, abs=1e-10)


def test_multimodal_group_clip_two_modalities_is_the_pair_loss_exactly():
    gen = torch.Generator().manual_seed(2)
    za, zb = torch.randn(8, 3, generator=gen), torch.randn(6, 3, generator=gen)
    la, lb = torch.arange(8) % 3, torch.arange(6) % 4
    got, _ = multimodal_group_clip_loss([za, zb], [la, lb], tau=0.5, variant="out")
    assert torch.equal(got, group_clip_loss(za, la, zb, lb, tau=0.5, variant="out"))


def test_multimodal_group_clip_skips_pairs_without_positives():
    gen = torch.Generator().manual_seed(3)
    zs = [torch.randn(4, 3, generator=gen, requires_grad=True) for _ in range(3)]
    labels = [torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1]), torch.tensor([5, 5, 6, 6])]
    got, pairs = multimodal_group_clip_loss(zs, labels, tau=0.5)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(pairs[(0, 1)].item())  # the only pair with positives
    assert pairs[(0, 2)].item() == 0.0 and pairs[(1, 2)].item() == 0.0
    none, _ = multimodal_group_clip_loss(
        zs, [torch.tensor([0] * 4), torch.tensor([1] * 4), torch.tensor([2] * 4)], tau=0.5
    )
    assert none.item() == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match="modalities"):
        multimodal_group_clip_loss(zs[:1], labels[:1])


# ------------------------------------------------------------------- two-modality losses as before
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"variational": True, "groupclip": "out"},
        {"contrastive": "random_pairs", "projection_head": True},
        {"beta": 0.0, "likelihood": ["gaussian", "nb"]},
    ],
)
def test_two_modality_losses_equal_the_two_modality_reference(kwargs):
    torch.manual_seed(0)
    module = GrooveModule([5, 4], n_latent=3, n_hidden=8, dropout_rate=0.3, **kwargs)
    batch = _batch(sizes=(9, 11), features=(5, 4))
    if kwargs.get("likelihood"):
        batch[1]["X"] = torch.poisson(batch[1]["X"].abs() * 5)
    module.train()
    torch.manual_seed(7)
    step1 = module.loss(batch)
    bt_total, bt_terms = module.backtranslation(batch)
    torch.manual_seed(7)
    ref_total, ref_extra = _reference_two_modality_loss(module, batch)
    ref_bt = _reference_two_modality_backtranslation(module, batch)
    assert torch.equal(step1.loss, ref_total)
    assert set(step1.extra_metrics) == set(ref_extra)
    for key, value in ref_extra.items():
        assert torch.equal(step1.extra_metrics[key], value.detach()), key
    assert torch.equal(bt_total, ref_bt)
    assert set(bt_terms) == {(0, 1), (1, 0)}
    torch.manual_seed(7)
    module.loss(batch)
    assert torch.equal(module.backtranslation_loss(batch), ref_bt)


def test_three_modality_module_losses_and_pair_terms():
    torch.manual_seed(0)
    module = GrooveModule([5, 4, 6], n_latent=3, n_hidden=8, dropout_rate=0.0, alpha=2.0)
    batch = _batch()
    module.eval()
    with torch.no_grad():
        out = module.loss(batch)
        zs = [module.encode(b["X"], m)[1] for m, b in enumerate(batch)]
        clip, pairs = multimodal_group_clip_loss(zs, [b["labels"] for b in batch], tau=module.tau)
        recs = [module.reconstruction_loss(zs[m], b["X"], m).mean() for m, b in enumerate(batch)]
        assert out.loss.item() == pytest.approx((sum(recs) + module.beta * clip).item(), rel=1e-6)
        for (a, b), term in pairs.items():
            assert out.extra_metrics[f"groupclip_{a}_{b}"].item() == pytest.approx(term.item())
        total, terms = module.backtranslation(batch)
        assert set(terms) == {(s, t) for s in range(3) for t in range(3) if s != t}
        by_hand = {}
        for s in range(3):
            for t in range(3):
                if s != t:
                    pseudo = module.decode(zs[s], t)
                    z = module.encode(pseudo, t)[0]
                    by_hand[(s, t)] = module.reconstruction_loss(z, batch[s]["X"], s).mean()
                    assert terms[(s, t)].item() == pytest.approx(by_hand[(s, t)].item(), rel=1e-6)
        expected = 2.0 * sum(
            (by_hand[(s, (s + 1) % 3)] + by_hand[(s, (s + 2) % 3)]) / 2 for s in range(3)
        )
        assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="likelihood"):
        GrooveModule([5, 4, 6], likelihood=["gaussian", "nb"])
    with pytest.raises(ValueError, match="at least two"):
        GrooveModule([5])
    with pytest.raises(ValueError, match="modalities"):
        module.loss(batch[:2])


# ------------------------------------------------------------------------------------- sampler
def test_sampler_draws_the_same_labels_in_every_modality_that_has_them():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 10, 400), rng.integers(0, 10, 300), rng.integers(0, 8, 350)]
    cells = [np.arange(len(c)) for c in labels]
    sampler = LabelBalancedPairSampler(labels, cells, batch_size=40, cells_per_label=5, seed=3)
    steps = list(sampler)
    assert len(steps) == len(sampler) == 10
    for rows in steps:
        assert len(rows) == 3
        drawn = [set(labels[m][r]) for m, r in enumerate(rows)]
        assert drawn[0] == drawn[1]
        assert drawn[2] == drawn[0] - {8, 9}  # labels 8 and 9 are absent from modality 2
        for m, r in enumerate(rows):
            assert set(np.bincount(labels[m][r])[list(drawn[m])]) == {5}
    # the first two modalities' draws are those of a two-modality sampler (same label pool)
    two = LabelBalancedPairSampler(labels[:2], cells[:2], batch_size=40, cells_per_label=5, seed=3)
    for (a3, b3, _), (a2, b2) in zip(steps, two):
        np.testing.assert_array_equal(a3, a2)
        np.testing.assert_array_equal(b3, b2)


# ---------------------------------------------------------------------------------- simulation
def test_simulate_three_modalities_blocks_and_two_modality_output_unchanged():
    kwargs = {"n_perturbations": 5, "cells_per_perturbation": 12, "seed": 4}
    two = gs.datasets.simulate(**kwargs)
    again = gs.datasets.simulate(**kwargs, n_modalities=2, modality_names=("rna", "protein"))
    for m in two.mod:
        np.testing.assert_array_equal(two.mod[m].X, again.mod[m].X)
    assert two.uns["simulation"] == again.uns["simulation"]

    sim = gs.datasets.simulate(
        **kwargs, n_modalities=3, n_features=(12, 7, 9), shared_subsets={("rna", "atac"): 0.5}
    )
    assert list(sim.mod) == MODS
    assert [sim.mod[m].n_vars for m in MODS] == [12, 7, 9]
    for m in MODS[1:]:  # one shared block seen by all, the same cells in every modality
        np.testing.assert_array_equal(sim.mod[m].obsm["z_shared"], sim.mod["rna"].obsm["z_shared"])
        np.testing.assert_array_equal(sim.mod[m].obs["pair_id"], sim.mod["rna"].obs["pair_id"])
    np.testing.assert_array_equal(sim.mod["rna"].obsm["z_subset"], sim.mod["atac"].obsm["z_subset"])
    assert "z_subset" not in sim.mod["protein"].obsm
    spec = [sim.mod[m].obsm["z_specific"] for m in MODS]
    assert not np.allclose(spec[0], spec[2])
    # the subset block takes half of the members' non-shared variance
    var_own = spec[0].var(axis=0).sum()
    var_protein = spec[1].var(axis=0).sum()
    assert var_own < 0.75 * var_protein
    assert sim.uns["simulation"]["shared_subsets"] == {"rna+atac": 0.5}
    # a list of names gives the number of modalities
    four = gs.datasets.simulate(**kwargs, modality_names=["a", "b", "c", "d"], n_features=6)
    assert list(four.mod) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_modalities": 1}, "n_modalities"),
        ({"n_modalities": 3, "modality_names": ("rna", "protein")}, "modality_names"),
        ({"n_modalities": 3, "n_features": (5, 5)}, "n_features.*three"),
        ({"n_modalities": 3, "shared_subsets": {("rna", "dna"): 0.5}}, "shared_subsets.*dna"),
        ({"n_modalities": 3, "shared_subsets": {("rna", "protein", "atac"): 0.5}}, "fewer"),
        ({"n_modalities": 3, "shared_subsets": {("rna", "atac"): 1.5}}, "shared_subsets"),
        (
            {"n_modalities": 3, "shared_subsets": {("rna", "atac"): 0.7, ("rna", "protein"): 0.5}},
            "'rna'.*> 1",
        ),
        ({"shared_subsets": {("rna", "protein"): 0.5}}, "fewer"),
    ],
)
def test_simulate_bad_modality_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gs.datasets.simulate(n_perturbations=4, cells_per_perturbation=5, **kwargs)


# ---------------------------------------------------------------------------------------- split
def test_split_three_modalities_disjoint_training_cells_and_paired_test_cells():
    sim = gs.datasets.simulate(
        n_modalities=3,
        n_perturbations=5,
        cells_per_perturbation=30,
        seed=0,
        missing_labels={"atac": 1},
    )
    train, test = gs.data.split_weakly_paired(sim, modalities=MODS, test_size=0.2, seed=0)
    ids = [set(train.mod[m].obs["pair_id"]) for m in MODS]
    tested = set(test.mod["rna"].obs["pair_id"])
    for i in range(3):
        assert ids[i].isdisjoint(tested)
        for j in range(i + 1, 3):
            assert ids[i].isdisjoint(ids[j])
    assert set().union(*ids) | tested == set(sim.mod["rna"].obs["pair_id"])
    for m in MODS:
        np.testing.assert_array_equal(test.mod[m].obs["pair_id"], test.mod["rna"].obs["pair_id"])
        assert train.mod[m].obs_names.str.startswith(f"{m}:").all()
    # each label's training cells in all three modalities are dealt out about evenly
    counts = pd.DataFrame({m: train.mod[m].obs["perturbation"].value_counts() for m in MODS})
    missing = sim.uns["simulation"]["missing_in_atac"][0]
    assert counts.loc[missing, "atac"] == 0
    shared = counts.drop(index=missing)
    assert (shared.max(axis=1) - shared.min(axis=1) <= 1).all()
    assert train.uns["split"]["modalities"] == MODS
    again = gs.data.split_weakly_paired(sim, modalities=MODS, test_size=0.2, seed=0)[0]
    for m in MODS:
        assert train.mod[m].obs_names.equals(again.mod[m].obs_names)


# ------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def three():
    sim = gs.datasets.simulate(
        n_modalities=3,
        n_perturbations=10,
        cells_per_perturbation=150,
        shared_fraction=1.0,
        effect_size=2.5,
        seed=0,
    )
    train, test = gs.data.split_weakly_paired(sim, modalities=MODS, test_size=0.2, seed=0)
    GROOVE.setup_mudata(train, perturbation_key="perturbation", modalities=MODS)
    model = GROOVE(train)
    model.train(max_epochs=60, early_stopping=False, **QUIET)
    return model, train, test


@pytest.mark.filterwarnings("ignore:align.*did not reach tol:UserWarning")
def test_three_modalities_end_to_end_learns_every_pair(three, tmp_path):
    model, _, test = three
    assert model.modalities == MODS
    z = model.get_latent_representation(test)
    assert set(z) == set(MODS)
    gs.tl.latent(model, test)
    assert set(test.obs["modality"].cat.categories) <= set(MODS)
    for i, a in enumerate(MODS):
        for b in MODS[i + 1 :]:
            la = test.mod[a].obs["perturbation"].to_numpy()
            lb = test.mod[b].obs["perturbation"].to_numpy()
            acc = (
                label_transfer_accuracy(z[a], la, z[b], lb)
                + label_transfer_accuracy(z[b], lb, z[a], la)
            ) / 2
            assert acc >= 0.9, (a, b, acc)
            # align and impute between each pair, in both directions
            for s, t in ((a, b), (b, a)):
                key = f"T_{s}_{t}"
                gs.tl.align(test, source=s, target=t, key_added=key)
                scores = gs.tl.matching_metrics(test, coupling_key=key, source=s, target=t)
                assert scores["label_transfer_accuracy"] == pytest.approx(1.0)
                assert scores["trace_ratio"] > 1.0
                assert scores["foscttm"] < 0.2
                gs.tl.impute(test, source=s, target=t, coupling_key=key)
                imputed = test.mod[s].obsm[f"{t}_imputed"]
                assert imputed.shape == (test.mod[s].n_obs, test.mod[t].n_vars)
                pred = model.translate(test, source=s, target=t)
                assert pred.shape == (test.mod[s].n_obs, test.mod[t].n_vars)
                assert list(pred.var_names) == list(test.mod[t].var_names)

    # save / load
    model.save(tmp_path / "m3", save_anndata=True)
    loaded = GROOVE.load(tmp_path / "m3")
    assert loaded.modalities == MODS
    z2 = loaded.get_latent_representation(test)
    for m in MODS:
        np.testing.assert_allclose(z2[m], z[m], rtol=1e-5, atol=1e-6)
    on_test = GROOVE.load(tmp_path / "m3", mdata=test.copy())
    np.testing.assert_allclose(
        on_test.get_latent_representation(test)["atac"], z["atac"], atol=1e-6
    )


def test_three_modalities_history_keys_per_modality_and_pair(three):
    model = three[0]
    hist = model.history
    pairs = ["rna_protein", "rna_atac", "protein_atac"]
    ordered = [f"{s}_{t}" for s in MODS for t in MODS if s != t]
    for split in ("train", "validation"):
        for key in (
            ["loss", "groupclip", "backtranslation"]
            + [f"reconstruction_{m}" for m in MODS]
            + [f"groupclip_{p}" for p in pairs]
            + [f"backtranslation_{p}" for p in ordered]
        ):
            assert f"{key}_{split}" in hist, key
            assert len(hist[f"{key}_{split}"]) == 60
        for p in pairs:
            assert f"label_transfer_{p}_{split}" in hist
    assert set(model._logged_terms(label_transfer=True)) == {
        k for k in hist if k.endswith(("_train", "_validation"))
    }
    last = {k: float(v.iloc[-1, 0]) for k, v in hist.items()}
    # the total is the mean over pairs; backtranslation the weighted mean per source
    clip = np.mean([last[f"groupclip_{p}_train"] for p in pairs])
    assert last["groupclip_train"] == pytest.approx(clip, rel=0.05)
    lt = np.mean([last[f"label_transfer_{p}_validation"] for p in pairs])
    assert last["label_transfer_validation"] == pytest.approx(lt, abs=1e-6)
    assert last["label_transfer_validation"] >= 0.9
    assert np.isfinite(model.label_transfer_chance_)
    axes = gs.pl.history(model, show=False)
    titles = [a.get_title() for a in axes]
    assert "label transfer" in titles and "groupclip rna protein" in titles
    plt.close("all")


def test_three_modalities_pl_latent_colours_each_modality(three):
    _, _, test = three
    test = test.copy()
    if "X_groove" not in test.mod["rna"].obsm:
        gs.tl.latent(three[0], test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = gs.pl.latent(test, basis="pca", show=False)
    leg = axes[0].get_legend()
    assert [t.get_text() for t in leg.get_texts()] == MODS
    assert sum(c.get_offsets().shape[0] for c in axes[0].collections) == sum(
        test.mod[m].n_obs for m in MODS
    )
    plt.close("all")


def test_three_modalities_early_stopping_on_a_pair_and_a_label_in_two_modalities():
    sim = gs.datasets.simulate(
        n_modalities=3,
        n_perturbations=5,
        cells_per_perturbation=40,
        n_features=8,
        seed=1,
        missing_labels={"protein": 1},
    )
    train, _ = gs.data.split_weakly_paired(sim, modalities=MODS, test_size=0.2, seed=0)
    GROOVE.setup_mudata(train, modalities=MODS)  # label key recorded by the split's source
    model = GROOVE(train, n_hidden=16, n_latent=4)
    model.train(
        max_epochs=3,
        early_stopping=True,
        early_stopping_monitor="label_transfer_rna_atac_validation",
        **QUIET,
    )
    assert "label_transfer_rna_atac_validation" in model.history
    with pytest.raises(ValueError, match="early_stopping_monitor"):
        model.train(max_epochs=1, early_stopping_monitor="groupclip_rna_dna_validation", **QUIET)


# ------------------------------------------------------------------------------------ bad input
def _three_mdata(seed=0):
    sim = gs.datasets.simulate(
        n_modalities=3, n_perturbations=4, cells_per_perturbation=24, n_features=6, seed=seed
    )
    return gs.data.split_weakly_paired(sim, modalities=MODS, test_size=0.2, seed=0)[0]


def _snapshot(mdata):
    return (
        {m: (mdata.mod[m].obs.copy(), np.asarray(mdata.mod[m].X).copy()) for m in mdata.mod},
        dict(mdata.uns),
    )


def _assert_unchanged(mdata, snap):
    mods, uns = snap
    assert set(mdata.mod) == set(mods)
    for m, (obs, x) in mods.items():
        pd.testing.assert_frame_equal(mdata.mod[m].obs, obs)
        np.testing.assert_array_equal(np.asarray(mdata.mod[m].X), x)
    assert set(mdata.uns) == set(uns)


def _relabel(adata, prefix):
    col = adata.obs["perturbation"].astype(str)
    adata.obs["perturbation"] = pd.Categorical(prefix + col)


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("no_shared_label", ValueError, r"'atac' shares no value of `perturbation_key`"),
        ("disconnected", ValueError, r"perturbation_key.*groups that share no label"),
        ("duplicated", ValueError, r"`modalities` must name different modalities.*'rna'"),
        ("empty", ValueError, r"'protein' \(in `modalities`\) is empty"),
        ("wrong_name", KeyError, r"`modalities` names 'dna'"),
        ("one_name", ValueError, r"`modalities` must be a sequence of two or more"),
        ("no_label_column", KeyError, r"`perturbation_key`='perturbation'.*mod\['atac'\]"),
        ("missing_label", ValueError, r"perturbation_key.*missing labels in modality 'atac'"),
        ("nan", ValueError, r"mdata.mod\['atac'\].X contains 1 NaN"),
        ("layer", KeyError, r"`layers` asks for layer 'counts' in modality 'atac'"),
        (
            "colliding_names",
            ValueError,
            r"obs_names occur in both modalities \['protein', 'atac'\]",
        ),
    ],
)
def test_three_modalities_bad_input_clear_errors_and_mdata_unchanged(case, error, match):
    mdata = _three_mdata()
    modalities = MODS
    if case == "no_shared_label":
        _relabel(mdata.mod["atac"], "other_")
    elif case == "disconnected":
        extra = mdata.mod["atac"].copy()
        extra.obs_names = "dna:" + extra.obs_names
        mods = {m: mdata.mod[m].copy() for m in MODS}
        mods["dna"] = extra
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # dna repeats atac's feature names
            mdata = md.MuData(mods)
        _relabel(mdata.mod["atac"], "other_")
        _relabel(mdata.mod["dna"], "other_")
        modalities = [*MODS, "dna"]
    elif case == "duplicated":
        modalities = ["rna", "protein", "rna"]
    elif case == "empty":
        mods = {m: mdata.mod[m].copy() for m in MODS}
        mods["protein"] = mods["protein"][:0].copy()
        mdata = md.MuData(mods)
    elif case == "wrong_name":
        modalities = ["rna", "protein", "dna"]
    elif case == "one_name":
        modalities = ["rna"]
    elif case == "no_label_column":
        mdata.mod["atac"].obs = mdata.mod["atac"].obs.rename(columns={"perturbation": "guide"})
    elif case == "missing_label":
        col = mdata.mod["atac"].obs["perturbation"].copy()
        col.iloc[0] = np.nan
        mdata.mod["atac"].obs["perturbation"] = col
    elif case == "nan":
        mdata.mod["atac"].X[0, 0] = np.nan
    elif case == "colliding_names":
        mods = {m: mdata.mod[m].copy() for m in MODS}
        mods["atac"] = mods["atac"][: mods["protein"].n_obs].copy()
        mods["atac"].obs_names = mods["protein"].obs_names[: mods["atac"].n_obs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            mdata = md.MuData(mods)
    layers = {"atac": "counts"} if case == "layer" else None
    snap = _snapshot(mdata)
    with pytest.raises(error, match=match):
        GROOVE.setup_mudata(
            mdata, perturbation_key="perturbation", modalities=modalities, layers=layers
        )
    _assert_unchanged(mdata, snap)


def test_three_modalities_label_in_one_modality_warns_and_trains():
    mdata = _three_mdata()
    atac = mdata.mod["atac"]
    col = atac.obs["perturbation"].astype(str).to_numpy().copy()
    col[:6] = "only_atac"
    atac.obs["perturbation"] = pd.Categorical(col)
    with pytest.warns(UserWarning, match=r"only in modality 'atac'"):
        GROOVE.setup_mudata(mdata, perturbation_key="perturbation", modalities=MODS)
    model = GROOVE(mdata, n_hidden=8, n_latent=3)
    model.train(max_epochs=1, **QUIET)
    assert np.isfinite(model.history["groupclip_train"].to_numpy(dtype=float)).all()


def test_from_anndatas_three_modalities_prefixes_shared_names():
    sim = gs.datasets.simulate(
        n_modalities=3, n_perturbations=3, cells_per_perturbation=4, n_features=5, seed=0
    )
    adatas = {m: sim.mod[m].copy() for m in MODS}
    adatas["protein"].obs_names = [f"p{i}" for i in range(adatas["protein"].n_obs)]
    with pytest.warns(UserWarning, match="more than one of the modalities"):
        mdata = gs.data.from_anndatas(adatas)
    assert list(mdata.mod) == MODS
    assert mdata.n_obs == 3 * 12
    assert mdata.mod["protein"].obs_names[0] == "protein:p0"
    with pytest.raises(ValueError, match="at least two"):
        gs.data.from_anndatas({"rna": adatas["rna"]})


def test_backtranslation_targets_draws_targets_per_source_with_the_full_loss_in_expectation():
    torch.manual_seed(0)
    module = GrooveModule(
        [5, 4, 6], n_latent=3, n_hidden=8, dropout_rate=0.0, backtranslation_targets=1
    )
    batch = _batch()
    module.eval()
    with torch.no_grad():
        full, every = module.backtranslation(batch, sample=False)
        assert len(every) == 6
        totals = []
        for _ in range(300):
            total, terms = module.backtranslation(batch)
            assert sorted(s for s, _ in terms) == [0, 1, 2]  # one target per source
            expected = module.alpha * sum(every[pair] for pair in terms)
            assert total.item() == pytest.approx(expected.item(), rel=1e-6)
            totals.append(total.item())
    assert np.mean(totals) == pytest.approx(full.item(), rel=0.02)
    # two modalities: nothing is drawn, the loss is the two-modality one
    two = GrooveModule([5, 4], n_latent=3, n_hidden=8, backtranslation_targets=1)
    state = torch.get_rng_state()
    two.eval()
    got = two.backtranslation(batch[:2])[0]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(got, _reference_two_modality_backtranslation(two, batch[:2]))
    for bad in (0, 3, 1.5, True):
        with pytest.raises(ValueError, match="backtranslation_targets"):
            GrooveModule([5, 4, 6], backtranslation_targets=bad)


def test_backtranslation_targets_trains_reproducibly_with_every_pair_in_validation():
    mdata = _three_mdata()
    GROOVE.setup_mudata(mdata, perturbation_key="perturbation", modalities=MODS)
    hists = []
    for _ in range(2):
        model = GROOVE(mdata, n_hidden=8, n_latent=3, backtranslation_targets=1)
        model.train(max_epochs=2, seed=3, **QUIET)
        hists.append(model.history)
    for key in ("backtranslation_train", "backtranslation_rna_atac_validation", "loss_train"):
        np.testing.assert_array_equal(
            hists[0][key].to_numpy(dtype=float), hists[1][key].to_numpy(dtype=float)
        )
    with pytest.raises(ValueError, match="backtranslation_targets"):
        GROOVE(mdata, backtranslation_targets=2 + 1)
