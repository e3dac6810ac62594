"""Merging trained clusters into fewer: average-linkage agglomeration of their prototypes."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

__all__ = ["merge_prototypes"]


def merge_prototypes(features: Any, labels: Any, n_clusters: int, n_merged: int) -> np.ndarray:
    """Group ``n_clusters`` clusters into ``n_merged`` by their prototypes.

    The prototype of a cluster is the mean of its members' L2-normalised features. The
    non-empty clusters' prototypes are agglomerated with average linkage on cosine
    distance, so each cluster counts once whatever its size; empty clusters have no
    prototype, take no part and join the group of the smallest non-empty trained id
    (no training sample is in them, so they change no training label; ``predict`` may
    still reach them). Merged ids are numbered in the order of the smallest trained id in
    each group, so the grouping does not depend on the order of the trained ids.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        The features the clusters were found in.
    labels : array-like of shape (n_samples,)
        Trained cluster of each sample, in ``range(n_clusters)``.
    n_clusters : int
        Number of trained clusters.
    n_merged : int
        Number of merged clusters, ``2 <= n_merged < n_clusters``.

    Returns
    -------
    merge_map : ndarray of shape (n_clusters,), dtype int64
        Merged id, in ``range(n_merged)``, of each trained cluster. When at most
        ``n_merged`` clusters are non-empty, each non-empty one keeps a group of its own
        (fewer than ``n_merged`` ids are then used).
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    sums = np.zeros((n_clusters, unit.shape[1]))
    np.add.at(sums, labels, unit)
    counts = np.bincount(labels, minlength=n_clusters)
    used = np.flatnonzero(counts)
    prototypes = sums[used] / counts[used, None]
    if len(used) <= n_merged:
        groups = np.arange(len(used))
    else:
        tree = linkage(pdist(prototypes, metric="cosine"), method="average")
        groups = fcluster(tree, t=n_merged, criterion="maxclust") - 1
    merge_map = np.full(n_clusters, -1, dtype=np.int64)
    merge_map[used] = groups
    merge_map[merge_map < 0] = groups[0] if len(groups) else 0
    return _renumbered(merge_map)


def _renumbered(merge_map: np.ndarray) -> np.ndarray:
    """Merged ids numbered by the smallest trained id of each group (0, 1, ...)."""
    _, first = np.unique(merge_map, return_index=True)
    order = merge_map[np.sort(first)]
    table = {int(group): new for new, group in enumerate(order)}
    return np.array([table[int(g)] for g in merge_map], dtype=np.int64)
