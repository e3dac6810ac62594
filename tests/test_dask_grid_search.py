"""GridSearchCV over cluster counts on a dask cluster (joblib's dask backend).

The recipe of docs/user_guide/distributed.rst ("Many fits on many machines"): a
``LocalCluster`` of two worker processes on this machine stands in for machines with one GPU
each. The search must give the same scores, ranks and best parameters as the same search
run serially, and its fits must have run as tasks on the dask workers.
"""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV

from deepclust import DeepClusterEstimator
from deepclust._testing import fast_instance
from deepclust.metrics import cosine_silhouette

PARAM_GRID = {"n_clusters": [2, 3, 4]}
CV = 2


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(
        n_samples=120,
        centers=3,
        n_features=8,
        cluster_std=0.5,
        center_box=(-8, 8),
        random_state=0,
    )
    return X.astype(np.float32)


def _search(n_jobs: int) -> GridSearchCV:
    # device='cpu' here; on a GPU cluster, device='cuda' (each worker sees its own GPU).
    return GridSearchCV(
        fast_instance(DeepClusterEstimator, device="cpu"), PARAM_GRID, cv=CV, n_jobs=n_jobs
    )


def _torch_threads() -> int:
    return torch.get_num_threads()


@pytest.mark.dask
def test_grid_search_on_dask_workers_matches_serial(blobs):
    distributed = pytest.importorskip("distributed")
    X = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = _search(n_jobs=1).fit(X)

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = set(client.scheduler_info()["workers"])
        assert len(workers) == 2
        # The same torch thread count as this process (conftest: 1), so that the fits'
        # floating-point sums agree; dask's nanny starts workers with OMP_NUM_THREADS=1.
        assert set(client.run(_torch_threads).values()) == {torch.get_num_threads()}

        with (
            distributed.get_task_stream(client) as tasks,
            joblib.parallel_backend("dask"),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            on_dask = _search(n_jobs=-1).fit(X)

    # The fits ran as dask tasks, on the cluster's workers, without errors.
    records = tasks.data
    assert records, "no task reached the dask scheduler: the search did not use dask"
    assert all("fit_and_score" in str(record["key"]) for record in records)
    assert {record["worker"] for record in records} <= workers
    assert all(record["status"] == "OK" for record in records)

    # ...and gave exactly the serial search's results.
    for key in ["mean_test_score", "rank_test_score"] + [f"split{i}_test_score" for i in range(CV)]:
        np.testing.assert_array_equal(on_dask.cv_results_[key], serial.cv_results_[key], key)
    assert list(on_dask.cv_results_["params"]) == list(serial.cv_results_["params"])
    assert on_dask.best_params_ == serial.best_params_
    assert on_dask.best_estimator_.n_clusters == serial.best_params_["n_clusters"]


def test_score_does_not_depend_on_the_joblib_context(blobs):
    """Inside a task of joblib's dask backend, joblib's active n_jobs is the cluster's
    thread count; scikit-learn's silhouette would then compute its distances in column
    blocks (different float32 sums). The label-free scores pass n_jobs=1."""
    X = blobs
    est = fast_instance(DeepClusterEstimator, n_clusters=4).fit(X)
    features, labels = est.transform(X), est.predict(X)
    alone = est.score(X), cosine_silhouette(features, labels)
    with joblib.parallel_config(backend="threading", n_jobs=2):
        assert (est.score(X), cosine_silhouette(features, labels)) == alone
