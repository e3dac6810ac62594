"""
=================================================
Choosing the number of clusters with GridSearchCV
=================================================

Every deepclust estimator is a scikit-learn estimator, so
:class:`~sklearn.model_selection.GridSearchCV` can pick ``n_clusters``. Two ways:

* **with labels** (a labelled validation set exists): score the held-out clustering with
  :data:`deepclust.metrics.cluster_accuracy_scorer` and pass ``y`` to ``fit``. ``y`` is
  only used for scoring, never for training;
* **without labels**: leave ``scoring`` unset, and the search uses the estimator's own
  :meth:`~deepclust.DeepClusterEstimator.score`, the cosine silhouette of the predicted
  clusters on the learned features (higher is better).

:class:`~deepclust.DeepClusterEstimator` is used because it is the fastest of the four on
a CPU; the same code works with the other estimators.
"""

# %%
# The search
# ----------
import matplotlib.pyplot as plt
import torch
from sklearn.model_selection import GridSearchCV, KFold

from deepclust import DeepClusterEstimator
from deepclust.datasets import load_digits_images
from deepclust.metrics import cluster_accuracy_scorer

torch.set_num_threads(2)
X, y = load_digits_images()

# Few epochs: the two searches fit 2 x 5 x 2 = 20 models.
est = DeepClusterEstimator(max_epochs=6, pca_dim=32, batch_size=128, device="cpu", random_state=0)
param_grid = {"n_clusters": [6, 8, 10, 12, 14]}
cv = KFold(n_splits=2, shuffle=True, random_state=0)

# With labels: held-out Hungarian accuracy.
with_labels = GridSearchCV(est, param_grid, scoring=cluster_accuracy_scorer, cv=cv, refit=False)
with_labels.fit(X, y)

# Without labels: the estimator's own score (cosine silhouette).
label_free = GridSearchCV(est, param_grid, cv=cv, refit=False)
label_free.fit(X)

print("best by accuracy:  ", with_labels.best_params_)
print("best by silhouette:", label_free.best_params_)

# %%
# ``refit=False`` skips the final fit on all the data to keep the example short; with the
# default ``refit=True``, ``search.best_estimator_`` is ready to ``predict``.
#
# The scores per candidate
# ------------------------
counts = param_grid["n_clusters"]
fig, (ax_acc, ax_sil) = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
for ax, search, name in [
    (ax_acc, with_labels, "held-out cluster accuracy (uses y)"),
    (ax_sil, label_free, "held-out cosine silhouette (no labels)"),
]:
    mean = search.cv_results_["mean_test_score"]
    std = search.cv_results_["std_test_score"]
    ax.errorbar(counts, mean, yerr=std, fmt="o-", capsize=3)
    best = search.best_params_["n_clusters"]
    ax.axvline(best, color="tab:red", ls="--", lw=1, label=f"best: {best}")
    ax.set(xlabel="n_clusters", title=name, xticks=counts)
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()

# %%
# Accuracy needs a one-to-one match of clusters to classes, so it drops as soon as there
# are more (or fewer) clusters than digits. The silhouette needs no labels; it favours
# whatever count gives compact, well-separated clusters in the *learned* feature space,
# which need not be the number of classes a person had in mind. Use it to narrow down a
# range, and look at the clusters (:ref:`sphx_glr_auto_examples_plot_quickstart.py`)
# before settling.
for count, acc, sil in zip(
    counts, with_labels.cv_results_["mean_test_score"], label_free.cv_results_["mean_test_score"]
):
    print(f"n_clusters={count:2d}  accuracy {acc:.3f}  silhouette {sil:.3f}")
