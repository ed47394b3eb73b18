"""Scale features: top-k couplings, Dask-distributed alignment, sparse training input."""

from __future__ import annotations

import distributed
import mudata
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from groove_sc.tl import align, matching_metrics
from groove_sc.tl._align import read_coupling
from tests.tl.test_align import make_mdata

KEY = "groove_coupling"


# --------------------------------------------------------------------------- top_k
@pytest.mark.parametrize(("method", "kwargs"), [("sinkhorn", {}), ("gw", {}), ("uniform", {})])
def test_top_k_keeps_the_largest_entries_of_each_row(method, kwargs):
    mdata = make_mdata(sizes_s=(30, 25, 12), sizes_t=(28, 40, 9))
    align(mdata, source="rna", target="prot", method=method, key_added="full", **kwargs)
    align(mdata, source="rna", target="prot", method=method, top_k=4, key_added="k4", **kwargs)
    full = read_coupling(mdata, "full", source="rna", target="prot").toarray()
    top = read_coupling(mdata, "k4", source="rna", target="prot").toarray()
    # at most 4 entries per row (label with 9 targets keeps 4 of 9)
    assert (np.count_nonzero(top, axis=1) <= 4).all()
    assert (np.count_nonzero(top, axis=1) == 4).all() or method == "uniform"
    # every kept entry equals the full coupling's entry, and is >= every dropped one of its row
    kept = top > 0
    np.testing.assert_allclose(top[kept], full[kept], rtol=1e-6)
    for i in range(full.shape[0]):
        dropped = full[i][~kept[i]]
        if dropped.size and kept[i].any():
            assert dropped.max() <= top[i][kept[i]].min() * (1 + 1e-6)
    # the reported dropped mass is what is missing
    uns = mdata.uns["k4"]
    assert uns["params"]["top_k"] == 4
    missing = full.sum() - top.sum()
    assert uns["dropped_mass"] == pytest.approx(missing, abs=1e-6)
    assert uns["diagnostics"]["dropped_mass"].sum() == pytest.approx(missing, abs=1e-6)
    assert missing > 0.01


def test_top_k_larger_than_blocks_is_the_full_coupling():
    mdata = make_mdata()
    align(mdata, source="rna", target="prot", key_added="full")
    align(mdata, source="rna", target="prot", top_k=1000, key_added="big")
    assert abs(mdata.obsp["full"] - mdata.obsp["big"]).max() == 0
    assert mdata.uns["big"]["dropped_mass"] == pytest.approx(0.0, abs=1e-6)


def test_top_k_one_with_emd_keeps_the_permutation():
    mdata = make_mdata(sizes_s=(10, 10), sizes_t=(10, 10))
    align(mdata, source="rna", target="prot", method="emd", top_k=1)
    t = read_coupling(mdata, KEY, source="rna", target="prot")
    assert sp.isspmatrix_csr(t) or sp.issparse(t)
    assert (np.diff(t.tocsr().indptr) == 1).all()
    # equal label sizes: EMD is a permutation, top-1 keeps all of it
    assert t.sum() == pytest.approx(1.0, abs=1e-6)
    assert mdata.uns[KEY]["dropped_mass"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "5"])
def test_top_k_must_be_a_positive_integer(bad):
    mdata = make_mdata()
    with pytest.raises(ValueError, match="top_k"):
        align(mdata, source="rna", target="prot", top_k=bad)
    assert KEY not in mdata.obsp


def test_top_k_coupling_works_with_matching_metrics():
    from tests.tl.test_align import make_permuted_pair

    mdata = make_permuted_pair(n=60, n_labels=3)
    align(mdata, source="rna", target="prot", top_k=3, tol=1e-3)
    out = matching_metrics(mdata, source="rna", target="prot", coupling_key=KEY)
    assert out["trace"] > 0.9  # the permuted copy is recovered through the kept entries


# --------------------------------------------------------------------------- dask
@pytest.fixture(scope="module")
def dask_client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


DASK_CASES = [
    ("sinkhorn", {}),
    ("sinkhorn", {"top_k": 3, "batch_size": 1}),
    ("sinkhorn", {"reg_m": 1.0}),
    ("emd", {}),
    ("uniform", {}),
    ("gw", {"gw_form": "per_label"}),
    ("fgw", {}),
]


@pytest.mark.parametrize(("method", "kwargs"), DASK_CASES)
def test_dask_two_workers_give_the_single_process_coupling(dask_client, method, kwargs):
    mdata = make_mdata(sizes_s=(30, 25, 12, 40), sizes_t=(28, 40, 9, 33))
    align(mdata, source="rna", target="prot", method=method, key_added="local", **kwargs)
    align(
        mdata,
        source="rna",
        target="prot",
        method=method,
        key_added="dask",
        dask_client=dask_client,
        **kwargs,
    )
    a, b = mdata.obsp["local"], mdata.obsp["dask"]
    assert a.nnz == b.nnz > 0
    assert abs(a - b).max() == 0
    da, db = mdata.uns["local"]["diagnostics"], mdata.uns["dask"]["diagnostics"]
    np.testing.assert_array_equal(da["label"], db["label"])
    np.testing.assert_array_equal(da["converged"], db["converged"])
    np.testing.assert_allclose(da["cost"], db["cost"], rtol=0, atol=0, equal_nan=True)
    # both workers were used when there is more than one task
    if method != "uniform":
        assert len(dask_client.scheduler_info()["workers"]) == 2


def test_dask_refuses_coupled_label_problems(dask_client):
    mdata = make_mdata()
    for kwargs in ({"method": "gw", "gw_form": "ryu"}, {"method": "coot", "use_rep": "X"}):
        with pytest.raises(ValueError, match="dask_client"):
            align(mdata, source="rna", target="prot", dask_client=dask_client, **kwargs)
    assert KEY not in mdata.obsp


def test_dask_client_must_be_a_client():
    mdata = make_mdata()
    with pytest.raises(TypeError, match="dask_client"):
        align(mdata, source="rna", target="prot", dask_client="tcp://localhost:8786")
    assert KEY not in mdata.obsp


# --------------------------------------------------------------------------- DDP training
DDP_SCRIPT = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
from lightning.pytorch.callbacks import Callback
import mudata as md
import groove_sc as gs


class Record(Callback):
    def on_train_end(self, trainer, pl_module):
        self.out = {"rank": trainer.global_rank, "world_size": trainer.world_size,
                    "global_step": trainer.global_step, "n_batches": trainer.num_training_batches}


if __name__ == "__main__":
    mdata = gs.datasets.simulate(n_perturbations=10, cells_per_perturbation=40, seed=0)
    mods = {m: a.copy() for m, a in mdata.mod.items()}
    for m, a in mods.items():  # every simulated cell trains: keep the modalities' names apart
        a.obs_names = m + ":" + a.obs_names
    mdata = md.MuData(mods)
    gs.model.GROOVE.setup_mudata(mdata, perturbation_key="perturbation")
    model = gs.model.GROOVE(mdata, seed=0)
    initial = float(sum(p.double().sum() for p in model.module.parameters()))
    rec = Record()
    model.train(max_epochs=3, accelerator="cpu", devices=2, strategy="ddp", batch_size=64,
                enable_progress_bar=False, callbacks=[rec])
    checksum = float(sum(p.double().sum() for p in model.module.parameters()))
    with open(f"rank{rec.out['rank']}.json", "w") as fh:
        json.dump({**rec.out, "initial": initial, "checksum": checksum}, fh)
"""


def test_ddp_training_on_two_cpu_processes(tmp_path):
    """`strategy="ddp"` reaches Lightning: two processes split the steps, weights stay equal."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "train_ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    # 360 training cells per modality, batch 64: 6 steps per epoch in one process, 3 per rank
    assert all(r["world_size"] == 2 and r["n_batches"] == 3 for r in rows)
    assert all(r["global_step"] == 3 * 3 * 2 for r in rows)  # 2 optimiser steps per batch
    # gradients are averaged across ranks: both replicas hold the same trained weights
    assert rows[0]["checksum"] == pytest.approx(rows[1]["checksum"], rel=1e-9)
    assert rows[0]["checksum"] != pytest.approx(rows[0]["initial"], rel=1e-6)


# --------------------------------------------------------------------------- sparse input
def test_sparse_input_is_read_in_place_and_densified_per_minibatch():
    import groove_sc as gs

    sim = gs.datasets.simulate(n_perturbations=5, cells_per_perturbation=20, seed=0)
    mods = {name: a.copy() for name, a in sim.mod.items()}
    for name, a in mods.items():  # every cell trains: keep the modalities' names apart
        a.X = sp.csr_matrix(np.abs(a.X))
        a.obs_names = name + ":" + a.obs_names
    mdata = mudata.MuData(mods)
    before = {name: mdata.mod[name].X.copy() for name in mdata.mod}
    gs.model.GROOVE.setup_mudata(mdata, perturbation_key="perturbation")
    model = gs.model.GROOVE(mdata)
    dataset = model._step_dataset()
    for i, name in enumerate(model.modalities):
        stored = dataset.datasets[i].data[dataset.keys[i]["X"]]
        # the loader reads the user's CSR matrix itself: no dense or sparse copy
        assert sp.issparse(stored)
        assert np.shares_memory(stored.data, mdata.mod[name].X.data)
    rows = (np.array([3, 1, 7]), np.array([0, 2]))
    step = dataset[rows]
    for i, name in enumerate(model.modalities):
        x = step[i]["X"]
        assert x.dtype == torch.float32 and x.layout == torch.strided
        np.testing.assert_array_equal(x.numpy(), mdata.mod[name].X[rows[i]].toarray())
    model.train(max_epochs=1, batch_size=32, enable_progress_bar=False)
    for name in mdata.mod:
        assert sp.isspmatrix_csr(mdata.mod[name].X)
        assert abs(mdata.mod[name].X - before[name]).max() == 0


def test_memory_check_counts_only_the_top_k_entries(monkeypatch):
    """A coupling too large for the machine is refused up front, unless top_k makes it fit."""
    from groove_sc.ot import LabelBlock
    from groove_sc.tl import _align

    monkeypatch.setattr(_align, "_available_memory", lambda: 4 * 2**30)  # a 4 GiB machine
    blocks = [
        LabelBlock(f"p{i}", np.arange(1000), np.arange(1000), 1e-3) for i in range(1000)
    ]  # 1e6 x 1e6 cells in 1000 labels: 1e9 entries, ~7.5 GiB stored
    opts = _align._validate(make_mdata(), source="rna", target="prot", **_defaults())
    with pytest.raises(MemoryError, match="top_k"):
        _align._check_memory(blocks, opts)
    opts.top_k = 50
    _align._check_memory(blocks, opts)  # 5e7 entries fit


def _defaults():
    import inspect

    sig = inspect.signature(align)
    skip = {"mdata", "source", "target", "key_added", "copy"}
    out = {k: p.default for k, p in sig.parameters.items() if k not in skip}
    out["group_key"] = "perturbation"  # align resolves its default before validating
    return out
