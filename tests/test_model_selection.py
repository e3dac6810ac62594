"""choose_n_clusters: candidates checked before training, the pick, sharing, the table."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from deepclust import ClusterFitTransformer, DeepClusterEstimator, SCANClusterer
from deepclust._testing import fast_instance
from deepclust.model_selection import (
    NClustersSearch,
    choose_n_clusters,
    default_n_clusters_candidates,
    geometric_n_clusters_grid,
)


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(
        n_samples=240,
        centers=4,
        n_features=8,
        cluster_std=0.5,
        center_box=(-8, 8),
        random_state=0,
    )
    return X.astype(np.float32)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_picks_the_true_count_on_blobs(blobs):
    est = fast_instance(DeepClusterEstimator)
    result = choose_n_clusters(est, blobs, [6, 2, 4, 3, 5], seeds=(0, 1))
    assert isinstance(result, NClustersSearch)
    assert result.best_n_clusters_ == 4
    assert result.best_estimator_.n_clusters == 4
    assert [(r["n_clusters"], r["seed"]) for r in result.table] == [
        (k, s) for s in (0, 1) for k in (2, 3, 4, 5, 6)
    ]
    assert all(r["seconds"] > 0 for r in result.table)
    assert list(result.mean_scores()) == [2, 3, 4, 5, 6]
    assert "nothing" in result.shared
    record = json.loads(json.dumps(result.to_dict()))
    assert record["best_n_clusters"] == 4 and record["scoring"] == "vote"
    assert max(record["votes"], key=record["votes"].get) == "4"


def test_other_estimators_default_to_the_silhouette(blobs):
    result = choose_n_clusters(KMeans(n_init=2), blobs, [2, 4, 6])
    assert result.scoring == "silhouette" and result.votes == {}
    assert "scores" not in result.table[0]


def test_ties_go_to_the_smallest_count(blobs):
    result = choose_n_clusters(
        KMeans(n_init=1), blobs, [5, 3, 8], scoring=lambda est, X, y=None: 0.5
    )
    assert result.best_n_clusters_ == 3


def _constant(name: str, values: dict[int, float]):
    """A scorer called ``name`` returning ``values[n_clusters]``."""

    def scorer(est, X, y=None):
        return values[est.n_clusters]

    scorer.__name__ = name
    return scorer


def test_a_vote_sums_the_ranks_of_its_scorers(blobs):
    first = _constant("first", {2: 0.9, 3: 0.5, 4: 0.8})
    second = _constant("second", {2: 0.1, 3: 0.2, 4: 0.7})
    third = _constant("third", {2: 0.3, 3: 0.9, 4: 0.8})
    result = choose_n_clusters(KMeans(n_init=1), blobs, [2, 3, 4], scoring=[first, second, third])
    # ranks: first 3/1/2, second 1/2/3, third 1/3/2 -> points 5/6/7
    assert result.votes == {2: 5.0, 3: 6.0, 4: 7.0}
    assert result.best_n_clusters_ == 4
    assert result.mean_scores() == pytest.approx({2: 0.9, 3: 0.5, 4: 0.8})
    assert result.mean_scores("second") == pytest.approx({2: 0.1, 3: 0.2, 4: 0.7})
    assert result.scoring == "vote of first, second, third"
    assert result.table[0]["scores"] == {"first": 0.9, "second": 0.1, "third": 0.3}


def test_a_tie_of_points_goes_to_the_first_scorer():
    X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    first = _constant("first", {2: 0.2, 3: 0.4})
    second = _constant("second", {2: 0.9, 3: 0.1})
    result = choose_n_clusters(KMeans(n_init=1), X, [2, 3], scoring=[first, second])
    assert result.votes == {2: 3.0, 3: 3.0}
    assert result.best_n_clusters_ == 3


def test_the_named_vote_picks_the_true_count_on_blobs(blobs):
    est = fast_instance(DeepClusterEstimator)
    result = choose_n_clusters(est, blobs, [2, 3, 4, 5, 6], scoring="vote")
    assert result.scoring == "vote" and result.best_n_clusters_ == 4
    assert set(result.table[0]["scores"]) == {
        "silhouette",
        "augmentation_agreement",
        "linear_predictability",
    }
    record = json.loads(json.dumps(result.to_dict()))
    assert max(record["votes"], key=record["votes"].get) == "4"


def test_plot_draws_score_against_count(blobs):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    result = choose_n_clusters(KMeans(n_init=2), blobs, [2, 4, 6], seeds=(0, 1))
    ax = result.plot()
    assert ax.get_xlabel() == "n_clusters" and "4" in ax.get_title()


@pytest.mark.parametrize(
    "candidates, message",
    [
        ([], "empty"),
        ("5,10", "list of integers"),
        ([2, 3.5], "must be integers"),
        ([1, 4], "at least 2"),
        ([4, 3, 4], "more than once"),
        ([3, 240], "not smaller than the 240 samples"),
    ],
)
def test_bad_candidates_are_refused_before_training(blobs, candidates, message, monkeypatch):
    fits = []
    monkeypatch.setattr(DeepClusterEstimator, "fit", lambda self, *a, **k: fits.append(self))
    with pytest.raises(ValueError, match=message):
        choose_n_clusters(fast_instance(DeepClusterEstimator), blobs, candidates)
    assert fits == []


def test_bad_scoring_and_seeds_are_refused(blobs):
    est = fast_instance(DeepClusterEstimator)
    with pytest.raises(ValueError, match="scoring must be"):
        choose_n_clusters(est, blobs, [2, 3], scoring="accuracy")
    with pytest.raises(ValueError, match="seeds"):
        choose_n_clusters(est, blobs, [2, 3], seeds=[])
    with pytest.raises(ValueError, match="two or more different scorers"):
        choose_n_clusters(est, blobs, [2, 3], scoring=["silhouette", "silhouette"])


def test_scan_shares_one_pretext_per_seed(blobs, monkeypatch):
    fitted = []
    original = SCANClusterer.fit

    def spy(self, X, y=None, **kwargs):
        fitted.append((self.n_clusters, self.max_epochs, self.pretrained))
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(SCANClusterer, "fit", spy)
    est = fast_instance(SCANClusterer, pretext_epochs=2, max_epochs=3, selflabel_epochs=0)
    result = choose_n_clusters(est, blobs, [2, 4])
    pretext, *candidates = fitted
    assert pretext[1] == 0 and pretext[2] is None  # the pretext-only fit
    assert [c[0] for c in candidates] == [2, 4]
    assert all(c[2] is not None for c in candidates)
    stages = {r["stage"] for r in result.best_estimator_.history_}
    assert "pretext" not in stages
    assert result.shared_seconds > 0 and "pretext" in result.shared


def test_clusterfit_reuses_the_first_pretext_network(blobs):
    est = fast_instance(ClusterFitTransformer, pretext_epochs=2, max_epochs=2)
    result = choose_n_clusters(est, blobs, [2, 3, 4])
    assert "pretext_network_" in result.shared
    assert result.best_estimator_.n_clusters in (2, 3, 4)
    second = [r for r in result.table if r["n_clusters"] == 3]
    assert len(second) == 1


def test_grids():
    assert geometric_n_clusters_grid(5, 30) == [5, 6, 8, 10, 12, 15, 19, 24, 30]
    assert geometric_n_clusters_grid(4, 4) == [4]
    assert default_n_clusters_candidates(1000) == [7, 9, 11, 13, 17, 21, 26, 32, 40, 50]
    assert default_n_clusters_candidates(10) == [2, 3, 4, 5, 6, 7]
    for n in (3, 50, 5000, 10**6):
        grid = default_n_clusters_candidates(n)
        assert 2 <= grid[0] and grid[-1] <= min(50, n - 1) and grid == sorted(set(grid))
