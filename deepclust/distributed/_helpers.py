"""Rank queries, sample sharding and row gathers on :mod:`torch.distributed`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

_REDUCE_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN"}


def is_distributed() -> bool:
    """Whether a default process group is initialised (``torch.distributed``).

    Returns
    -------
    bool
        ``True`` inside a script started by ``torchrun`` (or any process that called
        :func:`torch.distributed.init_process_group`), else ``False``.
    """
    return dist.is_available() and dist.is_initialized()


def world_size(group: Any = None) -> int:
    """Number of processes in ``group`` (the default group when ``None``), 1 when not distributed.

    Parameters
    ----------
    group : torch.distributed.ProcessGroup, optional
        The process group; ``None`` is the default (world) group.

    Returns
    -------
    int
        The group's size, or 1 without an initialised process group.
    """
    return dist.get_world_size(group) if is_distributed() else 1


def rank(group: Any = None) -> int:
    """This process' rank in ``group`` (the default group when ``None``), 0 when not distributed.

    Parameters
    ----------
    group : torch.distributed.ProcessGroup, optional
        The process group; ``None`` is the default (world) group.

    Returns
    -------
    int
        The rank, from 0 to ``world_size(group) - 1``.
    """
    return dist.get_rank(group) if is_distributed() else 0


def is_main_process() -> bool:
    """Whether this process has rank 0 in the default group (always true when not distributed).

    Returns
    -------
    bool
        ``True`` on the process that should write files, logs and progress output.
    """
    return rank() == 0


def shard_indices(order: Any, rank: int, world_size: int) -> np.ndarray:
    """This rank's contiguous share of a sample order, without padding.

    The order is cut into ``world_size`` consecutive blocks whose sizes differ by at most
    one (the first ``len(order) % world_size`` ranks get one more, as
    :func:`numpy.array_split`). The blocks concatenated in rank order are exactly
    ``order``: every sample is used once, none is repeated to even the sizes, so a
    :func:`all_gather_rows` of per-sample results restores the single-process order.

    Parameters
    ----------
    order : array-like of int, shape (n_samples,)
        The sample order, e.g. the engine's seeded permutation (the same on every rank).
    rank : int
        The rank whose share is wanted, ``0 <= rank < world_size``.
    world_size : int
        Number of ranks, at least 1.

    Returns
    -------
    numpy.ndarray of shape (n_rank,)
        The indices of ``order`` that ``rank`` processes, in order (empty when there are
        fewer samples than ranks and ``rank >= len(order)``).
    """
    order = np.asarray(order)
    if order.ndim != 1:
        raise ValueError(f"order must be 1-D, got shape {order.shape}.")
    if isinstance(world_size, bool) or not isinstance(world_size, (int, np.integer)):
        raise TypeError(f"world_size must be an integer, got {world_size!r}.")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}.")
    base, extra = divmod(len(order), int(world_size))
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    return order[start:stop]


def _row_counts(n_rows: int, device: torch.device, group: Any) -> list[int]:
    """Rows held by every rank of ``group``, in rank order (one all-gather)."""
    local = torch.tensor([n_rows], dtype=torch.int64, device=device)
    counts = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(counts, local, group=group)
    return [int(count) for count in counts]


def _gather_padded(tensor: torch.Tensor, counts: list[int], group: Any) -> torch.Tensor:
    """All-gather blocks of ``counts[r]`` rows, padded to the largest, and cut them back."""
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    blocks = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(blocks, padded, group=group)
    return torch.cat([block[:count] for block, count in zip(blocks, counts)])


def all_gather_rows(tensor: torch.Tensor, group: Any = None) -> torch.Tensor:
    """Concatenate every rank's rows of ``tensor`` in rank order; blocks may differ in length.

    Each rank may hold a different number of rows (the trailing dimensions must agree);
    the blocks are padded to the longest for the collective and cut back. Not
    differentiable: see :func:`gather_with_gradient`.

    Parameters
    ----------
    tensor : torch.Tensor of shape (n_rank, ...)
        This rank's rows, on the device the process group communicates from (CPU for
        gloo, CUDA for NCCL).
    group : torch.distributed.ProcessGroup, optional
        The process group; ``None`` is the default (world) group.

    Returns
    -------
    torch.Tensor of shape (sum of n_rank, ...)
        The same on every rank. ``tensor`` itself when not distributed.
    """
    if not is_distributed():
        return tensor
    tensor = tensor.contiguous()
    return _gather_padded(tensor, _row_counts(tensor.shape[0], tensor.device, group), group)


class GatherWithGradient(torch.autograd.Function):
    """All-gather of row blocks whose backward returns each rank its own rows' gradient.

    The forward is :func:`all_gather_rows`. The backward sums the gradient of the
    gathered tensor over the ranks (all-reduce) and returns this rank's slice, so that
    when every rank's loss uses the gathered rows (e.g. as the negatives of a contrastive
    loss) each rank's input receives the gradient of the *sum* of the ranks' losses, as if
    one process had computed them all. Under DistributedDataParallel, which averages the
    parameters' gradients over ranks, the result is the gradient of the mean loss.

    Call it through :func:`gather_with_gradient` (which is the identity when not
    distributed), or as ``GatherWithGradient.apply(tensor, group)``.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any = None) -> torch.Tensor:
        """Gather every rank's rows in rank order.

        Parameters
        ----------
        ctx : Any
            Autograd context.
        tensor : torch.Tensor of shape (n_rank, ...)
            This rank's rows.
        group : torch.distributed.ProcessGroup, optional
            The process group; ``None`` is the default (world) group.

        Returns
        -------
        torch.Tensor of shape (sum of n_rank, ...)
            The gathered rows.
        """
        ctx.group = group
        if not is_distributed():
            ctx.rows = slice(0, tensor.shape[0])
            return tensor.clone()
        counts = _row_counts(tensor.shape[0], tensor.device, group)
        start = sum(counts[: dist.get_rank(group)])
        ctx.rows = slice(start, start + tensor.shape[0])
        return _gather_padded(tensor.contiguous(), counts, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Sum the gathered gradient over ranks and return this rank's rows of it.

        Parameters
        ----------
        ctx : Any
            Autograd context.
        grad : torch.Tensor of shape (sum of n_rank, ...)
            Gradient of this rank's loss with respect to the gathered rows.

        Returns
        -------
        tuple of (torch.Tensor, None)
            Gradient of the summed loss with respect to this rank's rows, and ``None`` for
            the group.
        """
        if is_distributed():
            grad = grad.contiguous().clone()
            dist.all_reduce(grad, group=ctx.group)
        return grad[ctx.rows], None


def gather_with_gradient(tensor: torch.Tensor, group: Any = None) -> torch.Tensor:
    """:func:`all_gather_rows` through which gradients flow back to each rank's own rows.

    See :class:`GatherWithGradient` for the gradient it passes back.

    Parameters
    ----------
    tensor : torch.Tensor of shape (n_rank, ...)
        This rank's rows (e.g. its projections in a contrastive loss).
    group : torch.distributed.ProcessGroup, optional
        The process group; ``None`` is the default (world) group.

    Returns
    -------
    torch.Tensor of shape (sum of n_rank, ...)
        The gathered rows; ``tensor`` itself when not distributed.
    """
    if not is_distributed():
        return tensor
    return GatherWithGradient.apply(tensor, group)


@dataclass(frozen=True)
class _Collective:
    """The reductions a kernel needs, as no-ops for one process (internal).

    ``active`` is false when the kernel solves alone (not asked to, or no process group
    is initialised); every method is then the identity, so single-process results are
    bit for bit those of the code without communication.
    """

    active: bool = False
    group: Any = None

    @property
    def rank(self) -> int:
        """This process' rank in the group (0 when inactive)."""
        return dist.get_rank(self.group) if self.active else 0

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` in place over the ranks (``'sum'``, ``'max'`` or ``'min'``)."""
        if self.active:
            dist.all_reduce(tensor, op=getattr(dist.ReduceOp, _REDUCE_OPS[op]), group=self.group)
        return tensor

    def row_counts(self, n_rows: int, device: torch.device) -> list[int]:
        """Rows of every rank, in rank order (``[n_rows]`` when inactive)."""
        return _row_counts(n_rows, device, self.group) if self.active else [n_rows]

    def gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """:func:`all_gather_rows` over the group (``tensor`` itself when inactive)."""
        return all_gather_rows(tensor, self.group) if self.active else tensor


def _resolve_distributed(distributed: Any) -> _Collective:
    """The :class:`_Collective` for a kernel's ``distributed`` argument (internal).

    ``False``/``None``: solve alone; ``True``: the default group; a process group: that
    group. Without an initialised process group every value solves alone.
    """
    if distributed is None or distributed is False:
        return _Collective()
    if distributed is True:
        return _Collective(active=is_distributed())
    if isinstance(distributed, (bool, int, float, str, np.ndarray)):
        raise TypeError(
            f"distributed must be a bool or a torch.distributed.ProcessGroup, got {distributed!r}."
        )
    return _Collective(active=is_distributed(), group=distributed)
