"""scikit-learn conventions and failure behaviour every estimator keeps."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepclust import SelfLabelClusterer
from deepclust._testing import ESTIMATORS, fast_instance
from deepclust.training import TrainingDivergedError


@pytest.fixture(scope="module")
def noise_images():
    """100 random 24x24 images: a learning rate of 1e12 makes every method diverge."""
    return (np.random.default_rng(0).random((100, 24, 24)) * 255).astype(np.uint8)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_a_diverged_fit_raises_and_leaves_the_estimator_unfitted(cls, noise_images):
    params = cls().get_params()
    short = {k: 1 for k in ("pretext_epochs", "selflabel_epochs") if k in params}
    est = cls(
        n_clusters=2,
        lr=1e12,
        max_epochs=1,
        device="cpu",
        random_state=0,
        **short,
        **({"n_neighbors": 5} if "n_neighbors" in params else {}),
    )
    with pytest.raises(TrainingDivergedError, match=r"in stage '\w+', epoch \d+: .*Lower the"):
        est.fit(noise_images)
    assert not hasattr(est, "network_") and not hasattr(est, "labels_")


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_network_is_left_in_eval_mode(cls, digits_small):
    X, _ = digits_small
    est = fast_instance(cls).fit(X)
    assert not any(m.training for m in est.network_.modules())
    before = est.predict_proba(X)
    with torch.no_grad():
        est.network_(torch.rand(8, *est.input_shape_))  # as the persistence guide shows
    np.testing.assert_allclose(est.predict_proba(X), before)


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))  # noqa: NPY002


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_fit_leaves_the_global_random_state_alone(cls, digits_small):
    X, _ = digits_small
    random.seed(5), np.random.seed(5), torch.manual_seed(5)  # noqa: NPY002
    expected = _draws()
    random.seed(5), np.random.seed(5), torch.manual_seed(5)  # noqa: NPY002
    fast_instance(cls, random_state=0).fit(X)
    assert _draws() == expected


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_dataframes_keep_their_column_names(cls):
    pd = pytest.importorskip("pandas")
    X, _ = make_blobs(60, 5, centers=3, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcde"))
    est = fast_instance(cls).fit(frame)
    np.testing.assert_array_equal(est.feature_names_in_, list("abcde"))
    with pytest.raises(ValueError, match="feature names should match"):
        est.predict(frame[list("edcba")])
    names = est.get_feature_names_out()
    assert len(names) == est.transform(frame).shape[1]
    pipe = make_pipeline(StandardScaler(), fast_instance(cls)).set_output(transform="pandas")
    out = pipe.fit(frame).transform(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(names)


def test_tags_and_html_documentation_link():
    est = SelfLabelClusterer()
    assert est.__sklearn_tags__().input_tags.three_d_array
    assert est._get_doc_link().endswith("/generated/deepclust.SelfLabelClusterer.html")
    assert est._get_doc_link() in est._repr_html_()


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_meta_tensors_are_refused_clearly(cls):
    with pytest.raises(ValueError, match="'meta' device"):
        fast_instance(cls).fit(torch.empty(20, 1, 8, 8, device="meta"))


def test_sela_reports_how_often_predict_gives_its_self_labels(digits_small):
    X, _ = digits_small
    est = fast_instance(SelfLabelClusterer).fit(X)
    agreement = est.history_[-1]["labels_predict_agreement"]
    assert agreement == pytest.approx(np.mean(est.predict(X) == est.labels_), abs=1e-9)
