"""SeLa: self-labelling via simultaneous clustering and representation learning."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from deepclust._utils import resolve_device, to_numpy
from deepclust.augment import AUGMENTATION_POLICIES
from deepclust.methods._base import BaseDeepClusterer
from deepclust.methods._docs import fill_doc
from deepclust.methods._fit_state import FitState
from deepclust.methods._registry import MethodSpec, register_method
from deepclust.methods._stages import extract_features, head_softmax
from deepclust.networks import ClusteringNetwork
from deepclust.recipes import DataFacts, epochs_for, image_settings
from deepclust.sinkhorn import round_to_sizes, sinkhorn_solve, target_counts
from deepclust.training import Stage, _data_parallel

__all__ = ["SeLaFit", "SelfLabelClusterer", "label_update_epochs"]

#: ``sinkhorn_dtype`` -> the dtype of the label step's N x K probabilities and kernel.
SINKHORN_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

#: Input normalisation of SeLa's released ImageNet models (torchvision's statistics).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def label_update_epochs(max_epochs: int, n_updates: int) -> list[int]:
    """Epochs before which SeLa recomputes its labels: a quadratic schedule, denser early.

    Update ``i`` of ``n_updates`` falls at the fraction ``(i / (n_updates + 1)) ** 2`` of
    training, so the last one comes before the end; fractions are rounded to epoch starts
    (epoch 0 excluded: training starts from the random equipartition), so several early
    updates may merge into one.

    Parameters
    ----------
    max_epochs : int
        Length of training in epochs; 0 or 1 leaves no epoch to update before.
    n_updates : int
        Label updates asked for, ``>= 0``; fewer are returned when updates merge.
    """
    if max_epochs <= 1 or n_updates <= 0:
        return []
    fractions = (np.arange(1, n_updates + 1) / (n_updates + 1)) ** 2
    epochs = np.clip(np.round(fractions * max_epochs).astype(int), 1, max_epochs - 1)
    return sorted(set(epochs.tolist()))


@dataclass
class SeLaFit(FitState):
    """One SeLa fit: the network, every head's current labels and its label schedule."""

    checkpoint_fields: ClassVar[dict[str, str]] = {"labels": "tensor"}

    network: ClusteringNetwork = field(init=False)
    labels: torch.Tensor = field(init=False)
    head_log_likelihoods: list[float] = field(init=False, default_factory=list)
    head_argmax: list[torch.Tensor] = field(init=False, default_factory=list)

    def __post_init__(self):
        est = self.estimator
        self.network = est._new_network(self.source, n_heads=est.n_heads).to(self.device)
        self.labels = est._initial_labels(len(self.source), self.seed).to(self.device)
        self.marginals = est._marginals()
        n_updates = (
            max(1, est.max_epochs // 2) if est.n_label_updates is None else est.n_label_updates
        )
        self.update_epochs = set(label_update_epochs(est.max_epochs, n_updates))

    def stages(self) -> list[Stage]:
        est = self.estimator
        return [
            self.pseudo_label_stage(
                "selflabel",
                "sgd",
                "step",
                momentum=est.momentum,
                weight_decay=est.weight_decay,
                on_epoch_begin=self.relabel_at_update_epochs,
            )
        ]

    def relabel_at_update_epochs(self, epoch: int) -> dict | None:
        """Recompute the labels before the scheduled epochs.

        Parameters
        ----------
        epoch : int
            The stage's epoch about to run, from 0; labels are recomputed when it is one
            of :func:`label_update_epochs`.
        """
        return self.relabel() if epoch in self.update_epochs else None

    def relabel(self) -> dict:
        """Every head's labels from the Sinkhorn label step, and SeLa's objective per head
        (the mean log-probability of the head's own labels).

        One inference pass computes the heads' input; the heads are then labelled one at a
        time (see :meth:`SelfLabelClusterer._label_pass`), so that one head's N x K
        probabilities are held at a time.
        """
        new, self.head_argmax, self.head_log_likelihoods = self.estimator._label_pass(
            self.network,
            self.source,
            self.device,
            self.context.inference_batch_size,
            self.marginals,
            progress=self.context.progress("label update"),
            check=self.check_finite,
        )
        changed = float((new != self.labels).float().mean())
        self.labels = new
        return {"label_change": changed}

    def fitted_attributes(self, history: list[dict]) -> dict:
        final = self.relabel()
        if history:
            history[-1]["final_label_change"] = final["label_change"]
        labels = to_numpy(self.labels).astype(np.int64)
        best_head = int(np.argmax(self.head_log_likelihoods))
        if history:  # how often predict (the head's argmax) gives the self-label
            history[-1]["labels_predict_agreement"] = float(
                np.mean(to_numpy(self.head_argmax[best_head]) == labels[best_head])
            )
        return {
            "network_": self.network,
            "labels_per_head_": labels,
            "labels_": labels[best_head],
            "best_head_": best_head,
            "head_log_likelihoods_": np.asarray(self.head_log_likelihoods),
        }


def sela_recipe(facts: DataFacts, budget: str) -> dict:
    """SeLa's settings for the data (the method's ``recipe``; see :mod:`deepclust.recipes`).

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
    epochs = epochs_for(facts, budget, 900_000)
    return {
        # Batch 1024 on Fashion-MNIST 70,000 (30 epochs): ACC 0.591, against 0.573 at 256
        # and 0.574 at 2048.
        **image_settings(facts, largest_batch=1024),
        # 900,000 images at 5,000 samples (180 epochs), 3.4 million at 70,000 (48 epochs).
        "max_epochs": epochs,
        # A label update before every epoch (at most 200): ACC 0.56 against 0.52 with 15.
        "n_label_updates": min(epochs, 200),
        # 'strong' with a cosine rate: 0.69 against 0.52 for 'simclr' with steps, on a
        # Fashion-MNIST subset of 10,000.
        "augmentation": "strong",
        "lr_schedule": "cosine",
    }


@register_method
@fill_doc
class SelfLabelClusterer(BaseDeepClusterer):
    """Self-labelling by optimal transport (SeLa; Asano, Rupprecht & Vedaldi, ICLR 2020).

    Starting from a random equal-size labelling, the network is trained by cross-entropy
    against its current labels under SimCLR-strength augmentation; ``n_label_updates``
    times during training the labels of all images are recomputed as the equal-size (or
    ``cluster_sizes``-shaped) partition that maximises the total log-probability of the
    network's predictions, solved by :func:`deepclust.sinkhorn_knopp`.

    Parameters
    ----------
    n_clusters : int, default=10
        %(n_clusters_desc)s
        Every head has ``n_clusters`` outputs.
    %(backbone)s
    %(weights)s
    %(freeze_backbone)s
    %(budget)s
    %(invariant_to)s
    %(merge_to)s
    n_heads : int, default=1
        Number of clustering heads trained together (``>= 1``; SeLa's ``hc``); each has
        its own labels. ``labels_`` and ``predict`` use the best head: the one whose final
        labels have the highest mean log-probability under the network (SeLa's objective).
    n_label_updates : int, None or 'auto', default='auto'
        Label recomputations over training (``>= 0``; SeLa's ``nopts``); ``None`` uses
        ``max(1, max_epochs // 2)``, ``'auto'`` the recipe's (one before every epoch, at
        most 200). Spread quadratically, denser early, as in the
        reference code; ``0`` trains on the random initial labels throughout. The labels
        are computed once more after the last epoch (``labels_``).
    lamb : float, default=25.0
        Sinkhorn power ``lambda`` of the label step (``> 0``): larger is closer to the
        exact (hard) transport problem and needs more Sinkhorn iterations; lower it if the
        label step warns that it did not converge.
    cluster_sizes : array-like of shape (n_clusters,) or None, default=None
        Target relative cluster sizes, positive numbers normalised to sum to 1 (uniform
        when ``None``), for data known to be imbalanced.
    sinkhorn_dtype : {'float32', 'bfloat16'}, default='float32'
        Storage type of the label step's two N x K matrices: one head's probabilities
        and the Sinkhorn kernel made from them (products and sums are computed in float32
        either way). The heads are labelled one after the other, so this memory does not
        grow with ``n_heads``: at 1.28 million images and 3,000 clusters it is 31 GB in
        float32 and 15 GB in ``'bfloat16'``. bfloat16 rounds the probabilities to 3
        significant digits, which changes the labels of samples whose best clusters are
        nearly tied, at the same objective: 0.2 %% of them after a short fit on 6
        well-separated clusters, 11 %% with the nearly uniform predictions of a network
        that has not learnt yet (20,000 samples, 3,000 clusters).
    augmentation : {'simclr', 'weak', 'strong', 'none', 'auto'} or nn.Module, default='auto'
        Augmentation of the training images (SeLa trains under SimCLR-strength
        augmentation); ``'auto'``: the recipe's, ``'strong'``.
        %(augmentation_desc)s
    %(device)s
    %(precision)s
    %(batch_size)s
    max_epochs : int or 'auto', default='auto'
        Training epochs (``>= 0``); the paper trains for hundreds of epochs on ImageNet.
        ``'auto'``: the recipe's, 900,000 images seen at 5,000 samples and
        ``budget='default'`` (180 epochs).
    lr : float, default=0.05
        SGD learning rate (``> 0``; SeLa's reference value), dropped tenfold at 50%% and
        75%% of training by the default schedule; momentum 0.9 and weight decay 1e-5 as in
        the reference.
    %(optimizer)s
        the self-labelling training, SGD with ``momentum``.
    %(lr_schedule)s
        the self-labelling training, ``'step'``.
    momentum : float, default=0.9
        Momentum (Nesterov, in ``[0, 1)``) of the SGD optimiser, as the reference; unused
        with ``optimizer='adam'`` or ``'adamw'``.
    %(weight_decay)s
        1e-5 is the reference's value.
    %(image_size)s
    %(on_bad_image)s
    %(cache_dir)s
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Final self-labels of the best head: the label step on the trained network's
        predictions (an equal-size, or ``cluster_sizes``-shaped, partition).
    labels_per_head_ : ndarray of shape (n_heads, n_samples)
        Final self-labels of every head.
    best_head_ : int
        Head used by ``labels_``, ``predict`` and ``predict_proba``.
    head_log_likelihoods_ : ndarray of shape (n_heads,)
        Mean log-probability of every head's final labels (the highest is ``best_head_``).
    %(network_)s
    %(history_)s
        SeLa's only stage is ``'selflabel'``. Records of epochs that began with a label
        update hold ``label_change`` (the fraction of labels it changed); the last record
        holds ``final_label_change`` (that of the final label step) and
        ``labels_predict_agreement`` (how often the best head's argmax, i.e. ``predict``,
        gives the final self-label).
    %(n_iter_)s
    %(n_features_in_)s
    %(input_shape_)s
    %(input_kind_)s
    %(recipe_)s
    %(nuisance_report_)s
    %(merge_map_)s
    %(n_clusters_trained_)s
    %(device_)s

    Examples
    --------
    >>> from deepclust import SelfLabelClusterer
    >>> from deepclust.datasets import load_digits_images
    >>> X, y = load_digits_images()
    >>> est = SelfLabelClusterer(n_clusters=10, max_epochs=2, random_state=0).fit(X)
    >>> est.labels_.shape
    (1797,)
    """

    method_spec = MethodSpec(
        name="sela",
        title="SelfLabelClusterer (SeLa; Asano, Rupprecht & Vedaldi, ICLR 2020)",
        recipe=sela_recipe,
        test_params=dict(
            n_clusters=3,
            max_epochs=30,
            n_label_updates=10,
            batch_size=32,
            lr=0.05,
            augmentation="simclr",
            lr_schedule=None,
            device="cpu",
        ),
        model_file={
            "labels_per_head_": "array",
            "best_head_": "int",
            "head_log_likelihoods_": "array",
        },
    )

    _fit_state_class = SeLaFit

    _parameter_constraints: dict = {
        **BaseDeepClusterer._parameter_constraints,
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "n_label_updates": [Interval(Integral, 0, None, closed="left"), None, StrOptions({"auto"})],
        "lamb": [Interval(Real, 0, None, closed="neither")],
        "cluster_sizes": ["array-like", None],
        "sinkhorn_dtype": [StrOptions(set(SINKHORN_DTYPES))],
        "augmentation": [
            StrOptions({*AUGMENTATION_POLICIES, "auto"}),
            torch.nn.Module,
            None,
        ],
        "momentum": [Interval(Real, 0, 1, closed="left")],
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
        n_heads=1,
        n_label_updates="auto",
        lamb=25.0,
        cluster_sizes=None,
        sinkhorn_dtype="float32",
        augmentation="auto",
        device="auto",
        precision="auto",
        batch_size="auto",
        max_epochs="auto",
        lr=0.05,
        optimizer=None,
        lr_schedule="auto",
        momentum=0.9,
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
        self.n_heads = n_heads
        self.n_label_updates = n_label_updates
        self.lamb = lamb
        self.cluster_sizes = cluster_sizes
        self.sinkhorn_dtype = sinkhorn_dtype
        self.augmentation = augmentation
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr = lr
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.image_size = image_size
        self.on_bad_image = on_bad_image
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.verbose = verbose

    def _marginals(self) -> np.ndarray | None:
        if self.cluster_sizes is None:
            return None
        sizes = np.asarray(self.cluster_sizes, dtype=np.float64)
        if (
            sizes.shape != (self.n_clusters,)
            or not np.all(np.isfinite(sizes))
            or np.any(sizes <= 0)
        ):
            raise ValueError(
                f"cluster_sizes must hold {self.n_clusters} positive numbers (one per "
                f"cluster); got {self.cluster_sizes!r}."
            )
        return sizes / sizes.sum()

    def _check_fit_params(self, source) -> None:
        self._marginals()

    def _initial_labels(self, n_samples: int, seed: int) -> torch.Tensor:
        """An exact equipartition per head: label i = i mod K, shuffled (or by sizes)."""
        rng = np.random.default_rng(seed)
        marginals = self._marginals()
        if marginals is None:
            base = np.arange(n_samples) % self.n_clusters
        else:  # the sizes the label step targets
            base = np.repeat(np.arange(self.n_clusters), target_counts(n_samples, marginals))
        return torch.from_numpy(np.stack([rng.permutation(base) for _ in range(self.n_heads)]))

    def _label_step(
        self, probs: torch.Tensor, marginals, *, n_total: int | None = None
    ) -> torch.Tensor:
        """Labels of one head: the Sinkhorn plan's argmax (its kernel stored in
        ``sinkhorn_dtype``), rounded to the target sizes when the argmax misses a target by
        more than 10 % (see :func:`round_to_sizes`).

        With ``n_total``, ``probs`` is this rank's block (:func:`_data_parallel.rank_rows`)
        of the ``n_total`` rows of a data-parallel fit: the Sinkhorn iterations all-reduce
        the column sums (``sinkhorn_solve(..., distributed=True)``), the cluster sizes are
        summed over the ranks and the labels gathered in sample order. The rounding is not
        distributed: when it is needed, every rank gathers the whole probabilities and
        rounds them (the same result on every rank).

        Parameters
        ----------
        probs : torch.Tensor of shape (n_samples, n_clusters) or (n_rank, n_clusters)
            The head's probabilities (this rank's block with ``n_total``).
        marginals : ndarray of shape (n_clusters,) or None
            Target cluster proportions.
        n_total : int, optional
            Rows of the whole problem when ``probs`` is this rank's block.

        Returns
        -------
        torch.Tensor of shape (n_samples,)
            int64 labels of every sample (of all ranks' rows with ``n_total``).
        """
        sharded = n_total is not None
        result = sinkhorn_solve(
            probs, self.lamb, marginals=marginals, dtype=self.sinkhorn_dtype, distributed=sharded
        )
        if not result.converged:
            warnings.warn(
                f"The Sinkhorn label step did not converge (largest relative cluster-mass "
                f"error {result.error:.3g}); lower lamb if this persists.",
                ConvergenceWarning,
                stacklevel=2,
            )
        n_samples = n_total if sharded else len(probs)
        counts = target_counts(n_samples, marginals, self.n_clusters)
        sizes = torch.bincount(result.labels, minlength=self.n_clusters)
        if sharded:
            sizes = torch.tensor(_data_parallel.sum_over_ranks(sizes.tolist(), probs.device))
        sizes = to_numpy(sizes)
        if np.any(np.abs(sizes - counts) > 0.1 * counts):
            whole = _data_parallel.gather_blocks(probs, n_total, probs.device) if sharded else probs
            return round_to_sizes(whole, result.log_v, self.lamb, counts)
        if sharded:
            return _data_parallel.gather_blocks(result.labels, n_total, probs.device)
        return result.labels

    def _label_pass(
        self,
        network: ClusteringNetwork,
        source,
        device: torch.device,
        batch_size: int,
        marginals: np.ndarray | None,
        *,
        progress: str | None = None,
        check: Callable[[torch.Tensor, str], None] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[float]]:
        """Every head's labels, argmax and mean log-likelihood, one head at a time.

        One inference pass stores the heads' input (the backbone features, float32 on the
        CPU); then each head's probabilities are computed into one N x K buffer of
        ``sinkhorn_dtype`` on ``device``, labelled by :meth:`_label_step` and freed before
        the next head. Peak memory is the features, one head's buffer and the Sinkhorn
        kernel, whatever ``n_heads``; with ``'float32'`` the results are those of
        labelling every head's :func:`~deepclust.methods._stages.head_probabilities`.

        In a data-parallel fit (:func:`_data_parallel.shards_rows`) each rank computes and
        keeps only its block of the features and of every head's probabilities (its share
        of the N x K buffer), solves the label step with the other ranks and gets every
        sample's labels and argmax, gathered in order.

        Parameters
        ----------
        network : ClusteringNetwork
            The network whose heads are labelled.
        source : DataSource
            The samples.
        device : torch.device
            Where the network runs and the probabilities are kept.
        batch_size : int
            Samples per forward pass.
        marginals : ndarray of shape (n_clusters,) or None
            Target cluster proportions (:meth:`_marginals`).
        progress : str, optional
            A progress-bar description for the inference pass.
        check : callable, optional
            ``check(probs, what)`` is called on every head's probabilities (the fit's
            check for non-finite values).

        Returns
        -------
        labels : torch.Tensor of shape (n_heads, n_samples)
            int64 labels of every head, on ``device``.
        argmax : list of torch.Tensor of shape (n_samples,)
            Every head's most probable cluster per sample.
        log_likelihoods : list of float
            Every head's mean log-probability of its labels (SeLa's objective).
        """
        n_total = len(source) if _data_parallel.shards_rows(len(source)) else None
        features = extract_features(
            network, source, device, batch_size, progress=progress, gather=n_total is None
        )
        heads = [
            self._label_head(head, features, device, batch_size, marginals, check, n_total=n_total)
            for head in network.heads
        ]
        labels, argmax, log_likelihoods = zip(*heads, strict=True)
        return torch.stack(labels), list(argmax), list(log_likelihoods)

    def _label_head(
        self,
        head: torch.nn.Module,
        features: torch.Tensor,
        device: torch.device,
        batch_size: int,
        marginals: np.ndarray | None,
        check: Callable[[torch.Tensor, str], None] | None = None,
        *,
        n_total: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """One head's labels, argmax and mean log-likelihood; its N x K buffer is freed on
        return.

        Parameters
        ----------
        head : nn.Module
            The clustering head.
        features : torch.Tensor of shape (n_samples, n_features)
            The heads' input.
        device : torch.device
            Where the head runs and the probabilities are kept.
        batch_size : int
            Rows per chunk of the head's pass.
        marginals : ndarray of shape (n_clusters,) or None
            Target cluster proportions.
        check : callable, optional
            ``check(probs, what)``, called on the probabilities (on every rank, with a NaN
            where any rank's probabilities are not finite, with ``n_total``).
        n_total : int, optional
            Rows of the whole data set when ``features`` is this rank's block of a
            data-parallel fit (:meth:`_label_step`); the labels, argmax and log-likelihood
            are then those of every sample.

        Returns
        -------
        labels : torch.Tensor of shape (n_samples,)
            The label step's labels, int64 on ``device``.
        argmax : torch.Tensor of shape (n_samples,)
            The head's most probable cluster per sample.
        log_likelihood : float
            Mean log-probability of ``labels``.
        """
        probs = head_softmax(
            head,
            features,
            device,
            batch_size,
            output_device=device,
            dtype=SINKHORN_DTYPES[self.sinkhorn_dtype],
        )
        if n_total is None:
            if check is not None:
                check(probs, "the label step's probabilities")
            labels = self._label_step(probs, marginals).to(device)
            log_likelihood = float(
                probs.gather(1, labels[:, None]).float().clamp_min(1e-12).log().mean()
            )
            return labels, probs.argmax(1), log_likelihood
        if check is not None and not _data_parallel.finite_on_every_rank(probs, device):
            check(torch.tensor([float("nan")]), "the label step's probabilities")
        labels = self._label_step(probs, marginals, n_total=n_total).to(device)
        mine = labels[_data_parallel.rank_rows(n_total)]
        log_sum = probs.gather(1, mine[:, None]).float().clamp_min(1e-12).log().sum()
        log_likelihood = _data_parallel.sum_over_ranks([float(log_sum)], device)[0] / n_total
        argmax = _data_parallel.gather_blocks(probs.argmax(1), n_total, device)
        return labels, argmax, log_likelihood

    # ------------------------------------------------------------------ SeLa checkpoints
    @classmethod
    def from_sela_checkpoint(
        cls,
        path: str | os.PathLike,
        *,
        image_size: int = 224,
        device: str = "auto",
        weights_only: bool = True,
    ) -> SelfLabelClusterer:
        """A fitted estimator from one of SeLa's released ResNet checkpoints.

        The released files are ``torch.save``-d dicts with ``'state_dict'`` (the weights of a
        torchvision ResNet with ``num_classes=K``, optionally with DataParallel's ``module.``
        prefix) and ``'L'`` (or ``'labels'``: the self-labels of the training images, shape
        ``(N,)`` or ``(n_heads, N)``). The architecture is recognised from the weights
        (ResNet-18, -34, -50, -101 or -152, e.g. ``resnet18-1k_pp.pth`` and
        ``resnet50-10x3k_pp.pth``); checkpoints of SeLa's own training code (``features.N``
        and ``top_layerH`` keys) are read too, with every head. The ``fc`` layer (or each
        ``top_layerH``) becomes a clustering head, so ``predict`` gives SeLa's clusters
        (head 0's) and ``transform`` the pooled features (512-d for ResNet-18/34, 2048-d
        otherwise); inputs are normalised with the ImageNet statistics the models were
        trained with. ``labels_`` are the labels of head 0: SeLa's torchvision files keep
        only that head as ``fc``, with every head's labels.

        Parameters
        ----------
        path : str or path-like
            The checkpoint file.
        image_size : int, default=224
            Side length images are resized to at ``predict``/``transform``.
        device : str, default='auto'
            Device for inference.
        weights_only : bool, default=True
            Load with ``torch.load(..., weights_only=True)``, which cannot run code from the
            file. Set ``False`` only for a file you trust that stores its labels as pickled
            objects.

        Returns
        -------
        SelfLabelClusterer
            Fitted: ``network_``, ``labels_``, ``labels_per_head_``, ``n_clusters`` = K,
            ``best_head_`` = 0.
        """
        from deepclust.methods._sela_checkpoint import load_checkpoint_file, read_sela_checkpoint

        checkpoint = load_checkpoint_file(path, weights_only)
        loaded = read_sela_checkpoint(checkpoint, path, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        est = cls(
            n_clusters=loaded.n_clusters,
            backbone=loaded.architecture,
            n_heads=len(loaded.network.heads),
            device=device,
            image_size=image_size,
        )
        if loaded.labels is not None:
            est.labels_per_head_ = loaded.labels
            est.labels_ = loaded.labels[0]  # the labels of head 0, the head predict uses
        est.best_head_ = 0
        est.network_ = loaded.network
        est.input_kind_ = "images"
        est.input_shape_ = (3, image_size, image_size)
        est.n_features_in_ = 3 * image_size * image_size
        est.device_ = resolve_device(device)
        est.history_ = []
        est.n_iter_ = 0
        return est
