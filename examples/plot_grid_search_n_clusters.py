"""
=================================================
Choosing the number of clusters with GridSearchCV
=================================================

Every deepclust estimator is a scikit-learn estimator, so
:class:`~sklearn.model_selection.GridSearchCV` can pick ``n_clusters``. Two ways:

* **with labels** (a labelled validation set exists): score the held-out clustering with
  :data:`deepclust.metrics.cluster_accuracy_scorer` and pass ``y`` to ``fit``. ``y`` is
  only used for scoring, never for training;
* **without labels**: score with the estimator's own
  :meth:`~deepclust.DeepClusterEstimator.score` (what ``GridSearchCV`` uses when
  ``scoring`` is unset; :func:`deepclust.metrics.silhouette_scorer` is the same as a
  scorer): the cosine silhouette of the predicted clusters on the learned features
  (higher is better).

:func:`deepclust.model_selection.choose_n_clusters` is the label-free search built for
this: it fits every candidate on all the data (one fit per candidate and seed, sharing
what does not depend on ``n_clusters`` where the method has such a stage, e.g. SCAN's
pretext network), scores it by the same silhouette and two other label-free scores, lets
the three vote (each ranks the candidates; the most points win), and returns a table, a
curve and the chosen count.

:class:`~deepclust.DeepClusterEstimator` is used because it is the fastest of the four on
a CPU; the same code works with the other estimators.
"""

# %%
# The grid search
# ---------------
# One search computes both scores: each fit is scored on its held-out fold by accuracy
# (which uses ``y``) and by the silhouette (which does not).
import matplotlib.pyplot as plt
import torch
from sklearn.model_selection import GridSearchCV, KFold

from deepclust import DeepClusterEstimator
from deepclust.datasets import load_digits_images
from deepclust.metrics import cluster_accuracy_scorer, silhouette_scorer
from deepclust.model_selection import choose_n_clusters

torch.set_num_threads(2)
X, y = load_digits_images()

# Few epochs: the grid search fits 5 x 2 = 10 models on half the data each.
est = DeepClusterEstimator(max_epochs=5, pca_dim=32, batch_size=128, device="cpu", random_state=0)
counts = [6, 8, 10, 12, 14]
cv = KFold(n_splits=2, shuffle=True, random_state=0)
scoring = {"accuracy": cluster_accuracy_scorer, "silhouette": silhouette_scorer}
grid = GridSearchCV(est, {"n_clusters": counts}, scoring=scoring, cv=cv, refit=False)
grid.fit(X, y)  # y only reaches the accuracy scorer


def grid_pick(metric: str) -> int:
    """The count with the best mean held-out score for ``metric``."""
    return counts[int(grid.cv_results_[f"rank_test_{metric}"].argmin())]


print("GridSearchCV, best by accuracy:  ", grid_pick("accuracy"))
print("GridSearchCV, best by silhouette:", grid_pick("silhouette"))

# %%
# ``refit=False`` skips the final fit on all the data to keep the example short; with
# ``refit="silhouette"``, ``grid.best_estimator_`` is ready to ``predict``.
#
# The label-free sweep
# --------------------
# :func:`~deepclust.model_selection.choose_n_clusters` needs no ``cv``: every candidate is
# fitted once on all the images (more ``seeds`` give the spread of the score) and scored
# on them. Its ``best_estimator_`` is the chosen fit.
search = choose_n_clusters(est, X, counts, seeds=(0,))
print("choose_n_clusters picks:", search.best_n_clusters_)
print("silhouette by candidate:", {k: round(v, 3) for k, v in search.mean_scores().items()})
print("points of the vote:", search.votes)

# %%
# The scores per candidate
# ------------------------
# Left and middle: the grid search's held-out scores (mean and spread over the two folds)
# and its pick; right: :meth:`~deepclust.model_selection.NClustersSearch.plot` draws the
# sweep's silhouette curve and the vote's pick.
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for ax, metric, name in [
    (axes[0], "accuracy", "GridSearchCV: held-out accuracy (uses y)"),
    (axes[1], "silhouette", "GridSearchCV: held-out silhouette"),
]:
    mean = grid.cv_results_[f"mean_test_{metric}"]
    std = grid.cv_results_[f"std_test_{metric}"]
    ax.errorbar(counts, mean, yerr=std, fmt="o-", capsize=3)
    best = grid_pick(metric)
    ax.axvline(best, color="tab:red", ls="--", lw=1, label=f"best: {best}")
    ax.set(xlabel="n_clusters", title=name, xticks=counts)
    ax.grid(alpha=0.3)
    ax.legend()
search.plot(ax=axes[2])
axes[2].set(title=f"choose_n_clusters: vote's pick {search.best_n_clusters_}", xticks=counts)
axes[2].grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %%
# Accuracy needs a one-to-one match of clusters to classes, so it drops as soon as there
# are more (or fewer) clusters than digits. The silhouette needs no labels; it favours
# whatever count gives compact, well-separated clusters in the *learned* feature space,
# which need not be the number of classes a person had in mind. The grid search scores
# models fitted on half the images, the sweep models fitted on all of them, so their
# picks can differ with so short a training. Use either to narrow down a range, and look
# at the clusters (:ref:`sphx_glr_auto_examples_plot_quickstart.py`) before settling;
# ``deepclust cluster SOURCE --n-clusters auto`` runs the sweep and shows its table and
# curve in ``report.html``.
sweep = search.mean_scores()
for i, count in enumerate(counts):
    acc = grid.cv_results_["mean_test_accuracy"][i]
    sil = grid.cv_results_["mean_test_silhouette"][i]
    print(
        f"n_clusters={count:2d}  grid accuracy {acc:.3f}  grid silhouette {sil:.3f}  "
        f"sweep silhouette {sweep[count]:.3f}"
    )
