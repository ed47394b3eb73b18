"""Keep Lightning's start-up notices out of a user's notebook while GROOVE trains."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

#: Loggers whose INFO messages are start-up notices ("GPU available", adverts).
NOTICE_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
)
#: Loggers of the training libraries, silenced below ERROR by :func:`quiet_training_logs`.
TRAINING_LOGGERS = (
    "lightning",
    "lightning.pytorch",
    "lightning.fabric",
    "scvi",
    "pytorch_lightning",
)
#: Warnings that say nothing actionable for GROOVE's own data loaders.
IGNORED_WARNINGS = (
    r".*does not have many workers.*",  # the loaders read in-memory arrays by design
    r".*isinstance\(treespec, LeafSpec\).*",  # a Lightning / torch deprecation, not ours
    r".*smaller than the logging interval.*",
)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up notices and loader warnings (restored afterwards).

    Messages at WARNING and above of the notice loggers still show, and so do the progress
    bar and scvi-tools' early-stopping message.
    """
    old = {name: logging.getLogger(name).level for name in NOTICE_LOGGERS}
    for name in NOTICE_LOGGERS:
        if logging.getLogger(name).getEffectiveLevel() < logging.WARNING:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in IGNORED_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for name, level in old.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def quiet_training_logs() -> Iterator[None]:
    """Silence the training libraries below ERROR and every warning (restored afterwards).

    For batch runs (the benchmark, command lines) that fit many models and record failures
    themselves; a notebook uses :func:`quiet_lightning`, which keeps warnings.
    """
    old = {name: logging.getLogger(name).level for name in TRAINING_LOGGERS}
    for name in TRAINING_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in old.items():
            logging.getLogger(name).setLevel(level)
