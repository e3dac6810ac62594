"""The public API every estimator shares: input forms, cloning, pickling, model selection,
and refusal of bad input before any training."""

from __future__ import annotations

import pickle
import time

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_dont_overwrite_parameters,
    check_fit2d_1feature,
    check_fit2d_predict1d,
)

from deepclust._testing import ESTIMATORS, fast_instance, fast_params
from deepclust.data import list_image_files
from deepclust.metrics import cluster_accuracy_scorer

IMAGE_PARAMS = {
    # Short image fits: a few epochs of the tiny conv net on 8x8 digits.
    "SelfLabelClusterer": dict(max_epochs=2, n_label_updates=1),
    "DeepClusterEstimator": dict(max_epochs=2),
    "SCANClusterer": dict(pretext_epochs=1, max_epochs=1, selflabel_epochs=1),
    "ClusterFitTransformer": dict(pretext_epochs=1, max_epochs=1),
}

estimator_classes = pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)


def image_instance(cls, **overrides):
    return fast_instance(cls, **{**IMAGE_PARAMS[cls.__name__], **overrides})


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=60, centers=3, n_features=4, random_state=0)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def _input_forms(digits_small, image_folder):
    X, _ = digits_small
    files = list_image_files(image_folder)
    return {
        "numpy (N, H, W) uint8": X,
        "numpy (N, H, W, C) float": np.repeat(X[..., None], 3, axis=-1) / 255.0,
        "torch (N, C, H, W)": torch.from_numpy(X)[:, None],
        "list of files": files,
        "folder": str(image_folder),
    }


@estimator_classes
def test_every_input_form(cls, digits_small, image_folder, blobs):
    forms = _input_forms(digits_small, image_folder)
    for name, X in forms.items():
        est = image_instance(cls, image_size=8).fit(X)
        n = len(est.labels_)
        assert n == 60, name
        assert est.predict(X).shape == (60,), name
        proba = est.predict_proba(X)
        assert proba.shape == (60, 3), name
        np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
        features = est.transform(X)
        assert features.ndim == 2 and features.shape[0] == 60, name
        assert np.isfinite(est.score(X)), name
    X2d, _ = blobs
    est = fast_instance(cls).fit(X2d)
    assert est.input_kind_ == "features"
    assert est.transform(X2d).shape[0] == 60


@estimator_classes
def test_clone_pickle_and_joblib(cls, digits_small, tmp_path):
    X, _ = digits_small
    est = image_instance(cls).fit(X)
    expected = est.predict(X)
    assert clone(est).get_params() == est.get_params()
    assert not hasattr(clone(est), "labels_")
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(X), expected)
    joblib.dump(est, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict(X), expected)


@estimator_classes
def test_grid_search_over_n_clusters(cls, blobs):
    X, y = blobs
    est = fast_instance(cls)
    labelled = GridSearchCV(est, {"n_clusters": [2, 3]}, scoring=cluster_accuracy_scorer, cv=2)
    labelled.fit(X, y)
    assert labelled.best_params_["n_clusters"] in (2, 3)
    assert 0.0 <= labelled.best_score_ <= 1.0
    label_free = GridSearchCV(est, {"n_clusters": [2, 3, 4]}, cv=2).fit(X)
    scores = label_free.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all(scores <= 1.0)


def test_own_score_picks_a_sensible_count(blobs):
    """On three well-separated blobs, the label-free score prefers 3 clusters to 2 and 6."""
    X, _ = blobs
    cls = ESTIMATORS[2]  # SCAN: the strongest clusterer on tiny tabular data
    search = GridSearchCV(
        fast_instance(cls), {"n_clusters": [2, 3, 6]}, cv=[(np.arange(60), np.arange(60))]
    ).fit(X)
    assert search.best_params_["n_clusters"] == 3


@estimator_classes
def test_sklearn_checks_that_force_one_cluster(cls):
    """The common checks listed as expected failures, run with n_clusters=2."""

    class TwoClusters(cls):
        def __setattr__(self, name, value):
            if name == "n_clusters" and value == 1:
                value = 2
            super().__setattr__(name, value)

    TwoClusters.__name__ = cls.__name__
    est = TwoClusters(**{**fast_params(cls), "random_state": 0})
    for check in (check_dont_overwrite_parameters, check_fit2d_1feature, check_fit2d_predict1d):
        check(cls.__name__, est)


@estimator_classes
def test_methods_subset_invariance(cls):
    """Results on a subset equal those on the whole set (float32 rounding aside: batched
    matrix products round differently for different batch sizes, by about 1e-7)."""
    X = 3 * np.random.RandomState(0).uniform(size=(40, 3))
    est = fast_instance(cls, n_clusters=2).fit(X)
    for method in ("predict", "predict_proba", "transform"):
        full = getattr(est, method)(X)
        parts = np.concatenate([getattr(est, method)(X[i : i + 7]) for i in range(0, 40, 7)])
        if method == "predict":
            np.testing.assert_array_equal(full, parts)
        else:
            np.testing.assert_allclose(full, parts, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- bad input
def _bad_inputs(digits_small):
    X, _ = digits_small
    return [
        ("empty", np.zeros((0, 8, 8), np.uint8), ValueError, "0 sample"),
        (
            "nan",
            np.where(np.eye(8, dtype=bool), np.nan, 0.5)[None].repeat(10, 0),
            ValueError,
            "NaN",
        ),
        ("inf features", np.full((10, 3), np.inf), ValueError, "infinity"),
        ("1-D", np.arange(10.0), ValueError, "2D array"),
        ("5-D", np.zeros((4, 2, 2, 2, 2)), ValueError, "5-D"),
        ("strings", np.array(["x", "y", "z"], dtype=object), FileNotFoundError, "do not exist"),
        ("too few samples", X[:2], ValueError, "n_clusters=3 must be <= n_samples=2"),
    ]


@estimator_classes
def test_bad_input_refused_before_training(cls, digits_small, tmp_path, monkeypatch):
    from deepclust.training import Trainer

    def no_training(*args, **kwargs):  # any training call fails the test
        raise AssertionError("training started on bad input")

    monkeypatch.setattr(Trainer, "fit", no_training)
    for name, X, error, match in _bad_inputs(digits_small):
        started = time.perf_counter()
        with pytest.raises(error, match=match):
            fast_instance(cls).fit(X)
        assert time.perf_counter() - started < 5, name
    with pytest.raises(ValueError, match="no image files"):
        fast_instance(cls).fit(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        fast_instance(cls).fit([str(tmp_path / "missing.png")])
    bad_folder = _folder_with_bad_images(tmp_path / "bad", digits_small[0][:12])
    with pytest.raises(ValueError, match="corrupt.png") as info:
        fast_instance(cls).fit(str(bad_folder))
    assert "truncated.png" in str(info.value) and "huge.png" in str(info.value)
    X, _ = digits_small
    for params, match in [
        (dict(n_clusters=1), "n_clusters"),
        (dict(n_clusters=2.5), "n_clusters"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-0.1), "lr"),
    ]:
        with pytest.raises(ValueError, match=match):
            fast_instance(cls, **params).fit(X)


def _folder_with_bad_images(folder, images):
    """Good PNGs plus a corrupt, a truncated and a decompression-bomb-sized file."""
    from PIL import Image

    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"good_{i:02d}.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / "truncated.png").write_bytes((folder / "good_00.png").read_bytes()[:30])
    Image.new("L", (12_000, 12_000)).save(folder / "huge.png")  # > PIL's pixel limit
    return folder


@estimator_classes
def test_bad_images_can_be_skipped_with_a_warning(cls, digits_small, tmp_path):
    folder = _folder_with_bad_images(tmp_path / "mixed", digits_small[0][:12])
    with pytest.warns(UserWarning, match="Skipping 3 unreadable") as record:
        est = image_instance(cls, on_bad_image="skip", image_size=8).fit(str(folder))
    assert "huge.png" in str(record[0].message)
    assert len(est.labels_) == 12


@estimator_classes
def test_cuda_request_without_cuda(cls, digits_small):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        fast_instance(cls, device="cuda").fit(digits_small[0])


@estimator_classes
def test_predict_before_fit_and_channel_mismatch(cls, digits_small):
    X, _ = digits_small
    est = image_instance(cls)
    for method in ("predict", "predict_proba", "transform", "score"):
        with pytest.raises(NotFittedError):
            getattr(est, method)(X)
    est.fit(X)
    with pytest.raises(ValueError, match="1-channel"):
        est.predict(np.repeat(X[..., None], 3, axis=-1))
    with pytest.raises(ValueError, match="features"):
        est.predict(X.reshape(60, -1).astype(np.float32))


@estimator_classes
def test_same_random_state_same_labels(cls, digits_small):
    X, _ = digits_small
    first = image_instance(cls).fit(X).labels_
    second = image_instance(cls).fit(X).labels_
    np.testing.assert_array_equal(first, second)


@estimator_classes
def test_keyboard_interrupt_leaves_estimator_unfitted(cls, digits_small, monkeypatch):
    from deepclust.training import Trainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    X, _ = digits_small
    est = image_instance(cls)
    monkeypatch.setattr(Trainer, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X)
    assert not [k for k in vars(est) if k.endswith("_") and not k.startswith("__")]
    with pytest.raises(NotFittedError):
        est.predict(X)


MAIN_STAGE = {
    "SelfLabelClusterer": "selflabel",
    "DeepClusterEstimator": "deepcluster",
    "SCANClusterer": "scan",
    "ClusterFitTransformer": "clusterfit",
}


@estimator_classes
def test_optimizer_and_schedule_are_parameters(cls, digits_small, monkeypatch):
    import deepclust.training._engine as engine

    built: dict[str, str] = {}
    make = engine._make_optimizer

    def spy(stage, params):
        built[stage.name] = type(optimizer := make(stage, params)).__name__
        return optimizer

    monkeypatch.setattr(engine, "_make_optimizer", spy)
    X, _ = digits_small
    est = image_instance(cls, optimizer="adamw", lr_schedule="step", lr=0.01, max_epochs=4)
    est.fit(X)
    stage = MAIN_STAGE[cls.__name__]
    assert built[stage] == "AdamW"
    last = [r for r in est.history_ if r["stage"] == stage][-1]
    assert last["lr"] == pytest.approx(0.01 * 0.1**2)  # 'step': two tenfold drops
    with pytest.raises(ValueError, match="optimizer"):
        image_instance(cls, optimizer="lbfgs").fit(X)
