"""
=====================================
SCAN's three stages on digits
=====================================

:class:`~deepclust.SCANClusterer` runs three stages in one ``fit``:

1. **pretext**: SimCLR contrastive learning gives features in which an image's nearest
   neighbours tend to show the same digit;
2. **SCAN**: clustering heads are trained so that every image and its mined neighbours
   get the same cluster, while all clusters stay in use (an entropy term);
3. **self-labelling**: the confident predictions become labels for fine-tuning.

``stage_labels_`` keeps the labels after each stage (and k-means on the pretext features
as the reference point), so the contribution of every stage can be measured.
"""

# %%
# Fit
# ---
# The epoch counts are cut down from the defaults (100, 50, 20) to fit in about a
# minute; ``lr=1e-3`` speeds up the SCAN step (the paper's value is ``1e-4``). ``y`` is
# passed only so that the estimator can report how often mined neighbours share a label.
import matplotlib.pyplot as plt
import numpy as np
import torch

from deepclust import SCANClusterer
from deepclust.datasets import load_digits_images
from deepclust.metrics import evaluate_clustering

torch.set_num_threads(2)
X, y = load_digits_images()

est = SCANClusterer(
    n_clusters=10,
    pretext_epochs=40,
    max_epochs=20,
    selflabel_epochs=2,
    lr=1e-3,
    batch_size=128,
    device="cpu",
    random_state=0,
)
est.fit(X, y)
print(f"neighbours with the same digit as their anchor: {est.neighbor_accuracy_:.1%}")
print("SCAN loss of each head:", np.round(est.head_losses_, 3), "kept:", est.best_head_)
confident = [r["confident_fraction"] for r in est.history_ if r["stage"] == "selflabel"]
print("self-labelling, fraction of confident images per epoch:", np.round(confident, 3))

# %%
# Score every stage
# -----------------
stages = {
    "k-means on\npretext features": "pretext_kmeans",
    "after SCAN": "scan",
    "after\nself-labelling": "selflabel",
}
scores = {name: evaluate_clustering(y, est.stage_labels_[key]) for name, key in stages.items()}
for name, values in scores.items():
    print(
        f"{name.replace(chr(10), ' '):32s}",
        "  ".join(f"{k.upper()} {v:.3f}" for k, v in values.items()),
    )

# %%
# Plot
# ----
# Left: the three scores per stage. Right: the training loss of each stage over its
# epochs, from ``history_``.
#
# Here the SCAN step clearly improves on k-means of the pretext features, while two
# epochs of self-labelling lower the scores again. That stage trains only on the
# predictions above the 0.99 confidence threshold (their fraction is printed above),
# against strongly augmented views, which are harsh on 64-pixel images after a short
# SCAN step. This is why ``deepclust demo`` sets
# ``selflabel_epochs=0``; compare ``stage_labels_['scan']`` with
# ``stage_labels_['selflabel']`` on your own data before relying on the last stage.
fig = plt.figure(figsize=(11, 4.5), layout="constrained")
grid = fig.add_gridspec(3, 2, width_ratios=[1.3, 1])
ax_scores = fig.add_subplot(grid[:, 0])
metrics = ["acc", "nmi", "ari"]
x = np.arange(len(stages))
for i, metric in enumerate(metrics):
    values = [scores[name][metric] for name in stages]
    bars = ax_scores.bar(x + (i - 1) * 0.27, values, 0.27, label=metric.upper())
    ax_scores.bar_label(bars, fmt="%.2f", fontsize=7)
ax_scores.set(xticks=x, xticklabels=list(stages), ylim=(0, 1), title="Quality after each stage")
ax_scores.legend(loc="lower right")

for row, stage in enumerate(["pretext", "scan", "selflabel"]):
    ax = fig.add_subplot(grid[row, 1])
    records = [r for r in est.history_ if r["stage"] == stage]
    ax.plot(
        [r["epoch"] for r in records], [r["loss"] for r in records], "o-", ms=3, color=f"C{row}"
    )
    ax.set_ylabel(f"{stage}\nloss", fontsize=8)
    ax.tick_params(labelsize=8)
    if row == 0:
        ax.set_title("Training loss of each stage, per epoch")
ax.set_xlabel("epoch of the stage")
plt.show()
