"""ClusterFit: cluster a pretrained network's features, then train a fresh network on them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from deepclust._utils import to_numpy
from deepclust.augment import AUGMENTATION_POLICIES
from deepclust.cluster import PCAWhitening, kmeans, merged_kmeans
from deepclust.methods._base import BaseDeepClusterer
from deepclust.methods._docs import fill_doc
from deepclust.methods._feature_source import (
    FeatureSource,
    check_feature_source,
    resolve_feature_source,
)
from deepclust.methods._fit_state import FitState
from deepclust.methods._registry import MethodSpec, register_method
from deepclust.methods._shared_stage import first_candidate_pretext
from deepclust.methods._stages import (
    contrastive_stage,
    extract_features,
    head_probabilities,
    normalize_rows_,
)
from deepclust.methods._stages import pretext_and_main_epochs as _pretext_and_main_epochs
from deepclust.networks import ClusteringNetwork
from deepclust.recipes import DataFacts, contrastive_pretext, epochs_for, image_settings
from deepclust.training import Stage, use_precision

__all__ = ["ClusterFitFit", "ClusterFitTransformer"]


@dataclass
class ClusterFitFit(FitState):
    """One ClusterFit fit: ``N_pre`` (given, or a pretext network trained first), the
    fresh network and its k-means pseudo-labels."""

    checkpoint_fields: ClassVar[dict[str, str]] = {"labels": "tensor"}

    network: ClusteringNetwork = field(init=False)
    pretext_network: ClusteringNetwork | None = field(init=False, default=None)
    feature_source: FeatureSource | None = field(init=False, default=None)
    labels: torch.Tensor | None = field(init=False, default=None)

    def __post_init__(self):
        est = self.estimator
        self.feature_source = est._feature_source()
        if self.feature_source is None:
            self.pretext_network = est._new_network(self.source, projection_dim=128)
            self.pretext_network.to(self.device)
        backbone = est.backbone
        if isinstance(backbone, nn.Module):
            backbone = _reinitialised(backbone)
        self.network = est._new_network(self.source, backbone=backbone).to(self.device)

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.pretext_network, self.network) if m is not None]

    def stages(self) -> list[Stage]:
        est = self.estimator
        stages = []
        if self.pretext_network is not None and est.pretext_epochs > 0:
            stages.append(
                contrastive_stage(
                    self.pretext_network,
                    self.source,
                    self.device,
                    n_epochs=est.pretext_epochs,
                    lr=est.pretext_lr,
                    temperature=est.temperature,
                    augmentation=est.pretext_augmentation,
                    invariances=est._invariances(),
                )
            )
        stages.append(
            self.pseudo_label_stage("clusterfit", "sgd", "cosine", on_stage_begin=self.cluster)
        )
        return stages

    def pretrained_features(self) -> torch.Tensor:
        """Features of every sample from ``N_pre`` (float16 when over 2**28 values)."""
        if self.pretext_network is not None:
            return extract_features(
                self.pretext_network,
                self.source,
                self.device,
                self.context.inference_batch_size,
                progress=self.context.progress("pretext features"),
                large_dtype=torch.float16,
            )
        return self.feature_source.features(
            self.source, self.device, self.context.inference_batch_size, large_dtype=torch.float16
        )

    def cluster(self) -> None:
        """The pseudo-labels: k-means (or merged k-means) of N_pre's normalised features."""
        est = self.estimator
        features = self.pretrained_features()
        self.check_finite(features, "the features for k-means")
        features = normalize_rows_(features)
        if est.pca_dim is not None:
            features = PCAWhitening(
                min(est.pca_dim, features.shape[1]), l2_normalize=True
            ).fit_transform(features)
        if est.n_subclusters is None:
            result = kmeans(
                features.to(self.device),
                est.n_clusters,
                random_state=self.seed,
                device=self.device,
            )
        else:
            result = merged_kmeans(
                features.to(self.device),
                est.n_clusters,
                n_subclusters=est.n_subclusters,
                random_state=self.seed,
                device=self.device,
            )
        self.labels = torch.as_tensor(result.labels).long().to(self.device)

    def network_labels(self) -> np.ndarray:
        """The fresh network's cluster (its head's argmax) of every sample."""
        probs = head_probabilities(
            self.network, self.source, self.device, self.context.inference_batch_size
        )[0]
        return to_numpy(probs.argmax(1)).astype(np.int64)

    def fitted_attributes(self, history: list[dict]) -> dict:
        if self.pretext_network is not None:
            self.pretext_network.projection = None  # only its features are kept
            self.pretext_network.eval()
        pseudo_labels = to_numpy(self.labels).astype(np.int64)
        # The trained network's clusters: ACC 0.612 / 0.681 / 0.640 against the
        # pseudo-labels' 0.609 / 0.670 / 0.629 (Fashion-MNIST 70,000, seeds 0 / 1 / 2).
        labels = self.network_labels() if self.estimator.max_epochs > 0 else pseudo_labels
        return {
            "network_": self.network,
            "labels_": labels,
            "pseudo_labels_": pseudo_labels,
            "stage_labels_": {"kmeans": pseudo_labels, "clusterfit": labels},
            "pretext_network_": self.pretext_network,
        }


def clusterfit_recipe(facts: DataFacts, budget: str) -> dict:
    """ClusterFit's settings for the data (the method's ``recipe``; see :mod:`deepclust.recipes`).

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
    subclusters = max(200, 4 * (facts.n_clusters or 0))
    return {
        **image_settings(facts),
        # The square root's pretext (43 epochs at 70,000), not SCAN's longer one: on that,
        # k-means of the pretext features (ClusterFit's labels are their merged k-means)
        # fell from ACC 0.66 to 0.62 and 0.59 to 0.52 (Fashion-MNIST 70,000, seeds 1, 2).
        **contrastive_pretext(facts, budget),
        # 280,000 images at 5,000 samples (56 epochs), 1.05 million at 70,000 (15 epochs).
        "max_epochs": epochs_for(facts, budget, 280_000),
        # 200 k-means sub-clusters merged into n_clusters: ACC 0.625-0.648 over three
        # seeds on two pretexts, against 0.55-0.68 for plain k-means (10 clusters); plain
        # k-means where the sub-clusters would hold fewer than 20 samples each.
        "n_subclusters": subclusters if facts.n_samples >= 20 * subclusters else None,
        "augmentation": "strong",
    }


@register_method
@fill_doc
class ClusterFitTransformer(BaseDeepClusterer):
    """ClusterFit (Yan, Misra, Gupta, Ghadiyaram & Mahajan, CVPR 2020).

    1. **Cluster**: extract features of all images with a feature source ``pretrained``
       (``N_pre``), L2-normalise them (optionally PCA to ``pca_dim``), and run k-means with
       ``n_clusters``.
    2. **Fit**: train a *fresh* network (``backbone``, from scratch) to predict those
       pseudo-labels by cross-entropy under augmentation.

    Its job is better features: :meth:`transform` returns the fresh network's features,
    so ``make_pipeline(ClusterFitTransformer(), LogisticRegression())`` is the linear-probe
    protocol. :meth:`predict` gives the fresh network's cluster.

    Parameters
    ----------
    n_clusters : int, default=100
        %(n_clusters_desc)s
        The k-means clusters, i.e. the pseudo-labels. ClusterFit over-clusters (the paper
        uses thousands of clusters on ImageNet), so the default is large relative to
        typical class counts.
    %(pretrained)s

        ClusterFit calls this feature source ``N_pre`` and clusters its features; with
        ``None``, the pretext network trained first is ``pretext_network_``.
    %(backbone)s
    %(weights)s
    %(freeze_backbone)s
        Here the architecture of the fresh network, trained from scratch (a given module is
        copied and re-initialised).
    %(budget)s
    %(invariant_to)s
    %(merge_to)s
    pca_dim : int or None, default=None
        PCA-whiten the L2-normalised features to this many dimensions (``>= 1``) before
        k-means (``None``: no PCA).
    n_subclusters : int, None or 'auto', default='auto'
        When set, k-means first splits the features into this many sub-clusters and then
        merges them into ``n_clusters`` (:func:`deepclust.cluster.merged_kmeans`), which
        gives steadier pseudo-labels across seeds than one k-means run; ``None`` runs
        plain k-means, as the paper. Must lie between ``n_clusters`` and the number of
        samples. ``'auto'``: the recipe's, ``max(200, 4 * n_clusters)`` when the data has
        20 samples for each of them, else ``None``.
    pretext_epochs : int or 'auto', default='auto'
        %(pretext_epochs_desc)s
    %(pretext_lr)s
    %(temperature)s
    %(pretext_augmentation)s
    augmentation : {'simclr', 'weak', 'strong', 'none', 'auto'} or nn.Module, default='auto'
        Augmentation while fitting the fresh network; ``'auto'``: the recipe's,
        ``'strong'``.
        %(augmentation_desc)s
    %(device)s
    %(precision)s
    %(batch_size)s
    max_epochs : int or 'auto', default='auto'
        Epochs (``>= 0``) of training the fresh network. ``'auto'``: the recipe's, 280,000
        images seen at 5,000 samples and ``budget='default'`` (56 epochs).
    lr : float, default=0.05
        Learning rate (``> 0``) of the fresh network's training: SGD with Nesterov
        momentum 0.9, weight decay 1e-5 and, by default, a cosine schedule.
    %(optimizer)s
        the fresh network's training, SGD.
    %(lr_schedule)s
        the fresh network's training, ``'cosine'``.
    %(image_size)s
    %(on_bad_image)s
    %(cache_dir)s
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        The fresh network's cluster of each training sample, as :meth:`predict` gives it;
        the pseudo-labels when ``max_epochs=0``.
    pseudo_labels_ : ndarray of shape (n_samples,)
        The k-means pseudo-labels of the ``N_pre`` features, which the fresh network was
        trained to predict.
    stage_labels_ : dict of str to ndarray of shape (n_samples,)
        The labels after each step: ``'kmeans'`` (``pseudo_labels_``) and
        ``'clusterfit'`` (``labels_``).
    pretext_network_ : ClusteringNetwork or None
        The SimCLR pretext network trained during the fit when ``pretrained`` is None
        (``N_pre`` then), without its projection head; ``None`` otherwise.
    %(network_)s
        This is the fresh network, whose features :meth:`transform` returns.
    %(history_)s
        ClusterFit's stages are ``'pretext'`` (when trained) and ``'clusterfit'``.
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
        name="clusterfit",
        title="ClusterFitTransformer (ClusterFit; Yan, Misra, Gupta, Ghadiyaram & Mahajan, "
        "CVPR 2020)",
        recipe=clusterfit_recipe,
        epoch_params=_pretext_and_main_epochs,
        share_pretext=first_candidate_pretext,
        share_description=(
            "the pretext network: the first candidate's pretext_network_ per seed, "
            "passed as pretrained= to the others"
        ),
        test_params=dict(
            n_clusters=3,
            pretext_epochs=3,
            max_epochs=5,
            batch_size=32,
            n_subclusters=None,
            augmentation="simclr",
            device="cpu",
        ),
        model_file={"pretext_network_": "network", "pseudo_labels_": "array"},
        # On frozen features the pseudo-labels are k-means of the features themselves.
        frozen_params={"pretrained": nn.Identity()},
    )

    _fit_state_class = ClusterFitFit
    _fitted_input_params = ("pretrained",)

    _parameter_constraints: dict = {
        **BaseDeepClusterer._parameter_constraints,
        "pretrained": "no_validation",
        "pca_dim": [Interval(Integral, 1, None, closed="left"), None],
        "n_subclusters": [Interval(Integral, 1, None, closed="left"), None, StrOptions({"auto"})],
        "pretext_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "pretext_lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "temperature": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "pretext_augmentation": [StrOptions({*AUGMENTATION_POLICIES, "auto"}), nn.Module],
        "augmentation": [
            StrOptions({*AUGMENTATION_POLICIES, "auto"}),
            nn.Module,
            None,
            StrOptions({"auto"}),
        ],
    }

    def __init__(
        self,
        n_clusters=100,
        *,
        pretrained=None,
        backbone="auto",
        weights=None,
        freeze_backbone=False,
        budget="default",
        invariant_to="auto",
        merge_to=None,
        pca_dim=None,
        n_subclusters="auto",
        pretext_epochs="auto",
        pretext_lr="auto",
        temperature="auto",
        pretext_augmentation="auto",
        augmentation="auto",
        device="auto",
        precision="auto",
        batch_size="auto",
        max_epochs="auto",
        lr=0.05,
        optimizer=None,
        lr_schedule=None,
        image_size=None,
        on_bad_image="raise",
        cache_dir=None,
        random_state=None,
        verbose=False,
    ):
        self.n_clusters = n_clusters
        self.pretrained = pretrained
        self.backbone = backbone
        self.weights = weights
        self.freeze_backbone = freeze_backbone
        self.budget = budget
        self.invariant_to = invariant_to
        self.merge_to = merge_to
        self.pca_dim = pca_dim
        self.n_subclusters = n_subclusters
        self.pretext_epochs = pretext_epochs
        self.pretext_lr = pretext_lr
        self.temperature = temperature
        self.pretext_augmentation = pretext_augmentation
        self.augmentation = augmentation
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.image_size = image_size
        self.on_bad_image = on_bad_image
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.verbose = verbose

    def _feature_source(self) -> FeatureSource | None:
        """The resolved ``pretrained`` (``None``: a pretext network is trained)."""
        return None if self.pretrained is None else resolve_feature_source(self.pretrained)

    def pretrained_transform(self, X) -> np.ndarray:
        """Features of ``X`` from ``N_pre``: ``pretrained``, or ``pretext_network_``.

        For comparing ``N_pre`` with the ClusterFit network, e.g. by a linear probe on
        each; :meth:`transform` gives the fresh network's features.

        Parameters
        ----------
        %(X_predict)s

        Returns
        -------
        features : ndarray of shape (n_samples, n_pretrained_features), dtype float32
            The features ``N_pre`` gives each sample.
        """
        source = self._read_input(X, reset=False)
        features_of = resolve_feature_source(self.pretext_network_ or self.pretrained)
        device = self._inference_device()
        with use_precision(self._precision()):
            features = features_of.features(source, device, self._inference_batch_size(device))
        return to_numpy(features).astype(np.float32, copy=False)

    def _check_fit_params(self, source) -> None:
        if self.n_subclusters is not None and not (
            self.n_clusters <= self.n_subclusters <= len(source)
        ):
            raise ValueError(
                f"n_subclusters={self.n_subclusters} must lie between n_clusters="
                f"{self.n_clusters} and n_samples={len(source)}; change it or pass None."
            )
        if self.pretrained is not None:
            check_feature_source(self.pretrained)


def _reinitialised(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every layer's parameters reset (a fresh network)."""
    fresh = copy.deepcopy(module)
    for layer in fresh.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    return fresh
