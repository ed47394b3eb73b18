"""The flat plan of a benchmark: one unit per (dataset, setting, seed, protocol, fold, learner)."""

from __future__ import annotations

from dataclasses import dataclass

from ._config import BenchmarkConfig

__all__ = ["Unit", "plan"]


@dataclass(frozen=True)
class Unit:
    """One fit of one learner on one split, scored with every aligner.

    Attributes
    ----------
    index
        Position of the dataset in the configuration (names may repeat).
    dataset, setting, seed, protocol, fold, learner
        What the unit runs (``setting`` is ``""`` for a dataset without settings).
    """

    index: int
    dataset: str
    setting: str
    seed: int
    protocol: str
    fold: int
    learner: str

    @property
    def key(self) -> tuple[str, str, str, int, int, str]:
        """The resume key, in the order of :data:`groove_sc._results.UNIT_KEYS`."""
        return (self.dataset, self.setting, self.protocol, self.fold, self.seed, self.learner)

    @property
    def data_key(self) -> tuple[int, str, int]:
        """The loaded data the unit needs (one load per dataset, setting and seed)."""
        return (self.index, self.setting, self.seed)

    @property
    def split_key(self) -> tuple[int, str, int, str]:
        """The splits the unit needs (one per data and protocol)."""
        return (self.index, self.setting, self.seed, self.protocol)

    def base(self) -> dict[str, object]:
        """The facet columns of the unit's result rows."""
        return {
            "dataset": self.dataset,
            "setting": self.setting,
            "seed": self.seed,
            "protocol": self.protocol,
            "fold": self.fold,
            "learner": self.learner,
        }


def plan(cfg: BenchmarkConfig) -> list[Unit]:
    """Every unit of a configuration, in the order they run.

    Datasets, then settings, seeds, protocols, folds and learners, so that each dataset is
    loaded once per setting and seed and split once per protocol.

    Parameters
    ----------
    cfg
        The configuration.

    Returns
    -------
    The units.
    """
    return [
        Unit(i, d.name, setting, seed, protocol, fold, learner)
        for i, d in enumerate(cfg.datasets)
        for setting in d.settings
        for seed in cfg.seeds
        for protocol in d.protocols
        for fold in cfg.folds(d, protocol)
        for learner in cfg.learners
    ]
