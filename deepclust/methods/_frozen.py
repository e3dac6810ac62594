"""Fits on frozen backbone features (``freeze_backbone=True``): features once, heads only.

The backbone (with its ``weights``, or the method's ``pretrained`` network) computes the
features of every image once, without augmentation. The method then trains on that
feature matrix as on any 2-D input, with an identity backbone, so only its heads (and
projection head) learn; its recipe is the one for features of that size. The fitted
network puts the frozen backbone back in front of the trained heads, with the
standardisation the heads were trained behind, so ``predict`` and ``transform`` read
images.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from deepclust._utils import to_numpy
from deepclust.data import DataSource, as_source
from deepclust.methods._feature_source import resolve_feature_source
from deepclust.networks import ClusteringNetwork
from deepclust.recipes import with_settings
from deepclust.training._inference import run_sharded_inference

__all__ = ["fit_on_frozen_features", "frozen_feature_network"]

#: Input values per batch of the feature pass (about 16 MB of float32 images): 28 px
#: images go in the fit's inference batches, 224 px colour images 27 at a time.
_VALUES_PER_BATCH = 2**22


def frozen_feature_network(estimator, source: DataSource) -> ClusteringNetwork:
    """The network whose ``features`` a frozen fit trains on: the estimator's backbone
    with its weights, or its ``pretrained`` network (with that network's input
    normalisation and filter).

    Parameters
    ----------
    estimator : BaseDeepClusterer
        The fitting copy (recipe applied, weights read).
    source : DataSource
        The images, at the fit's image size.

    Returns
    -------
    ClusteringNetwork
        In eval mode; its heads are unused.
    """
    pretrained = getattr(estimator, "pretrained", None)
    if pretrained is not None:
        feature_source = resolve_feature_source(pretrained)
        network = estimator._new_network(
            source,
            backbone=feature_source.backbone,
            stats=feature_source.stats,
            input_filter=feature_source.input_filter,
            invariant_input=False,
        )
    else:
        network = estimator._new_network(source, input_filter=estimator._method_input_filter())
    network.requires_grad_(False)
    return network.eval()


def _frozen_features(network: ClusteringNetwork, source: DataSource, context) -> np.ndarray:
    """Every sample's features, float16 when they are large (split over the ranks of a
    data-parallel fit and gathered in order)."""
    per_sample = max(1, math.prod(source.shape))
    batch_size = max(16, min(context.inference_batch_size, _VALUES_PER_BATCH // per_sample))
    features = run_sharded_inference(
        network.features,
        source,
        device=context.device,
        batch_size=batch_size,
        modules=(network,),
        progress=context.progress("Frozen features"),
        large_dtype=torch.float16,
    )
    return to_numpy(features)


def compose_frozen(backbone_network: ClusteringNetwork, trained: ClusteringNetwork):
    """The frozen backbone of ``backbone_network`` before the heads of ``trained`` (a
    network trained on its features), with ``trained``'s input standardisation.

    Parameters
    ----------
    backbone_network : ClusteringNetwork
        The frozen feature network.
    trained : ClusteringNetwork
        A network with an identity backbone trained on ``backbone_network``'s features.

    Returns
    -------
    ClusteringNetwork
        ``features(x)`` of it equals ``trained.features(backbone_network.features(x))``.
    """
    projection = trained.projection
    network = ClusteringNetwork(
        backbone_network.backbone,
        backbone_network.n_features,
        trained.heads.n_clusters,
        len(trained.heads),
        mean=to_numpy(backbone_network.normalize.mean),
        std=to_numpy(backbone_network.normalize.std),
        projection_dim=projection.layers[-1].out_features if projection is not None else None,
        input_filter=(
            None
            if isinstance(backbone_network.input_filter, nn.Identity)
            else backbone_network.input_filter
        ),
        feature_stats=(to_numpy(trained.normalize.mean), to_numpy(trained.normalize.std)),
    )
    network.heads.load_state_dict(trained.heads.state_dict())
    if projection is not None:
        network.projection.load_state_dict(projection.state_dict())
    network.requires_grad_(True)
    return network.eval()


def fit_on_frozen_features(estimator, fitting, source: DataSource, context) -> tuple[dict, dict]:
    """Train the estimator's method on the frozen features of ``source``.

    Parameters
    ----------
    estimator : BaseDeepClusterer
        The estimator being fitted, with its own parameters (``'auto'`` ones included,
        which the recipe for the features resolves).
    fitting : BaseDeepClusterer
        The fitting copy of the estimator (recipe applied, weights read).
    source : DataSource
        The images, at the fit's image size.
    context : FitContext
        The fit's context (device, seed, callbacks, ...).

    Returns
    -------
    fitted : dict
        The method's fitted attributes, with ``network_`` reading images.
    recipe : dict
        The recipe record of the training on the features.
    """
    backbone_network = frozen_feature_network(fitting, source)
    features = as_source(_frozen_features(backbone_network, source, context))
    spec = type(fitting).method_spec
    heads_only = with_settings(
        estimator,
        {
            "backbone": nn.Identity(),
            "weights": None,
            "freeze_backbone": False,
            "invariant_to": None,
            "image_size": None,
            **({"pretrained": None} if hasattr(estimator, "pretrained") else {}),
            **spec.frozen_params,
        },
    )
    recipe = heads_only._resolve_recipe(features, context.device)
    heads_only = with_settings(heads_only, recipe["params"])
    heads_only._check_fit_params(features)
    heads_context = dataclasses.replace(
        context,
        batch_size=heads_only.batch_size,
        inference_batch_size=heads_only._inference_batch_size(context.device),
    )
    fitted = heads_only._fit_state_class(heads_only, features, heads_context).run()
    fitted["network_"] = compose_frozen(backbone_network, fitted["network_"])
    fitted["input_kind_"] = source.kind
    fitted["input_shape_"] = tuple(source.shape)
    return fitted, recipe
