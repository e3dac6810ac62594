"""Data-parallel helpers on :mod:`torch.distributed` (process groups, all-reduce, all-gather).

Every helper is a no-op (or the identity) when :mod:`torch.distributed` is not initialised,
so the same script runs on one process and under ``torchrun``. The label-step kernels take
a ``distributed`` argument built on the same helpers: :func:`deepclust.sinkhorn.sinkhorn_solve`,
:func:`deepclust.cluster.kmeans` and :class:`deepclust.cluster.PCAWhitening` solve one
problem whose rows are spread over the ranks.
"""

from __future__ import annotations

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
    "all_gather_rows",
    "gather_with_gradient",
    "is_distributed",
    "is_main_process",
    "rank",
    "shard_indices",
    "world_size",
]
