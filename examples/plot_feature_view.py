"""
==============================================
A 2-D view of the learned features
==============================================

What does a deep-clustering network learn? Project its features
(:meth:`~deepclust.DeepClusterEstimator.transform`) to two dimensions with PCA and
colour the points, beside the same projection of the raw pixels. Both views are coloured
by the learned clusters (top) and by the true digit (bottom).
"""

# %%
# Fit
# ---
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA

from deepclust import DeepClusterEstimator
from deepclust.datasets import load_digits_images
from deepclust.metrics import evaluate_clustering

torch.set_num_threads(2)
X, y = load_digits_images()

est = DeepClusterEstimator(
    n_clusters=10, max_epochs=15, pca_dim=64, batch_size=128, device="cpu", random_state=0
).fit(X)
features = est.transform(X)
print("features:", features.shape, features.dtype)
print({k: round(v, 3) for k, v in evaluate_clustering(y, est.labels_).items()})

# %%
# Project both
# ------------
# The features are L2-normalised first, as the estimator's own clustering and ``score``
# compare them by cosine.
pixels = X.reshape(len(X), -1) / 255.0
normalised = features / np.linalg.norm(features, axis=1, keepdims=True)
views = {
    "raw pixels (64-d)": PCA(2, random_state=0).fit_transform(pixels),
    f"learned features ({features.shape[1]}-d)": PCA(2, random_state=0).fit_transform(normalised),
}

# %%
# Plot
# ----
fig, axes = plt.subplots(2, 2, figsize=(10, 9), layout="constrained")
for col, (title, points) in enumerate(views.items()):
    for row, (colours, legend) in enumerate([(est.labels_, "cluster"), (y, "digit")]):
        ax = axes[row, col]
        scatter = ax.scatter(
            points[:, 0], points[:, 1], c=colours, cmap="tab10", s=6, vmin=-0.5, vmax=9.5
        )
        ax.set(xticks=[], yticks=[])
        if row == 0:
            ax.set_title(title)
        if col == 0:
            ax.set_ylabel(f"coloured by {legend}", fontsize=12)
fig.colorbar(scatter, ax=axes, ticks=range(10), shrink=0.5, label="cluster (top) / digit (bottom)")
plt.show()

# %%
# In pixel space the digits overlap heavily in the first two principal components; the
# learned features spread them into groups that follow the clusters the network was
# trained on. Two dimensions show only part of the structure: the clustering itself runs
# in the full feature space.
