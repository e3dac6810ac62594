"""Nuisance report: do the clusters follow colour, background, brightness or image size?

:func:`nuisance_report` computes cheap statistics of each image (mean colour and hue,
saturation, brightness, contrast, border colour and brightness) and, for image files, of
each file (width, height, aspect ratio, file format, subfolder), and compares each with
the cluster labels.

How to read a score: a statistic's score is the fraction of the clusters' entropy it
explains beyond chance, that is the mutual information between the clusters and the
statistic, minus its mean under random permutations of the statistic, divided by the
entropy of the clusters minus that same baseline (a chance-corrected uncertainty
coefficient ``U(clusters | statistic)``):

- 0: the statistic tells no more about the cluster of an image than chance does;
- 1: the statistic alone determines the cluster.

A high score means the clusters may group images by that statistic rather than by their
content. :attr:`NuisanceReport.flagged` lists the scores at or above the report's
threshold, and :meth:`NuisanceReport.warning` names the ``invariant_to`` option that
removes the top one (``OPTION_FOR``). The statistics are coarse codes (colours on a
4x4x4 grid, continuous values in 8 quantile bins), so a score can understate how much
the underlying value explains.
"""

from deepclust.diagnostics._nuisance import (
    DEFAULT_THRESHOLD,
    OPTION_FOR,
    NuisanceReport,
    NuisanceScore,
    NuisanceWarning,
    nuisance_report,
    score_statistics,
)
from deepclust.diagnostics._statistics import (
    FILE_STATISTICS,
    IMAGE_STATISTICS,
    file_statistics,
    image_statistics,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "FILE_STATISTICS",
    "IMAGE_STATISTICS",
    "OPTION_FOR",
    "NuisanceReport",
    "NuisanceScore",
    "NuisanceWarning",
    "file_statistics",
    "image_statistics",
    "nuisance_report",
    "score_statistics",
]
