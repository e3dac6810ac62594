"""PCA-whitening followed by L2 normalisation (DeepCluster's feature preprocessing)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.exceptions import NotFittedError

from deepclust.distributed._helpers import _resolve_distributed

from ._backend import check_2d_float, check_positive_int, like_input, resolve_device, to_torch

__all__ = ["PCAWhitening", "pca_whiten"]

_CHUNK_ROWS = 16384


class PCAWhitening:
    """Project onto the leading principal components, whiten, then L2-normalise rows.

    ``transform(X) = normalize((X - mean_) @ components_.T / sqrt(explained_variance_ + eps))``.
    Before the normalisation the output has (approximately) identity covariance on the
    training data. This is the preprocessing DeepCluster applies to CNN features before
    k-means (there done with ``faiss.PCAMatrix(d_in, d_out, -0.5)``). Computed with torch in
    float64 (covariance + symmetric eigendecomposition), on CPU or GPU.

    Parameters
    ----------
    n_components : int
        Output dimension. When the input has fewer features ``D``, ``D`` is used
        (``n_components_`` holds the value used). Components beyond the rank of the training
        data (``n_samples - 1``) have ~zero variance and are scaled by ``1 / sqrt(eps)``.
    eps : float, default=1e-5
        Added to the eigenvalues before the inverse square root (regularises tiny variances).
    l2_normalize : bool, default=True
        Divide each output row by its Euclidean norm.
    device : str or torch.device, optional
        Where to compute; defaults to the device of the data passed to :meth:`fit`.
    distributed : bool or torch.distributed.ProcessGroup, default=False
        :meth:`fit` on rows spread over the ranks of a process group (``True``: the
        default group): each rank passes its own rows, the mean and covariance sums are
        all-reduced, and every rank gets the statistics of all rows (those of one process
        up to rounding). :meth:`transform` stays per row. Ignored without an initialised
        process group; see :ref:`distributed`.

    Attributes
    ----------
    mean_ : torch.Tensor of shape (n_features,), float64
    components_ : torch.Tensor of shape (``n_components_``, n_features), float64
        Principal axes, by decreasing variance.
    explained_variance_ : torch.Tensor of shape (``n_components_``,), float64
        Variance along each axis (unbiased estimate).
    n_components_ : int
    n_features_in_ : int
    """

    def __init__(
        self,
        n_components: int,
        *,
        eps: float = 1e-5,
        l2_normalize: bool = True,
        device: str | torch.device | None = None,
        distributed: Any = False,
    ) -> None:
        self.n_components = n_components
        self.eps = eps
        self.l2_normalize = l2_normalize
        self.device = device
        self.distributed = distributed

    def fit(self, X: Any) -> PCAWhitening:
        """Estimate mean, principal axes and variances from ``X`` (n_samples, n_features).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training data, at least 2 finite rows; computed on :attr:`device` or, when
            that is ``None``, on the data's device.
        """
        n_components = check_positive_int(self.n_components, "n_components")
        if not (isinstance(self.eps, (int, float)) and self.eps >= 0):
            raise ValueError(f"eps must be a non-negative float, got {self.eps!r}.")
        X_checked = check_2d_float(X)
        n_local, n_features = X_checked.shape
        comm = _resolve_distributed(self.distributed)
        data = to_torch(X_checked, resolve_device(X, self.device), keep_half=True)
        n_samples = sum(comm.row_counts(n_local, data.device))
        if n_samples < 2:
            raise ValueError(f"PCAWhitening needs at least 2 samples, got {n_samples}.")
        # Accumulate the covariance in float64 over row chunks (no float64 copy of X),
        # around a shift close to the mean (rank 0's, distributed) to avoid cancellation.
        shift = data[: min(n_local, 1024)].to(torch.float64).mean(0)
        if comm.active:
            shift = comm.all_reduce(shift.nan_to_num_() if comm.rank == 0 else shift.zero_())
        total = torch.zeros(n_features, dtype=torch.float64, device=data.device)
        scatter = torch.zeros(n_features, n_features, dtype=torch.float64, device=data.device)
        for start in range(0, n_local, _CHUNK_ROWS):
            block = data[start : start + _CHUNK_ROWS].to(torch.float64) - shift
            total += block.sum(0)
            scatter += block.t() @ block
        comm.all_reduce(total)
        comm.all_reduce(scatter)
        mean_shifted = total / n_samples
        covariance = (scatter - n_samples * torch.outer(mean_shifted, mean_shifted)) / (
            n_samples - 1
        )
        mean = mean_shifted + shift
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        self.n_components_ = min(n_components, n_features)
        order = torch.argsort(eigenvalues, descending=True)[: self.n_components_]
        components = eigenvectors[:, order].t().contiguous()
        # Fix the sign of each axis (largest |coefficient| positive) for reproducibility.
        signs = torch.sign(components.gather(1, components.abs().argmax(1, keepdim=True)))
        signs[signs == 0] = 1.0
        self.components_ = components * signs
        self.explained_variance_ = eigenvalues[order].clamp_min(0.0)
        self.mean_ = mean
        self.n_features_in_ = n_features
        return self

    def transform(self, X: Any) -> np.ndarray | torch.Tensor:
        """Whiten (and L2-normalise) ``X``; float32, numpy or tensor like the input.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Finite data with the features seen in :meth:`fit`; computed on the device
            the whitening was fitted on.
        """
        if not hasattr(self, "components_"):
            raise NotFittedError("This PCAWhitening instance is not fitted yet; call fit(X) first.")
        X_checked = check_2d_float(X)
        if X_checked.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X_checked.shape[1]} features but PCAWhitening was fitted with "
                f"{self.n_features_in_}."
            )
        device = self.mean_.device
        data = to_torch(X_checked, device, keep_half=True)
        scale = (self.explained_variance_ + self.eps).rsqrt()
        projection = self.components_.t() * scale  # (n_features, n_components_)
        projected = torch.empty(
            data.shape[0], self.n_components_, dtype=torch.float32, device=device
        )
        for start in range(0, data.shape[0], _CHUNK_ROWS):
            block = (data[start : start + _CHUNK_ROWS].to(torch.float64) - self.mean_) @ projection
            if self.l2_normalize:
                block = torch.nn.functional.normalize(block, dim=1)
            projected[start : start + _CHUNK_ROWS] = block
        return like_input(projected, X)

    def fit_transform(self, X: Any) -> np.ndarray | torch.Tensor:
        """Fit on ``X`` and return its transform.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Training data, at least 2 finite rows.
        """
        return self.fit(X).transform(X)


def pca_whiten(
    X: Any,
    n_components: int,
    *,
    eps: float = 1e-5,
    l2_normalize: bool = True,
    device: str | torch.device | None = None,
) -> np.ndarray | torch.Tensor:
    """Function form of :class:`PCAWhitening`: ``PCAWhitening(...).fit_transform(X)``.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Data to fit on and whiten, at least 2 finite rows.
    n_components : int
        Output dimension (at most the number of features is used).
    eps : float, default=1e-5
        Added to the eigenvalues before the inverse square root.
    l2_normalize : bool, default=True
        Divide each output row by its Euclidean norm.
    device : str or torch.device, optional
        Where to compute; defaults to the device of ``X``.
    """
    return PCAWhitening(
        n_components, eps=eps, l2_normalize=l2_normalize, device=device
    ).fit_transform(X)
