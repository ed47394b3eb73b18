"""The benchmark loop: every unit of the plan, its rows appended to the results file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mudata as md
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._results import ResultsFile, error_text, metric_rows
from ..ot import torch_threads
from ..train._quiet import quiet_training_logs
from ._config import BenchmarkConfig, load_config
from ._data import Split, iter_splits, load_dataset_config
from ._plan import Unit, plan
from ._unit import run_unit

__all__ = ["first_failure", "run"]


class _Splits:
    """The data and splits of the current (dataset, setting, seed), loaded when first needed.

    A load or split that fails is remembered with the stage (``load`` / ``split``), so that the
    units that need it fail with the same error without trying again.
    """

    def __init__(self, cfg: BenchmarkConfig):
        self.cfg = cfg
        self.data_key: tuple | None = None
        self.data: md.MuData | BaseException | None = None
        self.splits: dict[tuple, dict[int, Split] | BaseException] = {}

    def get(self, unit: Unit) -> Split:
        dataset = self.cfg.datasets[unit.index]
        if unit.data_key != self.data_key:
            self.data_key, self.splits = unit.data_key, {}
            try:
                self.data = load_dataset_config(dataset, unit.setting, unit.seed)
            except Exception as exc:
                self.data = exc
        if isinstance(self.data, BaseException):
            raise _StageError("load", self.data)
        if unit.split_key not in self.splits:
            opts = self.cfg.protocol_options(dataset, unit.protocol)
            try:
                found = iter_splits(
                    self.data,
                    dataset.label_key,
                    unit.protocol,
                    seed=unit.seed,
                    extra_modalities=dataset.extra_modalities,
                    **opts,
                )
                self.splits[unit.split_key] = {s.fold: s for s in found}
            except Exception as exc:
                self.splits[unit.split_key] = exc
        splits = self.splits[unit.split_key]
        if isinstance(splits, BaseException):
            raise _StageError("split", splits)
        if unit.fold not in splits:
            raise _StageError("split", KeyError(f"fold {unit.fold} was not split"))
        return splits[unit.fold]


class _StageError(Exception):
    """A load or split failure, with the stage it happened in."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(stage)
        self.stage, self.error = stage, error


def _unit_rows(unit: Unit, cfg: BenchmarkConfig, splits: _Splits) -> list[dict[str, Any]]:
    try:
        split = splits.get(unit)
    except _StageError as exc:
        base = {**unit.base(), "aligner": ""}
        return metric_rows(base, {}, [exc.stage], np.nan, "failed", error_text(exc.error))
    dataset = cfg.datasets[unit.index]
    return run_unit(unit.learner, split, cfg, dataset, unit.base(), unit.seed)


def run(
    config: str | Path | Mapping[str, Any] | BenchmarkConfig,
    *,
    progress: bool = True,
    results_path: str | Path | None = None,
    resume: bool = False,
) -> pd.DataFrame:
    """Run the combinatorial benchmark and return the tidy results table.

    For each dataset, setting and seed the jointly measured data are loaded (or simulated,
    with the seed) and preprocessed, split by each protocol (``heldout_cells``: one weakly
    paired split; ``heldout_labels``: k folds over the labels, the test fold's labels unseen
    in training); each learner is fitted on the weakly paired training cells and embeds the
    paired test cells; each aligner couples the test cells of the two modalities within
    labels on that embedding; the coupling is scored against the true pairs
    (:func:`score_coupling`) and the embedding by the latent FOSCTTM and 1-NN label transfer.
    A learner without a shared space (``pca``) is not combined with ``sinkhorn``/``emd``/``fgw``
    (``status="not_applicable"``); a learner whose fit raises
    :class:`~groove_sc.benchmark.LearnerNotApplicable` (``diagvi`` on data without feature
    links) gets ``not_applicable`` rows with the reason in ``error``. The pseudo-aligner
    ``{method: decoder}`` scores the imputation through the learner's decoders instead of a
    coupling (:func:`score_translation`; learners with decoders only). A load, split, fit or
    alignment that raises is recorded (``status="failed"``, ``error``), never fatal; a
    coupling equal to the labels-only one is flagged (``labels_only``). The same
    configuration and seeds give the same values (``seconds`` aside).

    Parameters
    ----------
    config
        A YAML file, a mapping or a :class:`BenchmarkConfig`, see :func:`load_config`.
    progress
        Show a progress bar over the units (:func:`plan`).
    results_path
        Append each unit's rows to this CSV as soon as they are computed (a long run that is
        interrupted keeps what it did).
    resume
        With ``results_path``: skip the units already in that file and return old and new rows.

    Returns
    -------
    DataFrame with the columns :data:`RESULT_COLUMNS`: one row per dataset, setting, protocol,
    fold, learner, aligner, seed and metric. ``seconds`` is the learner's fit and embedding
    time plus the aligner's time for that cell; ``status`` is ``"ok"``, ``"failed"`` or
    ``"not_applicable"`` (value NaN) and ``error`` the error message of a failure.
    """
    cfg = load_config(config)
    units = plan(cfg)
    store = ResultsFile(results_path, resume=resume)
    splits = _Splits(cfg)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(units), disable=not progress, desc=cfg.name, unit="fit")
    with torch_threads(cfg.n_threads), quiet_training_logs():
        for unit in units:
            if unit.key not in store.done:
                bar.set_postfix_str(f"{unit.dataset} {unit.setting} {unit.protocol} {unit.learner}")
                rows += store.append(_unit_rows(unit, cfg, splits))
            bar.update(1)
    bar.close()
    return store.table(rows)


_OPTION = re.compile(r"\b((?:datasets|learners|aligners|protocols)\.[\w.=\-]+?)(?=:|\s|$)")


def first_failure(results: pd.DataFrame) -> tuple[str, str] | None:
    """The first real error of a results table and the configuration option it concerns.

    Not-applicable cells are no errors. The option is the one the message names (a
    :class:`~groove_sc.benchmark.ConfigError`), else ``protocols.<protocol>`` for a split,
    ``learners.<name>`` when every aligner of the unit failed with the same error (the fit
    failed), else ``aligners.<name>``.

    Parameters
    ----------
    results
        The tidy table.

    Returns
    -------
    ``(option, error)``, or ``None`` when nothing failed.
    """
    failed = results[results["status"] == "failed"]
    if failed.empty:
        return None
    row = failed.iloc[0]
    error = str(row["error"])
    named = _OPTION.search(error)
    if named:
        return named.group(1).rstrip("."), error
    if row["metric"] == "load":
        return f"datasets.{row['dataset']}", error
    if row["metric"] == "split":
        return f"protocols.{row['protocol']}", error
    keys = ["dataset", "setting", "protocol", "fold", "seed", "learner"]
    same_unit = (results[keys] == row[keys]).all(axis=1)
    unit_errors = set(results.loc[same_unit, "error"])
    if unit_errors == {error} and results.loc[same_unit, "status"].eq("failed").all():
        return f"learners.{row['learner']}", error
    return f"aligners.{row['aligner']}", error
