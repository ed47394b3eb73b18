"""The benchmark configuration: typed dataclasses read from YAML, validated in one place.

Every error names the option it concerns (``datasets.citeseq.label_key``, ``aligners.gw``)
and, for a dataset option, the dataset (:class:`ConfigError`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ._learner import make_learner

__all__ = [
    "DEFAULT_ALIGNERS",
    "DEFAULT_LEARNERS",
    "EVAL_SPACES",
    "LOADERS",
    "PROTOCOLS",
    "BenchmarkConfig",
    "ConfigError",
    "DatasetConfig",
    "Preprocess",
    "load_config",
]

#: Dataset loaders by name (``loader:``); a string ``"package.module:function"`` names a
#: callable instead.
LOADERS = ("simulate", "snareseq", "citeseq_pbmc", "papalexi_two_view", "h5mu")
#: Evaluation protocols (see :func:`groove_sc.benchmark.iter_splits`).
PROTOCOLS = ("heldout_cells", "heldout_labels")
#: Feature spaces for the barycentric FOSCTTM and the imputation metrics.
EVAL_SPACES = ("X", "standardize", "l2")
#: Learners of a configuration without ``learners``.
DEFAULT_LEARNERS = [
    "groove",
    "groove_no_groupclip",
    "groove_no_backtranslation",
    "autoencoder",
    "clip_random_pairs",
    "vae_adversarial",
    "propensity_score",
    "pca",
]
#: Aligners of a configuration without ``aligners``.
DEFAULT_ALIGNERS = {
    "uniform": {"method": "uniform"},
    "sinkhorn": {"method": "sinkhorn"},
    "emd": {"method": "emd"},
    "gw": {"method": "gw"},
    "fgw": {"method": "fgw"},
    "coot": {"method": "coot"},
}


class ConfigError(KeyError, ValueError):
    """A configuration option is missing or wrong; :attr:`option` names it.

    A :class:`KeyError` and a :class:`ValueError` (the errors the options raised before), whose
    message is not quoted.

    Parameters
    ----------
    option
        Dotted path of the option, e.g. ``"datasets.citeseq.modalities"``.
    message
        What is wrong and how to fix it.
    """

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option

    def __str__(self) -> str:
        return str(self.args[0])


class _Record:
    """Read-only mapping access (``cfg["seeds"]``) on a configuration dataclass."""

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """The option ``key``, or ``default`` when the dataclass has no such field."""
        return getattr(self, key, default)

    def keys(self) -> list[str]:
        """The option names."""
        return [f.name for f in fields(self)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


#: Preprocessing steps, in the order they run.
PREPROCESS_STEPS = (
    "layer",
    "normalize_total",
    "log1p",
    "highly_variable_genes",
    "clr",
    "scale",
    "pca",
)


@dataclass
class Preprocess(_Record):
    """Preprocessing of one modality (scanpy / muon do the work), in this order.

    Attributes
    ----------
    layer
        Start from this layer instead of ``.X`` (e.g. ``counts``).
    normalize_total
        Scale each cell to this total (:func:`scanpy.pp.normalize_total`; ``true``: 1e4).
    log1p
        :func:`scanpy.pp.log1p`.
    highly_variable_genes
        Keep this many highly variable features (:func:`scanpy.pp.highly_variable_genes`,
        ``flavor="seurat"`` on the log-normalised values).
    clr
        Centred log-ratio per cell (:func:`muon.prot.pp.clr`, the usual protein transform).
    scale
        Centre each feature and scale it to unit variance (:func:`scanpy.pp.scale`).
    pca
        Replace the features by this many principal components (:func:`scanpy.pp.pca`).
    """

    layer: str | None = None
    normalize_total: float | None = None
    log1p: bool = False
    highly_variable_genes: int | None = None
    clr: bool = False
    scale: bool = False
    pca: int | None = None

    def steps(self) -> list[str]:
        """The steps that run, in order."""
        return [s for s in PREPROCESS_STEPS if getattr(self, s) not in (None, False)]


@dataclass
class DatasetConfig(_Record):
    """One dataset of the benchmark (jointly measured cells, so the truth is known).

    Attributes
    ----------
    name
        Name in the results table.
    loader
        ``simulate``, ``snareseq``, ``citeseq_pbmc``, ``papalexi_two_view``, ``h5mu`` (with
        ``params: {path: FILE}``; ``{seed}`` in the path reads one file per seed) or a
        callable ``f(seed=..., **params) -> MuData`` (in YAML: ``"package.module:function"``).
    label_key
        Label column of each modality's ``.obs``.
    eval_label_key
        Label column of the label-transfer metrics (default ``label_key``).
    params
        Keyword arguments of the loader.
    settings
        Setting name -> more loader arguments (the setting varied).
    data_seed
        ``"run"``: the seed of the run is the data seed (simulations, per-seed files); an
        int: the same data for every seed.
    subsample_per_label
        Keep at most this many cells per label (random, seeded).
    log1p
        Normalise to 1e4 per cell and take ``log1p`` in every modality (the older, global
        form of ``preprocess``).
    modalities
        Keep these two modalities (default: all, which must be two); they are the pair that is
        split, matched and scored.
    extra_modalities
        More modalities kept for training only (needs ``modalities``): their cells outside the
        scored pair's test cells go to the training data of the learners with
        ``extra_modalities: true`` (see :func:`~groove_sc.benchmark.iter_splits`); the other
        learners and every score use the pair only.
    preprocess
        Modality -> :class:`Preprocess`.
    extra_eval_spaces
        Also score the space metrics in these spaces (``standardize``, ``l2``).
    protocols
        The protocols run on this dataset (default: all of the configuration's).
    protocol_options
        Protocol -> options overriding the configuration's for this dataset.
    """

    name: str
    loader: str | Callable[..., Any]
    label_key: str
    eval_label_key: str
    params: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=lambda: {"": {}})
    data_seed: str | int = 0
    subsample_per_label: int | None = None
    log1p: bool = False
    modalities: list[str] | None = None
    extra_modalities: list[str] = field(default_factory=list)
    preprocess: dict[str, Preprocess] = field(default_factory=dict)
    extra_eval_spaces: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)
    protocol_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def option(self, name: str) -> str:
        """The dotted path of one of this dataset's options (for error messages)."""
        return f"datasets.{self.name}.{name}"


@dataclass
class BenchmarkConfig(_Record):
    """A benchmark configuration (see :func:`load_config` for the YAML form).

    Attributes
    ----------
    name
        Used in output names.
    seeds
        Each seed: data (simulations), split, learner initialisation and training.
    n_threads
        Torch CPU threads during the run.
    protocols
        Protocol -> options.
    datasets
        The datasets.
    learner_defaults
        Options shared by every learner (those a kind does not take are dropped).
    learners
        Name -> options (``kind`` when the name is not a kind).
    aligners
        Name -> :func:`groove_sc.tl.align` arguments (``learners``: run only with those).
    """

    name: str
    seeds: list[int]
    n_threads: int | None
    protocols: dict[str, dict[str, Any]]
    datasets: list[DatasetConfig]
    learner_defaults: dict[str, Any]
    learners: dict[str, dict[str, Any]]
    aligners: dict[str, dict[str, Any]]

    def protocol_options(self, dataset: DatasetConfig, protocol: str) -> dict[str, Any]:
        """The options of ``protocol`` on ``dataset`` (the dataset's override the global)."""
        return {**self.protocols[protocol], **dataset.protocol_options.get(protocol, {})}

    def folds(self, dataset: DatasetConfig, protocol: str) -> list[int]:
        """The folds of ``protocol`` run on ``dataset`` (``[0]`` for held-out cells)."""
        if protocol == "heldout_cells":
            return [0]
        opts = self.protocol_options(dataset, protocol)
        if opts.get("folds") is not None:
            return [int(f) for f in opts["folds"]]
        return list(range(int(opts.get("n_folds", 5))))

    def aligners_for(self, learner: str) -> dict[str, dict[str, Any]]:
        """The aligners run with ``learner``, without their ``learners`` option."""
        return {
            name: {k: v for k, v in params.items() if k != "learners"}
            for name, params in self.aligners.items()
            if params.get("learners") is None or learner in params["learners"]
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``config_resolved.yaml``); a callable loader is written by name."""
        out = asdict(self)
        for d, ds in zip(out["datasets"], self.datasets):
            if callable(ds.loader):
                d["loader"] = f"{ds.loader.__module__}:{ds.loader.__qualname__}"
        return out


# --------------------------------------------------------------------------------------------
def _mapping(value: Any, option: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(option, f"must be a mapping, got {type(value).__name__} {value!r}.")
    return dict(value)


def _preprocess(value: Any, option: str) -> dict[str, Preprocess]:
    out = {}
    known = {f.name for f in fields(Preprocess)}
    for mod, steps in _mapping(value, option).items():
        steps = _mapping(steps, f"{option}.{mod}")
        unknown = sorted(set(steps) - known)
        if unknown:
            raise ConfigError(
                f"{option}.{mod}",
                f"unknown preprocessing steps {unknown}; known: {list(PREPROCESS_STEPS)}.",
            )
        if steps.get("normalize_total") is True:
            steps["normalize_total"] = 1e4
        for step in ("highly_variable_genes", "pca"):
            n = steps.get(step)
            if n is not None and (isinstance(n, bool) or int(n) < 1):
                raise ConfigError(f"{option}.{mod}.{step}", f"must be a positive int, got {n!r}.")
        out[str(mod)] = Preprocess(**steps)
    return out


def _extra_modalities(value: Any, modalities: list[str] | None, where: str) -> list[str]:
    """The dataset's ``extra_modalities``, checked against its scored pair ``modalities``."""
    option = f"{where}.extra_modalities"
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(option, f"must be a list of modality names, got {value!r}.")
    extra = [str(m) for m in value]
    if not extra:
        return []
    if modalities is None:
        raise ConfigError(
            option,
            "needs `modalities: [A, B]` beside it (the pair that is split and scored); the "
            "extra modalities only train.",
        )
    if len(set(extra)) != len(extra):
        raise ConfigError(option, f"names a modality twice: {extra}.")
    both = [m for m in extra if m in modalities]
    if both:
        raise ConfigError(
            option,
            f"names {both}, which are already in `modalities` ({modalities}); an extra "
            "modality is one that is not scored.",
        )
    return extra


def _dataset(entry: Mapping[str, Any], cfg_protocols: Mapping[str, Any]) -> DatasetConfig:
    d = dict(entry)
    if "name" not in d:
        raise ConfigError("datasets", f"a dataset entry has no `name`: {d}.")
    name = str(d["name"])
    where = f"datasets.{name}"
    known = {f.name for f in fields(DatasetConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(where, f"unknown options {unknown}; known: {sorted(known)}.")
    loader = d.get("loader", name)
    if not callable(loader) and loader not in LOADERS and ":" not in str(loader):
        raise ConfigError(
            f"{where}.loader",
            f"unknown loader {loader!r}; known: {list(LOADERS)}, or a Python callable "
            "'package.module:function' returning a MuData.",
        )
    if "label_key" not in d:
        raise ConfigError(f"{where}.label_key", f"dataset {name!r} needs `label_key`.")
    settings = d.get("settings") or {"": {}}
    if isinstance(settings, (list, tuple)):
        settings = {str(s.get("name", i)): dict(s.get("params", s)) for i, s in enumerate(settings)}
    settings = {str(k): _mapping(v, f"{where}.settings.{k}") for k, v in settings.items()}
    spaces = list(d.get("extra_eval_spaces") or [])
    for space in spaces:
        if space not in EVAL_SPACES or space == "X":
            raise ConfigError(
                f"{where}.extra_eval_spaces",
                f"dataset {name!r}: unknown extra_eval_spaces entry {space!r}; "
                "known: 'standardize', 'l2'.",
            )
    protocols = list(d.get("protocols") or cfg_protocols)
    for p in protocols:
        if p not in cfg_protocols:
            raise ConfigError(
                f"{where}.protocols",
                f"dataset {name!r} asks for protocol {p!r}, which is not in `protocols` "
                f"({list(cfg_protocols)}).",
            )
    modalities = d.get("modalities")
    if modalities is not None:
        modalities = [str(m) for m in modalities]
        if len(modalities) != 2:
            raise ConfigError(
                f"{where}.modalities", f"must name exactly two modalities, got {modalities}."
            )
    extra = _extra_modalities(d.get("extra_modalities"), modalities, where)
    data_seed = d.get("data_seed")
    if data_seed is None:
        file_per_seed = "{seed}" in str(_mapping(d.get("params"), f"{where}.params").get("path"))
        data_seed = "run" if loader == "simulate" or callable(loader) or file_per_seed else 0
    if data_seed != "run":
        data_seed = int(data_seed)
    return DatasetConfig(
        name=name,
        loader=loader,
        label_key=str(d["label_key"]),
        eval_label_key=str(d.get("eval_label_key") or d["label_key"]),
        params=_mapping(d.get("params"), f"{where}.params"),
        settings=settings,
        data_seed=data_seed,
        subsample_per_label=d.get("subsample_per_label"),
        log1p=bool(d.get("log1p", False)),
        modalities=modalities,
        extra_modalities=extra,
        preprocess=_preprocess(d.get("preprocess"), f"{where}.preprocess"),
        extra_eval_spaces=spaces,
        protocols=protocols,
        protocol_options={
            str(p): _mapping(o, f"{where}.protocol_options.{p}")
            for p, o in _mapping(d.get("protocol_options"), f"{where}.protocol_options").items()
        },
    )


def _check_extra_option(
    name: str,
    params: Mapping[str, Any],
    defaults: Mapping[str, Any],
    datasets: list[DatasetConfig],
) -> None:
    """A learner's ``extra_modalities`` option: a bool, for a kind that trains on 3+ modalities."""
    if "extra_modalities" not in params and "extra_modalities" not in defaults:
        return
    option = f"learners.{name}.extra_modalities"
    value = params.get("extra_modalities", defaults.get("extra_modalities"))
    if not isinstance(value, bool):
        raise ConfigError(
            option,
            f"must be true or false, got {value!r} (the modalities themselves are named by "
            "the dataset's `extra_modalities`).",
        )
    probe = {k: v for k, v in params.items() if k != "extra_modalities"}
    probe_defaults = {k: v for k, v in defaults.items() if k != "extra_modalities"}
    try:
        learner = make_learner(name, probe, probe_defaults)
    except (KeyError, TypeError):
        return  # the unknown kind or option is reported by the caller
    if "extra_modalities" in params and not learner.multimodal:
        raise ConfigError(
            option,
            f"learner {name!r} ({type(learner).__name__}) trains on two modalities only; "
            "GROOVE kinds (groove, groove_no_groupclip, groove_no_backtranslation, "
            "autoencoder, clip_random_pairs) take `extra_modalities: true`.",
        )
    if value and learner.multimodal and not any(d.extra_modalities for d in datasets):
        raise ConfigError(
            option,
            "is true, but no dataset has `extra_modalities`; give a dataset "
            "`modalities: [A, B]` (the scored pair) and `extra_modalities: [C]`.",
        )


def load_config(config: str | Path | Mapping[str, Any] | BenchmarkConfig) -> BenchmarkConfig:
    """Read (YAML file) and validate a benchmark configuration.

    A configuration is a mapping with the keys below (all but ``datasets`` optional)::

        name: simulation            # used in output names
        seeds: [0, 1, 2, 3, 4]      # each seed: data (simulate), split, learner init/training
        n_threads: 1                # torch CPU threads during the run
        protocols:                  # protocol -> options (default: heldout_cells only)
          heldout_cells: {test_size: 0.2}
          heldout_labels: {n_folds: 5, folds: [0, 1], keep_labels: [control]}
        datasets:                   # name -> options (or a list of mappings with `name`)
          simulation:
            loader: simulate        # simulate | snareseq | citeseq_pbmc | papalexi_two_view
                                    # | h5mu | "package.module:function" (or a callable)
            label_key: perturbation
            eval_label_key: perturbation_true   # label for the label-transfer metrics
            params: {n_perturbations: 20}       # loader keyword arguments
            settings:                           # setting name -> extra loader arguments
              rho=1.0: {shared_fraction: 1.0}
            data_seed: run          # "run": the seed of the run (simulate, callables,
                                    # per-seed files); an int: fixed
            subsample_per_label: null
            modalities: [rna, protein]          # keep these two modalities (scored)
            extra_modalities: [atac]  # kept for training only, by learners that ask for it
            preprocess:             # per modality, scanpy doing the work, in this order
              rna: {layer: counts, normalize_total: 1e4, log1p: true,
                    highly_variable_genes: 2000, scale: true, pca: 50}
              protein: {clr: true}
            log1p: false            # older global form: log-normalise every modality
            protocols: [heldout_cells]          # subset of the protocols for this dataset
            protocol_options: {heldout_labels: {n_folds: 4}}   # per-dataset overrides
            extra_eval_spaces: [l2]  # also score barycentric FOSCTTM/imputation in these spaces
          mine:
            loader: h5mu
            params: {path: "data/run_{seed}.h5mu"}   # one file per seed
            label_key: perturbation
        learner_defaults: {max_epochs: 100, n_latent: 16}
        learners:                   # name -> options (`kind` when the name is not a kind)
          groove: {}
          groove_previous_default: {kind: groove, beta: 1.0, tau: 0.1}
          groove_extra: {kind: groove, extra_modalities: true}  # also trains on atac
        aligners:                   # name -> groove_sc.tl.align keyword arguments
          sinkhorn: {method: sinkhorn, epsilon: 0.05}
          decoder: {method: decoder}  # imputation through the decoders (no coupling)
          auto_matching:              # truth-free choice (replicates refitted on halves)
            {method: auto, objective: matching, learners: [groove, clip_random_pairs]}

    An aligner with ``learners:`` is run only with those learners (no rows for the others).

    Parameters
    ----------
    config
        Path of a YAML file, the mapping itself, or a :class:`BenchmarkConfig` (returned as
        a copy).

    Returns
    -------
    The validated :class:`BenchmarkConfig` (defaults filled in); it also reads like the
    mapping (``cfg["datasets"][0]["settings"]``).

    Raises
    ------
    ConfigError
        (a ``KeyError`` and ``ValueError``) naming the option: unknown protocols, loaders,
        learners, preprocessing steps or missing required keys.
    """
    if isinstance(config, BenchmarkConfig):
        return copy.deepcopy(config)
    if isinstance(config, (str, Path)):
        with open(config) as fh:
            raw = yaml.safe_load(fh) or {}
        raw.setdefault("name", Path(config).stem)
    else:
        raw = dict(config)  # a callable loader is kept as it is (not deep-copied)
    seeds = raw.get("seeds", [0])
    seeds = [int(s) for s in (seeds if isinstance(seeds, (list, tuple)) else [seeds])]
    protocols = raw.get("protocols") or {"heldout_cells": {}}
    if isinstance(protocols, (list, tuple)):
        protocols = {p: {} for p in protocols}
    for p in protocols:
        if p not in PROTOCOLS:
            raise ConfigError("protocols", f"Unknown protocol {p!r}; known: {list(PROTOCOLS)}.")
    protocols = {p: copy.deepcopy(_mapping(o, f"protocols.{p}")) for p, o in protocols.items()}

    datasets = raw.get("datasets")
    if not datasets:
        raise ConfigError("datasets", "the configuration needs `datasets`.")
    if isinstance(datasets, Mapping):
        datasets = [{"name": k, **_mapping(v, f"datasets.{k}")} for k, v in datasets.items()]
    datasets = [_dataset(copy.copy(dict(d)), protocols) for d in datasets]

    learners = raw.get("learners") or DEFAULT_LEARNERS
    if isinstance(learners, (list, tuple)):
        learners = {name: {} for name in learners}
    learners = {str(k): copy.deepcopy(_mapping(v, f"learners.{k}")) for k, v in learners.items()}
    defaults = copy.deepcopy(_mapping(raw.get("learner_defaults"), "learner_defaults"))
    for name, params in learners.items():  # fail early on unknown kinds and options
        _check_extra_option(name, params, defaults, datasets)
        try:
            make_learner(name, params, defaults)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"learners.{name}", str(exc).strip("'\"")) from exc

    aligners = raw.get("aligners") or DEFAULT_ALIGNERS
    if isinstance(aligners, (list, tuple)):
        aligners = {a: {"method": a} for a in aligners}
    aligners = {
        str(k): {"method": k, **copy.deepcopy(_mapping(v, f"aligners.{k}"))}
        for k, v in aligners.items()
    }
    for name, params in aligners.items():
        only = params.get("learners")
        if only is not None:
            unknown = [x for x in only if x not in learners]
            if unknown:
                raise ConfigError(
                    f"aligners.{name}.learners",
                    f"aligner {name!r}: `learners` names {unknown}, which are not in "
                    f"`learners` ({list(learners)}).",
                )
    n_threads = raw.get("n_threads", 1)
    return BenchmarkConfig(
        name=str(raw.get("name", "benchmark")),
        seeds=seeds,
        n_threads=None if n_threads is None else int(n_threads),
        protocols=protocols,
        datasets=datasets,
        learner_defaults=defaults,
        learners=learners,
        aligners=aligners,
    )
