"""The ``pretrained`` parameter of SCAN and ClusterFit: one resolver for every form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from torch import nn

from deepclust import ClusterFitTransformer, SCANClusterer, SelfLabelClusterer
from deepclust._testing import fast_instance
from deepclust.data import as_source
from deepclust.methods._feature_source import resolve_feature_source
from deepclust.training import use_precision


def _features(pretrained, X):
    """Features in float32 (under 'auto', CPUs with bfloat16 compute them in bfloat16)."""
    source = as_source(X)
    with use_precision("float32"):
        features = resolve_feature_source(pretrained).features(source, torch.device("cpu"), 16)
    return features.numpy()


class _FakeSkorchNet:
    """What the resolver reads of a fitted skorch net: its ``module_``."""

    def __init__(self, module):
        self.module_ = module


def test_every_form_gives_its_features(digits_small):
    X, _ = digits_small
    flat = X.reshape(len(X), -1).astype(np.float32) / 255.0
    torch.manual_seed(0)
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with torch.no_grad():
        expected_module = module(torch.from_numpy(flat)).numpy()
    np.testing.assert_allclose(_features(module, X), expected_module, atol=1e-6)
    np.testing.assert_allclose(_features(_FakeSkorchNet(module), X), expected_module, atol=1e-6)
    np.testing.assert_allclose(
        _features(lambda batch: batch.flatten(1)[:, :7] * 2, X), 2 * flat[:, :7], atol=1e-6
    )
    pca = PCA(4, random_state=0).fit(flat)
    np.testing.assert_allclose(_features(pca, X), pca.transform(flat), atol=1e-5)
    est = fast_instance(SelfLabelClusterer, max_epochs=1, precision="float32").fit(X)
    np.testing.assert_allclose(_features(est, X), est.transform(X), atol=1e-5)


def test_the_module_is_copied_never_trained_in_place(digits_small):
    X, _ = digits_small
    module = nn.Sequential(nn.Flatten(), nn.Linear(64, 8))
    before = [p.detach().clone() for p in module.parameters()]
    fast_instance(SCANClusterer, pretrained=module, max_epochs=2, selflabel_epochs=1).fit(X)
    for old, new in zip(before, module.parameters(), strict=True):
        torch.testing.assert_close(old, new)


@pytest.mark.parametrize("cls", [SCANClusterer, ClusterFitTransformer])
def test_wrong_kind_and_unfitted_sources_are_refused_before_training(cls, digits_small):
    X, _ = digits_small
    with pytest.raises(TypeError, match="pretrained must be"):
        fast_instance(cls, pretrained="resnet").fit(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        fast_instance(cls, pretrained=PCA(3)).fit(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        fast_instance(cls, pretrained=SelfLabelClusterer()).fit(X)


def test_scan_on_a_fitted_transformer_trains_heads_on_its_features(digits_small):
    X, y = digits_small
    pca = PCA(8, random_state=0).fit(X.reshape(len(X), -1) / 255.0)
    est = fast_instance(
        SCANClusterer, pretrained=pca, max_epochs=10, selflabel_epochs=0, precision="float32"
    )
    est.fit(X)
    assert not list(est.network_.backbone.parameters())  # a fixed function, nothing trained
    np.testing.assert_allclose(
        est.transform(X), pca.transform(X.reshape(len(X), -1) / 255.0), atol=1e-5
    )
    assert len(np.unique(est.predict(X))) >= 2


@pytest.mark.parametrize("cls", [SCANClusterer, ClusterFitTransformer])
def test_clone_keeps_the_fitted_source(cls, digits_small):
    X, _ = digits_small
    pca = PCA(8, random_state=0).fit(X.reshape(len(X), -1) / 255.0)
    est = fast_instance(cls, pretrained=pca)
    assert clone(est).pretrained is pca
    search = GridSearchCV(est, {"n_clusters": [2, 3]}, cv=2).fit(X)
    assert search.best_params_["n_clusters"] in (2, 3)
    assert search.best_estimator_.pretrained is pca


def test_clusterfit_from_a_skorch_net(digits_small):
    skorch = pytest.importorskip("skorch")
    X, y = digits_small
    flat = torch.from_numpy(X.reshape(len(X), -1).astype(np.float32) / 255.0)
    net = skorch.NeuralNetClassifier(
        nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3)),
        max_epochs=2,
        train_split=None,
        verbose=0,
    ).fit(flat, torch.from_numpy(y))
    est = fast_instance(ClusterFitTransformer, pretrained=net, precision="float32").fit(X)
    with torch.no_grad():
        expected = net.module_(flat).numpy()
    np.testing.assert_allclose(est.pretrained_transform(X), expected, atol=1e-5)
