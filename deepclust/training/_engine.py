"""The one training loop every method runs, with behaviour added by hooks and callbacks.

A method describes its training as a list of :class:`Stage` objects (SCAN has three,
SeLa one): which parameters to optimise, how to turn a batch of sample indices into a
loss, how to order the samples, and what to do at the start and end of each epoch (SeLa
redraws its labels there, DeepCluster re-runs k-means). The :class:`Trainer` handles
everything else once: device placement, mixed precision on CUDA, optimiser and learning-rate
schedule, batching and prefetching, non-finite losses, per-epoch history, and
checkpoint/resume of the complete state (weights, optimiser, random generators and the
method's own state), so that a resumed CPU run ends exactly as an uninterrupted one.
Progress bars, printing and checkpoint files are callbacks (see :class:`Callback`).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from deepclust.distributed import is_main_process, world_size
from deepclust.training import _data_parallel
from deepclust.training._callbacks import Callback, EpochLogger, ProgressBar
from deepclust.training._precision import autocast_dtype

__all__ = ["Stage", "Trainer", "TrainingDivergedError"]


class TrainingDivergedError(FloatingPointError):
    """Raised when a training loss becomes NaN or infinite."""


@dataclass
class Stage:
    """One phase of training.

    Parameters
    ----------
    name : str
        Shown in progress bars and recorded in the history.
    n_epochs : int
        Number of passes.
    n_samples : int
        Size of the data set the default sampler draws from.
    compute_loss : callable
        ``compute_loss(batch) -> loss`` where ``batch`` is what ``fetch`` returned for a batch
        of sample indices; returning ``None`` skips the batch (no optimiser step).
    modules : sequence of nn.Module
        Modules put in train mode during the stage (their parameters are optimised unless
        ``parameters`` is given).
    parameters : sequence of tensors, optional
        The parameters to optimise (default: all of ``modules``).
    fetch : callable, optional
        ``fetch(indices) -> batch``, run one batch ahead in a background thread (reading
        files, say). Default: the indices themselves.
    sampler : callable, optional
        ``sampler(epoch, rng) -> indices`` giving the sample order of an epoch. Default: a
        random permutation of ``range(n_samples)``.
    optimizer : {'sgd', 'adam', 'adamw'}
        The optimiser (SGD with Nesterov momentum when ``momentum > 0``).
    lr : float
        Peak learning rate, scaled by ``lr_schedule``.
    momentum : float
        SGD momentum (ignored by Adam and AdamW).
    weight_decay : float
        L2 penalty (decoupled for AdamW).
    lr_schedule : {'cosine', 'constant', 'step'}
        ``'step'`` divides the rate by 10 at 50% and 75% of the stage.
    on_stage_begin : callable, optional
        ``on_stage_begin() -> None`` runs once when the stage starts (not again when a fit
        resumes inside the stage).
    on_epoch_begin, on_epoch_end : callable, optional
        ``on_epoch_begin(epoch)`` and ``on_epoch_end(epoch)`` may return a dict that is
        merged into the epoch's history record.
    drop_last : bool
        Drop a last batch smaller than ``batch_size`` (contrastive losses want full batches).
    """

    name: str
    n_epochs: int
    n_samples: int
    compute_loss: Callable[[Any], torch.Tensor | None]
    modules: Sequence[nn.Module]
    parameters: Sequence[torch.Tensor] | None = None
    fetch: Callable[[np.ndarray], Any] | None = None
    sampler: Callable[[int, np.random.Generator], np.ndarray] | None = None
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-5
    lr_schedule: str = "cosine"
    on_stage_begin: Callable[[], None] | None = None
    on_epoch_begin: Callable[[int], dict | None] | None = None
    on_epoch_end: Callable[[int], dict | None] | None = None
    drop_last: bool = False


class _Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def _make_optimizer(stage: Stage, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    name = stage.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(
            params,
            lr=stage.lr,
            momentum=stage.momentum,
            weight_decay=stage.weight_decay,
            nesterov=stage.momentum > 0,
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=stage.lr, weight_decay=stage.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
    raise ValueError(f"Unknown optimizer {stage.optimizer!r}; use 'sgd', 'adam' or 'adamw'.")


def _lr_factor(schedule: str, step: int, total: int) -> float:
    if total <= 1 or schedule == "constant":
        return 1.0
    progress = step / total
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        return 0.1 ** (int(progress >= 0.5) + int(progress >= 0.75))
    raise ValueError(f"Unknown lr_schedule {schedule!r}; use 'cosine', 'constant' or 'step'.")


class Trainer:
    """Runs :class:`Stage` lists on one device.

    Parameters
    ----------
    device : torch.device
        Where the modules live and batches are computed.
    batch_size : int
        Samples per optimiser step.
    random_state : int
        Seeds the sample order (and, via the caller, torch's generator).
    precision : {'auto', 'mixed', 'float32'}, optional
        Autocast policy of the forward passes (see
        :func:`~deepclust.training.autocast_dtype`): bfloat16 where the device computes it
        natively, float16 with loss scaling on older CUDA devices; ``None`` takes the
        policy in force (:func:`~deepclust.training.use_precision`).
    verbose : bool or int
        If true, append a :class:`ProgressBar` and an :class:`EpochLogger` to ``callbacks``.
    callbacks : sequence of Callback
        Called at the points documented on :class:`Callback`, in this order.
    state : object, optional
        The method's own fit state (labels, neighbours), saved with checkpoints: an object
        with ``state_dict() -> dict`` and ``load_state_dict(dict) -> None``. The dict may
        hold only tensors and plain Python values.

    Attributes
    ----------
    history : list of dict
        One record per finished epoch.
    stage : Stage or None
        The stage being run.
    stage_index : int
        Its index in the list given to :meth:`fit`.
    epoch : int
        Epochs completed in the current stage.
    epochs_done_total : int
        Epochs completed over all stages.
    n_batches : int
        Number of batches of the current epoch.
    """

    def __init__(
        self,
        device: torch.device,
        batch_size: int,
        random_state: int = 0,
        precision: str | None = None,
        verbose: bool | int = False,
        callbacks: Sequence[Callback] = (),
        state: _Stateful | None = None,
    ):
        self.device = device
        self.batch_size = int(batch_size)
        self.seed = int(random_state)
        # Its own stream, independent of other generators seeded with the same number.
        self.rng = np.random.default_rng([int(random_state), 0x5EED])
        dtype = autocast_dtype(device, precision)
        self.use_amp = dtype is not None
        self.amp_dtype = dtype if dtype is not None else torch.float32
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest kernels
        self.verbose = verbose
        self.callbacks = list(callbacks)
        if verbose:
            self.callbacks += [ProgressBar(), EpochLogger()]
        self.state = state
        self.history: list[dict] = []
        self.stage: Stage | None = None
        self.stage_index = 0
        self.epoch = 0
        self.epochs_done_total = 0
        self.n_batches = 0
        self._modules: list[nn.Module] = []
        self._optimizer: torch.optim.Optimizer | None = None
        self._scaler: torch.amp.GradScaler | None = None
        self._resume: dict | None = None
        self._ddp: nn.Module | None = None

    # ------------------------------------------------------------------ state
    def autocast(self):
        """Context manager for the forward pass (a no-op when the precision is float32).

        Returns
        -------
        torch.autocast
        """
        return torch.autocast(
            device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp
        )

    def state_dict(self) -> dict:
        """Everything needed to resume: position, weights, optimiser, RNGs, method state.

        Returns
        -------
        dict
            Tensors and plain Python values only (loadable with
            ``torch.load(weights_only=True)``); the method's state is under ``"extra"``.
        """
        state = {
            "stage_index": self.stage_index,
            "epoch": self.epoch,
            "epochs_done_total": self.epochs_done_total,
            "history": [dict(r) for r in self.history],
            "modules": [m.state_dict() for m in self._modules],
            "optimizer": self._optimizer.state_dict() if self._optimizer else None,
            "scaler": self._scaler.state_dict() if self._scaler else None,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _encode_bitgen_state(self.rng.bit_generator.state),
            "numpy_global_rng": _encode_global_numpy_state(),
            "python_rng": _encode_python_state(random.getstate()),
            "extra": self.state.state_dict() if self.state is not None else {},
        }
        if torch.cuda.is_available() and self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def resume_from(self, state: dict) -> None:
        """Continue from a saved state at the next :meth:`fit`.

        Parameters
        ----------
        state : dict
            A state from :meth:`state_dict` or :func:`load_state`.
        """
        self._resume = state

    def _restore(self, state: dict) -> None:
        for module, module_state in zip(self._modules, state["modules"]):
            module.load_state_dict(module_state)
        if state["optimizer"] is not None and self._optimizer is not None:
            self._optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") is not None and self._scaler is not None:
            self._scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.rng.bit_generator.state = _decode_bitgen_state(state["numpy_rng"])
        _restore_global_numpy_state(state["numpy_global_rng"])
        random.setstate(_decode_python_state(state["python_rng"]))
        self.history = [dict(r) for r in state["history"]]
        self.epochs_done_total = int(state["epochs_done_total"])
        if self.state is not None:
            self.state.load_state_dict(state["extra"])

    def reset_optimizer_state(self, parameters) -> None:
        """Forget the optimiser's momentum for some parameters (after re-initialising them).

        Parameters
        ----------
        parameters : iterable of torch.Tensor
            Parameters whose optimiser state (momentum, Adam moments) is dropped.
        """
        if self._optimizer is None:
            return
        for param in parameters:
            self._optimizer.state.pop(param, None)

    # ------------------------------------------------------------------ loop
    def fit(self, stages: Sequence[Stage], modules: Sequence[nn.Module]) -> list[dict]:
        """Run stages in order, or resume them from the state given to :meth:`resume_from`.

        Parameters
        ----------
        stages : sequence of Stage
            The stages, run in this order.
        modules : sequence of nn.Module
            All modules whose weights are checkpointed; moved to ``device``.

        Returns
        -------
        history : list of dict
            One record per epoch: ``stage``, ``epoch``, ``loss``, ``lr``,
            ``skipped_batches``, ``seconds``, plus what the stage's hooks returned.
        """
        self._modules = list(modules)
        for module in self._modules:
            module.to(self.device)
        resume, self._resume = self._resume, None
        self._notify("on_train_begin")
        start_stage = int(resume["stage_index"]) if resume else 0
        for index, stage in enumerate(stages):
            if index < start_stage:
                continue
            self.stage_index = index
            self.epoch = 0
            self._run_stage(stage, resume if index == start_stage else None)
        self._notify("on_train_end")
        return self.history

    def _notify(self, hook: str, *args) -> None:
        """Call ``hook(self, *args)`` on every callback, in order (those marked
        ``main_process_only`` on rank 0 only)."""
        main = is_main_process()
        for callback in self.callbacks:
            if main or not getattr(callback, "main_process_only", False):
                getattr(callback, hook)(self, *args)

    def _method_hook(self, hook: Callable | None, *args) -> Any:
        """Run a stage hook; when data-parallel, then copy rank 0's method state everywhere."""
        result = hook(*args) if hook is not None else None
        if _data_parallel.active():
            _data_parallel.broadcast_state(self.state)
        return result

    def _run_stage(self, stage: Stage, resume: dict | None) -> None:
        """Set the stage up, run its remaining epochs and record them."""
        self.stage = stage
        try:
            self._begin_stage(stage, resume)
            self._notify("on_stage_begin", stage)
            n_batches = self._batches_per_epoch(stage)
            total_steps = max(1, stage.n_epochs * n_batches)
            while self.epoch < stage.n_epochs:
                record = self._run_epoch(stage, n_batches, total_steps)
                self.epoch += 1
                self.epochs_done_total += 1
                self.history.append(record)
                self._notify("on_epoch_end", record)
        finally:
            if self._ddp is not None:
                _data_parallel.unsync_batchnorm(stage.modules)
                self._ddp = None
        self._notify("on_stage_end", stage)

    def _begin_stage(self, stage: Stage, resume: dict | None) -> None:
        """Build the optimiser, then restore ``resume`` or run ``stage.on_stage_begin``."""
        if stage.parameters is not None:
            params = [p for p in stage.parameters if p.requires_grad]
        else:
            params = [p for m in stage.modules for p in m.parameters() if p.requires_grad]
        self._optimizer = _make_optimizer(stage, params) if params else None
        self._scaler = (
            torch.amp.GradScaler("cuda")
            if self.use_amp and self.amp_dtype == torch.float16
            else None
        )
        if resume is not None:
            self._restore(resume)
            self.epoch = int(resume["epoch"])
        else:
            self._method_hook(stage.on_stage_begin)
        self._ddp = None
        if _data_parallel.active() and self._optimizer is not None:
            _data_parallel.sync_batchnorm(stage.modules)
            self._ddp = _data_parallel.wrap_stage(stage.modules, stage.compute_loss, self.device)

    def _batches_per_epoch(self, stage: Stage) -> int:
        """Number of batches of an epoch of the default sampler (for the lr schedule)."""
        if stage.drop_last and stage.n_samples >= self.batch_size:
            return stage.n_samples // self.batch_size
        return math.ceil(stage.n_samples / self.batch_size)

    def _run_epoch(self, stage: Stage, n_batches: int, total_steps: int) -> dict:
        """One epoch, step by step; returns its history record."""
        started = time.perf_counter()
        record = self._begin_epoch(stage)
        batches = self._batches(stage, self._sample_order(stage))
        self.n_batches = len(batches)
        self._notify("on_epoch_begin", stage, self.epoch)
        record.update(self._run_batches(stage, batches, n_batches, total_steps))
        return self._end_epoch(stage, record, started)

    def _begin_epoch(self, stage: Stage) -> dict:
        """Start the record, run ``stage.on_epoch_begin`` and put the modules in train mode."""
        record: dict = {"stage": stage.name, "epoch": self.epoch}
        record.update(self._method_hook(stage.on_epoch_begin, self.epoch) or {})
        for module in stage.modules:
            module.train()
        return record

    def _sample_order(self, stage: Stage) -> np.ndarray:
        """The epoch's sample indices, in order: the stage's sampler or a permutation."""
        if stage.sampler is not None:
            return np.asarray(stage.sampler(self.epoch, self.rng), dtype=np.int64)
        return self.rng.permutation(stage.n_samples)

    def _batches(self, stage: Stage, order: np.ndarray) -> list[np.ndarray]:
        """Split ``order`` into batches, dropping a short last one if ``stage.drop_last``;
        when data-parallel, this rank's share of each (see :mod:`._data_parallel`)."""
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if stage.drop_last and len(batches) > 1 and len(batches[-1]) < self.batch_size:
            batches.pop()
        if _data_parallel.active():
            return _data_parallel.shard_batches(batches)
        return batches

    def _run_batches(
        self, stage: Stage, batches: list[np.ndarray], n_batches: int, total_steps: int
    ) -> dict:
        """Train on ``batches``, fetching the next one in the background.

        Returns the record's ``loss`` (mean over the batches not skipped), ``lr`` (of the
        last batch) and ``skipped_batches``.
        """
        fetch = stage.fetch or (lambda idx: idx)
        total_loss, n_steps, n_skipped = 0.0, 0, 0
        lr = stage.lr
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(fetch, batches[0]) if batches else None
            for i in range(len(batches)):
                batch = pending.result()
                pending = pool.submit(fetch, batches[i + 1]) if i + 1 < len(batches) else None
                step = self.epoch * n_batches + i
                lr = stage.lr * _lr_factor(stage.lr_schedule, step, total_steps)
                loss = self._step(stage, batch, lr, step)
                if loss is None:
                    n_skipped += 1
                else:
                    total_loss += loss
                    n_steps += 1
                self._notify("on_batch_end", stage, i, loss)
        total_loss = float(total_loss)  # on CUDA, the epoch's one wait for the device
        if self._ddp is not None:  # every rank records (and checks) the ranks' mean loss
            total_loss, n_steps, n_skipped = _data_parallel.sum_over_ranks(
                [total_loss, n_steps, n_skipped], self.device
            )
            n_steps, n_skipped = int(n_steps), int(n_skipped)
        if n_steps and (self.device.type == "cuda" or self._ddp is not None):
            self._check_loss(stage, total_loss)  # the CPU alone checked every step
        return {
            "loss": total_loss / n_steps if n_steps else float("nan"),
            "lr": lr,
            "skipped_batches": n_skipped,
        }

    def _end_epoch(self, stage: Stage, record: dict, started: float) -> dict:
        """Check the weights, then finish the record: ``stage.on_epoch_end``'s entries and
        ``seconds``."""
        if _data_parallel.active():
            _data_parallel.average_buffers(stage.modules)
        self._check_weights(stage)
        record.update(self._method_hook(stage.on_epoch_end, self.epoch) or {})
        record["seconds"] = time.perf_counter() - started
        return record

    def _step(self, stage: Stage, batch, lr: float, step: int) -> float | torch.Tensor | None:
        """Loss of one batch and an optimiser step; ``None`` if the stage skipped it.

        On the CPU the loss is read (and checked) at every step; on CUDA it stays a 0-dim
        tensor on the device, summed and checked once an epoch, so that the step loop never
        waits for the device. Data-parallel, the loss goes through DistributedDataParallel
        under a seed of the rank and ``step``, and is checked once an epoch on every rank.
        """
        if self._ddp is not None:
            return self._data_parallel_step(batch, lr, step)
        with self.autocast():
            loss = stage.compute_loss(batch)
        if loss is None:
            return None
        value = loss.detach()
        if self.device.type != "cuda":
            value = float(value)
            self._check_loss(stage, value)
        if self._optimizer is not None:
            self._optimizer_step(loss, lr)
        return value

    def _data_parallel_step(self, batch, lr: float, step: int) -> float | torch.Tensor | None:
        """:meth:`_step` through DistributedDataParallel, under a seed of the rank and step.

        A rank whose stage skips its shard back-propagates a zero loss (its gradient
        counts as zero in the ranks' average); the optimiser steps unless every rank
        skipped. The loss is checked once an epoch, on every rank.
        """
        key = (self.seed, self.stage_index, step)
        with _data_parallel.rank_seeded(key, self.device), self.autocast():
            loss, skipped = self._ddp(batch)
        everyone_skipped = _data_parallel.sum_over_ranks([float(skipped)], self.device)[0]
        self._optimizer_step(loss, lr, apply=everyone_skipped < world_size())
        if skipped:
            return None
        value = loss.detach()
        return float(value) if self.device.type != "cuda" else value

    def _check_loss(self, stage: Stage, value: float) -> None:
        """Raise :class:`TrainingDivergedError` if ``value`` is NaN or infinite."""
        if not math.isfinite(value):
            raise self.diverged(stage, f"the training loss became {value}")

    def _check_weights(self, stage: Stage) -> None:
        """Raise :class:`TrainingDivergedError` if a weight of the stage's modules is NaN or
        infinite (a loss can stay finite while the weights overflow)."""
        for module in stage.modules:
            for name, value in float_state(module):
                if not bool(torch.isfinite(value.detach()).all()):
                    raise self.diverged(stage, f"the weight {name!r} became NaN or infinite")

    def diverged(self, stage: Stage | None, what: str) -> TrainingDivergedError:
        """The error for a fit that diverged in ``stage`` (the current one when ``None``).

        Parameters
        ----------
        stage : Stage or None
            The stage that diverged.
        what : str
            What became non-finite, e.g. ``"the label step's probabilities"``.

        Returns
        -------
        TrainingDivergedError
        """
        stage = stage if stage is not None else self.stage
        where = (
            ""
            if stage is None
            else (f" in stage {stage.name!r}, epoch {min(self.epoch + 1, stage.n_epochs)}")
        )
        lr = "" if stage is None else f" (lr={stage.lr:g} now)"
        return TrainingDivergedError(
            f"Training diverged{where}: {what}. Lower the learning rate{lr}, then fit again."
        )

    def _optimizer_step(self, loss: torch.Tensor, lr: float, apply: bool = True) -> None:
        """Back-propagate ``loss`` and step the optimiser at learning rate ``lr`` (only
        back-propagate when not ``apply``: data-parallel, the gradients' all-reduce runs
        in the backward pass on every rank even when no rank steps)."""
        for group in self._optimizer.param_groups:
            group["lr"] = lr
        self._optimizer.zero_grad(set_to_none=True)
        if not apply:
            loss.backward()
            self._optimizer.zero_grad(set_to_none=True)
        elif self._scaler is not None:
            self._scaler.scale(loss).backward()
            self._scaler.step(self._optimizer)
            self._scaler.update()
        else:
            loss.backward()
            self._optimizer.step()


def float_state(module: nn.Module):
    """``(name, tensor)`` of a module's parameters and floating-point buffers (BatchNorm's
    running statistics included).

    Parameters
    ----------
    module : nn.Module
        The module whose values are listed.

    Yields
    ------
    tuple of (str, torch.Tensor)
    """
    yield from module.named_parameters()
    yield from ((n, b) for n, b in module.named_buffers() if b.is_floating_point())


# Random-generator states are stored as tensors and plain values so checkpoints load
# with ``torch.load(weights_only=True)``.
def _encode_bitgen_state(state: dict) -> dict:
    inner = state["state"]
    return {
        "bit_generator": state["bit_generator"],
        "state": str(inner["state"]),
        "inc": str(inner["inc"]),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def _decode_bitgen_state(encoded: dict) -> dict:
    return {
        "bit_generator": encoded["bit_generator"],
        "state": {"state": int(encoded["state"]), "inc": int(encoded["inc"])},
        "has_uint32": encoded["has_uint32"],
        "uinteger": encoded["uinteger"],
    }


def _encode_global_numpy_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _restore_global_numpy_state(encoded: dict) -> None:
    np.random.set_state(  # noqa: NPY002
        (
            encoded["name"],
            encoded["keys"].numpy().astype(np.uint32),
            encoded["pos"],
            encoded["has_gauss"],
            encoded["cached"],
        )
    )


def _encode_python_state(state: tuple) -> dict:
    version, internal, gauss = state
    return {
        "version": version,
        "internal": torch.tensor(internal, dtype=torch.int64),
        "gauss": gauss,
    }


def _decode_python_state(encoded: dict) -> tuple:
    return (
        encoded["version"],
        tuple(int(v) for v in encoded["internal"].tolist()),
        encoded["gauss"],
    )
