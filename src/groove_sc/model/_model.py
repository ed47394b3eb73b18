"""The GROOVE model: scvi-tools glue between MuData and :class:`~groove_sc.module.GrooveModule`."""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from lightning.pytorch.callbacks import ModelCheckpoint
from mudata import MuData
from scipy import sparse
from scvi.data import AnnDataManager, AnnDataManagerValidationCheck, fields
from scvi.model._utils import get_max_epochs_heuristic
from scvi.model.base import BaseModelClass
from scvi.train import SaveCheckpoint, TrainingPlan, TrainRunner

from ..data._datamodule import GrooveDataModule, PairedStepDataset
from ..data._mudata import _make_mudata, record_label_key, recorded_label_key
from ..data._split import split_disjoint
from ..data._validate import (
    check_counts,
    check_finite,
    check_mudata,
    get_matrix,
    label_column,
    looks_like_counts,
    resolve_layers,
    resolve_modalities,
)
from ..module import GrooveModule
from ..module._module import BATCH_KEY, LABELS_KEY, X_KEY
from ..train import GrooveTrainingPlan
from ..train._monitor import (
    LABEL_TRANSFER_CELLS,
    LABEL_TRANSFER_NEIGHBORS,
    LABEL_TRANSFER_REFERENCE,
    CellSample,
    LabelTransferMonitor,
    chance_label_transfer,
    sample_rows,
)
from ..train._quiet import quiet_lightning

logger = logging.getLogger(__name__)

#: obs column (in each modality) holding the labels cast to the shared vocabulary
LABELS_COLUMN = "_groove_labels"
#: What early stopping watches unless told otherwise (``beta > 0``): the GroupCLIP loss of
#: held-out cells, which generalised best in the benchmark (``docs/benchmark.md``).
DEFAULT_EARLY_STOPPING_MONITOR = "groupclip_validation"


def _registry_key(modality: str, what: str) -> str:
    return f"{modality}_{what}"


class GROOVE(BaseModelClass):
    """GROOVE: group contrastive learning for weakly paired multimodal data (Gorla et al. 2026).

    Two (or more) modalities measured in different cells, linked only by a perturbation
    label, are embedded into one latent space by one encoder/decoder per modality. Training
    alternates two optimiser steps per mini-batch: reconstruction plus ``beta`` times the
    GroupCLIP loss (positives are the other modality's cells with the same label), then
    ``alpha`` times the backtranslation loss (A -> B -> A and B -> A -> B through
    pseudo-samples). With three or more modalities GroupCLIP is the mean over the pairs of
    modalities and backtranslation runs through every ordered pair (``docs/method.md``,
    "Three or more modalities").

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    n_latent
        Dimension of the shared latent space.
    n_hidden
        Width of the hidden layers.
    n_layers
        Hidden layers of each encoder and decoder.
    dropout_rate
        Dropout in the hidden layers.
    input_dropout
        Probability of zeroing each input feature of the encoders during training (a
        denoising augmentation against memorising the training cells); ``0`` turns it off.
    likelihood
        ``"gaussian"`` (normalised features; standardised internally, MSE) or ``"nb"``
        (raw counts, negative binomial); one value for all modalities or a dict
        ``{modality: likelihood}``.
    beta
        Weight of the GroupCLIP loss (0: no GroupCLIP, an ablation).
    tau
        GroupCLIP temperature. The defaults ``beta = 0.3, tau = 0.5`` (previously ``beta = 1,
        tau = 0.1``) were chosen on the benchmark: a better latent FOSCTTM on simulated and real
        data and better couplings on simulations (``docs/benchmark.md``, "Sensitivity to beta
        and tau").
    alpha
        Weight of the backtranslation loss (0: no backtranslation, an ablation). The default
        0.3 (previously 1) and ``input_dropout = 0.2`` (previously 0) were chosen on the
        benchmark for held-out cells: they shrink the gap between the label transfer of
        training and held-out cells (memorisation) without losing the latent FOSCTTM or
        the trace ratio (``docs/benchmark.md``, "A latent that generalises").
    groupclip
        GroupCLIP variant, ``"in"`` or ``"out"``.
    contrastive
        ``"groupclip"`` (default) or ``"random_pairs"``: CLIP on random within-label 1:1
        pseudo-pairs redrawn every step (a baseline; see :class:`~groove_sc.module.GrooveModule`).
    variational
        Variational encoders with a KL term of weight ``kl_weight``.
    kl_weight
        Weight of the KL term when ``variational``.
    projection_head
        Apply GroupCLIP on a projection of the latent (SimCLR-style) instead of the latent.
    seed
        Seed of the weight initialisation.
    backtranslation_targets
        Three or more modalities only: backtranslate each modality through this many other
        modalities per training step, drawn at random every step (seeded by ``train``'s
        ``seed``), instead of through all of them (``None``, the default). The loss is the
        same in expectation and an epoch cheaper (``docs/method.md``, "Three or more
        modalities"); validation uses every pair.

    Examples
    --------
    >>> import groove_sc as gs
    >>> mdata = gs.datasets.simulate(seed=0)
    >>> train, test = gs.data.split_weakly_paired(mdata, "perturbation")
    >>> gs.model.GROOVE.setup_mudata(train, perturbation_key="perturbation")
    >>> model = gs.model.GROOVE(train)
    >>> model.train(max_epochs=50)
    >>> gs.tl.latent(model, test)
    """

    _module_cls = GrooveModule
    _training_plan_cls = GrooveTrainingPlan
    _train_runner_cls = TrainRunner

    def __init__(
        self,
        mdata: MuData,
        n_latent: int = 16,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        input_dropout: float = 0.2,
        likelihood: Literal["gaussian", "nb"] | dict[str, str] = "gaussian",
        beta: float = 0.3,
        tau: float = 0.5,
        alpha: float = 0.3,
        groupclip: Literal["in", "out"] = "in",
        contrastive: Literal["groupclip", "random_pairs"] = "groupclip",
        variational: bool = False,
        kl_weight: float = 1e-3,
        projection_head: bool = False,
        seed: int = 0,
        backtranslation_targets: int | None = None,
    ):
        for name, value in (("n_latent", n_latent), ("n_hidden", n_hidden), ("n_layers", n_layers)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        if not 0 <= dropout_rate < 1:
            raise ValueError(f"`dropout_rate` must be in [0, 1), got {dropout_rate!r}.")
        if not 0 <= input_dropout < 1:
            raise ValueError(f"`input_dropout` must be in [0, 1), got {input_dropout!r}.")
        super().__init__(mdata)
        args = self.adata_manager.registry["setup_args"]
        self.modalities: list[str] = list(args["modalities"])
        self.layers: dict[str, str | None] = dict(args["layers"])
        self.perturbation_key: str = args["perturbation_key"]
        self.batch_key: str | None = args["batch_key"]
        #: label transfer of an embedding without cross-modal structure (set by ``train``)
        self.label_transfer_chance_: float = float("nan")
        #: ``obs_names`` of the cells each modality trained on (set by ``train``)
        self.training_obs_names_: dict[str, np.ndarray] | None = None
        #: the arguments of the last ``train`` call (reused by ``train_replicates``)
        self.train_kwargs_: dict | None = None
        if isinstance(likelihood, str):
            lks = [likelihood] * len(self.modalities)
        elif isinstance(likelihood, dict):
            missing = [m for m in self.modalities if m not in likelihood]
            if missing:
                raise KeyError(f"`likelihood` has no entry for modalities {missing}.")
            lks = [likelihood[m] for m in self.modalities]
        else:
            raise TypeError("`likelihood` must be 'gaussian', 'nb' or a dict {modality: ...}.")
        for lk in lks:
            if lk not in ("gaussian", "nb"):
                raise ValueError(f"`likelihood` must be 'gaussian' or 'nb', got {lk!r}.")

        means, stds, libs, n_batch = [], [], [], []
        for m, lk in zip(self.modalities, lks):
            x = self.adata_manager.get_from_registry(_registry_key(m, "X"))
            if lk == "nb":
                check_counts(x, f"The data of modality {m!r}")
                means.append(None)
                stds.append(None)
                totals = np.asarray(x.sum(axis=1)).ravel()
                libs.append(float(max(np.median(totals), 1.0)))
            else:
                if looks_like_counts(x):
                    warnings.warn(
                        f"The data of modality {m!r} look like raw counts (non-negative "
                        "integers up to "
                        f"{float(x.max()):.0f}) but its likelihood is 'gaussian': pass "
                        f"likelihood={{{m!r}: 'nb'}} for counts, or log-normalise them first "
                        "(scanpy.pp.normalize_total and scanpy.pp.log1p).",
                        UserWarning,
                        stacklevel=2,
                    )
                mean, std = _column_mean_std(x)
                means.append(mean)
                stds.append(std)
                libs.append(1.0)
            if self.batch_key is not None:
                state = self.adata_manager.get_state_registry(_registry_key(m, "batch"))
                n_batch.append(len(state.categorical_mapping))
            else:
                n_batch.append(0)

        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.module = self._module_cls(
                [
                    int(self.adata_manager.get_from_registry(_registry_key(m, "X")).shape[1])
                    for m in self.modalities
                ],
                n_latent=n_latent,
                n_hidden=n_hidden,
                n_layers=n_layers,
                dropout_rate=dropout_rate,
                input_dropout=input_dropout,
                likelihood=lks,
                n_batch=n_batch,
                variational=variational,
                kl_weight=kl_weight,
                beta=beta,
                tau=tau,
                alpha=alpha,
                groupclip=groupclip,
                contrastive=contrastive,
                projection_head=projection_head,
                feature_mean=means,
                feature_std=stds,
                library_size=libs,
                backtranslation_targets=backtranslation_targets,
            )
        self._model_summary_string = (
            f"GROOVE model on modalities {self.modalities} ({', '.join(lks)}), "
            f"n_latent={n_latent}, beta={beta}, tau={tau}, alpha={alpha}, "
            f"groupclip={groupclip!r}, contrastive={contrastive!r}, variational={variational}"
        )
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        perturbation_key: str | None = None,
        modalities: Sequence[str] | None = None,
        layers: str | dict[str, str | None] | None = None,
        batch_key: str | None = None,
        *,
        label_key: str | None = None,
        **kwargs,
    ) -> None:
        """Register a weakly paired MuData (two or more modalities of different cells).

        Each modality's label column is cast to one shared vocabulary (the union of the labels
        of all modalities) and stored in ``mdata.mod[m].obs["_groove_labels"]``; the user's
        column is left as it is. Registry keys are per modality (``<modality>_X``,
        ``<modality>_labels``, ``<modality>_batch``).

        With three or more modalities a label may occur in some of them only: it is a
        GroupCLIP positive between the modalities that have it and trains the reconstruction
        of each (a label in one modality only has no positives, with a warning). Every
        modality must share a label with another, and the modalities must be linked into one
        group through shared labels.

        Parameters
        ----------
        mdata
            MuData with two or more modalities holding different cells.
        perturbation_key
            Column of each modality's ``.obs`` with the perturbation (group) label. Default:
            the column :func:`groove_sc.data.from_anndatas` recorded (its ``label_key``), else
            ``"perturbation"``. It is recorded in ``mdata.uns["groove_sc"]["label_key"]``, the
            default ``group_key`` of :mod:`groove_sc.tl` and :mod:`groove_sc.pl`.
        modalities
            The modalities to use (two or more, distinct), in order; default: every modality
            of ``mdata``. The order fixes the module's modality indices and the order of the
            per-pair ``history`` keys (``groupclip_<a>_<b>`` for ``a`` before ``b``).
        layers
            Layer to read per modality (``None``: ``.X``); one name for both or a dict.
        batch_key
            Optional column of each modality's ``.obs`` with a batch covariate that encoders
            and decoders are conditioned on.
        label_key
            Same as ``perturbation_key`` (the name :func:`~groove_sc.data.from_anndatas` uses);
            give one of the two.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.

        Raises
        ------
        KeyError
            A modality, layer or column that does not exist.
        ValueError
            A view, fewer than two or repeated modalities, an empty modality, missing labels,
            NaN/inf values, a modality sharing no label with the others (or modalities in
            groups sharing no label), or ``obs_names`` shared by two modalities (MuData would
            merge those cells).
        """
        check_mudata(mdata)
        if label_key is not None and perturbation_key is not None and label_key != perturbation_key:
            raise ValueError(
                f"`label_key`={label_key!r} and `perturbation_key`={perturbation_key!r} name "
                "the same column; give one of them."
            )
        perturbation_key = recorded_label_key(mdata, label_key or perturbation_key)
        modalities = resolve_modalities(mdata, modalities)
        layers = resolve_layers(modalities, layers)
        label_cols = {
            m: label_column(mdata.mod[m], perturbation_key, m, "perturbation_key")
            for m in modalities
        }
        if batch_key is not None:
            for m in modalities:
                label_column(mdata.mod[m], batch_key, m, "batch_key")
        for m in modalities:
            x = get_matrix(mdata.mod[m], layers[m], m)
            where = f"mdata.mod[{m!r}]" + (f".layers[{layers[m]!r}]" if layers[m] else ".X")
            check_finite(x, where)
            if mdata.mod[m].n_obs == 0 or mdata.mod[m].n_vars == 0:
                raise ValueError(
                    f"Modality {m!r} (in `modalities`) is empty (shape {mdata.mod[m].shape}); "
                    "drop it from `modalities` or give it cells and features."
                )
        source_registry = kwargs.get("source_registry")
        sets = [set(label_cols[m].unique()) for m in modalities]
        if source_registry is None:
            _check_linked(modalities, sets, perturbation_key)
            for i, (m, own) in enumerate(zip(modalities, sets)):
                others = set().union(*(o for j, o in enumerate(sets) if j != i))
                labs = sorted(own - others)
                if labs:
                    warnings.warn(
                        f"{len(labs)} label(s) occur only in modality {m!r} (e.g. {labs[:5]}); "
                        "they train its reconstruction but have no GroupCLIP positives.",
                        UserWarning,
                        stacklevel=2,
                    )
        names = [mdata.mod[m].obs_names for m in modalities]
        for i in range(len(modalities)):
            for j in range(i + 1, len(modalities)):
                overlap = names[i].intersection(names[j])
                if not len(overlap) or source_registry is not None:
                    continue
                pair = [modalities[i], modalities[j]]
                raise ValueError(
                    f"{len(overlap)} obs_names occur in both modalities {pair} (e.g. "
                    f"{list(overlap[:3])}). MuData treats cells with the same name as one cell, "
                    "so mdata.obs, mdata.obsm and mdata.n_obs cannot hold both modalities' "
                    "cells. Build the MuData with groove_sc.data.from_anndatas({name: adata, "
                    "...}), which prefixes the names with the modality, or rename them first, "
                    f"e.g. mdata.mod[{pair[1]!r}].obs_names = '{pair[1]}:' + "
                    f"mdata.mod[{pair[1]!r}].obs_names; mdata.update(). (Jointly measured "
                    "data: split it with groove_sc.data.split_weakly_paired.)"
                )
        # registration writes obs columns and uns keys: undo them if it fails part-way
        saved = {m: (mdata.mod[m].obs.copy(), set(mdata.mod[m].uns)) for m in mdata.mod}
        saved_uns = set(mdata.uns)
        try:
            vocabulary = sorted(set().union(*sets))
            for m in modalities:
                mdata.mod[m].obs[LABELS_COLUMN] = pd.Categorical(
                    label_cols[m].to_numpy(), categories=vocabulary
                )

            setup_method_args = cls._get_setup_method_args(
                cls=cls,
                mdata=mdata,
                perturbation_key=perturbation_key,
                modalities=modalities,
                layers=layers,
                batch_key=batch_key,
            )
            mudata_fields = []
            for m in modalities:
                mudata_fields.append(
                    fields.MuDataLayerField(
                        _registry_key(m, "X"),
                        layers[m],
                        mod_key=m,
                        is_count_data=False,
                        mod_required=True,
                    )
                )
                mudata_fields.append(
                    fields.MuDataCategoricalObsField(
                        _registry_key(m, "labels"), LABELS_COLUMN, mod_key=m, mod_required=True
                    )
                )
                if batch_key is not None:
                    mudata_fields.append(
                        fields.MuDataCategoricalObsField(
                            _registry_key(m, "batch"), batch_key, mod_key=m, mod_required=True
                        )
                    )
            adata_manager = AnnDataManager(
                fields=mudata_fields,
                setup_method_args=setup_method_args,
                validation_checks=AnnDataManagerValidationCheck(check_fully_paired_mudata=False),
            )
            if source_registry is not None:
                kwargs.setdefault("extend_categories", True)  # unseen labels are fine at inference
            adata_manager.register_fields(mdata, **kwargs)
            cls.register_manager(adata_manager)
            record_label_key(mdata, perturbation_key)
        except BaseException:
            for m, (obs, uns_keys) in saved.items():
                mdata.mod[m].obs = obs
                for k in set(mdata.mod[m].uns) - uns_keys:
                    del mdata.mod[m].uns[k]
            for k in set(mdata.uns) - saved_uns:
                del mdata.uns[k]
            raise

    @classmethod
    def setup_anndata(cls, *args, **kwargs):
        """Not available: GROOVE needs two or more modalities, use :meth:`setup_mudata`."""
        raise NotImplementedError(
            "GROOVE works on a MuData with two or more modalities: use "
            "GROOVE.setup_mudata(mdata, ...). "
            "groove_sc.data.from_anndatas({'a': adata_a, 'b': adata_b}) builds one."
        )

    @classmethod
    def load(
        cls,
        dir_path: str,
        mdata: MuData | None = None,
        *,
        accelerator: str = "auto",
        device: int | str = "auto",
        **kwargs,
    ) -> GROOVE:
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        dir_path
            Directory the model was saved to.
        mdata
            MuData with the model's modalities and features. Default: the MuData saved with
            the model (``save(..., save_anndata=True)``). It is registered with the saved
            setup; labels unseen in training are allowed (they only matter for training).
        accelerator, device
            Where to put the model.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load` (e.g. ``prefix``).

        Returns
        -------
        The loaded model.
        """
        if mdata is not None:
            check_mudata(mdata)
        adata = kwargs.pop("adata", None)
        with warnings.catch_warnings():
            # scvi-tools' loader calls MuData.mod_names, deprecated by mudata: not the user's
            warnings.filterwarnings("ignore", message=r".*mod_names is deprecated.*")
            return super().load(
                str(dir_path),
                adata=mdata if mdata is not None else adata,
                accelerator=accelerator,
                device=device,
                **kwargs,
            )

    # ------------------------------------------------------------------ training
    def _labels(self, m: str) -> np.ndarray:
        return (
            np.asarray(self.adata_manager.get_from_registry(_registry_key(m, "labels")))
            .ravel()
            .astype(np.int64)
        )

    def _step_dataset(self) -> PairedStepDataset:
        datasets, keys = [], []
        for m in self.modalities:
            getitem = {_registry_key(m, "X"): np.float32, _registry_key(m, "labels"): np.int64}
            key_map = {X_KEY: _registry_key(m, "X"), LABELS_KEY: _registry_key(m, "labels")}
            if self.batch_key is not None:
                getitem[_registry_key(m, "batch")] = np.int64
                key_map[BATCH_KEY] = _registry_key(m, "batch")
            datasets.append(self.adata_manager.create_torch_dataset(data_and_attributes=getitem))
            keys.append(key_map)
        return PairedStepDataset(datasets, keys)

    def train(
        self,
        max_epochs: int | None = None,
        *,
        batch_size: int = 128,
        cells_per_label: int = 8,
        validation_size: float | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-6,
        early_stopping: bool | None = None,
        early_stopping_monitor: str | None = None,
        early_stopping_patience: int = 20,
        check_val_every_n_epoch: int | None = 1,
        label_transfer_cells: int = LABEL_TRANSFER_CELLS,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        seed: int = 0,
        num_workers: int = 0,
        plan_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train the model on label-balanced mini-batches.

        Each step draws the same labels in every modality that has them, ``cells_per_label``
        cells or more per label per modality, about ``batch_size`` cells per modality. Each
        modality's cells are split into training and ``validation_size`` validation cells.
        Every loss term is recorded per epoch in :attr:`history` (``loss``,
        ``reconstruction_<modality>``, ``groupclip``, ``backtranslation``, each ``_train``
        and ``_validation``), and so is the cross-modal label transfer of held-out cells,
        ``label_transfer_validation``, next to that of a same-size sample of training cells,
        ``label_transfer_train`` (see Notes); :attr:`label_transfer_chance_` is its value for
        an embedding without cross-modal structure. With three or more modalities these keys
        hold the totals (means over pairs) and every pair has its own keys as well:
        ``groupclip_<a>_<b>``, ``backtranslation_<source>_<target>`` and
        ``label_transfer_<a>_<b>`` (see :class:`~groove_sc.train.GrooveTrainingPlan`).

        Parameters
        ----------
        max_epochs
            Number of epochs (an epoch is ``ceil(max_m n_m / batch_size)`` steps); default
            from :func:`scvi.model.get_max_epochs_heuristic` on the larger modality.
        batch_size
            Cells per modality per step.
        cells_per_label
            Minimum cells per label per modality in a step.
        validation_size
            Fraction of each modality's cells held out for validation; ``None`` (default):
            10 % of each modality's cells, at least 50 and at most a quarter
            (:func:`groove_sc.data.default_validation_cells`), so that the held-out label
            transfer is estimated to within a few percent (see Notes). ``0``: no validation
            (and no early stopping).
        lr
            Learning rate (Adam).
        weight_decay
            Weight decay (Adam).
        early_stopping
            Stop when ``early_stopping_monitor`` has not improved for
            ``early_stopping_patience`` epochs. ``None`` (default): on whenever there are
            validation cells (without it a small screen trained for the default number of
            epochs memorises its training cells' labels; see Notes), off with
            ``validation_size=0``. ``True`` needs validation cells.
        early_stopping_monitor
            Any logged term, e.g. ``"groupclip_validation"``, ``"loss_validation"`` or
            ``"label_transfer_validation"`` (terms named ``label_transfer_*`` are maximised,
            the others minimised). Default: ``"groupclip_validation"`` (the cross-modal term
            of held-out cells, which generalised best in the benchmark), or
            ``"loss_validation"`` without GroupCLIP (``beta = 0``).
        early_stopping_patience
            Patience of early stopping, in epochs.
        check_val_every_n_epoch
            Validation frequency in epochs (``None``: no validation unless early stopping).
        label_transfer_cells
            Cells of each modality whose label transfer is scored per validation epoch (a
            fixed random sample of the validation cells, and as many training cells); ``0``
            turns the label transfer off.
        accelerator, devices
            Passed to Lightning (``"cpu"``, ``"gpu"``, ``"auto"``; device ids or counts). With
            several devices pass ``strategy="ddp"`` (see Notes).
        seed
            Seed of the validation split, the batch sampler and dropout.
        num_workers
            Data loader worker processes.
        plan_kwargs
            Passed to :class:`~groove_sc.train.GrooveTrainingPlan`.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (e.g. ``strategy``, ``callbacks``,
            ``enable_progress_bar``, ``ckpt_path``).

        Notes
        -----
        **Several GPUs (or CPU processes).** ``model.train(accelerator="gpu", devices=4,
        strategy="ddp")`` trains with Lightning's distributed data parallel, as in
        scvi-tools: one process per device, each drawing ``1 / devices`` of an epoch's
        label-balanced steps (``batch_size`` is per process), gradients averaged after each of
        the two optimiser steps, so every replica ends with the same weights. Lightning's
        ``"ddp"`` starts the other processes by re-running the script, so call it from a
        script (``python train.py``, under ``if __name__ == "__main__":``), not from a notebook
        (there use ``strategy="ddp_notebook"``). The same works on CPU
        (``accelerator="cpu", devices=2``; tested). The training data are read per mini-batch
        from the registered (possibly sparse) matrices: nothing is densified or copied per
        epoch.

        **Label transfer of held-out cells.** A model can tell the *training* cells' labels
        apart across modalities by memorising them; what generalises is whether a held-out
        cell lands next to the other modality's cells of its label. After each validation
        epoch, every scored validation cell of modality A takes the majority label of its
        15 nearest training cells of modality B in the latent space (and B's cells those of
        A; :func:`~groove_sc.train.knn_label_transfer`); ``label_transfer_validation`` is
        the mean of the two directions' accuracies (with three or more modalities, of every
        ordered pair of modalities). ``label_transfer_train`` is the same for
        a sample of training cells of the same size: a gap between the two is memorisation.
        The reference is a fixed sample of at most 5000 training cells per modality; cells
        whose label the other modality lacks are not scored. With ``n`` validation cells per
        modality the estimate's binomial standard error is about
        ``sqrt(p (1 - p) / (2 n))`` (0.035 at ``p = 0.5`` and 100 cells).

        **Checkpoints and resuming.** Pass a Lightning
        :class:`~lightning.pytorch.callbacks.ModelCheckpoint` in ``callbacks`` to write
        resumable ``.ckpt`` files (weights, optimiser state, epoch), e.g.
        ``ModelCheckpoint(dirpath="ckpt", save_last=True)`` every epoch, or
        ``monitor="loss_validation"`` to keep the best. After an interruption, build the model
        again on the same data and continue with ``model.train(max_epochs=N,
        ckpt_path="ckpt/last.ckpt")``: training resumes at the epoch after the checkpoint and
        runs to ``max_epochs`` (the total, not the number of further epochs); :attr:`history`
        then holds the resumed epochs. Use the same ``seed``, ``batch_size`` and
        ``validation_size`` as the interrupted run.
        """
        validation_size = self._scvi_style_arguments(validation_size, trainer_kwargs)
        _check_plan_kwargs(plan_kwargs, self._training_plan_cls)
        self.train_kwargs_ = {
            "max_epochs": max_epochs,
            "batch_size": batch_size,
            "cells_per_label": cells_per_label,
            "validation_size": validation_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "early_stopping": early_stopping,
            "early_stopping_monitor": early_stopping_monitor,
            "early_stopping_patience": early_stopping_patience,
            "check_val_every_n_epoch": check_val_every_n_epoch,
            "label_transfer_cells": label_transfer_cells,
            "accelerator": accelerator,
            "devices": devices,
            "seed": seed,
            **{
                k: v
                for k, v in trainer_kwargs.items()
                if k not in ("callbacks", "ckpt_path", "logger", "strategy")
            },
        }
        if max_epochs is None:
            n_max = max(self.adata.mod[m].n_obs for m in self.modalities)
            max_epochs = get_max_epochs_heuristic(n_max)
        if not _is_int(max_epochs) or max_epochs < 1:
            raise ValueError(f"`max_epochs` must be an integer >= 1, got {max_epochs!r}.")
        for name, value in (("batch_size", batch_size), ("cells_per_label", cells_per_label)):
            if not _is_int(value) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}.")
        datamodule = GrooveDataModule(
            self._step_dataset(),
            [self._labels(m) for m in self.modalities],
            validation_size=validation_size,
            batch_size=batch_size,
            cells_per_label=cells_per_label,
            seed=seed,
            num_workers=num_workers,
        )
        if early_stopping is None:
            early_stopping = datamodule.n_val > 0
        elif early_stopping and datamodule.n_val == 0:
            raise ValueError(
                f"`early_stopping=True` needs validation cells, but `validation_size`="
                f"{validation_size!r} leaves none; pass a validation_size > 0 or "
                "early_stopping=False."
            )
        if not _is_int(label_transfer_cells) or label_transfer_cells < 0:
            raise ValueError(
                f"`label_transfer_cells` must be an integer >= 0, got {label_transfer_cells!r}."
            )
        validates = datamodule.n_val > 0 and all(len(v) for v in datamodule.val_idx)
        monitor = None
        if label_transfer_cells and validates and (check_val_every_n_epoch or early_stopping):
            monitor = self._label_transfer_monitor(datamodule, label_transfer_cells, seed)
        if early_stopping_monitor is None:
            early_stopping_monitor = (
                DEFAULT_EARLY_STOPPING_MONITOR if self.module.beta > 0 else "loss_validation"
            )
        logged = self._logged_terms(label_transfer=monitor is not None)
        if early_stopping_monitor not in logged:
            raise ValueError(
                f"`early_stopping_monitor`={early_stopping_monitor!r} is not logged by this "
                f"training; choose one of {logged}."
            )
        plan_kwargs = dict(plan_kwargs or {})
        plan_kwargs.setdefault("lr", lr)
        plan_kwargs.setdefault("weight_decay", weight_decay)
        plan = self._training_plan_cls(
            self.module, modality_names=self.modalities, label_transfer=monitor, **plan_kwargs
        )
        if datamodule.n_val == 0:
            check_val_every_n_epoch = None
        trainer_kwargs.setdefault("early_stopping", early_stopping)
        trainer_kwargs.setdefault("early_stopping_monitor", early_stopping_monitor)
        trainer_kwargs.setdefault(
            "early_stopping_mode",
            "max" if early_stopping_monitor.startswith("label_transfer") else "min",
        )
        trainer_kwargs.setdefault("early_stopping_patience", early_stopping_patience)
        if check_val_every_n_epoch is not None:
            trainer_kwargs.setdefault("check_val_every_n_epoch", check_val_every_n_epoch)
        # log each epoch's terms even when an epoch has fewer steps than Lightning's default
        steps = max(1, len(datamodule.train_dataloader().sampler))
        trainer_kwargs.setdefault("log_every_n_steps", max(1, min(10, steps)))
        # scvi's Trainer turns Lightning checkpointing off unless its own SaveCheckpoint (which
        # saves scvi model directories, not resumable .ckpt files) is used, and Lightning then
        # refuses a ModelCheckpoint: attach plain ModelCheckpoint callbacks after construction.
        callbacks = list(trainer_kwargs.pop("callbacks", None) or [])
        checkpoints = [
            c for c in callbacks if isinstance(c, ModelCheckpoint) and type(c) is not SaveCheckpoint
        ]
        trainer_kwargs["callbacks"] = [c for c in callbacks if all(c is not k for k in checkpoints)]
        with quiet_lightning():
            runner = self._train_runner_cls(
                self,
                training_plan=plan,
                data_splitter=datamodule,
                max_epochs=max_epochs,
                accelerator=accelerator,
                devices=devices,
                **trainer_kwargs,
            )
            if checkpoints:
                runner.trainer.callbacks.extend(checkpoints)
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                runner()
        self.train_indices = dict(zip(self.modalities, datamodule.train_idx))
        self.validation_indices = dict(zip(self.modalities, datamodule.val_idx))
        self.training_obs_names_ = {
            m: np.asarray(self.adata.mod[m].obs_names[idx], dtype=str)
            for m, idx in self.train_indices.items()
        }

    @staticmethod
    def _scvi_style_arguments(validation_size, trainer_kwargs: dict):
        """Translate (or refuse, with the GROOVE equivalent) scvi-tools ``train`` arguments."""
        if "train_size" in trainer_kwargs:
            train_size = trainer_kwargs.pop("train_size")
            if validation_size is not None:
                raise TypeError("Pass either `train_size` (scvi-tools) or `validation_size`.")
            if train_size is None:
                return None
            if not 0 < float(train_size) <= 1:
                raise ValueError(f"`train_size` must be in (0, 1], got {train_size!r}.")
            validation_size = 1.0 - float(train_size)
        if "use_gpu" in trainer_kwargs:
            raise TypeError(
                "`use_gpu` is not a GROOVE.train argument (scvi-tools removed it too): pass "
                "accelerator='gpu' (or 'cpu') and devices=..."
            )
        if "datasplitter_kwargs" in trainer_kwargs:
            raise TypeError(
                "GROOVE splits each modality's cells itself (different cells per modality): "
                "use `validation_size=` and `seed=`; `datasplitter_kwargs` is not used."
            )
        return validation_size

    def train_replicates(
        self,
        n_replicates: int = 2,
        *,
        seed: int = 0,
        **train_kwargs,
    ) -> list[GROOVE]:
        """Train independent copies of this model on disjoint parts of its cells.

        The cells of each modality are split into ``n_replicates`` disjoint parts, stratified
        by label (:func:`groove_sc.data.split_disjoint`); on each part a new model with this
        model's parameters is set up and trained with this model's training arguments
        (overridden by ``train_kwargs``). Replicates share no training cell and no
        initialisation, so what they agree on about the *within-label* arrangement of the
        cells is not noise they both memorised: :func:`groove_sc.tl.replicate_latents` and
        :func:`groove_sc.tl.within_label_signal` use them to judge the matching without
        ground truth.

        Parameters
        ----------
        n_replicates
            Number of replicates (parts of the cells), at least 2.
        seed
            Seed of the split; replicate ``k`` is initialised and trained with this model's
            seeds plus ``k + 1``.
        **train_kwargs
            Passed to :meth:`train`, overriding the arguments of this model's last training.

        Returns
        -------
        The trained replicates.
        """
        self._check_if_trained(warn=False)
        data = self.adata
        if set(data.mod) != set(self.modalities):
            data = md_subset(data, self.modalities)
        parts = split_disjoint(
            data,
            self.perturbation_key,
            n_parts=n_replicates,
            modalities=self.modalities,
            seed=seed,
        )
        params = dict(self.init_params_["non_kwargs"])
        params.update(self.init_params_.get("kwargs", {}).get("kwargs", {}))
        base_seed = int(params.pop("seed", 0))
        base_train = dict(self.train_kwargs_ or {})
        train_seed = int(base_train.pop("seed", 0))
        base_train.update(train_kwargs)
        replicates = []
        for k, part in enumerate(parts):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                type(self).setup_mudata(
                    part,
                    perturbation_key=self.perturbation_key,
                    modalities=self.modalities,
                    layers=self.layers,
                    batch_key=self.batch_key,
                )
            replicate = type(self)(part, seed=base_seed + k + 1, **params)
            replicate.train(**{"seed": train_seed + k + 1, **base_train})
            replicates.append(replicate)
        return replicates

    def _logged_terms(self, *, label_transfer: bool) -> list[str]:
        """The ``history`` keys a training run of this model logs."""
        mods = self.modalities
        many = len(mods) > 2
        pairs = [(a, b) for i, a in enumerate(mods) for b in mods[i + 1 :]]
        terms = ["loss"] + [f"reconstruction_{m}" for m in mods] + ["groupclip"]
        if many:
            terms += [f"groupclip_{a}_{b}" for a, b in pairs]
        if self.module.alpha > 0:
            terms.append("backtranslation")
            if many:
                terms += [f"backtranslation_{s}_{t}" for s in mods for t in mods if s != t]
        if self.module.variational:
            terms.append("kl")
        keys = [f"{t}_{split}" for split in ("train", "validation") for t in terms]
        if label_transfer:
            keys += ["label_transfer_train", "label_transfer_validation"]
            if many:
                keys += [
                    f"label_transfer_{a}_{b}_{split}"
                    for split in ("train", "validation")
                    for a, b in pairs
                ]
        return keys

    def _label_transfer_monitor(
        self, datamodule: GrooveDataModule, n_cells: int, seed: int
    ) -> LabelTransferMonitor:
        """Fixed samples of validation, training and reference cells, and the chance level."""
        rng = np.random.default_rng([seed, 0x4C54])
        val = tuple(sample_rows(v, n_cells, rng) for v in datamodule.val_idx)
        train = tuple(
            sample_rows(t, len(v), rng) for t, v in zip(datamodule.train_idx, val, strict=True)
        )
        ref = tuple(sample_rows(t, LABEL_TRANSFER_REFERENCE, rng) for t in datamodule.train_idx)
        labels = [self._labels(m) for m in self.modalities]
        n_mod = len(self.modalities)
        chance = [
            chance_label_transfer(labels[m][val[m]], labels[o][ref[o]], seed=seed)
            for m in range(n_mod)
            for o in range(n_mod)
            if o != m
        ]
        self.label_transfer_chance_ = float(np.nanmean(chance))
        return LabelTransferMonitor(
            datamodule.dataset.__getitem__,
            CellSample(ref),
            {"validation": CellSample(val), "train": CellSample(train)},
            n_neighbors=LABEL_TRANSFER_NEIGHBORS,
            modality_names=self.modalities,
        )

    # ------------------------------------------------------------------ inference
    def _matrix_for_inference(self, mdata: MuData, m: str):
        """The registered layer of modality ``m`` with features in training order."""
        if m not in mdata.mod:
            raise KeyError(
                f"Modality {m!r} (used in training) is not in `mdata` (has {list(mdata.mod)})."
            )
        adata = mdata.mod[m]
        x = get_matrix(adata, self.layers[m], m)
        trained = self.adata_manager.get_state_registry(_registry_key(m, "X"))[
            fields.LayerField.COLUMN_NAMES_KEY
        ]
        trained = pd.Index(trained)
        if not adata.var_names.equals(trained):
            if len(adata.var_names) == len(trained) and set(adata.var_names) == set(trained):
                x = x[:, adata.var_names.get_indexer(trained)]
            else:
                missing = trained.difference(adata.var_names)
                raise ValueError(
                    f"The features of modality {m!r} differ from those the model was trained on "
                    f"({len(missing)} missing, e.g. {list(missing[:3])}); subset `mdata` to the "
                    "training var_names."
                )
        check_finite(x, f"mdata.mod[{m!r}] data")
        return x

    def _batch_codes(self, mdata: MuData, m: str) -> np.ndarray | None:
        if self.batch_key is None:
            return None
        state = self.adata_manager.get_state_registry(_registry_key(m, "batch"))
        mapping = pd.Index(state.categorical_mapping)
        values = label_column(mdata.mod[m], self.batch_key, m, "batch_key")
        codes = mapping.get_indexer(values)
        if (codes < 0).any():
            unknown = sorted(set(values[codes < 0]))
            raise ValueError(
                f"Modality {m!r} has batches unseen in training: {unknown[:5]}; known: "
                f"{list(mapping)}."
            )
        return codes

    def _iterate(self, x, batch_size: int):
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size]
            chunk = chunk.toarray() if sparse.issparse(chunk) else np.asarray(chunk)
            yield start, torch.as_tensor(chunk, dtype=torch.float32, device=self.device)

    @torch.inference_mode()
    def get_latent_representation(
        self,
        mdata: MuData | AnnData | None = None,
        modality: str | None = None,
        *,
        give_mean: bool = True,
        batch_size: int = 1024,
    ) -> dict[str, np.ndarray] | np.ndarray:
        """Latent representation of every cell of each modality.

        New cells can be mapped without retraining: a MuData with only some of the model's
        modalities (a query measured with one assay) gives the latent of those, and an
        AnnData is read as the modality named by ``modality``.

        Parameters
        ----------
        mdata
            MuData with (some of) the training modalities and their features, or one
            AnnData (then ``modality`` says which); default: the training data. Labels are
            not needed, and labels unseen in training are fine.
        modality
            Return only this modality's latent (an array) instead of a dict.
        give_mean
            As in scvi-tools: the posterior mean (always, for the default deterministic
            encoders); ``False`` draws a sample for variational encoders.
        batch_size
            Cells per forward pass.

        Returns
        -------
        ``{modality: array (n_cells, n_latent)}`` for the model's modalities present in
        ``mdata``, or one array if ``modality`` is given. Rows follow
        ``mdata.mod[modality].obs_names``.
        """
        self._check_if_trained(warn=True)
        mdata = self._as_query(mdata, modality)
        if modality is not None and modality not in self.modalities:
            raise KeyError(f"`modality`={modality!r} is not one of {self.modalities}.")
        wanted = [modality] if modality is not None else self._present(mdata)
        self.module.eval()
        out = {}
        for m in wanted:
            index = self.modalities.index(m)
            x = self._matrix_for_inference(mdata, m)
            codes = self._batch_codes(mdata, m)
            z = np.empty((x.shape[0], self.module.n_latent), dtype=np.float32)
            for start, chunk in self._iterate(x, batch_size):
                b = None
                if codes is not None:
                    b = torch.as_tensor(codes[start : start + len(chunk)], device=self.device)
                _, mean, var = self.module.encode(chunk, index, b)
                if not give_mean and var is not None:
                    mean = mean + var.sqrt() * torch.randn_like(mean)
                z[start : start + len(chunk)] = mean.cpu().numpy()
            out[m] = z
        return out[modality] if modality is not None else out

    def _as_query(self, mdata: MuData | AnnData | None, modality: str | None) -> MuData:
        """The training data, a MuData, or one AnnData wrapped as ``modality``."""
        if mdata is None:
            return self.adata
        if isinstance(mdata, AnnData):
            if modality is None:
                raise ValueError(
                    "An AnnData holds one modality: pass `modality=` (one of "
                    f"{self.modalities}) to say which."
                )
            if modality not in self.modalities:
                raise KeyError(f"`modality`={modality!r} is not one of {self.modalities}.")
            return _make_mudata({modality: mdata})
        return check_mudata(mdata)

    def _present(self, mdata: MuData) -> list[str]:
        """The model's modalities present in ``mdata`` (at least one)."""
        present = [m for m in self.modalities if m in mdata.mod]
        if not present:
            raise KeyError(
                f"`mdata` holds none of the model's modalities {self.modalities} (it has "
                f"{list(mdata.mod)})."
            )
        return present

    def get_normalized_expression(self, *args, **kwargs):
        """Not available: use :meth:`translate` (and :meth:`get_latent_representation`).

        GROOVE's decoders predict a cell's profile in *another* modality:
        ``model.translate(mdata, source="rna", target="protein")``.
        """
        raise NotImplementedError(
            "GROOVE has no get_normalized_expression: predict each cell's profile in the "
            "other modality with model.translate(mdata, source=..., target=...)."
        )

    def __repr__(self) -> str:
        trained = "trained" if self.is_trained_ else "not trained"
        return f"{self._model_summary_string}; {trained}"

    def view_anndata_setup(
        self, mdata: MuData | None = None, hide_state_registries: bool = False
    ) -> None:
        """Print how the MuData is registered: modalities, layers, labels, batches.

        Parameters
        ----------
        mdata
            A registered MuData; default: the training data.
        hide_state_registries
            Accepted for compatibility with scvi-tools (the summary is always short).
        """
        mdata = self.adata if mdata is None else check_mudata(mdata)
        lines = [f"GROOVE setup (perturbation_key={self.perturbation_key!r})"]
        for m in self.modalities:
            if m not in mdata.mod:
                lines.append(f"  {m}: not in this MuData")
                continue
            adata = mdata.mod[m]
            where = f"layers[{self.layers[m]!r}]" if self.layers[m] else "X"
            n_labels = (
                adata.obs[self.perturbation_key].nunique()
                if self.perturbation_key in adata.obs
                else "?"
            )
            lines.append(
                f"  {m}: {adata.n_obs} cells x {adata.n_vars} features from .{where}, "
                f"{n_labels} labels" + (f", batch_key={self.batch_key!r}" if self.batch_key else "")
            )
        print("\n".join(lines))

    @torch.inference_mode()
    def translate(
        self,
        mdata: MuData | AnnData | None = None,
        *,
        source: str,
        target: str,
        batch_size: int = 1024,
        library_size: float | None = None,
    ) -> AnnData:
        """Predict each source cell's profile in the target modality through the decoders.

        ``x_target_hat = D_target(E_source(x_source))``: for a Gaussian target the predicted
        feature means in the target's original units; for a negative binomial target the
        expected counts at ``library_size`` (default: the median library size of the target's
        training cells).

        Parameters
        ----------
        mdata
            MuData holding the source modality (the target modality need not be there), or
            the source cells as one AnnData; default: the training data.
        source
            Modality whose cells are translated.
        target
            Modality to translate into.
        batch_size
            Cells per forward pass.
        library_size
            Library size of a negative binomial target.

        Returns
        -------
        AnnData with the source cells (``obs`` copied) and the target's ``var_names``.
        """
        self._check_if_trained(warn=True)
        mdata = self._as_query(mdata, source if isinstance(mdata, AnnData) else None)
        for arg, m in (("source", source), ("target", target)):
            if m not in self.modalities:
                raise KeyError(
                    f"`{arg}`={m!r} is not one of the model's modalities {self.modalities}."
                )
        if source == target:
            raise ValueError("`source` and `target` must be different modalities.")
        s, t = self.modalities.index(source), self.modalities.index(target)
        x = self._matrix_for_inference(mdata, source)
        codes = self._batch_codes(mdata, source)
        lib = (
            None if library_size is None else torch.tensor(float(library_size), device=self.device)
        )
        self.module.eval()
        pred = np.empty((x.shape[0], self.module.n_input[t]), dtype=np.float32)
        for start, chunk in self._iterate(x, batch_size):
            b = None
            if codes is not None:
                b = torch.as_tensor(codes[start : start + len(chunk)], device=self.device)
            z = self.module.encode(chunk, s, b)[1]
            pred[start : start + len(chunk)] = self.module.decode(z, t, None, lib).cpu().numpy()
        var_names = self.adata_manager.get_state_registry(_registry_key(target, "X"))[
            fields.LayerField.COLUMN_NAMES_KEY
        ]
        out = AnnData(
            X=pred,
            obs=mdata.mod[source].obs.copy(),
            var=pd.DataFrame(index=pd.Index(var_names, name=None).astype(str)),
        )
        out.uns["groove_translation"] = {"source": source, "target": target}
        return out


def _check_linked(modalities: Sequence[str], sets: Sequence[set], perturbation_key: str) -> None:
    """Raise unless the labels link every modality to the others (directly or through others).

    Two modalities are linked when they share a label; the modalities must form one connected
    group, or their latents would be unrelated.
    """
    if len(modalities) == 2:
        if not sets[0] & sets[1]:
            raise ValueError(
                f"No value of `perturbation_key`={perturbation_key!r} occurs in both "
                f"modalities {list(modalities)}; GROOVE needs shared labels to link them."
            )
        return
    for i, m in enumerate(modalities):
        if not any(sets[i] & sets[j] for j in range(len(modalities)) if j != i):
            raise ValueError(
                f"Modality {m!r} shares no value of `perturbation_key`={perturbation_key!r} "
                f"with any other of the modalities {list(modalities)}; GROOVE needs shared "
                "labels to link it (drop it from `modalities` or relabel it)."
            )
    group = {0}
    frontier = [0]
    while frontier:  # breadth-first search over modalities (a handful of them)
        i = frontier.pop()
        for j in range(len(modalities)):
            if j not in group and sets[i] & sets[j]:
                group.add(j)
                frontier.append(j)
    if len(group) < len(modalities):
        inside = [modalities[i] for i in sorted(group)]
        outside = [m for i, m in enumerate(modalities) if i not in group]
        raise ValueError(
            f"The values of `perturbation_key`={perturbation_key!r} split the modalities into "
            f"groups that share no label ({inside} and {outside}); GROOVE needs shared labels "
            "linking every modality to the others."
        )


def _check_plan_kwargs(plan_kwargs: dict | None, plan_cls: type) -> None:
    """Refuse ``plan_kwargs`` the training plan would silently swallow."""
    if not plan_kwargs:
        return
    known = set()
    for cls in (plan_cls, TrainingPlan):
        known |= {
            name
            for name, par in inspect.signature(cls.__init__).parameters.items()
            if par.kind not in (par.VAR_KEYWORD, par.VAR_POSITIONAL)
        }
    known -= {"self", "module"}
    unknown = sorted(set(plan_kwargs) - known)
    if unknown:
        hint = " (the learning rate is `lr`)" if "learning_rate" in unknown else ""
        raise TypeError(f"`plan_kwargs` has unknown keys {unknown}{hint}; known: {sorted(known)}.")


def md_subset(mdata: MuData, modalities: Sequence[str]) -> MuData:
    """A MuData holding only ``modalities`` of ``mdata`` (copies)."""
    return _make_mudata({m: mdata.mod[m].copy() for m in modalities})


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _column_mean_std(x) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of a dense or sparse matrix (float64)."""
    if sparse.issparse(x):
        x = sparse.csr_matrix(x)
        mean = np.asarray(x.mean(axis=0)).ravel()
        sq = np.asarray(x.multiply(x).mean(axis=0)).ravel()
    else:
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        sq = (x * x).mean(axis=0)
    var = np.maximum(sq - mean**2, 0.0)
    std = np.sqrt(var)
    std[std < 1e-8] = 1.0
    return mean, std
