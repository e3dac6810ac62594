"""Nuisance report: how much of the clusters cheap image statistics explain.

Each statistic of :mod:`deepclust.diagnostics._statistics` (colour, brightness,
background, image size, ...) is compared with the cluster labels by mutual information,
corrected for chance with a permutation baseline and divided by the entropy of the
clusters: the fraction of the clusters' information the statistic alone accounts for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import mutual_info_score

from deepclust.data import DataSource, as_source
from deepclust.diagnostics._statistics import file_statistics, image_statistics

__all__ = [
    "DEFAULT_THRESHOLD",
    "NuisanceWarning",
    "OPTION_FOR",
    "NuisanceReport",
    "NuisanceScore",
    "nuisance_report",
    "score_statistics",
]

DEFAULT_THRESHOLD = 0.30
"""Scores at or above this are flagged. On a 2-core CPU in December 2026, SCAN, SeLa,
DeepCluster and ClusterFit clusterings of the plain digits and Fashion-MNIST scored at most
0.26 on any statistic, and SCAN clusterings that followed random colours (the colour
shapes, the recoloured digits) 0.32-0.55 (``docs/benchmarks.rst``)."""

OPTION_FOR: dict[str, str | None] = {
    "colour": "colour",
    "hue": "colour",
    "saturation": "colour",
    "brightness": "brightness",
    "contrast": "brightness",
    "background": "background",
    "background brightness": "background",
    "width": "scale",
    "height": "scale",
    "aspect ratio": "scale",
    "file format": None,
    "subfolder": None,
}
"""The ``invariant_to`` value that removes each statistic (None: no option removes it)."""


class NuisanceWarning(UserWarning):
    """Issued by ``fit`` when a cheap image statistic explains the clusters (see
    :meth:`NuisanceReport.warning`); filter it with :func:`warnings.filterwarnings`."""


# Denominators at or below this mean the statistic tells every sample apart even at random.
_TINY = 1e-12


@dataclass(frozen=True)
class NuisanceScore:
    """How much of the clusters one statistic explains.

    Attributes
    ----------
    name : str
        The statistic (a name of ``IMAGE_STATISTICS`` or ``FILE_STATISTICS``).
    score : float
        ``(mutual_information - baseline) / (H(clusters) - baseline)``, clipped to
        ``[0, 1]``: 0 when the statistic tells no more about the clusters than chance, 1
        when it alone determines the cluster.
    mutual_information : float
        Mutual information between the clusters and the statistic's codes, in nats.
    baseline : float
        Mean mutual information with the codes randomly permuted, in nats.
    n_values : int
        Number of distinct codes of the statistic.
    option : str or None
        The ``invariant_to`` value that removes the statistic; None when no option does.
    """

    name: str
    score: float
    mutual_information: float
    baseline: float
    n_values: int
    option: str | None

    def to_dict(self) -> dict:
        """The score as a JSON-ready dictionary.

        Returns
        -------
        dict
            ``name``, ``score``, ``mutual_information``, ``baseline``, ``n_values`` and
            ``option``.
        """
        return {
            "name": self.name,
            "score": float(self.score),
            "mutual_information": float(self.mutual_information),
            "baseline": float(self.baseline),
            "n_values": int(self.n_values),
            "option": self.option,
        }


@dataclass(frozen=True)
class NuisanceReport:
    """Scores of the nuisance statistics against the cluster labels.

    Attributes
    ----------
    scores : tuple of NuisanceScore
        One per statistic with more than one value, highest score first.
    n_samples : int
        Number of images the statistics were computed on.
    threshold : float
        Scores at or above this are flagged.
    cluster_order : tuple of int
        The clusters sorted by their mean code of the top statistic: a montage in this
        order shows whether the clusters run along it (e.g. from dark to bright).
    """

    scores: tuple[NuisanceScore, ...]
    n_samples: int
    threshold: float = DEFAULT_THRESHOLD
    cluster_order: tuple[int, ...] = ()

    @property
    def top(self) -> NuisanceScore | None:
        """The highest score, or None when there is none.

        Returns
        -------
        NuisanceScore or None
        """
        return self.scores[0] if self.scores else None

    @property
    def flagged(self) -> tuple[NuisanceScore, ...]:
        """The scores at or above :attr:`threshold`, highest first.

        Returns
        -------
        tuple of NuisanceScore
        """
        return tuple(s for s in self.scores if s.score >= self.threshold)

    @property
    def flagged_options(self) -> tuple[str, ...]:
        """The ``invariant_to`` options that remove the flagged statistics, each once,
        highest score first (statistics no option removes are left out).

        Returns
        -------
        tuple of str
        """
        options = (s.option for s in self.flagged if s.option is not None)
        return tuple(dict.fromkeys(options))

    def warning(self) -> str | None:
        """One line on the highest flagged statistic and how to remove it.

        Returns
        -------
        str or None
            None when no score reaches the threshold.
        """
        if not self.flagged:
            return None
        top = self.flagged[0]
        if top.option is None:
            fix = "check how the files were collected if it must not matter."
        else:
            fix = (
                f"declare invariant_to=('{top.option}',) (--invariant-to {top.option}) "
                "if it must not matter."
            )
        return (
            f"the clusters follow {top.name} (score {top.score:.2f} >= "
            f"{self.threshold:.2f}): they may group images by {top.name} rather than "
            f"content; {fix}"
        )

    def to_dict(self) -> dict:
        """The report as a JSON-ready dictionary.

        Returns
        -------
        dict
            ``n_samples``, ``threshold`` and ``scores``, a list of
            :meth:`NuisanceScore.to_dict` dictionaries, highest score first.
        """
        return {
            "n_samples": int(self.n_samples),
            "threshold": float(self.threshold),
            "scores": [s.to_dict() for s in self.scores],
            "cluster_order": [int(c) for c in self.cluster_order],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> NuisanceReport:
        """The report a :meth:`to_dict` dictionary describes.

        Parameters
        ----------
        d : mapping
            As returned by :meth:`to_dict` (possibly after a JSON round trip).

        Returns
        -------
        NuisanceReport
        """
        scores = tuple(
            NuisanceScore(
                name=str(s["name"]),
                score=float(s["score"]),
                mutual_information=float(s["mutual_information"]),
                baseline=float(s["baseline"]),
                n_values=int(s["n_values"]),
                option=None if s.get("option") is None else str(s["option"]),
            )
            for s in d.get("scores", ())
        )
        return cls(
            scores=tuple(sorted(scores, key=lambda s: -s.score)),
            n_samples=int(d["n_samples"]),
            threshold=float(d.get("threshold", DEFAULT_THRESHOLD)),
            cluster_order=tuple(int(c) for c in d.get("cluster_order", ())),
        )


def _entropy(codes: np.ndarray) -> float:
    """Entropy in nats of the distribution of ``codes`` (integers from 0)."""
    counts = np.bincount(codes)
    p = counts[counts > 0] / len(codes)
    return float(-(p * np.log(p)).sum())


def _score_one(
    name: str,
    labels: np.ndarray,
    codes: np.ndarray,
    entropy: float,
    n_permutations: int,
    rng: np.random.Generator,
) -> NuisanceScore:
    """Chance-corrected uncertainty coefficient of the clusters given one statistic."""
    mi = float(mutual_info_score(labels, codes))
    shuffled = [mutual_info_score(labels, rng.permutation(codes)) for _ in range(n_permutations)]
    baseline = float(np.mean(shuffled)) if shuffled else 0.0
    room = entropy - baseline
    score = float(np.clip((mi - baseline) / room, 0.0, 1.0)) if room > _TINY else 0.0
    return NuisanceScore(
        name=name,
        score=score,
        mutual_information=mi,
        baseline=baseline,
        n_values=int(len(np.unique(codes))),
        option=OPTION_FOR.get(name),
    )


def score_statistics(
    labels: np.ndarray,
    statistics: Mapping[str, np.ndarray],
    *,
    n_permutations: int = 5,
    random_state: int | None = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> NuisanceReport:
    """Score each statistic by the fraction of the clusters' entropy it explains.

    For a statistic with codes ``s`` and clusters ``c``:
    ``score = max(0, (I(c; s) - b) / (H(c) - b))``, where ``I`` is the mutual information
    and ``H`` the entropy (in nats), and ``b`` the mean of ``I`` over ``n_permutations``
    random permutations of ``s``: the uncertainty coefficient ``U(c | s)``, corrected for
    chance. 0 means no more than chance, 1 that the statistic alone determines the cluster.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Cluster labels.
    statistics : mapping of str to array-like of shape (n_samples,)
        Discrete codes of each statistic (e.g. from :func:`image_statistics`). Statistics
        with a single code are left out.
    n_permutations : int, default=5
        Permutations averaged for the chance baseline.
    random_state : int or None, default=0
        Seed of the permutations (:func:`numpy.random.default_rng`).
    threshold : float, default=DEFAULT_THRESHOLD
        Scores at or above this are flagged.

    Returns
    -------
    NuisanceReport
        Empty when the labels hold a single cluster.
    """
    labels = np.asarray(labels).ravel()
    _, label_codes = np.unique(labels, return_inverse=True)
    label_codes = label_codes.ravel()
    entropy = _entropy(label_codes)
    scores = []
    if entropy > _TINY:
        rng = np.random.default_rng(random_state)
        for name, codes in statistics.items():
            codes = np.asarray(codes).ravel()
            if len(codes) != len(labels):
                raise ValueError(
                    f"Statistic {name!r} has {len(codes)} values for {len(labels)} labels."
                )
            if len(np.unique(codes)) < 2:
                continue
            scores.append(_score_one(name, label_codes, codes, entropy, n_permutations, rng))
    scores.sort(key=lambda s: -s.score)
    order = _cluster_order(labels, statistics[scores[0].name]) if scores else ()
    return NuisanceReport(
        scores=tuple(scores), n_samples=len(labels), threshold=threshold, cluster_order=order
    )


def _cluster_order(labels: np.ndarray, codes) -> tuple[int, ...]:
    """The clusters present, sorted by the mean code of the statistic (ties by label)."""
    present, inverse = np.unique(labels, return_inverse=True)
    means = np.bincount(inverse.ravel(), weights=np.asarray(codes, float).ravel())
    means /= np.bincount(inverse.ravel())
    return tuple(int(present[i]) for i in np.lexsort((present, means)))


def nuisance_report(
    source,
    labels: np.ndarray,
    *,
    max_samples: int | None = 20000,
    random_state: int | None = 0,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 1024,
) -> NuisanceReport:
    """Tell whether the clusters follow colour, brightness, background or image size.

    Cheap statistics of the images (see :func:`image_statistics`) and, for image files,
    of their headers and folders (see :func:`file_statistics`) are scored against the
    cluster labels with :func:`score_statistics`.

    Parameters
    ----------
    source : DataSource or array-like
        The clustered images; anything else :func:`deepclust.data.as_source` accepts is
        wrapped first. A source of features gives an empty report.
    labels : array-like of shape (n_samples,)
        Cluster label of each sample of ``source``.
    max_samples : int or None, default=20000
        At most this many samples, drawn at random without replacement, are described;
        None describes all of them.
    random_state : int or None, default=0
        Seed of the sample draw and of the permutation baseline.
    threshold : float, default=DEFAULT_THRESHOLD
        Scores at or above this are flagged.
    batch_size : int, default=1024
        Images loaded at a time.

    Returns
    -------
    NuisanceReport
        The scores, highest first; ``n_samples`` is the number of images described.
    """
    if not isinstance(source, DataSource):
        source = as_source(source)
    labels = np.asarray(labels).ravel()
    if len(labels) != len(source):
        raise ValueError(f"Got {len(labels)} labels for {len(source)} samples.")
    if source.kind != "images":
        return NuisanceReport(scores=(), n_samples=0, threshold=threshold)
    rng = np.random.default_rng(random_state)
    n = len(source)
    if max_samples is None or n <= max_samples:
        indices = np.arange(n)
    else:
        indices = np.sort(rng.choice(n, size=int(max_samples), replace=False))
    statistics = image_statistics(source, indices, batch_size=batch_size)
    paths = getattr(source, "paths", None)
    if paths is not None:
        chosen = [paths[i] for i in indices]
        statistics.update(file_statistics(chosen, root=getattr(source, "root", None)))
    return score_statistics(
        labels[indices],
        statistics,
        random_state=random_state,
        threshold=threshold,
    )
