"""Write GROOVE latents into a MuData (``.obsm``)."""

from __future__ import annotations

import numpy as np
from mudata import MuData

from ..data._validate import check_mudata


def latent(
    model,
    mdata: MuData | None = None,
    *,
    key_added: str = "X_groove",
    batch_size: int = 1024,
    copy: bool = False,
) -> MuData | None:
    """Compute the shared latent representation and store it in the MuData.

    Writes ``mdata.mod[m].obsm[key_added]`` for each of the model's modalities and
    ``mdata.obsm[key_added]`` (union rows, placed through ``mdata.obsmap``; rows observed in
    no modality of the model are NaN; a cell observed in both modalities, as in paired test
    data, takes the first modality's latent, the per-modality latents being in ``.mod``).

    Parameters
    ----------
    model
        A trained :class:`~groove_sc.model.GROOVE`.
    mdata
        MuData with the model's modalities; default: the model's training data.
    key_added
        Key in ``.obsm``.
    batch_size
        Cells per forward pass.
    copy
        Return a modified copy instead of writing in place.

    Returns
    -------
    The MuData if ``copy=True``, else ``None``.
    """
    mdata = model.adata if mdata is None else check_mudata(mdata)
    latents = model.get_latent_representation(mdata, batch_size=batch_size)  # fails before writing
    if copy:
        mdata = mdata.copy()
    n_latent = next(iter(latents.values())).shape[1]
    union = np.full((mdata.n_obs, n_latent), np.nan, dtype=np.float32)
    filled = np.zeros(mdata.n_obs, dtype=bool)
    for m, z in latents.items():
        mdata.mod[m].obsm[key_added] = z
        rows = np.asarray(mdata.obsmap[m]).ravel()
        if len(rows) != mdata.n_obs:
            raise ValueError("`mdata` is out of sync with its modalities; call mdata.update().")
        present = np.flatnonzero(rows > 0)
        take = present[~filled[present]]
        union[take] = z[rows[take] - 1]
        filled[take] = True
    mdata.obsm[key_added] = union
    return mdata if copy else None
