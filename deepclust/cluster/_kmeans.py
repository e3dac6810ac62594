"""K-means (Lloyd) with a faiss backend and a pure-torch backend (CPU or GPU)."""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import numpy as np
import torch
from sklearn.utils import check_random_state

from deepclust.distributed._helpers import _Collective, _resolve_distributed

from ._backend import (
    check_2d_float,
    check_positive_int,
    faiss_flat_index,
    import_faiss,
    like_input,
    resolve_backend,
    resolve_device,
    squared_norms,
    to_numpy_float32,
    to_torch,
)

__all__ = ["KMeansResult", "kmeans", "assign"]

_INIT_METHODS = ("k-means++", "random")


class KMeansResult(NamedTuple):
    """Result of :func:`kmeans`.

    Attributes
    ----------
    centroids : numpy.ndarray or torch.Tensor of shape (n_clusters, n_features), float32
        Cluster centres (a tensor on the input's device when the input was a tensor).
    labels : numpy.ndarray or torch.Tensor of shape (n_samples,), int64
        Index of the cluster of every sample.
    inertia : float
        Sum of squared Euclidean distances of the samples to their cluster centre.
    n_iter : int
        Number of Lloyd iterations run (centroid updates) in the retained run.
    backend : str
        ``'faiss'`` or ``'torch'``: the implementation that ran.
    """

    centroids: np.ndarray | torch.Tensor
    labels: np.ndarray | torch.Tensor
    inertia: float
    n_iter: int
    backend: str


def _default_chunk_size(n_clusters: int) -> int:
    # Keep each (chunk, n_clusters) distance block at <= 2**24 floats (64 MiB).
    return int(max(128, min(65536, (1 << 24) // max(n_clusters, 1))))


def _assign_chunks(
    X: torch.Tensor,
    centroids: torch.Tensor,
    x_sq: torch.Tensor,
    chunk_size: int,
    accumulate: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Nearest-centroid assignment processed ``chunk_size`` rows at a time.

    Returns labels, squared distances and, when ``accumulate``, per-cluster float64 sums
    of the samples and per-cluster counts (for the centroid update).
    """
    n_samples, n_features = X.shape
    n_clusters = centroids.shape[0]
    c_sq = squared_norms(centroids)
    centroids_t = centroids.t()
    labels = torch.empty(n_samples, dtype=torch.int64, device=X.device)
    min_sq = torch.empty(n_samples, dtype=X.dtype, device=X.device)
    sums = counts = None
    if accumulate:
        sums = torch.zeros(n_clusters, n_features, dtype=torch.float64, device=X.device)
        counts = torch.zeros(n_clusters, dtype=torch.int64, device=X.device)
        partial = torch.empty(n_clusters, n_features, dtype=X.dtype, device=X.device)
    for start in range(0, n_samples, chunk_size):
        stop = min(start + chunk_size, n_samples)
        block = X[start:stop]
        # ||c||^2 - 2 x.c ; ||x||^2 is added after the argmin (it does not change it).
        dist = torch.addmm(c_sq.unsqueeze(0), block, centroids_t, beta=1.0, alpha=-2.0)
        chunk_min, chunk_labels = dist.min(dim=1)
        labels[start:stop] = chunk_labels
        min_sq[start:stop] = (chunk_min + x_sq[start:stop]).clamp_min_(0.0)
        if accumulate:
            partial.zero_().index_add_(0, chunk_labels, block)
            sums += partial.to(torch.float64)
            counts += torch.bincount(chunk_labels, minlength=n_clusters)
    return labels, min_sq, sums, counts


def _squared_distances_to(
    X: torch.Tensor, x_sq: torch.Tensor, points: torch.Tensor
) -> torch.Tensor:
    """Squared distances (n_samples, n_points) between the rows of X and ``points``."""
    dist = torch.addmm(squared_norms(points).unsqueeze(0), X, points.t(), beta=1.0, alpha=-2.0)
    return dist.add_(x_sq.unsqueeze(1)).clamp_min_(0.0)


def _kmeans_plusplus(
    X: torch.Tensor, x_sq: torch.Tensor, n_clusters: int, rng: np.random.RandomState
) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii, 2007) with 2 + log(k) trials per step."""
    n_samples = X.shape[0]
    n_trials = 2 + int(math.log(n_clusters))
    centers = torch.empty(n_clusters, X.shape[1], dtype=X.dtype, device=X.device)
    first = int(rng.randint(n_samples))
    centers[0] = X[first]
    closest = _squared_distances_to(X, x_sq, X[first : first + 1]).squeeze(1).double()
    potential = float(closest.sum())
    for c in range(1, n_clusters):
        if potential > 0.0:
            cumulative = torch.cumsum(closest, 0)
            targets = torch.from_numpy(rng.uniform(size=n_trials) * potential).to(X.device)
            candidates = torch.searchsorted(cumulative, targets).clamp_(max=n_samples - 1)
        else:  # every point coincides with a chosen centre
            candidates = torch.from_numpy(rng.randint(n_samples, size=n_trials)).to(X.device)
        cand_dist = _squared_distances_to(X, x_sq, X[candidates]).double()
        cand_dist = torch.minimum(cand_dist, closest.unsqueeze(1))
        potentials = cand_dist.sum(0)
        best = int(torch.argmin(potentials))
        closest = cand_dist[:, best].contiguous()
        potential = float(potentials[best])
        centers[c] = X[candidates[best]]
    return centers


def _initial_centroids(
    X: torch.Tensor,
    x_sq: torch.Tensor,
    n_clusters: int,
    init: str | Any,
    rng: np.random.RandomState,
    comm: _Collective,
) -> torch.Tensor:
    """The initial centroids, the same on every rank (distributed: from all ranks' rows)."""
    if isinstance(init, str):
        if init == "k-means++":
            # Distributed, on the gathered rows: the single-process seeding, exactly.
            return _kmeans_plusplus(comm.gather_rows(X), comm.gather_rows(x_sq), n_clusters, rng)
        counts = comm.row_counts(X.shape[0], X.device)
        chosen = np.sort(rng.choice(sum(counts), size=n_clusters, replace=False))
        if not comm.active:
            return X[torch.from_numpy(chosen).to(X.device)].clone()
        # Each rank fills in the chosen rows it holds; the sum is all of them.
        offset = sum(counts[: comm.rank])
        mine = (chosen >= offset) & (chosen < offset + X.shape[0])
        centroids = torch.zeros(n_clusters, X.shape[1], dtype=X.dtype, device=X.device)
        rows = torch.from_numpy(chosen[mine] - offset).to(X.device)
        centroids[torch.from_numpy(np.flatnonzero(mine)).to(X.device)] = X[rows]
        return comm.all_reduce(centroids)
    return to_torch(init, X.device)


def _farthest_member(
    X: torch.Tensor, masked: torch.Tensor, comm: _Collective
) -> tuple[int | None, torch.Tensor]:
    """The sample with the largest ``masked`` score over all ranks: local index and row.

    The index is ``None`` on the ranks that do not hold it; the row (float64) is returned
    everywhere. Ties go to the first sample in rank order, as ``argmax`` on one process.
    """
    point = int(torch.argmax(masked)) if masked.numel() else -1
    if not comm.active:
        return point, X[point].to(torch.float64)
    best = masked[point] if point >= 0 else torch.tensor(-math.inf, device=X.device)
    scores = comm.gather_rows(best.reshape(1).to(torch.float64))
    owner = int(torch.argmax(scores))
    row = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
    if owner == comm.rank:
        row += X[point].to(torch.float64)
    comm.all_reduce(row)
    return (point if owner == comm.rank else None), row


def _any_rank(flag: bool, comm: _Collective, device: torch.device) -> bool:
    """Whether ``flag`` holds on some rank (``flag`` itself on one process)."""
    if not comm.active:
        return flag
    return bool(comm.all_reduce(torch.tensor([int(flag)], device=device), "max"))


def _reseed_empty_clusters(
    X: torch.Tensor,
    labels: torch.Tensor,
    min_sq: torch.Tensor,
    sums: torch.Tensor,
    counts: torch.Tensor,
    comm: _Collective,
) -> int:
    """Give every empty cluster the farthest member of the currently largest cluster.

    Updates ``labels``, ``sums`` and ``counts`` in place; returns the number of clusters fixed.
    Distributed, ``sums`` and ``counts`` are the all-reduced (global) ones and the member
    is searched on every rank.
    """
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if not empty:
        return 0
    score = min_sq.to(torch.float64).clone()
    for cluster in empty:
        largest = int(torch.argmax(counts))
        if int(counts[largest]) < 2:
            break  # cannot split a singleton (only possible when n_samples < n_clusters)
        masked = torch.where(labels == largest, score, torch.full_like(score, -1.0))
        point, row = _farthest_member(X, masked, comm)
        sums[largest] -= row
        counts[largest] -= 1
        sums[cluster] = row
        counts[cluster] = 1
        if point is not None:
            labels[point] = cluster
            score[point] = -1.0
    return len(empty)


def _repair_final_assignment(
    X: torch.Tensor,
    centroids: torch.Tensor,
    labels: torch.Tensor,
    min_sq: torch.Tensor,
    comm: _Collective,
) -> None:
    """Make every cluster non-empty in the final assignment (in place).

    Each empty cluster receives the sample of the largest cluster that is farthest from
    its centre; the empty cluster's centroid is set to that sample (its distance becomes 0).
    This handles ties such as duplicated samples, where nearest-centroid assignment
    alone cannot populate identical centroids.
    """
    n_clusters = centroids.shape[0]
    counts = comm.all_reduce(torch.bincount(labels, minlength=n_clusters))
    empty = torch.nonzero(counts == 0).flatten().tolist()
    for cluster in empty:
        largest = int(torch.argmax(counts))
        if int(counts[largest]) < 2:
            break
        masked = torch.where(labels == largest, min_sq, torch.full_like(min_sq, -1.0))
        point, row = _farthest_member(X, masked, comm)
        if point is not None:
            labels[point] = cluster
            min_sq[point] = 0.0
        centroids[cluster] = row.to(centroids.dtype)
        counts[largest] -= 1
        counts[cluster] = 1


def _lloyd_torch(
    X: torch.Tensor,
    x_sq: torch.Tensor,
    centroids: torch.Tensor,
    n_iter: int,
    chunk_size: int,
    allow_empty: bool,
    verbose: bool,
    comm: _Collective,
) -> tuple[torch.Tensor, int]:
    """Lloyd iterations; distributed, the centroid sums and counts are all-reduced."""
    previous = None
    n_done = 0
    for iteration in range(n_iter):
        labels, min_sq, sums, counts = _assign_chunks(X, centroids, x_sq, chunk_size, True)
        comm.all_reduce(sums)
        comm.all_reduce(counts)
        if previous is not None and not _any_rank(
            not torch.equal(labels, previous), comm, X.device
        ):
            if verbose:
                print(f"[kmeans/torch] converged after {n_done} iterations")
            break
        n_reseeded = (
            0 if allow_empty else _reseed_empty_clusters(X, labels, min_sq, sums, counts, comm)
        )
        nonempty = counts > 0
        updated = (sums[nonempty] / counts[nonempty].unsqueeze(1)).to(X.dtype)
        centroids = centroids.clone()
        centroids[nonempty] = updated
        previous = labels
        n_done += 1
        if verbose:
            inertia = float(comm.all_reduce(min_sq.to(torch.float64).sum()))
            print(
                f"[kmeans/torch] iteration {iteration + 1}/{n_iter}: "
                f"inertia={inertia:.6g}, re-seeded empty clusters={n_reseeded}"
            )
    return centroids, n_done


def _lloyd_faiss(
    X: np.ndarray,
    centroids: np.ndarray,
    n_iter: int,
    seed: int,
    device: torch.device,
    verbose: bool,
) -> tuple[np.ndarray, int]:
    faiss = import_faiss()
    n_samples, n_features = X.shape
    n_clusters = centroids.shape[0]
    params = faiss.ClusteringParameters()
    params.niter = n_iter
    params.seed = seed
    params.verbose = verbose
    # We subsample ourselves (max_points_per_centroid of kmeans()); stop faiss from
    # subsampling again (its default keeps only 256 points per centroid) or warning.
    params.max_points_per_centroid = int(math.ceil(n_samples / n_clusters)) + 1
    params.min_points_per_centroid = 1
    clustering = faiss.Clustering(n_features, n_clusters, params)
    faiss.copy_array_to_vector(
        np.ascontiguousarray(centroids, dtype=np.float32).ravel(), clustering.centroids
    )
    index = faiss_flat_index(faiss, n_features, inner_product=False, device=device)
    clustering.train(X, index)
    result = faiss.vector_float_to_array(clustering.centroids).reshape(n_clusters, n_features)
    # Clustering.obj was removed from recent faiss: per-iteration stats live here.
    n_done = int(clustering.iteration_stats.size())
    return np.ascontiguousarray(result, dtype=np.float32), n_done


def _assign_faiss(
    X: np.ndarray, centroids: np.ndarray, device: torch.device, chunk_size: int
) -> tuple[np.ndarray, np.ndarray]:
    faiss = import_faiss()
    index = faiss_flat_index(faiss, X.shape[1], inner_product=False, device=device)
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    labels = np.empty(X.shape[0], dtype=np.int64)
    min_sq = np.empty(X.shape[0], dtype=np.float32)
    for start in range(0, X.shape[0], chunk_size):
        stop = min(start + chunk_size, X.shape[0])
        distances, indices = index.search(X[start:stop], 1)
        labels[start:stop] = indices[:, 0]
        min_sq[start:stop] = np.maximum(distances[:, 0], 0.0)
    return labels, min_sq


class _LloydSettings(NamedTuple):
    """Backend, device and iteration settings shared by every run of :func:`kmeans`."""

    backend: str
    device: torch.device
    n_iter: int
    chunk_size: int
    allow_empty: bool
    verbose: bool
    comm: _Collective = _Collective()


def _resolve_chunk_size(chunk_size: int | None, n_clusters: int) -> int:
    """Validated ``chunk_size``, or the default for ``n_clusters`` when it is None."""
    if chunk_size is None:
        return _default_chunk_size(n_clusters)
    return check_positive_int(chunk_size, "chunk_size")


def _check_init(init: str | Any, n_init: int, n_clusters: int, n_features: int) -> int:
    """Validate ``init``; return ``n_init`` (1 when ``init`` is an array)."""
    if isinstance(init, str):
        if init not in _INIT_METHODS:
            raise ValueError(f"init must be one of {_INIT_METHODS} or an array, got {init!r}.")
        return n_init
    init_shape = tuple(np.shape(init))
    if init_shape != (n_clusters, n_features):
        raise ValueError(
            f"init array must have shape (n_clusters, n_features) = "
            f"{(n_clusters, n_features)}, got {init_shape}."
        )
    return 1


def _training_size(
    n_samples: int, n_clusters: int, max_points_per_centroid: int | None
) -> int | None:
    """Number of points each run trains on when subsampling, None to train on all."""
    if max_points_per_centroid is not None and n_samples > n_clusters * max_points_per_centroid:
        return n_clusters * max_points_per_centroid
    return None


def _distributed_backend(
    backend: str, max_points_per_centroid: int | None, comm: _Collective, device: torch.device
) -> str:
    """The backend to run; distributed k-means needs torch and no subsampling."""
    if not comm.active:
        return resolve_backend(backend, device)
    if backend not in ("auto", "torch"):
        raise ValueError(f"distributed k-means runs on the torch backend, got backend={backend!r}.")
    if max_points_per_centroid is not None:
        raise ValueError("distributed k-means does not subsample: leave max_points_per_centroid.")
    return "torch"


def _compute_tensor(X_checked: Any, backend: str, device: torch.device) -> torch.Tensor:
    """The float32 samples as a tensor: on ``device`` for torch, sharing a CPU array for faiss."""
    if backend == "faiss":
        return torch.from_numpy(to_numpy_float32(X_checked))  # shares memory with the array
    return to_torch(X_checked, device)


def _assign_all(
    points: torch.Tensor, points_sq: torch.Tensor, centroids: torch.Tensor, settings: _LloydSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-centroid labels and squared distances of ``points`` with the chosen backend."""
    if settings.backend == "faiss":
        labels_np, min_sq_np = _assign_faiss(
            points.numpy(), centroids.numpy(), settings.device, settings.chunk_size
        )
        return torch.from_numpy(labels_np), torch.from_numpy(min_sq_np)
    labels, min_sq, _, _ = _assign_chunks(points, centroids, points_sq, settings.chunk_size)
    return labels, min_sq


def _final_assignment(
    X: torch.Tensor, x_sq: torch.Tensor, centroids: torch.Tensor, settings: _LloydSettings
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Inertia, centroids and labels of all samples, with empty clusters repaired if required."""
    labels, min_sq = _assign_all(X, x_sq, centroids, settings)
    if not settings.allow_empty:
        centroids = centroids.clone()
        _repair_final_assignment(X, centroids, labels, min_sq, settings.comm)
    return float(settings.comm.all_reduce(min_sq.to(torch.float64).sum())), centroids, labels


def _training_sample(
    X: torch.Tensor, x_sq: torch.Tensor, n_train: int, rng: np.random.RandomState
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_train`` distinct random rows of ``X`` (in their original order) and their norms."""
    subset = np.sort(rng.choice(X.shape[0], size=n_train, replace=False))
    subset_t = torch.from_numpy(subset).to(X.device)
    return X[subset_t].contiguous(), x_sq[subset_t]


def _timed_initial_centroids(
    X: torch.Tensor,
    x_sq: torch.Tensor,
    n_clusters: int,
    init: str | Any,
    rng: np.random.RandomState,
    run: int,
    n_init: int,
    settings: _LloydSettings,
) -> torch.Tensor:
    """Initial centroids of one run, printing how long they took when ``verbose``."""
    start = time.perf_counter()
    centroids = _initial_centroids(X, x_sq, n_clusters, init, rng, settings.comm)
    verbose = settings.verbose
    if verbose:
        init_name = init if isinstance(init, str) else "array"
        print(
            f"[kmeans] run {run + 1}/{n_init}: {init_name} init took "
            f"{time.perf_counter() - start:.3f}s"
        )
    return centroids


def _run_lloyd(
    X: torch.Tensor,
    x_sq: torch.Tensor,
    centroids: torch.Tensor,
    rng: np.random.RandomState,
    settings: _LloydSettings,
) -> tuple[torch.Tensor, int]:
    """Lloyd iterations from ``centroids`` with the chosen backend; centroids and count."""
    if settings.backend == "faiss":
        seed = int(rng.randint(np.iinfo(np.int32).max))
        centroids_np, n_done = _lloyd_faiss(
            X.numpy(), centroids.numpy(), settings.n_iter, seed, settings.device, settings.verbose
        )
        return torch.from_numpy(centroids_np), n_done
    return _lloyd_torch(
        X,
        x_sq,
        centroids,
        settings.n_iter,
        settings.chunk_size,
        settings.allow_empty,
        settings.verbose,
        settings.comm,
    )


def _best_of_runs(
    X: torch.Tensor,
    x_sq: torch.Tensor,
    n_clusters: int,
    init: str | Any,
    n_init: int,
    n_train: int | None,
    rng: np.random.RandomState,
    settings: _LloydSettings,
) -> tuple[float, torch.Tensor, int, tuple | None]:
    """Best of ``n_init`` runs: score, centroids, iterations and final assignment (or None)."""
    # Runs are compared by their inertia on the points they were trained on: all points
    # normally; with subsampling, the training sample (so that extra runs stay cheap and
    # only the retained centroids are used to assign every sample).
    best: tuple[float, torch.Tensor, int, tuple | None] | None = None
    for run in range(n_init):
        if n_train is None:
            X_train, x_sq_train = X, x_sq
        else:
            X_train, x_sq_train = _training_sample(X, x_sq, n_train, rng)
        centroids = _timed_initial_centroids(
            X_train, x_sq_train, n_clusters, init, rng, run, n_init, settings
        )
        centroids, n_done = _run_lloyd(X_train, x_sq_train, centroids, rng, settings)
        if n_train is None:
            final = _final_assignment(X, x_sq, centroids, settings)
            score = final[0]
        elif n_init == 1:
            score, final = 0.0, None
        else:
            score = float(_assign_all(X_train, x_sq_train, centroids, settings)[1].sum())
            final = None
        if best is None or score < best[0]:
            best = (score, centroids, n_done, final)
    assert best is not None
    return best


def kmeans(
    X: Any,
    n_clusters: int,
    *,
    n_iter: int = 20,
    n_init: int = 1,
    init: str | Any = "k-means++",
    random_state: int | np.random.RandomState | None = None,
    backend: str = "auto",
    device: str | torch.device | None = None,
    max_points_per_centroid: int | None = None,
    chunk_size: int | None = None,
    allow_empty: bool = False,
    verbose: bool = False,
    distributed: Any = False,
) -> KMeansResult:
    """Cluster the rows of ``X`` with Lloyd's k-means.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Data; converted to float32.
    n_clusters : int
        Number of clusters, at most ``n_samples``.
    n_iter : int, default=20
        Maximum number of Lloyd iterations (assignment + centroid update). The torch
        backend stops earlier once an assignment no longer changes (further iterations
        would be no-ops); faiss (>= 1.15) also stops on convergence.
    n_init : int, default=1
        Number of runs with different seeds; the run with the lowest inertia is kept.
    init : {'k-means++', 'random'} or array of shape (n_clusters, n_features)
        Initialisation, computed by deepclust (so both backends start from the same
        centroids for a given ``random_state``): greedy k-means++ (``2 + log k`` trials per
        centre, cost ``O(n_samples * n_clusters * n_features)`` in ``n_clusters`` sequential
        passes) or ``n_clusters`` distinct random samples (faiss' and DeepCluster's choice;
        much cheaper when ``n_clusters`` is in the thousands).
    random_state : int, numpy.random.RandomState or None
        Seed for the initialisation, the subsampling and faiss.
    backend : {'auto', 'faiss', 'torch'}, default='auto'
        ``'auto'`` uses faiss when installed and able to run on ``device`` (CPU, or CUDA
        with a GPU build of faiss), else the pure-torch implementation.
    device : str or torch.device, optional
        Where to compute; defaults to the input's device (CPU for numpy input).
    max_points_per_centroid : int, optional
        When set and ``n_samples > n_clusters * max_points_per_centroid``, the centroids are
        trained on a random subsample of that many points per centroid (faiss' own default
        is 256) and all samples are assigned at the end; with ``n_init > 1`` each run draws
        its own sample and runs are compared by inertia on their sample. None (default)
        trains on all points.
    chunk_size : int, optional
        Rows processed at once in the assignment step, so that the full
        ``(n_samples, n_clusters)`` distance matrix never exists. Default: at most
        2**24 distances per chunk.
    allow_empty : bool, default=False
        If False, clusters that become empty are re-seeded during training with the point
        of the largest cluster farthest from its centre, and the final assignment is
        repaired the same way (this also covers duplicated samples), so that every cluster
        holds at least one sample. Requires ``n_samples >= n_clusters``. (During training
        faiss always splits the largest cluster into empty ones, whatever this flag.)
    verbose : bool, default=False
        Print per-iteration progress.
    distributed : bool or torch.distributed.ProcessGroup, default=False
        Cluster one data set whose rows are spread over the ranks of a process group
        (``True``: the default group): ``X`` holds this rank's consecutive block of rows
        (ranks in order, blocks may differ in size), and every rank calls this function
        with the same other arguments (the same ``random_state`` in particular). The
        per-cluster sums and counts are all-reduced every iteration, empty clusters are
        re-seeded from all ranks' samples and the inertia is global, so every rank gets
        the same centroids, ``n_iter`` and ``inertia`` and the labels of its own rows:
        those of one process on the concatenated rows, up to the order of floating-point
        summation. ``'k-means++'`` seeds on the gathered rows (every rank then holds all
        of them for the seeding); ``'random'`` and an array need no gather. Runs on the
        torch backend only (``backend='auto'`` picks it), without
        ``max_points_per_centroid``. Without an initialised process group this is the
        single-process k-means. See :ref:`distributed`.

    Returns
    -------
    KMeansResult
        ``centroids`` (float32), ``labels`` (int64), ``inertia``, ``n_iter`` and ``backend``.
        numpy input gives numpy output; tensor input gives tensors on the input's device.
    """
    X_checked = check_2d_float(X)
    n_features = X_checked.shape[1]
    n_clusters = check_positive_int(n_clusters, "n_clusters")
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    n_init = check_positive_int(n_init, "n_init")
    comm = _resolve_distributed(distributed)
    compute_device = resolve_device(X, device)
    n_samples = sum(comm.row_counts(X_checked.shape[0], compute_device))
    if n_clusters > n_samples:
        raise ValueError(
            f"n_clusters={n_clusters} is larger than the number of samples {n_samples}; "
            "use fewer clusters."
        )
    n_init = _check_init(init, n_init, n_clusters, n_features)
    if max_points_per_centroid is not None:
        max_points_per_centroid = check_positive_int(
            max_points_per_centroid, "max_points_per_centroid"
        )
    chunk_size = _resolve_chunk_size(chunk_size, n_clusters)
    rng = check_random_state(random_state)
    settings = _LloydSettings(
        backend=_distributed_backend(backend, max_points_per_centroid, comm, compute_device),
        device=compute_device,
        n_iter=n_iter,
        chunk_size=chunk_size,
        allow_empty=allow_empty,
        verbose=verbose,
        comm=comm,
    )
    X_torch = _compute_tensor(X_checked, settings.backend, compute_device)
    x_sq = squared_norms(X_torch)
    n_train = _training_size(n_samples, n_clusters, max_points_per_centroid)
    _, centroids, n_done, final = _best_of_runs(
        X_torch, x_sq, n_clusters, init, n_init, n_train, rng, settings
    )
    inertia, centroids, labels = (
        _final_assignment(X_torch, x_sq, centroids, settings) if final is None else final
    )
    return KMeansResult(
        centroids=like_input(centroids.to(torch.float32), X),
        labels=like_input(labels.to(torch.int64), X),
        inertia=inertia,
        n_iter=n_done,
        backend=settings.backend,
    )


def assign(
    X: Any,
    centroids: Any,
    *,
    backend: str = "auto",
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    """Assign every row of ``X`` to its nearest centroid (squared Euclidean distance).

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Samples.
    centroids : array-like or torch.Tensor of shape (n_clusters, n_features)
        Cluster centres, e.g. ``kmeans(...).centroids``.
    backend : {'auto', 'faiss', 'torch'}, default='auto'
        See :func:`kmeans`.
    device : str or torch.device, optional
        Where to compute; defaults to the device of ``X``.
    chunk_size : int, optional
        Rows processed at once.

    Returns
    -------
    labels : numpy.ndarray or torch.Tensor of shape (n_samples,), int64
        Index of the nearest centroid (ties go to the lowest index).
    sq_distances : numpy.ndarray or torch.Tensor of shape (n_samples,), float32
        Squared Euclidean distance to that centroid.
    """
    X_checked = check_2d_float(X)
    C_checked = check_2d_float(centroids, "centroids")
    if C_checked.shape[1] != X_checked.shape[1]:
        raise ValueError(
            f"centroids have {C_checked.shape[1]} features but X has {X_checked.shape[1]}."
        )
    n_clusters = C_checked.shape[0]
    chunk_size = _resolve_chunk_size(chunk_size, n_clusters)
    compute_device = resolve_device(X, device)
    if resolve_backend(backend, compute_device) == "faiss":
        labels, min_sq = _assign_faiss(
            to_numpy_float32(X_checked), to_numpy_float32(C_checked), compute_device, chunk_size
        )
    else:
        X_torch = to_torch(X_checked, compute_device)
        C_torch = to_torch(C_checked, compute_device)
        labels, min_sq, _, _ = _assign_chunks(X_torch, C_torch, squared_norms(X_torch), chunk_size)
    return like_input(labels, X), like_input(min_sq, X)
