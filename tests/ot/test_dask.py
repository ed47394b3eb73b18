"""Dask-distributed alignment (``ot/_dask.py`` through ``tl.align(dask_client=...)``).

The other scale features are tested beside their code: ``top_k`` and the memory check in
``tests/tl/test_align.py``, DDP training in ``tests/model/test_model.py``, sparse training input
in ``tests/data/test_datamodule.py``.
"""

from __future__ import annotations

import distributed
import numpy as np
import pytest

from groove_sc.tl import align
from tests._shared import make_mdata

KEY = "groove_coupling"


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
