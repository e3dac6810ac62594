"""
==============================================================
DeepCluster: how stable are the clusters from epoch to epoch?
==============================================================

:class:`~deepclust.DeepClusterEstimator` re-clusters the whole data set at the start of
every epoch (k-means on PCA-whitened features) and trains the network one epoch on that
assignment. Caron et al. (2018) follow training by the normalised mutual information
(NMI) between the assignments of consecutive epochs: in the paper it rises as the
representation settles and the pseudo-labels stop being reshuffled. The estimator records it in
``history_`` as ``nmi_previous``.
"""

# %%
# Fit
# ---
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator

from deepclust import DeepClusterEstimator
from deepclust.datasets import load_digits_images
from deepclust.metrics import evaluate_clustering

torch.set_num_threads(2)
X, y = load_digits_images()

est = DeepClusterEstimator(
    n_clusters=10, max_epochs=15, pca_dim=64, batch_size=128, device="cpu", random_state=0
)
est.fit(X)
print({k: round(v, 3) for k, v in evaluate_clustering(y, est.labels_).items()})

# %%
# What ``history_`` holds
# -----------------------
# One record per epoch; the first has no ``nmi_previous`` (there is no previous
# assignment yet).
for record in est.history_[:3]:
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()})

# %%
# The stability curve
# -------------------
epochs = [r["epoch"] for r in est.history_ if "nmi_previous" in r]
nmi_previous = [r["nmi_previous"] for r in est.history_ if "nmi_previous" in r]
loss = [r["loss"] for r in est.history_]

fig, (ax_nmi, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
ax_nmi.plot(epochs, nmi_previous, "o-")
ax_nmi.set(
    xlabel="epoch",
    ylabel="NMI(t-1, t)",
    ylim=(0, 1),
    title="NMI between consecutive k-means assignments",
)
ax_nmi.grid(alpha=0.3)
ax_loss.plot(np.arange(len(loss)), loss, "o-", color="tab:orange")
ax_loss.set(
    xlabel="epoch", ylabel="cross-entropy", title="Training loss against the current pseudo-labels"
)
ax_loss.grid(alpha=0.3)
for ax in (ax_nmi, ax_loss):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
fig.tight_layout()
plt.show()

# %%
# Each epoch starts from a re-initialised classification head (the cluster numbering
# changes from one k-means run to the next), so the loss does not fall smoothly as in
# supervised training. Towards the end the cosine schedule has lowered the learning rate
# so far that a fresh head no longer fits the new labels within one epoch, and the loss
# rises again. With 15 short epochs on 8x8 images the NMI stays moderate; the curve is
# the signal to watch when choosing ``max_epochs`` for your data.
