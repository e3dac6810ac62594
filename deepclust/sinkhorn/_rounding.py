"""Rounding a Sinkhorn solution to labels with exactly prescribed cluster sizes."""

from __future__ import annotations

import math

import numpy as np
import torch

from deepclust.sinkhorn._sinkhorn import _resolve_chunk_size

__all__ = ["round_to_sizes", "target_counts"]

#: Probabilities below this (relative to the largest one when ``probs`` is on an extreme
#: scale) score as this: "impossible" stays finite.
_PROB_FLOOR = 1e-30
#: ``probs`` whose largest entry lies outside ``[2**-_SAFE_LOG2, 2**_SAFE_LOG2]`` are
#: scored in the log domain relative to that entry (as in the Sinkhorn solve).
_SAFE_LOG2 = 64.0


def target_counts(n_samples: int, marginals=None, n_clusters: int | None = None) -> np.ndarray:
    """Integer cluster sizes summing to ``n_samples`` in the proportions ``marginals``.

    ``None`` asks for equal sizes (``n_clusters`` needed). Remainders go to the clusters
    with the largest fractional parts.

    Parameters
    ----------
    n_samples : int
        The total the counts sum to.
    marginals : array-like of shape (n_clusters,), optional
        Non-negative cluster proportions, normalised here; ``None`` means equal ones.
    n_clusters : int, optional
        Number of clusters; only read when ``marginals`` is ``None``.
    """
    if marginals is None:
        marginals = np.ones(int(n_clusters))
    shares = np.asarray(marginals, dtype=np.float64)
    shares = shares / shares.sum() * n_samples
    counts = np.floor(shares).astype(np.int64)
    short = n_samples - int(counts.sum())
    counts[np.argsort(-(shares - counts), kind="stable")[:short]] += 1
    return counts


def round_to_sizes(
    probs: torch.Tensor,
    log_v: torch.Tensor,
    lamb: float,
    counts,
    *,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Labels with exactly ``counts[k]`` members per cluster, following the Sinkhorn plan.

    The plan's argmax (SeLa's labels) only matches the sizes approximately, and not at all
    when the predictions are nearly uniform and the target sizes unequal: every row then
    prefers the largest cluster. This greedy rounding gives each row its best cluster by
    the plan's score ``lamb * log P[i, k] + log_v[k]`` among clusters with room left; a
    cluster asked for by more rows than it has room keeps the highest-scoring ones, and
    the rest try again without it. Every round fills at least one cluster, so it ends
    after at most ``K`` rounds (usually a few).

    Multiplying all of ``probs`` by one positive factor does not change the labels, however
    extreme the factor (``probs * 1e39`` in float64 scores as ``probs``); the rows'
    relative scales do enter the ranking, so pass the probabilities the plan was solved on.

    Parameters
    ----------
    probs : torch.Tensor of shape (n_samples, n_clusters)
        Probabilities the plan was solved on (any float dtype; read in row chunks).
    log_v : torch.Tensor of shape (n_clusters,)
        Log column scalings of the solve (:attr:`SinkhornResult.log_v`).
    lamb : float
        The solve's ``lamb``.
    counts : array-like of int, shape (n_clusters,)
        Wanted sizes, summing to ``n_samples``.
    chunk_size : int, default=None
        Rows scored at a time (bounds memory to a few ``chunk_size * n_clusters``
        floats); ``None`` takes the Sinkhorn solve's block size for ``probs``' device.

    Returns
    -------
    torch.Tensor of shape (n_samples,), int64, on ``probs``' device.
    """
    n_samples, n_clusters = probs.shape
    device = probs.device
    chunk_size = _resolve_chunk_size(chunk_size, n_clusters, device)
    capacity = torch.tensor(np.asarray(counts), dtype=torch.int64, device=device)  # a copy
    if capacity.shape != (n_clusters,) or int(capacity.sum()) != n_samples:
        raise ValueError(f"counts must hold {n_clusters} sizes summing to n_samples={n_samples}.")
    log_v = log_v.to(device=device, dtype=torch.float32)
    log_scale = _extreme_log_scale(probs)
    labels = torch.full((n_samples,), -1, dtype=torch.int64, device=device)
    remaining = torch.arange(n_samples, device=device)
    while remaining.numel():
        blocked = torch.where(capacity > 0, 0.0, float("-inf")).to(device)
        best = torch.empty(remaining.numel(), dtype=torch.int64, device=device)
        value = torch.empty(remaining.numel(), dtype=torch.float32, device=device)
        for start in range(0, remaining.numel(), chunk_size):
            rows = remaining[start : start + chunk_size]
            scores = lamb * _log_probs(probs[rows], log_scale) + log_v + blocked
            value[start : start + len(rows)], best[start : start + len(rows)] = scores.max(1)
        # Within every cluster, rank the rows that asked for it by score.
        order = torch.argsort(value, descending=True)
        order = order[torch.argsort(best[order], stable=True)]
        asked = torch.bincount(best, minlength=n_clusters)
        first = torch.cumsum(asked, 0) - asked
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=device) - first[best[order]]
        accepted = rank < capacity[best]
        if not bool(accepted.any()):  # only NaN or infinite scores can stall the rounds
            raise ValueError(
                "round_to_sizes got non-finite scores; probs and log_v must be finite."
            )
        labels[remaining[accepted]] = best[accepted]
        capacity -= torch.bincount(best[accepted], minlength=n_clusters)
        remaining = remaining[~accepted]
    return labels


def _extreme_log_scale(probs: torch.Tensor) -> float | None:
    """``log`` of the largest probability when it is on an extreme scale, else ``None``.

    ``None`` (ordinary input, the plain float32 path) unless the largest entry lies outside
    ``[2**-_SAFE_LOG2, 2**_SAFE_LOG2]``, where a float32 copy could overflow or flush the
    whole matrix to the floor.
    """
    if probs.numel() == 0:
        return None
    top = float(probs.amax())
    if 2.0**-_SAFE_LOG2 <= top <= 2.0**_SAFE_LOG2 or not (math.isfinite(top) and top > 0):
        return None
    return math.log(top)


def _log_probs(chunk: torch.Tensor, log_scale: float | None) -> torch.Tensor:
    """float32 ``log`` of a chunk of probabilities, floored at ``_PROB_FLOOR``.

    With ``log_scale`` (see :func:`_extreme_log_scale`) the logarithm is taken in the
    input's precision (at least float32) and ``log_scale`` subtracted before narrowing.
    """
    if log_scale is None:
        return chunk.float().clamp_min(_PROB_FLOOR).log()
    wide = chunk.to(torch.promote_types(chunk.dtype, torch.float32))
    return (wide.log() - log_scale).float().clamp_min(math.log(_PROB_FLOOR))
