"""Reading DeepCluster's released checkpoints (``from_deepcluster_checkpoint``).

Layout read
-----------
The ``checkpoint.pth.tar`` files of DeepCluster's ``main.py`` (the released AlexNet and
VGG-16 models): ``{'epoch', 'arch', 'state_dict', 'optimizer'}`` with ``arch`` in
``{'alexnet', 'vgg16'}`` (a bare state dict is read too). The state dict holds

- ``features.N.*`` (``features.module.N.*`` when the features ran under DataParallel):
  convolutions each followed by batch norm and ReLU, with max-pooling (see
  :class:`~deepclust.networks._backbones.DeepClusterConvNet`);
- ``classifier.N.*``: fc6 and fc7 (4096 features);
- ``sobel.0.*`` (a 1x1 convolution averaging the three channels) and ``sobel.1.*`` (the
  two fixed 3x3 Sobel kernels), when the model was trained with ``--sobel``;
- ``top_layer.*`` (Linear 4096 -> K, the classifier of the last k-means' K clusters),
  when present.

The backbone is registered as ``'deepcluster-alexnet'`` / ``'deepcluster-vgg16'``, the
Sobel layers become :class:`~deepclust.networks.SobelFilter` (it computes the same thing)
and ``top_layer`` the clustering head.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from deepclust.methods._sela_checkpoint import _drop_module
from deepclust.networks import BACKBONES, ClusteringNetwork, SobelFilter

__all__ = [
    "ARCHITECTURES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DeepClusterCheckpoint",
    "read_deepcluster_checkpoint",
]

#: The reference's ``arch`` names and the backbones they load into.
ARCHITECTURES = {"alexnet": "deepcluster-alexnet", "vgg16": "deepcluster-vgg16"}
#: The ImageNet statistics DeepCluster normalises its inputs with (before the Sobel filter).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Kernel size of the first convolution of each architecture.
_FIRST_KERNEL = {11: "alexnet", 3: "vgg16"}
_SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


@dataclass
class DeepClusterCheckpoint:
    """What a DeepCluster checkpoint holds, ready for an estimator.

    Parameters
    ----------
    network : ClusteringNetwork
        Sobel filter (if any), backbone and one head, in eval mode.
    architecture : str
        The backbone name (a value of :data:`ARCHITECTURES`).
    n_clusters : int or None
        Outputs of the file's ``top_layer``; ``None`` when it has none (the network's head
        is then freshly initialised with the ``n_clusters`` asked for).
    sobel : bool
        Whether the model reads Sobel edges.
    """

    network: ClusteringNetwork
    architecture: str
    n_clusters: int | None
    sobel: bool


def read_deepcluster_checkpoint(
    checkpoint, path, *, mean, std, image_size: int, n_clusters: int | None = None
) -> DeepClusterCheckpoint:
    """Interpret a loaded DeepCluster checkpoint (see the module docstring for the layout).

    Parameters
    ----------
    checkpoint : object
        What ``torch.load`` returned for the file.
    path : str or path-like
        The file, for error messages.
    mean, std : sequence of float
        Per-channel input normalisation the network applies.
    image_size : int
        Side of the input images.
    n_clusters : int, optional
        Outputs of the network's head. ``None``: those of ``top_layer``. A number other
        than ``top_layer``'s gives a freshly initialised head.

    Returns
    -------
    DeepClusterCheckpoint

    Raises
    ------
    ValueError
        If the file is not such a checkpoint, its architecture is not AlexNet or VGG-16, its
        Sobel layers are not the fixed Sobel filter, its weights do not load into the
        architecture, or it has no ``top_layer`` and ``n_clusters`` is None.
    """
    where = repr(os.fspath(path))
    state = _state_dict(checkpoint, where)
    sobel, top, rest = _split(state, where)
    arch = _recognise(rest, where, checkpoint.get("arch"))
    in_channels = 2 if sobel else 3
    found = rest["features.0.weight"].shape[1]
    if found != in_channels:
        raise ValueError(
            f"{where}: the first convolution reads {found} channels, but the file "
            f"{'has' if sobel else 'has no'} Sobel layers (expected {in_channels})."
        )
    backbone = BACKBONES[ARCHITECTURES[arch]]((in_channels, image_size, image_size))
    try:
        backbone.load_state_dict(rest)
    except RuntimeError as exc:
        raise ValueError(
            f"{where}: the state_dict does not load into DeepCluster's {arch}: {exc}"
        ) from exc
    k = _head_size(top, n_clusters, where)
    network = ClusteringNetwork(
        backbone, 4096, k, 1, mean=mean, std=std, input_filter=SobelFilter() if sobel else None
    )
    if top and k == top["weight"].shape[0]:
        try:
            network.heads[0].load_state_dict(top)
        except RuntimeError as exc:
            raise ValueError(
                f"{where}: top_layer does not read fc7's 4096 features: {exc}"
            ) from exc
    network.eval()
    return DeepClusterCheckpoint(network, ARCHITECTURES[arch], None if not top else k, sobel)


def _state_dict(checkpoint, where: str) -> dict:
    """The checkpoint's state dict, keys without DataParallel's ``module``.

    Parameters
    ----------
    checkpoint : object
        What ``torch.load`` returned.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    dict
        ``checkpoint['state_dict']`` (or ``checkpoint`` itself when it is a bare state dict
        with ``features.`` keys), renamed.
    """
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if state is None and isinstance(checkpoint, dict) and checkpoint:
        if all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            state = checkpoint
    if not isinstance(state, dict) or not any(
        _drop_module(str(k)).startswith("features.") for k in state
    ):
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, dict) else type(checkpoint)
        raise ValueError(
            f"{where} is not a DeepCluster checkpoint: expected a dict with 'state_dict' "
            "holding 'features.N' (or 'features.module.N') convolution weights, as "
            f"DeepCluster's main.py writes; found {found}."
        )
    return {_drop_module(str(key)): value for key, value in state.items()}


def _split(state: dict, where: str) -> tuple[bool, dict, dict]:
    """Separate the Sobel layers and ``top_layer`` from the backbone.

    Parameters
    ----------
    state : dict
        The state dict, without ``module``.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    sobel : bool
        Whether the file has Sobel layers (checked to be the fixed Sobel filter).
    top : dict
        ``{'weight', 'bias'}`` of ``top_layer``, empty when absent.
    rest : dict
        The backbone's entries (``features.*``, ``classifier.*``).
    """
    sobel = {k[len("sobel.") :]: v for k, v in state.items() if k.startswith("sobel.")}
    top = {k[len("top_layer.") :]: v for k, v in state.items() if k.startswith("top_layer.")}
    rest = {k: v for k, v in state.items() if not k.startswith(("sobel.", "top_layer."))}
    if sobel:
        _check_sobel(sobel, where)
    if top and (set(top) != {"weight", "bias"} or top["weight"].ndim != 2):
        shapes = {k: tuple(v.shape) for k, v in top.items()}
        raise ValueError(
            f"{where}: top_layer must be a linear layer (weight (K, 4096) and bias (K,)); "
            f"found {shapes}."
        )
    return bool(sobel), top, rest


def _check_sobel(sobel: dict, where: str) -> None:
    """Check that the Sobel layers are the fixed filter :class:`SobelFilter` computes.

    Parameters
    ----------
    sobel : dict
        ``0.weight``, ``0.bias``, ``1.weight``, ``1.bias`` of the checkpoint's ``sobel``.
    where : str
        The file, quoted, for error messages.
    """
    expected = {
        "0.weight": torch.full((1, 3, 1, 1), 1.0 / 3.0),
        "0.bias": torch.zeros(1),
        "1.weight": torch.stack([_SOBEL_X, _SOBEL_X.T])[:, None],
        "1.bias": torch.zeros(2),
    }
    if set(sobel) != set(expected) or not all(
        sobel[k].shape == v.shape and torch.allclose(sobel[k].float().cpu(), v, atol=1e-6)
        for k, v in expected.items()
    ):
        raise ValueError(
            f"{where}: the 'sobel' layers are not DeepCluster's fixed filter (a 1x1 "
            "convolution averaging the three channels, then the horizontal and vertical "
            f"3x3 Sobel kernels, zero biases); found entries {sorted(sobel)}."
        )


def _recognise(state: dict, where: str, arch_name=None) -> str:
    """DeepCluster's architecture of a backbone state dict.

    Parameters
    ----------
    state : dict
        The backbone's entries.
    where : str
        The file, quoted, for error messages.
    arch_name : object, optional
        The checkpoint's ``'arch'``; when a string it must agree with the weights.

    Returns
    -------
    str
        ``'alexnet'`` (an 11x11 first convolution) or ``'vgg16'`` (3x3).
    """
    first = state.get("features.0.weight")
    kernel = first.shape[-1] if isinstance(first, torch.Tensor) and first.ndim == 4 else None
    arch = _FIRST_KERNEL.get(kernel)
    if arch is None:
        raise ValueError(
            f"{where}: the state_dict is neither DeepCluster's AlexNet (an 11x11 first "
            "convolution 'features.0.weight') nor its VGG-16 (3x3); found "
            f"{None if first is None else tuple(first.shape)}."
        )
    if isinstance(arch_name, str) and arch_name != arch:
        raise ValueError(
            f"{where}: the file names its architecture {arch_name!r} but its weights are "
            f"DeepCluster's {arch}; only 'alexnet' and 'vgg16' are read."
        )
    return arch


def _head_size(top: dict, n_clusters: int | None, where: str) -> int:
    """The clusters of the network's head.

    Parameters
    ----------
    top : dict
        ``top_layer``'s entries, empty when absent.
    n_clusters : int or None
        The number asked for.
    where : str
        The file, quoted, for error messages.

    Returns
    -------
    int
        ``n_clusters``, else the rows of ``top_layer``.
    """
    if n_clusters is not None:
        return int(n_clusters)
    if not top:
        raise ValueError(f"{where} has no 'top_layer' (its number of clusters): pass n_clusters.")
    return int(top["weight"].shape[0])
