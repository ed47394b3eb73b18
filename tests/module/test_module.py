import numpy as np
import pytest
import torch

import groove_sc as gs
from groove_sc.model import GROOVE
from groove_sc.module import GrooveModule, group_clip_loss, random_pair_labels
from groove_sc.module._module import LABELS_KEY, X_KEY


def _batch(n=6, p=(5, 4), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        {"X": torch.randn(n, p[0], generator=gen), "labels": torch.arange(n) % 3},
        {"X": torch.randn(n + 2, p[1], generator=gen), "labels": torch.arange(n + 2) % 3},
    ]


def test_backtranslation_pseudo_samples_in_eval_mode_without_grad_and_mode_restored():
    torch.manual_seed(0)
    module = GrooveModule([5, 4], n_latent=3, n_hidden=8, dropout_rate=0.5)
    seen = []
    original = module.decode

    def recording_decode(*args, **kwargs):
        seen.append((module.training, torch.is_grad_enabled()))
        return original(*args, **kwargs)

    module.decode = recording_decode
    module.train()
    loss = module.backtranslation_loss(_batch())
    assert seen == [(False, False), (False, False)]  # one pseudo-sample per direction
    assert module.training  # previous mode restored
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    module.eval()
    module.backtranslation_loss(_batch())
    assert not module.training


def test_backtranslation_reconstructs_the_original_cells():
    torch.manual_seed(0)
    module = GrooveModule([5, 4], n_latent=3, n_hidden=8, dropout_rate=0.0, alpha=2.0)
    batch = _batch()
    module.eval()
    with torch.no_grad():
        # by hand: A -> B -> A and B -> A -> B
        expected = 0.0
        for m in range(2):
            x = batch[m]["X"]
            pseudo = module.decode(module.encode(x, m)[1], 1 - m)
            z = module.encode(pseudo, 1 - m)[0]
            expected += module.reconstruction_loss(z, x, m).mean()
        got = module.backtranslation_loss(batch)
    assert got.item() == pytest.approx(2.0 * expected.item(), rel=1e-6)


def test_empty_modality_batch_gives_finite_loss():
    module = GrooveModule([5, 4], n_latent=3, n_hidden=8)
    batch = _batch()
    batch[1] = {"X": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    out = module.loss(batch)
    assert torch.isfinite(out.loss)
    assert torch.isfinite(module.backtranslation_loss(batch))


@pytest.fixture(scope="module")
def small_train():
    mdata = gs.datasets.simulate(n_perturbations=5, cells_per_perturbation=40, seed=0)
    return gs.data.split_weakly_paired(mdata, "perturbation", seed=0)[0]


@pytest.mark.parametrize(("alpha", "steps_per_batch"), [(1.0, 2), (0.0, 1)])
def test_each_training_step_makes_two_optimiser_steps(
    small_train, quiet_trainer, alpha, steps_per_batch
):
    train = small_train.copy()
    GROOVE.setup_mudata(train)
    model = GROOVE(train, alpha=alpha)
    model.train(max_epochs=2, batch_size=32, **quiet_trainer)
    optimizer = model.trainer.optimizers[0]
    n_batches = model.trainer.num_training_batches
    step_counts = {int(s["step"]) for s in optimizer.state.values()}
    assert step_counts == {2 * n_batches * steps_per_batch}


def test_early_stopping_stops_when_validation_loss_stalls(small_train, quiet_trainer):
    train = small_train.copy()
    GROOVE.setup_mudata(train)
    model = GROOVE(train)
    model.train(
        max_epochs=50, lr=0.0, early_stopping=True, early_stopping_patience=2, **quiet_trainer
    )
    n_epochs = len(model.history["loss_train"])
    assert n_epochs <= 4
    with pytest.raises(ValueError, match="validation_size"):
        model.train(max_epochs=2, early_stopping=True, validation_size=0.0, **quiet_trainer)


def test_training_with_no_validation(small_train, quiet_trainer):
    train = small_train.copy()
    GROOVE.setup_mudata(train)
    model = GROOVE(train)
    model.train(max_epochs=2, validation_size=0.0, **quiet_trainer)
    assert "loss_train" in model.history and "loss_validation" not in model.history
    assert sum(len(v) for v in model.validation_indices.values()) == 0
    np.testing.assert_array_equal(model.train_indices["rna"], np.arange(train.mod["rna"].n_obs))


# ------------------------------------------------------------- the contrastive option
def _pair_batch(seed=0, n=12, d=5, n_labels=3):
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
    batch = _pair_batch()
    out = module.loss(batch)
    za = module.encode(batch[0][X_KEY], 0)[1]
    zb = module.encode(batch[1][X_KEY], 1)[1]
    expected = group_clip_loss(za, batch[0][LABELS_KEY], zb, batch[1][LABELS_KEY], tau=0.2)
    assert out.extra_metrics["groupclip"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_module_random_pairs_is_clip_on_pseudo_pairs():
    torch.manual_seed(0)
    module = GrooveModule([5, 5], n_latent=4, n_hidden=8, tau=0.2, contrastive="random_pairs")
    module.eval()
    batch = _pair_batch()
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
