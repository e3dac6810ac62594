"""Overclustering with merge (``merge_to``): the prototype-merge kernel and the estimators."""

from __future__ import annotations

import numpy as np
import pytest

from deepclust._testing import ESTIMATORS, fast_instance
from deepclust.cluster._merge import merge_prototypes
from deepclust.io import load_model, save_model

METHODS = {cls.method_spec.name: cls for cls in ESTIMATORS}


def _paired_blobs(n_per_blob=10, seed=0):
    """8 tight blobs on the unit circle in 4 pairs (pair members 4 degrees apart, pairs
    90 degrees apart); blob ``b`` is trained cluster ``b``."""
    rng = np.random.default_rng(seed)
    angles = np.repeat(np.arange(4) * np.pi / 2, 2) + np.tile([0.0, np.deg2rad(4)], 4)
    centers = np.c_[np.cos(angles), np.sin(angles), np.zeros(8)]
    labels = np.repeat(np.arange(8), n_per_blob)
    features = centers[labels] + rng.normal(scale=0.002, size=(len(labels), 3))
    return features, labels


def _groups(merge_map):
    return sorted(tuple(np.flatnonzero(merge_map == g)) for g in np.unique(merge_map))


def test_kernel_merges_planted_pairs():
    features, labels = _paired_blobs()
    merge_map = merge_prototypes(features, labels, 8, 4)
    assert merge_map.shape == (8,) and merge_map.dtype == np.int64
    assert _groups(merge_map) == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert list(merge_map) == [0, 0, 1, 1, 2, 2, 3, 3]  # numbered by smallest trained id


def test_kernel_invariant_to_permuted_cluster_ids():
    features, labels = _paired_blobs()
    permutation = np.random.default_rng(1).permutation(8)
    merged = merge_prototypes(features, labels, 8, 4)
    permuted = merge_prototypes(features, permutation[labels], 8, 4)
    # Trained cluster b is called permutation[b]: same samples end up together.
    assert _groups(permuted[permutation]) == _groups(merged)
    a, b = merged[labels], permuted[permutation[labels]]  # each sample's merged id
    assert np.array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


def test_kernel_ignores_empty_clusters():
    features, labels = _paired_blobs()
    labels = np.where(labels >= 2, labels + 1, labels)  # trained id 2 is empty, 9 clusters
    merge_map = merge_prototypes(features, labels, 9, 4)
    assert _groups(np.delete(merge_map, 2)) == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert 0 <= merge_map[2] < 4


def _blobs_2d(seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[8.0, 0.0], [-8.0, 0.0], [0.0, 8.0]])
    y = np.repeat(np.arange(3), 20)
    return (centers[y] + rng.normal(scale=0.5, size=(60, 2))).astype(np.float32), y


@pytest.fixture(scope="module")
def merged_fits():
    X, _ = _blobs_2d()
    return X, {
        name: fast_instance(cls, n_clusters=6, merge_to=3).fit(X) for name, cls in METHODS.items()
    }


@pytest.mark.parametrize("name", sorted(METHODS))
def test_estimator_merges_to_merge_to(merged_fits, name):
    X, fits = merged_fits
    est = fits[name]
    assert est.n_clusters_trained_ == 6
    assert est.merge_map_.shape == (6,) and set(est.merge_map_) <= set(range(3))
    assert set(est.labels_) <= set(range(3))
    assert est.network_.heads.n_clusters == 6
    predicted = est.predict(X)
    assert set(predicted) <= set(range(3))
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # predict maps the trained argmax through merge_map_: as consistent with labels_ as
    # the unmerged labels are with the unmerged prediction.
    assert np.mean(predicted == est.labels_) >= 0.9
    assert est.recipe_["params"] is not None and len(est.history_) == est.n_iter_


@pytest.mark.parametrize("name", sorted(METHODS))
def test_merged_model_file_round_trip(merged_fits, name, tmp_path):
    X, fits = merged_fits
    est = fits[name]
    save_model(est, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    np.testing.assert_array_equal(loaded.merge_map_, est.merge_map_)
    assert loaded.n_clusters_trained_ == 6 and loaded.merge_to == 3
    np.testing.assert_array_equal(loaded.labels_, est.labels_)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


@pytest.mark.parametrize("merge_to", [1, 6, 7])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_bad_merge_to_refused_before_training(name, merge_to, monkeypatch):
    cls = METHODS[name]
    X, _ = _blobs_2d()

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(cls._fit_state_class, "run", no_training)
    with pytest.raises(ValueError, match=r"merge_to"):
        fast_instance(cls, n_clusters=6, merge_to=merge_to).fit(X)


def test_below_n_clusters_message_names_values():
    X, _ = _blobs_2d()
    with pytest.raises(ValueError, match=r"merge_to=6 must be at least 2 and below n_clusters=6"):
        fast_instance(METHODS["sela"], n_clusters=6, merge_to=6).fit(X)


@pytest.mark.parametrize("name", ["sela", "deepcluster"])
def test_merge_to_none_leaves_fit_unchanged(name):
    X, _ = _blobs_2d()
    cls = METHODS[name]
    plain = fast_instance(cls, n_clusters=6).fit(X)
    assert not hasattr(plain, "merge_map_") and not hasattr(plain, "n_clusters_trained_")
    assert set(plain.predict(X)) <= set(range(6)) and plain.predict_proba(X).shape == (60, 6)
    # A refit without merge_to forgets the previous fit's merge.
    merged = fast_instance(cls, n_clusters=6, merge_to=3).fit(X)
    merged.set_params(merge_to=None).fit(X)
    assert not hasattr(merged, "merge_map_")
    np.testing.assert_array_equal(merged.labels_, plain.labels_)
    np.testing.assert_array_equal(merged.predict(X), plain.predict(X))
