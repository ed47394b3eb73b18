"""Small objects built directly, shared by the tests of ``groove_sc.pl``."""

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp


def _paired(n_labels=4, n_per=10, seed=0, names=("rna", "prot"), paired=True):
    """Two modalities of the same cells (paired=True: shared obs_names) with a fake latent."""
    rng = np.random.default_rng(seed)
    n = n_labels * n_per
    labels = pd.Categorical(np.repeat([f"L{i}" for i in range(n_labels)], n_per))
    centres = rng.normal(scale=5.0, size=(n_labels, 3))
    z = centres[labels.codes] + rng.normal(scale=0.3, size=(n, 3))
    mods = {}
    for k, (m, p) in enumerate(zip(names, (5, 4))):
        x = rng.normal(size=(n, p)).astype(np.float32)
        a = ad.AnnData(x)
        a.obs_names = [f"c{i}" if paired else f"{m}:c{i}" for i in range(n)]
        a.var_names = [f"{m}_f{j}" for j in range(p)]
        a.obs["perturbation"] = labels
        a.obs["pair_id"] = np.arange(n)
        a.obs["score"] = np.linspace(0, 1, n) + k
        a.obsm["X_groove"] = (z + rng.normal(scale=0.1, size=z.shape)).astype(np.float32)
        mods[m] = a
    return md.MuData(mods)


def _store_coupling(mdata, t, source, target, key="T", method="custom", labeled=True):
    """Place a source x target matrix into the union row space, as tl.align stores it."""
    rows = mdata.obs_names.get_indexer(mdata.mod[source].obs_names)
    cols = mdata.obs_names.get_indexer(mdata.mod[target].obs_names)
    t = sp.coo_matrix(t)
    full = sp.csr_matrix((t.data, (rows[t.row], cols[t.col])), shape=(mdata.n_obs, mdata.n_obs))
    mdata.obsp[key] = full
    mdata.uns[key] = {
        "params": {"source": source, "target": target, "method": method, "labeled": labeled}
    }


def _legend_texts(ax):
    leg = ax.get_legend()
    return [] if leg is None else [t.get_text() for t in leg.get_texts()]


def _n_points(ax):
    return sum(c.get_offsets().shape[0] for c in ax.collections)
