"""SelfLabelClusterer.from_sela_checkpoint on files in the layouts SeLa released.

The files are written here with ``torch.save`` from torchvision ResNets built with
``weights=None`` (no download): the released torchvision layout (``{'state_dict': ...,
'L': labels}``, keys optionally prefixed by DataParallel's ``module.``) and the layout of
SeLa's own training code (``features.N`` backbone keys, ``top_layer``/``top_layerH`` heads).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from deepclust import SelfLabelClusterer

N_CLUSTERS = 7
IMAGE_SIZE = 32
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
FEATURES = {"resnet18": 512, "resnet50": 2048}


@pytest.fixture(autouse=True, scope="module")
def _few_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(min(previous, 4))
    yield
    torch.set_num_threads(previous)


def torchvision_resnet(arch: str, seed: int = 0) -> torch.nn.Module:
    """An untrained torchvision ResNet with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=N_CLUSTERS)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def images(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(
        0, 256, (n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8
    )


def reference_logits(model: torch.nn.Module, X: np.ndarray) -> torch.Tensor:
    """The model's output on ``X`` normalised with the ImageNet statistics."""
    x = torch.from_numpy(X).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        return model((x - MEAN) / STD)


def load(path) -> SelfLabelClusterer:
    return SelfLabelClusterer.from_sela_checkpoint(path, image_size=IMAGE_SIZE, device="cpu")


def sela_training_layout(state: dict) -> dict:
    """torchvision keys renamed as SeLa's own ResNet names them, ``features`` wrapped in
    DataParallel as its training script does (``features.module.N``)."""
    renamed = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    out = {}
    for key, value in state.items():
        first, rest = key.split(".", 1)
        out[f"features.module.{renamed[first]}.{rest}"] = value
    return out


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
@pytest.mark.parametrize("prefix", ["", "module."])
def test_released_layout_predicts_like_the_torchvision_model(tmp_path, arch, prefix):
    model = torchvision_resnet(arch)
    labels = torch.randint(0, N_CLUSTERS, (40,))
    path = tmp_path / f"{arch}.pth"
    torch.save(
        {"state_dict": {prefix + k: v for k, v in model.state_dict().items()}, "L": labels}, path
    )
    est = load(path)
    X = images()
    assert est.n_clusters == N_CLUSTERS and est.backbone == arch
    np.testing.assert_array_equal(est.predict(X), reference_logits(model, X).argmax(1).numpy())
    np.testing.assert_array_equal(est.labels_, labels.numpy())
    np.testing.assert_array_equal(est.labels_per_head_, labels.numpy()[None])
    assert est.transform(X).shape == (6, FEATURES[arch])


def test_multi_head_labels_of_a_converted_model(tmp_path):
    # SeLa's conversion to torchvision keeps head 0 as 'fc' and every head's labels in 'L'.
    model = torchvision_resnet("resnet18", seed=1)
    labels = torch.randint(0, N_CLUSTERS, (3, 40))
    path = tmp_path / "resnet18-3x7.pth"
    torch.save({"state_dict": model.state_dict(), "L": labels}, path)
    est = load(path)
    np.testing.assert_array_equal(est.labels_per_head_, labels.numpy())
    np.testing.assert_array_equal(est.labels_, labels[0].numpy())
    assert est.best_head_ == 0 and len(est.network_.heads) == 1
    X = images(seed=1)
    np.testing.assert_array_equal(est.predict(X), reference_logits(model, X).argmax(1).numpy())


def test_labels_key_is_still_read(tmp_path):
    model = torchvision_resnet("resnet18")
    labels = torch.arange(20) % N_CLUSTERS
    path = tmp_path / "labels.pth"
    torch.save({"state_dict": model.state_dict(), "labels": labels}, path)
    np.testing.assert_array_equal(load(path).labels_, labels.numpy())


@pytest.mark.parametrize("n_heads", [1, 3])
def test_sela_training_layout_with_every_head(tmp_path, n_heads):
    model = torchvision_resnet("resnet18", seed=2)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    torch.manual_seed(3)
    heads = [torch.nn.Linear(512, N_CLUSTERS) for _ in range(n_heads)]
    state = sela_training_layout(state)
    for h, head in enumerate(heads):
        name = "top_layer" if n_heads == 1 else f"top_layer{h}"
        state[f"{name}.weight"], state[f"{name}.bias"] = head.weight.data, head.bias.data
    labels = torch.randint(0, N_CLUSTERS, (n_heads, 40))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).state_dict()
    path = tmp_path / "checkpoint.pth"
    torch.save(
        {"epoch": 3, "arch": "resnet", "state_dict": state, "optimizer": optimizer, "L": labels},
        path,
    )
    est = load(path)
    assert len(est.network_.heads) == n_heads and est.n_heads == n_heads
    np.testing.assert_array_equal(est.labels_per_head_, labels.numpy())
    X = images(seed=2)
    model.fc = torch.nn.Identity()
    features = reference_logits(model, X)
    x = torch.from_numpy(X).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        outputs = est.network_(x)
    for head, output in zip(heads, outputs, strict=True):
        torch.testing.assert_close(output, head(features).detach(), atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(est.predict(X), head_argmax(heads[0], features))


def head_argmax(head: torch.nn.Linear, features: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return head(features).argmax(1).numpy()


def test_unknown_state_dict_names_the_architectures_tried(tmp_path):
    state = torchvision_resnet("resnet50").state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("layer3.5.")}  # 5 blocks
    path = tmp_path / "odd.pth"
    torch.save({"state_dict": state, "L": torch.zeros(4, dtype=torch.int64)}, path)
    with pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        assert name in message
    assert "bottleneck" in message and "(3, 4, 5, 3)" in message


def test_state_dict_without_resnet_blocks_is_refused(tmp_path):
    path = tmp_path / "mlp.pth"
    torch.save(
        {
            "state_dict": {
                "encoder.weight": torch.zeros(4, 3),
                "fc.weight": torch.zeros(7, 4),
                "fc.bias": torch.zeros(7),
            }
        },
        path,
    )
    with pytest.raises(ValueError, match="resnet18.*no layer1"):
        load(path)


def test_a_resnet_layout_with_wrong_shapes_is_refused(tmp_path):
    state = torchvision_resnet("resnet18").state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(32, 64, 3, 3)
    path = tmp_path / "wrong.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(ValueError, match="resnet18.*does not load"):
        load(path)


def test_missing_head_and_bad_labels_are_refused(tmp_path):
    state = torchvision_resnet("resnet18").state_dict()
    path = tmp_path / "headless.pth"
    torch.save({"state_dict": {k: v for k, v in state.items() if not k.startswith("fc.")}}, path)
    with pytest.raises(ValueError, match="no clustering head"):
        load(path)
    torch.save({"state_dict": state, "L": torch.full((5,), N_CLUSTERS)}, path)
    with pytest.raises(ValueError, match="labels"):
        load(path)
    torch.save({"state_dict": state, "L": torch.zeros(2, 2, 2, dtype=torch.int64)}, path)
    with pytest.raises(ValueError, match="labels"):
        load(path)


def test_weights_only_refusal_is_kept(tmp_path):
    state = torchvision_resnet("resnet18").state_dict()
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": state, "L": np.zeros(5, dtype=np.int64)}, path)
    with pytest.raises(ValueError, match="weights_only loading refuses"):
        load(path)
    est = SelfLabelClusterer.from_sela_checkpoint(
        path, image_size=IMAGE_SIZE, device="cpu", weights_only=False
    )
    np.testing.assert_array_equal(est.labels_, np.zeros(5))
