"""
=====================================================
Clusters that follow colour, and what the fit does
=====================================================

Unsupervised clustering groups images by whatever separates them most easily. When the
colour of each image is random, that is the colour, not what the image shows. This
example recolours the digits of scikit-learn (a random digit colour on a random colour
gradient per image), clusters them with :class:`~deepclust.SCANClusterer` with no
invariance (``invariant_to=None``), reads the warning and the nuisance report of that
fit, then lets the default ``invariant_to='auto'`` fit again with the invariances the
report asks for.
"""

# %%
# A collection whose colours carry nothing of the class
# -----------------------------------------------------
# :func:`~deepclust.datasets.recolour_images` blends a random foreground colour into a
# random two-colour gradient, with the grey digit as the blending weight.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch

from deepclust import SCANClusterer
from deepclust.datasets import load_digits_images, recolour_images
from deepclust.diagnostics import NuisanceWarning
from deepclust.metrics import cluster_accuracy

torch.set_num_threads(2)
grey, y = load_digits_images()
X = recolour_images(grey, random_state=0)
print(X.shape, X.dtype)

# %%
# Clustering with nothing removed
# -------------------------------
# ``budget='fast'`` keeps the example short. After ``fit``, the estimator compares cheap
# image statistics with its clusters (``nuisance_report_``) and warns when one of them
# explains the clusters.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", NuisanceWarning)
    plain = SCANClusterer(n_clusters=10, budget="fast", invariant_to=None, random_state=0)
    plain.fit(X)
for warning in caught:
    print("warning:", warning.message)
for score in plain.nuisance_report_.scores[:4]:
    print(f"{score.name:22s} {score.score:.2f}")

# %%
# The default: fit again without what the clusters followed
# ---------------------------------------------------------
# With ``invariant_to='auto'`` (the default) the same first fit is followed by a second
# one with ``invariant_to=('colour', 'background')``, the options that remove the
# flagged statistics: the network reads each image through
# :class:`~deepclust.networks.InvariantInput` (the border's colour plane subtracted, one
# channel of colour distance, contrast normalised). ``recipe_['invariances']`` records
# what was applied and what the first fit followed.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", NuisanceWarning)
    auto = SCANClusterer(n_clusters=10, budget="fast", random_state=0).fit(X)
for warning in caught:
    print("warning:", warning.message)
invariances = auto.recipe_["invariances"]
print("applied:", invariances["declared"], invariances["input_filter"])
print("first fit followed:", [s["name"] for s in invariances["first_fit_flagged"]])
print(
    "top statistic now:",
    auto.nuisance_report_.top.name,
    f"{auto.nuisance_report_.top.score:.2f}",
)
for name, est in [("None", plain), ("'auto'", auto)]:
    print(f"invariant_to={name:7s} ACC against the digits {cluster_accuracy(y, est.labels_):.3f}")


# %%
# The two clusterings side by side
# --------------------------------
# One row per cluster, eight random members. On the left the rows are colours; on the
# right they are digits in every colour.
def montage(ax, labels, title, per_row=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for cluster in range(10):
        members = np.flatnonzero(labels == cluster)
        picks = rng.choice(members, min(per_row, len(members)), replace=False)
        row = np.zeros((8, 8 * per_row, 3), np.uint8)
        for i, index in enumerate(picks):
            row[:, 8 * i : 8 * i + 8] = X[index]
        rows.append(np.pad(row, ((1, 1), (0, 0), (0, 0)), constant_values=255))
    ax.imshow(np.concatenate(rows), interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()


fig, axes = plt.subplots(1, 2, figsize=(8, 5.5))
montage(axes[0], plain.labels_, "invariant_to=None: clusters of colours")
montage(axes[1], auto.labels_, "invariant_to='auto': digits")
fig.tight_layout()
plt.show()
