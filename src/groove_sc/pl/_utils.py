"""Helpers shared by the plotting functions (figure handling, palettes, legends)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..tl._cells import check_modality

__all__ = [
    "FIGURE_PARAMS",
    "NA_COLOR",
    "AxesArg",
    "PlotResult",
    "categories_of",
    "check_modality",
    "default_palette",
    "figure_docs",
    "finish",
    "legend_columns",
    "new_axes",
    "resolve_palette",
]

#: Grey used for cells without a value (NaN, or outside the highlighted ``groups``).
NA_COLOR = "#d3d3d3"
#: The ``ax`` argument of a plotting function: one Axes, one per panel, or ``None``.
AxesArg = Axes | Sequence[Axes] | None
#: What a plotting function returns (scanpy conventions, see :func:`finish`).
PlotResult = Figure | Axes | list[Axes] | None
#: The numpy docstring entries of the figure arguments, written where a plotting function's
#: docstring says ``{figure_params}`` (see :func:`figure_docs`).
FIGURE_PARAMS = """\
ax
    Axes to draw into (one per panel when there are several); default: a new figure.
show
    Show the figure. Default: when the function made the figure, nothing is saved and the
    matplotlib backend is interactive.
return_fig
    Return the Figure (else the Axes).
save
    Path to write the figure to (the format from its extension)."""

_F = TypeVar("_F", bound=Callable[..., Any])


def figure_docs(func: _F) -> _F:
    """Write :data:`FIGURE_PARAMS` into ``func``'s docstring at ``{figure_params}``."""
    doc = func.__doc__ or ""
    if "{figure_params}" not in doc:
        raise ValueError(f"the docstring of {func.__name__} has no {{figure_params}} entry.")
    func.__doc__ = doc.replace("{figure_params}", textwrap.indent(FIGURE_PARAMS, "    ")[4:])
    return func


def finish(
    fig: Figure,
    axes: Axes | list[Axes],
    *,
    ax_given: bool,
    show: bool | None,
    return_fig: bool,
    save: str | None,
) -> Figure | Axes | list[Axes] | None:
    """Save / show the figure and return what the scanpy conventions ask for.

    ``show=None`` shows the figure only when the function created it, nothing is saved and the
    backend is interactive (so that scripts and tests under Agg never block).
    """
    if save is not None:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    if show is None:
        show = not ax_given and save is None and plt.get_backend().lower() != "agg"
    if show:
        plt.show()
        return None
    return fig if return_fig else axes


def new_axes(
    n: int, *, ncols: int, panel_size: tuple[float, float], ax: Any
) -> tuple[Figure, list[Axes], bool]:
    """``n`` Axes: the ones given in ``ax`` (checked) or a new grid of ``ncols`` columns."""
    if ax is None:
        ncols = max(1, min(ncols, n))
        nrows = int(np.ceil(n / ncols))
        fig, grid = plt.subplots(
            nrows,
            ncols,
            figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
            squeeze=False,
            layout="constrained",
        )
        axes = list(grid.ravel())
        for extra in axes[n:]:
            extra.remove()
        return fig, axes[:n], False
    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if len(axes) != n or not all(isinstance(a, Axes) for a in axes):
        raise ValueError(f"`ax` must be {n} matplotlib Axes (one per panel), got {len(axes)}.")
    return axes[0].figure, axes, True


def default_palette(n: int) -> list[str]:
    """Scanpy's default categorical palettes: ``default_20``, ``default_28``, ``default_102``."""
    from scanpy.plotting import palettes

    if n <= 20:
        pal = palettes.default_20
    elif n <= 28:
        pal = palettes.default_28
    elif n <= 102:
        pal = palettes.default_102
    else:
        pal = [palettes.default_102[i % 102] for i in range(n)]
    return [str(c) for c in pal[:n]]


def resolve_palette(
    categories: Sequence[str], palette: Any, stored: Sequence[str] | None = None
) -> dict[str, str]:
    """Colour per category: ``palette`` (dict, list or colormap name), stored colours, default."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cats = [str(c) for c in categories]
    n = len(cats)
    if isinstance(palette, dict):
        fill = default_palette(n)
        return {c: palette.get(c, fill[i]) for i, c in enumerate(cats)}
    if isinstance(palette, str):
        cmap = colormaps[palette]
        if getattr(cmap, "N", 256) < 256:  # a listed (qualitative) colormap
            return {c: to_hex(cmap(i % cmap.N)) for i, c in enumerate(cats)}
        return {c: to_hex(cmap(x)) for c, x in zip(cats, np.linspace(0, 1, max(n, 2)))}
    if palette is not None:
        pal = list(palette)
        if len(pal) < n:
            raise ValueError(f"`palette` has {len(pal)} colours but {n} categories are drawn.")
        return dict(zip(cats, pal))
    if stored is not None and len(stored) >= n:
        return dict(zip(cats, stored))
    return dict(zip(cats, default_palette(n)))


def legend_columns(n: int) -> int:
    """Legend columns for ``n`` entries (as scanpy's right-margin legend)."""
    return 1 if n <= 14 else 2 if n <= 30 else 3


def categories_of(values: pd.Series) -> list[str]:
    """Categories in their categorical order (used ones only), else sorted unique values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        used = set(values.dropna().astype(str))
        return [str(c) for c in values.cat.categories if str(c) in used]
    return sorted({str(v) for v in values.dropna()})
