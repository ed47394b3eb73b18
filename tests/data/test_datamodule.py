"""The training data of GROOVE (``data/_datamodule.py``): sparse input read in place."""

import mudata
import numpy as np
import scipy.sparse as sp
import torch


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
