"""deepclust: deep clustering of unlabelled images as scikit-learn estimators.

Four methods learn a representation and a clustering at once and hand back cluster labels
and a trained network: :class:`SelfLabelClusterer` (SeLa), :class:`DeepClusterEstimator`
(DeepCluster), :class:`SCANClusterer` (SCAN) and :class:`ClusterFitTransformer`
(ClusterFit). They share one input layer, one training engine and the kernels
:func:`sinkhorn_knopp`, :mod:`deepclust.cluster` and :mod:`deepclust.augment`; each is
registered in :mod:`deepclust.methods`, which lists them.
"""

from deepclust.methods import *  # noqa: F403  (the estimator classes)
from deepclust.methods import ESTIMATOR_NAMES as _ESTIMATOR_NAMES
from deepclust.sinkhorn import sinkhorn_knopp

__version__ = "0.1.0.dev0"

__all__ = [*_ESTIMATOR_NAMES, "__version__", "sinkhorn_knopp"]
