"""Short fits on scikit-learn's digits give the labels recorded before the estimators were
restructured into the method registry (``tests/data/recorded_labels_digits.npz``).

Recorded and checked on one machine with torch 2.14 on the CPU, one thread, where the
labels match exactly; the test allows 1 % of the labels to differ so that another CPU's
floating-point rounding does not fail it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import deepclust
from deepclust.datasets import load_digits_images

RECORDED = Path(__file__).parent / "data" / "recorded_labels_digits.npz"

#: Estimator class name -> parameters of the recorded fit (seconds each on one core).
RECORDED_PARAMS = {
    "SelfLabelClusterer": dict(
        n_clusters=10, max_epochs=3, n_label_updates=2, batch_size=128, device="cpu",
        random_state=0,
    ),
    "DeepClusterEstimator": dict(
        n_clusters=10, max_epochs=2, pca_dim=16, batch_size=128, device="cpu", random_state=0,
    ),
    "SCANClusterer": dict(
        n_clusters=10, pretext_epochs=2, max_epochs=2, selflabel_epochs=1, n_heads=2,
        n_head_candidates=4, head_search_epochs=2, lr=1e-3, batch_size=128, device="cpu",
        random_state=0,
    ),
    "ClusterFitTransformer": dict(
        n_clusters=10, pretext_epochs=2, max_epochs=2, n_subclusters=30, batch_size=128,
        device="cpu", random_state=0,
    ),
}


@pytest.mark.parametrize("name", sorted(RECORDED_PARAMS))
def test_labels_match_the_recorded_ones(name):
    X, _ = load_digits_images()
    recorded = np.load(RECORDED)
    estimator = getattr(deepclust, name)(**RECORDED_PARAMS[name]).fit(X)
    for key, labels in ((name, estimator.labels_), (name + ".predict", estimator.predict(X))):
        agreement = float(np.mean(np.asarray(labels) == recorded[key]))
        assert agreement >= 0.99, f"{key}: {agreement:.4f} of the labels as recorded"
