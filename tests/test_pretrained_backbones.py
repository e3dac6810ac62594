"""torchvision backbones by name, ``weights=`` and ``freeze_backbone=`` on every method."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision
import torchvision.models._api
from torch import nn

from deepclust import DeepClusterEstimator, SCANClusterer, SelfLabelClusterer
from deepclust.io import load_model, save_model
from deepclust.methods import registered_methods
from deepclust.networks import TorchvisionBackbone, build_backbone, resolve_backbone_name
from deepclust.recipes import recipe_for

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A torchvision ResNet-18 with random weights, saved as a state dict."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return path


def _reference_features(path, images: torch.Tensor) -> np.ndarray:
    """torchvision's ResNet-18 with the same weights, its classifier removed, on images
    normalised with ImageNet's statistics."""
    model = torchvision.models.resnet18(weights=None)
    model.load_state_dict(torch.load(path, weights_only=True))
    model.fc = nn.Identity()
    x = torch.as_tensor(images)
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    with torch.no_grad():
        return model.eval()((x - IMAGENET_MEAN) / IMAGENET_STD).numpy()


def _colour_images(n: int = 40, side: int = 32, seed: int = 0) -> torch.Tensor:
    """``(N, 3, H, W)`` images in two groups (red and blue), channels first."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, 3, side, side), dtype=np.float32) * 0.2
    images[: n // 2, 0] += 0.7
    images[n // 2 :, 2] += 0.7
    return torch.from_numpy(images)


FROZEN = dict(
    backbone="resnet18",
    freeze_backbone=True,
    image_size=32,
    device="cpu",
    precision="float32",
    random_state=0,
)


def test_names_resolve_to_torchvision_with_weights_only():
    assert resolve_backbone_name("resnet18") == "resnet18"  # the small-image variant
    assert resolve_backbone_name("resnet18", weights="x.pth") == "torchvision:resnet18"
    assert resolve_backbone_name("vgg11") == "torchvision:vgg11"  # not registered
    assert resolve_backbone_name("convnet", weights="x.pth") == "convnet"
    module, n_features = build_backbone("torchvision:mobilenet_v3_small", (3, 32, 32))
    assert isinstance(module, TorchvisionBackbone) and n_features == 1024  # its fc7-like layer


def test_frozen_features_equal_torchvision(resnet18_file):
    X = _colour_images()
    est = SCANClusterer(n_clusters=2, weights=str(resnet18_file), max_epochs=2, **FROZEN).fit(X)
    reference = _reference_features(resnet18_file, X)
    with torch.no_grad():
        ours = est.network_.backbone.eval()(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)
    # transform is those features standardised as the heads read them
    network = est.network_
    standardised = (reference - network.feature_normalize.mean.numpy()) / (
        network.feature_normalize.std.numpy()
    )
    np.testing.assert_allclose(est.transform(X), standardised, rtol=1e-3, atol=1e-3)
    # the frozen backbone kept the loaded weights
    loaded = torch.load(resnet18_file, weights_only=True)
    assert torch.equal(
        network.backbone.model.layer1[0].conv1.weight, loaded["layer1.0.conv1.weight"]
    )


def test_grey_images_are_read_as_rgb(resnet18_file):
    X = _colour_images()[:, :1]
    est = DeepClusterEstimator(
        n_clusters=2, weights=str(resnet18_file), max_epochs=1, **FROZEN
    ).fit(X)
    with torch.no_grad():
        ours = est.network_.backbone.eval()(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(ours, _reference_features(resnet18_file, X), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("wrap", ["plain", "checkpoint", "dataparallel"])
def test_state_dicts_in_checkpoints_and_with_prefixes(resnet18_file, wrap, tmp_path):
    state = torch.load(resnet18_file, weights_only=True)
    if wrap == "checkpoint":
        state = {"epoch": 3, "state_dict": state}
    elif wrap == "dataparallel":
        state = {f"module.{key}": value for key, value in state.items()}
    X = _colour_images()
    est = SelfLabelClusterer(n_clusters=2, weights=state, max_epochs=1, **FROZEN).fit(X)
    with torch.no_grad():
        ours = est.network_.backbone.eval()(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(ours, _reference_features(resnet18_file, X), rtol=1e-4, atol=1e-4)
    # weights= held a state dict, which model files do not keep: the saved and reloaded
    # model still names its torchvision architecture
    save_model(est, tmp_path / "model")
    save_model(load_model(tmp_path / "model"), tmp_path / "again")
    np.testing.assert_array_equal(load_model(tmp_path / "again").predict(X), est.predict(X))


def test_weights_name_downloads_through_torchvision(resnet18_file, monkeypatch):
    requested = []

    def local_download(url, *args, **kwargs):
        requested.append(url)
        return torch.load(resnet18_file, weights_only=True)

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", local_download)
    X = _colour_images()
    est = SCANClusterer(n_clusters=2, backbone="resnet18", weights="IMAGENET1K_V1")
    # The weights' own input size without image_size
    assert recipe_for(est, X)["params"]["image_size"] == (224, 224)
    est.set_params(image_size=32, freeze_backbone=True, max_epochs=1, device="cpu")
    est.fit(X)
    assert requested == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url]
    with torch.no_grad():
        ours = est.network_.backbone.eval()(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(ours, _reference_features(resnet18_file, X), rtol=1e-4, atol=1e-4)


def test_offline_download_says_what_to_do(monkeypatch):
    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    est = SCANClusterer(n_clusters=2, backbone="resnet18", weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="download the file elsewhere"):
        est.fit(_colour_images())
    assert not hasattr(est, "network_")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(backbone="auto", weights="w.pth"), "needs backbone= naming"),
        (dict(backbone="resnet18", weights="missing/w.pth"), "does not exist"),
        (dict(backbone="resnet18", weights="IMAGENET9K"), "neither a file nor"),
        (dict(backbone="resnet18", freeze_backbone=True), "give its weights="),
    ],
)
def test_bad_settings_are_refused_before_training(params, match, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(SCANClusterer._fit_state_class, "run", no_training)
    with pytest.raises(ValueError, match=match):
        SCANClusterer(n_clusters=2, **params).fit(_colour_images())


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    est = SCANClusterer(n_clusters=2, weights=str(path), **FROZEN)
    with pytest.raises(ValueError, match="do not fit this backbone"):
        est.fit(_colour_images())


def test_unsafe_file_is_refused(tmp_path):
    path = tmp_path / "pickle.pth"
    torch.save({"state_dict": {"a": object()}}, path)  # needs unpickling arbitrary objects
    est = SCANClusterer(n_clusters=2, weights=str(path), **FROZEN)
    with pytest.raises(ValueError, match="without running code"):
        est.fit(_colour_images())


def test_freeze_backbone_on_features_is_refused(resnet18_file):
    est = SCANClusterer(n_clusters=2, backbone="mlp", weights={}, freeze_backbone=True)
    with pytest.raises(ValueError, match="needs images"):
        est.fit(np.random.default_rng(0).random((20, 5)))


def test_weights_of_a_small_backbone_from_another_fit():
    X = _colour_images()
    first = SCANClusterer(  # random colours: 'auto' would make its network read one channel
        n_clusters=2,
        backbone="convnet-small",
        max_epochs=1,
        pretext_epochs=1,
        device="cpu",
        invariant_to=None,
    ).fit(X)
    second = SCANClusterer(
        n_clusters=2,
        backbone="convnet-small",
        weights=first.network_.state_dict(),  # 'backbone.' prefixed keys
        freeze_backbone=True,
        max_epochs=1,
        device="cpu",
    ).fit(X)
    for ours, theirs in zip(
        second.network_.backbone.state_dict().values(),
        first.network_.backbone.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name", sorted(registered_methods()))
def test_every_method_fits_frozen_and_round_trips_a_model_file(name, resnet18_file, tmp_path):
    cls = registered_methods()[name]
    X = _colour_images()
    est = cls(n_clusters=2, weights=str(resnet18_file), max_epochs=2, **FROZEN).fit(X)
    assert est.labels_.shape == (len(X),)
    assert est.recipe_["frozen_features"]["data"]["kind"] == "features"
    loaded_file = torch.load(resnet18_file, weights_only=True)
    assert torch.equal(est.network_.backbone.model.conv1.weight, loaded_file["conv1.weight"])
    save_model(est, tmp_path / "model")
    back = load_model(tmp_path / "model")
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    np.testing.assert_allclose(back.transform(X), est.transform(X), rtol=1e-5, atol=1e-5)
    save_model(back, tmp_path / "again")  # a loaded model (its weights= not kept) saves too
    np.testing.assert_array_equal(load_model(tmp_path / "again").predict(X), est.predict(X))


def test_timm_backbone_with_a_local_file(tmp_path):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model("resnet18", pretrained=False)  # with its classifier
    path = tmp_path / "timm_resnet18.pth"
    torch.save(reference.state_dict(), path)
    X = _colour_images()
    est = SCANClusterer(
        n_clusters=2, max_epochs=1, **dict(FROZEN, backbone="timm:resnet18"), weights=str(path)
    )
    assert recipe_for(est.set_params(image_size=None), X)["params"]["image_size"] == (224, 224)
    est.set_params(image_size=32).fit(X)
    reference.reset_classifier(0)
    config = reference.pretrained_cfg
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference.eval()((X - mean) / std).numpy()
        ours = est.network_.backbone.eval()(X).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)
