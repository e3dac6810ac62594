"""Tests of deepclust.metrics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score as sklearn_ari
from sklearn.metrics import normalized_mutual_info_score as sklearn_nmi
from sklearn.model_selection import GridSearchCV

from deepclust import metrics
from deepclust.metrics import (
    SCORERS,
    cluster_accuracy,
    cluster_accuracy_scorer,
    cluster_mapping,
    evaluate_clustering,
    get_scorer,
    get_scorer_names,
    purity,
    purity_scorer,
)


def _brute_force_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Best one-to-one cluster->class matching by trying every injective map."""
    classes, clusters = np.unique(y_true), np.unique(y_pred)
    best = 0
    n_matched = min(len(classes), len(clusters))
    for chosen_clusters in itertools.permutations(clusters, n_matched):
        for chosen_classes in itertools.permutations(classes, n_matched):
            hits = sum(
                np.sum((y_pred == k) & (y_true == c))
                for k, c in zip(chosen_clusters, chosen_classes)
            )
            best = max(best, hits)
    return best / len(y_true)


def test_permuted_labels_give_perfect_accuracy():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    relabel = {0: 2, 1: 0, 2: 1}
    y_pred = np.array([relabel[v] for v in y_true])
    assert cluster_accuracy(y_true, y_pred) == 1.0
    assert cluster_accuracy(y_true, y_pred, mapping="majority") == 1.0


def test_arbitrary_label_values():
    y_true = np.array([-3, -3, 100, 100, 7, 7])
    y_pred = np.array([42, 42, -1, -1, 5, 0])
    # -3 <-> 42 (2), 100 <-> -1 (2), 7 <-> 5 or 0 (1): 5 / 6
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)
    assert cluster_accuracy(["cat", "cat", "dog"], [1, 1, 0]) == 1.0


def test_hungarian_beats_greedy():
    # Contingency (classes x clusters) = [[3, 2], [2, 0]]. Greedy takes the 3 and
    # then 0 (= 3 / 7); the optimal matching is 2 + 2 = 4 / 7.
    y_true = np.array([0, 0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 0])
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 7)
    assert cluster_mapping(y_true, y_pred) == {0: 1, 1: 0}


def test_more_clusters_than_classes():
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 2, 2, 2])
    # hungarian: class 0 <-> cluster 0 (2), class 1 <-> cluster 2 (3); cluster 1 unmatched
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)
    assert cluster_mapping(y_true, y_pred) == {0: 0, 2: 1}
    # majority: clusters 0 and 1 both map to class 0
    assert cluster_accuracy(y_true, y_pred, mapping="majority") == 1.0
    assert cluster_mapping(y_true, y_pred, mapping="majority") == {0: 0, 1: 0, 2: 1}


def test_fewer_clusters_than_classes():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 0, 1, 1])
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert cluster_accuracy(y_true, y_pred, mapping="majority") == pytest.approx(4 / 6)


def test_single_cluster():
    assert cluster_accuracy([0, 1, 1, 2], [3, 3, 3, 3]) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(8))
def test_hungarian_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_classes, n_clusters = rng.integers(2, 5), rng.integers(2, 5)
    y_true = rng.integers(0, n_classes, size=30)
    y_pred = rng.integers(0, n_clusters, size=30)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(_brute_force_accuracy(y_true, y_pred))
    majority = sum(np.bincount(y_true[y_pred == k]).max() for k in np.unique(y_pred))
    assert cluster_accuracy(y_true, y_pred, mapping="majority") == pytest.approx(majority / 30)


def test_purity_by_hand():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 0, 0, 1, 1, 1]
    # cluster 0 = {0, 0, 1} -> 2 ; cluster 1 = {1, 1, 2} -> 2 ; 4 / 6
    assert purity(y_true, y_pred) == pytest.approx(4 / 6)
    assert purity([0, 0, 1, 1, 1], [0, 0, 0, 1, 1]) == pytest.approx(0.8)
    assert purity([0, 1, 2, 3], [0, 1, 2, 3]) == 1.0
    assert purity([0, 1, 0, 1], [7, 7, 7, 7]) == 0.5
    # one cluster per sample is perfectly pure
    assert purity([0, 1, 0, 1], [0, 1, 2, 3]) == 1.0


def test_accepts_lists_and_tensors():
    y_true = torch.tensor([1, 1, 0, 0])
    y_pred = torch.tensor([0, 0, 1, 0])
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(0.75)
    assert cluster_accuracy(list(y_true.tolist()), y_pred.numpy()) == pytest.approx(0.75)


@pytest.mark.parametrize("func", [cluster_accuracy, purity, cluster_mapping, evaluate_clustering])
def test_input_validation(func):
    with pytest.raises(ValueError, match="same length"):
        func([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        func(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="empty"):
        func([], [])


def test_bad_mapping():
    with pytest.raises(ValueError, match="mapping"):
        cluster_accuracy([0, 1], [0, 1], mapping="greedy")


def test_evaluate_clustering():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=50)
    y_pred = np.where(rng.random(50) < 0.7, y_true, rng.integers(0, 4, size=50))
    scores = evaluate_clustering(y_true, y_pred)
    assert list(scores) == ["acc", "nmi", "ari"]
    assert scores["acc"] == pytest.approx(cluster_accuracy(y_true, y_pred))
    assert scores["nmi"] == pytest.approx(sklearn_nmi(y_true, y_pred))
    assert scores["ari"] == pytest.approx(sklearn_ari(y_true, y_pred))
    assert all(isinstance(v, float) for v in scores.values())
    extended = evaluate_clustering(y_true, y_pred, metrics=["purity", "ami"])
    assert list(extended) == ["purity", "ami"]
    assert extended["purity"] == pytest.approx(purity(y_true, y_pred))
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_clustering(y_true, y_pred, metrics=["f1"])


def test_sklearn_reexports():
    assert metrics.nmi is metrics.normalized_mutual_info_score is sklearn_nmi
    assert metrics.ari is metrics.adjusted_rand_score is sklearn_ari
    assert metrics.ami is metrics.adjusted_mutual_info_score


# --------------------------------------------------------------------------- scorers


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n_samples=240, centers=4, cluster_std=0.6, random_state=0)


def test_grid_search_picks_true_cluster_count(blobs):
    X, y = blobs
    search = GridSearchCV(
        KMeans(n_init=3, random_state=0),
        {"n_clusters": [2, 3, 4, 5, 6]},
        scoring=cluster_accuracy_scorer,
        cv=3,
    )
    search.fit(X, y)
    assert search.best_params_ == {"n_clusters": 4}
    assert search.best_score_ > 0.95
    means = search.cv_results_["mean_test_score"]
    assert means[2] > means[1] and means[2] > means[3]


def test_grid_search_multimetric_with_get_scorer(blobs):
    X, y = blobs
    search = GridSearchCV(
        KMeans(n_init=2, random_state=0),
        {"n_clusters": [3, 4]},
        scoring={"acc": get_scorer("acc"), "nmi": get_scorer("nmi"), "purity": purity_scorer},
        refit="acc",
        cv=2,
    )
    search.fit(X, y)
    assert search.best_params_ == {"n_clusters": 4}
    assert set(search.cv_results_) >= {"mean_test_acc", "mean_test_nmi", "mean_test_purity"}


def test_scorers_call_predict(blobs):
    X, y = blobs
    model = KMeans(n_clusters=6, n_init=2, random_state=0).fit(X)
    labels = model.predict(X)
    assert cluster_accuracy_scorer(model, X, y) == pytest.approx(cluster_accuracy(y, labels))
    assert purity_scorer(model, X, y) == pytest.approx(purity(y, labels))
    # purity does not penalise the two surplus clusters; accuracy does
    assert purity_scorer(model, X, y) > cluster_accuracy_scorer(model, X, y)


def test_get_scorer_lookup():
    assert get_scorer("cluster_accuracy") is cluster_accuracy_scorer
    assert get_scorer("purity") is purity_scorer
    assert set(SCORERS) >= {"cluster_accuracy", "acc", "purity", "nmi", "ari", "ami"}
    fallback = get_scorer("adjusted_rand_score")
    assert callable(fallback)
    assert get_scorer(cluster_accuracy_scorer) is cluster_accuracy_scorer
    with pytest.raises(ValueError, match="not a known scorer"):
        get_scorer("no_such_scorer")
    with pytest.raises(TypeError):
        get_scorer(3)
    names = get_scorer_names()
    assert "cluster_accuracy" in names and "adjusted_rand_score" in names
    assert names == sorted(names)


def test_matched_confusion_matrix_puts_the_matching_on_the_diagonal():
    from deepclust.metrics import matched_confusion_matrix

    rng = np.random.default_rng(0)
    y_true = rng.choice(np.array(["cat", "dog", "owl"]), 200)
    y_pred = rng.integers(0, 4, 200)  # four clusters, one unmatched
    y_pred[:120] = np.searchsorted(["cat", "dog", "owl"], y_true[:120]) * 2 % 3 + 1
    result = matched_confusion_matrix(y_true, y_pred)
    counts = np.asarray(result["counts"])
    assert counts.shape == (4, 3) and counts.sum() == 200
    assert sorted(result["classes"]) == ["cat", "dog", "owl"] and sorted(result["clusters"]) == [
        0,
        1,
        2,
        3,
    ]
    assert np.trace(counts) / 200 == pytest.approx(cluster_accuracy(y_true, y_pred))
