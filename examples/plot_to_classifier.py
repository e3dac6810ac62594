"""
==========================================================
From clusters to a classifier: review, then fine-tune
==========================================================

Clustering gives groups, not names. The usual next step is to look at a few images of
each cluster, name the clusters, and train a supervised classifier on the labels so
obtained. :func:`deepclust.integrations.skorch.to_classifier` starts that classifier from
the network the clustering trained: the same backbone and input normalisation, with a
fresh linear head, as a :class:`skorch.NeuralNetClassifier`.

Here the "review" is simulated with the digits' true labels: 10 images of each cluster
are checked, and each cluster is named after the majority of its 10. The 100 checked
images, with the labels the reviewer saw, then train three classifiers, scored on the
other 1,697 digits: the clustered network fine-tuned, the same network with its backbone
frozen (only the head trains), and the same architecture trained from scratch.
"""

# %%
# Cluster
# -------
import matplotlib.pyplot as plt
import numpy as np
import torch

from deepclust import SelfLabelClusterer
from deepclust.datasets import load_digits_images
from deepclust.integrations.skorch import to_classifier
from deepclust.metrics import cluster_accuracy

torch.set_num_threads(2)
X, y = load_digits_images()
est = SelfLabelClusterer(n_clusters=10, max_epochs=60, device="cpu", random_state=0).fit(X)
print(f"cluster accuracy of the clustering: {cluster_accuracy(y, est.labels_):.3f}")

# %%
# Review: 10 images per cluster
# -----------------------------
# ``deepclust review RUN`` writes one row per cluster into ``clusters.csv`` for this step;
# here each cluster gets the majority label of 10 of its images, drawn at random. Clusters
# given the same name merge, as ``deepclust export`` merges them; a digit that no cluster
# is named after cannot be labelled by the names alone, but the classifiers below learn
# it from the checked images' own labels.
rng = np.random.default_rng(0)
checked = np.concatenate(
    [rng.choice(np.flatnonzero(est.labels_ == k), 10, replace=False) for k in range(10)]
)
names = {k: int(np.bincount(y[checked[est.labels_[checked] == k]]).argmax()) for k in range(10)}
review_labels = np.array([names[k] for k in est.labels_])
others = np.setdiff1d(np.arange(len(y)), checked)
print("cluster names:", names)
print(f"labels from the cluster names, on the other images: "
      f"{np.mean(review_labels[others] == y[others]):.3f}")  # fmt: skip

# %%
# Three classifiers on the 100 checked images
# -------------------------------------------
# ``to_classifier`` returns an unfitted skorch net; its ``fit`` takes the images as the
# estimators do, and every ``fit`` starts again from the clustered weights. "From
# scratch" is the same architecture with random weights: a 0-epoch fit gives it (and the
# same input normalisation). Each is trained for 10 and for 50 epochs.
scratch = SelfLabelClusterer(n_clusters=10, max_epochs=0, device="cpu", random_state=0).fit(X)
starts = {
    "fine-tuned (from clusters)": (est, False),
    "frozen backbone + linear head": (est, True),
    "from scratch (same network)": (scratch, False),
}
accuracy = {}
for name, (start, freeze) in starts.items():
    for epochs in (10, 50):
        torch.manual_seed(0)
        net = to_classifier(start, freeze_backbone=freeze, max_epochs=epochs, verbose=0)
        net.fit(X[checked], y[checked])
        accuracy[name, epochs] = np.mean(net.predict(X[others]) == y[others])
        print(f"{name:30s} {epochs:2d} epochs: accuracy {accuracy[name, epochs]:.3f}")

# %%
# Compare
# -------
fig, ax = plt.subplots(figsize=(7, 3.4))
named = np.mean(review_labels[others] == y[others])
ax.axhline(named, color="0.5", ls="--", label="cluster names alone")
for i, epochs in enumerate((10, 50)):
    values = [accuracy[name, epochs] for name in starts]
    bars = ax.bar(np.arange(3) + (i - 0.5) * 0.38, values, 0.38, label=f"{epochs} epochs")
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
ax.set_xticks(np.arange(3), [name.replace(" (", "\n(") for name in starts])
ax.set_ylim(0, 1.08)
ax.set_ylabel("accuracy on the other 1,697")
ax.set_title("100 reviewed digits, three ways to train on them")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %%
# On digits a small network trained from scratch on 100 labels ends up nearly as good as
# the fine-tuned one; starting from the clustered weights gets there in far fewer epochs
# and adds a little at the end (:doc:`/user_guide/supervised` has the figures over
# several label draws). The frozen backbone keeps the clustering's features as they are,
# which after a short clustering fit are weaker than fine-tuned ones.
