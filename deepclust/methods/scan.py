"""SCAN: contrastive pretext, nearest-neighbour consistency, confident self-labelling."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from deepclust._utils import to_numpy
from deepclust.augment import AUGMENTATION_POLICIES
from deepclust.cluster import kmeans, knn
from deepclust.losses import ConfidenceCrossEntropyLoss, SCANLoss
from deepclust.methods._base import BaseDeepClusterer
from deepclust.methods._docs import fill_doc
from deepclust.methods._feature_source import check_feature_source, resolve_feature_source
from deepclust.methods._fit_state import FitState
from deepclust.methods._registry import MethodSpec, register_method
from deepclust.methods._shared_stage import pretext_only_fit
from deepclust.methods._stages import (
    contrastive_stage,
    extract_features,
    head_probabilities,
    make_augment,
    make_fetch,
)
from deepclust.methods._stages import pretext_and_main_epochs as _pretext_and_main_epochs
from deepclust.networks import INPUT_INVARIANCES, ClusteringNetwork, StackedLinearHeads
from deepclust.recipes import DataFacts, contrastive_pretext, epochs_for, image_settings
from deepclust.training import Stage

__all__ = ["SCANClusterer", "SCANFit", "scan_objective", "scan_recipe"]


def scan_objective(
    probs: torch.Tensor,
    neighbors: torch.Tensor,
    entropy_weight: float,
    max_elements: int = 1 << 24,
) -> float:
    """SCAN loss of soft assignments ``probs (N, K)`` over the data set, all neighbours.

    ``-mean log <p_i, p_j>`` over every anchor ``i`` and each of its mined neighbours ``j``,
    minus ``entropy_weight`` times the entropy of the mean assignment: the quantity the
    SCAN step minimises batch by batch, used to rank heads. Anchors are taken in chunks
    of at most ``max_elements`` gathered values, so memory stays bounded for large N, K.

    Parameters
    ----------
    probs : torch.Tensor of shape (N, K)
        Soft cluster assignments of every sample (rows of probabilities).
    neighbors : torch.Tensor or ndarray of int of shape (N, n_neighbors)
        Indices of each sample's mined neighbours.
    entropy_weight : float
        Weight ``lambda`` of the entropy term, ``>= 0``.
    max_elements : int, default=2**24
        Upper bound on the gathered neighbour probabilities held at once.
    """
    n_neighbors = neighbors.shape[1]
    chunk = max(1, max_elements // max(1, n_neighbors * probs.shape[1]))
    log_similarity = 0.0
    for start in range(0, len(probs), chunk):
        anchors = probs[start : start + chunk]
        gathered = probs[neighbors[start : start + chunk]]
        similarity = torch.einsum("nk,njk->nj", anchors, gathered).clamp_min(1e-8)
        log_similarity += float(similarity.log().sum())
    mean = probs.mean(0).clamp_min(1e-8)
    consistency = -log_similarity / (len(probs) * n_neighbors)
    return consistency + entropy_weight * float((mean * mean.log()).sum())


@dataclass
class SCANFit(FitState):
    """One SCAN fit: the network, the mined neighbours, the candidate heads and the head
    kept for self-labelling."""

    checkpoint_fields: ClassVar[dict[str, str]] = {"best_head": "int", "neighbors": "array"}

    network: ClusteringNetwork = field(init=False)
    trainable_backbone: bool = field(init=False, default=True)
    neighbors: np.ndarray | None = field(init=False, default=None)
    pretext_features: torch.Tensor | None = field(init=False, default=None)
    candidates: StackedLinearHeads | None = field(init=False, default=None)
    candidate_losses: list[float] | None = field(init=False, default=None)
    head_losses: list[float] = field(init=False, default_factory=list)
    best_head: int = field(init=False, default=0)
    scan_labels: np.ndarray | None = field(init=False, default=None)
    backbone_frozen: bool = field(init=False, default=False)
    confident_seen: list[int] = field(init=False, default_factory=lambda: [0, 0])
    _search_inputs: tuple | None = field(init=False, default=None, repr=False)

    def __post_init__(self):
        est, source = self.estimator, self.source
        if est.pretrained is None:
            network = est._new_network(source, n_heads=est.n_heads, projection_dim=128)
        else:
            features_of = resolve_feature_source(est.pretrained)
            stats = features_of.stats
            if stats is None:  # the module reads raw [0, 1] input
                width = source.shape[0]
                stats = (np.zeros(width, np.float32), np.ones(width, np.float32))
            network = est._new_network(
                source,
                n_heads=est.n_heads,
                backbone=features_of.backbone,
                stats=stats,
                input_filter=features_of.input_filter,
                invariant_input=False,
            )
            self.trainable_backbone = features_of.trainable
        self.network = network.to(self.device)
        if est.n_head_candidates:
            self.candidates = StackedLinearHeads(
                self.network.n_features, est.n_clusters, est.n_head_candidates
            ).to(self.device)

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.network, self.candidates) if m is not None]

    @property
    def heads_only(self) -> bool:
        """Whether the SCAN and self-labelling steps leave the backbone as it is."""
        return self.estimator.update_cluster_head_only or not self.trainable_backbone

    def stages(self) -> list[Stage]:
        est = self.estimator
        stages = []
        if est.pretrained is None and est.pretext_epochs > 0:
            stages.append(
                contrastive_stage(
                    self.network,
                    self.source,
                    self.device,
                    n_epochs=est.pretext_epochs,
                    lr=est.pretext_lr,
                    temperature=est.temperature,
                    augmentation=est.pretext_augmentation,
                    invariances=est._invariances(),
                )
            )
        if self.candidates is not None:
            stages.append(self.head_search_stage())
        return stages + [self.scan_stage(), self.selflabel_stage()]

    # ------------------------------------------------------------------ stages
    def head_search_stage(self) -> Stage:
        """Candidate heads trained with the SCAN loss on the frozen pretext features."""
        criterion = SCANLoss(entropy_weight=self.estimator.entropy_weight)

        def compute_loss(indices):
            features, neighbors = self.search_inputs()
            anchors = torch.as_tensor(indices, device=self.device)
            column = torch.randint(0, neighbors.shape[1], (len(anchors),)).to(self.device)
            partners = neighbors[anchors, column]
            logits = self.candidates(torch.cat([features[anchors], features[partners]]))
            total, _, _ = criterion(*logits.float().chunk(2, dim=1))
            return total.sum()

        return Stage(
            name="head_search",
            n_epochs=self.estimator.head_search_epochs,
            n_samples=len(self.source),
            compute_loss=compute_loss,
            modules=[self.candidates],
            optimizer="adam",
            lr=1e-3,
            weight_decay=1e-4,
            lr_schedule="constant",
            on_stage_begin=self.mine_neighbors,
        )

    def augment_invariances(self) -> tuple[str, ...]:
        """The declared invariances the augmentations apply: with a ``pretrained``
        network, which reads its input unfiltered, only those without an input filter."""
        declared = self.estimator._invariances()
        if self.estimator.pretrained is None:
            return declared
        return tuple(name for name in declared if name not in INPUT_INVARIANCES)

    def scan_stage(self) -> Stage:
        """The SCAN loss on anchors and their mined neighbours, under augmentation."""
        est, device, network = self.estimator, self.device, self.network
        augment = make_augment(est.augmentation, self.source, self.augment_invariances())
        criterion = SCANLoss(entropy_weight=est.entropy_weight)
        optimizer, lr_schedule = est._training_settings("adam", "constant")

        def compute_loss(batch):
            indices, anchors = batch
            both = augment(
                torch.cat([anchors, self.neighbor_batch(indices)]).to(device, non_blocking=True)
            )
            if self.backbone_frozen:  # no gradient reaches the backbone: Adam skips it
                with torch.no_grad():
                    features = network.features(both)
                logits = network.heads(features)
            else:
                logits = network(both)
            losses = [criterion(*head.float().chunk(2))[0] for head in logits]
            return torch.stack(losses).sum()

        return Stage(
            name="scan",
            n_epochs=est.max_epochs,
            n_samples=len(self.source),
            compute_loss=compute_loss,
            modules=[network],
            parameters=self.trained_parameters(),
            fetch=make_fetch(self.source, device),
            optimizer=optimizer,
            lr=est.lr,
            weight_decay=1e-4,
            lr_schedule=lr_schedule,
            on_epoch_begin=self.set_backbone_frozen,
            on_stage_begin=self.begin_scan,
        )

    def selflabel_stage(self) -> Stage:
        """Cross-entropy of a strong view against the confident argmax of a weak view."""
        est, device, network = self.estimator, self.device, self.network
        weak = make_augment("weak", self.source, self.augment_invariances())
        strong = make_augment("strong", self.source, self.augment_invariances())
        criterion = ConfidenceCrossEntropyLoss(threshold=est.confidence_threshold)
        optimizer, lr_schedule = est._training_settings("adam", "constant")

        def compute_loss(batch):
            _, x = batch
            x = x.to(device, non_blocking=True)
            with torch.no_grad():
                weak_logits = network(weak(x))[self.best_head]
            strong_logits = network(strong(x))[self.best_head]
            loss, n_confident = criterion(weak_logits.float(), strong_logits.float())
            self.confident_seen[0] += n_confident
            self.confident_seen[1] += len(x)
            return loss

        return Stage(
            name="selflabel",
            n_epochs=est.selflabel_epochs,
            n_samples=len(self.source),
            compute_loss=compute_loss,
            modules=[network],
            parameters=self.trained_parameters(),
            fetch=make_fetch(self.source, device),
            optimizer=optimizer,
            lr=est.lr if est.selflabel_lr is None else est.selflabel_lr,
            weight_decay=1e-4,
            lr_schedule=lr_schedule,
            on_stage_begin=self.choose_head,
            on_epoch_end=self.confident_fraction,
        )

    # ------------------------------------------------------------------ steps
    def trained_parameters(self) -> list[torch.Tensor]:
        """The SCAN and self-labelling steps' parameters (never the projection head)."""
        if self.heads_only:
            return list(self.network.heads.parameters())
        return [
            p for name, p in self.network.named_parameters() if not name.startswith("projection")
        ]

    def set_backbone_frozen(self, epoch: int) -> None:
        """Freeze the backbone in the warm-up epochs (and throughout when heads only).

        Parameters
        ----------
        epoch : int
            The SCAN stage's epoch about to run, from 0; frozen while it is below
            ``head_warmup_epochs``.
        """
        est = self.estimator
        warmup = min(est.head_warmup_epochs, est.max_epochs - 1)  # the backbone trains too
        self.backbone_frozen = self.heads_only or epoch < warmup

    def neighbor_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """One random mined neighbour of each anchor, loaded.

        The picks come from torch's generator (saved in checkpoints), on the main thread,
        so a resumed fit draws the same pairs as an uninterrupted one.

        Parameters
        ----------
        indices : torch.Tensor of int64 of shape (B,)
            Sample indices of the batch's anchors (on the CPU).
        """
        neighbors = torch.from_numpy(self.neighbors[indices.numpy()])
        column = torch.randint(0, neighbors.shape[1], (len(indices), 1))
        return self.source.load(neighbors.gather(1, column).squeeze(1).numpy())

    def confident_fraction(self, epoch: int) -> dict:
        """The epoch's fraction of samples above the confidence threshold.

        Parameters
        ----------
        epoch : int
            The self-labelling stage's epoch that ended (unused: the counts are reset
            every epoch).
        """
        confident, seen = self.confident_seen
        self.confident_seen = [0, 0]
        return {"confident_fraction": confident / max(1, seen)}

    def mine_neighbors(self) -> None:
        """The nearest neighbours of every sample on the normalised backbone features."""
        features = extract_features(
            self.network,
            self.source,
            self.device,
            self.context.inference_batch_size,
            progress=self.context.progress("mining neighbours"),
        )
        self.check_finite(features, "the features for the neighbour search")
        normalized = nn.functional.normalize(features, dim=1)
        indices, _ = knn(
            normalized, self.estimator.n_neighbors, metric="cosine", device=self.device
        )
        self.neighbors = to_numpy(torch.as_tensor(indices)).astype(np.int64)
        self.pretext_features = features
        self._search_inputs = None

    def search_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pretext features and neighbours on the device, for the head search.

        Mined again when a resumed fit lacks the features (checkpoints keep only the
        neighbours); moved to the device once.
        """
        if self.pretext_features is None:
            self.mine_neighbors()
        if self._search_inputs is None:
            self._search_inputs = (
                self.pretext_features.to(self.device),
                torch.as_tensor(self.neighbors).to(self.device),
            )
        return self._search_inputs

    def begin_scan(self) -> None:
        """Mine the neighbours (unless the head search did) and load the searched heads."""
        if self.candidates is None:
            if self.neighbors is None:
                self.mine_neighbors()
            return
        features, neighbors = self.search_inputs()
        losses = []
        with torch.no_grad():
            for weight, bias in zip(self.candidates.weight, self.candidates.bias):
                probs = torch.softmax(torch.addmm(bias, features, weight.t()).float(), dim=1)
                losses.append(scan_objective(probs, neighbors, self.estimator.entropy_weight))
        self.candidate_losses = losses
        for head, index in zip(self.network.heads, np.argsort(losses)):
            self.candidates.copy_to(int(index), head)

    def head_probabilities(self) -> list[torch.Tensor]:
        """Every head's soft assignment of every sample."""
        return head_probabilities(
            self.network, self.source, self.device, self.context.inference_batch_size
        )

    def choose_head(self) -> None:
        """Keep the head with the lowest SCAN loss over the data set; note its labels."""
        neighbors = torch.as_tensor(self.neighbors)
        probs = self.head_probabilities()
        self.check_finite(probs, "the clustering heads' probabilities")
        self.head_losses = [
            scan_objective(p, neighbors, self.estimator.entropy_weight) for p in probs
        ]
        self.best_head = int(np.argmin(self.head_losses))
        self.scan_labels = self.current_labels()

    def current_labels(self) -> np.ndarray:
        """The kept head's argmax for every sample."""
        probs = self.head_probabilities()[self.best_head]
        return to_numpy(probs.argmax(1)).astype(np.int64)

    # ------------------------------------------------------------------ results
    def fitted_attributes(self, history: list[dict]) -> dict:
        est = self.estimator
        if self.neighbors is None:  # resumed past the mining step
            self.mine_neighbors()
        if est.selflabel_epochs == 0:
            self.choose_head()
        self._warn_if_nothing_confident(history)
        labels = self.current_labels()
        fitted = {
            "network_": self.network,
            "labels_": labels,
            "stage_labels_": self.stage_labels(labels),
            "neighbors_": self.neighbors,
            "best_head_": self.best_head,
            "head_losses_": np.asarray(self.head_losses),
        }
        if self.candidate_losses is not None:
            fitted["candidate_losses_"] = np.asarray(self.candidate_losses)
        if self.context.y is not None:
            y = np.asarray(self.context.y)
            fitted["neighbor_accuracy_"] = float((y[self.neighbors] == y[:, None]).mean())
        return fitted

    def stage_labels(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Labels after each stage, k-means on the pretext features included.

        Parameters
        ----------
        labels : ndarray of int64 of shape (n_samples,)
            The fit's final labels (``labels_``); also the SCAN stage's when no labels were
            kept from before self-labelling.
        """
        stage_labels = {
            "scan": labels if self.scan_labels is None else self.scan_labels,
            "selflabel": labels,
        }
        if self.pretext_features is not None:
            result = kmeans(
                nn.functional.normalize(self.pretext_features, dim=1),
                self.estimator.n_clusters,
                random_state=self.seed,
                device=self.device,
            )
            stage_labels["pretext_kmeans"] = to_numpy(torch.as_tensor(result.labels)).astype(
                np.int64
            )
        return stage_labels

    def _warn_if_nothing_confident(self, history: list[dict]) -> None:
        est = self.estimator
        confident = [r["confident_fraction"] for r in history if "confident_fraction" in r]
        if est.selflabel_epochs > 0 and confident and max(confident) == 0.0:
            warnings.warn(
                "Self-labelling found no sample with confidence above "
                f"confidence_threshold={est.confidence_threshold}; the self-labelling stage "
                "changed nothing. Lower confidence_threshold or train the SCAN step longer.",
                UserWarning,
                stacklevel=5,
            )


def scan_recipe(facts: DataFacts, budget: str) -> dict:
    """SCAN's settings for the data (the method's ``recipe``; see :mod:`deepclust.recipes`).

    Parameters
    ----------
    facts : DataFacts
        The data and device.
    budget : {'fast', 'default', 'thorough'}
        The training budget.

    Returns
    -------
    dict
        Values of the parameters left at ``'auto'``.
    """
    scan_epochs = epochs_for(facts, budget, 200_000, at_least=5)
    return {
        **image_settings(facts),
        # The pretext grows as n ** 0.65 above 5,000 samples (64 epochs at 70,000): on
        # Fashion-MNIST 70,000, SCAN ACC 0.747 / 0.735 / 0.735 (seeds 0 / 1 / 2) against
        # 0.731 / 0.724 / 0.678 after the square root's 43, at the same neighbour accuracy.
        **contrastive_pretext(facts, budget, growth=0.65),
        # 200,000 images at 5,000 samples (40 epochs), 750,000 at 70,000 (11 epochs): on
        # Fashion-MNIST 70,000, 10 epochs of the SCAN step followed the pretext's gains.
        "max_epochs": scan_epochs,
        # lr 1e-3: the paper's 1e-4 moved the clusters too little in 10 epochs.
        "lr": 1e-3,
        # 20 candidate heads ranked by their SCAN loss (correlation with ACC -0.88 and
        # -0.90 on two pretexts), the best started from: 0.716 / 0.710 against 0.570 /
        # 0.704 with random heads.
        "n_head_candidates": 20,
        # Heads-only warm-up: SCAN-step ACC 0.586 / 0.650 against 0.557 / 0.537 without.
        "head_warmup_epochs": max(1, min(5, scan_epochs // 5)),
        # One self-labelling epoch on 70,000 images gave +0.01 to +0.02 ACC, three shrank a
        # cluster; below 10,000 samples the confident set is too small to add to it.
        "selflabel_epochs": 1 if facts.n_samples >= 10_000 else 0,
    }


@register_method
@fill_doc
class SCANClusterer(BaseDeepClusterer):
    """SCAN: semantic clustering by adopting nearest neighbours (Van Gansbeke et al., 2020).

    Three stages, all run by :meth:`fit`:

    1. **Pretext** (``pretext_epochs``): SimCLR contrastive learning, two SimCLR-strength
       views per image, NT-Xent loss (temperature ``temperature``) on a 128-d projection
       head. Skipped when ``pretrained`` is given.
    2. **SCAN** (``max_epochs``): mine the ``n_neighbors`` nearest neighbours of every image
       on the L2-normalised pretext features, then train ``n_heads`` clustering heads with
       the SCAN loss: ``-log <p(x), p(neighbour)>`` minus ``entropy_weight`` times the
       entropy of the batch-mean prediction. The head with the lowest SCAN loss over the
       data is kept.
       With ``n_head_candidates`` set, the heads do not start at random: that many candidate
       heads are first trained with the same loss on the frozen pretext features (no
       augmentation, no pass through the backbone, so it takes seconds) for
       ``head_search_epochs``, and the SCAN step starts from the lowest-loss ones.
    3. **Self-labelling** (``selflabel_epochs``): fine-tune on confident samples only (max
       probability on a weak view above ``confidence_threshold``) by class-balanced
       cross-entropy of a strong view against the weak view's argmax. Batches without a
       confident sample are skipped.

    Parameters
    ----------
    n_clusters : int, default=10
        %(n_clusters_desc)s
        Every head has ``n_clusters`` outputs.
    %(backbone)s
    %(weights)s
    %(freeze_backbone)s
        Ignored when ``pretrained`` is given: its network (or fixed features) is the
        backbone then.
    %(pretrained)s

        SCAN mines its neighbours on these features and, when they come from a network,
        starts its backbone from that network's weights (trained further in the SCAN and
        self-labelling steps unless ``update_cluster_head_only``); the pretext stage is
        skipped. With a transformer or a callable, only the clustering heads are trained,
        on its fixed features.
    %(budget)s
    %(invariant_to)s
    %(merge_to)s
    n_neighbors : int, default=20
        Neighbours mined per sample (``>= 1`` and fewer than the samples), by cosine
        similarity of the L2-normalised pretext (or ``pretrained``) features; each SCAN
        step pairs every anchor with one of its neighbours, drawn at random. 20 is the
        paper's value.
    n_heads : int, default=5
        Clustering heads trained in the SCAN step (``>= 1``); the lowest-loss one is kept.
    entropy_weight : float, default=5.0
        Weight (``>= 0``) of the entropy of the batch-mean prediction in the SCAN loss,
        which keeps the samples from collapsing into a few clusters: larger spreads them
        more evenly over the clusters. 5.0 is the paper's value.
    n_head_candidates : int or 'auto', default='auto'
        Candidate heads searched before the SCAN step (see above); the ``n_heads``
        lowest-loss ones start it. ``0`` starts from random heads, as the paper; when set,
        it must be at least ``n_heads``. ``'auto'``: the recipe's, 20. The search uses Adam
        at ``1e-3`` with a constant rate and the SCAN step's batch size.
    head_search_epochs : int, default=20
        Epochs (``>= 1``) of the candidate search (over the precomputed features).
    confidence_threshold : float, default=0.99
        Probability, in ``(0, 1)``, that a sample's prediction on a weak view must exceed
        for the sample to be self-labelled in the self-labelling stage; 0.99 is the
        paper's value. A :class:`UserWarning` says so when no sample ever exceeds it.
    update_cluster_head_only : bool, default=False
        Freeze the backbone in the SCAN and self-labelling steps and train only the
        clustering heads (the paper's ablation; faster, usually worse).
    head_warmup_epochs : int or 'auto', default='auto'
        First epochs of the SCAN step that train only the clustering heads (the backbone
        frozen) before the whole network is updated, so that randomly initialised heads do
        not pull the pretext features apart while they settle; at most ``max_epochs - 1``,
        so that the backbone trains in the last epoch at least. 0 is the paper's choice;
        ``'auto'``: the recipe's, a fifth of ``max_epochs`` (1 to 5).
    %(temperature)s
    %(pretext_augmentation)s
    augmentation : {'simclr', 'weak', 'strong', 'none'} or nn.Module, default='weak'
        Augmentation of anchors and neighbours in the SCAN step (``'strong'`` is the
        reference's choice for natural images; see the user guide for small images). The
        self-labelling step always compares a ``'weak'`` and a ``'strong'`` view.
        %(augmentation_desc)s
    pretext_epochs : int or 'auto', default='auto'
        %(pretext_epochs_desc)s
        SCAN's reference trains its pretext for 500 epochs on a GPU.
    max_epochs : int or 'auto', default='auto'
        Epochs of the SCAN step (``>= 0``). ``'auto'``: the recipe's, 200,000 images seen
        at 5,000 samples and ``budget='default'`` (40 epochs), at least 5.
    selflabel_epochs : int or 'auto', default='auto'
        Epochs of the self-labelling stage (``>= 0``; ``0`` skips it); the paper trains
        200. ``'auto'``: the recipe's, 1 from 10,000 samples on, else 0.
    %(pretext_lr)s
    lr : float or 'auto', default='auto'
        Learning rate of the SCAN step (``> 0``; ``'auto'``: the recipe's 1e-3, the paper's
        Adam value is 1e-4), and of
        self-labelling when ``selflabel_lr`` is ``None``; both steps use weight decay
        1e-4.
    selflabel_lr : float or None, default=1e-4
        Learning rate of self-labelling (the paper's value); ``None`` uses ``lr``. Keep it
        small: at the SCAN step's larger rates the confident set drifts and collapses.
    %(optimizer)s
        the SCAN and self-labelling steps, Adam.
    %(lr_schedule)s
        the SCAN and self-labelling steps, ``'constant'``.
    %(device)s
    %(precision)s
    %(batch_size)s
    %(image_size)s
    %(on_bad_image)s
    %(cache_dir)s
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        ``predict`` of the training data after the last stage.
    neighbors_ : ndarray of shape (n_samples, n_neighbors)
        Indices of the mined neighbours.
    neighbor_accuracy_ : float
        Fraction of mined neighbours sharing their anchor's ``y`` (only when ``fit`` got
        ``y``; ``y`` is never used for training).
    best_head_ : int
        Index of the head kept after the SCAN step (the lowest of ``head_losses_``), used
        by self-labelling, ``labels_``, ``predict`` and ``predict_proba``.
    stage_labels_ : dict of str to ndarray
        Labels of the training data after each stage: ``'pretext_kmeans'`` (k-means on the
        pretext features), ``'scan'`` and ``'selflabel'``, for comparing the stages.
    head_losses_ : ndarray of shape (n_heads,)
        SCAN loss of every head over the data set (the lowest is ``best_head_``).
    candidate_losses_ : ndarray of shape (n_head_candidates,)
        SCAN loss over the data set of every searched candidate head, in the order they
        were drawn (only with ``n_head_candidates``).
    %(network_)s
        Without ``pretrained`` it also holds the pretext's 128-d projection head.
    %(history_)s
        SCAN's stages are ``'pretext'`` (when trained), ``'head_search'`` (with
        ``n_head_candidates``), ``'scan'`` and ``'selflabel'``; the self-labelling records
        hold ``confident_fraction`` (the fraction of samples above
        ``confidence_threshold`` in the epoch).
    %(n_iter_)s
    %(n_features_in_)s
    %(input_shape_)s
    %(input_kind_)s
    %(recipe_)s
    %(nuisance_report_)s
    %(merge_map_)s
    %(n_clusters_trained_)s
    %(device_)s
    """

    method_spec = MethodSpec(
        name="scan",
        title="SCANClusterer (SCAN; Van Gansbeke, Vandenhende, Georgoulis, Proesmans & "
        "Van Gool, ECCV 2020)",
        recipe=scan_recipe,
        epoch_params=_pretext_and_main_epochs,
        share_pretext=pretext_only_fit,
        share_description=(
            "the pretext network: one pretext-only fit per seed, passed as pretrained="
        ),
        test_params=dict(
            n_clusters=3,
            pretext_epochs=3,
            max_epochs=15,
            selflabel_epochs=2,
            n_neighbors=5,
            n_heads=2,
            n_head_candidates=0,
            head_warmup_epochs=0,
            batch_size=32,
            lr=1e-3,
            device="cpu",
        ),
        model_file={"best_head_": "int"},
        # On frozen features the neighbours are mined on the features themselves.
        frozen_params={"pretext_epochs": 0},
    )

    _fit_state_class = SCANFit
    _fitted_input_params = ("pretrained",)

    _parameter_constraints: dict = {
        **BaseDeepClusterer._parameter_constraints,
        "pretrained": "no_validation",
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "entropy_weight": [Interval(Real, 0, None, closed="left")],
        "n_head_candidates": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "head_search_epochs": [Interval(Integral, 1, None, closed="left")],
        "confidence_threshold": [Interval(Real, 0, 1, closed="neither")],
        "update_cluster_head_only": ["boolean"],
        "head_warmup_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "temperature": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "pretext_augmentation": [StrOptions({*AUGMENTATION_POLICIES, "auto"}), nn.Module],
        "augmentation": [StrOptions({*AUGMENTATION_POLICIES, "auto"}), nn.Module],
        "pretext_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "selflabel_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "pretext_lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "selflabel_lr": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        n_clusters=10,
        *,
        backbone="auto",
        weights=None,
        freeze_backbone=False,
        pretrained=None,
        budget="default",
        invariant_to="auto",
        merge_to=None,
        n_neighbors=20,
        n_heads=5,
        entropy_weight=5.0,
        n_head_candidates="auto",
        head_search_epochs=20,
        confidence_threshold=0.99,
        update_cluster_head_only=False,
        head_warmup_epochs="auto",
        temperature="auto",
        pretext_augmentation="auto",
        augmentation="weak",
        pretext_epochs="auto",
        max_epochs="auto",
        selflabel_epochs="auto",
        pretext_lr="auto",
        lr="auto",
        selflabel_lr=1e-4,
        optimizer=None,
        lr_schedule=None,
        device="auto",
        precision="auto",
        batch_size="auto",
        image_size=None,
        on_bad_image="raise",
        cache_dir=None,
        random_state=None,
        verbose=False,
    ):
        self.n_clusters = n_clusters
        self.backbone = backbone
        self.weights = weights
        self.freeze_backbone = freeze_backbone
        self.pretrained = pretrained
        self.budget = budget
        self.invariant_to = invariant_to
        self.merge_to = merge_to
        self.n_neighbors = n_neighbors
        self.n_heads = n_heads
        self.entropy_weight = entropy_weight
        self.n_head_candidates = n_head_candidates
        self.head_search_epochs = head_search_epochs
        self.confidence_threshold = confidence_threshold
        self.update_cluster_head_only = update_cluster_head_only
        self.head_warmup_epochs = head_warmup_epochs
        self.temperature = temperature
        self.pretext_augmentation = pretext_augmentation
        self.augmentation = augmentation
        self.pretext_epochs = pretext_epochs
        self.max_epochs = max_epochs
        self.selflabel_epochs = selflabel_epochs
        self.pretext_lr = pretext_lr
        self.lr = lr
        self.selflabel_lr = selflabel_lr
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.image_size = image_size
        self.on_bad_image = on_bad_image
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.verbose = verbose

    def _check_fit_params(self, source) -> None:
        if self.n_neighbors >= len(source):
            raise ValueError(
                f"n_neighbors={self.n_neighbors} must be smaller than n_samples={len(source)}."
            )
        if 0 < self.n_head_candidates < self.n_heads:
            raise ValueError(
                f"n_head_candidates={self.n_head_candidates} is smaller than "
                f"n_heads={self.n_heads}: the SCAN step starts from the n_heads best "
                "candidates. Set n_head_candidates >= n_heads, or 0 for random heads."
            )
        if self.pretrained is not None:
            check_feature_source(self.pretrained)

    @classmethod
    def from_scan_checkpoint(
        cls,
        path: str | os.PathLike,
        *,
        dataset: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        weights_only: bool = True,
    ) -> SCANClusterer:
        """A fitted estimator from one of SCAN's released (model-zoo) SCAN or self-label files.

        The files hold ``{'model': state_dict, 'head': best head}`` (SCAN step) or a bare
        state dict (self-label step, one head) of SCAN's ``ClusteringModel``: ``backbone.*``
        and ``cluster_head.N.weight``/``bias``. The backbone is SCAN's CIFAR ResNet-18
        (``'resnet18'`` at 32 px), its STL-10 ResNet-18 (``'scan-resnet18-stl'``, 96 px) or
        torchvision's ResNet-50 (``'resnet50'``, 224 px, the ImageNet subsets); every head is
        read, ``predict`` uses the file's ``'head'``, and inputs are resized and normalised
        as SCAN's configs do. Pretext-only files (SimCLR/MoCo: ``contrastive_head.*``, no
        cluster heads) are refused; read their backbone with
        ``deepclust.methods.scan_pretext_network(path, dataset)`` and pass
        it as ``pretrained=``.

        Parameters
        ----------
        path : str or path-like
            The model file.
        dataset : {'cifar-10', 'cifar-20', 'stl-10', 'imagenet'}, optional
            The data set the model was trained on: its backbone, image size and input
            statistics. ``None``: recognised from the weights (ResNet-50: ``'imagenet'``;
            20 clusters: ``'cifar-20'``); CIFAR-10 and STL-10 models need it.
        device : str, default='auto'
            Device for inference.
        precision : {'auto', 'mixed', 'float32'}, default='auto'
            Floating-point precision of the forward passes, as in the estimator.
        weights_only : bool, default=True
            Load with ``torch.load(..., weights_only=True)``, which cannot run code from the
            file. Set ``False`` only for a file you trust.

        Returns
        -------
        SCANClusterer
            Fitted: ``network_``, ``best_head_``, ``n_clusters``, ``n_heads``,
            ``backbone``, ``image_size``; no ``labels_`` (the file holds none).

        Raises
        ------
        ValueError
            If the file is not a SCAN or self-label model (or is a pretext-only one), the
            data set cannot be recognised, or the weights do not fit its backbone.
        """
        from deepclust._utils import resolve_device
        from deepclust.methods._scan_checkpoint import DATASETS, read_scan_checkpoint
        from deepclust.methods._sela_checkpoint import load_checkpoint_file

        loaded = read_scan_checkpoint(load_checkpoint_file(path, weights_only), path, dataset)
        backbone, image_size, _, _ = DATASETS[loaded.dataset]
        est = cls(
            n_clusters=loaded.network.heads.n_clusters,
            backbone=backbone,
            n_heads=len(loaded.network.heads),
            n_head_candidates=0,
            device=device,
            precision=precision,
            image_size=image_size,
        )
        est.best_head_ = loaded.best_head
        est.network_ = loaded.network
        est.input_kind_ = "images"
        est.input_shape_ = (3, image_size, image_size)
        est.n_features_in_ = 3 * image_size * image_size
        est.device_ = resolve_device(device)
        est.history_ = []
        est.n_iter_ = 0
        return est
