"""
====================================================
ClusterFit features under a linear probe
====================================================

:class:`~deepclust.ClusterFitTransformer` is a feature learner: it clusters the features
of a first network (here a short SimCLR pretext it trains itself) into many clusters and
trains a *fresh* network to predict those pseudo-labels. Its
:meth:`~deepclust.ClusterFitTransformer.transform` returns the fresh network's features.

The standard way to judge features is the *linear probe*: a linear classifier trained on
them with the labels of a training split, scored on a test split. As a scikit-learn
transformer, ClusterFit goes straight into a :class:`~sklearn.pipeline.Pipeline`; the
same probe on raw pixels is the baseline.
"""

# %%
# Two pipelines
# -------------
# ``y`` reaches ``ClusterFitTransformer.fit`` through the pipeline but is never used for
# its training: only the logistic regression sees the labels.
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from deepclust import ClusterFitTransformer
from deepclust.datasets import load_digits_images

torch.set_num_threads(2)
X, y = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=0.5, stratify=y, random_state=0
)

clusterfit_probe = make_pipeline(
    ClusterFitTransformer(
        n_clusters=50,
        pretext_epochs=15,
        max_epochs=12,
        batch_size=128,
        device="cpu",
        random_state=0,
    ),
    StandardScaler(),
    LogisticRegression(max_iter=2000),
)
pixel_probe = make_pipeline(
    FunctionTransformer(lambda images: images.reshape(len(images), -1) / 255.0),
    StandardScaler(),
    LogisticRegression(max_iter=2000),
)

# %%
# Fit and score
# -------------
# Both probes are scored with few labelled training images too, since a good
# representation should need fewer labels.
fractions = [0.05, 0.1, 0.25, 1.0]
rng = np.random.default_rng(0)
order = rng.permutation(len(X_train))

clusterfit_probe.fit(X_train, y_train)
features_train = clusterfit_probe[:-1].transform(X_train)  # ClusterFit + scaler
features_test = clusterfit_probe[:-1].transform(X_test)
print("ClusterFit feature size:", features_train.shape[1])

results = {"ClusterFit features": [], "raw pixels": []}
for fraction in fractions:
    subset = order[: int(fraction * len(order))]
    probe = LogisticRegression(max_iter=2000).fit(features_train[subset], y_train[subset])
    results["ClusterFit features"].append(probe.score(features_test, y_test))
    pixel_probe.fit(X_train[subset], y_train[subset])
    results["raw pixels"].append(pixel_probe.score(X_test, y_test))

for name, accuracies in results.items():
    print(f"{name:20s}", "  ".join(f"{a:.3f}" for a in accuracies))
print(f"full pipeline on the test split: {clusterfit_probe.score(X_test, y_test):.3f}")

# %%
# Plot
# ----
fig, ax = plt.subplots(figsize=(6, 4))
n_labels = [int(f * len(order)) for f in fractions]
for name, accuracies in results.items():
    ax.plot(n_labels, accuracies, "o-", label=name)
ax.set(
    xscale="log",
    xlabel="labelled training images",
    ylabel="test accuracy",
    title="Linear probe: logistic regression on features",
    xticks=n_labels,
    xticklabels=[str(n) for n in n_labels],
)
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()

# %%
# On 8x8 digits a linear model on raw pixels is a strong baseline, which a ClusterFit
# run of a few seconds on 900 images does not beat: the probe measures the features
# honestly, including when they are not better. ClusterFit is meant for large image
# collections and long pretext training, where the clusters of a pretrained network
# carry more than the pixels do; see :ref:`clusterfit` for when to choose it.
