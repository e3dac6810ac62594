"""The deep-clustering methods, thin on top of the shared parts, and their registry."""

from deepclust.methods._base import BaseDeepClusterer, FitContext
from deepclust.methods._fit_state import FitState
from deepclust.methods._registry import (
    MethodSpec,
    get_method,
    method_names,
    method_spec,
    register_method,
    registered_methods,
    unregister_method,
)

# Imported in the order the methods are listed (registration order).
from deepclust.methods.sela import SelfLabelClusterer

# isort: split
from deepclust.methods.deepcluster import DeepClusterEstimator

# isort: split
from deepclust.methods.scan import SCANClusterer

# isort: split
from deepclust.methods.clusterfit import ClusterFitTransformer

# isort: split
from deepclust.methods._scan_checkpoint import scan_pretext_network

#: The estimator classes of the built-in methods, re-exported by the top-level package.
ESTIMATOR_NAMES = [
    "SelfLabelClusterer",
    "DeepClusterEstimator",
    "SCANClusterer",
    "ClusterFitTransformer",
]

__all__ = [
    "ESTIMATOR_NAMES",
    "BaseDeepClusterer",
    "ClusterFitTransformer",
    "DeepClusterEstimator",
    "FitContext",
    "FitState",
    "MethodSpec",
    "SCANClusterer",
    "SelfLabelClusterer",
    "get_method",
    "method_names",
    "method_spec",
    "register_method",
    "registered_methods",
    "scan_pretext_network",
    "unregister_method",
]
