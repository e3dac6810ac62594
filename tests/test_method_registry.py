"""A new method defined here, in about 30 lines, works everywhere once it is registered.

``RandomKMeansClusterer`` clusters the features of a frozen random network with k-means
and puts the centroids into its head (so ``predict`` is the nearest centroid). Nothing
outside this file knows it: the estimator API, scikit-learn's checks, the model files, the
command line and the quality benchmark all find it through the registry.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepclust._testing import expected_failed_checks
from deepclust.cli import main
from deepclust.cluster import kmeans
from deepclust.datasets import load_digits_images
from deepclust.io import load_model, save_model
from deepclust.methods import (
    BaseDeepClusterer,
    FitState,
    MethodSpec,
    method_names,
    register_method,
    unregister_method,
)
from deepclust.methods._stages import extract_features, head_probabilities
from deepclust.networks import ClusteringNetwork
from deepclust.recipes import batch_size_for


@dataclass
class RandomKMeansFit(FitState):
    network: ClusteringNetwork = field(init=False)

    def __post_init__(self):
        self.network = self.estimator._new_network(self.source).to(self.device)

    def stages(self):
        return []  # nothing is trained

    def fitted_attributes(self, history):
        features = extract_features(
            self.network, self.source, self.device, self.context.inference_batch_size
        )
        result = kmeans(features, self.estimator.n_clusters, random_state=self.seed)
        centers = torch.as_tensor(result.centroids).float()
        with torch.no_grad():  # logits 2<x, c> - |c|^2: the argmax is the nearest centroid
            self.network.heads[0].weight.copy_(2 * centers)
            self.network.heads[0].bias.copy_(-(centers**2).sum(1))
        probs = head_probabilities(  # as predict computes them
            self.network, self.source, self.device, self.context.inference_batch_size
        )
        labels = probs[0].argmax(1).numpy().astype(np.int64)
        return {"network_": self.network, "labels_": labels}


class RandomKMeansClusterer(BaseDeepClusterer):
    """k-means on the features of a frozen random network (a test method)."""

    method_spec = MethodSpec(
        name="random-kmeans",
        title="k-means on a frozen random network",
        recipe=lambda facts, budget: {"batch_size": batch_size_for(facts)},
        epoch_params=lambda epochs: {},
        test_params={"n_clusters": 3, "device": "cpu"},
    )
    _fit_state_class = RandomKMeansFit

    def __init__(
        self,
        n_clusters=8,
        *,
        backbone="auto",
        device="auto",
        batch_size="auto",
        image_size=None,
        on_bad_image="raise",
        random_state=None,
        verbose=False,
    ):
        self.n_clusters, self.backbone, self.device = n_clusters, backbone, device
        self.batch_size, self.image_size, self.on_bad_image = batch_size, image_size, on_bad_image
        self.random_state, self.verbose = random_state, verbose


@pytest.fixture(autouse=True, scope="module")
def registered():
    register_method(RandomKMeansClusterer)
    yield
    unregister_method("random-kmeans")


@pytest.fixture(scope="module")
def digits():
    return load_digits_images()


def test_it_is_registered_under_its_name():
    assert "random-kmeans" in method_names()


def test_fit_predict_and_a_sensible_clustering(digits):
    X, y = digits
    est = RandomKMeansClusterer(n_clusters=10, device="cpu", random_state=0).fit(X)
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    assert est.transform(X).shape[0] == len(X)
    assert est.n_iter_ == 0 and est.history_ == []
    assert not est.network_.training


@parametrize_with_checks(
    [RandomKMeansClusterer(n_clusters=3, device="cpu", random_state=0)],
    expected_failed_checks=expected_failed_checks,
)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def test_model_file_round_trip(digits, tmp_path):
    X, _ = digits
    est = RandomKMeansClusterer(n_clusters=10, device="cpu", random_state=0).fit(X)
    save_model(est, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert type(loaded) is RandomKMeansClusterer
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    np.testing.assert_array_equal(loaded.labels_, est.labels_)


def test_command_line_cluster_and_predict(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "cluster",
        "digits",
        "--method",
        "random-kmeans",
        "--n-clusters",
        "10",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(args) == 0
    assert (out / "labels.csv").is_file() and (out / "model.json").is_file()
    assert main(["predict", str(out), "digits", "--out", str(tmp_path / "new.csv"), "--quiet"]) == 0
    assert (tmp_path / "new.csv").read_text() == (out / "labels.csv").read_text()


def test_quality_benchmark(tmp_path):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"
    spec = importlib.util.spec_from_file_location("quality_benchmark", path)
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    out = tmp_path / "result.json"
    result = quality.main(
        [
            "--method",
            "random-kmeans",
            "--data",
            "digits",
            "--budget",
            "fast",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert out.is_file() and result["method"] == "random-kmeans"
    assert len(result["labels"]) == 1797 and 0.3 < result["acc"] <= 1.0
    assert result["recipe"]["params"] == {"batch_size": 128}
