"""Reading SeLa's released checkpoints (:meth:`SelfLabelClusterer.from_sela_checkpoint`).

Layouts read
------------
torchvision layout
    The released ``resnet18-1k_pp.pth``, ``resnet50-1k_pp.pth`` and
    ``resnet50-10x3k_pp.pth``: ``{'state_dict': <torchvision ResNet weights>, 'L': labels}``
    (``'labels'`` in files written by SeLa's ``change_state_dict.py``). SeLa converted its
    multi-head models by keeping head 0 as ``fc`` and dropping the others, so such a file
    has one head but the labels of every head, shape ``(n_heads, N)``.
SeLa's training layout
    The checkpoints of SeLa's ``main.py`` (``{'epoch', 'arch', 'state_dict', 'optimizer',
    'L'}``) and the older ``self-label_models`` downloads (a bare state dict): its own
    ResNet (``models/resnetv1.py``) names the stem ``features.0`` (conv1) and
    ``features.1`` (bn1), the stages ``features.4`` to ``features.7`` (layer1 to layer4),
    with ``features.module.`` when the features ran under DataParallel; its heads are
    ``top_layer`` (one head) or ``top_layer0`` ... ``top_layer{hc-1}`` (``hc`` heads).
    Every head is read.

DataParallel's ``module.`` is dropped wherever it occurs. The backbone is recognised from
its keys as one of the torchvision ResNets in :data:`RESNETS` (basic or bottleneck blocks,
blocks per stage); SeLa's AlexNet and pre-activation ResNet models are not read.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass

import numpy as np
import torch

from deepclust.networks import ClusteringNetwork

__all__ = ["RESNETS", "SeLaCheckpoint", "load_checkpoint_file", "read_sela_checkpoint"]

#: torchvision ResNets a checkpoint is matched against: bottleneck blocks (else basic
#: ones) and blocks per stage (layer1 to layer4).
RESNETS: dict[str, tuple[bool, tuple[int, int, int, int]]] = {
    "resnet18": (False, (2, 2, 2, 2)),
    "resnet34": (False, (3, 4, 6, 3)),
    "resnet50": (True, (3, 4, 6, 3)),
    "resnet101": (True, (3, 4, 23, 3)),
    "resnet152": (True, (3, 8, 36, 3)),
}

#: SeLa's own module names (``models/resnetv1.py``) and their torchvision equivalents.
_SELA_NAMES = {
    "features.0": "conv1",
    "features.1": "bn1",
    "features.4": "layer1",
    "features.5": "layer2",
    "features.6": "layer3",
    "features.7": "layer4",
}
#: Head keys: ``fc``, ``top_layer``, ``top_layer3``, ``top_layer.3`` (then the head index).
_HEAD_KEY = re.compile(r"(?:fc|top_layer)\.?(\d*)\.(weight|bias)")


@dataclass
class SeLaCheckpoint:
    """What a SeLa checkpoint holds, ready for an estimator.

    Parameters
    ----------
    network : ClusteringNetwork
        Backbone and every head the file holds, in eval mode.
    architecture : str
        The torchvision ResNet recognised (a key of :data:`RESNETS`).
    n_clusters : int
        Outputs per head.
    labels : numpy.ndarray of shape (n_label_heads, n_samples) or None
        The stored self-labels (int64), one row per head SeLa trained; ``None`` when the
        file holds none. Row 0 belongs to head 0.
    """

    network: ClusteringNetwork
    architecture: str
    n_clusters: int
    labels: np.ndarray | None


def read_sela_checkpoint(checkpoint, path, *, mean, std) -> SeLaCheckpoint:
    """Interpret a loaded SeLa checkpoint (see the module docstring for the layouts).

    Parameters
    ----------
    checkpoint : object
        What ``torch.load`` returned for the file.
    path : str or path-like
        The file, for error messages.
    mean, std : sequence of float
        Per-channel input normalisation the network applies.

    Returns
    -------
    SeLaCheckpoint
        The network, the architecture recognised, the clusters per head and the labels.

    Raises
    ------
    ValueError
        If the file is not such a checkpoint, its backbone is none of :data:`RESNETS`, its
        heads are missing or inconsistent, or its labels are not integers in
        ``[0, n_clusters)`` of shape ``(N,)`` or ``(n_heads, N)``.
    """
    where = repr(os.fspath(path))
    state, raw_labels = _state_and_labels(checkpoint, where)
    backbone_state, heads = _split_heads(_torchvision_names(state), where)
    architecture = _recognise(backbone_state, where, checkpoint.get("arch"))
    backbone = _load_backbone(architecture, backbone_state, where)
    n_clusters, n_features = heads[0]["weight"].shape
    network = ClusteringNetwork(backbone, n_features, n_clusters, len(heads), mean=mean, std=std)
    for module, head in zip(network.heads, heads, strict=True):
        module.load_state_dict(head)
    network.eval()
    labels = None if raw_labels is None else _labels(raw_labels, n_clusters, where)
    return SeLaCheckpoint(network, architecture, int(n_clusters), labels)


def _state_and_labels(checkpoint, where: str) -> tuple[dict, object]:
    """Split a loaded checkpoint into its state dict and its raw labels.

    Parameters
    ----------
    checkpoint : object
        What ``torch.load`` returned.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    state : dict
        The state dict (``checkpoint['state_dict']``, or ``checkpoint`` itself when it is a
        bare state dict with a head key).
    labels : object or None
        ``checkpoint['L']``, else ``checkpoint['labels']``; ``None`` when neither is there.
    """
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        labels = checkpoint.get("L")
        return checkpoint["state_dict"], checkpoint.get("labels") if labels is None else labels
    if (
        isinstance(checkpoint, dict)
        and checkpoint
        and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
        and any(_HEAD_KEY.fullmatch(_drop_module(k)) for k in checkpoint)
    ):
        return checkpoint, None  # a bare state dict (SeLa's older downloads)
    found = sorted(map(str, checkpoint)) if isinstance(checkpoint, dict) else type(checkpoint)
    raise ValueError(
        f"{where} is not a SeLa checkpoint: expected a dict with 'state_dict' (and the "
        f"labels as 'L' or 'labels'), or a bare ResNet state dict; found {found}."
    )


def _drop_module(key: str) -> str:
    """Drop DataParallel's ``module`` components from a state-dict key.

    Parameters
    ----------
    key : str
        A state-dict key, e.g. ``'module.layer1.0.conv1.weight'`` or
        ``'features.module.0.weight'``.

    Returns
    -------
    str
        The key without them, e.g. ``'layer1.0.conv1.weight'``, ``'features.0.weight'``.
    """
    return ".".join(part for part in key.split(".") if part != "module")


def _torchvision_names(state: dict) -> dict:
    """Rename a state dict's keys to torchvision's ResNet names.

    Parameters
    ----------
    state : dict
        The checkpoint's state dict, in either layout (see the module docstring).

    Returns
    -------
    dict
        The same values; keys without ``module.``, ``features.0``/``1``/``4``-``7``
        renamed to ``conv1``/``bn1``/``layer1``-``layer4``.
    """
    renamed = {}
    for key, value in state.items():
        key = _drop_module(str(key))
        for sela, torchvision in _SELA_NAMES.items():
            if key.startswith(sela + "."):
                key = torchvision + key[len(sela) :]
                break
        renamed[key] = value
    return renamed


def _split_heads(state: dict, where: str) -> tuple[dict, list[dict]]:
    """Separate the clustering heads from the backbone.

    Parameters
    ----------
    state : dict
        State dict with torchvision names (:func:`_torchvision_names`).
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    backbone : dict
        Every entry that is not a head's.
    heads : list of dict
        ``{'weight', 'bias'}`` of head 0, 1, ... (``fc``/``top_layer`` is head 0).
    """
    backbone, heads = {}, {}
    for key, value in state.items():
        match = _HEAD_KEY.fullmatch(key)
        if match is None:
            backbone[key] = value
            continue
        head = heads.setdefault(int(match.group(1) or 0), {})
        if match.group(2) in head:
            raise ValueError(f"{where}: the state_dict holds head {key!r} twice.")
        head[match.group(2)] = value
    if not heads:
        raise ValueError(
            f"{where}: the state_dict has no clustering head: expected 'fc.weight' (a "
            "torchvision ResNet) or 'top_layer.weight' / 'top_layer0.weight', ... (SeLa's "
            "own layout)."
        )
    ordered = [heads.get(h, {}) for h in range(max(heads) + 1)]
    shapes = [tuple(getattr(head.get("weight"), "shape", ())) for head in ordered]
    if (
        any(set(head) != {"weight", "bias"} for head in ordered)
        or len(set(shapes)) != 1
        or len(shapes[0]) != 2
    ):
        raise ValueError(
            f"{where}: the clustering heads must be linear layers of one shape (K, "
            f"n_features), numbered from 0 without gaps; found weight shapes {shapes}."
        )
    return backbone, ordered


def _recognise(state: dict, where: str, arch_name=None) -> str:
    """Recognise the torchvision ResNet a backbone state dict belongs to.

    Parameters
    ----------
    state : dict
        The backbone's entries, with torchvision names.
    where : str
        The file, quoted, for error messages.
    arch_name : object, optional
        The checkpoint's ``'arch'`` entry, quoted in the error when it is a string.

    Returns
    -------
    str
        The :data:`RESNETS` name with the same block type (bottleneck when
        ``layer1.0.conv3.weight`` exists) and the same blocks per stage.
    """
    bottleneck = "layer1.0.conv3.weight" in state
    counts = tuple(
        len({key.split(".")[1] for key in state if key.startswith(f"layer{stage}.")})
        for stage in range(1, 5)
    )
    for name, signature in RESNETS.items():
        if signature == (bottleneck, counts):
            return name
    tried = "; ".join(
        f"{name}: {'bottleneck' if neck else 'basic'} blocks {blocks}"
        for name, (neck, blocks) in RESNETS.items()
    )
    if any(counts):
        found = f"{'bottleneck' if bottleneck else 'basic'} blocks {counts} per stage"
    else:
        found = f"no layer1 to layer4 blocks (keys such as {sorted(state)[:4]})"
    named = f" The file names its architecture {arch_name!r}." if isinstance(arch_name, str) else ""
    raise ValueError(
        f"{where}: the state_dict is none of the torchvision ResNets tried ({tried}); "
        f"found {found}.{named} SeLa's AlexNet and pre-activation ResNet models are not read."
    )


def _load_backbone(architecture: str, state: dict, where: str) -> torch.nn.Module:
    """Build a torchvision ResNet without ``fc`` and load the backbone's weights.

    Parameters
    ----------
    architecture : str
        A :data:`RESNETS` name.
    state : dict
        The backbone's entries, with torchvision names.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    torch.nn.Module
        The ResNet, ``fc`` replaced by ``Identity`` (it outputs the pooled features).
    """
    import torchvision

    resnet = getattr(torchvision.models, architecture)(weights=None)
    resnet.fc = torch.nn.Identity()
    try:
        resnet.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"{where}: the state_dict has the block layout of torchvision's {architecture} "
            f"but does not load into it: {exc}"
        ) from exc
    return resnet


def _labels(raw, n_clusters: int, where: str) -> np.ndarray:
    """Check the stored labels and bring them to one row per head.

    Parameters
    ----------
    raw : object
        The checkpoint's labels (a tensor, array or nested list).
    n_clusters : int
        Outputs per head; labels must lie in ``[0, n_clusters)``.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    numpy.ndarray of shape (n_label_heads, N)
        int64 labels; shape ``(N,)`` becomes ``(1, N)``.
    """
    try:
        labels = np.asarray(raw.cpu() if isinstance(raw, torch.Tensor) else raw)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{where}: the labels cannot be read as an array: {exc}") from exc
    if (
        labels.ndim not in (1, 2)
        or labels.size == 0
        or not (
            np.issubdtype(labels.dtype, np.integer)
            or (np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)))
        )
    ):
        raise ValueError(
            f"{where}: the labels must be integers of shape (N,) or (n_heads, N); found "
            f"dtype {labels.dtype} and shape {labels.shape}."
        )
    labels = labels.astype(np.int64).reshape(-1, labels.shape[-1])
    if labels.min() < 0 or labels.max() >= n_clusters:
        raise ValueError(
            f"{where}: the labels range over [{labels.min()}, {labels.max()}], outside the "
            f"heads' {n_clusters} clusters [0, {n_clusters - 1}]."
        )
    return labels


def load_checkpoint_file(path, weights_only: bool = True):
    """``torch.load`` a reference implementation's file onto the CPU.

    Parameters
    ----------
    path : str or path-like
        The file.
    weights_only : bool, default=True
        Load with ``torch.load(..., weights_only=True)``, which cannot run code from the
        file.

    Returns
    -------
    object
        What the file holds.

    Raises
    ------
    ValueError
        When ``weights_only`` loading refuses an object in the file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"{os.fspath(path)!r} holds objects that weights_only loading refuses. If "
            "you trust the file, pass weights_only=False."
        ) from exc
