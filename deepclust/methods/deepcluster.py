"""DeepCluster: k-means pseudo-labels on PCA-whitened features, then retrain."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn

from deepclust._utils import to_numpy
from deepclust.augment import AUGMENTATION_POLICIES
from deepclust.cluster import KMeansResult, PCAWhitening, assign, kmeans
from deepclust.methods._base import BaseDeepClusterer
from deepclust.methods._docs import fill_doc
from deepclust.methods._fit_state import FitState
from deepclust.methods._registry import MethodSpec, register_method
from deepclust.methods._stages import balanced_sampler, extract_features
from deepclust.networks import ClusteringNetwork, SobelFilter
from deepclust.recipes import DataFacts, epochs_for, image_settings
from deepclust.training import Stage, _data_parallel

__all__ = ["DeepClusterEstimator", "DeepClusterFit"]


@dataclass
class DeepClusterFit(FitState):
    """One DeepCluster fit: the network and the current k-means labels."""

    checkpoint_fields: ClassVar[dict[str, str]] = {"labels": "tensor"}

    network: ClusteringNetwork = field(init=False)
    labels: torch.Tensor | None = field(init=False, default=None)

    def __post_init__(self):
        self.network = self.estimator._new_network(
            self.source, input_filter=self.estimator._method_input_filter()
        )
        self.network.to(self.device)

    def stages(self) -> list[Stage]:
        est = self.estimator
        # Constant rate, as the reference: the head is re-initialised every epoch and must
        # still be able to fit the new labels late in training.
        return [
            self.pseudo_label_stage(
                "deepcluster",
                "sgd",
                "constant",
                weight_decay=est.weight_decay,
                sampler=balanced_sampler(lambda: to_numpy(self.labels), len(self.source)),
                on_epoch_begin=self.recluster,
            )
        ]

    @property
    def n_sharded(self) -> int | None:
        """The number of samples when the k-means steps' rows are split over the ranks of a
        data-parallel fit (:meth:`DeepClusterEstimator._shards_kmeans`), else None."""
        n_samples = len(self.source)
        return n_samples if self.estimator._shards_kmeans(n_samples) else None

    def features(self, progress: str | None = None) -> torch.Tensor:
        """Backbone features of every sample (float16 when over 2**28 values; the
        whitening reads them in float64 row blocks); only this rank's block
        (:func:`~deepclust.training._data_parallel.rank_rows`) when :attr:`n_sharded`.

        Parameters
        ----------
        progress : str, optional
            Description of a progress bar, shown only when the estimator is verbose.
        """
        sharded = self.n_sharded is not None
        features = extract_features(
            self.network,
            self.source,
            self.device,
            self.context.inference_batch_size,
            progress=self.context.progress(progress) if progress else None,
            large_dtype=torch.float16,
            gather=not sharded,
        )
        if sharded and not _data_parallel.finite_on_every_rank(features, self.device):
            features = torch.tensor([float("nan")])  # every rank raises
        self.check_finite(features, "the features for k-means")
        return features

    def recluster(self, epoch: int) -> dict:
        """New k-means labels of the current features; the head starts afresh.

        Parameters
        ----------
        epoch : int
            The stage's epoch about to run, from 0; k-means is seeded with the fit's seed
            plus ``epoch``.
        """
        _, _, result = self.estimator._cluster(
            self.features("features for k-means"),
            self.seed + epoch,
            self.device,
            n_total=self.n_sharded,
        )
        labels = torch.as_tensor(result.labels).long()
        if self.n_sharded is not None:
            labels = _data_parallel.gather_blocks(labels, self.n_sharded, self.device)
        record = {"inertia": float(result.inertia)}
        if self.labels is not None:
            record["nmi_previous"] = float(
                normalized_mutual_info_score(to_numpy(self.labels), to_numpy(labels))
            )
        self.labels = labels.to(self.device)
        self.network.heads.reset_parameters()
        self.trainer.reset_optimizer_state(self.network.heads.parameters())
        return record

    def fitted_attributes(self, history: list[dict]) -> dict:
        est = self.estimator
        whitening, whitened, result = est._cluster(
            self.features(),
            self.seed + est.max_epochs,
            self.device,
            n_total=self.n_sharded,
            pca_dim=est.final_pca_dim,  # None: _cluster's default, pca_dim
        )
        centers = torch.as_tensor(result.centroids).float().cpu()
        # Final labels are the nearest centroids, so predict() reproduces them exactly.
        labels = torch.as_tensor(assign(whitened.float(), centers)[0])
        if self.n_sharded is not None:
            labels = _data_parallel.gather_blocks(labels, self.n_sharded, self.device)
        labels = to_numpy(labels).astype(np.int64)
        if self.labels is not None and history:
            history[-1]["final_nmi_previous"] = float(
                normalized_mutual_info_score(to_numpy(self.labels), labels)
            )
        return {
            "network_": self.network,
            "whitening_": whitening,
            "cluster_centers_": to_numpy(centers),
            "labels_": labels,
        }


def _fit_on_cpu(whitening: PCAWhitening, features: torch.Tensor) -> None:
    """Fit a distributed ``whitening`` on this rank's ``features`` where its collectives run,
    then leave it a plain one-process whitening on the CPU (internal)."""
    whitening.fit(features.to(whitening.device))
    for name in ("mean_", "components_", "explained_variance_"):
        setattr(whitening, name, getattr(whitening, name).cpu())
    whitening.device, whitening.distributed = None, False


#: The recipe's whitening size for the k-means steps of training, by kind of input.
_PCA_DIM = {"images": 32, "features": 16}


def _final_pca_dim(facts: DataFacts) -> int:
    """The recipe's whitening size for the final k-means: the number of clusters, between
    8 and the training's ``pca_dim`` (all of it when the number is not known)."""
    largest = _PCA_DIM[facts.kind]
    if facts.n_clusters is None:
        return largest
    return min(largest, max(8, facts.n_clusters))


def deepcluster_recipe(facts: DataFacts, budget: str) -> dict:
    """DeepCluster's settings for the data (the method's ``recipe``; see :mod:`deepclust.recipes`).

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
    return {
        **image_settings(facts),
        # 470,000 images at 5,000 samples (94 epochs), 1.76 million at 70,000 (25 epochs).
        "max_epochs": epochs_for(facts, budget, 470_000),
        # 32 PCA dimensions for the k-means of 'convnet-small' features (64 wide).
        "pca_dim": _PCA_DIM[facts.kind],
        # The final k-means in as many dimensions as clusters (8 to pca_dim): on the same
        # trained networks, ACC 0.665 / 0.687 against 0.567 / 0.584 in 32 dimensions
        # (Fashion-MNIST 5,000, seeds 1 / 2) and 0.659 against 0.605 (70,000, seed 0),
        # means over three k-means seeds.
        # Training's k-means in 10 dimensions instead of 32 did not help (0.534 / 0.650
        # against 0.548 / 0.634 on the same 5,000 images).
        "final_pca_dim": _final_pca_dim(facts),
        # SimCLR's crops with its full colour strength: ACC 0.687 / 0.703 / 0.703 on the
        # digits and 0.670 / 0.548 / 0.634 on 5,000 Fashion-MNIST images (seeds 0 / 1 / 2)
        # against 0.582 / 0.633 / 0.496 and 0.631 / 0.591 / 0.571 with 'strong'
        # (RandAugment and cutout), which beat 'weak' (0.59 against 0.50, 10,000 images).
        "augmentation": "simclr-strong",
    }


@register_method
@fill_doc
class DeepClusterEstimator(BaseDeepClusterer):
    """DeepCluster (Caron, Bojanowski, Joulin & Douze, ECCV 2018).

    Every epoch: extract the features of all images with the current network (eval mode,
    no augmentation), PCA-whiten them to ``pca_dim`` dimensions and L2-normalise, run
    k-means, re-initialise the classification head, and train one epoch by cross-entropy
    against the k-means assignment under augmentation, drawing every cluster equally often.
    After the last epoch, one more k-means of the features, whitened to ``final_pca_dim``
    dimensions, gives ``labels_``.

    Parameters
    ----------
    n_clusters : int, default=10
        %(n_clusters_desc)s
        The clusters of every k-means. The paper over-clusters (10,000 clusters for
        ImageNet's 1,000 classes) because it targets features; for clustering, use the
        expected number of groups.
    %(backbone)s
    %(weights)s
    %(freeze_backbone)s
    %(budget)s
    %(invariant_to)s
    %(merge_to)s
    pca_dim : int or 'auto', default='auto'
        Dimensions (``>= 1``) the features are PCA-whitened to before k-means (fewer when
        the features are smaller); the reference code whitens to 256. ``'auto'``: the
        recipe's, 32 for images and 16 for 2-D features.
    final_pca_dim : int, None or 'auto', default='auto'
        Dimensions (``>= 1``) the trained network's features are PCA-whitened to for the
        final k-means, which gives ``labels_``, ``cluster_centers_`` and ``whitening_``;
        ``None``: ``pca_dim``. ``'auto'``: the recipe's, ``n_clusters`` between 8 and 32
        for images (16 for 2-D features): k-means finds ``n_clusters`` groups best in
        about as many dimensions.
    kmeans_iter : int, default=20
        k-means (Lloyd) iterations per clustering (``>= 1``); the reference uses 20 with
        faiss. k-means++ initialisation up to 256 clusters, random samples above.
    sobel : bool, default=False
        Feed the network fixed Sobel edges of the grayscale image instead of the image, as
        the paper does to keep the network from clustering by colour (useful on colour
        photographs; images only).
    augmentation : str, nn.Module or None, default='auto'
        Training augmentation: a policy name (``'weak'``, ``'strong'``, ``'simclr'``,
        ``'simclr-strong'``, ``'none'``) or a module. ``'weak'`` is the closest policy to
        the paper's random resized crop and flip; ``'auto'``: the recipe's,
        ``'simclr-strong'``.
        %(augmentation_desc)s
    kmeans_backend : {'auto', 'faiss', 'torch'}, default='auto'
        k-means implementation: ``'auto'`` uses faiss when it is installed and can run on
        the training device (the CPU, or CUDA with a GPU build of faiss), else the
        pure-torch k-means; ``'faiss'`` requires faiss; ``'torch'`` never uses it. Both
        start from the same centroids for a given seed.
    %(device)s
    %(precision)s
    %(batch_size)s
    max_epochs : int or 'auto', default='auto'
        Epochs (``>= 0``), each preceded by a clustering of the data; one more clustering
        after the last gives ``labels_``. ``'auto'``: the recipe's, 470,000 images seen at
        5,000 samples and ``budget='default'`` (94 epochs).
    lr : float, default=0.05
        SGD learning rate (``> 0``; the reference code's value), with Nesterov momentum
        0.9, constant by default.
    %(optimizer)s
        the per-epoch training, SGD.
    %(lr_schedule)s
        the per-epoch training, ``'constant'`` (the head is re-initialised every epoch and
        must still fit the new labels late in training).
    %(weight_decay)s
    %(image_size)s
    %(on_bad_image)s
    %(cache_dir)s
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Final k-means assignment of the trained network's features whitened to
        ``final_pca_dim`` dimensions (the nearest centroid, so ``predict`` reproduces it
        on the training data).
    cluster_centers_ : ndarray of shape (n_clusters, final_pca_dim)
        Centroids in the whitened space.
    whitening_ : PCAWhitening
        The final clustering's fitted whitening, used by :meth:`predict`.
    %(network_)s
        Its classification head is re-initialised every epoch and not used by
        :meth:`predict` (see Notes).
    %(history_)s
        DeepCluster's only stage is ``'deepcluster'``. Every record holds the ``inertia``
        of the k-means it trained on and, from the second on, ``nmi_previous`` (the NMI
        between consecutive assignments, the paper's stability curve); the last record
        holds ``final_nmi_previous`` (against the final assignment).
    %(n_iter_)s
    %(n_features_in_)s
    %(input_shape_)s
    %(input_kind_)s
    %(recipe_)s
    %(nuisance_report_)s
    %(merge_map_)s
    %(n_clusters_trained_)s
    %(device_)s

    Notes
    -----
    :meth:`predict` assigns the nearest centroid of the whitened features rather than
    using the classification head: the head is re-initialised every epoch to follow
    permuted labels and so lags the final k-means; the nearest centroid reproduces
    ``labels_`` on the training data exactly.
    """

    method_spec = MethodSpec(
        name="deepcluster",
        title="DeepClusterEstimator (DeepCluster; Caron, Bojanowski, Joulin & Douze, ECCV 2018)",
        recipe=deepcluster_recipe,
        test_params=dict(
            n_clusters=3,
            max_epochs=4,
            batch_size=32,
            pca_dim=8,
            kmeans_iter=10,
            augmentation="weak",
            device="cpu",
        ),
        model_file={"cluster_centers_": "array", "whitening_": "whitening"},
    )

    _fit_state_class = DeepClusterFit

    _parameter_constraints: dict = {
        **BaseDeepClusterer._parameter_constraints,
        "pca_dim": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "final_pca_dim": [Interval(Integral, 1, None, closed="left"), None, StrOptions({"auto"})],
        "kmeans_iter": [Interval(Integral, 1, None, closed="left")],
        "sobel": ["boolean"],
        "augmentation": [
            StrOptions({*AUGMENTATION_POLICIES, "auto"}),
            nn.Module,
            None,
            StrOptions({"auto"}),
        ],
        "kmeans_backend": [StrOptions({"auto", "faiss", "torch"})],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        n_clusters=10,
        *,
        backbone="auto",
        weights=None,
        freeze_backbone=False,
        budget="default",
        invariant_to="auto",
        merge_to=None,
        pca_dim="auto",
        final_pca_dim="auto",
        kmeans_iter=20,
        sobel=False,
        augmentation="auto",
        kmeans_backend="auto",
        device="auto",
        precision="auto",
        batch_size="auto",
        max_epochs="auto",
        lr=0.05,
        optimizer=None,
        lr_schedule=None,
        weight_decay=1e-5,
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
        self.budget = budget
        self.invariant_to = invariant_to
        self.merge_to = merge_to
        self.pca_dim = pca_dim
        self.final_pca_dim = final_pca_dim
        self.kmeans_iter = kmeans_iter
        self.sobel = sobel
        self.augmentation = augmentation
        self.kmeans_backend = kmeans_backend
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.image_size = image_size
        self.on_bad_image = on_bad_image
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.verbose = verbose

    def _method_input_filter(self) -> nn.Module | None:
        return SobelFilter() if self.sobel else None

    def _check_fit_params(self, source) -> None:
        if self.sobel and source.kind != "images":
            raise ValueError("sobel=True needs images; got 2-D features. Use sobel=False.")

    def _shards_kmeans(self, n_samples: int) -> bool:
        """Whether the k-means steps of a fit on ``n_samples`` samples split their rows over
        the ranks: in a data-parallel fit (:func:`_data_parallel.shards_rows`) unless
        ``kmeans_backend='faiss'`` (distributed k-means runs on torch)."""
        return self.kmeans_backend != "faiss" and _data_parallel.shards_rows(n_samples)

    def _cluster(
        self,
        features: torch.Tensor,
        seed: int,
        device: torch.device,
        *,
        n_total: int | None = None,
        pca_dim: int | None = None,
    ) -> tuple[PCAWhitening, torch.Tensor, KMeansResult]:
        """PCA-whiten ``features`` and cluster them with k-means.

        With ``n_total``, ``features`` is this rank's block of the ``n_total`` rows of a
        data-parallel fit: the whitening statistics and k-means' per-cluster sums and
        counts are all-reduced (``distributed=True``, k-means on the torch backend), so
        every rank gets the same whitening and centroids, and the whitened rows and labels
        of its own block.

        Parameters
        ----------
        features : torch.Tensor of shape (n_samples, n_features) or (n_rank, n_features)
            The backbone features (this rank's block with ``n_total``).
        seed : int
            k-means' seed.
        device : torch.device
            Where k-means runs.
        n_total : int, optional
            Rows of the whole data set when ``features`` is this rank's block.
        pca_dim : int, optional
            Dimensions of the whitening (default: the estimator's ``pca_dim``).

        Returns
        -------
        whitening : PCAWhitening
            Fitted, on the CPU (it pickles anywhere).
        whitened : torch.Tensor of shape (n_samples or n_rank, n_components)
            The whitened rows, float32 on the CPU.
        result : KMeansResult
            The k-means result (labels of the rows of ``features``).
        """
        sharded = n_total is not None
        # The whitening is fitted on the CPU (a small D x D problem) so the fitted
        # estimator pickles anywhere (distributed: where the collectives run, then moved
        # there); k-means runs on the training device.
        whitening = PCAWhitening(
            min(self.pca_dim if pca_dim is None else pca_dim, features.shape[1]),
            l2_normalize=True,
            device=_data_parallel.communication_device(device) if sharded else None,
            distributed=sharded,
        )
        if sharded:
            _fit_on_cpu(whitening, features)
        else:
            whitening.fit(features.cpu())
        whitened = whitening.transform(features.cpu()).float()
        result = kmeans(
            whitened.to(device),
            self.n_clusters,
            n_iter=self.kmeans_iter,
            random_state=seed,
            backend="torch" if sharded else self.kmeans_backend,
            device=device,
            init="k-means++" if self.n_clusters <= 256 else "random",
            distributed=sharded,
        )
        return whitening, whitened, result

    def _labels_from_outputs(self, features, logits):
        whitened = self.whitening_.transform(features.cpu())
        centers = torch.as_tensor(self.cluster_centers_, dtype=whitened.dtype)
        labels, _ = assign(whitened.float(), centers.float())
        return torch.as_tensor(labels).long()

    def predict(self, X) -> np.ndarray:
        """Nearest centroid of the whitened features of each sample.

        Parameters
        ----------
        %(X_predict)s

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int64
            The nearest centroid (``cluster_centers_``) of each sample's whitened features;
            ``labels_`` on the training data. With ``merge_to``, mapped through
            ``merge_map_``.
        """
        features = torch.as_tensor(self.transform(X))
        return self._merged(to_numpy(self._labels_from_outputs(features, None)).astype(np.int64))

    def predict_proba(self, X) -> np.ndarray:
        """Soft assignment: softmax of cosine similarities to the centroids (temperature 0.1).

        Parameters
        ----------
        %(X_predict)s

        Returns
        -------
        proba : ndarray of shape (n_samples, n_clusters)
            The softmax over clusters of the cosine similarities between each sample's
            whitened features and the centroids, divided by 0.1; float64, every row sums
            to 1. With ``merge_to``, summed per merged cluster (``merge_to`` columns).
        """
        features = torch.as_tensor(self.transform(X))
        whitened = self.whitening_.transform(features)
        centers = torch.as_tensor(self.cluster_centers_, dtype=whitened.dtype)
        similarity = (
            nn.functional.normalize(whitened, dim=1) @ nn.functional.normalize(centers, dim=1).T
        )
        return self._merged_proba(to_numpy(torch.softmax(similarity.double() / 0.1, dim=1)))

    @classmethod
    def from_deepcluster_checkpoint(
        cls,
        path: str | os.PathLike,
        X,
        *,
        n_clusters: int | None = None,
        pca_dim: int = 256,
        kmeans_iter: int = 20,
        kmeans_backend: str = "auto",
        image_size: int = 224,
        device: str = "auto",
        precision: str = "auto",
        random_state: int | None = None,
        weights_only: bool = True,
    ) -> DeepClusterEstimator:
        """A fitted estimator from one of DeepCluster's released checkpoints.

        Reads the ``checkpoint.pth.tar`` files of DeepCluster's reference code (the released
        AlexNet and VGG-16, both with batch norm): a dict with ``'arch'`` (``'alexnet'`` or
        ``'vgg16'``), ``'state_dict'`` and usually ``'epoch'`` and ``'optimizer'``. The
        features may have run under DataParallel (``features.module.N``); the Sobel layers
        (``sobel.0``/``sobel.1``), when present, become the fixed Sobel filter
        (``sobel=True``); the backbone is ``'deepcluster-alexnet'`` or
        ``'deepcluster-vgg16'`` (features, fc6 and fc7: ``transform`` gives the 4096 fc7
        features after their ReLU) and ``top_layer``, when present, the clustering head.
        Inputs are normalised with the ImageNet statistics, then Sobel-filtered.

        The file holds no clustering (DeepCluster's PCA and k-means are recomputed at every
        epoch and not saved), so DeepCluster's clustering step is run here on ``X``: the
        features are PCA-whitened to ``pca_dim`` dimensions, L2-normalised and clustered by
        k-means into ``n_clusters``; ``predict`` then gives the nearest centroid, as after
        :meth:`fit`.

        Parameters
        ----------
        path : str or path-like
            The checkpoint file.
        X : array-like of images or image files
            The images to cluster (at least ``n_clusters``), any input :meth:`fit` takes.
        n_clusters : int, optional
            Clusters of the k-means. ``None``: the rows of the file's ``top_layer`` (10,000
            for the released models); a file without ``top_layer`` needs it. Another number
            than ``top_layer``'s gives a freshly initialised head (unused by ``predict``).
        pca_dim : int, default=256
            Dimensions the features are whitened to (the reference's 256).
        kmeans_iter : int, default=20
            k-means iterations (the reference's 20).
        kmeans_backend : {'auto', 'faiss', 'torch'}, default='auto'
            k-means implementation, as in the estimator.
        image_size : int, default=224
            Side length images are resized to (the released models' 224).
        device : str, default='auto'
            Device for inference and k-means.
        precision : {'auto', 'mixed', 'float32'}, default='auto'
            Floating-point precision of the forward passes, as in the estimator.
        random_state : int, optional
            Seed of the k-means initialisation.
        weights_only : bool, default=True
            Load with ``torch.load(..., weights_only=True)``, which cannot run code from the
            file. Set ``False`` only for a file you trust.

        Returns
        -------
        DeepClusterEstimator
            Fitted: ``network_``, ``whitening_``, ``cluster_centers_``, ``labels_`` (of
            ``X``), ``n_clusters``, ``sobel``, ``backbone``.

        Raises
        ------
        ValueError
            If the file is not a DeepCluster AlexNet or VGG-16 checkpoint, its weights do not
            fit the architecture, or it has no ``top_layer`` and ``n_clusters`` is None.
        """
        from deepclust._utils import resolve_device
        from deepclust.methods import _deepcluster_checkpoint as reader
        from deepclust.methods._sela_checkpoint import load_checkpoint_file

        loaded = reader.read_deepcluster_checkpoint(
            load_checkpoint_file(path, weights_only),
            path,
            mean=reader.IMAGENET_MEAN,
            std=reader.IMAGENET_STD,
            image_size=image_size,
            n_clusters=n_clusters,
        )
        est = cls(
            n_clusters=loaded.network.heads.n_clusters,
            backbone=loaded.architecture,
            pca_dim=pca_dim,
            final_pca_dim=None,
            kmeans_iter=kmeans_iter,
            sobel=loaded.sobel,
            kmeans_backend=kmeans_backend,
            device=device,
            precision=precision,
            image_size=image_size,
            random_state=random_state,
        )
        est.network_ = loaded.network
        est.input_kind_ = "images"
        est.input_shape_ = (3, image_size, image_size)
        est.n_features_in_ = 3 * image_size * image_size
        est.device_ = resolve_device(device)
        est.history_ = []
        est.n_iter_ = 0
        seed = np.random.default_rng(random_state).integers(2**31)
        features = torch.as_tensor(est.transform(X))
        est.whitening_, whitened, result = est._cluster(features, int(seed), est.device_)
        centers = torch.as_tensor(result.centroids).float().cpu()
        est.cluster_centers_ = to_numpy(centers)
        labels = assign(whitened.float(), centers)[0]
        est.labels_ = to_numpy(torch.as_tensor(labels)).astype(np.int64)
        return est
