"""What the :class:`~deepclust.training.Trainer` does differently under ``torchrun``.

When a default process group is initialised (:func:`deepclust.distributed.is_distributed`)
with more than one rank, every rank runs the same fit and the trainer:

* splits every batch of the epoch's seeded sample order (the same on every rank) with
  :func:`~deepclust.distributed.shard_indices`, after dropping the last
  ``len(batch) % world_size`` samples of a batch that does not divide evenly, so that
  every rank runs the same number of optimiser steps on equally many samples and the
  ranks' shards of a step together are the single-process batch (``batch_size`` is the
  global batch);
* computes each step's loss through :class:`torch.nn.parallel.DistributedDataParallel`
  around the stage's modules, so that the gradients are averaged over the ranks, and
  under a rank-specific torch seed, so that the ranks draw different augmentations
  while torch's global generator stays the same on every rank;
* swaps the stage's BatchNorm layers for :class:`~deepclust.distributed.SyncBatchNorm`
  (:func:`sync_batchnorm`, on the CPU and on CUDA alike; :class:`torch.nn.SyncBatchNorm`
  computes on GPUs only) for the stage's steps, so that every step normalises with the
  statistics of the global batch, and swaps them back when the stage ends
  (:func:`unsync_batchnorm`): the fitted network holds plain BatchNorm layers;
* averages the floating-point buffers over the ranks after every epoch (a safeguard:
  with synchronised BatchNorm the running statistics are already the same on every
  rank, up to rounding);
* copies the method's fit state (its labels) from rank 0 after each stage and epoch
  hook, so that every rank trains on the same labels even where a label step is not bit
  for bit reproducible.

The fit's full-data inference passes (features and head probabilities for a label step)
are split too: each rank evaluates its consecutive block of the samples
(:func:`rank_rows`) and the blocks are gathered in order (:func:`gather_blocks`, through
:func:`~deepclust.training._inference.run_sharded_inference`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from deepclust._utils import all_finite
from deepclust.distributed import (
    convert_sync_batchnorm,
    is_distributed,
    rank,
    revert_sync_batchnorm,
    shard_indices,
    world_size,
)
from deepclust.distributed._helpers import _gather_padded

__all__ = [
    "active",
    "average_buffers",
    "broadcast_state",
    "communication_device",
    "finite_on_every_rank",
    "fitted_from_rank0",
    "gather_blocks",
    "rank_rows",
    "shards_rows",
    "sum_over_ranks",
    "rank_seeded",
    "same_on_every_rank",
    "shard_batches",
    "sync_batchnorm",
    "unsync_batchnorm",
    "wrap_stage",
]


def active() -> bool:
    """Whether the trainer runs data-parallel (a process group of more than one rank).

    Returns
    -------
    bool
    """
    return is_distributed() and world_size() > 1


def shards_rows(n_samples: int) -> bool:
    """Whether a full-data pass over ``n_samples`` samples is split over the ranks.

    It is when the fit is data-parallel (:func:`active`) and every rank gets at least one
    sample.

    Parameters
    ----------
    n_samples : int
        Samples of the pass.

    Returns
    -------
    bool
    """
    return active() and n_samples >= world_size()


def _block_sizes(n_samples: int) -> list[int]:
    """Samples of every rank's block, in rank order (those of :func:`shard_indices`)."""
    base, extra = divmod(n_samples, world_size())
    return [base + (1 if r < extra else 0) for r in range(world_size())]


def rank_rows(n_samples: int) -> slice:
    """This rank's consecutive block of ``range(n_samples)`` in a split full-data pass.

    Parameters
    ----------
    n_samples : int
        Samples of the pass.

    Returns
    -------
    slice
        The block of :func:`~deepclust.distributed.shard_indices` of
        ``numpy.arange(n_samples)`` for this rank, or every sample when the pass is not
        split (:func:`shards_rows`).
    """
    if not shards_rows(n_samples):
        return slice(0, n_samples)
    sizes = _block_sizes(n_samples)
    start = sum(sizes[: rank()])
    return slice(start, start + sizes[rank()])


def communication_device(device: torch.device) -> torch.device:
    """Where the default group's collectives take tensors.

    Parameters
    ----------
    device : torch.device
        The training device.

    Returns
    -------
    torch.device
        ``device`` under NCCL, else the CPU.
    """
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_blocks(
    local: torch.Tensor, n_samples: int, device: torch.device, chunk_values: int = 2**24
) -> torch.Tensor:
    """Every rank's block of rows (:func:`rank_rows`) in rank order, i.e. in sample order.

    The blocks travel in pieces of about ``chunk_values`` values per rank, so a gather on
    the GPU (NCCL) needs ``world_size`` pieces of device memory, not the whole result.
    Half-precision rows travel as float32 under gloo (exactly).

    Parameters
    ----------
    local : torch.Tensor of shape (n_rank, ...)
        This rank's rows of the pass.
    n_samples : int
        Rows of the whole pass (:func:`shards_rows` must hold).
    device : torch.device
        The training device (the collectives run on it under NCCL).
    chunk_values : int, default=2**24
        Values per rank and piece.

    Returns
    -------
    torch.Tensor of shape (n_samples, ...)
        The same on every rank, on ``local``'s device and in its dtype.
    """
    sizes = _block_sizes(n_samples)
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    out = local.new_empty((n_samples, *local.shape[1:]))
    comm = communication_device(device)
    wire = local.dtype
    if comm.type == "cpu" and local.dtype in (torch.float16, torch.bfloat16):
        wire = torch.float32
    step = max(1, chunk_values // max(1, local[0].numel() if len(local) else 1))
    for offset in range(0, max(sizes), step):
        counts = [min(max(size - offset, 0), step) for size in sizes]
        piece = local[offset : offset + step].to(comm, wire).contiguous()
        gathered = _gather_padded(piece, counts, None).split(counts)
        for start, count, rows in zip(starts, counts, gathered):
            out[start + offset : start + offset + count] = rows.to(out.device, out.dtype)
    return out


def finite_on_every_rank(tensor: torch.Tensor, device: torch.device) -> bool:
    """Whether ``tensor`` holds no NaN or infinity on any rank (every rank gets the answer).

    Parameters
    ----------
    tensor : torch.Tensor
        This rank's values.
    device : torch.device
        The training device (the all-reduce runs there).

    Returns
    -------
    bool
    """
    return sum_over_ranks([not all_finite(tensor)], communication_device(device))[0] == 0


class _StageLoss(nn.Module):
    """The stage's modules as one module whose forward is the stage's loss (internal).

    :class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients of the
    parameters of the module it wraps when its forward is called; the stage's
    ``compute_loss`` calls the modules themselves, so this module runs it as its forward.
    """

    def __init__(self, modules: Sequence[nn.Module], compute_loss: Callable[[Any], Any]):
        super().__init__()
        self.stage_modules = nn.ModuleList(modules)
        self.compute_loss = compute_loss

    def forward(self, batch: Any) -> tuple[torch.Tensor, bool]:
        """The stage's loss of ``batch``, and whether the stage skipped it.

        Parameters
        ----------
        batch : Any
            What the stage's ``fetch`` returned.

        Returns
        -------
        loss : torch.Tensor
            The loss; for a skipped batch, a zero that depends on every trained parameter
            (its backward takes part in the gradients' all-reduce with a zero gradient).
        skipped : bool
            Whether ``compute_loss`` returned ``None``.
        """
        loss = self.compute_loss(batch)
        if loss is not None:
            return loss, False
        trained = [p.reshape(-1)[:1] for p in self.parameters() if p.requires_grad]
        return torch.cat(trained).sum() * 0.0, True


def sync_batchnorm(modules: Sequence[nn.Module]) -> None:
    """Swap the BatchNorm layers inside ``modules`` for synchronised ones, in place.

    The layers keep their parameters and buffers (the optimiser's tensors) and their
    ``state_dict`` keys (:func:`~deepclust.distributed.convert_sync_batchnorm`). A module
    of ``modules`` that is itself a BatchNorm layer is left as it is (only its parent
    could replace it).

    Parameters
    ----------
    modules : sequence of nn.Module
        The stage's modules.
    """
    _convert_containers(modules, convert_sync_batchnorm)


def unsync_batchnorm(modules: Sequence[nn.Module]) -> None:
    """Undo :func:`sync_batchnorm`: plain BatchNorm layers again, same tensors.

    Parameters
    ----------
    modules : sequence of nn.Module
        The stage's modules.
    """
    _convert_containers(modules, revert_sync_batchnorm)


def _convert_containers(modules: Sequence[nn.Module], convert: Callable) -> None:
    """``convert`` every module of ``modules`` but bare BatchNorm layers, whose
    replacement only their parent could install."""
    for module in modules:
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            convert(module)


def wrap_stage(
    modules: Sequence[nn.Module],
    compute_loss: Callable[[Any], Any],
    device: torch.device,
) -> DistributedDataParallel:
    """``compute_loss`` as the forward of a DistributedDataParallel over ``modules``.

    Constructing it broadcasts rank 0's parameters and buffers to every rank. Parameters
    the stage does not use (a projection head outside the pretext, or every parameter on
    a rank that skips its shard) are allowed (``find_unused_parameters``); buffers are not
    broadcast at each step (synchronised BatchNorm, see :func:`sync_batchnorm`, keeps the
    running statistics in step) but averaged after each epoch (:func:`average_buffers`).

    Parameters
    ----------
    modules : sequence of nn.Module
        The stage's modules (already on ``device``).
    compute_loss : callable
        The stage's ``compute_loss(batch) -> loss``.
    device : torch.device
        The training device (a CUDA device is given to DDP as its ``device_ids``).

    Returns
    -------
    DistributedDataParallel
        Call it with a batch to get the loss.
    """
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    with warnings.catch_warnings():
        # No per-step buffer broadcast is wanted (synchronised BatchNorm updates the same
        # statistics on every rank; average_buffers runs per epoch); torch 2.14 warns that
        # the argument will be renamed.
        warnings.filterwarnings("ignore", message=".*broadcast_buffers.*")
        return DistributedDataParallel(
            _StageLoss(modules, compute_loss),
            device_ids=device_ids,
            broadcast_buffers=False,
            find_unused_parameters=True,
        )


def shard_batches(batches: Sequence[np.ndarray]) -> list[np.ndarray]:
    """This rank's share of every batch, the same number of samples on every rank.

    Parameters
    ----------
    batches : sequence of numpy.ndarray
        The epoch's batches of sample indices, the same on every rank.

    Returns
    -------
    list of numpy.ndarray
        ``shard_indices`` of each batch cut to a multiple of the world size; a batch with
        fewer samples than ranks is dropped.
    """
    size, me = world_size(), rank()
    out = []
    for batch in batches:
        kept = batch[: len(batch) - len(batch) % size]
        if len(kept):
            out.append(shard_indices(kept, me, size))
    return out


@contextlib.contextmanager
def rank_seeded(key: Sequence[int], device: torch.device) -> Iterator[None]:
    """Run the block under a torch seed of its own per rank and ``key``.

    Torch's global generator (and that of ``device``) is restored on leaving, so it stays
    the same on every rank (head re-initialisations drawn from it agree), while each
    rank's augmentations and dropout differ.

    Parameters
    ----------
    key : sequence of int
        What makes the seed differ between steps, e.g. the fit's seed, the stage and the
        optimiser step (non-negative integers).
    device : torch.device
        The training device, whose generator is forked too when it is a CUDA device.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        mixed = np.random.SeedSequence([*(int(k) % 2**63 for k in key), rank()])
        torch.manual_seed(int(mixed.generate_state(1, dtype=np.uint64)[0] % 2**63))
        yield


def sum_over_ranks(values: Sequence[float], device: torch.device) -> list[float]:
    """The sums of ``values`` over the ranks (every rank gets them), in one all-reduce.

    Parameters
    ----------
    values : sequence of float
        This rank's values.
    device : torch.device
        Where the collective runs (the training device).

    Returns
    -------
    list of float
    """
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def average_buffers(modules: Sequence[nn.Module]) -> None:
    """Replace every floating-point buffer of ``modules`` by its mean over the ranks.

    Parameters
    ----------
    modules : sequence of nn.Module
        The modules whose buffers (BatchNorm's running statistics, the same on every rank
        with synchronised BatchNorm up to rounding) are averaged in place.
    """
    size = world_size()
    for module in modules:
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer.data)
                buffer.data.div_(size)


def broadcast_state(state: Any) -> None:
    """Copy the method's fit state of rank 0 to every rank.

    Parameters
    ----------
    state : object with ``state_dict()`` and ``load_state_dict(dict)``, or None
        The trainer's method state; nothing is done when ``None``.
    """
    if state is None:
        return
    payload = [state.state_dict() if rank() == 0 else None]
    dist.broadcast_object_list(payload, src=0)
    if rank() != 0:
        state.load_state_dict(payload[0])


def same_on_every_rank(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (``value`` itself unless data-parallel).

    Parameters
    ----------
    value : Any
        A picklable value (the fit's seed, fitted attributes).

    Returns
    -------
    Any
        Rank 0's value.
    """
    if not active():
        return value
    payload = [value if rank() == 0 else None]
    dist.broadcast_object_list(payload, src=0)
    return payload[0]


def fitted_from_rank0(fitted: dict) -> dict:
    """``fitted`` with every value but the modules replaced by rank 0's.

    The modules (the trained network) are already the same on every rank; the labels,
    centroids and history are made so even where a rank's final label step or timings
    differed.

    Parameters
    ----------
    fitted : dict
        A method's fitted attributes on this rank.

    Returns
    -------
    dict
        The same dict, updated in place.
    """
    if not active():
        return fitted
    plain = {k: v for k, v in fitted.items() if not isinstance(v, nn.Module)}
    fitted.update(same_on_every_rank(plain))
    return fitted
