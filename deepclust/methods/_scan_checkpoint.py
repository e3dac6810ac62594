"""Reading SCAN's released model-zoo files (``SCANClusterer.from_scan_checkpoint``).

Layouts read
------------
SCAN and self-label models
    ``{'model': state_dict, 'head': best head}`` (SCAN step) or a bare state dict
    (self-label step, one head): ``backbone.*`` and ``cluster_head.{i}.weight/bias``.
Pretext-only models (SimCLR, MoCo)
    ``backbone.*`` and ``contrastive_head.*``, no cluster heads: refused with an error
    that says so; :func:`scan_pretext_network` reads their backbone as a network to pass
    as ``pretrained=``.

Backbones, by data set: SCAN's CIFAR ResNet-18 (a 3x3 stride-1 stem, no max-pooling;
CIFAR-10 and CIFAR-20 inputs, 32 px), its STL-10 ResNet-18 (the same stem followed by
2x2 stride-2 max-pooling with padding 1; 96 px) and torchvision's ResNet-50 (ImageNet
subsets, 224 px). Their blocks name the projection shortcut ``shortcut.0``/``shortcut.1``
where torchvision says ``downsample.0``/``downsample.1``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from torch import nn

from deepclust.methods._sela_checkpoint import _drop_module
from deepclust.networks import BACKBONES, ClusteringNetwork, Normalize

__all__ = ["DATASETS", "ScanCheckpoint", "read_scan_checkpoint", "scan_pretext_network"]

#: Per data set: backbone, image side, input mean and standard deviation (SCAN's configs).
DATASETS: dict[str, tuple[str, int, tuple, tuple]] = {
    "cifar-10": ("resnet18", 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar-20": ("resnet18", 32, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "stl-10": ("scan-resnet18-stl", 96, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagenet": ("resnet50", 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
_HEAD_KEY = re.compile(r"cluster_head\.(\d+)\.(weight|bias)")


@dataclass
class ScanCheckpoint:
    """What a SCAN model file holds, ready for an estimator.

    Parameters
    ----------
    network : ClusteringNetwork
        Backbone and every cluster head, in eval mode.
    dataset : str
        The data set whose backbone and normalisation were used (a key of
        :data:`DATASETS`).
    best_head : int
        The file's ``'head'`` (0 for a bare state dict).
    """

    network: ClusteringNetwork
    dataset: str
    best_head: int


def read_scan_checkpoint(checkpoint, path, dataset: str | None = None) -> ScanCheckpoint:
    """Interpret a loaded SCAN model file (see the module docstring for the layouts).

    Parameters
    ----------
    checkpoint : object
        What ``torch.load`` returned for the file.
    path : str or path-like
        The file, for error messages.
    dataset : {'cifar-10', 'cifar-20', 'stl-10', 'imagenet'}, optional
        The data set the model was trained on. ``None``: recognised from the weights
        (ResNet-50: ``'imagenet'``; ResNet-18 with 20 clusters: ``'cifar-20'``); the
        ResNet-18s of CIFAR-10 and STL-10 have the same weights and need it.

    Returns
    -------
    ScanCheckpoint

    Raises
    ------
    ValueError
        If the file is not such a model (or a pretext-only one), the data set cannot be
        recognised, or the weights do not load into the data set's backbone.
    """
    where = repr(os.fspath(path))
    state, best_head = _state_and_head(checkpoint, where)
    backbone_state, heads = _split(state, where)
    n_clusters = heads[0]["weight"].shape[0]
    dataset = _dataset(backbone_state, n_clusters, dataset, where)
    name, size, mean, std = DATASETS[dataset]
    backbone = _load_backbone(name, size, backbone_state, where)
    n_features = 2048 if name == "resnet50" else 512
    network = ClusteringNetwork(backbone, n_features, n_clusters, len(heads), mean=mean, std=std)
    for module, head in zip(network.heads, heads, strict=True):
        try:
            module.load_state_dict(head)
        except RuntimeError as exc:
            raise ValueError(f"{where}: a cluster head does not fit the backbone: {exc}") from exc
    if not 0 <= best_head < len(heads):
        raise ValueError(f"{where}: 'head' is {best_head}, but the file has {len(heads)} heads.")
    return ScanCheckpoint(network.eval(), dataset, best_head)


def _state_and_head(checkpoint, where: str) -> tuple[dict, int]:
    """The state dict (keys without ``module``) and the best head of a loaded file.

    Parameters
    ----------
    checkpoint : object
        What ``torch.load`` returned.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    state : dict
    best_head : int
    """
    state, head = checkpoint, 0
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        state, head = checkpoint["model"], checkpoint.get("head", 0)
    if not (
        isinstance(state, dict)
        and any(_drop_module(str(k)).startswith("backbone.") for k in state)
        and isinstance(head, int)
    ):
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, dict) else type(checkpoint)
        raise ValueError(
            f"{where} is not a SCAN model file: expected {{'model': state_dict, 'head': "
            "int}} or a bare state dict with 'backbone.*' and 'cluster_head.N.*' keys; "
            f"found {found}."
        )
    state = {_drop_module(str(k)): v for k, v in state.items()}
    if not any(_HEAD_KEY.fullmatch(k) for k in state):
        pretext = any(k.startswith("contrastive_head.") for k in state)
        raise ValueError(
            f"{where} has no cluster heads ('cluster_head.N.weight')"
            + (
                ": it is a pretext-only (SimCLR/MoCo) file. Train SCAN on it with "
                "SCANClusterer(pretrained=deepclust.methods."
                "scan_pretext_network(path, dataset)).fit(X)."
                if pretext
                else "."
            )
        )
    return state, head


def _split(state: dict, where: str) -> tuple[dict, list[dict]]:
    """Separate the cluster heads from the backbone.

    Parameters
    ----------
    state : dict
        The state dict, without ``module``.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    backbone : dict
        ``backbone.*`` entries without the prefix, torchvision's ``downsample`` names.
    heads : list of dict
        ``{'weight', 'bias'}`` of each head, in order.
    """
    backbone, heads, other = {}, {}, []
    for key, value in state.items():
        match = _HEAD_KEY.fullmatch(key)
        if match:
            heads.setdefault(int(match.group(1)), {})[match.group(2)] = value
        elif key.startswith("backbone."):
            backbone[key[len("backbone.") :].replace(".shortcut.", ".downsample.")] = value
        else:
            other.append(key)
    ordered = [heads.get(h, {}) for h in range(max(heads) + 1)]
    shapes = [tuple(getattr(head.get("weight"), "shape", ())) for head in ordered]
    if other or any(set(h) != {"weight", "bias"} for h in ordered) or len(set(shapes)) != 1:
        raise ValueError(
            f"{where}: expected only 'backbone.*' and linear 'cluster_head.N' entries of one "
            f"shape, numbered from 0; found head weights {shapes} and other keys {other[:4]}."
        )
    return backbone, ordered


def _dataset(state: dict, n_clusters: int, dataset: str | None, where: str) -> str:
    """The data set of a backbone: ``dataset`` when given, else recognised.

    Parameters
    ----------
    state : dict
        The backbone's entries.
    n_clusters : int
        Outputs per head.
    dataset : str or None
        The data set asked for.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    str
        A key of :data:`DATASETS`.
    """
    if dataset is not None:
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}; got {dataset!r}.")
        return dataset
    if "layer1.0.conv3.weight" in state:
        return "imagenet"
    if n_clusters == 20:
        return "cifar-20"
    raise ValueError(
        f"{where}: SCAN's CIFAR-10 and STL-10 ResNet-18s have the same weights; pass "
        "dataset='cifar-10' (32 px inputs) or dataset='stl-10' (96 px)."
    )


def _load_backbone(name: str, size: int, state: dict, where: str) -> nn.Module:
    """Build backbone ``name`` for ``size``-pixel images and load ``state`` into it.

    Parameters
    ----------
    name : str
        A :data:`~deepclust.networks.BACKBONES` name.
    size : int
        Image side.
    state : dict
        The backbone's entries, torchvision names.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    nn.Module
    """
    backbone = BACKBONES[name]((3, size, size))
    try:
        backbone.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{where}: the backbone does not load into {name!r}: {exc}") from exc
    return backbone


def scan_pretext_network(path, dataset: str, *, weights_only: bool = True) -> nn.Module:
    """The backbone of a SCAN pretext-only (SimCLR/MoCo) file, to pass as ``pretrained=``.

    Parameters
    ----------
    path : str or path-like
        The file: ``backbone.*`` and ``contrastive_head.*`` entries.
    dataset : {'cifar-10', 'cifar-20', 'stl-10', 'imagenet'}
        The data set it was trained on (its backbone and input normalisation).
    weights_only : bool, default=True
        Load with ``torch.load(..., weights_only=True)``.

    Returns
    -------
    nn.Module
        Maps ``[0, 1]`` images of the data set's size to the backbone's features (the input
        normalisation included), in eval mode; the contrastive head is dropped.
    """
    from deepclust.methods._sela_checkpoint import load_checkpoint_file

    where = repr(os.fspath(path))
    state = load_checkpoint_file(path, weights_only)
    name, size, mean, std = DATASETS[_dataset({}, 0, dataset, where)]
    if not isinstance(state, dict):
        raise ValueError(f"{where} is not a state dict; found {type(state)}.")
    backbone = {
        _drop_module(k)[len("backbone.") :].replace(".shortcut.", ".downsample."): v
        for k, v in state.items()
        if _drop_module(str(k)).startswith("backbone.")
    }
    return nn.Sequential(Normalize(mean, std), _load_backbone(name, size, backbone, where)).eval()
