"""Model files: safetensors + JSON round trip, and refusal of damaged or edited files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from deepclust import (
    ClusterFitTransformer,
    DeepClusterEstimator,
    SCANClusterer,
    SelfLabelClusterer,
)
from deepclust.io import FORMAT_VERSION, load_model, model_paths, save_model

FAST = dict(device="cpu", random_state=0, batch_size=32)

ESTIMATORS = {
    "sela": lambda: SelfLabelClusterer(3, n_heads=2, max_epochs=2, **FAST),
    "deepcluster": lambda: DeepClusterEstimator(3, max_epochs=1, pca_dim=8, **FAST),
    "deepcluster-sobel": lambda: DeepClusterEstimator(
        3, max_epochs=1, pca_dim=8, sobel=True, **FAST
    ),
    "scan": lambda: SCANClusterer(
        3, n_heads=3, n_neighbors=5, pretext_epochs=1, max_epochs=1, selflabel_epochs=0, **FAST
    ),
    "clusterfit": lambda: ClusterFitTransformer(3, pretext_epochs=1, max_epochs=1, **FAST),
}


@pytest.fixture(scope="module")
def fitted_sela(digits_small):
    X, _ = digits_small
    return SelfLabelClusterer(3, max_epochs=1, **FAST).fit(X)


@pytest.fixture(scope="module")
def fitted_scan(digits_small):
    X, _ = digits_small
    return SCANClusterer(
        3, n_heads=2, n_neighbors=5, pretext_epochs=1, max_epochs=1, selflabel_epochs=0, **FAST
    ).fit(X)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_round_trip_gives_the_same_predictions(name, digits_small, tmp_path):
    X, _ = digits_small
    estimator = ESTIMATORS[name]().fit(X)
    tensors_path, metadata_path = save_model(estimator, tmp_path / "model")
    assert tensors_path.name == "model.safetensors" and metadata_path.name == "model.json"
    loaded = load_model(tmp_path / "model.json")
    assert type(loaded) is type(estimator)
    assert loaded.get_params() == estimator.get_params()
    np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), estimator.predict_proba(X), atol=1e-9)
    np.testing.assert_allclose(loaded.transform(X), estimator.transform(X), atol=1e-6)
    np.testing.assert_array_equal(loaded.labels_, estimator.labels_)
    assert loaded.input_shape_ == estimator.input_shape_
    assert len(loaded.history_) == len(estimator.history_)
    metadata = json.loads(metadata_path.read_text())
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["tensors"]["sha256"] == hashlib.sha256(tensors_path.read_bytes()).hexdigest()


def test_feature_matrix_round_trip(digits_small, tmp_path):
    X, _ = digits_small
    features = X.reshape(len(X), -1).astype(np.float32) / 255.0
    estimator = SelfLabelClusterer(3, max_epochs=1, **FAST).fit(features)
    save_model(estimator, tmp_path / "feat")
    loaded = load_model(tmp_path / "feat.safetensors")  # either file of the pair works
    assert loaded.input_kind_ == "features"
    np.testing.assert_array_equal(loaded.predict(features), estimator.predict(features))


def test_folder_and_prefix_resolve_to_the_same_files(tmp_path):
    (tmp_path / "run").mkdir()
    assert model_paths(tmp_path / "run") == (
        tmp_path / "run" / "model.safetensors",
        tmp_path / "run" / "model.json",
    )
    assert model_paths(tmp_path / "m.json") == model_paths(tmp_path / "m")


def test_module_valued_parameter_cannot_be_saved(digits_small, tmp_path):
    X, _ = digits_small
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
    estimator = SelfLabelClusterer(3, backbone=backbone, max_epochs=1, **FAST).fit(X)
    with pytest.raises(ValueError, match="backbone=Sequential.*cannot be stored"):
        save_model(estimator, tmp_path / "model")
    assert not list(tmp_path.iterdir())


def test_unfitted_estimator_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save_model(SelfLabelClusterer(3), tmp_path / "model")


def test_changed_tensor_file_is_refused(fitted_sela, tmp_path):
    tensors_path, _ = save_model(fitted_sela, tmp_path / "model")
    data = bytearray(tensors_path.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the weights
    tensors_path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        load_model(tmp_path / "model")


def _rewrite(tensors_path, metadata_path, tensors):
    """Write edited tensors with a matching hash (an edit the hash alone cannot catch)."""
    blob = save_tensors(tensors)
    tensors_path.write_bytes(blob)
    metadata = json.loads(metadata_path.read_text())
    metadata["tensors"]["sha256"] = hashlib.sha256(blob).hexdigest()
    metadata["tensors"]["n_bytes"] = len(blob)
    metadata_path.write_text(json.dumps(metadata))


def test_wrong_shape_is_refused(fitted_sela, tmp_path):
    tensors_path, metadata_path = save_model(fitted_sela, tmp_path / "model")
    tensors = load_tensors(tensors_path.read_bytes())
    key = "network.heads.heads.0.weight"
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])
    _rewrite(tensors_path, metadata_path, tensors)
    with pytest.raises(ValueError, match="wrong shapes.*heads.0.weight"):
        load_model(tmp_path / "model")


def test_missing_and_unexpected_tensors_are_refused(fitted_sela, tmp_path):
    tensors_path, metadata_path = save_model(fitted_sela, tmp_path / "model")
    tensors = load_tensors(tensors_path.read_bytes())
    del tensors["network.heads.heads.0.bias"]
    _rewrite(tensors_path, metadata_path, tensors)
    with pytest.raises(ValueError, match="missing.*heads.0.bias"):
        load_model(tmp_path / "model")
    save_model(fitted_sela, tmp_path / "model")
    tensors = {**load_tensors(tensors_path.read_bytes()), "extra": torch.zeros(2)}
    _rewrite(tensors_path, metadata_path, tensors)
    with pytest.raises(ValueError, match="unexpected tensors.*extra"):
        load_model(tmp_path / "model")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(estimator="os.system"), "Unknown estimator"),
        (lambda m: m.update(format_version=FORMAT_VERSION + 1), "format version"),
        (lambda m: m.update(format="pickle"), "not a deepclust model"),
        (lambda m: m["params"].update(evil=1), "unknown parameters"),
        (lambda m: m["network"].update(backbone="not-registered"), "not registered"),
        (lambda m: m["fitted"].update(best_head_=7), "best_head_"),
    ],
)
def test_edited_description_is_refused(edit, message, fitted_scan, tmp_path):
    _, metadata_path = save_model(fitted_scan, tmp_path / "model")
    metadata = json.loads(metadata_path.read_text())
    edit(metadata)
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / "model")


def test_missing_files_are_reported(fitted_sela, tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_model(tmp_path / "model")
    tensors_path, _ = save_model(fitted_sela, tmp_path / "model")
    tensors_path.unlink()
    with pytest.raises(FileNotFoundError, match="tensors file"):
        load_model(tmp_path / "model")


@pytest.mark.gpu
def test_model_fitted_on_cuda_loads_and_predicts_on_cpu(digits_small, tmp_path):
    X, _ = digits_small
    estimator = DeepClusterEstimator(
        3, max_epochs=1, pca_dim=8, device="cuda", random_state=0, batch_size=32
    ).fit(X)
    save_model(estimator, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert all(not t.is_cuda for t in loaded.network_.state_dict().values())
    on_gpu = loaded.predict(X)  # device='cuda' parameter: runs on the GPU
    np.testing.assert_array_equal(on_gpu, estimator.predict(X))
    loaded.set_params(device="cpu")
    agreement = (loaded.predict(X) == on_gpu).mean()
    assert agreement > 0.95  # mixed precision on the GPU may move a few borderline samples
