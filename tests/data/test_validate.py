"""``GROOVE.setup_mudata``'s input checks (``data/_validate.py``): the bad-input cases of setup."""

import numpy as np
import pytest

from groove_sc.model import GROOVE
from tests._shared import MODEL, TRAIN_ONE_EPOCH, bad_input, fails, make_toy_mdata


@bad_input
def test_setup_unknown_modality():
    m = make_toy_mdata()
    fails(m, lambda: GROOVE.setup_mudata(m, modalities=["rna", "atac"]), KeyError, "modalities")


@bad_input
def test_setup_one_modality_listed_twice():
    m = make_toy_mdata()
    fails(m, lambda: GROOVE.setup_mudata(m, modalities=["rna", "rna"]), ValueError, "different")


@bad_input
def test_setup_missing_label_column():
    m = make_toy_mdata()
    fails(
        m,
        lambda: GROOVE.setup_mudata(m, perturbation_key="perturbaton"),
        KeyError,
        "perturbation_key.*perturbaton.*not a column",
    )


@bad_input
def test_setup_label_column_in_one_modality():
    m = make_toy_mdata()
    m.mod["protein"].obs = m.mod["protein"].obs.rename(columns={"perturbation": "pert"})
    fails(m, lambda: GROOVE.setup_mudata(m), KeyError, "perturbation_key.*protein")


@bad_input
def test_setup_missing_labels_nan():
    m = make_toy_mdata()
    col = m.mod["rna"].obs["perturbation"].astype(object)
    col.iloc[0] = np.nan
    m.mod["rna"].obs["perturbation"] = col
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "missing labels")


@bad_input
def test_setup_no_shared_label():
    m = make_toy_mdata({"x": 20, "y": 20}, {"p0": 20, "p1": 20})
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "occurs in both")


@bad_input
def test_setup_labels_absent_from_one_modality_warns_and_trains():
    m = make_toy_mdata({"p0": 20, "p1": 20, "only_a": 20}, {"p0": 20, "p1": 20, "only_b": 20})
    with pytest.warns(UserWarning, match="only in modality 'rna'.*only_a"):
        GROOVE.setup_mudata(m)
    model = GROOVE(m, **MODEL)
    model.train(**TRAIN_ONE_EPOCH)
    z = model.get_latent_representation()
    assert z["rna"].shape == (60, 4) and np.isfinite(z["rna"]).all()


@bad_input
def test_setup_nan_in_x():
    m = make_toy_mdata()
    m.mod["rna"].X[3, 2] = np.nan
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, r"mod\['rna'\]\.X.*NaN")


@bad_input
def test_setup_inf_in_layer():
    m = make_toy_mdata()
    lay = m.mod["protein"].X.copy()
    lay[0, 0] = np.inf
    m.mod["protein"].layers["counts"] = lay
    fails(
        m,
        lambda: GROOVE.setup_mudata(m, layers={"protein": "counts"}),
        ValueError,
        r"mod\['protein'\]\.layers\['counts'\].*NaN or infinite",
    )


@bad_input
def test_setup_unknown_layer():
    m = make_toy_mdata()
    fails(m, lambda: GROOVE.setup_mudata(m, layers="raw"), KeyError, "layers.*raw")


@bad_input
def test_setup_string_dtype():
    m = make_toy_mdata()
    m.mod["rna"].X = m.mod["rna"].X.astype(str)
    fails(m, lambda: GROOVE.setup_mudata(m), TypeError, "numeric")


@bad_input
def test_setup_mudata_view():
    m = make_toy_mdata()
    view = m[m.obs_names[:30]]
    fails(m, lambda: GROOVE.setup_mudata(view), ValueError, "view")


@bad_input
def test_setup_modality_view():
    m = make_toy_mdata()
    a = make_toy_mdata()
    m.mod["rna"] = a.mod["rna"][:30]
    m.update()
    # the case needs a modality that is an AnnData view (mudata keeps it as given)
    assert m.mod["rna"].is_view
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "view")


@bad_input
def test_colliding_obs_names_refused():
    m = make_toy_mdata(same_names=True)
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "obs_names occur in both.*from_anndatas")


@bad_input
def test_empty_modality():
    m = make_toy_mdata()
    m.mod["rna"] = m.mod["rna"][:0].copy()
    m.update()
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "empty|occurs in both")


@bad_input
def test_setup_duplicate_obs_names_within_a_modality():
    m = make_toy_mdata()
    m.mod["rna"].obs_names = ["x"] * m.mod["rna"].n_obs
    fails(
        m,
        lambda: GROOVE.setup_mudata(m),
        ValueError,
        r"`mdata\.mod\['rna'\]\.obs_names` are not unique.*obs_names_make_unique",
    )


@bad_input
def test_setup_missing_batch_key():
    m = make_toy_mdata()
    fails(
        m,
        lambda: GROOVE.setup_mudata(m, batch_key="batch"),
        KeyError,
        r"`batch_key`='batch' is not a column of mdata\.mod\['rna'\]\.obs",
    )


@bad_input
def test_nb_negative_values():
    m = make_toy_mdata()
    m.mod["rna"].X[0, 0] = -1.0
    GROOVE.setup_mudata(m)
    fails(m, lambda: GROOVE(m, likelihood="nb", **MODEL), ValueError, "negative.*likelihood='nb'")
