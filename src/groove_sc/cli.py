"""Command line interface: ``groove-sc demo`` and ``groove-sc benchmark``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path


def _quiet() -> None:
    """Silence library chatter so that the report stays readable."""
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def demo(
    out: str | Path = "groove_demo",
    *,
    n_perturbations: int = 20,
    cells_per_perturbation: int = 150,
    shared_fraction: float = 0.8,
    max_epochs: int = 60,
    seed: int = 0,
    progress_bar: bool = True,
) -> dict[str, float]:
    """Simulate a weakly paired screen, train GROOVE and report how well it links modalities.

    Steps: :func:`~groove_sc.datasets.simulate` (jointly measured cells),
    :func:`~groove_sc.data.split_weakly_paired` (training cells disjoint between modalities,
    paired held-out test cells), :class:`~groove_sc.model.GROOVE` training,
    :func:`~groove_sc.tl.latent` on the test cells, then the cross-modal label transfer (nearest
    neighbour, both directions averaged) and the latent FOSCTTM (0 perfect, 0.5 random) of the
    test pairs. The test cells are then matched within labels with
    :func:`~groove_sc.tl.align` (Sinkhorn, exact OT and the uniform-within-label reference),
    imputed through each coupling and through the decoders, and scored with
    :func:`~groove_sc.tl.matching_metrics` and :func:`~groove_sc.tl.imputation_metrics`. The
    training history figure is written to ``out/history.png``.

    Parameters
    ----------
    out
        Output directory.
    n_perturbations, cells_per_perturbation, shared_fraction
        Simulation settings (see :func:`~groove_sc.datasets.simulate`).
    max_epochs
        Training epochs.
    seed
        Seed of the simulation, the split and the training.
    progress_bar
        Show the training progress bar.

    Returns
    -------
    The reported figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import mudata

    import groove_sc as gs

    mudata.set_options(pull_on_update=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mdata = gs.datasets.simulate(
        n_perturbations=n_perturbations,
        cells_per_perturbation=cells_per_perturbation,
        shared_fraction=shared_fraction,
        seed=seed,
    )
    train, test = gs.data.split_weakly_paired(mdata, "perturbation", test_size=0.2, seed=seed)
    a, b = list(train.mod)
    print(
        f"simulated {n_perturbations} perturbations, shared fraction {shared_fraction}: "
        f"training cells {a}={train.mod[a].n_obs}, {b}={train.mod[b].n_obs} (disjoint), "
        f"paired test cells {test.mod[a].n_obs}"
    )
    gs.model.GROOVE.setup_mudata(train, perturbation_key="perturbation")
    model = gs.model.GROOVE(train, seed=seed)
    start = time.perf_counter()
    model.train(
        max_epochs=max_epochs,
        seed=seed,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
    )
    seconds = time.perf_counter() - start
    gs.tl.latent(model, test)
    za, zb = test.mod[a].obsm["X_groove"], test.mod[b].obsm["X_groove"]
    la = test.mod[a].obs["perturbation"].to_numpy()
    lb = test.mod[b].obs["perturbation"].to_numpy()
    transfer_ab = gs.tl.label_transfer_accuracy(za, la, zb, lb)
    transfer_ba = gs.tl.label_transfer_accuracy(zb, lb, za, la)
    fos = gs.tl.foscttm(za, zb)
    report = {
        "training_seconds": seconds,
        "label_transfer": (transfer_ab + transfer_ba) / 2,
        f"label_transfer_{a}_to_{b}": transfer_ba,
        f"label_transfer_{b}_to_{a}": transfer_ab,
        "latent_foscttm": fos,
    }
    gs.pl.history(model, save=str(out / "history.png"), show=False)

    # matching and imputation of the test cells of `a` with those of `b`, within labels
    rows = {}
    observed = test.mod[b]
    for method in ("sinkhorn", "emd", "uniform"):
        key = f"coupling_{method}"
        gs.tl.align(test, source=a, target=b, method=method, key_added=key, tol=1e-4)
        match = gs.tl.matching_metrics(test, coupling_key=key, source=a, target=b)
        gs.tl.impute(test, coupling_key=key, source=a, target=b, key_added=f"{b}_{method}")
        imp = gs.tl.imputation_metrics(test.mod[a].obsm[f"{b}_{method}"], observed)
        rows[method] = {**match, **{f"imputation_{k}": v for k, v in imp.items()}}
    decoded = gs.tl.imputation_metrics(model.translate(test, source=a, target=b), observed)
    rows["decoder"] = {f"imputation_{k}": v for k, v in decoded.items()}
    for method, values in rows.items():
        for k in ("trace_ratio", "foscttm_barycentric", "imputation_pearson_cell_delta"):
            if k in values:
                report[f"{method}_{k}"] = float(values[k])

    print()
    print("GROOVE demo report (held-out paired test cells)")
    print(f"  training time              {seconds:8.1f} s ({max_epochs} epochs)")
    print(
        f"  label transfer (1-NN)      {report['label_transfer']:8.3f}  "
        f"({a}->{b} {transfer_ba:.3f}, {b}->{a} {transfer_ab:.3f}; "
        f"chance {1 / n_perturbations:.3f})"
    )
    print(f"  latent FOSCTTM             {fos:8.3f}  (0 perfect, 0.5 random)")
    print()
    print(f"  matching {a} -> {b} within labels, and imputation of {b} (uniform = labels only)")
    header = (
        f"  {'method':<10}{'trace':>8}{'ratio':>8}{'bary FOSCTTM':>14}{'r cell':>8}{'r delta':>9}"
    )
    print(header)
    for method, values in rows.items():
        cells = [
            f"{values[k]:8.3f}" if k in values else f"{'-':>8}" for k in ("trace", "trace_ratio")
        ]
        bary = values.get("foscttm_barycentric")
        print(
            f"  {method:<10}{cells[0]}{cells[1]}"
            + (f"{bary:14.3f}" if bary is not None else f"{'-':>14}")
            + f"{values['imputation_pearson_cell']:8.3f}"
            + f"{values['imputation_pearson_cell_delta']:9.3f}"
        )
    print("  trace: coupling mass on true pairs; ratio: trace / uniform-within-label trace;")
    print("  r cell / r delta: per-cell Pearson of the imputed profile, raw / minus mean profile")
    print(f"  training history figure    {out / 'history.png'}")
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``groove-sc`` console script."""
    parser = argparse.ArgumentParser(prog="groove-sc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="simulate, train GROOVE and print a short report")
    p_demo.add_argument("--out", default="groove_demo", help="output directory")
    p_demo.add_argument("--epochs", type=int, default=60, help="training epochs")
    p_demo.add_argument("--perturbations", type=int, default=20)
    p_demo.add_argument("--cells-per-perturbation", type=int, default=150)
    p_demo.add_argument("--shared-fraction", type=float, default=0.8)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p_demo.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (small models: 1 is fastest)"
    )
    sub.add_parser(
        "benchmark",
        add_help=False,
        help="run a benchmark configuration (groove-sc benchmark --config FILE --out DIR)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["benchmark"]:
        from .benchmark import cli_main

        return int(cli_main(argv[1:]) or 0)
    args = parser.parse_args(argv)
    _quiet()
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    if args.command == "demo":
        try:
            demo(
                args.out,
                n_perturbations=args.perturbations,
                cells_per_perturbation=args.cells_per_perturbation,
                shared_fraction=args.shared_fraction,
                max_epochs=args.epochs,
                seed=args.seed,
                progress_bar=not args.no_progress,
            )
        except (ValueError, KeyError, TypeError) as err:
            # bad input (e.g. --perturbations 0): a one-line usage error, exit status 2
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            p_demo.error(str(message))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
