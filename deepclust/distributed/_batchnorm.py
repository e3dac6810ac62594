"""BatchNorm whose training statistics are computed over every rank, on any device.

:class:`torch.nn.SyncBatchNorm` computes on CUDA only; these layers all-reduce each
channel's sum, sum of squares and count (one tensor, in float32) with a differentiable
all-reduce, so they also run on the CPU under gloo and the gradients flow across the
ranks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from deepclust.distributed._helpers import is_distributed, world_size

__all__ = [
    "SyncBatchNorm",
    "SyncBatchNorm1d",
    "convert_sync_batchnorm",
    "revert_sync_batchnorm",
]


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over the ranks of ``group``; its gradient is the sum of the
    ranks' gradients (each rank's loss depends on every rank's input)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        total = grad.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.group)
        return total, None


def _differentiable_all_reduce(tensor: torch.Tensor, group: Any = None) -> torch.Tensor:
    """:class:`_SumOverRanks` applied to ``tensor``."""
    return _SumOverRanks.apply(tensor, group)


def _global_statistics(
    x: torch.Tensor, group: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean, biased variance and sample count of ``x`` over the ranks of ``group``.

    Parameters
    ----------
    x : torch.Tensor of shape (n, channels, ...)
        This rank's batch.
    group : torch.distributed.ProcessGroup or None
        The ranks to reduce over (``None``: the default group).

    Returns
    -------
    mean, var : torch.Tensor of shape (channels,)
        In float32, differentiable (through every rank's batch).
    count : torch.Tensor of shape ()
        Values per channel in the global batch (float32).
    """
    dims = [0, *range(2, x.dim())]
    xf = x.float()
    local_count = x.numel() // x.shape[1] if x.shape[1] else 0
    local = torch.cat([xf.sum(dims), (xf * xf).sum(dims), xf.new_full((1,), float(local_count))])
    if x.is_cuda and dist.get_backend(group) != "nccl":
        total = _differentiable_all_reduce(local.cpu(), group=group).to(x.device)
    else:
        total = _differentiable_all_reduce(local, group=group)
    channels = x.shape[1]
    count = total[-1].detach()
    if not count.is_cuda and float(count) <= 1:  # no device sync on CUDA
        raise ValueError(
            "Expected more than 1 value per channel when training over all ranks, got "
            f"{int(float(count))}"
        )
    mean = total[:channels] / count
    var = (total[channels : 2 * channels] / count - mean * mean).clamp_min(0.0)
    return mean, var, count


class _SyncBatchNormMixin:
    """Training-mode forward over every rank (shared by the 1d and 2d layers).

    Outside a process group of more than one rank, and in evaluation mode, the layer is
    exactly its :class:`torch.nn.BatchNorm` base class.
    """

    process_group: Any = None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        process_group: Any = None,
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _synchronises(self) -> bool:
        """Whether this forward computes the batch statistics over the ranks (training
        mode inside a process group of more than one rank)."""
        return self.training and is_distributed() and world_size(self.process_group) > 1

    def _update_running_stats(
        self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor
    ) -> None:
        """Momentum update of the running statistics, as :class:`torch.nn.BatchNorm` does."""
        if not self.track_running_stats or self.running_mean is None:
            return
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
            else:
                factor = float(self.momentum)
            unbiased = var.detach() * (count / (count - 1))
            rm, rv = self.running_mean, self.running_var
            rm.mul_(1 - factor).add_(mean.detach().to(rm.dtype), alpha=factor)
            rv.mul_(1 - factor).add_(unbiased.to(rv.dtype), alpha=factor)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalise ``input`` (over every rank's batch when training data-parallel).

        Parameters
        ----------
        input : torch.Tensor of shape (n, num_features, ...)
            This rank's batch.

        Returns
        -------
        torch.Tensor
            Same shape and dtype as ``input``.
        """
        if not self._synchronises():
            return super().forward(input)  # type: ignore[misc]
        self._check_input_dim(input)
        with torch.autocast(device_type=input.device.type, enabled=False):
            mean, var, count = _global_statistics(input, self.process_group)
            self._update_running_stats(mean, var, count)
            shape = (1, -1) + (1,) * (input.dim() - 2)
            out = (input.float() - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
            if self.affine:
                out = out * self.weight.float().view(shape) + self.bias.float().view(shape)
        return out.to(input.dtype)


class SyncBatchNorm(_SyncBatchNormMixin, nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` whose training statistics span every rank.

    In training mode, inside a process group of more than one rank
    (:func:`deepclust.distributed.is_distributed`), each channel's mean and variance are
    those of the global batch (every rank's share together): the ranks' sums, sums of
    squares and counts are all-reduced in float32 (also under autocast) with the
    differentiable all-reduce, so the input
    gradients are those of one process on the global batch. The input is normalised with
    the biased variance and the running variance is updated with the unbiased one, with
    ``momentum`` (or the cumulative average when ``momentum=None``), as BatchNorm does.
    Unlike :class:`torch.nn.SyncBatchNorm`, it runs on the CPU (gloo) as well as on CUDA.

    In evaluation mode, or without such a process group, it is exactly
    :class:`torch.nn.BatchNorm2d`. Its parameters, buffers and ``state_dict`` keys are
    those of BatchNorm2d. Every rank must call its training-mode forward the same number
    of times (the all-reduce is a collective).

    Parameters
    ----------
    num_features : int
        Channels.
    eps, momentum, affine, track_running_stats, device, dtype
        As :class:`torch.nn.BatchNorm2d`.
    process_group : torch.distributed.ProcessGroup, optional
        The ranks whose batches are normalised together; ``None`` is the default group.
    """


class SyncBatchNorm1d(_SyncBatchNormMixin, nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` whose training statistics span every rank.

    The 1d counterpart of :class:`SyncBatchNorm` (inputs of shape ``(n, C)`` or
    ``(n, C, L)``); in evaluation mode, or without a process group of more than one rank,
    it is exactly :class:`torch.nn.BatchNorm1d`.

    Parameters
    ----------
    num_features : int
        Channels.
    eps, momentum, affine, track_running_stats, device, dtype
        As :class:`torch.nn.BatchNorm1d`.
    process_group : torch.distributed.ProcessGroup, optional
        The ranks whose batches are normalised together; ``None`` is the default group.
    """


_TO_SYNC: dict[type, type] = {nn.BatchNorm1d: SyncBatchNorm1d, nn.BatchNorm2d: SyncBatchNorm}
_TO_PLAIN: dict[type, type] = {SyncBatchNorm1d: nn.BatchNorm1d, SyncBatchNorm: nn.BatchNorm2d}


def _swapped(module: nn.Module, target: type, **kwargs: Any) -> nn.Module:
    """A ``target`` layer sharing ``module``'s parameters, buffers and mode."""
    new = target(
        module.num_features,
        module.eps,
        module.momentum,
        module.affine,
        module.track_running_stats,
        **kwargs,
    )
    for name in ("weight", "bias"):
        if getattr(module, name, None) is not None:
            setattr(new, name, getattr(module, name))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        new._buffers[name] = module._buffers.get(name)
    new.train(module.training)
    return new


def _convert(module: nn.Module, mapping: dict[type, type], **kwargs: Any) -> nn.Module:
    """``module`` with every layer of a type in ``mapping`` swapped (children in place)."""
    target = mapping.get(type(module))
    if target is not None:
        return _swapped(module, target, **kwargs)
    for name, child in module.named_children():
        new = _convert(child, mapping, **kwargs)
        if new is not child:
            setattr(module, name, new)
    return module


def convert_sync_batchnorm(module: nn.Module, process_group: Any = None) -> nn.Module:
    """Swap every BatchNorm1d and BatchNorm2d layer of ``module`` for its sync layer.

    Like :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`: the new layers share the
    old ones' parameters and buffers (same tensors, so an optimiser built on the
    parameters keeps working) and their ``affine``, ``track_running_stats``, ``eps``,
    ``momentum`` and training mode; the ``state_dict`` keys do not change. Layers that are
    subclasses of BatchNorm (and 3d BatchNorm) are left alone.

    Parameters
    ----------
    module : nn.Module
        The network; its children are replaced in place.
    process_group : torch.distributed.ProcessGroup, optional
        Given to the new layers.

    Returns
    -------
    nn.Module
        ``module`` itself, or a new layer when ``module`` is a BatchNorm layer.
    """
    return _convert(module, _TO_SYNC, process_group=process_group)


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Undo :func:`convert_sync_batchnorm`: every sync layer back to plain BatchNorm.

    Parameters
    ----------
    module : nn.Module
        The network; its children are replaced in place.

    Returns
    -------
    nn.Module
        ``module`` itself, or a new layer when ``module`` is a sync layer.
    """
    return _convert(module, _TO_PLAIN)
