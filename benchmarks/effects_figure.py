"""The perturbation-effects figure of the docs, on the Papalexi screen's two gene views.

Writes ``docs/_static/effects/papalexi_two_view.png``: ``gs.tl.perturbation_effects`` on the
two disjoint halves of the 299 genes (``gs.datasets.papalexi_two_view``, each view
depth-normalised and log-transformed, every cell; one assay, so two views rather than two
assays) and ``gs.pl.perturbation_effects``.

Usage::

    python benchmarks/effects_figure.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import groove_sc as gs

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import scanpy as sc

    mdata = gs.datasets.papalexi_two_view(seed=0)
    for m in mdata.mod:  # depth-normalised, log-transformed counts of each view
        adata = mdata.mod[m]
        adata.layers["log1p"] = sc.pp.log1p(
            sc.pp.normalize_total(adata, target_sum=1e4, inplace=False)["X"]
        )
    effects = gs.tl.perturbation_effects(
        mdata, group_key="perturbation", control="non-targeting", layer="log1p"
    )
    agreement = mdata.uns["perturbation_effects"]["agreement"]
    print(effects.groupby("modality").head(6).to_string(index=False))
    print(agreement)
    out = ROOT / "docs" / "_static" / "effects" / "papalexi_two_view.png"
    fig = gs.pl.perturbation_effects(mdata, show=False, return_fig=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
