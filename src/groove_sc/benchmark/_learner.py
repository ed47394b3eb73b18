"""The benchmark's learner interface and registry.

A learner is fitted on weakly paired training cells and embeds the cells of each modality
(:class:`Learner`: ``fit(train, label_key, seed)``, ``transform(mdata) -> {modality: array}``).
Each kind lives in its own module and registers a factory with :func:`register_learner`
(``_groove.py``, ``_vae.py``, ``_propensity.py``, ``_pca.py``, ``_diagvi.py``); the benchmark
builds learners by name with :func:`make_learner`.
"""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from mudata import MuData
from scipy import sparse
from sklearn.preprocessing import StandardScaler

__all__ = [
    "LEARNERS",
    "Learner",
    "LearnerNotApplicable",
    "dense_features",
    "make_learner",
    "options",
    "register_learner",
    "standardiser",
]


def dense_features(x: Any) -> np.ndarray:
    """Cells x features as a dense float64 array (sparse matrices densified)."""
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def options(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A learner's options from the ``locals()`` of its ``__init__`` (``self``, ``name`` out).

    Examples
    --------
    >>> def __init__(self, name="mine", *, n_latent=8):
    ...     super().__init__(name, **options(locals()))
    """
    return {k: v for k, v in arguments.items() if k not in ("self", "name", "__class__")}


def standardiser(x: np.ndarray) -> StandardScaler:
    """Per-feature standardisation fitted on training cells (constant features kept at 0)."""
    return StandardScaler().fit(x)


class LearnerNotApplicable(Exception):
    """Raised by :meth:`Learner.fit` when the learner does not apply to the data.

    The benchmark records it as ``not_applicable`` rows whose ``error`` column holds the reason
    (e.g. DIAGVI on a dataset without feature links), never as a failure.
    """


class Learner(ABC):
    """A representation learner: fitted on weakly paired data, it embeds cells of each modality.

    Subclasses implement :meth:`_fit` and :meth:`_transform`. ``shared_space`` tells whether
    the two modalities are embedded into one space (needed by ``sinkhorn``, ``emd``, ``fgw``
    and by the latent metrics); ``pca`` has none.

    Parameters
    ----------
    name
        Name used in the results table.
    **params
        Learner options (see each subclass).
    """

    #: Whether both modalities are embedded into one shared space.
    shared_space: bool = True
    #: Whether the learner can train on three or more modalities (the dataset's
    #: ``extra_modalities``, with the learner option ``extra_modalities: true``).
    multimodal: bool = False

    def __init__(self, name: str | None = None, **params: Any):
        self.name = name or type(self).__name__
        self.params = dict(params)
        self.modalities: list[str] = []
        self.fit_seconds: float = float("nan")
        #: ``obs_names`` of the cells the fit trained on, per modality (``None``: all of them)
        self.training_obs_names: dict[str, np.ndarray] | None = None
        #: scores the fit reports about itself (e.g. ``label_transfer_validation``)
        self.fit_metrics: dict[str, float] = {}

    def fit(self, train: MuData, label_key: str, seed: int = 0) -> Learner:
        """Fit on a weakly paired MuData (two modalities of different cells).

        Parameters
        ----------
        train
            Training data; it is not modified. Three or more modalities only for a
            :attr:`multimodal` learner.
        label_key
            Label column of each modality's ``.obs``.
        seed
            Seed of every random choice of the fit.

        Returns
        -------
        ``self``.
        """
        if len(train.mod) != 2 and not (self.multimodal and len(train.mod) > 2):
            raise ValueError(f"`train` must have exactly two modalities, got {list(train.mod)}.")
        self.modalities = list(train.mod)
        start = time.perf_counter()
        self._fit(train, label_key, seed)
        self.fit_seconds = time.perf_counter() - start
        return self

    @property
    def uses_extra_modalities(self) -> bool:
        """Whether the learner trains on the dataset's ``extra_modalities`` too."""
        return bool(self.multimodal and self.params.get("extra_modalities", False))

    def transform(self, mdata: MuData) -> dict[str, np.ndarray]:
        """Embed every cell of each modality of ``mdata``.

        Returns
        -------
        ``{modality: array (n_cells, d_m)}``; ``d_m`` is the same for both modalities when
        :attr:`shared_space`.
        """
        if not self.modalities:
            raise RuntimeError(f"Learner {self.name!r} is not fitted; call fit() first.")
        return {m: np.asarray(z, dtype=np.float32) for m, z in self._transform(mdata).items()}

    #: Whether the learner has decoders (:meth:`translate`), used by the ``decoder`` aligner.
    can_translate: bool = False

    def translate(self, mdata: MuData, source: str, target: str) -> np.ndarray:
        """Predict each ``source`` cell's profile in ``target`` through the decoders.

        Only for learners with decoders (:attr:`can_translate`); the prediction is in the
        target's feature space (``.X`` units).

        Returns
        -------
        Array ``(n_source_cells, n_target_features)``.
        """
        raise NotImplementedError(f"learner {self.name!r} has no decoders to translate with.")

    @abstractmethod
    def _fit(self, train: MuData, label_key: str, seed: int) -> None: ...

    @abstractmethod
    def _transform(self, mdata: MuData) -> dict[str, np.ndarray]: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, params={self.params})"


#: Learner kinds: name -> factory ``f(name, **params) -> Learner``; filled by
#: :func:`register_learner` in each learner's module.
LEARNERS: dict[str, Callable[..., Learner]] = {}
#: Per kind: learner defaults renamed for it (``pca`` reads ``n_latent`` as ``n_comps``).
_RENAMED_DEFAULTS: dict[str, dict[str, str]] = {}
#: Per kind: learner defaults it never takes although it has an option of that name (GROOVE's
#: ``kl_weight`` or ``likelihood`` mean something else to another learner).
_IGNORED_DEFAULTS: dict[str, set[str]] = {}


def register_learner(
    kind: str,
    factory: Callable[..., Learner],
    *,
    renamed_defaults: Mapping[str, str] | None = None,
    ignored_defaults: Iterable[str] = (),
) -> None:
    """Make a learner kind known to the benchmark (``learners: {name: {kind: KIND}}``).

    Parameters
    ----------
    kind
        Name of the kind in configurations.
    factory
        ``factory(name, **params) -> Learner``: a :class:`Learner` subclass, or a function.
    renamed_defaults
        ``learner_defaults`` this kind takes under another name (e.g.
        ``{"n_latent": "n_comps"}``); used unless the learner's own options set it.
    ignored_defaults
        ``learner_defaults`` never passed to this kind (the learner's own options still are).

    Examples
    --------
    >>> register_learner("my_learner", MyLearner)
    """
    LEARNERS[kind] = factory
    _RENAMED_DEFAULTS[kind] = dict(renamed_defaults or {})
    _IGNORED_DEFAULTS[kind] = set(ignored_defaults)


def _accepted(factory: Callable[..., Learner]) -> set[str] | None:
    """Keyword options a factory takes (``None``: any, it has ``**kwargs``)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = inspect.signature(target).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def make_learner(
    name: str, params: Mapping[str, Any] | None = None, defaults: Mapping[str, Any] | None = None
) -> Learner:
    """Build a learner from its name (or ``params["kind"]``) and options.

    Parameters
    ----------
    name
        Name in the results table; also the kind (a key of :data:`LEARNERS`) unless
        ``params`` has ``kind``.
    params
        Options of this learner (override ``defaults``; an option the kind does not take is
        an error).
    defaults
        Options shared by all learners (e.g. ``max_epochs``); those a kind does not take are
        dropped (``pca`` ignores ``max_epochs``, only GROOVE kinds take ``tau``).

    Returns
    -------
    The (unfitted) learner.
    """
    params = dict(params or {})
    kind = params.pop("kind", name)
    if kind not in LEARNERS:
        raise KeyError(f"Unknown learner kind {kind!r}; known: {sorted(LEARNERS)}.")
    factory = LEARNERS[kind]
    accepted = _accepted(factory)
    ignored = _IGNORED_DEFAULTS.get(kind, set())
    merged = {
        k: v
        for k, v in (defaults or {}).items()
        if (accepted is None or k in accepted) and k not in ignored
    }
    for old, new in _RENAMED_DEFAULTS.get(kind, {}).items():
        if old in (defaults or {}):
            merged.setdefault(new, defaults[old])
    merged.update(params)
    return factory(name, **merged)
