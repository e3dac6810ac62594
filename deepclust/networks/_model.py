"""The network every estimator trains: input normalisation, backbone, heads."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepclust.networks._heads import ClusteringHeads, ProjectionHead

__all__ = ["Normalize", "ClusteringNetwork"]


class Normalize(nn.Module):
    """Subtract a per-channel (or per-feature) mean and divide by a standard deviation.

    The statistics are buffers, so they travel with the network's ``state_dict``.

    Parameters
    ----------
    mean : array-like of shape (n_channels,) or (n_features,)
        Subtracted from each channel (or feature).
    std : array-like of the same shape
        Divides each channel (or feature) after the subtraction.
    """

    def __init__(self, mean, std):
        super().__init__()
        mean_t = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        std_t = torch.as_tensor(np.asarray(std), dtype=torch.float32)
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


class ClusteringNetwork(nn.Module):
    """Normalisation + backbone + clustering heads (+ optional projection head).

    Parameters
    ----------
    backbone : nn.Module
        Maps normalised input to ``(B, n_features)``.
    n_features : int
        Backbone output size.
    n_clusters : int
        Outputs per clustering head.
    n_heads : int
        Number of clustering heads.
    mean, std : array-like
        Input normalisation statistics.
    projection_dim : int or None
        When set, a :class:`ProjectionHead` to this many dims is added (contrastive pretext).
    input_filter : nn.Module or None
        Fixed filter applied after normalisation (e.g. DeepCluster's Sobel filter).
    feature_stats : tuple of array-like or None
        ``(mean, std)`` of the backbone's features: when given, :meth:`features`
        standardises them with a :class:`Normalize` (``feature_normalize``), as the heads of
        a fit on frozen backbone features (``freeze_backbone=True``) were trained on.
    """

    def __init__(
        self,
        backbone: nn.Module,
        n_features: int,
        n_clusters: int,
        n_heads: int = 1,
        mean=0.0,
        std=1.0,
        projection_dim: int | None = None,
        input_filter: nn.Module | None = None,
        feature_stats: tuple | None = None,
    ):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.input_filter = input_filter if input_filter is not None else nn.Identity()
        self.backbone = backbone
        self.n_features = n_features
        self.feature_normalize = Normalize(*feature_stats) if feature_stats is not None else None
        self.heads = ClusteringHeads(n_features, n_clusters, n_heads)
        self.projection = (
            ProjectionHead(n_features, max(128, n_features), projection_dim)
            if projection_dim
            else None
        )
        # Convolutions on channels-last tensors run faster on CPUs (oneDNN) and on GPUs
        # (tensor cores); the weights and every 4-D input take that layout.
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in backbone.modules())
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``(B, n_features)`` of raw ``[0, 1]`` input.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, H, W) or (B, D)
            Images in ``[0, 1]`` or feature rows.

        Returns
        -------
        torch.Tensor of shape (B, n_features)
        """
        x = self.input_filter(self.normalize(x))
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.backbone(x)
        out = out.flatten(1) if out.ndim > 2 else out
        return out if self.feature_normalize is None else self.feature_normalize(out)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every clustering head.

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, H, W) or (B, D)
            Images in ``[0, 1]`` or feature rows.

        Returns
        -------
        list of torch.Tensor of shape (B, n_clusters)
        """
        return self.heads(self.features(x))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Contrastive projection of raw input (needs ``projection_dim``).

        Parameters
        ----------
        x : torch.Tensor of shape (B, C, H, W) or (B, D)
            Images in ``[0, 1]`` or feature rows.

        Returns
        -------
        torch.Tensor of shape (B, projection_dim)
        """
        if self.projection is None:
            raise RuntimeError("This network was built without a projection head.")
        return self.projection(self.features(x))
