"""Clustering kernels: k-means, exact kNN and PCA-whitening, on faiss or pure torch.

Every function accepts numpy arrays or torch tensors and returns the same kind (tensors
on the input's device). ``backend='auto'`` uses faiss when it is installed (``pip install
deepclust[faiss]``) and can run on the requested device, otherwise a chunked pure-torch
implementation that also runs on CUDA.
"""

from __future__ import annotations

from ._backend import faiss_available, faiss_gpu_available
from ._kmeans import KMeansResult, assign, kmeans
from ._knn import knn
from ._merged import merged_kmeans
from ._pca import PCAWhitening, pca_whiten

__all__ = [
    "KMeansResult",
    "PCAWhitening",
    "assign",
    "faiss_available",
    "faiss_gpu_available",
    "kmeans",
    "knn",
    "merged_kmeans",
    "pca_whiten",
]
