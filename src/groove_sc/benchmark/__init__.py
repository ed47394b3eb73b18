"""The combinatorial benchmark: representation learners x aligners x datasets x seeds.

- :func:`run` runs a configuration (YAML file or mapping, see :func:`load_config`) and returns
  the tidy results table; :func:`cli_main` is ``groove-sc benchmark --config FILE --out DIR``.
- Learners behind one interface (:class:`Learner`: ``fit(train, label_key, seed)``,
  ``transform(mdata) -> {modality: array}``), built by :func:`make_learner` from the kinds in
  :data:`LEARNERS`. ``diagvi`` is scvi-tools' :class:`scvi.external.DIAGVI` (extra
  ``groove-sc[diagvi]``), its guidance graph from :func:`feature_links`; a learner that does not
  apply to a dataset raises :class:`LearnerNotApplicable` (``not_applicable`` rows).
- Statistics on the table: :func:`summarize` (mean and standard error over seeds),
  :func:`wilcoxon_vs_best` (paired test of GROOVE against the best other learner),
  :func:`headline_table`, :func:`rank_learners` and :func:`rank_aligners`.
- Sensitivity: :func:`tune` (Optuna over ``beta`` and ``tau``, extra ``groove_sc[tune]``) and
  :func:`plot_landscape`.
"""

from ._cli import cli_main, write_report
from ._data import heldout_label_folds, iter_splits, load_dataset, split_heldout_labels
from ._diagvi import (
    DIAGVI_INSTALL,
    DiagviLearner,
    DiagviUnavailableError,
    diagvi_unavailable_reason,
    feature_links,
)
from ._learners import (
    LEARNERS,
    AdversarialVAELearner,
    GrooveLearner,
    Learner,
    LearnerNotApplicable,
    PCALearner,
    PropensityScoreLearner,
    make_learner,
)
from ._run import (
    COUPLING_METRICS,
    DECODER_METRICS,
    EVAL_SPACES,
    FIT_METRICS,
    LATENT_METRICS,
    RESULT_COLUMNS,
    SELECTION_METRICS,
    SPACE_METRICS,
    TRAIN_REFERENCE_METRICS,
    eval_matrix,
    load_config,
    run,
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
    "DiagviLearner",
    "DiagviUnavailableError",
    "GrooveLearner",
    "Learner",
    "LearnerNotApplicable",
    "PCALearner",
    "PropensityScoreLearner",
    "cli_main",
    "diagvi_unavailable_reason",
    "eval_matrix",
    "feature_links",
    "headline_table",
    "heldout_label_folds",
    "iter_splits",
    "load_config",
    "load_dataset",
    "lower_is_better",
    "make_learner",
    "plot_landscape",
    "rank_aligners",
    "rank_learners",
    "run",
    "score_coupling",
    "score_translation",
    "split_heldout_labels",
    "summarize",
    "tune",
    "wilcoxon_vs_best",
    "write_report",
]
