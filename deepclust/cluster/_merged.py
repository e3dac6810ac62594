"""K-means by over-clustering, then merging the sub-clusters."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state

from ._backend import check_2d_float, check_positive_int, like_input, resolve_device, to_torch
from ._kmeans import KMeansResult, kmeans

__all__ = ["merged_kmeans"]

_CHUNK_ROWS = 65536


def merged_kmeans(
    X: Any,
    n_clusters: int,
    *,
    n_subclusters: int,
    n_init: int = 10,
    n_iter: int = 20,
    random_state: int | np.random.RandomState | None = None,
    backend: str = "auto",
    device: str | torch.device | None = None,
) -> KMeansResult:
    """Cluster the rows of ``X`` by k-means into ``n_subclusters``, then merge them.

    The sub-cluster centres are grouped into ``n_clusters`` by k-means weighted by the
    sub-cluster sizes (``n_init`` restarts, lowest weighted inertia kept), and every sample
    takes its sub-cluster's group. The fine partition follows the local structure of the
    data; grouping a few hundred weighted centres is cheap enough to restart many times.
    On contrastive features this gives steadier partitions across seeds than one k-means
    run from a random start (see the ClusterFit user guide).

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        The samples, finite numbers; converted to float32.
    n_clusters : int
        Number of clusters returned.
    n_subclusters : int
        Number of sub-clusters of the first k-means, from ``n_clusters`` to ``n_samples``.
    n_init : int, default=10
        Restarts of the merging k-means (on the sub-cluster centres).
    n_iter : int, default=20
        Lloyd iterations of the first k-means (see :func:`kmeans`).
    random_state : int, numpy.random.RandomState or None
        Seeds both k-means (the merging one through an integer drawn from it); ``None``
        uses NumPy's global state.
    backend : {'auto', 'faiss', 'torch'}, default='auto'
        Backend of the first k-means (see :func:`kmeans`).
    device : str or torch.device, optional
        Where to compute the first k-means; defaults to the input's device.

    Returns
    -------
    KMeansResult
        ``centroids`` (the means of the merged clusters), ``labels``, ``inertia`` (over all
        samples), ``n_iter`` and ``backend`` of the first k-means. numpy input gives numpy
        output; tensor input gives tensors on the input's device.
    """
    X_checked = check_2d_float(X)
    n_samples = X_checked.shape[0]
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    n_subclusters = check_positive_int(n_subclusters, "n_subclusters")
    n_init = check_positive_int(n_init, "n_init")
    if not n_clusters <= n_subclusters <= n_samples:
        raise ValueError(
            f"n_subclusters={n_subclusters} must lie between n_clusters={n_clusters} and "
            f"the number of samples {n_samples}; raise it or pass fewer clusters."
        )
    rng = check_random_state(random_state)
    compute_device = resolve_device(X, device)
    X_torch = to_torch(X_checked, compute_device)
    fine = kmeans(
        X_torch,
        n_subclusters,
        n_iter=n_iter,
        random_state=rng,
        backend=backend,
        device=compute_device,
    )
    fine_labels = torch.as_tensor(fine.labels).to(compute_device)
    sizes = torch.bincount(fine_labels, minlength=n_subclusters)
    merge = KMeans(
        n_clusters, n_init=n_init, random_state=int(rng.randint(np.iinfo(np.int32).max))
    ).fit(
        torch.as_tensor(fine.centroids).double().cpu().numpy(),
        sample_weight=sizes.double().cpu().numpy(),
    )
    group = torch.as_tensor(merge.labels_, dtype=torch.int64, device=compute_device)
    labels = group[fine_labels]
    # Means and inertia in float64, a chunk of rows at a time (no full-size copy of X).
    rows = range(0, n_samples, _CHUNK_ROWS)
    sums = torch.zeros(n_clusters, X_torch.shape[1], dtype=torch.float64, device=compute_device)
    for start in rows:
        chunk = slice(start, start + _CHUNK_ROWS)
        sums.index_add_(0, labels[chunk], X_torch[chunk].double())
    counts = torch.bincount(labels, minlength=n_clusters).clamp_min(1)
    centroids = (sums / counts[:, None]).float()
    inertia = 0.0
    for start in rows:
        chunk = slice(start, start + _CHUNK_ROWS)
        residual = X_torch[chunk] - centroids[labels[chunk]]
        inertia += float((residual.double() ** 2).sum())
    return KMeansResult(
        centroids=like_input(centroids, X),
        labels=like_input(labels, X),
        inertia=inertia,
        n_iter=fine.n_iter,
        backend=fine.backend,
    )
