"""Perturbation effects in one modality against another, with their Spearman agreement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._utils import NA_COLOR, figure_docs, finish, new_axes

__all__ = ["perturbation_effects"]

_STATISTICS = ("energy_distance", "mean_shift")
_NAMES = {"energy_distance": "energy distance", "mean_shift": "mean shift"}
_ALPHA = 0.05


@figure_docs
def perturbation_effects(
    mdata: Any,
    *,
    x: str | None = None,
    y: str | None = None,
    key: str = "perturbation_effects",
    statistic: str = "energy_distance",
    n_labels: int = 10,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | None = None,
    return_fig: bool | None = None,
) -> Figure | Axes | None:
    """Scatter each perturbation's effect in modality ``x`` against modality ``y``.

    Reads the results that :func:`groove_sc.tl.perturbation_effects` stored in
    ``mdata.uns[key]``; nothing is computed here. Each point is a perturbation present in
    both modalities, at its ``statistic`` against the control in ``x`` (horizontal) and in
    ``y`` (vertical). Perturbations with ``p_adjusted < 0.05`` in both modalities are drawn in
    red, those significant in one only in orange, the others in grey; the ``n_labels``
    strongest (largest sum of the two statistics, each divided by its largest value) are
    named. The title gives Spearman's correlation of the two modalities' statistics over the
    perturbations present in both: whether the modalities agree on which perturbations have
    large effects.

    Parameters
    ----------
    mdata
        MuData holding ``mdata.uns[key]``, written by :func:`groove_sc.tl.perturbation_effects`.
    x, y
        Modalities on the horizontal and vertical axes; default: the first two modalities
        the tool analysed (``mdata.uns[key]["params"]["modalities"]``).
    key
        Key of the results in ``mdata.uns`` (the ``key_added`` of the tool).
    statistic
        ``"energy_distance"`` or ``"mean_shift"``.
    n_labels
        Name this many perturbations (0: none).
    {figure_params}

    Returns
    -------
    The Figure if ``return_fig``, else the Axes (``None`` when shown).

    Raises
    ------
    KeyError
        If ``mdata.uns[key]`` is absent (run :func:`groove_sc.tl.perturbation_effects`
        first), or ``x`` / ``y`` is not a modality of the stored results.
    ValueError
        If ``statistic`` or ``n_labels`` is not valid, ``x`` equals ``y``, or fewer than two
        modalities were analysed.

    Examples
    --------
    >>> import groove_sc as gs
    >>> mdata = gs.datasets.simulate(n_perturbations=6, cells_per_perturbation=40)
    >>> _ = gs.tl.perturbation_effects(mdata, n_permutations=49, max_cells=40)
    >>> fig = gs.pl.perturbation_effects(mdata, show=False, return_fig=True)
    """
    entry = mdata.uns.get(key) if hasattr(mdata, "uns") else None
    if not isinstance(entry, Mapping) or "effects" not in entry:
        raise KeyError(
            f"`key`={key!r} is not in mdata.uns (or holds no 'effects'); run "
            "groove_sc.tl.perturbation_effects first (with `key_added`=key)."
        )
    if statistic not in _STATISTICS:
        raise ValueError(f"`statistic` must be one of {list(_STATISTICS)}, got {statistic!r}.")
    if isinstance(n_labels, bool) or not isinstance(n_labels, (int, np.integer)) or n_labels < 0:
        raise ValueError(f"`n_labels` must be an integer >= 0, got {n_labels!r}.")
    table = pd.DataFrame({k: np.asarray(v) for k, v in dict(entry["effects"]).items()})
    params = dict(entry.get("params", {}))
    recorded = [str(m) for m in np.atleast_1d(params.get("modalities", []))]
    if not recorded:
        recorded = list(pd.unique(table["modality"].astype(str)))
    if x is None or y is None:
        rest = [m for m in recorded if m not in (x, y)]
        if x is None:
            x, rest = (rest[0], rest[1:]) if rest else (None, rest)
        if y is None:
            y = rest[0] if rest else None
        if x is None or y is None:
            raise ValueError(
                f"Two modalities are needed but mdata.uns[{key!r}] holds {recorded}; run "
                "groove_sc.tl.perturbation_effects on a MuData with two or more modalities."
            )
    for arg, m in (("x", x), ("y", y)):
        if m not in recorded:
            raise KeyError(
                f"`{arg}`={m!r} is not a modality of mdata.uns[{key!r}]; available: {recorded}."
            )
    if x == y:
        raise ValueError(f"`x` and `y` must be different modalities, both are {x!r}.")

    def _side(mod: str) -> pd.DataFrame:
        sub = table[table["modality"].astype(str) == mod]
        return sub.set_index(sub["perturbation"].astype(str))[[statistic, "p_adjusted"]]

    both = _side(x).join(_side(y), how="inner", lsuffix="_x", rsuffix="_y").sort_index()
    vx = both[f"{statistic}_x"].to_numpy(dtype=np.float64)
    vy = both[f"{statistic}_y"].to_numpy(dtype=np.float64)
    sig_x = both["p_adjusted_x"].to_numpy(dtype=np.float64) < _ALPHA
    sig_y = both["p_adjusted_y"].to_numpy(dtype=np.float64) < _ALPHA
    has_p = bool(np.isfinite(both["p_adjusted_x"]).any() or np.isfinite(both["p_adjusted_y"]).any())
    rho, n_rho = _stored_agreement(entry, statistic, x, y, len(both))

    fig, axes, ax_given = new_axes(1, ncols=1, panel_size=(5.5, 5.0), ax=ax)
    a = axes[0]
    name = _NAMES[statistic]
    groups = [
        (~sig_x & ~sig_y, NA_COLOR, "neither" if has_p else "p-values not computed"),
        (sig_x ^ sig_y, "#ff7f0e", "significant in one"),
        (sig_x & sig_y, "#d62728", f"significant in both (BH < {_ALPHA:g})"),
    ]
    for mask, color, label in groups:
        if mask.any():
            a.scatter(
                vx[mask],
                vy[mask],
                s=28,
                c=color,
                edgecolors="none",
                label=f"{label} ({mask.sum()})",
            )
    if n_labels and len(both):
        scale_x = np.nanmax(np.abs(vx)) or 1.0
        scale_y = np.nanmax(np.abs(vy)) or 1.0
        strength = vx / scale_x + vy / scale_y
        for i in np.argsort(-strength, kind="stable")[: int(n_labels)]:
            a.annotate(
                str(both.index[i]),
                (vx[i], vy[i]),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize="x-small",
            )
    a.axhline(0.0, color="#bbbbbb", lw=0.6, zorder=0)
    a.axvline(0.0, color="#bbbbbb", lw=0.6, zorder=0)
    a.set_xlabel(f"{name} in {x}")
    a.set_ylabel(f"{name} in {y}")
    rho_txt = "n/a" if not np.isfinite(rho) else f"{rho:.2f}"
    a.set_title(f"{name}: {x} vs {y}\nSpearman \u03c1 = {rho_txt} (n = {n_rho} perturbations)")
    if len(both):
        a.legend(fontsize="x-small", loc="best", frameon=False)
    return finish(fig, a, ax_given=ax_given, show=show, return_fig=bool(return_fig), save=save)


def _stored_agreement(
    entry: Mapping[str, Any], statistic: str, x: str, y: str, n_both: int
) -> tuple[float, int]:
    """Spearman correlation the tool stored for the pair (either order), and its n."""
    agreement = entry.get("agreement")
    if isinstance(agreement, Mapping) and "statistic" in agreement:
        stats = np.asarray(agreement["statistic"]).astype(str)
        mx = np.asarray(agreement["modality_x"]).astype(str)
        my = np.asarray(agreement["modality_y"]).astype(str)
        hit = np.flatnonzero(
            (stats == statistic) & (((mx == x) & (my == y)) | ((mx == y) & (my == x)))
        )
        if hit.size:
            i = int(hit[0])
            return float(np.asarray(agreement["spearman"])[i]), int(np.asarray(agreement["n"])[i])
    return float("nan"), n_both
