"""k-nearest-neighbour search: exact (faiss flat index or chunked torch) or, for large
collections with faiss, an inverted-file index whose recall is measured in the benchmarks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._backend import (
    check_2d_float,
    check_positive_int,
    faiss_flat_index,
    faiss_ivf_index,
    import_faiss,
    like_input,
    resolve_backend,
    resolve_device,
    squared_norms,
    to_numpy_float32,
    to_torch,
)

__all__ = ["knn"]

_METRICS = ("cosine", "euclidean")
_INDEXES = ("auto", "flat", "ivf")
#: ``index='auto'`` searches an inverted-file index from this many database rows on (with
#: faiss): an exact search costs ``N**2`` there (1.28M x 1.28M x 128 is about 4e14 flops).
IVF_MIN_SAMPLES = 200_000
#: faiss is given this many queries per call (its own blocking bounds its memory).
_FAISS_QUERY_BLOCK = 16384


def ivf_lists(n_samples: int) -> int:
    """Inverted lists of the IVF index for ``n_samples`` rows: ``4 * sqrt(n)`` (faiss'
    guideline is 4 to 16 times the square root), at least 1 and at most ``n_samples``."""
    return int(min(n_samples, max(1, round(4 * np.sqrt(n_samples)))))


def ivf_probes(n_lists: int) -> int:
    """Lists searched per query by default: a 48th of them, at least 8 (recall@20 measured
    in ``benchmarks/bench_scale_search.py``)."""
    return int(min(n_lists, max(8, -(-n_lists // 48))))


def _default_chunk_size(n_database: int) -> int:
    # Keep each (chunk, n_database) score block at <= 2**25 floats (128 MiB).
    return int(max(1, min(4096, (1 << 25) // max(n_database, 1))))


def _knn_torch(
    database: torch.Tensor,
    queries: torch.Tensor,
    n_candidates: int,
    metric: str,
    exclude_self: bool,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``n_candidates`` by a float32 score where larger is closer.

    The score is the cosine similarity (rows already normalised) or ``-||q - x||^2``.
    """
    n_queries = queries.shape[0]
    device = database.device
    indices = torch.empty(n_queries, n_candidates, dtype=torch.int64, device=device)
    scores = torch.empty(n_queries, n_candidates, dtype=database.dtype, device=device)
    database_t = database.t()
    if metric == "euclidean":
        db_sq = squared_norms(database)
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        block = queries[start:stop]
        if metric == "cosine":
            score = block @ database_t
        else:
            # 2 q.x - ||x||^2 = ||q||^2 - ||q - x||^2: same order as -||q - x||^2.
            score = torch.addmm(db_sq.unsqueeze(0), block, database_t, beta=-1.0, alpha=2.0)
        if exclude_self:
            rows = torch.arange(stop - start, device=device)
            score[rows, rows + start] = -torch.inf
        top_scores, top_indices = torch.topk(score, n_candidates, dim=1, sorted=True)
        if metric == "euclidean":
            top_scores = top_scores - squared_norms(block).unsqueeze(1)
        indices[start:stop] = top_indices
        scores[start:stop] = top_scores
    return indices, scores


def _knn_faiss(
    database: np.ndarray,
    queries: np.ndarray,
    n_candidates: int,
    metric: str,
    exclude_self: bool,
    chunk_size: int,
    device: torch.device,
    n_probe: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Same contract as :func:`_knn_torch`, with a flat (exact) faiss index, or an
    inverted-file one when ``n_probe`` is given (rows it finds too few candidates for are
    searched exactly)."""
    faiss = import_faiss()
    inner_product = metric == "cosine"
    if n_probe is None:
        index = faiss_flat_index(
            faiss, database.shape[1], inner_product=inner_product, device=device
        )
        index.add(database)
    else:
        n_lists = ivf_lists(database.shape[0])
        index = faiss_ivf_index(
            faiss, database, inner_product=inner_product, device=device, n_lists=n_lists
        )
        index.nprobe = min(int(n_probe), n_lists)
        chunk_size = max(chunk_size, _FAISS_QUERY_BLOCK)
    n_queries = queries.shape[0]
    n_search = n_candidates + 1 if exclude_self else n_candidates
    indices = np.empty((n_queries, n_candidates), dtype=np.int64)
    scores = np.empty((n_queries, n_candidates), dtype=np.float32)
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        found_scores, found = index.search(queries[start:stop], n_search)
        if exclude_self:
            # Move the query's own index (wherever ties put it) to the end, then drop
            # the last column; rows where it is absent simply lose their last hit.
            is_self = found == np.arange(start, stop)[:, None]
            order = np.argsort(is_self, axis=1, kind="stable")[:, :n_candidates]
            found = np.take_along_axis(found, order, axis=1)
            found_scores = np.take_along_axis(found_scores, order, axis=1)
        indices[start:stop] = found
        scores[start:stop] = found_scores if metric == "cosine" else -found_scores
    short = np.flatnonzero((indices < 0).any(axis=1))
    if short.size:  # an IVF probe held fewer than n_search vectors: search those exactly
        exact = _knn_faiss(
            database, queries[short], n_candidates + 1, metric, False, chunk_size, device
        )
        for row, found, found_scores in zip(short, *exact, strict=True):
            keep = found != row if exclude_self else np.ones_like(found, dtype=bool)
            indices[row] = found[keep][:n_candidates]
            scores[row] = found_scores[keep][:n_candidates]
    return indices, scores


def _rescore_float64(
    database: torch.Tensor, queries: torch.Tensor, candidates: torch.Tensor, metric: str
) -> torch.Tensor:
    """Exact float64 scores (larger is closer) of the candidate neighbours of each query."""
    n_queries, n_candidates = candidates.shape
    n_features = database.shape[1]
    out = torch.empty(n_queries, n_candidates, dtype=torch.float64, device=database.device)
    # Keep each gathered (block, n_candidates, n_features) float64 array at <= 64 MiB.
    block_size = max(1, (1 << 23) // max(n_candidates * n_features, 1))
    for start in range(0, n_queries, block_size):
        stop = min(start + block_size, n_queries)
        query = queries[start:stop].to(torch.float64)
        neighbours = database[candidates[start:stop]].to(torch.float64)
        if metric == "cosine":
            query = torch.nn.functional.normalize(query, dim=1)
            neighbours = torch.nn.functional.normalize(neighbours, dim=2)
            out[start:stop] = torch.einsum("bd,bkd->bk", query, neighbours)
        else:
            out[start:stop] = -(neighbours - query.unsqueeze(1)).pow(2).sum(2)
    return out


def _refine_near_ties(
    database: torch.Tensor,
    queries: torch.Tensor,
    indices: torch.Tensor,
    scores: torch.Tensor,
    k: int,
    metric: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-rank in float64 the rows whose k-th and (k+1)-th float32 scores nearly tie.

    Only rows where the gap is within a worst-case float32 rounding bound
    (``n_features * eps32 * scale``) can have a wrong k-nearest set; they are re-scored
    exactly over all their candidates. Other rows keep their float32 scores and order.
    """
    n_features = database.shape[1]
    eps32 = float(torch.finfo(torch.float32).eps)
    if metric == "cosine":
        scale = torch.ones(queries.shape[0], dtype=torch.float32, device=scores.device)
    else:
        scale = squared_norms(queries) + squared_norms(database).max()
    tolerance = 2.0 * n_features * eps32 * scale.to(scores.device)
    gap = scores[:, k - 1] - scores[:, k]
    rows = torch.nonzero(gap <= tolerance).flatten()
    scores = scores.to(torch.float64)
    if rows.numel() == 0:
        return indices, scores
    exact = _rescore_float64(database, queries[rows.to(queries.device)], indices[rows], metric)
    exact = exact.to(scores.device)
    order = torch.argsort(exact, dim=1, descending=True, stable=True)
    indices = indices.clone()
    indices[rows] = torch.gather(indices[rows], 1, order)
    scores[rows] = torch.gather(exact, 1, order)
    return indices, scores


def _finalise(
    indices: torch.Tensor, scores: torch.Tensor, k: int, metric: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the best ``k`` and turn scores into similarities or distances."""
    indices, scores = indices[:, :k], scores[:, :k]
    if metric == "euclidean":
        scores = (-scores).clamp_min(0.0).sqrt()
    return indices.contiguous(), scores.to(torch.float32).contiguous()


def _use_ivf(index: str, backend: str, n_database: int) -> bool:
    """Whether to search an inverted-file index (``'ivf'`` needs the faiss backend)."""
    if index not in _INDEXES:
        raise ValueError(f"index must be one of {_INDEXES}, got {index!r}.")
    if index == "ivf" and backend != "faiss":
        raise ValueError(
            "index='ivf' needs faiss (pip install faiss-cpu, or faiss-gpu); with the torch "
            "backend use index='flat' or 'auto'."
        )
    return index == "ivf" or (
        index == "auto" and backend == "faiss" and n_database >= IVF_MIN_SAMPLES
    )


def _resolve_probes(n_probe: int | None, n_database: int) -> int:
    """Validated ``n_probe``, or the default for the index over ``n_database`` rows."""
    if n_probe is None:
        return ivf_probes(ivf_lists(n_database))
    return check_positive_int(n_probe, "n_probe")


def _resolve_chunk_size(chunk_size: int | None, n_database: int) -> int:
    """Validated ``chunk_size``, or the default for ``n_database`` rows when it is None."""
    if chunk_size is None:
        return _default_chunk_size(n_database)
    return check_positive_int(chunk_size, "chunk_size")


def _search_faiss(
    X_checked: Any,
    Q_checked: Any | None,
    n_candidates: int,
    metric: str,
    exclude_self: bool,
    chunk_size: int,
    device: torch.device,
    n_probe: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float32 candidate search with faiss (flat, or IVF probing ``n_probe`` lists): raw
    database, raw queries, indices and scores."""
    database_np = to_numpy_float32(X_checked)
    queries_np = database_np if Q_checked is None else to_numpy_float32(Q_checked)
    database_raw, queries_raw = torch.from_numpy(database_np), torch.from_numpy(queries_np)
    if metric == "cosine":
        db_search = torch.nn.functional.normalize(database_raw, dim=1).numpy()
        q_search = (
            db_search
            if Q_checked is None
            else torch.nn.functional.normalize(queries_raw, dim=1).numpy()
        )
    else:
        db_search, q_search = database_np, queries_np
    found, found_scores = _knn_faiss(
        db_search, q_search, n_candidates, metric, exclude_self, chunk_size, device, n_probe
    )
    return database_raw, queries_raw, torch.from_numpy(found), torch.from_numpy(found_scores)


def _search_torch(
    X_checked: Any,
    Q_checked: Any | None,
    n_candidates: int,
    metric: str,
    exclude_self: bool,
    chunk_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float32 candidate search with torch: raw database, raw queries, indices and scores."""
    database_raw = to_torch(X_checked, device)
    queries_raw = database_raw if Q_checked is None else to_torch(Q_checked, device)
    db_search, q_search = database_raw, queries_raw
    if metric == "cosine":
        db_search = torch.nn.functional.normalize(database_raw, dim=1)
        q_search = (
            db_search if Q_checked is None else torch.nn.functional.normalize(queries_raw, dim=1)
        )
    indices, scores = _knn_torch(
        db_search, q_search, n_candidates, metric, exclude_self, chunk_size
    )
    return database_raw, queries_raw, indices, scores


def knn(
    X: Any,
    k: int,
    *,
    queries: Any | None = None,
    metric: str = "cosine",
    backend: str = "auto",
    device: str | torch.device | None = None,
    exclude_self: bool = True,
    chunk_size: int | None = None,
    refine: bool = True,
    index: str = "auto",
    n_probe: int | None = None,
) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    """k nearest neighbours of the rows of ``X`` (or of ``queries``) among the rows of X.

    Exact unless an inverted-file index is searched (``index='ivf'``, or ``'auto'`` on a
    large database with faiss).

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Database (and, when ``queries`` is None, the queries).
    k : int
        Number of neighbours per query.
    queries : array-like or torch.Tensor of shape (n_queries, n_features), optional
        Separate query set. ``exclude_self`` is ignored when it is given.
    metric : {'cosine', 'euclidean'}, default='cosine'
        ``'cosine'`` L2-normalises the rows and returns cosine **similarities** sorted in
        decreasing order; ``'euclidean'`` returns Euclidean **distances** (not squared)
        sorted in increasing order.
    backend : {'auto', 'faiss', 'torch'}, default='auto'
        ``'auto'`` uses faiss (flat, exact index) when installed and able to run on
        ``device``, else a chunked torch matrix-product search (CPU or GPU).
    device : str or torch.device, optional
        Where to compute; defaults to the device of ``X``.
    exclude_self : bool, default=True
        When searching ``X`` against itself, never return a sample as its own neighbour
        (by index, so exact duplicates of a sample are still returned).
    chunk_size : int, optional
        Queries processed at once; default keeps each score block at <= 2**25 floats.
    refine : bool, default=True
        Search ``k + max(8, k // 2)`` candidates in float32; for the queries whose k-th and
        (k+1)-th scores differ by less than the float32 rounding bound, re-score the
        candidates in float64 and re-rank them, so that the set of k neighbours is the one
        an exact float64 search gives (barring more near-ties than the margin). Other
        queries keep their float32 order. False skips this step.
    index : {'auto', 'flat', 'ivf'}, default='auto'
        ``'flat'``: exact search. ``'ivf'``: faiss' inverted-file index
        (``IndexIVFFlat``, ``4 * sqrt(n_samples)`` lists trained on a seeded sample), which
        compares each query with the vectors of its ``n_probe`` nearest lists only: much
        faster on large databases, approximate (recall@20 of 0.95 or more on 1.28 million
        128-d vectors with the default ``n_probe``, ``docs/benchmarks.rst``); needs faiss.
        ``'auto'``: ``'ivf'`` when the backend is faiss and ``X`` has at least
        ``IVF_MIN_SAMPLES`` (200,000) rows, else ``'flat'``.
    n_probe : int, optional
        Lists searched per query with the IVF index (more: higher recall, slower); default
        a 48th of the lists, at least 8. Ignored by the flat search.

    Returns
    -------
    indices : numpy.ndarray or torch.Tensor of shape (n_queries, k), int64
        Neighbour indices into ``X``, nearest first.
    scores : numpy.ndarray or torch.Tensor of shape (n_queries, k), float32
        Cosine similarities or Euclidean distances (see ``metric``).
        numpy input gives numpy output; tensor input gives tensors on the input's device.
    """
    X_checked = check_2d_float(X)
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")
    k = check_positive_int(k, "k")
    if queries is None:
        Q_checked = None
    else:
        Q_checked = check_2d_float(queries, "queries")
        if Q_checked.shape[1] != X_checked.shape[1]:
            raise ValueError(
                f"queries have {Q_checked.shape[1]} features but X has {X_checked.shape[1]}."
            )
        exclude_self = False
    n_available = X_checked.shape[0] - (1 if exclude_self else 0)
    if k > n_available:
        raise ValueError(
            f"k={k} is larger than the {n_available} candidate neighbours available "
            f"(n_samples={X_checked.shape[0]}, exclude_self={exclude_self}); use a smaller k."
        )
    chunk_size = _resolve_chunk_size(chunk_size, X_checked.shape[0])
    compute_device = resolve_device(X, device)
    used_backend = resolve_backend(backend, compute_device)

    use_ivf = _use_ivf(index, used_backend, X_checked.shape[0])
    margin = min(max(8, k // 2), n_available - k) if refine else 0
    if used_backend == "faiss":
        probes = _resolve_probes(n_probe, X_checked.shape[0]) if use_ivf else None
        database_raw, queries_raw, indices, scores = _search_faiss(
            X_checked,
            Q_checked,
            k + margin,
            metric,
            exclude_self,
            chunk_size,
            compute_device,
            probes,
        )
    else:
        database_raw, queries_raw, indices, scores = _search_torch(
            X_checked, Q_checked, k + margin, metric, exclude_self, chunk_size, compute_device
        )
    if margin > 0:
        indices, scores = _refine_near_ties(database_raw, queries_raw, indices, scores, k, metric)
    indices, scores = _finalise(indices, scores, k, metric)
    return like_input(indices, X), like_input(scores, X)
