"""Sensitivity of GROOVE to ``beta`` and ``tau``: an Optuna search and its landscape figure."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._results import lower_is_better
from ..data import split_weakly_paired
from ..ot import torch_threads
from ..train._quiet import quiet_training_logs
from ._data import load_dataset
from ._groove import GrooveLearner
from ._scoring import align_coupling, latent_metrics, score_coupling, workspace

__all__ = ["plot_landscape", "tune"]

_SIM = {"n_perturbations": 20, "cells_per_perturbation": 60}


def _default_datasets(shared_fractions: Sequence[float]) -> list[dict[str, Any]]:
    return [
        {
            "name": f"rho={rho}",
            "loader": "simulate",
            "label_key": "perturbation",
            "params": {**_SIM, "shared_fraction": float(rho)},
        }
        for rho in shared_fractions
    ]


def _evaluate(
    beta: float,
    tau: float,
    datasets: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    learner_kwargs: Mapping[str, Any],
    aligner: Mapping[str, Any],
) -> dict[str, float]:
    per = []
    for d in datasets:
        for seed in seeds:
            mdata = load_dataset(
                d["loader"],
                label_key=d["label_key"],
                params=d.get("params"),
                seed=seed if d["loader"] == "simulate" else 0,
                subsample_per_label=d.get("subsample_per_label"),
                log1p=d.get("log1p", False),
            )
            train, test = split_weakly_paired(mdata, d["label_key"], test_size=0.2, seed=seed)
            learner = GrooveLearner("groove", **{**learner_kwargs, "beta": beta, "tau": tau})
            learner.fit(train, d["label_key"], seed)
            emb = learner.transform(test)
            coupling, _ = align_coupling(
                workspace(test, {"X_tune": emb}),
                label_key=d["label_key"],
                params={"method": "sinkhorn", "use_rep": "X_tune", **dict(aligner)},
            )
            values = score_coupling(test, coupling, label_key=d["label_key"])
            values.update(latent_metrics(emb, test, d["label_key"]))
            values["dataset"] = d["name"]
            per.append(values)
    df = pd.DataFrame(per)
    out = df.drop(columns="dataset").mean().to_dict()
    for name, part in df.groupby("dataset", sort=False):
        for metric in ("trace", "foscttm_barycentric"):
            out[f"{metric}[{name}]"] = float(part[metric].mean())
    return out


def tune(
    *,
    n_trials: int = 30,
    shared_fractions: Sequence[float] = (1.0, 0.8, 0.5),
    datasets: Sequence[Mapping[str, Any]] | None = None,
    seeds: Sequence[int] = (0,),
    beta_range: tuple[float, float] = (0.03, 10.0),
    tau_range: tuple[float, float] = (0.02, 1.0),
    grid: Mapping[str, Sequence[float]] | None = None,
    objective: str = "foscttm_barycentric",
    learner_kwargs: Mapping[str, Any] | None = None,
    aligner: Mapping[str, Any] | None = None,
    sampler_seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Search GROOVE's ``beta`` (GroupCLIP weight) and ``tau`` (temperature) with Optuna.

    Each trial trains GROOVE with one ``(beta, tau)`` on the weakly paired split of each dataset
    (by default simulations with shared fractions 1.0, 0.8 and 0.5) and seed, couples the test
    cells with labeled Sinkhorn on the latent, and records the metrics of
    :func:`~groove_sc.benchmark.score_coupling` and the latent FOSCTTM averaged over datasets
    and seeds. Optuna minimises (FOSCTTMs, MSE) or maximises (the rest) ``objective``. Needs
    the optional dependency Optuna (``pip install groove-sc[tune]``).

    Parameters
    ----------
    n_trials
        Number of trials (ignored with ``grid``: every grid point is run once).
    shared_fractions
        Shared fractions ``rho`` of the default simulated datasets.
    datasets
        Datasets instead of the default simulations: mappings with ``name``, ``loader``,
        ``label_key`` and optionally ``params``, ``subsample_per_label``, ``log1p`` (as in a
        benchmark configuration).
    seeds
        Seeds (simulation, split, training) averaged in each trial.
    beta_range, tau_range
        Log-uniform search ranges (TPE sampler).
    grid
        ``{"beta": [...], "tau": [...]}``: evaluate this grid instead (Optuna's GridSampler),
        which draws the most readable landscape.
    objective
        Metric optimised.
    learner_kwargs
        Options of :class:`~groove_sc.benchmark.GrooveLearner` (e.g. ``max_epochs``).
    aligner
        Options of :func:`groove_sc.tl.align` (default labeled Sinkhorn).
    sampler_seed
        Seed of the sampler.
    progress
        Show Optuna's progress bar.

    Returns
    -------
    One row per trial: ``trial``, ``beta``, ``tau``, the averaged metrics and the per-dataset
    ``trace[<name>]`` / ``foscttm_barycentric[<name>]``.

    Raises
    ------
    ImportError
        If Optuna is not installed.
    """
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "groove_sc.benchmark.tune needs Optuna: pip install 'groove-sc[tune]'"
        ) from exc
    datasets = list(datasets) if datasets is not None else _default_datasets(shared_fractions)
    learner_kwargs = dict(learner_kwargs or {})
    aligner = dict(aligner or {})
    records: list[dict[str, Any]] = []

    def fn(trial: Any) -> float:
        if grid is not None:
            beta = trial.suggest_float("beta", min(grid["beta"]), max(grid["beta"]))
            tau = trial.suggest_float("tau", min(grid["tau"]), max(grid["tau"]))
        else:
            beta = trial.suggest_float("beta", *beta_range, log=True)
            tau = trial.suggest_float("tau", *tau_range, log=True)
        values = _evaluate(beta, tau, datasets, seeds, learner_kwargs, aligner)
        records.append({"trial": trial.number, "beta": beta, "tau": tau, **values})
        return float(values[objective])

    if grid is not None:
        sampler = optuna.samplers.GridSampler(
            {"beta": list(grid["beta"]), "tau": list(grid["tau"])}, seed=sampler_seed
        )
        n_trials = len(list(itertools.product(grid["beta"], grid["tau"])))
    else:
        sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "minimize" if lower_is_better(objective) else "maximize"
    study = optuna.create_study(direction=direction, sampler=sampler)
    with torch_threads(1), quiet_training_logs():
        study.optimize(fn, n_trials=n_trials, show_progress_bar=progress)
    return pd.DataFrame(records)


def plot_landscape(
    trials: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("trace", "foscttm_barycentric"),
    defaults: Mapping[str, float] | None = None,
    save: str | None = None,
) -> Any:
    """Draw the ``(beta, tau)`` landscape of :func:`tune`: one panel per metric.

    Each trial is a point at ``(log beta, log tau)`` coloured by the metric (bright is better);
    with at least 6 distinct points a triangulated contour is drawn underneath. The best trial
    is circled; ``defaults`` (e.g. ``{"beta": 0.3, "tau": 0.5}``) is marked with a cross.

    Parameters
    ----------
    trials
        Output of :func:`tune`.
    metrics
        Metric columns to draw.
    defaults
        A point to mark (the current defaults).
    save
        Write the figure to this path.

    Returns
    -------
    The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.9), squeeze=False)
    x = np.log10(trials["beta"].to_numpy(dtype=float))
    y = np.log10(trials["tau"].to_numpy(dtype=float))
    for ax, metric in zip(axes[0], metrics):
        v = trials[metric].to_numpy(dtype=float)
        lower = lower_is_better(metric)
        cmap = "viridis_r" if lower else "viridis"
        pts = np.unique(np.c_[x, y], axis=0)
        if len(pts) >= 6 and np.ptp(x) > 0 and np.ptp(y) > 0:
            try:
                ax.tricontourf(x, y, v, levels=12, cmap=cmap, alpha=0.55)
            except Exception:  # degenerate triangulation: points only
                pass
        sc = ax.scatter(x, y, c=v, cmap=cmap, edgecolors="k", linewidths=0.4, s=40, zorder=3)
        best = int(np.nanargmin(v) if lower else np.nanargmax(v))
        ax.scatter(
            x[best], y[best], s=160, facecolors="none", edgecolors="red", linewidths=1.5, zorder=4
        )
        if defaults is not None:
            ax.scatter(
                np.log10(defaults["beta"]),
                np.log10(defaults["tau"]),
                marker="x",
                c="red",
                s=60,
                zorder=5,
            )
        fig.colorbar(sc, ax=ax, label=f"{metric} ({'lower' if lower else 'higher'} is better)")
        ax.set_xlabel("log10 beta (GroupCLIP weight)")
        ax.set_ylabel("log10 tau (temperature)")
        ax.set_title(metric)
    fig.tight_layout()
    if save is not None:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    return fig
