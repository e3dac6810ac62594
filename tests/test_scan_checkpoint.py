"""SCANClusterer.from_scan_checkpoint on files in the layouts of SCAN's model zoo.

Files are written with ``torch.save`` from random weights: SCAN's ``ClusteringModel``
names (``backbone.*`` with ``shortcut.0/1`` projection shortcuts, ``cluster_head.N``),
as ``{'model': ..., 'head': ...}`` or a bare state dict; pretext files add
``contrastive_head.*``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from deepclust import SCANClusterer
from deepclust.io import load_model, save_model
from deepclust.methods._scan_checkpoint import scan_pretext_network

MEAN = torch.tensor([0.4914, 0.4822, 0.4465])[:, None, None]
STD = torch.tensor([0.2023, 0.1994, 0.2010])[:, None, None]


def cifar_resnet18(seed: int = 0) -> nn.Module:
    """SCAN's CIFAR ResNet-18: torchvision blocks, 3x3 stride-1 stem, no max-pooling."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool, net.fc = nn.Identity(), nn.Identity()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return net.eval()


def scan_state(backbone: nn.Module, heads: list[nn.Linear]) -> dict:
    state = {
        "backbone." + k.replace(".downsample.", ".shortcut."): v
        for k, v in backbone.state_dict().items()
    }
    for i, head in enumerate(heads):
        state[f"cluster_head.{i}.weight"], state[f"cluster_head.{i}.bias"] = (
            head.weight.data,
            head.bias.data,
        )
    return state


def images(n: int = 5, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_cifar_scan_file_matches_the_reference(tmp_path):
    backbone = cifar_resnet18()
    heads = [nn.Linear(512, 10) for _ in range(3)]
    state = scan_state(backbone, heads)
    assert any(".shortcut.0." in k for k in state)
    path = tmp_path / "scan_cifar-10.pth.tar"
    torch.save({"model": state, "head": 2}, path)
    est = SCANClusterer.from_scan_checkpoint(
        path, dataset="cifar-10", device="cpu", precision="float32"
    )
    X = images()
    with torch.no_grad():
        features = backbone((X - MEAN) / STD)
        logits = heads[2](features)
    np.testing.assert_allclose(est.transform(X), features.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(est.predict(X), logits.argmax(1).numpy())
    assert (est.best_head_, est.n_heads, est.n_clusters) == (2, 3, 10)
    ours = est.network_.state_dict()
    assert len(state) == sum(not k.startswith("normalize.") for k in ours)  # all consumed
    save_model(est, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_bare_selflabel_file_of_cifar_20_is_recognised(tmp_path):
    state = scan_state(cifar_resnet18(1), [nn.Linear(512, 20)])
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "selflabel.pth")
    est = SCANClusterer.from_scan_checkpoint(tmp_path / "selflabel.pth", device="cpu")
    assert est.n_clusters == 20 and est.best_head_ == 0 and est.image_size == 32
    means = est.network_.normalize.mean.tolist()
    np.testing.assert_allclose(means, [0.5071, 0.4867, 0.4408])


def test_stl_backbone_and_round_trip(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.MaxPool2d(2, 2, padding=1)
    net.avgpool, net.fc = nn.AvgPool2d(7, stride=1), nn.Identity()  # SCAN's, at 96 px
    head = nn.Linear(512, 10)
    torch.save({"model": scan_state(net, [head]), "head": 0}, tmp_path / "stl.pth")
    est = SCANClusterer.from_scan_checkpoint(
        tmp_path / "stl.pth", dataset="stl-10", device="cpu", precision="float32"
    )
    X = images(2, 96)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        features = net.eval()((X - mean[:, None, None]) / std[:, None, None])
    np.testing.assert_allclose(est.transform(X), features.numpy(), rtol=1e-4, atol=1e-4)
    assert est.backbone == "scan-resnet18-stl"


def test_wrong_files_are_refused(tmp_path):
    backbone = cifar_resnet18()
    state = scan_state(backbone, [nn.Linear(512, 10)])
    path = tmp_path / "bad.pth"

    def refused(content, match, **kwargs):
        torch.save(content, path)
        with pytest.raises(ValueError, match=match):
            SCANClusterer.from_scan_checkpoint(path, **kwargs)

    refused({"model": state, "head": 0}, "CIFAR-10 and STL-10")
    refused({"state_dict": {"features.0.weight": torch.zeros(1)}}, "not a SCAN model file")
    pretext = {k: v for k, v in state.items() if not k.startswith("cluster_head")}
    pretext["contrastive_head.0.weight"] = torch.zeros(128, 512)
    refused(pretext, "pretext-only", dataset="cifar-10")
    missing = {k: v for k, v in state.items() if k != "backbone.layer2.0.shortcut.1.bias"}
    refused(missing, "does not load", dataset="cifar-10")
    wrong = dict(state, **{"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)})
    refused(wrong, "does not load", dataset="cifar-10")
    refused({"model": state, "head": 4}, "'head' is 4", dataset="cifar-10")
    bad_head = dict(state, **{"cluster_head.0.weight": torch.zeros(10, 100)})
    refused(bad_head, "cluster head", dataset="cifar-10")


def test_pretext_network_reads_the_backbone(tmp_path):
    backbone = cifar_resnet18()
    state = {k: v for k, v in scan_state(backbone, []).items()}
    state["contrastive_head.0.weight"] = torch.zeros(512, 512)
    torch.save(state, tmp_path / "simclr.pth")
    network = scan_pretext_network(tmp_path / "simclr.pth", "cifar-10")
    X = images(2)
    with torch.no_grad():
        expected = backbone((X - MEAN) / STD)
        np.testing.assert_allclose(network(X), expected, rtol=1e-4, atol=1e-4)
