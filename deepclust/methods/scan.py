"""SCAN: contrastive pretext, nearest-neighbour consistency, confident self-labelling."""

from __future__ import annotations

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from torch import nn

from deepclust._utils import to_numpy
from deepclust.cluster import kmeans, knn
from deepclust.losses import ConfidenceCrossEntropyLoss, SCANLoss
from deepclust.methods._base import BaseDeepClusterer
from deepclust.methods._registry import MethodSpec, register_method
from deepclust.methods._stages import (
    contrastive_stage,
    extract_features,
    head_probabilities,
    make_augment,
    make_fetch,
)
from deepclust.methods._stages import pretext_and_main_epochs as _pretext_and_main_epochs
from deepclust.networks import StackedLinearHeads
from deepclust.training import Stage

__all__ = ["SCANClusterer"]


def pretext_backbone(pretext, source):
    """Backbone (a copy) and input statistics from a ``pretext=`` argument.

    ``pretext`` is an ``nn.Module`` mapping images to features, or a fitted deepclust
    estimator whose learned backbone and input normalisation are reused.
    """
    if getattr(pretext, "_deepclust_estimator", False):
        network = getattr(pretext, "network_", None)
        if network is None:
            raise ValueError(
                f"pretext={type(pretext).__name__} is not fitted; fit it first or pass None."
            )
        stats = (to_numpy(network.normalize.mean), to_numpy(network.normalize.std))
        return copy.deepcopy(network.backbone), stats
    if isinstance(pretext, nn.Module):
        return copy.deepcopy(pretext), None
    raise TypeError(
        "pretext must be None, an nn.Module or a fitted deepclust estimator; got "
        f"{type(pretext).__name__}."
    )


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


@register_method
class SCANClusterer(BaseDeepClusterer):
    """SCAN: semantic clustering by adopting nearest neighbours (Van Gansbeke et al., 2020).

    Three stages, all run by :meth:`fit`:

    1. **Pretext** (``pretext_epochs``): SimCLR contrastive learning, two SimCLR-strength
       views per image, NT-Xent loss (temperature ``temperature``) on a 128-d projection
       head. Skipped when ``pretext`` gives a pretrained network.
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
    backbone : str or nn.Module, default='auto'
    pretext : None, nn.Module or fitted deepclust estimator, default=None
        Features for the neighbour search and initial weights of the backbone; ``None``
        trains a SimCLR pretext.
    n_neighbors : int, default=20
    n_heads : int, default=5
        Clustering heads trained in the SCAN step; the lowest-loss one is kept.
    entropy_weight : float, default=5.0
    n_head_candidates : int, default=0
        Candidate heads searched before the SCAN step (see above); the ``n_heads``
        lowest-loss ones start it. ``0`` starts from random heads, as the paper; when set,
        it must be at least ``n_heads``. The search uses Adam at ``1e-3`` with a constant
        rate and the SCAN step's batch size.
    head_search_epochs : int, default=20
        Epochs of the candidate search (over the precomputed features).
    confidence_threshold : float, default=0.99
    update_cluster_head_only : bool, default=False
        Freeze the backbone in the SCAN step.
    head_warmup_epochs : int, default=0
        First epochs of the SCAN step that train only the clustering heads (the backbone
        frozen) before the whole network is updated, so that randomly initialised heads do
        not pull the pretext features apart while they settle.
    temperature : float, default=0.1
        NT-Xent temperature of the pretext.
    pretext_augmentation : {'simclr', 'weak', 'strong', 'none'} or nn.Module, default='simclr'
        Augmentation of the two pretext views (SimCLR's, as the paper; ``'strong'`` adds
        RandAugment-style operations and cutout).
    augmentation : {'simclr', 'weak', 'strong', 'none'} or nn.Module, default='weak'
        Augmentation of anchors and neighbours in the SCAN step (``'strong'`` is the
        reference's choice for natural images; see the user guide for small images).
    pretext_epochs : int, default=100
    max_epochs : int, default=50
        Epochs of the SCAN step.
    selflabel_epochs : int, default=20
    pretext_lr : float, default=0.1
        SGD (momentum 0.9, cosine) learning rate of the pretext.
    lr : float, default=1e-4
        Learning rate of the SCAN step (the paper's Adam value).
    selflabel_lr : float or None, default=1e-4
        Learning rate of self-labelling (the paper's value); ``None`` uses ``lr``. Keep it
        small: at the SCAN step's larger rates the confident set drifts and collapses.
    optimizer : {'sgd', 'adam', 'adamw'} or None, default=None
        Optimiser of the SCAN and self-labelling steps; ``None`` uses the reference's (Adam).
    lr_schedule : {'cosine', 'step', 'constant'} or None, default=None
        Learning-rate schedule of the SCAN and self-labelling steps; ``None``: the reference's
        (constant).
        ``'step'`` divides the rate by 10 at 50% and 75% of training.
    device : str, default='auto'
    batch_size : int, default=256
    image_size : int or None, default=None
    on_bad_image : {'raise', 'skip'}, default='raise'
    random_state : int, RandomState or None, default=None
    verbose : bool or int, default=False

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
    stage_labels_ : dict of str to ndarray
        Labels of the training data after each stage: ``'pretext_kmeans'`` (k-means on the
        pretext features), ``'scan'`` and ``'selflabel'``, for comparing the stages.
    head_losses_ : ndarray of shape (n_heads,)
        SCAN loss of every head over the data set (the lowest is ``best_head_``).
    candidate_losses_ : ndarray of shape (n_head_candidates,)
        SCAN loss over the data set of every searched candidate head, in the order they
        were drawn (only with ``n_head_candidates``).
    network_ : ClusteringNetwork
    history_ : list of dict
    """

    method_spec = MethodSpec(
        name="scan",
        title="SCANClusterer (SCAN; Van Gansbeke, Vandenhende, Georgoulis, Proesmans & "
        "Van Gool, ECCV 2020)",
        default_epochs=30,
        epoch_params=_pretext_and_main_epochs,
        # Without self-labelling, and the SCAN step at lr 1e-3 and batch 128: the demo's
        # settings for small images on a CPU.
        recipe={"selflabel_epochs": 0, "lr": 1e-3, "batch_size": 128},
        test_params=dict(
            n_clusters=3, pretext_epochs=3, max_epochs=15, selflabel_epochs=2, n_neighbors=5,
            n_heads=2, batch_size=32, lr=1e-3, device="cpu",
        ),
        profiles={
            # Measurements behind these values: docs/benchmarks.rst, SCAN section.
            "cpu": dict(backbone="convnet-small", image_size=20, pretext_epochs=35,
                        temperature=0.5, pretext_lr=0.2, n_head_candidates=20,
                        max_epochs=10, head_warmup_epochs=2, lr=1e-3, selflabel_epochs=1,
                        selflabel_lr=1e-4, batch_size=256, device="cpu"),
            "gpu": dict(backbone="convnet", pretext_epochs=200, max_epochs=50,
                        selflabel_epochs=20, batch_size=512, device="cuda"),
        },
        model_file={"best_head_": "int"},
    )

    _parameter_constraints: dict = {
        **BaseDeepClusterer._parameter_constraints,
        "pretext": [None, nn.Module, HasMethods(["transform"])],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "entropy_weight": [Interval(Real, 0, None, closed="left")],
        "n_head_candidates": [Interval(Integral, 0, None, closed="left")],
        "head_search_epochs": [Interval(Integral, 1, None, closed="left")],
        "confidence_threshold": [Interval(Real, 0, 1, closed="neither")],
        "update_cluster_head_only": ["boolean"],
        "head_warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "pretext_augmentation": [
            StrOptions({"simclr", "weak", "strong", "none"}), nn.Module
        ],
        "augmentation": [StrOptions({"simclr", "weak", "strong", "none"}), nn.Module],
        "pretext_epochs": [Interval(Integral, 0, None, closed="left")],
        "selflabel_epochs": [Interval(Integral, 0, None, closed="left")],
        "pretext_lr": [Interval(Real, 0, None, closed="neither")],
        "selflabel_lr": [Interval(Real, 0, None, closed="neither"), None],
    }

    def __init__(
        self,
        n_clusters=10,
        *,
        backbone="auto",
        pretext=None,
        n_neighbors=20,
        n_heads=5,
        entropy_weight=5.0,
        n_head_candidates=0,
        head_search_epochs=20,
        confidence_threshold=0.99,
        update_cluster_head_only=False,
        head_warmup_epochs=0,
        temperature=0.1,
        pretext_augmentation="simclr",
        augmentation="weak",
        pretext_epochs=100,
        max_epochs=50,
        selflabel_epochs=20,
        pretext_lr=0.1,
        lr=1e-4,
        selflabel_lr=1e-4,
        optimizer=None,
        lr_schedule=None,
        device="auto",
        batch_size=256,
        image_size=None,
        on_bad_image="raise",
        random_state=None,
        verbose=False,
    ):
        self.n_clusters = n_clusters
        self.backbone = backbone
        self.pretext = pretext
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
        self.batch_size = batch_size
        self.image_size = image_size
        self.on_bad_image = on_bad_image
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
        if self.pretext is not None:
            pretext_backbone(self.pretext, source)

    # ------------------------------------------------------------------ stages
    def _scan_stage(self, network, source, context, state) -> Stage:
        device = context.device
        augment = make_augment(self.augmentation, source)
        criterion = SCANLoss(entropy_weight=self.entropy_weight)
        optimizer, lr_schedule = self._training_settings("adam", "constant")
        frozen = {"backbone": self.update_cluster_head_only}

        def on_epoch_begin(epoch):
            frozen["backbone"] = self.update_cluster_head_only or epoch < self.head_warmup_epochs

        def compute_loss(batch):
            indices, anchors = batch
            # Neighbour picks come from torch's generator (saved in checkpoints), on the
            # main thread, so a resumed fit draws the same pairs as an uninterrupted one.
            neighbors = torch.from_numpy(state["neighbors"][indices.numpy()])
            column = torch.randint(0, neighbors.shape[1], (len(indices), 1))
            partners = source.load(neighbors.gather(1, column).squeeze(1).numpy())
            both = augment(torch.cat([anchors, partners]).to(device, non_blocking=True))
            if frozen["backbone"]:  # no gradient reaches the backbone: Adam skips it
                with torch.no_grad():
                    features = network.features(both)
                logits = network.heads(features)
            else:
                logits = network(both)
            losses = [criterion(*head.float().chunk(2))[0] for head in logits]
            return torch.stack(losses).sum()

        if self.update_cluster_head_only:
            params = list(network.heads.parameters())
        else:
            params = [p for name, p in network.named_parameters()
                      if not name.startswith("projection")]
        return Stage(
            name="scan", n_epochs=self.max_epochs, n_samples=len(source),
            compute_loss=compute_loss, modules=[network], parameters=params,
            fetch=make_fetch(source, device), optimizer=optimizer, lr=self.lr,
            weight_decay=1e-4,
            lr_schedule=lr_schedule, on_epoch_begin=on_epoch_begin,
            on_begin=lambda: self._begin_scan(network, source, context, state),
        )

    def _begin_scan(self, network, source, context, state) -> None:
        """Mine the neighbours (unless the head search did) and load the searched heads."""
        candidates = state.get("candidates")
        if candidates is None:
            if state["neighbors"] is None:
                self._mine_neighbors(network, source, context, state)
            return
        features, neighbors = self._search_inputs(network, source, context, state)
        losses = []
        with torch.no_grad():
            for weight, bias in zip(candidates.weight, candidates.bias):
                probs = torch.softmax(torch.addmm(bias, features, weight.t()).float(), dim=1)
                losses.append(scan_objective(probs, neighbors, self.entropy_weight))
        state["candidate_losses"] = losses
        for head, index in zip(network.heads.heads, np.argsort(losses)):
            candidates.copy_to(int(index), head)

    def _head_search_stage(self, network, source, context, state) -> Stage:
        """Candidate heads trained with the SCAN loss on the frozen pretext features."""
        device = context.device
        candidates = state["candidates"]
        criterion = SCANLoss(entropy_weight=self.entropy_weight)

        def compute_loss(indices):
            features, neighbors = self._search_inputs(network, source, context, state)
            anchors = torch.as_tensor(indices, device=device)
            column = torch.randint(0, neighbors.shape[1], (len(anchors),)).to(device)
            partners = neighbors[anchors, column]
            logits = candidates(torch.cat([features[anchors], features[partners]]))
            total, _, _ = criterion(*logits.float().chunk(2, dim=1))
            return total.sum()

        return Stage(
            name="head_search", n_epochs=self.head_search_epochs, n_samples=len(source),
            compute_loss=compute_loss, modules=[candidates], optimizer="adam", lr=1e-3,
            weight_decay=1e-4, lr_schedule="constant",
            on_begin=lambda: self._mine_neighbors(network, source, context, state),
        )

    def _selflabel_stage(self, network, source, device, state) -> Stage:
        weak = make_augment("weak", source)
        strong = make_augment("strong", source)
        criterion = ConfidenceCrossEntropyLoss(threshold=self.confidence_threshold)
        optimizer, lr_schedule = self._training_settings("adam", "constant")
        counter = {"confident": 0, "seen": 0}

        def compute_loss(batch):
            _, x = batch
            x = x.to(device, non_blocking=True)
            head = state["best_head"]
            with torch.no_grad():
                weak_logits = network(weak(x))[head]
            strong_logits = network(strong(x))[head]
            loss, n_confident = criterion(weak_logits.float(), strong_logits.float())
            counter["confident"] += n_confident
            counter["seen"] += len(x)
            return loss

        def on_epoch_end(epoch):
            record = {"confident_fraction": counter["confident"] / max(1, counter["seen"])}
            counter.update(confident=0, seen=0)
            return record

        params = [p for name, p in network.named_parameters() if not name.startswith("projection")]
        return Stage(
            name="selflabel", n_epochs=self.selflabel_epochs, n_samples=len(source),
            compute_loss=compute_loss, modules=[network], parameters=params,
            fetch=make_fetch(source, device), optimizer=optimizer,
            lr=self.lr if self.selflabel_lr is None else self.selflabel_lr, weight_decay=1e-4,
            lr_schedule=lr_schedule, on_epoch_end=on_epoch_end,
        )

    # ------------------------------------------------------------------ helpers
    def _search_inputs(self, network, source, context, state):
        """Pretext features and mined neighbours on the device, for the head search.

        Mined again when a resumed fit lacks the features (checkpoints keep only the
        neighbours); moved to the device once.
        """
        if state.get("pretext_features") is None:
            state.pop("search_inputs", None)
            self._mine_neighbors(network, source, context, state)
        if "search_inputs" not in state:
            state["search_inputs"] = (
                state["pretext_features"].to(context.device),
                torch.as_tensor(state["neighbors"]).to(context.device),
            )
        return state["search_inputs"]

    def _mine_neighbors(self, network, source, context, state) -> None:
        device = context.device
        features = extract_features(
            network, source, device, context.inference_batch_size,
            progress=context.progress("mining neighbours"),
        )
        normalized = nn.functional.normalize(features, dim=1)
        indices, _ = knn(normalized, self.n_neighbors, metric="cosine", device=device)
        state["neighbors"] = to_numpy(torch.as_tensor(indices)).astype(np.int64)
        state["pretext_features"] = features

    def _choose_head(self, network, source, context, state) -> int:
        """The head with the lowest SCAN loss over the whole data set."""
        probs = head_probabilities(
            network, source, context.device, context.inference_batch_size
        )
        neighbors = torch.as_tensor(state["neighbors"])
        losses = [scan_objective(p, neighbors, self.entropy_weight) for p in probs]
        state["head_losses"] = losses
        return int(np.argmin(losses))

    def _current_labels(self, network, source, context, state) -> np.ndarray:
        probs = head_probabilities(
            network, source, context.device, context.inference_batch_size
        )[state["best_head"]]
        return to_numpy(probs.argmax(1)).astype(np.int64)

    # ------------------------------------------------------------------ fit
    def _fit(self, source, context) -> dict:
        device, seed = context.device, context.seed
        if self.pretext is not None:
            backbone, stats = pretext_backbone(self.pretext, source)
            network = self._build_network(
                source, n_heads=self.n_heads, backbone=backbone, stats=stats
            )
        else:
            network = self._build_network(source, n_heads=self.n_heads, projection_dim=128)
        network = network.to(device)
        state: dict = {"neighbors": None, "best_head": 0}
        stages = []
        if self.pretext is None and self.pretext_epochs > 0:
            stages.append(contrastive_stage(
                network, source, device, n_epochs=self.pretext_epochs, lr=self.pretext_lr,
                temperature=self.temperature,
                augmentation=self.pretext_augmentation,
            ))
        modules = [network]
        if self.n_head_candidates:
            state["candidates"] = StackedLinearHeads(
                network.n_features, self.n_clusters, self.n_head_candidates
            ).to(device)
            modules.append(state["candidates"])
            stages.append(self._head_search_stage(network, source, context, state))
        stages.append(self._scan_stage(network, source, context, state))
        selflabel = self._selflabel_stage(network, source, device, state)

        def choose_head():
            state["best_head"] = self._choose_head(network, source, context, state)
            state["scan_labels"] = self._current_labels(network, source, context, state)

        selflabel.on_begin = choose_head
        stages.append(selflabel)

        def get_extra():
            extra = {"best_head": state["best_head"]}
            if state["neighbors"] is not None:
                extra["neighbors"] = torch.from_numpy(state["neighbors"])
            return extra

        def set_extra(extra):
            state["best_head"] = int(extra["best_head"])
            if "neighbors" in extra:
                state["neighbors"] = extra["neighbors"].numpy()

        history = context.trainer(get_extra, set_extra).fit(stages, modules=modules)
        if state["neighbors"] is None:  # resumed past the mining step
            self._mine_neighbors(network, source, context, state)
        if self.selflabel_epochs == 0:
            state["best_head"] = self._choose_head(network, source, context, state)
        confident = [r["confident_fraction"] for r in history if "confident_fraction" in r]
        if self.selflabel_epochs > 0 and confident and max(confident) == 0.0:
            warnings.warn(
                "Self-labelling found no sample with confidence above "
                f"confidence_threshold={self.confidence_threshold}; the self-labelling stage "
                "changed nothing. Lower confidence_threshold or train the SCAN step longer.",
                UserWarning, stacklevel=3,
            )
        head = state["best_head"]
        labels = self._current_labels(network, source, context, state)
        stage_labels = {"scan": state.get("scan_labels", labels), "selflabel": labels}
        if state.get("pretext_features") is not None:
            stage_labels["pretext_kmeans"] = np.asarray(to_numpy(torch.as_tensor(kmeans(
                nn.functional.normalize(state["pretext_features"], dim=1), self.n_clusters,
                random_state=seed, device=device,
            ).labels))).astype(np.int64)
        fitted = {
            "network_": network,
            "labels_": labels,
            "stage_labels_": stage_labels,
            "neighbors_": state["neighbors"],
            "best_head_": head,
            "head_losses_": np.asarray(state.get("head_losses", [])),
            **({"candidate_losses_": np.asarray(state["candidate_losses"])}
               if "candidate_losses" in state else {}),
            "history_": history,
            "n_iter_": self.max_epochs,
        }
        if context.y is not None:
            y = np.asarray(context.y)
            fitted["neighbor_accuracy_"] = float(
                (y[state["neighbors"]] == y[:, None]).mean()
            )
        return fitted
