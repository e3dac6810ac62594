"""The base every deepclust estimator shares: input checks, network, inference, scoring."""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
    clone,
)
from sklearn.metrics import silhouette_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from deepclust._utils import (
    available_cpus,
    resolve_device,
    seed_everything,
    to_numpy,
    torch_threads_at_most,
)
from deepclust.augment import check_invariances, is_auto_invariances
from deepclust.cluster._merge import merge_prototypes
from deepclust.data import DataSource, as_source
from deepclust.diagnostics import NuisanceWarning, nuisance_report
from deepclust.distributed import is_main_process
from deepclust.methods._docs import fill_doc
from deepclust.methods._frozen import fit_on_frozen_features
from deepclust.networks import (
    INPUT_INVARIANCES,
    ClusteringNetwork,
    InvariantInput,
    build_backbone,
    load_backbone_weights,
    pretrained_image_size,
    read_weights,
    resolve_backbone_name,
)
from deepclust.networks._backbones import TORCHVISION_PREFIX
from deepclust.recipes import BUDGETS, DataFacts, is_auto, resolve_recipe, with_settings
from deepclust.training import PRECISIONS, Trainer, _data_parallel, run_inference, use_precision
from deepclust.training._inference import run_sharded_inference

__all__ = ["BaseDeepClusterer", "FitContext"]

#: Where the documentation is published; the HTML representation of an estimator links to
#: its API page there.
DOCS_URL = "https://deepclust.readthedocs.io/en/stable"


@dataclass
class FitContext:
    """What one call of ``fit`` passes to a method's ``_fit``.

    Attributes
    ----------
    device : torch.device
    seed : int
        Derived from ``random_state``; torch, NumPy and Python are already seeded with it.
    y : ndarray or None
        True labels, for reporting only (never used for training).
    batch_size, inference_batch_size : int
    verbose : bool or int
    callbacks : list of Callback
        Extra trainer callbacks (the command line adds checkpointing).
    resume_state : dict or None
        A checkpoint to continue from.
    """

    device: torch.device
    seed: int
    y: np.ndarray | None
    batch_size: int
    inference_batch_size: int
    verbose: bool | int = False
    callbacks: list = field(default_factory=list)
    resume_state: dict | None = None

    def progress(self, description: str) -> str | None:
        """A progress-bar description when ``verbose``, else ``None``.

        Parameters
        ----------
        description : str
            What the bar shows.

        Returns
        -------
        str or None
        """
        return description if self.verbose else None

    def trainer(self, state=None) -> Trainer:
        """A :class:`~deepclust.training.Trainer` set up for this fit.

        Parameters
        ----------
        state : object with ``state_dict`` and ``load_state_dict``, optional
            The method's own fit state, saved in and restored from checkpoints.

        Returns
        -------
        Trainer
        """
        trainer = Trainer(
            self.device,
            self.batch_size,
            random_state=self.seed,
            verbose=self.verbose,
            callbacks=self.callbacks,
            state=state,
        )
        if self.resume_state is not None:
            trainer.resume_from(self.resume_state)
        return trainer


def _as_pair(size) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (Integral, np.integer)) else tuple(size)


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


@contextmanager
def _global_random_state_kept():
    """Restore Python's, NumPy's and torch's global generators on leaving."""
    python_state, numpy_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        with torch.random.fork_rng(devices=_cuda_devices()):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)  # noqa: NPY002


@fill_doc
class BaseDeepClusterer(
    ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, BaseEstimator
):
    """Shared machinery of the deep-clustering estimators.

    A method subclasses it with its parameters, a :class:`~deepclust.methods.MethodSpec`
    in ``method_spec`` and a :class:`~deepclust.methods.FitState` subclass in
    ``_fit_state_class``, whose :meth:`~deepclust.methods.FitState.run` trains and returns
    the fitted attributes. The base validates parameters and input before any training,
    sets the attributes only once training has finished (an interrupted fit leaves the
    estimator unfitted), and provides ``predict``, ``predict_proba``, ``transform`` and
    ``score``. Every fitted estimator has ``network_`` (in eval mode), ``labels_``,
    ``history_`` (one record per training epoch of every stage) and ``n_iter_`` (the
    number of those epochs).
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(Integral, 2, None, closed="left")],
        "backbone": [str, nn.Module],
        "weights": [str, os.PathLike, Mapping, None],
        "freeze_backbone": ["boolean"],
        "budget": [StrOptions(set(BUDGETS))],
        "invariant_to": [str, "array-like", None],
        "merge_to": [Interval(Integral, 2, None, closed="left"), None],
        "device": [str, torch.device, None],
        "precision": [StrOptions(set(PRECISIONS))],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "optimizer": [StrOptions({"sgd", "adam", "adamw"}), None],
        "lr_schedule": [StrOptions({"cosine", "step", "constant", "auto"}), None],
        "image_size": [Interval(Integral, 4, None, closed="left"), tuple, None],
        "on_bad_image": [StrOptions({"raise", "skip"})],
        "cache_dir": [str, os.PathLike, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    _doc_link_module = "deepclust"
    _doc_link_template = DOCS_URL + "/generated/deepclust.{estimator_name}.html"

    #: Smallest batch size of gradient-free passes (predict, transform, label passes) by
    #: device type. On 2 CPU cores a label pass over 20,000 Fashion-MNIST images at 20 px
    #: ran at 14,000-23,000 images/s in batches of 256-512 and at 8,800-11,000 in batches
    #: of 2,048-4,096 (2026-12-03), so CPUs keep 512; GPUs take larger batches.
    _min_inference_batch_size = {"cpu": 512, "cuda": 2048}

    #: The :class:`~deepclust.methods.FitState` subclass that trains this method.
    _fit_state_class: type

    #: Parameters holding a fitted object the method reads (never fits): kept, not
    #: cloned, by :func:`sklearn.base.clone`, so a cloned estimator still starts from it.
    _fitted_input_params: tuple[str, ...] = ()

    # ------------------------------------------------------------------ input
    def _validate_features(self, reset: bool):
        def validate(X):
            return validate_data(
                self, X, reset=reset, dtype=[np.float32, np.float64], ensure_min_samples=1
            )

        return validate

    def _read_input(self, X, *, reset: bool) -> DataSource:
        """Validate ``X`` and wrap it in a :class:`DataSource` (before any training)."""
        if sp.issparse(X):
            validate_data(self, X, reset=reset)  # raises scikit-learn's sparse-input error
        if isinstance(X, torch.Tensor) and X.device.type == "meta":
            raise ValueError(
                "X is a tensor on the 'meta' device, which has shapes but no values; pass a "
                "tensor with data (e.g. on the CPU) or a numpy array."
            )
        validate_features = self._validate_features(reset=reset)
        if hasattr(X, "columns") and getattr(X, "ndim", None) == 2:
            # A DataFrame: scikit-learn's validation keeps (or checks) its column names.
            X = validate_features(X)
            validate_features = None
        if reset:
            source = as_source(
                X,
                image_size=self.image_size,
                on_bad_image=self.on_bad_image,
                validate_features=validate_features,
                cache_dir=getattr(self, "cache_dir", None),
            )
            if source.kind == "images":
                self.n_features_in_ = source.n_features
                for attr in ("feature_names_in_",):
                    if hasattr(self, attr):
                        delattr(self, attr)
            return source
        check_is_fitted(self)
        if self.input_kind_ == "features":
            source = as_source(X, validate_features=validate_features)
            if source.kind != "features":
                raise ValueError(
                    f"{type(self).__name__} was fitted on 2-D features of width "
                    f"{self.n_features_in_}; got images of shape {source.shape}."
                )
            return source
        channels, height, width = self.input_shape_
        source = as_source(
            X,
            image_size=(height, width),
            n_channels=channels,
            on_bad_image=self.on_bad_image,
            cache_dir=getattr(self, "cache_dir", None),
        )
        if source.kind != "images":
            raise ValueError(
                f"{type(self).__name__} was fitted on images of shape {self.input_shape_}; got "
                f"2-D features of width {source.shape[0]}. Pass images shaped like the fit data."
            )
        if source.shape[0] != channels:
            raise ValueError(
                f"X has {source.shape[0]} channel(s) but {type(self).__name__} was fitted on "
                f"{channels}-channel images. Convert the images (e.g. to "
                f"{'grayscale' if channels == 1 else 'RGB'}) before predicting."
            )
        return source

    def _check_n_samples(self, n_samples: int) -> None:
        if self.n_clusters > n_samples:
            raise ValueError(
                f"n_clusters={self.n_clusters} must be <= n_samples={n_samples}. Use fewer "
                "clusters or more samples."
            )

    def _training_settings(self, optimizer: str, lr_schedule: str) -> tuple[str, str]:
        """The optimiser and schedule of the main training stage: the user's (or the
        recipe's), else the method's reference defaults given here."""
        schedule = None if is_auto("lr_schedule", self.lr_schedule) else self.lr_schedule
        return self.optimizer or optimizer, schedule or lr_schedule

    def _check_fit_params(self, source: DataSource) -> None:
        """Method-specific checks run before training (override in subclasses)."""

    def _backbone_name(self):
        """The ``backbone`` the fit builds (a torchvision name when the weights are for
        one, see :func:`~deepclust.networks.resolve_backbone_name`), or the module."""
        backbone = self.backbone
        if not isinstance(backbone, str):
            return backbone
        return resolve_backbone_name(backbone, getattr(self, "weights", None))

    def _fitted_backbone_name(self):
        """The backbone name the fit built (see :meth:`_backbone_name`), for model files:
        a torchvision or timm backbone's own name, else the resolved parameter."""
        built = getattr(getattr(self, "network_", None), "backbone", None)
        if isinstance(getattr(built, "backbone_name", None), str):
            return built.backbone_name
        backbone = self._fitted_setting("backbone", default="auto")
        if not isinstance(backbone, str):
            return backbone
        return resolve_backbone_name(backbone, getattr(self, "weights", None))

    def _torchvision_name(self) -> str | None:
        """The torchvision model the backbone is, or None."""
        name = self._backbone_name()
        if isinstance(name, str) and name.startswith(TORCHVISION_PREFIX):
            return name[len(TORCHVISION_PREFIX) :]
        return None

    def _check_weights_params(self) -> None:
        """Refuse ``weights`` and ``freeze_backbone`` settings that cannot work whatever
        the data."""
        weights = getattr(self, "weights", None)
        pretrained = getattr(self, "pretrained", None)
        if weights is not None:
            if isinstance(self.backbone, str) and self.backbone == "auto":
                raise ValueError(
                    "weights= needs backbone= naming the architecture the weights are for "
                    "(e.g. backbone='resnet18'); got backbone='auto'."
                )
            if pretrained is not None:
                raise ValueError(
                    "Give weights= (the backbone's starting weights) or pretrained= (a "
                    "network the method starts from), not both."
                )
        if getattr(self, "freeze_backbone", False) and weights is None and pretrained is None:
            raise ValueError(
                "freeze_backbone=True trains only the heads on a pretrained backbone's "
                "features; give its weights= (or pretrained=), or set freeze_backbone=False."
            )

    def _check_weights(self, source: DataSource) -> None:
        """Refuse ``weights`` and ``freeze_backbone`` settings that cannot work on
        ``source``, before anything is read or trained."""
        self._check_weights_params()
        if getattr(self, "freeze_backbone", False):
            if source.kind != "images":
                raise ValueError(
                    "freeze_backbone=True needs images; for a 2-D feature matrix the "
                    "features are already fixed: fit on them with freeze_backbone=False."
                )

    def _method_input_filter(self) -> nn.Module | None:
        """The fixed filter the method puts before its backbone (DeepCluster: Sobel)."""
        return None

    def _check_merge_to(self) -> None:
        merge_to = getattr(self, "merge_to", None)
        if merge_to is not None and not 2 <= merge_to < self.n_clusters:
            raise ValueError(
                f"merge_to={merge_to} must be at least 2 and below n_clusters={self.n_clusters}: "
                "the fit trains n_clusters clusters and merges them into merge_to. Raise "
                "n_clusters, lower merge_to, or leave merge_to=None."
            )

    def _merge_clusters(self, fitted: dict, source: DataSource, context: FitContext) -> None:
        """With ``merge_to``, merge the trained clusters of ``fitted`` (see ``merge_map_``)."""
        merge_to = getattr(self, "merge_to", None)
        if merge_to is None:
            return
        network = fitted["network_"]
        features = run_sharded_inference(
            network.features,
            source,
            device=context.device,
            batch_size=context.inference_batch_size,
            modules=(network,),
            autocast=self._precision(),
        )
        labels = np.asarray(fitted["labels_"], dtype=np.int64)
        merge_map = merge_prototypes(to_numpy(features), labels, self.n_clusters, merge_to)
        fitted["labels_"] = merge_map[labels]
        fitted["merge_map_"] = merge_map
        fitted["n_clusters_trained_"] = int(self.n_clusters)

    def _merged(self, labels: np.ndarray) -> np.ndarray:
        """Trained cluster ids mapped through ``merge_map_`` (unchanged without one)."""
        merge_map = getattr(self, "merge_map_", None)
        return labels if merge_map is None else np.asarray(merge_map)[labels]

    def _merged_proba(self, proba: np.ndarray) -> np.ndarray:
        """Trained clusters' probabilities summed per merged cluster (without ``merge_map_``,
        unchanged)."""
        merge_map = getattr(self, "merge_map_", None)
        if merge_map is None:
            return proba
        merged = np.zeros((proba.shape[0], int(np.max(merge_map)) + 1), dtype=proba.dtype)
        np.add.at(merged.T, np.asarray(merge_map), proba.T)
        return merged

    def _invariances(self) -> tuple[str, ...]:
        """The invariances this fit applies, in a fixed order: the declared
        ``invariant_to``, checked; under ``'auto'`` the ones chosen for the current pass
        of :meth:`fit` (none for a method without the parameter)."""
        value = getattr(self, "invariant_to", None)
        if is_auto_invariances(value):
            return getattr(self, "_auto_invariances", ())
        return check_invariances(value)

    def _invariances_to_add(self, source: DataSource) -> tuple[str, ...]:
        """Under ``invariant_to='auto'``, the invariances a second pass applies: the
        options that remove the statistics the first pass's clusters follow (its
        :attr:`nuisance_report_`), none when nothing is flagged or a network starts
        from pretrained weights.

        A flagged colour on colour images brings the background with it: the network
        then reads each pixel's colour distance from the background, the one input of
        :class:`~deepclust.networks.InvariantInput` that keeps an object of any colour
        on any background (SCAN on the recoloured Fashion-MNIST, where only colour was
        flagged: ACC 0.691 with both, ``docs/benchmarks.rst``).
        """
        if not is_auto_invariances(getattr(self, "invariant_to", None)):
            return ()
        pretrained = (getattr(self, name, None) is not None for name in ("pretrained", "weights"))
        if source.kind != "images" or any(pretrained):
            return ()  # a pretrained network keeps the input it was trained on
        options = set(self.nuisance_report_.flagged_options)
        if "colour" in options and source.shape[0] >= 3:
            options.add("background")
        return check_invariances(tuple(options))

    def _input_filter(self, source: DataSource, method_filter: nn.Module | None):
        """The declared invariances' :class:`InvariantInput`, then ``method_filter``."""
        removed = [name for name in self._invariances() if name in INPUT_INVARIANCES]
        if not removed or source.kind != "images":
            return method_filter
        invariant = InvariantInput(removed)
        return invariant if method_filter is None else nn.Sequential(invariant, method_filter)

    # ------------------------------------------------------------------ fit
    def _seed(self) -> int:
        if isinstance(self.random_state, (Integral, np.integer)):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _precision(self) -> str:
        """The ``precision`` parameter (``'auto'`` for a method without one)."""
        return getattr(self, "precision", "auto")

    def _fitted_setting(self, name: str, default=None):
        """Parameter ``name`` as the fit used it: the parameter, or for ``'auto'`` the
        recipe's value (``default`` before a fit)."""
        value = getattr(self, name)
        if not is_auto(name, value):
            return value
        return getattr(self, "recipe_", {}).get("params", {}).get(name, default)

    def _inference_batch_size(self, device: torch.device) -> int:
        """Batch size of gradient-free passes over the data on ``device``."""
        batch_size = self._fitted_setting("batch_size", default=1)
        return max(batch_size, self._min_inference_batch_size.get(device.type, 512))

    def _resolve_recipe(self, source: DataSource, device: torch.device) -> dict:
        """The recipe record of a fit on ``source`` (see :attr:`recipe_`): a declared colour
        invariance makes the network read one channel, and the recipe grey images'
        settings."""
        facts = DataFacts.from_source(source, device, self.n_clusters)
        if facts.kind == "images" and "colour" in self._invariances():
            facts = dataclasses.replace(facts, input_channels=1)
        recipe = resolve_recipe(self, facts)
        side = pretrained_image_size(self._backbone_name(), getattr(self, "weights", None))
        if facts.kind == "images" and side is not None and is_auto("image_size", self.image_size):
            # The weights' own input size (224 px for ImageNet weights).
            recipe["params"]["image_size"] = (side, side)
        return recipe

    def _recipe_for(self, X) -> dict:
        """The recipe record ``fit(X)`` would resolve, without training (or changing
        ``self``)."""
        reader = copy.copy(self)
        return reader._resolve_recipe(
            reader._read_input(X, reset=True), resolve_device(self.device)
        )

    def _new_network(
        self,
        source: DataSource,
        *,
        n_heads: int = 1,
        projection_dim: int | None = None,
        backbone=None,
        input_filter: nn.Module | None = None,
        stats=None,
        invariant_input: bool = True,
    ) -> ClusteringNetwork:
        """Build a fresh network for ``source`` with input statistics from it; with
        ``invariant_input``, it reads its input through the declared invariances'
        :class:`InvariantInput` (a pretrained backbone keeps the input it was trained on)."""
        own_backbone = backbone is None
        backbone = self._backbone_name() if own_backbone else backbone
        if isinstance(backbone, nn.Module):
            backbone = copy.deepcopy(backbone)  # never train the user's module in place
        mean, std = stats if stats is not None else source.channel_stats()
        if invariant_input:
            input_filter = self._input_filter(source, input_filter)
        filter_shape = source.shape
        if input_filter is not None:
            with torch.no_grad():
                filter_shape = tuple(input_filter(torch.zeros(1, *source.shape)).shape[1:])
        module, n_features = build_backbone(backbone, filter_shape)
        weights = getattr(self, "weights", None)
        if own_backbone and weights is not None:
            load_backbone_weights(module, weights, self._torchvision_name())
        if getattr(module, "reads_unit_input", False):  # it normalises its input itself
            mean, std = np.zeros_like(mean), np.ones_like(std)
        return ClusteringNetwork(
            module,
            n_features,
            self.n_clusters,
            n_heads,
            mean=mean,
            std=std,
            projection_dim=projection_dim,
            input_filter=input_filter,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, callbacks=None, resume_from=None):
        """Learn a network and a clustering of ``X``.

        Parameters
        ----------
        X : array-like, torch.Tensor, folder or list of image paths
            Images (see :func:`deepclust.data.as_source` for the accepted forms) or a 2-D
            feature matrix.
        y : array-like of shape (n_samples,), optional
            Not used for training; accepted for API compatibility (some methods report
            diagnostics against it).
        callbacks : list of deepclust.training.Callback, optional
            Extra callbacks for the training engine (e.g. :class:`~deepclust.training.Checkpoint`).
        resume_from : dict, optional
            A checkpoint state (``deepclust.training.load_state(path)``) to continue from;
            with the same data and parameters, a resumed CPU fit ends as an uninterrupted one.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        previous = dict(vars(self))
        try:
            source = self._fit_checked(X, y, callbacks, resume_from)
            self._fit_again_if_flagged(X, y, callbacks, source)
        except BaseException:
            # Validation or an interrupted training (KeyboardInterrupt included) leaves the
            # estimator exactly as it was: no half-set fitted attributes.
            vars(self).clear()
            vars(self).update(previous)
            raise
        finally:
            vars(self).pop("_auto_invariances", None)
        message = self.nuisance_report_.warning()
        if message is not None:
            warnings.warn(message, NuisanceWarning, stacklevel=3)
        return self

    def _fit_again_if_flagged(self, X, y, callbacks, source: DataSource) -> None:
        """Under ``invariant_to='auto'``, fit again with :meth:`_invariances_to_add`
        when the fit just made is flagged, saying so with a ``NuisanceWarning``."""
        added = self._invariances_to_add(source)
        if not added:
            return
        first = self.nuisance_report_
        top = first.flagged[0]
        warnings.warn(
            f"the clusters followed {top.name} (score {top.score:.2f} >= "
            f"{first.threshold:.2f}); fitted again with invariant_to={added!r} "
            "(invariant_to='auto'). Set invariant_to=None (--invariant-to none) to keep "
            "the first fit.",
            NuisanceWarning,
            stacklevel=4,
        )
        self._auto_invariances = added
        self._fit_checked(X, y, callbacks, None)
        self.recipe_["invariances"]["first_fit_flagged"] = [s.to_dict() for s in first.flagged]

    def _fit_checked(self, X, y, callbacks, resume_from):
        device = resolve_device(self.device)
        source = self._read_input(X, reset=True)
        n_samples = len(source)
        if n_samples == 1:
            raise ValueError(
                "n_samples=1: deep clustering needs at least 2 samples (and at least "
                "n_clusters of them)."
            )
        self._check_n_samples(n_samples)
        self._check_merge_to()
        self._check_weights(source)
        if self._invariances() and source.kind != "images":
            raise ValueError(
                f"invariant_to={self._invariances()!r} needs images; got a 2-D feature matrix. "
                "Pass images, or leave invariant_to=None."
            )
        recipe = self._resolve_recipe(source, device)
        fitting = with_settings(self, recipe["params"])  # ``self`` keeps its 'auto' values
        if source.kind == "images" and fitting.image_size is not None:
            source = source.at_image_size(_as_pair(fitting.image_size))
        fitting._check_fit_params(source)
        if getattr(fitting, "weights", None) is not None:
            fitting.weights = read_weights(fitting.weights, fitting._torchvision_name())
            fitting._new_network(  # the weights fit the backbone: checked before training
                source,
                stats=(np.zeros(source.shape[0]), np.ones(source.shape[0])),
                input_filter=fitting._method_input_filter(),
            )
        if y is not None:
            y = np.asarray(y)
            if y.shape[0] != n_samples:
                raise ValueError(f"y has {y.shape[0]} entries but X has {n_samples} samples.")
        # Under torchrun, every rank fits with rank 0's seed and only rank 0 reports.
        seed = _data_parallel.same_on_every_rank(self._seed())
        context = FitContext(
            device=device,
            seed=seed,
            y=y,
            batch_size=fitting.batch_size,
            inference_batch_size=fitting._inference_batch_size(device),
            verbose=self.verbose if is_main_process() else False,
            callbacks=list(callbacks or ()),
            resume_state=resume_from,
        )
        # The fit seeds the global generators; the caller's stay as they were.
        with (
            _global_random_state_kept(),
            use_precision(self._precision()),
            torch_threads_at_most(available_cpus()),
        ):
            seed_everything(seed)
            if getattr(fitting, "freeze_backbone", False):
                fitted, recipe["frozen_features"] = fit_on_frozen_features(
                    self, fitting, source, context
                )
            else:
                fitted = self._fit_state_class(fitting, source, context).run()
            self._merge_clusters(fitted, source, context)
        # Attributes are set only now: an interrupted fit leaves the estimator unfitted.
        fitted["recipe_"] = recipe
        fitted.setdefault("input_kind_", source.kind)
        fitted.setdefault("input_shape_", tuple(source.shape))
        if source.kind == "images":  # the values per sample the network reads
            fitted["n_features_in_"] = source.n_features
        fitted["device_"] = device
        fitted["nuisance_report_"] = nuisance_report(
            source, fitted["labels_"], random_state=seed % 2**32
        )
        for name in ("merge_map_", "n_clusters_trained_"):
            if name not in fitted:  # a previous fit's merge no longer applies
                vars(self).pop(name, None)
        for name, value in fitted.items():
            setattr(self, name, value)
        return source

    # ------------------------------------------------------------------ inference
    def _inference_device(self) -> torch.device:
        try:
            return resolve_device(self.device)
        except ValueError:
            warnings.warn(
                f"device={self.device!r} is not available here; running on the CPU.",
                RuntimeWarning,
                stacklevel=3,
            )
            return torch.device("cpu")

    def _infer(self, X, fn_name: str):
        source = self._read_input(X, reset=False)
        device = self._inference_device()
        network = self.network_.to(device)
        fn = getattr(network, fn_name)
        return run_inference(
            fn,
            source,
            device=device,
            batch_size=self._inference_batch_size(device),
            modules=(network,),
            autocast=self._precision(),
        )

    def _head_index(self) -> int:
        return int(getattr(self, "best_head_", 0))

    def predict_proba(self, X) -> np.ndarray:
        """Soft cluster assignments (softmax of the clustering head).

        Parameters
        ----------
        %(X_predict)s

        Returns
        -------
        proba : ndarray of shape (n_samples, n_clusters)
            The softmax of the clustering head's logits (of ``best_head_`` where the method
            has several heads), float64; every row sums to 1. With ``merge_to``, the
            probabilities summed per merged cluster, of shape (n_samples, merge_to).
        """
        logits = self._infer(X, "forward")[self._head_index()]
        return self._merged_proba(to_numpy(torch.softmax(logits.double(), dim=1)))

    def predict(self, X) -> np.ndarray:
        """Cluster of each sample.

        Parameters
        ----------
        %(X_predict)s

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int64
            The cluster of each sample, in ``range(n_clusters)``: the argmax of the
            clustering head (of ``best_head_`` where the method has several heads); with
            ``merge_to``, mapped through ``merge_map_`` into ``range(merge_to)``.
        """
        logits = self._infer(X, "forward")[self._head_index()]
        return self._merged(to_numpy(logits.argmax(dim=1)).astype(np.int64))

    def transform(self, X) -> np.ndarray:
        """The learned representation: backbone features of each sample.

        Parameters
        ----------
        %(X_predict)s

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out), dtype float32
            The backbone features of each sample (before the clustering heads and any
            projection head).
        """
        return to_numpy(self._infer(X, "features")).astype(np.float32, copy=False)

    def score(self, X, y=None) -> float:
        """Label-free clustering quality: cosine silhouette of the predicted clusters.

        The silhouette (in [-1, 1], higher is better) of ``predict(X)`` measured on the
        L2-normalised learned features ``transform(X)``, on at most 5,000 samples. It
        rewards compact, well-separated clusters and is comparable across ``n_clusters``,
        so ``GridSearchCV(est, {'n_clusters': [...]})`` without ``y`` selects a count. A
        result with a single cluster scores -1.

        Parameters
        ----------
        %(X_predict)s
        y : Ignored
            Not used; present for API consistency.

        Returns
        -------
        score : float
            The cosine silhouette in ``[-1, 1]``; -1 when the prediction has a single
            cluster (or one cluster per sample).
        """
        source = self._read_input(X, reset=False)
        device = self._inference_device()
        network = self.network_.to(device)
        head = self._head_index()

        def features_and_logits(batch):
            features = network.features(batch)
            return [features, network.heads(features)[head]]

        features, logits = run_inference(
            features_and_logits,
            source,
            device=device,
            batch_size=self._inference_batch_size(device),
            modules=(network,),
        )
        labels = self._merged(to_numpy(self._labels_from_outputs(features, logits)))
        n_labels = len(np.unique(labels))
        if n_labels < 2 or n_labels >= len(labels):
            return -1.0
        embedding = to_numpy(nn.functional.normalize(features, dim=1))
        # n_jobs=1: with n_jobs=None, scikit-learn splits the distance matrix into column
        # blocks over joblib's active n_jobs (2 inside a task of joblib's dask backend, say),
        # which changes the float32 distances in the last bits; the score must not depend on
        # the joblib context it runs in.
        return float(
            silhouette_score(
                embedding,
                labels,
                metric="cosine",
                sample_size=min(5000, len(labels)),
                random_state=0,
                n_jobs=1,
            )
        )

    def _labels_from_outputs(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Labels from features and head logits (DeepCluster overrides: nearest centroid)."""
        return logits.argmax(dim=1)

    # ------------------------------------------------------------------ misc
    def __getstate__(self):
        state = super().__getstate__()
        network = state.get("network_")
        if network is not None and any(p.is_cuda for p in network.parameters()):
            state["network_"] = copy.deepcopy(network).cpu()
        if "device_" in state:
            state["device_"] = torch.device("cpu")
        return state

    def __sklearn_clone__(self):
        params = self.get_params(deep=False)
        new = type(self)(
            **{
                name: value if name in self._fitted_input_params else clone(value, safe=False)
                for name, value in params.items()
            }
        )
        for attr in ("_metadata_request", "_sklearn_output_config"):
            if hasattr(self, attr):
                setattr(new, attr, copy.deepcopy(getattr(self, attr)))
        return new

    @property
    def _n_features_out(self) -> int:
        """Width of :meth:`transform`'s output (for ``get_feature_names_out``)."""
        return self.network_.n_features

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (N, H, W) grey images
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
