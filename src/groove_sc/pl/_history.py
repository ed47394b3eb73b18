"""Training curves."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._utils import AxesArg, figure_docs


@figure_docs
def history(
    model,
    *,
    terms: Sequence[str] | None = None,
    ax: AxesArg = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | None = None,
) -> Figure | list[Axes] | None:
    """Plot each loss term per epoch, training and validation.

    One panel per loss term (``loss``, ``reconstruction_<modality>``, ``groupclip``,
    ``backtranslation``, ``kl``), the training curve solid and the validation curve dashed.
    The ``label_transfer`` panel shows the cross-modal label transfer of held-out cells
    (dashed) against that of training cells (solid) and, dotted, its chance level
    (``model.label_transfer_chance_``): a training curve far above the validation curve is a
    model that memorises the training cells' labels.

    Parameters
    ----------
    model
        A trained :class:`~groove_sc.model.GROOVE` (reads ``model.history``).
    terms
        Loss terms to plot; default: every term recorded.
    {figure_params}

    Returns
    -------
    The Figure if ``return_fig``, else the list of Axes (``None`` when shown).
    """
    hist = getattr(model, "history", None)
    if not hist:
        raise ValueError("`model` has no training history; train it first.")
    recorded = []
    for key in hist:
        for suffix in ("_train", "_validation"):
            if key.endswith(suffix) and key[: -len(suffix)] not in recorded:
                recorded.append(key[: -len(suffix)])
    if terms is None:
        terms = recorded
    unknown = [t for t in terms if t not in recorded]
    if unknown:
        raise KeyError(f"`terms` {unknown} were not recorded; available: {recorded}.")
    if ax is None:
        n = len(terms)
        ncols = min(3, n)
        nrows = int(np.ceil(n / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
        axes = list(axes.ravel())
        for extra in axes[n:]:
            extra.remove()
        axes = axes[:n]
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != len(terms):
            raise ValueError(f"`ax` must hold {len(terms)} Axes (one per term), got {len(axes)}.")
        fig = axes[0].figure
    for term, a in zip(terms, axes):
        for suffix, style, label in (("_train", "-", "train"), ("_validation", "--", "validation")):
            key = term + suffix
            if key in hist:
                values = hist[key].to_numpy(dtype=float).ravel()
                a.plot(np.arange(1, len(values) + 1), values, style, label=label)
        a.set_title(term.replace("_", " "))
        a.set_xlabel("epoch")
        if term == "label_transfer":
            chance = getattr(model, "label_transfer_chance_", float("nan"))
            if chance is not None and np.isfinite(chance):
                a.axhline(chance, color="0.5", ls=":", lw=1, label="chance")
            a.set_ylabel("accuracy")
        else:
            a.set_ylabel("loss")
        a.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    if save is not None:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    if show is None:
        show = ax is None and save is None and plt.get_backend().lower() != "agg"
    if show:
        plt.show()
        return None
    return fig if return_fig else axes
