"""Checkpoints, resuming an interrupted training, and exact h5mu round trips (issue 6)."""

from __future__ import annotations

import mudata
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from scipy import sparse

import groove_sc as gs
from groove_sc.model import GROOVE
from tests._shared import MODEL, TRAIN

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class Interrupt(Callback):
    """Raise at the start of epoch ``at`` (after the checkpoint of the previous epoch)."""

    def __init__(self, at: int):
        self.at = at

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.at:
            raise RuntimeError("simulated interruption")


@pytest.fixture(scope="module")
def split():
    sim = gs.datasets.simulate(n_perturbations=3, cells_per_perturbation=24, n_features=(10, 8))
    return gs.data.split_weakly_paired(sim, "perturbation", test_size=0.5, seed=0)


def _model(train):
    train = train.copy()
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    return GROOVE(train, **MODEL)


def _state(model):
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def test_checkpoint_interrupt_and_resume(split, tmp_path):
    model = _model(split[0])
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_epochs=1, save_top_k=-1)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        model.train(max_epochs=4, callbacks=[ckpt, Interrupt(at=2)], **TRAIN)
    last = tmp_path / "last.ckpt"
    assert last.exists() and (tmp_path / "epoch=1-step=4.ckpt").exists()
    assert torch.load(last, weights_only=False)["epoch"] == 1
    state_at_interrupt = _state(model)

    # resume in a fresh model (a new session): the weights are restored exactly ...
    restored = _model(split[0])
    restored.train(max_epochs=2, ckpt_path=str(last), **TRAIN)  # nothing left to train
    for k, v in _state(restored).items():
        torch.testing.assert_close(v, state_at_interrupt[k], rtol=0, atol=0)

    # ... and training continues from epoch 2 to the end
    resumed = _model(split[0])
    resumed.train(max_epochs=4, ckpt_path=str(last), **TRAIN)
    epochs = list(resumed.history["loss_train"].index)
    assert epochs == [2, 3]
    assert resumed.is_trained
    changed = [not torch.equal(v, state_at_interrupt[k]) for k, v in _state(resumed).items()]
    assert any(changed)
    z = resumed.get_latent_representation(split[1])
    assert np.isfinite(z["rna"]).all()


def test_checkpoint_callback_with_validation_monitor(split, tmp_path):
    model = _model(split[0])
    ckpt = ModelCheckpoint(dirpath=tmp_path, monitor="loss_validation", save_top_k=1)
    model.train(max_epochs=2, callbacks=[ckpt], validation_size=0.2, **TRAIN)
    assert ckpt.best_model_path and (tmp_path / ckpt.best_model_path.split("/")[-1]).exists()
    assert len(model.history["loss_validation"]) == 2


def test_h5mu_round_trip_of_latents_and_couplings(split, tmp_path):
    train, test = split
    model = _model(train)
    model.train(max_epochs=1, **TRAIN)
    test = test.copy()
    gs.tl.latent(model, test)
    gs.tl.align(test, source="rna", target="protein", method="sinkhorn")
    gs.tl.impute(test, source="rna", target="protein")
    path = tmp_path / "result.h5mu"
    test.write(path)
    back = mudata.read_h5mu(path)

    np.testing.assert_array_equal(back.obsm["X_groove"], test.obsm["X_groove"])
    for m in test.mod:
        np.testing.assert_array_equal(back.mod[m].obsm["X_groove"], test.mod[m].obsm["X_groove"])
    t0, t1 = test.obsp["groove_coupling"], back.obsp["groove_coupling"]
    assert sparse.issparse(t1) and t1.shape == t0.shape
    np.testing.assert_array_equal(t1.toarray(), t0.toarray())
    np.testing.assert_array_equal(
        np.asarray(back.mod["rna"].obsm["protein_imputed"]),
        np.asarray(test.mod["rna"].obsm["protein_imputed"]),
    )
    d0 = test.uns["groove_coupling"]["diagnostics"]
    d1 = back.uns["groove_coupling"]["diagnostics"]
    assert set(d0) == set(d1)
    for k in d0:
        np.testing.assert_array_equal(np.asarray(d1[k]), np.asarray(d0[k]))
    assert set(back.uns["groove_coupling"]["params"]) == set(test.uns["groove_coupling"]["params"])
    # metrics computed on the reloaded object are the same
    assert gs.tl.matching_metrics(back, source="rna", target="protein") == gs.tl.matching_metrics(
        test, source="rna", target="protein"
    )


def test_model_save_load_then_resume_training(split, tmp_path):
    model = _model(split[0])
    model.train(max_epochs=1, **TRAIN)
    model.save(tmp_path / "model", save_anndata=True)
    loaded = GROOVE.load(tmp_path / "model")
    for k, v in _state(loaded).items():
        torch.testing.assert_close(v, _state(model)[k], rtol=0, atol=0)
    loaded.train(max_epochs=1, **TRAIN)  # a loaded model keeps training
    assert np.isfinite(loaded.get_latent_representation(modality="rna")).all()
