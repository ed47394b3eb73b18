"""Simulator for weakly paired multimodal perturbation screens with known truth.

The generative model is described in ``DESIGN.md`` section 6 and in :func:`simulate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any, Literal

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

from ..data._mudata import _make_mudata

__all__ = ["simulate"]

Likelihood = Literal["gaussian", "nb"]
_LIKELIHOODS = ("gaussian", "nb")
_HIDDEN = 64  # hidden units of the random per-modality MLP
_PREACT_VAR = 2.0  # variance of the first-layer pre-activations (degree of nonlinearity)
_LIBRARY_LOG_SD = 0.3  # cell-to-cell spread of the NB library size (log scale)


# ---------------------------------------------------------------------------- validation helpers
def _is_int(x: Any) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and np.isfinite(float(x))


def _check_int(name: str, value: Any, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_real(
    name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
) -> float:
    ok = _is_real(value)
    if ok:
        v = float(value)
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"`{name}` must be a number in {left}{lo}, {hi}{right}, got {value!r}.")
    return float(value)


_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five"}
#: Default modality names: the first ``n_modalities`` of these, then ``"mod<i>"``.
_DEFAULT_NAMES = ("rna", "protein", "atac")


def _per_modality(name: str, value: Any, n: int) -> tuple[Any, ...]:
    """Broadcast a scalar to one value per modality, or check a sequence has length ``n``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return (value,) * n
    if len(value) != n:
        raise ValueError(
            f"`{name}` must be a scalar or a sequence of {_NUMBERS.get(n, n)} (one per modality)."
        )
    return tuple(value)


def _modality_names(modality_names: Sequence[str] | None, n_modalities: int | None) -> list[str]:
    """The modality names, from ``modality_names`` and/or ``n_modalities``."""
    if n_modalities is not None:
        n_modalities = _check_int("n_modalities", n_modalities, 2)
    if modality_names is None:
        n = 2 if n_modalities is None else n_modalities
        return [_DEFAULT_NAMES[i] if i < len(_DEFAULT_NAMES) else f"mod{i}" for i in range(n)]
    if isinstance(modality_names, str) or not isinstance(modality_names, Sequence):
        raise ValueError(f"`modality_names` must be a sequence of strings, got {modality_names!r}.")
    names = list(modality_names)
    if len(names) < 2:
        raise ValueError(f"`modality_names` must hold two or more names, got {modality_names!r}.")
    if n_modalities is not None and len(names) != n_modalities:
        raise ValueError(
            f"`modality_names` has {len(names)} names but `n_modalities`={n_modalities}."
        )
    if not all(isinstance(m, str) and m for m in names) or len(set(names)) != len(names):
        raise ValueError(
            f"`modality_names` must be distinct non-empty strings, got {modality_names!r}."
        )
    return names


def _subsets(
    shared_subsets: Mapping[Sequence[str], float] | None, names: Sequence[str]
) -> list[tuple[list[int], float]]:
    """``[(modality indices, fraction), ...]`` of the blocks shared by a subset of modalities."""
    if shared_subsets is None:
        return []
    if not isinstance(shared_subsets, Mapping):
        raise ValueError(
            "`shared_subsets` must be a mapping {(modality, modality, ...): fraction}, got "
            f"{shared_subsets!r}."
        )
    out = []
    for key, frac in shared_subsets.items():
        # a string key names its members joined by "+" ("rna+atac"; YAML keys cannot be lists)
        members = [k.strip() for k in key.split("+")] if isinstance(key, str) else list(key)
        unknown = [m for m in members if m not in names]
        if unknown:
            raise ValueError(
                f"`shared_subsets` key {key!r} names unknown modalities {unknown}; the "
                f"modalities are {list(names)}."
            )
        if len(set(members)) != len(members) or not 2 <= len(members) < len(names):
            raise ValueError(
                f"`shared_subsets` key {key!r} must name at least two and fewer than all "
                f"{len(names)} modalities, each once (what all share is `shared_fraction`)."
            )
        f = _check_real(f"shared_subsets[{key!r}]", frac, 0.0, 1.0, lo_open=True)
        out.append((sorted(names.index(m) for m in members), f))
    for m, name in enumerate(names):
        total = sum(f for idx, f in out if m in idx)
        if total > 1.0 + 1e-12:
            raise ValueError(
                f"`shared_subsets` gives modality {name!r} fractions summing to {total:g} > 1."
            )
    return out


def _label_names(n_perturbations: int, control_label: str | None) -> list[str]:
    n_targeted = n_perturbations - (control_label is not None)
    width = max(2, len(str(max(n_targeted - 1, 0))))
    names = [f"P{i:0{width}d}" for i in range(n_targeted)]
    if control_label is not None:
        if control_label in names:
            raise ValueError(
                f"`control_label`={control_label!r} collides with a perturbation name."
            )
        names = [control_label, *names]
    return names


# ---------------------------------------------------------------------------- generative pieces
def _random_mlp(rng: np.random.Generator, d_in: int, d_out: int) -> dict[str, np.ndarray]:
    """Weights of a random 2-layer tanh MLP ``R^d_in -> R^d_out``."""
    return {
        "w1": rng.standard_normal((d_in, _HIDDEN)),
        "b1": rng.standard_normal(_HIDDEN),
        "w2": rng.standard_normal((_HIDDEN, d_out)) / np.sqrt(_HIDDEN),
        "b2": rng.standard_normal(d_out),
    }


def _apply_mlp(weights: dict[str, np.ndarray], z: np.ndarray, gain: float) -> np.ndarray:
    """Apply the random MLP; ``gain`` scales the first layer's pre-activations."""
    hidden = np.tanh(gain * (z @ weights["w1"]) + weights["b1"])
    return hidden @ weights["w2"] + weights["b2"]


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def simulate(
    n_perturbations: int = 20,
    cells_per_perturbation: int | Sequence[int] = 100,
    n_features: int | Sequence[int] | None = None,
    *,
    shared_fraction: float = 1.0,
    within_label_shared: float = 0.5,
    n_latent_shared: int = 8,
    n_latent_specific: int = 4,
    effect_size: float = 2.0,
    noise: float | tuple[float, float] = 0.5,
    likelihood: Likelihood | Sequence[Likelihood] = "gaussian",
    library_size: float | tuple[float, float] = 2000.0,
    nb_theta: float = 10.0,
    label_noise: float = 0.0,
    missing_labels: int | Mapping[str, int] = 0,
    modality_names: Sequence[str] | None = None,
    n_modalities: int | None = None,
    shared_subsets: Mapping[Sequence[str], float] | None = None,
    control_label: str | None = "control",
    seed: int | None = 0,
) -> md.MuData:
    """Simulate a jointly measured perturbation screen (two or more modalities) with known truth.

    Every cell has a latent state ``z = (s, u_A, u_B)``: a shared block ``s``
    (``n_latent_shared`` dims) seen by both modalities, and modality-specific blocks ``u_A``,
    ``u_B`` (``n_latent_specific`` dims each) seen by one modality only. Each label ``l`` has an
    effect ``delta_l``; a cell of label ``l`` has ``z = delta_l + eps`` with within-label
    variation ``eps``. Modality ``m`` observes a random nonlinear map of ``(s, u_m)`` (a seeded
    2-layer tanh MLP) plus noise. Because both modalities are generated from the same ``z``,
    row ``i`` of each modality is the same cell (``obs["pair_id"]``), which is the truth that
    matching and imputation are scored against. Split it into a weakly paired problem with
    :func:`groove_sc.data.split_weakly_paired`.

    **More than two modalities** (``n_modalities=3`` or three ``modality_names``): the shared
    block ``s`` is seen by all modalities, each modality ``m`` has its own block ``u_m``, and
    ``shared_subsets`` adds blocks seen by a subset of the modalities only (e.g.
    ``{("rna", "atac"): 0.5}``: RNA and ATAC share something protein does not). A subset
    block holds the given fraction of each member's *non-shared* variance (label effects and
    within-label variation alike), taken from the member's own block ``u_m``; so the total
    variance each modality sees, and the share ``rho`` seen by all, do not change. With two
    modalities and no subsets the output is exactly that of earlier versions for the same seed.

    Parameters
    ----------
    n_perturbations
        Number of labels, *including* the control when ``control_label`` is not ``None``.
        Targeted perturbations are named ``"P00"``, ``"P01"``, ...
    cells_per_perturbation
        Cells per label: one integer for all labels, or a sequence of ``n_perturbations``
        integers (control first, then ``P00``, ``P01``, ...) for unequal label sizes.
    n_features
        Number of features of each modality (an integer is used for all); default 50 for the
        first modality and 40 for the others.
    shared_fraction
        ``rho`` in [0, 1]: the fraction of the label-effect variance that lies in the shared
        block ``s``; ``1 - rho`` lies in the modality-specific blocks, drawn independently for
        ``u_A`` and ``u_B``. With ``rho = 1`` both modalities see the same label structure; with
        smaller ``rho`` part of each label's effect is invisible to the other modality. The total
        label-effect variance each modality sees does not depend on ``rho``.
    within_label_shared
        Fraction in [0, 1] of the within-label (cell-to-cell) variance that lies in the shared
        block ``s``; the rest is in ``u_A``/``u_B``, independent between the modalities. Only the
        shared part makes cells of the same label distinguishable *across* modalities, so this
        sets how much a matching method can beat a uniform coupling within labels.
    n_latent_shared
        Dimension of the shared block ``s``.
    n_latent_specific
        Dimension of each modality-specific block ``u_A``, ``u_B``.
    effect_size
        Standard deviation of the label effects relative to the within-label variation: the
        expected squared norm of ``delta_l`` is ``effect_size**2`` and that of ``eps`` is 1 (per
        modality view ``(s, u_m)``). Larger values separate the labels more.
    noise
        Gaussian modalities: standard deviation of the additive noise, relative to the clean
        signal, which is standardised to unit variance per feature. Ignored for ``"nb"``
        modalities, whose noise is the count sampling. A scalar or one value per modality.
    likelihood
        ``"gaussian"`` (continuous, standardised features plus noise, e.g. normalised protein)
        or ``"nb"`` (RNA-like counts): per-cell feature probabilities are the softmax of the
        clean signal plus a per-feature baseline, times a library size, and counts are drawn
        from a negative binomial. A string (for all) or one per modality.
    library_size
        ``"nb"`` modalities: mean total counts per cell; each cell's library size varies around
        it log-normally (standard deviation 0.3 on the log scale). A scalar or one per modality.
    nb_theta
        ``"nb"`` modalities: inverse dispersion ``theta`` of the negative binomial,
        ``Var = mu + mu**2 / theta`` (larger is closer to Poisson).
    label_noise
        Fraction in [0, 1) of cells whose *observed* label (``obs["perturbation"]``) is replaced
        by a uniformly random other label (exactly ``round(label_noise * n_cells)`` cells). The
        true label is kept in ``obs["perturbation_true"]``; the cell's data follow the true one.
    missing_labels
        Labels present in only one modality. An integer ``k`` drops all cells of ``k`` random
        targeted perturbations from the *second* modality; a mapping ``{modality_name: k}`` drops
        ``k`` labels from each named modality (disjoint label sets). The control is never
        dropped. The affected modality then has fewer cells; ``obs["pair_id"]`` identifies the
        cells present in both. The dropped labels are recorded in
        ``mdata.uns["simulation"]["missing_in_<modality>"]``.
    modality_names
        Names of the modalities (A, B, ...); feature names are ``"<name>_<i>"``. Default:
        ``("rna", "protein")``, or with ``n_modalities`` the first of ``("rna", "protein",
        "atac")`` and then ``"mod3"``, ``"mod4"``, ...
    n_modalities
        Number of modalities (at least 2); default: the length of ``modality_names``, else 2.
    shared_subsets
        Blocks seen by a subset of the modalities: ``{(name, name, ...): fraction}``; each key
        names at least two and fewer than all modalities (a tuple, or one string joining them
        with ``"+"``, e.g. ``"rna+atac"``, as in a YAML configuration), each value in (0, 1] is the
        fraction of its members' non-shared variance in that block (the fractions of one
        modality sum to at most 1). Each block has ``n_latent_specific`` dimensions; the
        truth is in ``obsm["z_subset"]`` of its members.
    control_label
        Name of the unperturbed control label, whose effect is exactly zero; ``None`` for no
        control (all labels are targeted perturbations).
    seed
        Seed of :func:`numpy.random.default_rng`, used for every random step (maps, effects,
        cells, label noise, dropped labels, measurement noise). The same seed gives identical
        output. The maps and the label effects are drawn before anything that depends on the
        number of cells, and ``rho``/``within_label_shared`` only rescale fixed draws, so a sweep
        over them with one seed changes nothing else.

    Returns
    -------
    MuData with the modalities. In each modality: ``X`` (float32; counts for ``"nb"``, also
    in ``layers["counts"]``), ``obs["perturbation"]`` (categorical observed label),
    ``obs["perturbation_true"]``, ``obs["pair_id"]`` (int, the cell's index in the simulation),
    ``obsm["z_shared"]`` (the true ``s``) and ``obsm["z_specific"]`` (the true ``u_m``).
    Observation names are ``"cell<pair_id>"`` in both modalities (row ``i`` of each modality is
    the same cell when no label is missing). ``mdata.uns["simulation"]`` holds the parameters.

    Raises
    ------
    ValueError
        If an argument is out of range or malformed; the message names the argument.

    Examples
    --------
    >>> from groove_sc.datasets import simulate
    >>> mdata = simulate(n_perturbations=10, cells_per_perturbation=50, shared_fraction=0.8)
    >>> mdata.mod["rna"].obs["perturbation"].nunique()
    10
    """
    # ------------------------------------------------------------------ validate
    n_perturbations = _check_int("n_perturbations", n_perturbations, 1)
    if control_label is not None and (not isinstance(control_label, str) or not control_label):
        raise ValueError(
            f"`control_label` must be a non-empty string or None, got {control_label!r}."
        )
    labels = _label_names(n_perturbations, control_label)

    if _is_int(cells_per_perturbation):
        counts = np.full(n_perturbations, int(cells_per_perturbation))
    elif isinstance(cells_per_perturbation, Sequence) and not isinstance(
        cells_per_perturbation, str
    ):
        if len(cells_per_perturbation) != n_perturbations or not all(
            _is_int(c) for c in cells_per_perturbation
        ):
            raise ValueError(
                "`cells_per_perturbation` must be an integer or a sequence of "
                f"n_perturbations={n_perturbations} integers."
            )
        counts = np.asarray(cells_per_perturbation, dtype=np.int64)
    else:
        raise ValueError(
            f"`cells_per_perturbation` must be an integer or a sequence of integers, "
            f"got {cells_per_perturbation!r}."
        )
    if (counts < 1).any():
        raise ValueError("`cells_per_perturbation` must be >= 1 for every label.")

    mod_names = tuple(_modality_names(modality_names, n_modalities))
    n_mod = len(mod_names)
    subsets = _subsets(shared_subsets, mod_names)
    # fraction of each modality's non-shared variance in its own block u_m
    own = [1.0 - sum(f for idx, f in subsets if m in idx) for m in range(n_mod)]
    if n_features is None:
        n_features = (50,) + (40,) * (n_mod - 1)
    n_feat = tuple(
        _check_int("n_features", f, 1) for f in _per_modality("n_features", n_features, n_mod)
    )
    rho = _check_real("shared_fraction", shared_fraction, 0.0, 1.0)
    w = _check_real("within_label_shared", within_label_shared, 0.0, 1.0)
    k_s = _check_int("n_latent_shared", n_latent_shared, 1)
    k_u = _check_int("n_latent_specific", n_latent_specific, 1)
    effect = _check_real("effect_size", effect_size, 0.0, np.inf, hi_open=True)
    noises = tuple(
        _check_real("noise", v, 0.0, np.inf, hi_open=True)
        for v in _per_modality("noise", noise, n_mod)
    )
    liks = _per_modality("likelihood", likelihood, n_mod)
    for lik in liks:
        if lik not in _LIKELIHOODS:
            raise ValueError(
                f"`likelihood` must be 'gaussian' or 'nb' (or two of them), got {lik!r}."
            )
    libs = tuple(
        _check_real("library_size", v, 0.0, np.inf, lo_open=True, hi_open=True)
        for v in _per_modality("library_size", library_size, n_mod)
    )
    theta = _check_real("nb_theta", nb_theta, 0.0, np.inf, lo_open=True, hi_open=True)
    label_noise = _check_real("label_noise", label_noise, 0.0, 1.0, hi_open=True)
    if label_noise > 0 and n_perturbations < 2:
        raise ValueError("`label_noise` > 0 needs n_perturbations >= 2.")

    if _is_int(missing_labels):
        n_missing = {mod_names[1]: _check_int("missing_labels", missing_labels, 0)}
    elif isinstance(missing_labels, Mapping):
        unknown = set(missing_labels) - set(mod_names)
        if unknown:
            raise ValueError(
                f"`missing_labels` keys must be modality names {list(mod_names)}, "
                f"got unknown {sorted(map(str, unknown))}."
            )
        n_missing = {
            m: _check_int(f"missing_labels[{m!r}]", k, 0) for m, k in missing_labels.items()
        }
    else:
        raise ValueError(
            f"`missing_labels` must be an integer or a mapping of modality name to integer, "
            f"got {missing_labels!r}."
        )
    n_targeted = n_perturbations - (control_label is not None)
    total_missing = sum(n_missing.values())
    max_missing = n_targeted if control_label is not None else n_targeted - 1
    if total_missing > max_missing:
        raise ValueError(
            f"`missing_labels` drops {total_missing} labels but at most {max_missing} can be "
            "dropped (the control, or at least one label, must stay in both modalities)."
        )
    if seed is not None and not _is_int(seed):
        raise ValueError(f"`seed` must be an integer or None, got {seed!r}.")

    rng = np.random.default_rng(seed)
    n_labels = n_perturbations
    n_cells = int(counts.sum())

    # ------------------------------------------------------------------ random maps
    # modality m sees (s, u_m, the subset blocks it belongs to); subset draws come after the
    # two-modality draws at every stage, so two modalities reproduce earlier output exactly
    member = [[j for j, (idx, _) in enumerate(subsets) if m in idx] for m in range(n_mod)]
    maps = [_random_mlp(rng, k_s + k_u * (1 + len(member[m])), n_feat[m]) for m in range(n_mod)]
    baselines = [rng.standard_normal(n_feat[m]) for m in range(n_mod)]  # NB abundance

    # ------------------------------------------------------------------ label effects
    # Block-normalised draws: E||a_l||^2 = 1 per block, then the variance is split by rho.
    eff_s = rng.standard_normal((n_labels, k_s)) / np.sqrt(k_s)
    eff_u = [rng.standard_normal((n_labels, k_u)) / np.sqrt(k_u) for _ in range(n_mod)]
    eff_sub = [rng.standard_normal((n_labels, k_u)) / np.sqrt(k_u) for _ in subsets]
    eff_s *= effect * np.sqrt(rho)
    eff_u = [e * effect * np.sqrt(1.0 - rho) for e in eff_u]
    if subsets:
        eff_u = [e * np.sqrt(own[m]) for m, e in enumerate(eff_u)]
    eff_sub = [e * effect * np.sqrt(1.0 - rho) * np.sqrt(f) for e, (_, f) in zip(eff_sub, subsets)]
    if control_label is not None:
        eff_s[0] = 0.0
        for e in eff_u + eff_sub:
            e[0] = 0.0

    # ------------------------------------------------------------------ cells
    true_code = rng.permutation(np.repeat(np.arange(n_labels), counts))
    eps_s = rng.standard_normal((n_cells, k_s)) / np.sqrt(k_s) * np.sqrt(w)
    eps_u = [
        rng.standard_normal((n_cells, k_u)) / np.sqrt(k_u) * np.sqrt(1.0 - w) for _ in range(n_mod)
    ]
    eps_sub = [
        rng.standard_normal((n_cells, k_u)) / np.sqrt(k_u) * np.sqrt(1.0 - w) * np.sqrt(f)
        for _, f in subsets
    ]
    if subsets:
        eps_u = [e * np.sqrt(own[m]) for m, e in enumerate(eps_u)]
    z_s = eff_s[true_code] + eps_s
    z_u = [eff_u[m][true_code] + eps_u[m] for m in range(n_mod)]
    z_sub = [eff_sub[j][true_code] + eps_sub[j] for j in range(len(subsets))]

    # ------------------------------------------------------------------ label noise
    obs_code = true_code.copy()
    n_noisy = round(label_noise * n_cells)
    if n_noisy > 0:
        noisy = rng.choice(n_cells, size=n_noisy, replace=False)
        shift = rng.integers(1, n_labels, size=n_noisy)  # never the true label
        obs_code[noisy] = (true_code[noisy] + shift) % n_labels

    # ------------------------------------------------------------------ missing labels
    first = 1 if control_label is not None else 0
    candidates = rng.permutation(np.arange(first, n_labels))
    missing: dict[str, list[str]] = {}
    start = 0
    for m in mod_names:
        k = n_missing.get(m, 0)
        missing[m] = sorted(labels[i] for i in candidates[start : start + k])
        start += k

    # ------------------------------------------------------------------ observations
    # E||(s, u_m)||^2 = effect**2 + 1; scale the first layer so that the pre-activations have
    # variance _PREACT_VAR whatever the effect size (a fixed degree of tanh nonlinearity).
    gain = np.sqrt(_PREACT_VAR / (effect**2 + 1.0))
    categories = pd.CategoricalDtype(labels)
    pair_id = np.arange(n_cells)
    obs_names = pd.Index([f"cell{i}" for i in pair_id])
    mods: dict[str, ad.AnnData] = {}
    for m, name in enumerate(mod_names):
        view = np.hstack([z_s, z_u[m], *(z_sub[j] for j in member[m])])
        signal = _standardise(_apply_mlp(maps[m], view, gain))
        if liks[m] == "gaussian":
            x = signal + noises[m] * rng.standard_normal(signal.shape)
        else:
            logits = signal + baselines[m]
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            lib = libs[m] * np.exp(
                _LIBRARY_LOG_SD * rng.standard_normal(n_cells) - _LIBRARY_LOG_SD**2 / 2
            )
            mu = prob * lib[:, None]
            x = rng.poisson(rng.gamma(theta, mu / theta)).astype(np.float64)
        obs = pd.DataFrame(
            {
                "perturbation": pd.Categorical.from_codes(obs_code, dtype=categories),
                "perturbation_true": pd.Categorical.from_codes(true_code, dtype=categories),
                "pair_id": pair_id,
            },
            index=obs_names,
        )
        var = pd.DataFrame(index=pd.Index([f"{name}_{j}" for j in range(n_feat[m])]))
        adata = ad.AnnData(X=x.astype(np.float32), obs=obs, var=var)
        if liks[m] == "nb":
            adata.layers["counts"] = adata.X.copy()
        adata.obsm["z_shared"] = z_s.astype(np.float32)
        adata.obsm["z_specific"] = z_u[m].astype(np.float32)
        if member[m]:
            adata.obsm["z_subset"] = np.hstack([z_sub[j] for j in member[m]]).astype(np.float32)
        if missing[name]:
            keep = ~np.isin(true_code, [labels.index(lab) for lab in missing[name]])
            adata = adata[keep].copy()
            # keep the full label set as categories in every modality
            for col in ("perturbation", "perturbation_true"):
                adata.obs[col] = adata.obs[col].cat.set_categories(labels)
        mods[name] = adata

    params: dict[str, Any] = {
        "n_perturbations": n_perturbations,
        "cells_per_perturbation": [int(c) for c in counts],
        "n_features": [int(f) for f in n_feat],
        "shared_fraction": rho,
        "within_label_shared": w,
        "n_latent_shared": k_s,
        "n_latent_specific": k_u,
        "effect_size": effect,
        "noise": [float(v) for v in noises],
        "likelihood": [str(v) for v in liks],
        "library_size": [float(v) for v in libs],
        "nb_theta": theta,
        "label_noise": label_noise,
        "n_label_noise_cells": int(n_noisy),
        "modality_names": list(mod_names),
        "control_label": "" if control_label is None else control_label,
        "seed": -1 if seed is None else int(seed),
        "label_key": "perturbation",
    }
    for name in mod_names:
        params[f"missing_in_{name}"] = list(missing[name])
    if n_mod > 2 or subsets:  # (two-modality records stay as they were)
        params["n_modalities"] = n_mod
        params["shared_subsets"] = {
            "+".join(mod_names[i] for i in idx): float(f) for idx, f in subsets
        }
    return _make_mudata(mods, uns={"simulation": params})
