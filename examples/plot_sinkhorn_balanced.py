"""
=====================================================
Equal-size labels with Sinkhorn-Knopp
=====================================================

SeLa's label step on its own. A network's predictions are often skewed: a few clusters
attract most images and the arg-max labels collapse onto them. :func:`deepclust.sinkhorn_knopp`
instead returns the labels that maximise the total log-probability *under the constraint*
that every cluster gets its share of the images, through an entropic optimal-transport
problem solved by Sinkhorn-Knopp iterations.

No network is trained here: the "predictions" are random logits with a bias towards the
first clusters.
"""

# %%
# Skewed predictions
# ------------------
import matplotlib.pyplot as plt
import numpy as np

from deepclust import sinkhorn_knopp
from deepclust.sinkhorn import sinkhorn_solve

rng = np.random.default_rng(0)
n_samples, n_clusters = 5000, 10
popularity = np.linspace(2.0, 0.0, n_clusters)  # cluster 0 is favoured the most
logits = rng.standard_normal((n_samples, n_clusters)) + popularity
probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

argmax_labels = probs.argmax(axis=1)
print("arg-max sizes:   ", np.bincount(argmax_labels, minlength=n_clusters))

# %%
# Equal-size assignment
# ---------------------
# ``lamb`` (SeLa's lambda, default 25) sets how close the relaxation is to the hard
# assignment problem. The labels keep each image's most likely cluster wherever the
# constraint allows.
balanced_labels = sinkhorn_knopp(probs, lamb=25.0)
print("Sinkhorn sizes:  ", np.bincount(balanced_labels, minlength=n_clusters))
print(f"labels equal to the arg-max: {np.mean(balanced_labels == argmax_labels):.1%}")

# %%
# Any target sizes
# ----------------
# ``marginals`` asks for other proportions, e.g. for data known to be imbalanced
# (:class:`~deepclust.SelfLabelClusterer` exposes it as ``cluster_sizes``).
target = np.array([4, 4, 2, 2, 1, 1, 1, 1, 1, 1], dtype=float)
shaped_labels = sinkhorn_knopp(probs, marginals=target)
print("target sizes:    ", np.round(n_samples * target / target.sum()).astype(int))
print("Sinkhorn sizes:  ", np.bincount(shaped_labels, minlength=n_clusters))

# %%
# The cluster-size histogram
# --------------------------
# Left: sizes of the three labellings. Right: the effect of ``lamb``. Small values give
# a blurry transport plan whose arg-max meets the sizes only loosely; large values meet
# them closely, at the price of more iterations.
lambs = [0.5, 1, 2, 5, 10, 25, 50]
size_error, iterations = [], []
for lamb in lambs:
    result = sinkhorn_solve(probs, lamb=lamb)
    sizes = np.bincount(result.labels.numpy(), minlength=n_clusters)
    size_error.append(np.abs(sizes - n_samples / n_clusters).max() / (n_samples / n_clusters))
    iterations.append(result.n_iter + result.warm_start_iter)

fig, (ax_sizes, ax_lamb) = plt.subplots(1, 2, figsize=(11, 4))
width = 0.28
x = np.arange(n_clusters)
for shift, labels, name in [
    (-width, argmax_labels, "arg-max"),
    (0, balanced_labels, "Sinkhorn, equal sizes"),
    (width, shaped_labels, "Sinkhorn, marginals=target"),
]:
    ax_sizes.bar(x + shift, np.bincount(labels, minlength=n_clusters), width, label=name)
ax_sizes.axhline(n_samples / n_clusters, color="k", lw=0.8, ls="--")
ax_sizes.set(xlabel="cluster", ylabel="images", xticks=x, title="Cluster sizes")
ax_sizes.legend(fontsize=8)

ax_lamb.semilogx(lambs, size_error, "o-", label="largest size deviation")
ax_lamb.set(
    xlabel="lamb", ylabel="relative deviation from equal size", title="Hard labels vs. lamb"
)
ax_iter = ax_lamb.twinx()
ax_iter.semilogx(lambs, iterations, "s--", color="tab:gray", label="iterations")
ax_iter.set_ylabel("Sinkhorn iterations")
handles = ax_lamb.get_legend_handles_labels()[0] + ax_iter.get_legend_handles_labels()[0]
ax_lamb.legend(handles=handles, loc="upper center", fontsize=8)
fig.tight_layout()
plt.show()
