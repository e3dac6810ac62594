"""
===========================================
Quick start: cluster digits with SeLa
===========================================

Fit :class:`~deepclust.SelfLabelClusterer` (SeLa) on the 8x8 digit images of
scikit-learn, without their labels, and look at what ended up in each cluster. The labels
are used only afterwards, to score the clustering against k-means on raw pixels.
"""

# %%
# Load the images
# ---------------
# :func:`~deepclust.datasets.load_digits_images` returns uint8 images of shape
# ``(1797, 8, 8)`` and their digit labels.
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.cluster import KMeans

from deepclust import SelfLabelClusterer
from deepclust.datasets import load_digits_images
from deepclust.metrics import evaluate_clustering

torch.set_num_threads(2)
X, y = load_digits_images()
print(X.shape, X.dtype)

# %%
# Fit
# ---
# The estimator trains a small convolutional network by cross-entropy against
# self-labels that are recomputed, a few times during training, as the equal-size
# partition the network finds most likely (Sinkhorn-Knopp). Every setting left at
# ``'auto'`` is resolved from the data by the method's recipe (``recipe_``); its default
# budget trains 300 epochs on these 1,797 images, and 25, set here, keep this example
# under a minute.
est = SelfLabelClusterer(n_clusters=10, max_epochs=25, device="cpu", random_state=0)
est.fit(X)
print("cluster sizes:", np.bincount(est.labels_))
print("settings:", est.recipe_["params"])

# %%
# Score against the digit labels
# ------------------------------
# Accuracy (ACC) matches clusters to classes with the Hungarian algorithm; NMI and ARI
# are invariant to the cluster numbering. On 64-pixel digits k-means on the raw pixels
# is a strong baseline that a 25-epoch SeLa run does not reach; on larger images, where
# pixels are a poor representation, the learned features matter more (see
# :doc:`/benchmarks`), and :ref:`sphx_glr_auto_examples_plot_scan_stages.py` shows the
# strongest method on the same data.
pixels = X.reshape(len(X), -1) / 255.0
kmeans_labels = KMeans(10, n_init=10, random_state=0).fit_predict(pixels)
for name, labels in [("SeLa", est.labels_), ("k-means, raw pixels", kmeans_labels)]:
    scores = evaluate_clustering(y, labels)
    print(f"{name:20s}", "  ".join(f"{k.upper()} {v:.3f}" for k, v in scores.items()))

# %%
# A cluster montage
# -----------------
# One row per cluster, twelve of its images (the ones the network is most sure about
# first), and the digit most common in it.
proba = est.predict_proba(X)
n_show = 12
fig, axes = plt.subplots(10, n_show, figsize=(n_show * 0.6, 10 * 0.62))
for cluster in range(10):
    members = np.flatnonzero(est.labels_ == cluster)
    members = members[np.argsort(-proba[members, cluster])][:n_show]
    majority = np.bincount(y[est.labels_ == cluster], minlength=10).argmax()
    for col in range(n_show):
        ax = axes[cluster, col]
        ax.set_axis_off()
        if col < len(members):
            ax.imshow(X[members[col]], cmap="gray_r", interpolation="nearest")
    axes[cluster, 0].text(
        -0.9,
        0.5,
        f"{cluster}: '{majority}'",
        transform=axes[cluster, 0].transAxes,
        ha="right",
        va="center",
        fontsize=9,
    )
fig.suptitle("SeLa clusters of the digits (row: cluster and its majority digit)")
fig.subplots_adjust(left=0.14, right=0.99, top=0.94, bottom=0.01, wspace=0.05, hspace=0.1)
plt.show()

# %%
# New images go through :meth:`~deepclust.SelfLabelClusterer.predict`, and
# :meth:`~deepclust.SelfLabelClusterer.transform` returns the learned features
# (see :ref:`sphx_glr_auto_examples_plot_feature_view.py`).
print(est.predict(X[:5]), est.transform(X[:5]).shape)
