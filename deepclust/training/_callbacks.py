"""Trainer callbacks: the :class:`Callback` base class, checkpoints, progress and logging.

A callback observes a :class:`~deepclust.training.Trainer` through one set of hooks, called
in this order::

    on_train_begin
        on_stage_begin                 (for every stage run, including a resumed one)
            on_epoch_begin
                on_batch_end           (after every batch)
            on_epoch_end
        on_stage_end
    on_train_end
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from typing import TYPE_CHECKING

import torch

from deepclust._utils import atomic_write, stderr_is_terminal

if TYPE_CHECKING:
    from deepclust.training._engine import Stage, Trainer

__all__ = ["Callback", "Checkpoint", "EpochLogger", "ProgressBar", "load_state", "save_state"]


class Callback:
    """Base class of trainer callbacks; every hook is a no-op, override what you need.

    A fit resumed from a checkpoint calls ``on_train_begin`` and ``on_stage_begin`` (for
    the stage it resumes in) again, so a callback may keep per-run attributes.

    Attributes
    ----------
    main_process_only : bool
        When training data-parallel (under ``torchrun``), call the hooks on rank 0 only:
        true for callbacks that print or write files (progress, logs, checkpoints).
    """

    main_process_only: bool = False

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once before the first stage.

        Parameters
        ----------
        trainer : Trainer
            The trainer about to run the stages (already restored on resume).
        """

    def on_stage_begin(self, trainer: Trainer, stage: Stage) -> None:
        """Called when a stage starts, after its own ``on_stage_begin`` or its restore.

        Parameters
        ----------
        trainer : Trainer
            ``trainer.epoch`` is the first epoch about to run (non-zero on resume).
        stage : Stage
            The stage starting.
        """

    def on_epoch_begin(self, trainer: Trainer, stage: Stage, epoch: int) -> None:
        """Called before the first batch of an epoch, once its sample order is drawn.

        Parameters
        ----------
        trainer : Trainer
            ``trainer.n_batches`` is the number of batches of this epoch.
        stage : Stage
            The stage the epoch belongs to.
        epoch : int
            Index of the epoch within the stage, from 0.
        """

    def on_batch_end(
        self, trainer: Trainer, stage: Stage, batch_index: int, loss: float | torch.Tensor | None
    ) -> None:
        """Called after every batch.

        Parameters
        ----------
        trainer : Trainer
            The trainer running the fit.
        stage : Stage
            The stage being run.
        batch_index : int
            Index of the batch within the epoch, from 0.
        loss : float, torch.Tensor or None
            The batch's loss, or ``None`` if ``compute_loss`` skipped the batch. On CUDA it
            is a 0-dim tensor on the device (reading it waits for the device).
        """

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """Called after every epoch, once its record is in ``trainer.history``.

        Parameters
        ----------
        trainer : Trainer
            ``trainer.epoch`` and ``trainer.epochs_done_total`` already count this epoch.
        record : dict
            The epoch's history record.
        """

    def on_stage_end(self, trainer: Trainer, stage: Stage) -> None:
        """Called after the last epoch of a stage.

        Parameters
        ----------
        trainer : Trainer
            The trainer running the fit.
        stage : Stage
            The stage that ended.
        """

    def on_train_end(self, trainer: Trainer) -> None:
        """Called once after the last stage.

        Parameters
        ----------
        trainer : Trainer
            The trainer, its ``history`` complete.
        """


class Checkpoint(Callback):
    """Write the trainer's full state to a file every ``every`` epochs, atomically.

    The file is a ``torch.save`` archive of tensors and plain Python values, loadable with
    ``torch.load(path, weights_only=True)`` or :func:`load_state`.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file, overwritten each time.
    every : int
        Write after every ``every``-th epoch (counted over all stages).
    """

    main_process_only = True

    def __init__(self, path: str | os.PathLike, every: int = 1):
        self.path = os.fspath(path)
        self.every = every

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """Write ``trainer.state_dict()`` if the epoch count is a multiple of ``every``.

        Parameters
        ----------
        trainer : Trainer
            Its ``epochs_done_total`` decides, its ``state_dict()`` is written.
        record : dict
            The epoch's history record (unused; it is in the state).
        """
        if trainer.epochs_done_total % self.every == 0:
            save_state(trainer.state_dict(), self.path)


class ProgressBar(Callback):
    """A tqdm progress bar per epoch on stderr, with the last batch's loss as postfix.

    Bars are drawn only when stderr is a terminal: redirected to a file or a pipe, stderr
    keeps only the :class:`EpochLogger` lines.
    """

    main_process_only = True

    #: How often (in batches) a loss kept on the device is read for the postfix.
    tensor_loss_every = 25

    def __init__(self):
        self._bar = None

    def on_epoch_begin(self, trainer: Trainer, stage: Stage, epoch: int) -> None:
        """Open the epoch's bar.

        Parameters
        ----------
        trainer : Trainer
            ``trainer.n_batches`` is the bar's length.
        stage : Stage
            Its name and number of epochs label the bar.
        epoch : int
            Index of the epoch within the stage, from 0 (shown from 1).
        """
        self._close()
        if not stderr_is_terminal():
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=trainer.n_batches, leave=False, desc=f"{stage.name} {epoch + 1}/{stage.n_epochs}"
        )

    def on_batch_end(
        self, trainer: Trainer, stage: Stage, batch_index: int, loss: float | torch.Tensor | None
    ) -> None:
        """Advance the bar by one batch and show its loss.

        Parameters
        ----------
        trainer : Trainer
            The trainer running the fit.
        stage : Stage
            The stage being run.
        batch_index : int
            Index of the batch within the epoch, from 0 (unused).
        loss : float, torch.Tensor or None
            The batch's loss, shown as the bar's postfix; ``None`` keeps the last one. A
            tensor (on CUDA) is read every :attr:`tensor_loss_every` batches only, since
            reading it waits for the device.
        """
        if self._bar is None:
            return
        self._bar.update(1)
        if isinstance(loss, torch.Tensor) and batch_index % self.tensor_loss_every:
            return
        if loss is not None:
            self._bar.set_postfix(loss=f"{float(loss):.4f}")

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """Close the epoch's bar.

        Parameters
        ----------
        trainer : Trainer
            The trainer running the fit.
        record : dict
            The epoch's history record (unused).
        """
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class EpochLogger(Callback):
    """Print one line per epoch to stderr: ``[stage] epoch i/n: loss=..., lr=..., ...``.

    Progress reports go to stderr so that stdout keeps only results.

    Floats are shown with 4 significant digits; every record entry but ``stage`` and
    ``epoch`` is listed, in the record's order.
    """

    main_process_only = True

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """Print the summary of ``record``.

        Parameters
        ----------
        trainer : Trainer
            ``trainer.stage`` gives the stage's number of epochs.
        record : dict
            The epoch's history record: ``stage``, ``epoch`` (from 0) and the values
            printed.
        """
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in record.items()
            if k not in ("stage", "epoch")
        )
        position = f"epoch {record['epoch'] + 1}/{trainer.stage.n_epochs}"
        print(f"[{record['stage']}] {position}: {shown}", file=sys.stderr, flush=True)


def save_state(state: dict, path: str | os.PathLike) -> None:
    """``torch.save`` a state to a file through a temporary file and an atomic rename.

    Parameters
    ----------
    state : dict
        A state from :meth:`Trainer.state_dict`.
    path : str or os.PathLike
        The file written; replaced as a whole if it exists.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


# Entries of every Trainer.state_dict(); a checkpoint without them is not one.
_STATE_KEYS = (
    "stage_index",
    "epoch",
    "epochs_done_total",
    "history",
    "modules",
    "optimizer",
    "torch_rng",
    "numpy_rng",
    "numpy_global_rng",
    "python_rng",
    "extra",
)


def load_state(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by :class:`Checkpoint` without executing code from it.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint file.

    Returns
    -------
    dict
        The state, with tensors on the CPU, for :meth:`Trainer.resume_from`.

    Raises
    ------
    ValueError
        When the file is damaged or is not a deepclust checkpoint: not a torch file, a
        file holding objects other than tensors and plain values, or a state without the
        trainer's entries.
    OSError
        When the file cannot be opened (missing, no permission).
    """
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            # A foreign pickle makes torch warn about its protocol before refusing it.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        # torch's own message is left out: it suggests weights_only=False, which would run
        # whatever code the file holds.
        raise ValueError(
            _bad_checkpoint(path, "it cannot be read as a torch file of tensors and plain values")
        ) from exc
    if not isinstance(state, dict):
        raise ValueError(_bad_checkpoint(path, f"it holds a {type(state).__name__}"))
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise ValueError(_bad_checkpoint(path, "it has no " + ", ".join(missing)))
    return state


def _bad_checkpoint(path: str, reason: str) -> str:
    return (
        f"The checkpoint {path} is damaged or is not a deepclust checkpoint ({reason}). "
        "Delete it to start over, or start again without --resume (or resume_from)."
    )
