"""The typed state of one fit: what a method holds while it trains, and what it produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import nn

from deepclust.data import DataSource
from deepclust.training import Stage, Trainer

if TYPE_CHECKING:  # pragma: no cover
    from deepclust.methods._base import BaseDeepClusterer, FitContext

__all__ = ["FitState"]

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
        """Every module whose weights a checkpoint holds (override when there are more)."""
        return [self.network]

    def stages(self) -> list[Stage]:
        """The training stages, in order."""
        raise NotImplementedError  # pragma: no cover - abstract

    def fitted_attributes(self, history: list[dict]) -> dict:
        """The estimator's fitted attributes once every stage has run."""
        raise NotImplementedError  # pragma: no cover - abstract

    def run(self) -> dict:
        """Train every stage and return the fitted attributes (``history_``, ``n_iter_``
        and ``network_`` in eval mode included)."""
        self.trainer = self.context.trainer(state=self)
        history = self.trainer.fit(self.stages(), modules=self.modules())
        fitted = self.fitted_attributes(history)
        fitted.setdefault("history_", history)
        fitted.setdefault("n_iter_", len(history))
        fitted["network_"].eval()
        return fitted

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The :attr:`checkpoint_fields` as tensors and plain values (``None`` left out)."""
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
        """Restore the fields saved by :meth:`state_dict` (absent ones are left as they are)."""
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
