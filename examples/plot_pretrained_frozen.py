"""
===================================================
A saved network as weights, frozen: heads only
===================================================

A network trained once can start the clustering of other collections:
``weights=`` loads it into the backbone and ``freeze_backbone=True`` computes its
features once and trains only the clustering heads on them. On a CPU this turns a fit
that trains a network into one that trains a few linear layers.

Here SCAN's contrastive pretext is trained on one half of scikit-learn's digits and its
backbone saved as a state dict, as ``torch.save`` writes it; the other half is then
clustered twice: with that file as frozen weights, and by a full SCAN fit that trains its
own pretext. The command line does the same with
``deepclust cluster FOLDER --backbone convnet-small --weights pretext.pth
--freeze-backbone``; a torchvision network with ImageNet weights is used the same way
(``--backbone resnet50 --weights IMAGENET1K_V2``), see :doc:`/user_guide/pretrained`.
"""

# %%
# A pretext network, trained on one collection and saved
# ------------------------------------------------------
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from deepclust import SCANClusterer
from deepclust.datasets import load_digits_images
from deepclust.metrics import cluster_accuracy

torch.set_num_threads(2)
X, y = load_digits_images()
first, second, y_second = X[::2], X[1::2], y[1::2]

# SCAN with no SCAN, head-search or self-labelling epoch trains its pretext only; both
# pretexts of this example train 30 epochs, to keep it short.
pretext = SCANClusterer(
    10,
    budget="fast",
    pretext_epochs=30,
    max_epochs=0,
    selflabel_epochs=0,
    n_head_candidates=0,
    head_warmup_epochs=0,
    device="cpu",
    random_state=0,
)
start = time.perf_counter()
pretext.fit(first)
pretext_seconds = time.perf_counter() - start
weights = Path(tempfile.mkdtemp()) / "pretext.pth"
torch.save(pretext.network_.backbone.state_dict(), weights)
recipe = pretext.recipe_["params"]
print(f"pretext: {recipe['pretext_epochs']} epochs on {len(first)} digits, "
      f"{pretext_seconds:.0f} s; saved {weights.name}")  # fmt: skip

# %%
# The other collection: frozen weights against a full fit
# -------------------------------------------------------
# The frozen fit must build the same architecture as the saved one (``backbone`` and the
# image size the pretext was trained at).
fits = {
    "frozen pretext weights": SCANClusterer(
        10,
        backbone=recipe["backbone"],
        image_size=recipe["image_size"],
        weights=str(weights),
        freeze_backbone=True,
        budget="fast",
        device="cpu",
        random_state=0,
    ),
    "full SCAN fit": SCANClusterer(
        10, budget="fast", pretext_epochs=30, device="cpu", random_state=0
    ),
}
seconds, accuracy = {}, {}
for name, est in fits.items():
    start = time.perf_counter()
    est.fit(second)
    seconds[name] = time.perf_counter() - start
    accuracy[name] = cluster_accuracy(y_second, est.labels_)
    print(f"{name:24s} {seconds[name]:6.1f} s  ACC {accuracy[name]:.3f}")

fig, (ax_time, ax_acc) = plt.subplots(1, 2, figsize=(7.5, 2.8))
names = list(fits)
ax_time.barh(names, [seconds[n] for n in names], color=["tab:green", "tab:gray"])
ax_time.set_xlabel("fit time on the second half (s)")
ax_acc.barh(names, [accuracy[n] for n in names], color=["tab:green", "tab:gray"])
ax_acc.set_xlim(0, 1)
ax_acc.set_xlabel("cluster accuracy")
ax_acc.set_yticks([])
fig.tight_layout()
plt.show()

# %%
# The clusters of the frozen fit
# ------------------------------
# Eight digits of each cluster, the most confident first.
frozen = fits["frozen pretext weights"]
confidence = frozen.predict_proba(second).max(axis=1)
fig, axes = plt.subplots(10, 8, figsize=(4.4, 5.6))
for k in range(10):
    members = np.flatnonzero(frozen.labels_ == k)
    members = members[np.argsort(-confidence[members])][:8]
    for j in range(8):
        ax = axes[k, j]
        ax.set_axis_off()
        if j < len(members):
            ax.imshow(np.asarray(second[members[j]]).squeeze(), cmap="gray_r")
fig.suptitle("frozen-weights clusters, one row each")
plt.show()

# %%
# The frozen fit only trains linear heads on fixed features, so it takes a fraction of
# the full fit's time; how close its clusters come depends on how well the saved network
# suits the new collection (here the same kind of images). ``recipe_['frozen_features']``
# records the recipe of the heads' training.
