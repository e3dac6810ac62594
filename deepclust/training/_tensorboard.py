"""A trainer callback writing the training curves for TensorBoard."""

from __future__ import annotations

import os
from numbers import Real
from typing import TYPE_CHECKING

import numpy as np
import torch

from deepclust.training._callbacks import Callback

if TYPE_CHECKING:
    from deepclust.training._engine import Stage, Trainer

__all__ = ["TensorBoardLogger"]

#: Record entries that are bookkeeping, not curves.
_NOT_CURVES = ("stage", "epoch")


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError(
            "TensorBoardLogger needs the tensorboard package; install it with pip install "
            "'deepclust[tensorboard]' (or pip install tensorboard)."
        ) from exc
    return SummaryWriter


class TensorBoardLogger(Callback):
    """Write every epoch's loss, label change and cluster sizes for TensorBoard.

    After every epoch it adds, at step ``trainer.epochs_done_total``: every number of the
    epoch's history record as the scalar ``<stage>/<name>`` (``loss``, ``lr``,
    ``label_change`` where the method relabels, ``nmi`` for DeepCluster...), and, when the
    method trains on pseudo-labels, their cluster sizes: the histogram ``cluster_sizes``
    (one bin per cluster) and the scalars ``cluster_sizes/smallest`` and
    ``cluster_sizes/largest``. View them with ``tensorboard --logdir LOG_DIR``. A resumed
    fit appends to the same folder, from the step it resumes at.

    Parameters
    ----------
    log_dir : str or os.PathLike
        Folder of the event files (created if missing).
    flush_secs : int, default=30
        How often, in seconds, events are written to disk (they are at the end of
        training too).

    Raises
    ------
    ImportError
        When tensorboard is not installed (at construction, before any training).
    """

    main_process_only = True

    def __init__(self, log_dir: str | os.PathLike, flush_secs: int = 30):
        self._writer_class = _summary_writer_class()
        self.log_dir = os.fspath(log_dir)
        self.flush_secs = flush_secs
        self._writer = None

    def _writer_for(self):
        if self._writer is None:
            self._writer = self._writer_class(self.log_dir, flush_secs=self.flush_secs)
        return self._writer

    def on_train_begin(self, trainer: Trainer) -> None:
        """Open the event file.

        Parameters
        ----------
        trainer : Trainer
            The trainer about to run the stages.
        """
        self._writer_for()

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """Add the epoch's scalars and its cluster sizes.

        Parameters
        ----------
        trainer : Trainer
            ``trainer.epochs_done_total`` is the step; ``trainer.state.labels`` (when the
            method has pseudo-labels) gives the cluster sizes.
        record : dict
            The epoch's history record.
        """
        writer = self._writer_for()
        step = int(trainer.epochs_done_total)
        for name, value in record.items():
            if name not in _NOT_CURVES and isinstance(value, Real):
                writer.add_scalar(f"{record['stage']}/{name}", float(value), step)
        sizes = _cluster_sizes(trainer)
        if sizes is not None:
            per_sample = np.repeat(np.arange(len(sizes)), sizes)  # one bin per cluster
            writer.add_histogram("cluster_sizes", per_sample, step, np.arange(len(sizes) + 1) - 0.5)
            writer.add_scalar("cluster_sizes/smallest", int(sizes.min()), step)
            writer.add_scalar("cluster_sizes/largest", int(sizes.max()), step)

    def on_stage_end(self, trainer: Trainer, stage: Stage) -> None:
        """Write the events so far to disk.

        Parameters
        ----------
        trainer : Trainer
            The trainer running the fit.
        stage : Stage
            The stage that ended.
        """
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, trainer: Trainer) -> None:
        """Write the remaining events and close the file.

        Parameters
        ----------
        trainer : Trainer
            The trainer, its ``history`` complete.
        """
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __getstate__(self) -> dict:
        state = dict(vars(self))
        state["_writer"] = None  # an open file; a copy opens its own
        return state


def _cluster_sizes(trainer: Trainer) -> np.ndarray | None:
    """Samples per cluster of the method's current pseudo-labels (first head), or None."""
    labels = getattr(getattr(trainer, "state", None), "labels", None)
    if not isinstance(labels, torch.Tensor) or labels.numel() == 0:
        return None
    labels = labels[0] if labels.ndim == 2 else labels
    n_clusters = getattr(getattr(trainer.state, "estimator", None), "n_clusters", None)
    counts = np.bincount(labels.detach().cpu().numpy().astype(np.int64), minlength=n_clusters or 0)
    return counts
