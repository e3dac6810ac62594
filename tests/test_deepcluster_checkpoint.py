"""DeepClusterEstimator.from_deepcluster_checkpoint on files in DeepCluster's layout.

The files are written here with ``torch.save`` from random weights in the layout of
DeepCluster's ``main.py`` (``{'epoch', 'arch', 'state_dict', 'optimizer'}``, features
under DataParallel's ``features.module.N``, Sobel layers, ``top_layer``); the reference
forward pass is an independent hand-built module with DeepCluster's layer order.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepclust import DeepClusterEstimator
from deepclust.io import load_model, save_model

IMAGE_SIZE = 224
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
ALEXNET = [(96, 11, 4, 2), "M", (256, 5, 1, 2), "M", (384, 3, 1, 1), (384, 3, 1, 1)]
ALEXNET += [(256, 3, 1, 1), "M"]


def reference_alexnet(sobel: bool, k: int | None, seed: int = 0) -> nn.Module:
    """DeepCluster's AlexNet layer by layer, random weights and batch-norm statistics."""
    torch.manual_seed(seed)
    model = nn.Module()
    layers, c_in = [], 2 if sobel else 3
    for entry in ALEXNET:
        if entry == "M":
            layers.append(nn.MaxPool2d(3, 2))
            continue
        conv = nn.Conv2d(c_in, entry[0], entry[1], stride=entry[2], padding=entry[3])
        layers += [conv, nn.BatchNorm2d(entry[0]), nn.ReLU()]
        c_in = entry[0]
    model.features = nn.Sequential(*layers)
    model.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(256 * 36, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096)
    )
    model.classifier.append(nn.ReLU())
    if sobel:
        grey, edges = nn.Conv2d(3, 1, 1), nn.Conv2d(1, 2, 3, padding=1)
        grey.weight.data.fill_(1 / 3)
        grey.bias.data.zero_()
        kernel = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
        edges.weight.data.copy_(torch.stack([kernel, kernel.T])[:, None])
        edges.bias.data.zero_()
        model.sobel = nn.Sequential(grey, edges)
    if k:
        model.top_layer = nn.Linear(4096, k)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def reference_forward(model: nn.Module, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """fc7 features (after their ReLU) and top-layer logits, as DeepCluster computes them."""
    x = (X - MEAN) / STD
    with torch.no_grad():
        if hasattr(model, "sobel"):
            x = model.sobel(x)
        features = model.classifier(model.features(x).view(x.shape[0], 256 * 6 * 6))
        logits = model.top_layer(features) if hasattr(model, "top_layer") else None
    return features, logits


def write(path, model: nn.Module, *, parallel: bool = True, arch: str = "alexnet") -> dict:
    state = model.state_dict()
    if parallel:
        state = {k.replace("features.", "features.module.", 1): v for k, v in state.items()}
    torch.save({"epoch": 3, "arch": arch, "state_dict": state, "optimizer": {}}, path)
    return state


def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    """Channels-first images in [0, 1] (a tensor: numpy arrays are read channels-last)."""
    return torch.rand(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def model():
    return reference_alexnet(sobel=True, k=5)


@pytest.mark.slow  # fc7's 4096-d PCA and 224-px AlexNet passes on the CPU
def test_alexnet_with_sobel_matches_the_reference(tmp_path, model):
    path = tmp_path / "checkpoint.pth.tar"
    state = write(path, model)
    X = images()
    est = DeepClusterEstimator.from_deepcluster_checkpoint(
        path, X, pca_dim=4, device="cpu", precision="float32", random_state=0
    )
    features, logits = reference_forward(model, X)
    np.testing.assert_allclose(est.transform(X), features.numpy(), rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        ours = est.network_(X)[0]
    np.testing.assert_allclose(ours.numpy(), logits.numpy(), rtol=1e-4, atol=1e-4)
    assert est.sobel and est.backbone == "deepcluster-alexnet" and est.n_clusters == 5
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    assert est.cluster_centers_.shape == (5, 4)
    # Every entry of the file is in the network (Sobel weights as the fixed filter).
    ours_state = est.network_.state_dict()
    n_sobel = sum(k.startswith("sobel.") for k in state)
    assert len(state) - n_sobel + 1 == sum(
        not k.startswith("normalize.") for k in ours_state
    )  # + the filter's kernel buffer


@pytest.mark.slow  # fc7's 4096-d PCA and 224-px AlexNet passes on the CPU
def test_model_file_round_trip(tmp_path, model):
    path = tmp_path / "checkpoint.pth.tar"
    write(path, model, parallel=False)
    X = images(5)
    est = DeepClusterEstimator.from_deepcluster_checkpoint(path, X, n_clusters=3, pca_dim=3)
    save_model(est, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    np.testing.assert_allclose(loaded.transform(X), est.transform(X), rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # fc7's 4096-d PCA and 224-px AlexNet passes on the CPU
def test_without_sobel_and_top_layer(tmp_path):
    model = reference_alexnet(sobel=False, k=None, seed=1)
    path = tmp_path / "checkpoint.pth.tar"
    write(path, model)
    X = images(4)
    with pytest.raises(ValueError, match="no 'top_layer'.*pass n_clusters"):
        DeepClusterEstimator.from_deepcluster_checkpoint(path, X)
    est = DeepClusterEstimator.from_deepcluster_checkpoint(
        path, X, n_clusters=2, pca_dim=2, precision="float32"
    )
    features, _ = reference_forward(model, X)
    np.testing.assert_allclose(est.transform(X), features.numpy(), rtol=1e-4, atol=1e-4)
    assert not est.sobel


def test_wrong_files_are_refused(tmp_path, model):
    X = images(3)
    path = tmp_path / "bad.pth"
    state = write(path, model)

    def refused(content, match):
        torch.save(content, path)
        with pytest.raises(ValueError, match=match):
            DeepClusterEstimator.from_deepcluster_checkpoint(path, X, n_clusters=2)

    refused({"model": {"backbone.conv1.weight": torch.zeros(1)}}, "not a DeepCluster checkpoint")
    refused({"arch": "vgg16", "state_dict": state}, "names its architecture 'vgg16'")
    missing = {k: v for k, v in state.items() if "classifier.4.bias" not in k}
    refused({"state_dict": missing}, "does not load into DeepCluster's alexnet")
    wrong = dict(state, **{"features.module.4.weight": torch.zeros(256, 96, 3, 3)})
    refused({"state_dict": wrong}, "does not load")
    sobel = dict(state, **{"sobel.1.weight": torch.ones(2, 1, 3, 3)})
    refused({"state_dict": sobel}, "not DeepCluster's fixed filter")
    top = dict(state, **{"top_layer.weight": torch.zeros(5, 100)})
    torch.save({"state_dict": top}, path)
    with pytest.raises(ValueError, match="top_layer"):
        DeepClusterEstimator.from_deepcluster_checkpoint(path, X)


@pytest.mark.slow
def test_vgg16_layout_loads(tmp_path):
    from deepclust.networks._backbones import DeepClusterConvNet

    torch.manual_seed(0)
    reference = DeepClusterConvNet("vgg16", 3).eval()
    state = {
        "features.module." + k[9:] if k.startswith("features.") else k: v
        for k, v in reference.state_dict().items()
    }
    state["top_layer.weight"], state["top_layer.bias"] = torch.randn(4, 4096), torch.zeros(4)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"arch": "vgg16", "state_dict": state}, path)
    X = images(4)
    est = DeepClusterEstimator.from_deepcluster_checkpoint(path, X, pca_dim=2)
    assert est.backbone == "deepcluster-vgg16" and est.n_clusters == 4
    assert est.transform(X).shape == (4, 4096)
