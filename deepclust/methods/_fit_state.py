"""The typed state of one fit: what a method holds while it trains, and what it produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn

from deepclust._utils import all_finite
from deepclust.data import DataSource
from deepclust.methods import _stages
from deepclust.networks import ClusteringNetwork
from deepclust.training import Callback, Stage, Trainer, _data_parallel
from deepclust.training._engine import float_state

if TYPE_CHECKING:  # pragma: no cover
    from deepclust.methods._base import BaseDeepClusterer, FitContext

__all__ = ["FitState", "OutputCheck"]

#: How a checkpointed field is stored and restored.
_CHECKPOINT_KINDS = ("tensor", "array", "int")


@dataclass
class FitState:
    """One call of ``fit`` of one method: its networks, its changing state and its stages.

    A method subclasses this dataclass with its own fields (labels, neighbours, ...), lists
    in :attr:`checkpoint_fields` those a checkpoint must hold to resume, and implements
    :meth:`stages` and :meth:`fitted_attributes`. :meth:`run` trains the stages with the
    shared :class:`~deepclust.training.Trainer`, which saves and restores the fields
    through :meth:`state_dict` and :meth:`load_state_dict`.

    Parameters
    ----------
    estimator : BaseDeepClusterer
        The estimator being fitted (its parameters are read, never changed).
    source : DataSource
        The validated training data.
    context : FitContext
        Device, seed, batch sizes, callbacks and resume state of this fit.
    """

    estimator: BaseDeepClusterer
    source: DataSource
    context: FitContext
    trainer: Trainer | None = field(default=None, init=False, repr=False)

    #: Field name -> ``'tensor'`` (kept on the device), ``'array'`` (a NumPy array) or
    #: ``'int'``: what a checkpoint holds besides weights, optimiser and generators.
    checkpoint_fields: ClassVar[dict[str, str]] = {}

    @property
    def device(self) -> torch.device:
        """The training device."""
        return self.context.device

    @property
    def seed(self) -> int:
        """The fit's seed, derived from ``random_state``."""
        return self.context.seed

    def modules(self) -> list[nn.Module]:
        """Every module whose weights a checkpoint holds (override when there are more).

        Returns
        -------
        list of nn.Module
            ``[self.network]`` unless overridden.
        """
        return [self.network]

    def stages(self) -> list[Stage]:
        """The training stages, in order.

        Built from the shared builders of ``deepclust.methods._stages`` (a contrastive
        pretext, a pseudo-label stage, ...) or as :class:`~deepclust.training.Stage`
        objects of the method's own; an empty list trains nothing.

        Returns
        -------
        list of Stage
            The stages :meth:`run` trains, one after the other.
        """
        raise NotImplementedError  # pragma: no cover - abstract

    def pseudo_label_stage(self, name: str, optimizer: str, lr_schedule: str, **options) -> Stage:
        """The shared pseudo-label stage on ``self.network`` and ``self.labels``.

        Parameters
        ----------
        name : str
            The stage's name in the history.
        optimizer : {'sgd', 'adam', 'adamw'}
            The method's reference optimiser, used unless the estimator's ``optimizer``
            is set.
        lr_schedule : {'cosine', 'step', 'constant'}
            The method's reference schedule, used unless the estimator's ``lr_schedule``
            is set.
        **options
            Further arguments of :func:`~deepclust.methods._stages.pseudo_label_stage`
            (``momentum``, ``weight_decay``, ``sampler``, hooks).

        Returns
        -------
        Stage
            Cross-entropy of every head against the current ``labels``, with the
            estimator's ``max_epochs``, ``lr`` and ``augmentation``.
        """
        est = self.estimator
        optimizer, lr_schedule = est._training_settings(optimizer, lr_schedule)
        return _stages.pseudo_label_stage(
            self.network,
            self.source,
            self.device,
            lambda: self.labels,
            n_epochs=est.max_epochs,
            lr=est.lr,
            augmentation=est.augmentation,
            invariances=est._invariances(),
            name=name,
            optimizer=optimizer,
            lr_schedule=lr_schedule,
            **options,
        )

    def fitted_attributes(self, history: list[dict]) -> dict:
        """The estimator's fitted attributes once every stage has run.

        Parameters
        ----------
        history : list of dict
            One record per trained epoch; a method may add entries to its last record
            (e.g. a final label step's statistics).

        Returns
        -------
        dict
            Attribute name -> value, with at least ``network_`` and ``labels_``. The
            estimator sets them only when ``fit`` completes.
        """
        raise NotImplementedError  # pragma: no cover - abstract

    def run(self) -> dict:
        """Train every stage and return the fitted attributes (``history_``, ``n_iter_``
        and ``network_`` in eval mode included).

        Returns
        -------
        dict
            :meth:`fitted_attributes`, with ``history_`` and ``n_iter_`` added when it
            does not set them.
        """
        self.trainer = self.context.trainer(state=self)
        # First, so that no later callback (a checkpoint) sees a diverged epoch.
        self.trainer.callbacks.insert(0, OutputCheck(self.source))
        history = self.trainer.fit(self.stages(), modules=self.modules())
        # Data-parallel, the values every rank computed alike are made identical (rank 0's).
        fitted = _data_parallel.fitted_from_rank0(self.fitted_attributes(history))
        fitted.setdefault("history_", history)
        fitted.setdefault("n_iter_", len(history))
        for name, value in float_state(fitted["network_"]):
            self.check_finite(value, f"the fitted network's weight {name!r}")
        fitted["network_"].eval()
        return fitted

    def check_finite(self, values: torch.Tensor | list[torch.Tensor], what: str) -> None:
        """Raise :class:`~deepclust.training.TrainingDivergedError` naming the current
        stage when ``values`` hold a NaN or an infinity.

        Parameters
        ----------
        values : Tensor or list of Tensor
            Outputs or weights computed by the fit.
        what : str
            What they are, for the message (e.g. ``"the features for k-means"``).
        """
        tensors = values if isinstance(values, (list, tuple)) else [values]
        if not all(all_finite(t.detach()) for t in tensors):
            raise self.trainer.diverged(None, f"{what} became NaN or infinite")

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The :attr:`checkpoint_fields` as tensors and plain values (``None`` left out).

        Returns
        -------
        dict
            Field name -> a CPU tensor (``'tensor'`` and ``'array'`` fields) or an int.
        """
        state = {}
        for name, kind in self.checkpoint_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            if kind == "tensor":
                state[name] = value.detach().cpu()
            elif kind == "array":
                state[name] = torch.from_numpy(np.ascontiguousarray(value))
            else:
                state[name] = int(value)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore the fields saved by :meth:`state_dict` (absent ones are left as they are).

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned, read back from a checkpoint.
        """
        for name, kind in self.checkpoint_fields.items():
            if name not in state:
                continue
            value = state[name]
            if kind == "tensor":
                value = value.to(self.device)
            elif kind == "array":
                value = value.numpy()
            else:
                value = int(value)
            setattr(self, name, value)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        bad = {k: v for k, v in cls.checkpoint_fields.items() if v not in _CHECKPOINT_KINDS}
        if bad:
            raise TypeError(
                f"{cls.__name__}.checkpoint_fields kinds must be among {_CHECKPOINT_KINDS}; "
                f"got {bad}."
            )


class OutputCheck(Callback):
    """After every epoch, run each network of the stage on a few fixed samples in eval mode
    and raise :class:`~deepclust.training.TrainingDivergedError` if an output is NaN or
    infinite (weights can stay finite while their products overflow).

    Parameters
    ----------
    source : DataSource
        The training data; its first ``n_probe`` samples are the probe.
    n_probe : int
        Samples in the probe batch.
    """

    def __init__(self, source: DataSource, n_probe: int = 64):
        self.source = source
        self.n_probe = n_probe
        self._probe: torch.Tensor | None = None

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        if self._probe is None:
            self._probe = self.source.load(slice(0, min(self.n_probe, len(self.source))))
        for module in trainer.stage.modules:
            if isinstance(module, ClusteringNetwork) and not _finite_outputs(
                module, self._probe.to(trainer.device)
            ):
                raise trainer.diverged(
                    trainer.stage, "the network's outputs became NaN or infinite in eval mode"
                )


def _finite_outputs(network: ClusteringNetwork, batch: torch.Tensor) -> bool:
    training = network.training
    network.eval()
    try:
        with torch.no_grad():
            outputs = [network.features(batch), *network(batch)]
    finally:
        network.train(training)
    return all(bool(torch.isfinite(o.float()).all()) for o in outputs)
