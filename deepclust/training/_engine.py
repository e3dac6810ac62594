"""The one training loop every method runs, with behaviour added by hooks and callbacks.

A method describes its training as a list of :class:`Stage` objects (SCAN has three,
SeLa one): which parameters to optimise, how to turn a batch of sample indices into a
loss, how to order the samples, and what to do at the start and end of each epoch (SeLa
redraws its labels there, DeepCluster re-runs k-means). The :class:`Trainer` handles
everything else once: device placement, mixed precision on CUDA, optimiser and learning-rate
schedule, batching and prefetching, non-finite losses, progress bars, per-epoch history,
and checkpoint/resume of the complete state (weights, optimiser, random generators and the
method's own state), so that a resumed CPU run ends exactly as an uninterrupted one.
"""

from __future__ import annotations

import io
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from deepclust._utils import atomic_write

__all__ = ["Stage", "Trainer", "Callback", "Checkpoint", "TrainingDivergedError"]


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
    lr, momentum, weight_decay : float
    lr_schedule : {'cosine', 'constant', 'step'}
        ``'step'`` divides the rate by 10 at 50% and 75% of the stage.
    on_begin, on_epoch_begin, on_epoch_end : callable, optional
        ``on_begin()`` runs once when the stage starts (not again on resume);
        ``on_epoch_begin(epoch)`` and ``on_epoch_end(epoch)`` may return a dict that is
        added to the epoch's history record.
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
    on_begin: Callable[[], None] | None = None
    on_epoch_begin: Callable[[int], dict | None] | None = None
    on_epoch_end: Callable[[int], dict | None] | None = None
    drop_last: bool = False
    extra: dict = field(default_factory=dict)


class Callback:
    """Base class of trainer callbacks; override what you need."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called before the first stage."""

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        """Called after every epoch with its history record."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called after the last stage."""


class Checkpoint(Callback):
    """Write the trainer's full state to ``path`` after every ``every`` epochs, atomically.

    The file is a ``torch.save`` archive of tensors and plain Python values, loadable with
    ``torch.load(path, weights_only=True)``.
    """

    def __init__(self, path: str | os.PathLike, every: int = 1):
        self.path = os.fspath(path)
        self.every = every

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        if trainer.epochs_done_total % self.every == 0:
            save_state(trainer.state_dict(), self.path)


def save_state(state: dict, path: str) -> None:
    """``torch.save`` ``state`` to ``path`` through a temporary file and an atomic rename."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


def load_state(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by :class:`Checkpoint` without executing code from it."""
    return torch.load(os.fspath(path), map_location="cpu", weights_only=True)


def _make_optimizer(stage: Stage, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    name = stage.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay,
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
    amp : bool
        Mixed precision (bfloat16, or float16 with loss scaling) on CUDA; ignored on CPU.
    verbose : bool or int
        Show a progress bar per epoch.
    callbacks : sequence of Callback
    get_extra_state, set_extra_state : callable, optional
        Save and restore the method's own state (labels, neighbours) with checkpoints.
    """

    def __init__(
        self,
        device: torch.device,
        batch_size: int,
        random_state: int = 0,
        amp: bool = True,
        verbose: bool | int = False,
        callbacks: Sequence[Callback] = (),
        get_extra_state: Callable[[], dict] | None = None,
        set_extra_state: Callable[[dict], None] | None = None,
    ):
        self.device = device
        self.batch_size = int(batch_size)
        # Its own stream, independent of other generators seeded with the same number.
        self.rng = np.random.default_rng([int(random_state), 0x5EED])
        self.use_amp = bool(amp) and device.type == "cuda"
        if self.use_amp and torch.cuda.is_bf16_supported():
            self.amp_dtype = torch.bfloat16
        else:
            self.amp_dtype = torch.float16
        self.verbose = verbose
        self.callbacks = list(callbacks)
        self.get_extra_state = get_extra_state
        self.set_extra_state = set_extra_state
        self.history: list[dict] = []
        self.stage_index = 0
        self.epoch = 0  # epochs completed in the current stage
        self.epochs_done_total = 0
        self._modules: list[nn.Module] = []
        self._optimizer: torch.optim.Optimizer | None = None
        self._scaler: torch.amp.GradScaler | None = None
        self._resume: dict | None = None

    # ------------------------------------------------------------------ state
    def autocast(self):
        """Context manager for the forward pass (a no-op on CPU)."""
        return torch.autocast(
            device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp
        )

    def state_dict(self) -> dict:
        """Everything needed to resume: position, weights, optimiser, RNGs, method state."""
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
            "extra": self.get_extra_state() if self.get_extra_state else {},
        }
        if torch.cuda.is_available() and self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def resume_from(self, state: dict) -> None:
        """Continue from a state written by :meth:`state_dict` at the next :meth:`fit`."""
        self._resume = state

    def _restore(self, state: dict, stage: Stage) -> None:
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
        if self.set_extra_state is not None:
            self.set_extra_state(state["extra"])

    def reset_optimizer_state(self, parameters) -> None:
        """Forget the optimiser's momentum for ``parameters`` (after re-initialising them)."""
        if self._optimizer is None:
            return
        for param in parameters:
            self._optimizer.state.pop(param, None)

    # ------------------------------------------------------------------ loop
    def fit(self, stages: Sequence[Stage], modules: Sequence[nn.Module]) -> list[dict]:
        """Run ``stages`` in order; ``modules`` are all modules whose weights are checkpointed.

        Returns
        -------
        history : list of dict
            One record per epoch: stage, epoch, loss, lr, seconds, plus what hooks returned.
        """
        self._modules = list(modules)
        for module in self._modules:
            module.to(self.device)
        resume = self._resume
        self._resume = None
        for cb in self.callbacks:
            cb.on_train_begin(self)
        start_stage = int(resume["stage_index"]) if resume else 0
        for index, stage in enumerate(stages):
            if index < start_stage:
                continue
            self.stage_index = index
            self.epoch = 0
            self._run_stage(stage, resume if index == start_stage else None)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _run_stage(self, stage: Stage, resume: dict | None) -> None:
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
            self._restore(resume, stage)
            self.epoch = int(resume["epoch"])
        elif stage.on_begin is not None:
            stage.on_begin()
        n_batches = self._n_batches(stage)
        total_steps = max(1, stage.n_epochs * n_batches)
        while self.epoch < stage.n_epochs:
            record = self._run_epoch(stage, n_batches, total_steps)
            self.epoch += 1
            self.epochs_done_total += 1
            self.history.append(record)
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)

    def _n_batches(self, stage: Stage) -> int:
        if stage.drop_last and stage.n_samples >= self.batch_size:
            return stage.n_samples // self.batch_size
        return math.ceil(stage.n_samples / self.batch_size)

    def _batches(self, stage: Stage, order: np.ndarray) -> list[np.ndarray]:
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if stage.drop_last and len(batches) > 1 and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def _run_epoch(self, stage: Stage, n_batches: int, total_steps: int) -> dict:
        started = time.perf_counter()
        record: dict = {"stage": stage.name, "epoch": self.epoch}
        if stage.on_epoch_begin is not None:
            record.update(stage.on_epoch_begin(self.epoch) or {})
        for module in stage.modules:
            module.train()
        if stage.sampler is not None:
            order = np.asarray(stage.sampler(self.epoch, self.rng), dtype=np.int64)
        else:
            order = self.rng.permutation(stage.n_samples)
        batches = self._batches(stage, order)
        fetch = stage.fetch or (lambda idx: idx)
        total_loss, n_steps, n_skipped = 0.0, 0, 0
        progress = None
        if self.verbose:
            from tqdm.auto import tqdm

            progress = tqdm(
                total=len(batches), leave=False,
                desc=f"{stage.name} {self.epoch + 1}/{stage.n_epochs}",
            )
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(fetch, batches[0]) if batches else None
            for i in range(len(batches)):
                batch = pending.result()
                pending = pool.submit(fetch, batches[i + 1]) if i + 1 < len(batches) else None
                step = self.epoch * n_batches + i
                lr = stage.lr * _lr_factor(stage.lr_schedule, step, total_steps)
                loss = self._step(stage, batch, lr)
                if loss is None:
                    n_skipped += 1
                else:
                    total_loss += loss
                    n_steps += 1
                if progress is not None:
                    progress.update(1)
                    if loss is not None:
                        progress.set_postfix(loss=f"{loss:.4f}")
        if progress is not None:
            progress.close()
        record["loss"] = total_loss / n_steps if n_steps else float("nan")
        record["lr"] = lr if batches else stage.lr
        record["skipped_batches"] = n_skipped
        if stage.on_epoch_end is not None:
            record.update(stage.on_epoch_end(self.epoch) or {})
        record["seconds"] = time.perf_counter() - started
        if self.verbose:
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in record.items()
                if k not in ("stage", "epoch")
            )
            print(f"[{stage.name}] epoch {self.epoch + 1}/{stage.n_epochs}: {shown}", flush=True)
        return record

    def _step(self, stage: Stage, batch, lr: float) -> float | None:
        with self.autocast():
            loss = stage.compute_loss(batch)
        if loss is None:
            return None
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"The training loss became {value} in stage {stage.name!r}, epoch "
                f"{self.epoch + 1}; the network diverged. Lower the learning rate "
                f"(lr={stage.lr:g} now) or the batch size's effect, then fit again."
            )
        if self._optimizer is None:
            return value
        for group in self._optimizer.param_groups:
            group["lr"] = lr
        self._optimizer.zero_grad(set_to_none=True)
        if self._scaler is not None:
            self._scaler.scale(loss).backward()
            self._scaler.step(self._optimizer)
            self._scaler.update()
        else:
            loss.backward()
            self._optimizer.step()
        return value


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
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss}


def _decode_python_state(encoded: dict) -> tuple:
    return (encoded["version"], tuple(int(v) for v in encoded["internal"].tolist()),
            encoded["gauss"])
