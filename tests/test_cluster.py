"""Tests for deepclust.cluster: k-means, kNN and PCA-whitening on the faiss and torch backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.neighbors import NearestNeighbors

from deepclust.cluster import (
    KMeansResult,
    PCAWhitening,
    _backend,
    assign,
    faiss_available,
    faiss_gpu_available,
    kmeans,
    knn,
    merged_kmeans,
    pca_whiten,
)

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
BACKENDS = ["torch", pytest.param("faiss", marks=[needs_faiss, pytest.mark.faiss])]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=1500, centers=6, n_features=8, cluster_std=1.5, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture
def no_faiss(monkeypatch):
    """Pretend faiss is not installed."""
    monkeypatch.setattr(_backend, "_faiss_module", lambda: None)


# --------------------------------------------------------------------------- k-means


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_matches_sklearn_nmi_on_blobs(blobs, backend):
    X, y = blobs
    reference = KMeans(n_clusters=6, n_init=1, random_state=0).fit(X)
    nmi_sklearn = normalized_mutual_info_score(y, reference.labels_)
    result = kmeans(X, 6, n_iter=25, random_state=0, backend=backend)
    assert isinstance(result, KMeansResult)
    assert result.backend == backend
    assert normalized_mutual_info_score(y, result.labels) >= nmi_sklearn - 0.02
    # The reported inertia is the true sum of squared distances of the returned labels.
    expected = ((X - result.centroids[result.labels]) ** 2).sum()
    assert result.inertia == pytest.approx(float(expected), rel=1e-4)
    assert result.inertia <= reference.inertia_ * 1.05


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_numpy_in_numpy_out(blobs, backend):
    X, _ = blobs
    result = kmeans(X.astype(np.float64), 4, random_state=0, backend=backend)
    assert isinstance(result.centroids, np.ndarray) and result.centroids.dtype == np.float32
    assert isinstance(result.labels, np.ndarray) and result.labels.dtype == np.int64
    assert result.centroids.shape == (4, 8) and result.labels.shape == (1500,)
    assert isinstance(result.inertia, float)
    assert result.labels.min() >= 0 and result.labels.max() < 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_torch_in_torch_out(blobs, backend):
    X, _ = blobs
    result = kmeans(torch.from_numpy(X), 4, random_state=0, backend=backend)
    assert isinstance(result.centroids, torch.Tensor) and result.centroids.dtype == torch.float32
    assert isinstance(result.labels, torch.Tensor) and result.labels.dtype == torch.int64
    assert result.labels.device == torch.device("cpu")
    assert result.centroids.shape == (4, 8)


def test_faiss_and_torch_backends_agree(blobs):
    pytest.importorskip("faiss")
    X, _ = blobs
    res_torch = kmeans(X, 6, random_state=3, backend="torch")
    res_faiss = kmeans(X, 6, random_state=3, backend="faiss")
    # Same initialisation (computed by deepclust) -> same partition.
    assert adjusted_rand_score(res_torch.labels, res_faiss.labels) == pytest.approx(1.0)
    assert res_torch.inertia == pytest.approx(res_faiss.inertia, rel=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_clusters", [12, 30])
def test_kmeans_no_empty_cluster_with_duplicates(backend, n_clusters):
    # 6 distinct points, each repeated 5 times: nearest-centroid assignment alone can fill
    # at most 6 clusters, so K=12 and K=N=30 need re-seeding / repair.
    X = np.repeat(np.random.RandomState(0).normal(size=(6, 3)), 5, axis=0).astype(np.float32)
    result = kmeans(X, n_clusters, random_state=0, backend=backend)
    counts = np.bincount(result.labels, minlength=n_clusters)
    assert counts.min() >= 1
    assert counts.sum() == 30
    # Every sample still sits on (a copy of) its own centroid; faiss splits clusters by
    # scaling a centroid by (1 +- 1/1024), hence the relative tolerance.
    np.testing.assert_allclose(result.centroids[result.labels], X, rtol=3e-3, atol=1e-4)


def test_kmeans_allow_empty_keeps_empty_clusters():
    X = np.repeat(np.random.RandomState(0).normal(size=(6, 3)), 5, axis=0).astype(np.float32)
    result = kmeans(X, 12, random_state=0, backend="torch", allow_empty=True)
    assert (np.bincount(result.labels, minlength=12) == 0).sum() >= 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_reseeds_cluster_emptied_by_init(blobs, backend):
    X, _ = blobs
    # One initial centroid far from every sample: it gets no points in the first step.
    init = np.vstack([X[:5], np.full((1, 8), 1e3, dtype=np.float32)])
    result = kmeans(X, 6, init=init, n_iter=25, random_state=0, backend=backend)
    assert np.bincount(result.labels, minlength=6).min() >= 1
    assert np.abs(result.centroids).max() < 100
    stuck = kmeans(X, 6, init=init, n_iter=25, backend="torch", allow_empty=True)
    assert np.bincount(stuck.labels, minlength=6).min() == 0
    assert result.inertia < stuck.inertia


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_reproducible(blobs, backend):
    X, _ = blobs
    first = kmeans(X, 5, random_state=7, backend=backend)
    second = kmeans(X, 5, random_state=np.random.RandomState(7), backend=backend)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    assert first.inertia == second.inertia


def test_kmeans_random_init_and_n_init(blobs):
    X, _ = blobs
    single = kmeans(X, 6, init="random", n_init=1, random_state=0, backend="torch")
    multi = kmeans(X, 6, init="random", n_init=4, random_state=0, backend="torch")
    # The first of the four runs is the single run, so the best of four is no worse.
    assert multi.inertia <= single.inertia + 1e-6


def test_kmeans_chunked_equals_unchunked(blobs):
    X, _ = blobs
    whole = kmeans(X, 6, random_state=1, backend="torch", chunk_size=10**6)
    chunked = kmeans(X, 6, random_state=1, backend="torch", chunk_size=37)
    np.testing.assert_array_equal(whole.labels, chunked.labels)
    np.testing.assert_allclose(whole.centroids, chunked.centroids, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_max_points_per_centroid(blobs, backend):
    X, y = blobs
    result = kmeans(X, 6, random_state=0, backend=backend, max_points_per_centroid=40)
    assert result.labels.shape == (1500,)  # all samples are assigned
    assert normalized_mutual_info_score(y, result.labels) > 0.8
    full = kmeans(X, 6, random_state=0, backend=backend)
    assert not np.array_equal(result.centroids, full.centroids)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_subsample_with_n_init(blobs, backend):
    X, y = blobs
    result = kmeans(X, 6, n_init=3, random_state=0, backend=backend, max_points_per_centroid=30)
    assert np.bincount(result.labels, minlength=6).min() >= 1
    assert normalized_mutual_info_score(y, result.labels) > 0.8
    expected = ((X - result.centroids[result.labels]) ** 2).sum()
    assert result.inertia == pytest.approx(float(expected), rel=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_assign_is_nearest_centroid(blobs, backend):
    X, _ = blobs
    centroids = X[:7] + 0.5
    labels, sq_dist = assign(X, centroids, backend=backend, chunk_size=100)
    brute = ((X[:, None, :].astype(np.float64) - centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, brute.argmin(1))
    np.testing.assert_allclose(sq_dist, brute.min(1), rtol=1e-4, atol=1e-3)
    assert labels.dtype == np.int64
    labels_t, _ = assign(torch.from_numpy(X), torch.from_numpy(centroids), backend=backend)
    assert isinstance(labels_t, torch.Tensor)
    np.testing.assert_array_equal(labels_t.numpy(), labels)


def test_kmeans_input_validation(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans(X[:3], 4)
    with pytest.raises(ValueError, match="2-D"):
        kmeans(X[:, 0], 2)
    with pytest.raises(ValueError, match="backend"):
        kmeans(X, 2, backend="sklearn")
    with pytest.raises(ValueError, match="init"):
        kmeans(X, 2, init="kmeans||")
    with pytest.raises(ValueError, match="shape"):
        kmeans(X, 2, init=X[:3])
    with pytest.raises(TypeError, match="n_clusters"):
        kmeans(X, 2.5)
    with pytest.raises(ValueError, match="NaN"):
        kmeans(np.full((5, 2), np.nan), 2, backend="torch")


def test_faiss_missing_raises_and_auto_falls_back(blobs, no_faiss):
    X, _ = blobs
    assert not faiss_available() and not faiss_gpu_available()
    with pytest.raises(ImportError, match=r"pip install deepclust\[faiss\]"):
        kmeans(X, 3, backend="faiss")
    with pytest.raises(ImportError, match=r"pip install deepclust\[faiss\]"):
        knn(X, 3, backend="faiss")
    assert kmeans(X, 3, random_state=0).backend == "torch"


def test_auto_backend_uses_faiss_on_cpu(blobs):
    pytest.importorskip("faiss")
    X, _ = blobs
    assert kmeans(X, 3, random_state=0).backend == "faiss"
    assert _backend.resolve_backend("auto", torch.device("cpu")) == "faiss"


@pytest.fixture(scope="module")
def twelve_blobs():
    X, y = make_blobs(n_samples=3000, centers=12, n_features=5, cluster_std=1.0, random_state=3)
    return X.astype(np.float32), y


@pytest.mark.parametrize("backend", BACKENDS)
def test_merged_kmeans_finds_blobs_that_single_runs_miss(twelve_blobs, backend):
    X, y = twelve_blobs
    single = [
        adjusted_rand_score(y, kmeans(X, 12, random_state=s, backend=backend).labels)
        for s in range(6)
    ]
    assert min(single) < 0.95  # some k-means++ starts end in a poor local minimum here
    for seed in range(6):
        result = merged_kmeans(X, 12, n_subclusters=60, random_state=seed, backend=backend)
        assert adjusted_rand_score(y, result.labels) == pytest.approx(1.0)


def test_merged_kmeans_result_is_consistent(twelve_blobs):
    X, _ = twelve_blobs
    result = merged_kmeans(X, 5, n_subclusters=40, random_state=0)
    assert isinstance(result.labels, np.ndarray) and result.labels.dtype == np.int64
    assert sorted(np.unique(result.labels)) == list(range(5))
    # Centroids are the means of their members, inertia their squared distances.
    for c in range(5):
        np.testing.assert_allclose(
            result.centroids[c], X[result.labels == c].mean(0), rtol=1e-4, atol=1e-4
        )
    expected = ((X - result.centroids[result.labels]) ** 2).sum()
    assert result.inertia == pytest.approx(float(expected), rel=1e-4)
    again = merged_kmeans(torch.from_numpy(X), 5, n_subclusters=40, random_state=0)
    assert isinstance(again.labels, torch.Tensor)
    np.testing.assert_array_equal(again.labels.numpy(), result.labels)


@pytest.mark.parametrize("n_subclusters", [4, 3001])
def test_merged_kmeans_rejects_subclusters_outside_range(twelve_blobs, n_subclusters):
    X, _ = twelve_blobs
    with pytest.raises(ValueError, match="n_subclusters"):
        merged_kmeans(X, 5, n_subclusters=n_subclusters)


# --------------------------------------------------------------------------- kNN


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_toy_euclidean_excludes_self(backend):
    X = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]], dtype=np.float32)
    indices, distances = knn(X, 2, metric="euclidean", backend=backend)
    np.testing.assert_array_equal(indices, [[1, 2], [0, 2], [1, 0], [2, 1], [3, 2]])
    np.testing.assert_allclose(distances, [[1, 3], [1, 2], [2, 3], [4, 6], [8, 12]], rtol=1e-5)
    assert indices.dtype == np.int64
    with_self, _ = knn(X, 2, metric="euclidean", backend=backend, exclude_self=False)
    np.testing.assert_array_equal(with_self[:, 0], np.arange(5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_cosine_differs_from_euclidean(backend):
    # Point 1 points in the same direction as point 0 but is far; point 2 is close but at 45°.
    X = np.array([[1.0, 0.0], [10.0, 0.5], [0.9, 0.9]], dtype=np.float32)
    cos_idx, cos_sim = knn(X, 1, metric="cosine", backend=backend)
    euc_idx, _ = knn(X, 1, metric="euclidean", backend=backend)
    assert cos_idx[0, 0] == 1 and euc_idx[0, 0] == 2
    assert cos_sim[0, 0] == pytest.approx(10 / np.hypot(10, 0.5), rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_matches_sklearn(backend, metric):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 10)).astype(np.float32)
    Q = rng.normal(size=(20, 10)).astype(np.float32)
    reference = NearestNeighbors(n_neighbors=6, metric=metric, algorithm="brute").fit(
        X.astype(np.float64)
    )
    ref_dist, ref_idx = reference.kneighbors(X.astype(np.float64))
    indices, scores = knn(X, 5, metric=metric, backend=backend, chunk_size=64)
    np.testing.assert_array_equal(indices, ref_idx[:, 1:])  # first hit is the sample itself
    expected = 1.0 - ref_dist[:, 1:] if metric == "cosine" else ref_dist[:, 1:]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    q_idx, _ = knn(X, 5, queries=Q, metric=metric, backend=backend)
    np.testing.assert_array_equal(q_idx, reference.kneighbors(Q.astype(np.float64), 5)[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_duplicates_exclude_self_by_index(backend):
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    indices, sims = knn(X, 1, backend=backend)
    assert indices[0, 0] == 1 and indices[1, 0] == 0
    assert sims[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_knn_torch_io_and_chunking():
    X = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    idx_all, sim_all = knn(X, 7, backend="torch", chunk_size=1000)
    idx_chunked, sim_chunked = knn(X, 7, backend="torch", chunk_size=9)
    assert isinstance(idx_all, torch.Tensor) and idx_all.dtype == torch.int64
    torch.testing.assert_close(idx_all, idx_chunked)
    torch.testing.assert_close(sim_all, sim_chunked)
    assert bool((idx_all != torch.arange(200).unsqueeze(1)).all())
    assert bool((sim_all[:, :-1] >= sim_all[:, 1:]).all())  # sorted, most similar first


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_refine_off_and_near_ties(backend):
    rng = np.random.RandomState(1)
    X = rng.normal(size=(400, 16)).astype(np.float32)
    exact = NearestNeighbors(n_neighbors=4, algorithm="brute").fit(X.astype(np.float64))
    expected = exact.kneighbors(X.astype(np.float64))[1][:, 1:]
    fast, _ = knn(X, 3, metric="euclidean", backend=backend, refine=False)
    np.testing.assert_array_equal(fast, expected)
    # Rows 1 and 2 are at distances 1.0001 and 1.0 from row 0, whose squared norm is 1e6:
    # below float32 resolution of ||q||^2 - 2 q.x + ||x||^2, resolved by the re-ranking.
    base = np.zeros((40, 3))
    base[0] = [1000.0, 0.0, 0.0]
    base[1] = [1000.0, 1.0 + 1e-4, 0.0]
    base[2] = [1000.0, 0.0, 1.0]  # the nearest; float32 expanded distances tie with row 1
    base[3:] = rng.uniform(50, 60, size=(37, 3))
    idx, dist = knn(base.astype(np.float32), 1, metric="euclidean", backend=backend)
    assert idx[0, 0] == 2
    assert dist[0, 0] == pytest.approx(1.0, rel=1e-6)


def test_knn_validation():
    X = np.zeros((5, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="metric"):
        knn(X, 2, metric="manhattan")
    with pytest.raises(ValueError, match="k=5"):
        knn(X, 5)
    with pytest.raises(ValueError, match="features"):
        knn(X, 2, queries=np.zeros((3, 4)))


# --------------------------------------------------------------------------- PCA-whitening


@pytest.fixture(scope="module")
def correlated():
    rng = np.random.RandomState(0)
    mixing = rng.normal(size=(12, 12)) * np.linspace(0.1, 5, 12)
    return (rng.normal(size=(2000, 12)) @ mixing + 3.0).astype(np.float32)


def test_pca_whitening_identity_covariance(correlated):
    Z = PCAWhitening(6, l2_normalize=False, eps=0.0).fit_transform(correlated)
    assert Z.shape == (2000, 6) and Z.dtype == np.float32
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(6), atol=1e-4)
    np.testing.assert_allclose(Z.mean(0), 0.0, atol=1e-4)


def test_pca_whitening_unit_norm_and_function_form(correlated):
    model = PCAWhitening(6).fit(correlated)
    Z = model.transform(correlated)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(pca_whiten(correlated, 6), Z, rtol=1e-6, atol=1e-6)
    # Transforming new data uses the fitted statistics.
    np.testing.assert_allclose(model.transform(correlated[:10]), Z[:10], rtol=1e-6, atol=1e-6)
    # Leading variances come first.
    assert bool((model.explained_variance_[:-1] >= model.explained_variance_[1:]).all())


def test_pca_whitening_caps_components_and_torch_io(correlated):
    X = torch.from_numpy(correlated)
    model = PCAWhitening(50)
    Z = model.fit_transform(X)
    assert model.n_components_ == 12
    assert isinstance(Z, torch.Tensor) and Z.shape == (2000, 12) and Z.dtype == torch.float32
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :5])
    with pytest.raises(Exception, match="not fitted"):
        PCAWhitening(3).transform(X)


def test_pca_whitening_matches_faiss_pcamatrix(correlated):
    faiss = pytest.importorskip("faiss")
    # faiss >= 1.15: eigen_power must be passed positionally (no keyword argument).
    with pytest.raises(TypeError):
        faiss.PCAMatrix(12, 6, eigen_power=-0.5)
    pca = faiss.PCAMatrix(12, 6, -0.5)
    pca.train(correlated)
    reference = pca.apply(correlated)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    ours = PCAWhitening(6, eps=0.0).fit_transform(correlated)
    # Same whitened directions up to the sign of each axis.
    signs = np.sign((ours * reference).sum(0))
    np.testing.assert_allclose(ours * signs, reference, atol=1e-3)


def test_faiss_kmeans_pitfalls_documented():
    """faiss 1.15: Clustering has no ``obj``; faiss.Kmeans subsamples to 256 points/centroid."""
    faiss = pytest.importorskip("faiss")
    clustering = faiss.Clustering(4, 2)
    assert hasattr(clustering, "iteration_stats")
    assert faiss.ClusteringParameters().max_points_per_centroid == 256
    if tuple(int(p) for p in faiss.__version__.split(".")[:2]) >= (1, 15):
        assert not hasattr(clustering, "obj")


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@needs_cuda
def test_kmeans_torch_gpu_matches_cpu(blobs):
    X, _ = blobs
    cpu = kmeans(X, 6, random_state=0, backend="torch")
    gpu = kmeans(torch.from_numpy(X).cuda(), 6, random_state=0, backend="torch")
    assert gpu.labels.device.type == "cuda" and gpu.centroids.device.type == "cuda"
    assert adjusted_rand_score(cpu.labels, gpu.labels.cpu().numpy()) == pytest.approx(1.0)


@pytest.mark.gpu
@needs_cuda
def test_knn_and_pca_gpu_match_cpu(correlated):
    X = torch.from_numpy(correlated)
    idx_cpu, _ = knn(X, 5, backend="torch")
    idx_gpu, _ = knn(X.cuda(), 5, backend="torch")
    assert idx_gpu.device.type == "cuda"
    assert (idx_cpu == idx_gpu.cpu()).float().mean() > 0.99
    Z_gpu = PCAWhitening(6).fit_transform(X.cuda())
    Z_cpu = PCAWhitening(6).fit_transform(X)
    torch.testing.assert_close(Z_gpu.cpu(), Z_cpu, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.skipif(not faiss_gpu_available(), reason="faiss without GPU support")
def test_faiss_gpu_kmeans(blobs):
    X, _ = blobs
    result = kmeans(torch.from_numpy(X).cuda(), 6, random_state=0, backend="faiss")
    assert result.backend == "faiss" and result.labels.device.type == "cuda"


@needs_faiss
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_ivf_recall_and_every_row_filled(metric):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(4000, n_features=8, centers=40, cluster_std=1.0, random_state=0)
    X = X.astype(np.float32)
    exact, _ = knn(X, 10, metric=metric, index="flat")
    approx, scores = knn(X, 10, metric=metric, index="ivf")
    recall = np.mean([np.intersect1d(a, b).size / 10 for a, b in zip(exact, approx)])
    assert recall >= 0.95
    assert (approx >= 0).all() and (approx != np.arange(len(X))[:, None]).all()
    # One probe of 253 lists holds about 16 vectors: rows short of 10 + margin candidates
    # are searched exactly, so no -1 is returned and those rows match the exact search.
    few, _ = knn(X, 10, metric=metric, index="ivf", n_probe=1)
    assert (few >= 0).all() and (few != np.arange(len(X))[:, None]).all()
    assert len({tuple(sorted(row)) for row in few}) > 1


@needs_faiss
def test_knn_auto_index_follows_the_database_size(monkeypatch):
    import deepclust.cluster._knn as knn_module

    X = np.random.default_rng(0).normal(size=(600, 4)).astype(np.float32)
    built = []
    original = knn_module.faiss_ivf_index
    monkeypatch.setattr(
        knn_module, "faiss_ivf_index", lambda *a, **k: built.append(1) or original(*a, **k)
    )
    knn(X, 3, backend="faiss")
    assert built == []
    monkeypatch.setattr(knn_module, "IVF_MIN_SAMPLES", 500)
    knn(X, 3, backend="faiss")
    assert built == [1]
    knn(X, 3, backend="torch")  # the torch backend always searches exactly
    assert built == [1]


def test_knn_index_values_are_checked():
    X = np.zeros((20, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="index must be one of"):
        knn(X, 3, index="hnsw")
    with pytest.raises(ValueError, match="needs faiss"):
        knn(X, 3, index="ivf", backend="torch")
    if faiss_available():
        with pytest.raises(ValueError, match="n_probe"):
            knn(X, 3, index="ivf", n_probe=0)
