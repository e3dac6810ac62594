"""From clusters to a supervised model: a fitted estimator's network as a skorch classifier.

:func:`to_classifier` takes a fitted deepclust estimator and returns a
:class:`skorch.NeuralNetClassifier` whose module is the estimator's backbone, with the
input normalisation (and any input filter) it was trained with, followed by a fresh linear
head: ready for ``fit(X, y)`` on a few labelled images, with the inputs the estimators
take (see :class:`EstimatorInput`). Needs skorch (``pip install "deepclust[skorch]"``).

Why skorch only here: deepclust's own training engine relabels the data between epochs,
runs several stages, trains on pairs of augmented views and resumes exactly from a
checkpoint, which skorch's ``NeuralNet`` loop does not do without overriding its
``fit_loop`` and ``train_step``; once the clusters are labelled the problem is plain
supervised classification, which is what skorch is for.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from torch import nn

try:
    import skorch
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "deepclust.integrations.skorch needs skorch; install it with "
        "pip install 'deepclust[skorch]' (or pip install skorch)."
    ) from exc

from deepclust.data import TensorSource, as_source

__all__ = ["BackboneClassifier", "EstimatorInput", "to_classifier"]


class BackboneClassifier(nn.Module):
    """A fitted estimator's backbone, with its input normalisation, and a new linear head.

    The module takes what the estimator's network takes (images ``(B, C, H, W)`` in
    ``[0, 1]`` at the fitted size, or feature rows ``(B, D)``) and returns class logits.
    The network is copied at every construction, so each ``initialize`` of a skorch net
    starts again from the clustered weights and a new head.

    Parameters
    ----------
    network : deepclust.networks.ClusteringNetwork
        The fitted estimator's ``network_``; its normalisation, input filter and backbone
        are copied, its clustering and projection heads left out.
    n_classes : int
        Outputs of the linear head.
    freeze_backbone : bool, default=True
        Keep the backbone's weights fixed (``requires_grad=False``) and the backbone in
        eval mode (batch-norm statistics fixed too); only the head trains.
    """

    def __init__(self, network: nn.Module, n_classes: int, freeze_backbone: bool = True):
        super().__init__()
        network = copy.deepcopy(network).cpu()
        network.heads = None  # the clustering heads give way to ``head``
        self.network = network
        self.freeze_backbone = bool(freeze_backbone)
        self.head = nn.Linear(int(network.n_features), int(n_classes))
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(not self.freeze_backbone)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of a raw batch, as the estimator's ``transform`` gives them.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, H, W) or (B, D)
            Images in ``[0, 1]`` or feature rows.

        Returns
        -------
        torch.Tensor of shape (B, n_features)
            The features the head reads.
        """
        return self.network.features(x.float())

    @property
    def backbone(self) -> nn.Module:
        """The fitted network's backbone (frozen when ``freeze_backbone``)."""
        return self.network.backbone

    @property
    def input_filter(self) -> nn.Module:
        """The fitted network's fixed input filter."""
        return self.network.input_filter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of a raw batch.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, H, W) or (B, D)
            Images in ``[0, 1]`` or feature rows.

        Returns
        -------
        torch.Tensor of shape (B, n_classes)
            Logits (skorch's ``predict_proba`` applies the softmax).
        """
        return self.head(self.features(x))

    def train(self, mode: bool = True) -> BackboneClassifier:
        """Set training mode; a frozen backbone stays in eval mode.

        Parameters
        ----------
        mode : bool, default=True
            Training (``True``) or evaluation mode.

        Returns
        -------
        BackboneClassifier
            This module.
        """
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
            self.input_filter.eval()
        return self


class EstimatorInput(torch.utils.data.Dataset):
    """The inputs the estimators take, as a torch dataset for skorch.

    skorch builds one for every ``fit``, ``predict`` and ``predict_proba`` (its
    ``dataset`` parameter); a :class:`torch.utils.data.Dataset` passed as ``X`` is used as
    it is instead.

    Parameters
    ----------
    X : array-like, torch.Tensor, folder, or sequence of image paths
        As for the estimators (:func:`deepclust.data.as_source`): numpy images
        ``(N, H, W)`` or ``(N, H, W, C)`` (uint8 or float in ``[0, 1]``), tensors
        ``(N, C, H, W)``, a folder (its files in :func:`deepclust.data.list_image_files`
        order), a list of image files, or a 2-D feature matrix. Images are resized and
        converted to the fitted estimator's size and channels.
    y : array-like of shape (n_samples,), optional
        Class labels (integers in ``range(n_classes)``); ``None`` for prediction.
    input_shape : tuple of int
        The estimator's ``input_shape_``: ``(C, H, W)`` for images, ``(D,)`` for features.
    on_bad_image : {'raise', 'skip'}, default='raise'
        What an unreadable image file does (``'skip'`` leaves it out; only with ``y=None``).
    """

    def __init__(self, X, y=None, *, input_shape: Sequence[int], on_bad_image: str = "raise"):
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 3:
            source = as_source(
                X, image_size=shape[1:], n_channels=shape[0], on_bad_image=on_bad_image
            )
        else:
            source = as_source(X)
        if tuple(source.shape) != shape:
            raise ValueError(
                f"X has samples of shape {tuple(source.shape)}; the estimator was fitted on "
                f"{shape}. Pass images (or features) like those it was fitted on."
            )
        self.source = source
        # Arrays and tensors are in memory already: load them once; files one by one.
        self.data = source.load() if isinstance(source, TensorSource) else None
        self.y = None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.long)
        if self.y is not None and len(self.y) != len(source):
            raise ValueError(f"y has {len(self.y)} labels but X has {len(source)} samples.")

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.data[i] if self.data is not None else self.source.load(np.array([i]))[0]
        return x, (self.y[i] if self.y is not None else torch.zeros((), dtype=torch.long))


def _fitted_network(estimator) -> nn.Module:
    """The estimator's ``network_``, or a clear error for what cannot give one."""
    from deepclust.methods._base import BaseDeepClusterer

    name = type(estimator).__name__
    if not isinstance(estimator, BaseDeepClusterer):
        raise TypeError(
            f"to_classifier needs a fitted deepclust estimator (e.g. SelfLabelClusterer); "
            f"got {name}."
        )
    network = getattr(estimator, "network_", None)
    if network is None or not hasattr(estimator, "input_shape_"):
        raise NotFittedError(
            f"This {name} is not fitted yet; call fit (or load a fitted model with "
            "deepclust.io.load_model) before to_classifier."
        )
    return network


def to_classifier(
    estimator,
    *,
    n_classes: int | None = None,
    freeze_backbone: bool = True,
    **skorch_params,
) -> skorch.NeuralNetClassifier:
    """A skorch classifier made of a fitted estimator's backbone and a new linear head.

    The module is a :class:`BackboneClassifier`: the estimator's input normalisation (and
    input filter), its backbone with the weights the clustering trained, and a fresh
    ``nn.Linear`` head. The net takes the estimators' inputs (:class:`EstimatorInput`) and
    is ready for ``fit(X, y)``; every ``fit`` starts again from the clustered weights.

    Parameters
    ----------
    estimator : fitted deepclust estimator
        Any of the four estimators, fitted (or loaded with :func:`deepclust.io.load_model`).
    n_classes : int, optional
        Outputs of the head; default the estimator's ``n_clusters``.
    freeze_backbone : bool, default=True
        Train only the head: the backbone's parameters get ``requires_grad=False`` and it
        stays in eval mode. ``False`` fine-tunes the whole network.
    **skorch_params
        Parameters of :class:`skorch.NeuralNetClassifier`, over these defaults:
        ``criterion=torch.nn.CrossEntropyLoss`` (the module returns logits),
        ``optimizer=torch.optim.AdamW``, ``lr=3e-3`` (``3e-2`` with a frozen backbone),
        ``max_epochs=50``, ``batch_size=64``, ``train_split=None`` (no validation split:
        a few labels are too few to hold some out; pass
        ``skorch.dataset.ValidSplit(5)`` to have one), ``iterator_train__shuffle=True``,
        ``device`` the estimator's and ``dataset=EstimatorInput`` with the estimator's
        ``input_shape_``.

    Returns
    -------
    skorch.NeuralNetClassifier
        Not initialised; ``fit(X, y)`` trains it, ``predict`` and ``predict_proba`` apply
        it, with ``X`` in any form the estimators take.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When the estimator is not fitted.
    TypeError
        When ``estimator`` is not a deepclust estimator.
    ValueError
        When ``n_classes`` is below 2.
    """
    network = _fitted_network(estimator)
    n_classes = int(estimator.n_clusters if n_classes is None else n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2; got {n_classes}.")
    device = getattr(estimator, "device_", torch.device("cpu"))
    params = {
        "criterion": nn.CrossEntropyLoss,
        "optimizer": torch.optim.AdamW,
        "lr": 3e-2 if freeze_backbone else 3e-3,
        "max_epochs": 50,
        "batch_size": 64,
        "train_split": None,
        "iterator_train__shuffle": True,
        "device": str(device),
        "dataset": EstimatorInput,
        "dataset__input_shape": tuple(int(s) for s in estimator.input_shape_),
        "module__network": network,
        "module__n_classes": n_classes,
        "module__freeze_backbone": bool(freeze_backbone),
    }
    params.update(skorch_params)
    return skorch.NeuralNetClassifier(BackboneClassifier, **params)
