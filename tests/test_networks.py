"""Backbones by name, custom modules, heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepclust.networks import (
    BACKBONES,
    ClusteringNetwork,
    SmallConvNet,
    StackedLinearHeads,
    build_backbone,
    register_backbone,
)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("auto", (5,)),
        ("auto", (1, 28, 28)),
        ("auto", (3, 40, 40)),
        ("mlp", (7,)),
        ("convnet", (3, 16, 16)),
        ("convnet-small", (1, 8, 8)),
        ("resnet18", (1, 32, 32)),
        ("resnet18", (3, 64, 64)),
        ("alexnet", (3, 32, 32)),
    ],
)
def test_registered_backbones_build_and_report_feature_size(name, shape):
    module, n_features = build_backbone(name, shape)
    out = module.eval()(torch.zeros(2, *shape))
    assert out.reshape(2, -1).shape[1] == n_features


def test_auto_picks_by_input():
    assert isinstance(build_backbone("auto", (1, 28, 28))[0], SmallConvNet)
    resnet, _ = build_backbone("auto", (3, 64, 64))
    assert resnet.__class__.__name__ == "ResNet"
    small_stem, _ = build_backbone("resnet18", (3, 32, 32))
    assert small_stem.conv1.stride == (1, 1) and isinstance(small_stem.maxpool, nn.Identity)


def test_custom_module_and_registration():
    module = nn.Sequential(nn.Flatten(), nn.Linear(12, 6))
    built, n_features = build_backbone(module, (3, 2, 2))
    assert built is module and n_features == 6
    register_backbone("tiny-test", lambda shape: nn.Sequential(nn.Flatten(), nn.LazyLinear(4)))
    try:
        assert build_backbone("tiny-test", (1, 4, 4))[1] == 4
    finally:
        BACKBONES.pop("tiny-test")


def test_bad_backbones_are_refused():
    with pytest.raises(ValueError, match="Unknown backbone"):
        build_backbone("vgg1000", (3, 8, 8))
    with pytest.raises(ValueError, match="needs images"):
        build_backbone("resnet18", (10,))
    with pytest.raises(ValueError, match="failed on input"):
        build_backbone(nn.Conv2d(3, 4, 3), (1, 8, 8))
    with pytest.raises(TypeError, match="name or an nn.Module"):
        build_backbone(42, (3, 8, 8))


def test_clustering_network_heads_and_projection():
    backbone, n_features = build_backbone("mlp", (6,))
    net = ClusteringNetwork(backbone, n_features, n_clusters=4, n_heads=3, projection_dim=8)
    x = torch.randn(5, 6)
    logits = net(x)
    assert len(logits) == 3 and all(t.shape == (5, 4) for t in logits)
    assert net.project(x).shape == (5, 8)
    before = net.heads[0].weight.clone()
    net.heads.reset_parameters()
    assert not torch.equal(before, net.heads[0].weight)


def test_stacked_linear_heads_match_linear_layers_they_are_copied_into():
    torch.manual_seed(0)
    stacked = StackedLinearHeads(6, 4, n_heads=3)
    features = torch.randn(5, 6)
    logits = stacked(features)
    assert logits.shape == (3, 5, 4)
    for h in range(3):
        linear = nn.Linear(6, 4)
        stacked.copy_to(h, linear)
        torch.testing.assert_close(logits[h], linear(features))
    bound = 1 / 6**0.5  # nn.Linear's initialisation range
    assert stacked.weight.abs().max() <= bound and stacked.bias.abs().max() <= bound
