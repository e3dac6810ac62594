"""Data-parallel helpers on :mod:`torch.distributed` (process groups, all-reduce, all-gather).

Every helper is a no-op (or the identity) when :mod:`torch.distributed` is not initialised,
so the same script runs on one process and under ``torchrun``. The label-step kernels take
a ``distributed`` argument built on the same helpers: :func:`deepclust.sinkhorn.sinkhorn_solve`,
:func:`deepclust.cluster.kmeans` and :class:`deepclust.cluster.PCAWhitening` solve one
problem whose rows are spread over the ranks. :class:`SyncBatchNorm` (and
:class:`SyncBatchNorm1d`) normalise with the statistics of every rank's batch, on the CPU
as well as on CUDA (:func:`convert_sync_batchnorm` swaps a network's BatchNorm layers).
"""

from __future__ import annotations

from deepclust.distributed._batchnorm import (
    SyncBatchNorm,
    SyncBatchNorm1d,
    convert_sync_batchnorm,
    revert_sync_batchnorm,
)
from deepclust.distributed._helpers import (
    GatherWithGradient,
    all_gather_rows,
    gather_with_gradient,
    is_distributed,
    is_main_process,
    rank,
    shard_indices,
    world_size,
)

__all__ = [
    "GatherWithGradient",
    "SyncBatchNorm",
    "SyncBatchNorm1d",
    "all_gather_rows",
    "convert_sync_batchnorm",
    "gather_with_gradient",
    "is_distributed",
    "is_main_process",
    "rank",
    "revert_sync_batchnorm",
    "shard_indices",
    "world_size",
]
