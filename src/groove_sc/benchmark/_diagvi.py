"""DIAGVI (scvi-tools' model for unpaired modalities) as a benchmark learner.

:class:`scvi.external.DIAGVI` (scvi-tools >= 1.4.3, with ``geomloss`` and ``torch-geometric``;
the optional extra ``groove-sc[diagvi]``) trains one VAE per modality, links the two decoders
through a guidance graph of corresponding features and aligns the two latent distributions by
an unbalanced Sinkhorn divergence between mini-batches. Labels, when given, feed a classifier
head per modality (and optionally a mixture prior per modality); they never restrict which cells
are aligned to which. The guidance graph needs feature links between the modalities: without
them the learner does not apply (:class:`~groove_sc.benchmark.LearnerNotApplicable`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData

from ..data import default_validation_cells
from ._learner import (
    Learner,
    LearnerNotApplicable,
    dense_features,
    options,
    register_learner,
    standardiser,
)

__all__ = [
    "DIAGVI_INSTALL",
    "DiagviLearner",
    "DiagviUnavailableError",
    "diagvi_unavailable_reason",
    "feature_links",
]

#: The command that installs what the ``diagvi`` learner needs.
DIAGVI_INSTALL = 'pip install "groove-sc[diagvi]"'
#: First scvi-tools release that ships :class:`scvi.external.DIAGVI`.
DIAGVI_MIN_SCVI = "1.4.3"


class DiagviUnavailableError(ImportError):
    """DIAGVI or one of its dependencies cannot be imported (the message says what to install)."""


def diagvi_unavailable_reason() -> str | None:
    """Why the ``diagvi`` learner cannot run in this environment.

    Returns
    -------
    ``None`` when :class:`scvi.external.DIAGVI`, ``geomloss`` and ``torch_geometric`` can all
    be imported; otherwise a message naming what is missing and the install command
    (:data:`DIAGVI_INSTALL`).
    """
    problems = []
    try:
        from scvi.external import DIAGVI  # noqa: F401
    except ImportError:
        try:
            import scvi

            version = scvi.__version__
        except ImportError:  # pragma: no cover - scvi-tools is a dependency
            version = "not installed"
        problems.append(f"scvi-tools {version} has no scvi.external.DIAGVI")
    for module, package in (("geomloss", "geomloss"), ("torch_geometric", "torch-geometric")):
        if importlib.util.find_spec(module) is None:
            problems.append(f"{package} is not installed")
    if not problems:
        return None
    return (
        f"DIAGVI is unavailable: {'; '.join(problems)}. scvi-tools >= {DIAGVI_MIN_SCVI} ships "
        f"DIAGVI (scvi.external.DIAGVI), which also needs geomloss and torch-geometric; "
        f"install them with: {DIAGVI_INSTALL}"
    )


def _link_column(values: pd.Series, targets: pd.Index) -> bool:
    """Whether a ``var`` column names features of the other modality (every non-empty entry)."""
    if not (
        pd.api.types.is_object_dtype(values)
        or isinstance(values.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(values)
    ):
        return False
    v = values.dropna().astype(str)
    v = v[v != ""]
    return len(v) > 0 and bool(v.isin(targets).all())


def feature_links(
    mods: Mapping[str, AnnData],
    links: str | Mapping[str, str] | pd.DataFrame = "auto",
) -> pd.DataFrame:
    """Pairs of corresponding features of two modalities (the edges of DIAGVI's guidance graph).

    Parameters
    ----------
    mods
        The two modalities, ``{name: AnnData}`` (e.g. ``mdata.mod``).
    links
        Where the links come from:

        - ``"auto"`` (default): every ``var`` column of either modality whose non-empty entries
          all name features of the other modality, e.g. CITE-seq's ``var["matched_adt"]`` on
          the genes and ``var["matched_gene"]`` on the proteins; the pairs of both directions
          are pooled. Identical feature names are *not* links here (``"var_names"`` makes them
          so): names such as ``"0"``, ``"1"`` of two embeddings carry no correspondence.
        - ``"var_names"``: features with the same name in both modalities (what DIAGVI builds
          when it is given no mapping).
        - ``{modality: column}``: those ``var`` columns, each naming features of the other
          modality.
        - a DataFrame with one column per modality: the pairs themselves.

    Returns
    -------
    DataFrame with one column per modality (in the order of ``mods``), one row per linked pair,
    without duplicates, sorted; empty when there is no link. Pairs naming a feature that is
    absent from its modality are dropped.

    Raises
    ------
    ValueError
        When ``mods`` does not hold two modalities, ``links`` names an unknown column or
        modality, or is not one of the forms above.
    """
    names = list(mods)
    if len(names) != 2:
        raise ValueError(f"feature_links needs two modalities, got {names}.")
    a, b = names
    var = {m: pd.Index(mods[m].var_names.astype(str)) for m in names}
    pairs: list[tuple[str, str]] = []

    def add(source: str, column: pd.Series) -> None:
        for src, dst in column.dropna().astype(str).items():
            if dst == "":
                continue
            pairs.append((str(src), dst) if source == a else (dst, str(src)))

    if isinstance(links, pd.DataFrame):
        missing = [m for m in names if m not in links.columns]
        if missing:
            raise ValueError(f"the link table has no column for {missing}; it needs {names}.")
        pairs = [(str(x), str(y)) for x, y in links[[a, b]].dropna().itertuples(index=False)]
    elif isinstance(links, Mapping):
        for m, col in links.items():
            if m not in names:
                raise ValueError(f"links names modality {m!r}; the modalities are {names}.")
            if col not in mods[m].var.columns:
                raise ValueError(f"modality {m!r} has no var column {col!r}.")
            add(m, mods[m].var[col].set_axis(var[m]))
    elif links == "auto":
        for m, other in ((a, b), (b, a)):
            for col in mods[m].var.columns:
                column = mods[m].var[col].set_axis(var[m])
                if _link_column(column, var[other]):
                    add(m, column)
    elif links == "var_names":
        pairs = [(f, f) for f in var[a] if f in set(var[b])]
    else:
        raise ValueError(
            f"links must be 'auto', 'var_names', a {{modality: column}} mapping or a DataFrame; "
            f"got {links!r}."
        )
    out = pd.DataFrame(pairs, columns=[a, b]).drop_duplicates()
    out = out[out[a].isin(var[a]) & out[b].isin(var[b])]
    return out.sort_values([a, b]).reset_index(drop=True)


class DiagviLearner(Learner):
    """DIAGVI (:class:`scvi.external.DIAGVI`) as a benchmark learner (extra ``diagvi``).

    The guidance graph links the features that :func:`feature_links` pairs (on CITE-seq, each
    gene with the protein it codes), built with
    :meth:`scvi.external.DIAGVI.construct_custom_guidance_graph` (edge weight and sign 1).
    Each modality's features are standardised on its training cells (the input every learner
    of the benchmark reads) and modelled with DIAGVI's ``"normal"`` likelihood, without library
    size normalisation. The labels are registered as DIAGVI's ``labels_key`` of each modality
    (its classifier head; with ``gmm_prior`` also its mixture prior). The embedding is the mean
    of DIAGVI's encoder posterior ``q(z | x)`` (what DIAGVI's documentation says
    ``get_latent_representation`` returns; in scvi-tools 1.4.3 that method returns one sample).

    Without feature links :meth:`fit` raises
    :class:`~groove_sc.benchmark.LearnerNotApplicable`, recorded by the benchmark as
    ``not_applicable`` rows with the reason; where DIAGVI cannot be imported it raises
    :class:`DiagviUnavailableError` with the install command (``failed`` rows).

    Parameters
    ----------
    name
        Name in the results table.
    links
        Feature links, see :func:`feature_links`.
    n_latent, n_hidden, n_layers, dropout_rate
        Passed to :class:`scvi.external.DIAGVI` (its defaults except ``n_latent``, which the
        benchmark sets for every learner).
    max_epochs
        Epochs at most; ``None``: :func:`scvi.model.get_max_epochs_heuristic` on the larger
        modality, as GROOVE does.
    n_steps
        Training steps instead (converted to epochs of ``ceil(max(n_a, n_b) / batch_size)``
        steps).
    batch_size, lr
        Passed to :meth:`scvi.external.DIAGVI.train`.
    validation_size
        Fraction of each modality's cells held out for validation; ``None``: as many as GROOVE
        holds out (:func:`groove_sc.data.default_validation_cells` of the smaller modality);
        ``0``: none (and no early stopping).
    early_stopping, early_stopping_patience
        Early stopping on DIAGVI's ``validation_loss`` (its default monitor), with GROOVE's
        patience (DIAGVI's own default is 10).
    use_labels
        Register the labels (``labels_key``); ``False`` trains DIAGVI without them.
    gmm_prior
        DIAGVI's Gaussian-mixture prior (one component per label) in both modalities.
    likelihood
        DIAGVI likelihood of both modalities (``"normal"`` for standardised features).
    plan_kwargs
        Passed to DIAGVI's training plan (``lam_sinkhorn``, ``lam_class``, ...).
    accelerator
        Lightning accelerator (default ``"cpu"``).
    """

    can_translate = False

    def __init__(
        self,
        name: str | None = "diagvi",
        *,
        links: str | Mapping[str, str] | pd.DataFrame = "auto",
        n_latent: int = 16,
        n_hidden: int = 256,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        max_epochs: int | None = None,
        n_steps: int | None = None,
        batch_size: int = 256,
        lr: float = 1e-3,
        validation_size: float | None = None,
        early_stopping: bool | None = None,
        early_stopping_patience: int = 20,
        use_labels: bool = True,
        gmm_prior: bool = False,
        likelihood: str = "normal",
        plan_kwargs: Mapping[str, Any] | None = None,
        accelerator: str = "cpu",
    ):
        plan_kwargs = dict(plan_kwargs or {})
        super().__init__(name, **options(locals()))
        self.model = None
        self.links: pd.DataFrame | None = None
        #: epochs DIAGVI trained for (early stopping may end it before ``max_epochs``)
        self.n_epochs_: int | None = None

    def _train_size(self, n_cells: int) -> float:
        size = self.params["validation_size"]
        if size is None:
            return 1.0 - default_validation_cells(n_cells) / n_cells
        if not 0 <= size < 1:
            raise ValueError(f"`validation_size` must be in [0, 1), got {size!r}.")
        return 1.0 - float(size)

    def _fit(self, train: MuData, label_key: str, seed: int) -> None:
        p = self.params
        links = feature_links(train.mod, p["links"])
        if links.empty:
            raise LearnerNotApplicable(
                f"DIAGVI needs feature links between {self.modalities} for its guidance graph "
                f"and this dataset has none (links={p['links']!r}: no var column of one modality "
                "names the other's features)."
            )
        reason = diagvi_unavailable_reason()
        if reason is not None:
            raise DiagviUnavailableError(reason)
        import scvi
        from scvi.external import DIAGVI
        from scvi.model import get_max_epochs_heuristic

        self.links = links
        self.scalers, adatas = {}, {}
        for m in self.modalities:
            x = dense_features(train.mod[m].X)
            self.scalers[m] = standardiser(x)
            obs = pd.DataFrame(index=train.mod[m].obs_names.copy())
            if p["use_labels"]:
                obs[label_key] = train.mod[m].obs[label_key].astype(str).astype("category")
            adatas[m] = AnnData(
                X=self.scalers[m].transform(x).astype(np.float32),
                obs=obs,
                var=pd.DataFrame(index=train.mod[m].var_names.astype(str)),
            )
        sizes = [a.n_obs for a in adatas.values()]
        epochs = p["max_epochs"]
        if p["n_steps"] is not None:
            steps_per_epoch = max(1, math.ceil(max(sizes) / p["batch_size"]))
            epochs = max(1, round(int(p["n_steps"]) / steps_per_epoch))
        if epochs is None:
            epochs = get_max_epochs_heuristic(max(sizes))
        train_size = self._train_size(min(sizes))
        early = p["early_stopping"]
        early = train_size < 1.0 if early is None else bool(early)
        if early and train_size >= 1.0:
            raise ValueError("early_stopping needs validation cells (validation_size > 0).")
        sink = io.StringIO()  # DIAGVI's Trainer always shows a progress bar
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            warnings.simplefilter("ignore")
            for a in adatas.values():
                DIAGVI.setup_anndata(
                    a,
                    labels_key=label_key if p["use_labels"] else None,
                    likelihood=p["likelihood"],
                    normalize_lib=False,
                    gmm_prior=p["gmm_prior"],
                )
            graph = DIAGVI.construct_custom_guidance_graph(adatas, links)
            scvi.settings.seed = int(seed)
            self.model = DIAGVI(
                adatas,
                guidance_graph=graph,
                n_latent=p["n_latent"],
                n_hidden=p["n_hidden"],
                n_layers=p["n_layers"],
                dropout_rate=p["dropout_rate"],
            )
            self.model.train(
                max_epochs=int(epochs),
                lr=p["lr"],
                batch_size=p["batch_size"],
                train_size=train_size,
                accelerator=p["accelerator"],
                devices=1,
                plan_kwargs=dict(p["plan_kwargs"]),
                early_stopping=early,
                early_stopping_patience=p["early_stopping_patience"],
                enable_checkpointing=False,
                enable_model_summary=False,
            )
        self.n_epochs_ = int(self.model.trainer.current_epoch)
        self.training_obs_names = {
            m: np.asarray(adatas[m].obs_names[np.asarray(idx, dtype=int)])
            for m, idx in zip(self.modalities, self.model.train_indices_)
        }

    @torch.inference_mode()
    def _transform(self, mdata: MuData) -> dict[str, np.ndarray]:
        module = self.model.module
        module.eval()
        device = next(module.parameters()).device
        out = {}
        for m in self.modalities:
            x = self.scalers[m].transform(dense_features(mdata.mod[m].X)).astype(np.float32)
            chunks = []
            for start in range(0, len(x), 4096):
                xt = torch.as_tensor(x[start : start + 4096], device=device)
                chunks.append(module.inference(xt, mode=m, deterministic=True)["z"].cpu().numpy())
            out[m] = (
                np.concatenate(chunks)
                if chunks
                else np.zeros((0, self.params["n_latent"]), dtype=np.float32)
            )
        return out


register_learner("diagvi", DiagviLearner, ignored_defaults={"likelihood"})
