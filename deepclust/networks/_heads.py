"""Heads put on a backbone: linear clustering heads and an MLP projection head."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ClusteringHeads", "ProjectionHead", "StackedLinearHeads"]


class ClusteringHeads(nn.Module):
    """``n_heads`` independent linear classifiers over the same features.

    Parameters
    ----------
    in_features : int
        Feature size of the backbone.
    n_clusters : int
        Outputs of each head.
    n_heads : int
        Number of heads (SeLa and SCAN train several).
    """

    def __init__(self, in_features: int, n_clusters: int, n_heads: int = 1):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(in_features, n_clusters) for _ in range(n_heads))

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        return [head(features) for head in self.heads]

    def __len__(self) -> int:
        return len(self.heads)

    def __getitem__(self, index: int) -> nn.Linear:
        return self.heads[index]

    def __iter__(self):
        return iter(self.heads)

    @property
    def n_clusters(self) -> int:
        """Outputs of each head."""
        return self.heads[0].out_features

    def reset_parameters(self) -> None:
        """Re-initialise every head (DeepCluster does so whenever the labels are redrawn)."""
        for head in self.heads:
            head.reset_parameters()


class StackedLinearHeads(nn.Module):
    """``n_heads`` linear heads held as one weight tensor, evaluated in one batched product.

    Initialised like :class:`torch.nn.Linear` (uniform in ``±1/sqrt(in_features)``). Used
    to train many candidate clustering heads at once on fixed features; :meth:`copy_to` copies
    one of them into an ``nn.Linear``.

    Parameters
    ----------
    in_features : int
        Feature size of the backbone.
    n_clusters : int
        Outputs of each head.
    n_heads : int
        Number of heads stacked.
    """

    def __init__(self, in_features: int, n_clusters: int, n_heads: int):
        super().__init__()
        bound = 1.0 / in_features**0.5
        self.weight = nn.Parameter(torch.empty(n_heads, n_clusters, in_features))
        self.bias = nn.Parameter(torch.empty(n_heads, n_clusters))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(n_heads, B, n_clusters)`` of features ``(B, in_features)``.

        Parameters
        ----------
        features : torch.Tensor of shape (B, in_features)
            Backbone features, shared by every head.
        """
        return torch.einsum("bd,hkd->hbk", features, self.weight) + self.bias[:, None, :]

    @torch.no_grad()
    def copy_to(self, index: int, linear: nn.Linear) -> None:
        """Copy head ``index`` into ``linear`` (same sizes).

        Parameters
        ----------
        index : int
            The head copied, in ``[0, n_heads)``.
        linear : nn.Linear
            Receives the weights in place; ``in_features`` inputs, ``n_clusters`` outputs.
        """
        linear.weight.copy_(self.weight[index])
        linear.bias.copy_(self.bias[index])


class ProjectionHead(nn.Module):
    """Two-layer MLP projection head (SimCLR): Linear - BN - ReLU - Linear.

    Parameters
    ----------
    in_features : int
        Feature size of the backbone.
    hidden_features : int, default=512
        Width of the hidden layer.
    out_features : int, default=128
        Size of the projection (the contrastive loss's embedding).
    """

    def __init__(self, in_features: int, hidden_features: int = 512, out_features: int = 128):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden_features),
            nn.BatchNorm1d(hidden_features),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_features, out_features),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
