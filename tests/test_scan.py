"""SCANClusterer: mined neighbours, self-labelling without confident samples, digits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from deepclust import SCANClusterer
from deepclust._testing import fast_instance
from deepclust.datasets import load_digits_images
from deepclust.metrics import cluster_accuracy
from deepclust.training import Callback


def _toy_groups(n_per_group: int = 6, seed: int = 0):
    """Three groups of 4x4 images, each bright in its own quarter plus faint noise."""
    rng = np.random.default_rng(seed)
    images, groups = [], []
    for group, (row, col) in enumerate([(0, 0), (0, 2), (2, 0)]):
        for _ in range(n_per_group):
            image = rng.integers(0, 20, (4, 4))
            image[row : row + 2, col : col + 2] = rng.integers(200, 256, (2, 2))
            images.append(image)
            groups.append(group)
    return np.asarray(images, dtype=np.uint8), np.asarray(groups)


def test_neighbours_mined_on_a_toy_set_are_the_own_group():
    X, groups = _toy_groups()
    est = fast_instance(
        SCANClusterer, pretrained=nn.Flatten(), n_neighbors=5, max_epochs=1, selflabel_epochs=0
    ).fit(X, groups)
    assert est.neighbors_.shape == (18, 5)
    for i, row in enumerate(est.neighbors_):
        assert i not in row  # an image is not its own neighbour
        assert set(row) == set(np.flatnonzero(groups == groups[i])) - {i}
    assert est.neighbor_accuracy_ == 1.0


def test_selflabel_skips_batches_without_a_confident_sample(digits_small):
    X, _ = digits_small
    # invariant_to=None: a second fit under 'auto' would start the comparison elsewhere.
    est = fast_instance(
        SCANClusterer,
        max_epochs=2,
        selflabel_epochs=2,
        confidence_threshold=1 - 1e-12,
        invariant_to=None,
    )
    with pytest.warns(UserWarning, match="no sample with confidence above"):
        est.fit(X)
    records = [r for r in est.history_ if r.get("stage") == "selflabel"]
    assert len(records) == 2
    n_batches = int(np.ceil(60 / 32))
    assert all(r["skipped_batches"] == n_batches for r in records)
    assert all(r["confident_fraction"] == 0.0 for r in records)
    # No step was taken: the weights equal those of the same fit without self-labelling
    # (only BatchNorm's running statistics saw the skipped batches).
    reference = fast_instance(
        SCANClusterer, max_epochs=2, selflabel_epochs=0, invariant_to=None
    ).fit(X)
    for p, q in zip(est.network_.parameters(), reference.network_.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_selflabel_trains_when_samples_are_confident(digits_small):
    X, _ = digits_small
    est = fast_instance(SCANClusterer, selflabel_epochs=2, confidence_threshold=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est.fit(X)
    records = [r for r in est.history_ if r.get("stage") == "selflabel"]
    assert all(r["confident_fraction"] > 0 for r in records)


@pytest.mark.slow  # a quality fit on all 1,797 digits (about a minute)
def test_short_fit_on_digits_beats_kmeans_on_pixels(digits_kmeans_accuracy):
    X, y = load_digits_images()
    kmeans_acc = digits_kmeans_accuracy
    est = SCANClusterer(
        10,
        pretext_epochs=40,
        max_epochs=30,
        selflabel_epochs=2,
        lr=1e-3,
        batch_size=128,
        n_heads=2,
        device="cpu",
        random_state=0,
    ).fit(X, y)
    acc = cluster_accuracy(y, est.labels_)
    assert acc > kmeans_acc + 0.03, (acc, kmeans_acc)
    assert cluster_accuracy(y, est.stage_labels_["scan"]) > kmeans_acc


def test_over_clustering_spreads_samples_over_more_clusters_than_classes(digits_small):
    """With 12 clusters for 3 classes the entropy term keeps more than 3 clusters in use
    (with ``entropy_weight=0`` this fit collapses to 2), and mapping every cluster to its
    majority class still gives an accuracy above 0.6."""
    X, y = digits_small
    est = fast_instance(
        SCANClusterer,
        n_clusters=12,
        pretext_epochs=5,
        max_epochs=15,
        selflabel_epochs=0,
        n_neighbors=5,
    ).fit(X)
    assert est.predict_proba(X).shape == (len(X), 12)
    assert est.labels_.min() >= 0 and est.labels_.max() < 12
    assert len(np.unique(est.labels_)) > 3
    assert cluster_accuracy(y, est.labels_, mapping="majority") > 0.6


class _ParameterSnapshots(Callback):
    """After every epoch, copies of the network's backbone and head parameters."""

    def __init__(self):
        self.snapshots = []

    def on_epoch_end(self, trainer, record):
        network = trainer._modules[0]
        self.snapshots.append(
            (
                record["stage"],
                [p.detach().clone() for p in network.backbone.parameters()],
                [p.detach().clone() for p in network.heads.parameters()],
            )
        )


def _changed(before, after) -> bool:
    return any(not torch.equal(p, q) for p, q in zip(before, after, strict=True))


@pytest.mark.parametrize("warmup", [0, 1, 2])
def test_head_warmup_epochs_freeze_the_backbone_only_while_they_last(warmup, digits_small):
    X, _ = digits_small
    pretext = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
    recorder = _ParameterSnapshots()
    est = fast_instance(
        SCANClusterer,
        pretrained=pretext,
        max_epochs=3,
        selflabel_epochs=0,
        head_warmup_epochs=warmup,
    )
    est.fit(X, callbacks=[recorder])
    assert [stage for stage, _, _ in recorder.snapshots] == ["scan"] * 3
    backbones = [list(pretext.parameters())] + [b for _, b, _ in recorder.snapshots]
    heads = [h for _, _, h in recorder.snapshots]
    for epoch in range(3):
        # The backbone moves only in epochs after the warm-up.
        assert _changed(backbones[epoch], backbones[epoch + 1]) == (epoch >= warmup)
    for epoch in range(1, 3):
        assert _changed(heads[epoch - 1], heads[epoch])  # the heads train throughout


def test_head_search_starts_the_scan_step_from_the_lowest_loss_candidates(digits_small):
    X, _ = digits_small
    pretext = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU())
    est = fast_instance(
        SCANClusterer,
        pretrained=pretext,
        n_head_candidates=6,
        n_heads=2,
        head_search_epochs=5,
        max_epochs=0,
        selflabel_epochs=0,
        precision="float32",
    ).fit(X)  # losses compared to 1e-5
    assert [r["stage"] for r in est.history_] == ["head_search"] * 5
    assert est.candidate_losses_.shape == (6,)
    # No SCAN epoch ran, so the network's heads are the candidates it started from: their
    # losses over the data set are the two lowest candidate losses, in order.
    np.testing.assert_allclose(
        est.head_losses_, np.sort(est.candidate_losses_)[:2], rtol=1e-5, atol=1e-5
    )


def test_head_search_lowers_the_candidates_scan_loss(digits_small):
    X, _ = digits_small
    losses = {}
    for epochs in (1, 40):
        est = fast_instance(
            SCANClusterer,
            pretrained=nn.Flatten(),
            n_head_candidates=4,
            head_search_epochs=epochs,
            max_epochs=0,
            selflabel_epochs=0,
        )
        losses[epochs] = est.fit(X).candidate_losses_
    assert losses[40].max() < losses[1].min()


def test_fewer_head_candidates_than_heads_fails_before_training(digits_small):
    X, _ = digits_small
    est = fast_instance(SCANClusterer, n_head_candidates=1, n_heads=2)
    with pytest.raises(ValueError, match="n_head_candidates=1 is smaller than n_heads=2"):
        est.fit(X)
    assert not hasattr(est, "network_")


def test_scan_objective_by_hand_and_in_chunks():
    from deepclust.methods.scan import scan_objective

    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    neighbors = torch.tensor([[1], [0], [1]])
    # <p0,p1> = 0.74 twice, <p2,p1> = 0.38; mean assignment (2/3, 1/3).
    consistency = -(2 * np.log(0.74) + np.log(0.38)) / 3
    negative_entropy = (2 / 3) * np.log(2 / 3) + (1 / 3) * np.log(1 / 3)
    expected = consistency + 5.0 * negative_entropy
    assert scan_objective(probs, neighbors, 5.0) == pytest.approx(expected, rel=1e-6)

    generator = torch.Generator().manual_seed(0)
    probs = torch.rand(50, 7, generator=generator).softmax(1)
    neighbors = torch.randint(0, 50, (50, 4), generator=generator)
    whole = scan_objective(probs, neighbors, 2.0)
    # One anchor per chunk (max_elements below one anchor's 4 x 7 values) gives the same.
    assert scan_objective(probs, neighbors, 2.0, max_elements=10) == pytest.approx(whole)
