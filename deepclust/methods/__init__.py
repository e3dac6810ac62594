"""The four deep-clustering estimators, thin on top of the shared parts."""

from deepclust.methods._base import BaseDeepClusterer, FitContext
from deepclust.methods.clusterfit import ClusterFitTransformer
from deepclust.methods.deepcluster import DeepClusterEstimator
from deepclust.methods.scan import SCANClusterer
from deepclust.methods.sela import SelfLabelClusterer

__all__ = [
    "BaseDeepClusterer",
    "ClusterFitTransformer",
    "DeepClusterEstimator",
    "FitContext",
    "SCANClusterer",
    "SelfLabelClusterer",
]
