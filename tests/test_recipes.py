"""Recipes: settings resolved from the data, explicit parameters winning, and the same
settings from the estimator, the command line and the quality benchmark."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from deepclust import (
    ClusterFitTransformer,
    DeepClusterEstimator,
    SCANClusterer,
    SelfLabelClusterer,
)
from deepclust.cli._main import build_parser, estimator_params
from deepclust.io import load_model, save_model
from deepclust.methods import registered_methods
from deepclust.recipes import (
    BUDGETS,
    DataFacts,
    epochs_for,
    recipe_for,
    resolve_recipe,
    training_images,
)

METHODS = [SCANClusterer, SelfLabelClusterer, DeepClusterEstimator, ClusterFitTransformer]


def _images(n: int, side: int, channels: int, seed: int = 0) -> np.ndarray:
    shape = (n, side, side) if channels == 1 else (n, side, side, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _quality_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"
    spec = importlib.util.spec_from_file_location("quality_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cls", METHODS)
def test_more_samples_train_more_images_in_fewer_epochs(cls):
    small = resolve_recipe(cls(), DataFacts(500, "images", 1, 28, 28))["params"]
    large = resolve_recipe(cls(), DataFacts(50_000, "images", 1, 28, 28))["params"]
    assert large["max_epochs"] < small["max_epochs"]
    assert large["max_epochs"] * 50_000 > small["max_epochs"] * 500
    assert large["batch_size"] > small["batch_size"]


def test_a_stage_grows_by_its_own_exponent_only_above_5000_samples():
    def images(n, growth):
        return training_images(DataFacts(n, "images", 1, 28, 28), "default", 1000.0, growth)

    for n in (500, 1797, 5000):  # the square root, whatever the growth
        assert (
            images(n, 0.65)
            == pytest.approx(images(n, 0.5))
            == pytest.approx(1000.0 * (n / 5000) ** 0.5)
        )
    assert images(70_000, 0.5) == pytest.approx(1000.0 * 14**0.5)
    assert images(70_000, 0.65) == pytest.approx(1000.0 * 14**0.65)
    facts = DataFacts(70_000, "images", 1, 28, 28)
    assert epochs_for(facts, "default", 800_000, growth=0.65) == 64
    assert epochs_for(facts, "default", 800_000) == 43
    assert resolve_recipe(SCANClusterer(), facts)["params"]["pretext_epochs"] == 64
    assert resolve_recipe(ClusterFitTransformer(), facts)["params"]["pretext_epochs"] == 43


@pytest.mark.parametrize("cls", METHODS)
def test_grey_small_and_colour_large_images_resolve_differently(cls):
    grey = resolve_recipe(cls(), DataFacts(5000, "images", 1, 28, 28))["params"]
    colour = resolve_recipe(cls(), DataFacts(5000, "images", 3, 96, 96))["params"]
    assert grey["image_size"] == (20, 20)
    assert colour["image_size"] == (32, 32)
    tiny = resolve_recipe(cls(), DataFacts(5000, "images", 1, 8, 8))["params"]
    assert tiny["image_size"] == (8, 8)  # never scaled up
    wide = resolve_recipe(cls(), DataFacts(5000, "images", 3, 60, 120))["params"]
    assert wide["image_size"] == (16, 32)  # the aspect ratio is kept


def test_deepclusters_final_whitening_follows_the_number_of_clusters():
    def resolved(n_clusters, kind="images"):
        facts = DataFacts(5000, kind, 1, 28, 28, n_clusters=n_clusters)
        if kind == "features":
            facts = DataFacts(5000, kind, n_features=64, n_clusters=n_clusters)
        params = resolve_recipe(DeepClusterEstimator(), facts)["params"]
        return params["pca_dim"], params["final_pca_dim"]

    assert [resolved(k) for k in (2, 10, 20, 100, None)] == [
        (32, 8),
        (32, 10),
        (32, 20),
        (32, 32),
        (32, 32),
    ]
    assert [resolved(k, "features") for k in (10, 100)] == [(16, 10), (16, 16)]
    X = np.random.default_rng(0).random((40, 8, 8))
    assert recipe_for(DeepClusterEstimator(n_clusters=12), X)["params"]["final_pca_dim"] == 12


def test_deepclusters_final_clustering_is_whitened_to_final_pca_dim():
    X = np.random.default_rng(0).random((60, 8, 8))
    params = dict(n_clusters=3, max_epochs=1, batch_size=32, pca_dim=8, device="cpu")
    est = DeepClusterEstimator(**params, final_pca_dim=4, random_state=0).fit(X)
    assert est.cluster_centers_.shape == (3, 4)
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    same = DeepClusterEstimator(**params, final_pca_dim=None, random_state=0).fit(X)
    assert same.cluster_centers_.shape == (3, 8)


def test_the_recipe_reads_the_device_and_the_kind_of_input():
    cpu = resolve_recipe(SCANClusterer(), DataFacts(5000, "images", 3, 96, 96))["params"]
    gpu = resolve_recipe(SCANClusterer(), DataFacts(5000, "images", 3, 96, 96, device="cuda"))
    assert cpu["backbone"] == "convnet-small" and gpu["params"]["backbone"] == "resnet18"
    assert gpu["params"]["image_size"] == (64, 64)
    features = resolve_recipe(SCANClusterer(), DataFacts(5000, "features", n_features=32))
    assert features["params"]["backbone"] == "mlp" and features["params"]["image_size"] is None


@pytest.mark.parametrize("cls", METHODS)
def test_budgets_order_the_training_length(cls):
    facts = DataFacts(5000, "images", 1, 28, 28)
    epochs = [
        resolve_recipe(cls(budget=budget), facts)["params"]["max_epochs"]
        for budget in sorted(BUDGETS, key=BUDGETS.get)
    ]
    assert epochs[0] < epochs[1] < epochs[2]


def test_explicit_parameters_win_over_the_recipe():
    facts = DataFacts(5000, "images", 1, 28, 28)
    record = resolve_recipe(SCANClusterer(pretext_epochs=7, image_size=12, lr=0.01), facts)
    assert record["params"]["pretext_epochs"] == 7
    assert record["params"]["image_size"] == 12
    assert record["params"]["lr"] == 0.01
    assert sorted(record["set_by_user"]) == ["image_size", "lr", "pretext_epochs"]
    assert (
        record["params"]["max_epochs"]
        == resolve_recipe(SCANClusterer(), facts)["params"]["max_epochs"]
    )


def test_fit_trains_with_the_recipe_and_keeps_the_auto_parameters(tmp_path):
    X = _images(60, 28, 1)
    est = DeepClusterEstimator(
        n_clusters=3, max_epochs=2, pca_dim=4, device="cpu", random_state=0
    ).fit(X)
    assert est.recipe_["params"]["image_size"] == (20, 20)
    assert est.input_shape_ == (1, 20, 20)  # trained at the recipe's size
    assert est.recipe_["params"]["batch_size"] == 4
    assert est.batch_size == "auto" and est.image_size is None  # parameters untouched
    assert est.recipe_["data"]["n_samples"] == 60 and est.recipe_["data"]["height"] == 28
    assert len(est.history_) == 2
    assert est.n_features_in_ == 400  # values per sample at the trained size
    new = _images(5, 28, 1, seed=1)
    assert est.predict(new).shape == (5,)
    save_model(est, tmp_path / "model")  # the recipe's size and backbone are stored
    loaded = load_model(tmp_path / "model")
    assert loaded.recipe_["params"]["image_size"] == [20, 20]
    np.testing.assert_array_equal(loaded.predict(new), est.predict(new))


def test_image_files_resolve_from_their_own_size(tmp_path):
    from PIL import Image

    for i, image in enumerate(_images(12, 28, 3)):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    record = recipe_for(SCANClusterer(n_clusters=2, device="cpu"), tmp_path)
    assert record["data"]["height"] == 28 and record["data"]["n_channels"] == 3
    assert record["params"]["image_size"] == (28, 28)  # colour keeps up to 32 px


def test_recipe_for_leaves_the_estimator_unfitted():
    est = SCANClusterer(n_clusters=3, device="cpu")
    recipe_for(est, _images(40, 28, 1))
    assert not hasattr(est, "n_features_in_") and not hasattr(est, "recipe_")


@pytest.mark.parametrize("method", ["scan", "sela", "deepcluster", "clusterfit"])
@pytest.mark.parametrize("budget", ["fast", "default"])
def test_estimator_command_line_and_benchmark_resolve_the_same_settings(method, budget, tmp_path):
    X = _images(300, 28, 1)
    y = np.arange(300) % 10
    np.savez(tmp_path / "data.npz", X=X, y=y)
    data = str(tmp_path / "data.npz")
    cls = registered_methods()[method]
    by_estimator = recipe_for(cls(n_clusters=10, budget=budget, device="cpu"), X)

    args = build_parser().parse_args(
        ["cluster", data, "--method", method, "--n-clusters", "10", "--budget", budget]
        + ["--out", str(tmp_path / "out"), "--device", "cpu"]
    )
    by_command = recipe_for(cls(**estimator_params(args, method)), X)

    quality = _quality_module()
    bench_args = quality._parser().parse_args(
        ["--method", method, "--data", data, "--budget", budget, "--device", "cpu"]
    )
    by_benchmark = recipe_for(cls(**quality.estimator_params(bench_args, y)), X)
    assert by_estimator == by_command == by_benchmark
    assert by_estimator["budget"] == budget and by_estimator["set_by_user"] == []


def test_the_command_defaults_to_scan_at_the_default_budget(tmp_path):
    args = build_parser().parse_args(
        ["cluster", "digits", "--n-clusters", "10", "--out", str(tmp_path / "out")]
    )
    assert args.method == "scan" and args.budget == "default"


def test_an_unknown_budget_is_refused_before_training():
    with pytest.raises(ValueError, match="budget"):
        SCANClusterer(n_clusters=2, budget="quick").fit(_images(20, 8, 1))


def test_a_folder_is_decoded_again_at_the_recipes_size(tmp_path):
    from PIL import Image

    for i, image in enumerate(_images(16, 28, 1)):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    est = DeepClusterEstimator(n_clusters=2, max_epochs=1, pca_dim=4, device="cpu")
    est.fit(tmp_path)
    assert est.input_shape_ == (1, 20, 20) and est.n_features_in_ == 400
    assert est.predict(tmp_path).shape == (16,)
