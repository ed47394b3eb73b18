"""The combinatorial benchmark: representation learners x aligners x datasets x seeds.

- :func:`run` runs a configuration (YAML file or mapping, read into a
  :class:`BenchmarkConfig` by :func:`load_config`) over its :func:`plan` of units and returns
  the tidy results table (:data:`RESULT_COLUMNS`); :func:`cli_main` is
  ``groove-sc benchmark --config FILE --out DIR``.
- Learners behind one interface (:class:`Learner`: ``fit(train, label_key, seed)``,
  ``transform(mdata) -> {modality: array}``), one module each, registered with
  :func:`register_learner` into :data:`LEARNERS` and built by :func:`make_learner`.
  ``diagvi`` is scvi-tools' :class:`scvi.external.DIAGVI` (extra ``groove-sc[diagvi]``), its
  guidance graph from :func:`feature_links`; a learner that does not apply to a dataset raises
  :class:`LearnerNotApplicable` (``not_applicable`` rows).
- Statistics on the table: :func:`summarize` (mean and standard error over seeds),
  :func:`wilcoxon_vs_best` (paired test of GROOVE against the best other learner),
  :func:`headline_table`, :func:`rank_learners` and :func:`rank_aligners`.
- Sensitivity: :func:`tune` (Optuna over ``beta`` and ``tau``, extra ``groove_sc[tune]``) and
  :func:`plot_landscape`.
"""

from .._results import RESULT_COLUMNS, read_results
from ._cli import cli_main
from ._config import (
    EVAL_SPACES,
    BenchmarkConfig,
    ConfigError,
    DatasetConfig,
    Preprocess,
    load_config,
)
from ._data import (
    Split,
    heldout_label_folds,
    iter_splits,
    load_dataset,
    load_dataset_config,
    split_heldout_labels,
)
from ._diagvi import (
    DIAGVI_INSTALL,
    DiagviLearner,
    DiagviUnavailableError,
    diagvi_unavailable_reason,
    feature_links,
)
from ._docs import docs_report
from ._groove import GrooveLearner
from ._learner import LEARNERS, Learner, LearnerNotApplicable, make_learner, register_learner
from ._pca import PCALearner
from ._plan import Unit, plan
from ._preprocess import clr, preprocess_modality
from ._propensity import PropensityScoreLearner
from ._report import summary_markdown, write_report
from ._run import first_failure, run
from ._scoring import (
    COUPLING_METRICS,
    DECODER_METRICS,
    FIT_METRICS,
    LATENT_METRICS,
    SELECTION_METRICS,
    SPACE_METRICS,
    TRAIN_REFERENCE_METRICS,
    eval_matrix,
    score_coupling,
    score_translation,
)
from ._stats import (
    LOWER_IS_BETTER,
    headline_table,
    lower_is_better,
    rank_aligners,
    rank_learners,
    summarize,
    wilcoxon_vs_best,
)
from ._tune import plot_landscape, tune
from ._unit import run_unit
from ._vae import AdversarialVAELearner

__all__ = [
    "COUPLING_METRICS",
    "DECODER_METRICS",
    "DIAGVI_INSTALL",
    "EVAL_SPACES",
    "FIT_METRICS",
    "LATENT_METRICS",
    "LEARNERS",
    "LOWER_IS_BETTER",
    "RESULT_COLUMNS",
    "SELECTION_METRICS",
    "SPACE_METRICS",
    "TRAIN_REFERENCE_METRICS",
    "AdversarialVAELearner",
    "BenchmarkConfig",
    "ConfigError",
    "DatasetConfig",
    "DiagviLearner",
    "DiagviUnavailableError",
    "GrooveLearner",
    "Learner",
    "LearnerNotApplicable",
    "PCALearner",
    "Preprocess",
    "PropensityScoreLearner",
    "Split",
    "Unit",
    "cli_main",
    "clr",
    "diagvi_unavailable_reason",
    "docs_report",
    "eval_matrix",
    "feature_links",
    "first_failure",
    "headline_table",
    "heldout_label_folds",
    "iter_splits",
    "load_config",
    "load_dataset",
    "load_dataset_config",
    "lower_is_better",
    "make_learner",
    "plan",
    "plot_landscape",
    "preprocess_modality",
    "rank_aligners",
    "rank_learners",
    "read_results",
    "register_learner",
    "run",
    "run_unit",
    "score_coupling",
    "score_translation",
    "split_heldout_labels",
    "summarize",
    "summary_markdown",
    "tune",
    "wilcoxon_vs_best",
    "write_report",
]
