"""``choose_n_clusters``: fit every candidate count, score it without labels, pick one."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import clone

from deepclust.methods._shared_stage import shared_description, shared_stage
from deepclust.metrics import (
    augmentation_agreement,
    linear_predictability,
    silhouette_scorer,
    subsample_stability,
)

__all__ = [
    "NClustersSearch",
    "check_n_clusters_candidates",
    "choose_n_clusters",
    "default_n_clusters_candidates",
    "geometric_n_clusters_grid",
]

#: The label-free scorers :func:`choose_n_clusters` knows by name.
LABEL_FREE_SCORERS: dict[str, Callable] = {
    "silhouette": silhouette_scorer,
    "augmentation_agreement": augmentation_agreement,
    "linear_predictability": linear_predictability,
    "subsample_stability": subsample_stability,
}

#: The scorers of ``scoring='vote'``, in the order that breaks a tie of points.
VOTE_SCORERS = ("silhouette", "augmentation_agreement", "linear_predictability")

#: The scoring used when ``scoring`` is None: the vote picked the true count in 10 of 13
#: SCAN sweeps on seven data sets, the silhouette alone in 8 (docs/benchmarks.rst).
DEFAULT_SCORING = "vote"


@dataclass
class NClustersSearch:
    """The result of :func:`choose_n_clusters` (its fields are also its attributes).

    Parameters
    ----------
    table : list of dict
        One row per fit: ``n_clusters``, ``seed``, ``score`` and ``seconds`` (the fit's
        wall-clock time, scoring included, shared stages not included); under a vote,
        ``score`` is the first scorer's and ``scores`` holds every scorer's by name.
    best_n_clusters_ : int
        The candidate with the highest mean score over the seeds (under a vote, the most
        points, then the first scorer's highest mean); on a tie, the smallest.
    best_estimator_ : estimator
        The fit of ``best_n_clusters_`` with the first seed.
    scoring : str
        The scorer's name (or the callable's ``__name__``).
    shared : str
        What the fits shared (for example the SCAN pretext network), or why they share
        nothing.
    shared_seconds : float
        Time spent on the shared stages (0 when nothing is shared).
    votes : dict of int to float
        Under a vote of several scorers: every candidate's points, the sum over the
        scorers of its rank among the candidates (1 for the lowest mean score; tied
        candidates share their mean rank). Empty for a single scorer.
    """

    table: list[dict]
    best_n_clusters_: int
    best_estimator_: Any = field(repr=False)
    scoring: str
    shared: str
    shared_seconds: float = 0.0
    votes: dict[int, float] = field(default_factory=dict)

    def mean_scores(self, scorer: str | None = None) -> dict[int, float]:
        """The mean score of every candidate over the seeds.

        Parameters
        ----------
        scorer : str, optional
            Under a vote, the scorer whose scores are averaged (a key of the table's
            ``scores``); by default the row's ``score``, the first scorer's.

        Returns
        -------
        dict of int to float
            By candidate, in increasing order.
        """
        return _mean_by_k(self.table, scorer)

    def to_dict(self) -> dict:
        """A JSON-ready summary (what ``deepclust cluster`` records in ``run.json``).

        Returns
        -------
        dict
            ``table``, ``mean_scores`` (keys as strings), ``best_n_clusters``,
            ``scoring``, ``shared`` and ``shared_seconds``, and under a vote ``votes``
            (keys as strings).
        """
        record = {
            "table": [dict(row) for row in self.table],
            "mean_scores": {str(k): v for k, v in self.mean_scores().items()},
            "best_n_clusters": int(self.best_n_clusters_),
            "scoring": self.scoring,
            "shared": self.shared,
            "shared_seconds": float(self.shared_seconds),
        }
        if self.votes:
            record["votes"] = {str(k): float(v) for k, v in sorted(self.votes.items())}
        return record

    def plot(self, ax=None):
        """Draw the score against ``n_clusters``: the mean, the spread over seeds, the pick.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; a new figure's axes by default. Needs matplotlib.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            ax = plt.figure(figsize=(5, 3.2)).add_subplot()
        ks = np.array([row["n_clusters"] for row in self.table])
        scores = np.array([row["score"] for row in self.table])
        means = self.mean_scores()
        grid = np.array(list(means))
        spread = np.array([scores[ks == k].std() for k in grid])
        mean = np.array(list(means.values()))
        ax.scatter(ks, scores, s=12, alpha=0.5, label="one seed")
        ax.plot(grid, mean, marker="o", label="mean over seeds")
        ax.fill_between(grid, mean - spread, mean + spread, alpha=0.2)
        ax.axvline(self.best_n_clusters_, linestyle="--", color="grey")
        ax.set_xlabel("n_clusters")
        first = next(iter(self.table[0].get("scores", {self.scoring: None})))
        ax.set_ylabel(first)
        by = f" by {self.scoring}" if self.votes else ""
        ax.set_title(f"chosen: {self.best_n_clusters_} clusters{by}")
        ax.legend(loc="best", fontsize="small")
        return ax


def _n_samples(X) -> int:
    if hasattr(X, "shape") and len(getattr(X, "shape", ())) >= 1:
        return int(X.shape[0])
    from deepclust.data import as_source

    return len(as_source(X))


def check_n_clusters_candidates(candidates: Iterable, n_samples: int | None = None) -> list[int]:
    """Check a list of candidate cluster counts and return it sorted.

    Parameters
    ----------
    candidates : iterable of int
        The counts to try.
    n_samples : int, optional
        The number of samples; every candidate must be smaller.

    Returns
    -------
    list of int
        The candidates in increasing order.

    Raises
    ------
    ValueError
        When the list is empty, holds something other than integers, integers below 2,
        duplicates, or counts not smaller than ``n_samples``; the message says which.
    """
    hint = "pass distinct integers >= 2, e.g. [5, 10, 20]"
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Iterable):
        raise ValueError(f"candidates must be a list of integers; got {candidates!r}: {hint}.")
    values = list(candidates)
    if not values:
        raise ValueError(f"candidates is empty: {hint}.")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, Integral)]
    if bad:
        raise ValueError(f"candidates must be integers; {bad} are not: {hint}.")
    values = [int(v) for v in values]
    small = [v for v in values if v < 2]
    if small:
        raise ValueError(f"candidates must be at least 2 clusters; got {small}: {hint}.")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"candidates holds {repeated} more than once: {hint}.")
    if n_samples is not None:
        large = [v for v in values if v >= n_samples]
        if large:
            raise ValueError(
                f"candidates {large} are not smaller than the {n_samples} samples; keep "
                f"every candidate below {n_samples}."
            )
    return sorted(values)


def geometric_n_clusters_grid(low: int, high: int, *, step: float = 1.25) -> list[int]:
    """Integers from ``low`` to ``high`` about ``step`` times apart (both ends included).

    Parameters
    ----------
    low, high : int
        The ends, ``2 <= low <= high``.
    step : float, default=1.25
        The ratio between neighbours (25 % apart); rounding keeps them distinct.

    Returns
    -------
    list of int
        Increasing, starting at ``low`` and ending at ``high``.
    """
    if low < 2 or high < low:
        raise ValueError(f"need 2 <= low <= high; got {low} and {high}.")
    n_steps = max(1, round(math.log(high / low) / math.log(step))) if high > low else 0
    grid = {low, high}
    for i in range(1, n_steps):
        grid.add(round(low * (high / low) ** (i / n_steps)))
    return sorted(grid)


def default_n_clusters_candidates(n_samples: int) -> list[int]:
    """The candidates of ``--n-clusters auto``: a grid around ``sqrt(n_samples / 2)``.

    Integers about 25 % apart from a third to three times ``sqrt(n_samples / 2)`` (itself
    bounded to ``[2, 50]``), kept within ``[2, 50]`` and below ``n_samples``.

    Parameters
    ----------
    n_samples : int
        The number of samples.

    Returns
    -------
    list of int
        Increasing; for 1,000 samples ``[7, 9, 11, 13, 17, 21, 26, 32, 40, 50]``.
    """
    if n_samples < 3:
        raise ValueError(
            f"need at least 3 samples to choose a number of clusters; got {n_samples}."
        )
    centre = min(50.0, max(2.0, math.sqrt(n_samples / 2)))
    top = min(50, n_samples - 1)
    low = max(2, min(top, math.floor(centre / 3)))
    high = max(low, min(top, math.ceil(centre * 3)))
    return geometric_n_clusters_grid(low, high)


def _resolve_one(scoring) -> tuple[str, Callable]:
    if callable(scoring):
        return getattr(scoring, "__name__", type(scoring).__name__), scoring
    if isinstance(scoring, str) and scoring in LABEL_FREE_SCORERS:
        return scoring, LABEL_FREE_SCORERS[scoring]
    raise ValueError(
        f"scoring must be None, 'vote', a callable scorer(estimator, X, y=None), one of "
        f"{sorted(LABEL_FREE_SCORERS)} or a list of two or more of these; got {scoring!r}."
    )


def _resolve_scoring(scoring, estimator=None) -> tuple[str, dict[str, Callable]]:
    """``(name, {scorer name: scorer})``: one scorer, or the voters of a vote. ``None``
    is the vote for deepclust estimators and the silhouette for other estimators."""
    if scoring is None:
        from deepclust.methods._base import BaseDeepClusterer

        deep = isinstance(estimator, BaseDeepClusterer)
        scoring = DEFAULT_SCORING if deep else "silhouette"
    if isinstance(scoring, str) and scoring == "vote":
        return "vote", {name: LABEL_FREE_SCORERS[name] for name in VOTE_SCORERS}
    if isinstance(scoring, (list, tuple)):
        scorers = dict(_resolve_one(item) for item in scoring)
        if len(scoring) < 2 or len(scorers) != len(scoring):
            raise ValueError(
                f"a vote needs two or more different scorers; got {scoring!r}. Pass one "
                "scorer on its own, or a list of distinct ones."
            )
        return "vote of " + ", ".join(scorers), scorers
    name, scorer = _resolve_one(scoring)
    return name, {name: scorer}


def _check_seeds(seeds) -> list[int]:
    values = [seeds] if isinstance(seeds, Integral) else list(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, Integral) for s in values):
        raise ValueError(f"seeds must be a non-empty list of integers; got {seeds!r}.")
    return [int(s) for s in values]


def _fit_and_score(estimator, X, k: int, seed: int, params: dict, scorers, fitted=None):
    """``(fitted, {scorer name: score}, seconds)`` of one candidate and seed."""
    started = time.perf_counter()
    if fitted is None:
        fitted = clone(estimator).set_params(n_clusters=k, random_state=seed, **params).fit(X)
    scores = {name: float(scorer(fitted, X)) for name, scorer in scorers.items()}
    return fitted, scores, time.perf_counter() - started


def _mean_by_k(table: list[dict], scorer: str | None = None) -> dict[int, float]:
    """Every candidate's mean over the seeds of ``score`` (or of ``scores[scorer]``)."""
    by_k: dict[int, list[float]] = {}
    for row in table:
        value = row["score"] if scorer is None else row["scores"][scorer]
        by_k.setdefault(row["n_clusters"], []).append(value)
    return {k: float(np.mean(v)) for k, v in sorted(by_k.items())}


def _votes(table: list[dict], names: list[str]) -> dict[int, float]:
    """Every candidate's points: the sum over ``names`` of its rank by mean score."""
    from scipy.stats import rankdata

    points: dict[int, float] = {}
    for name in names:
        means = _mean_by_k(table, name)
        for k, rank in zip(means, rankdata(list(means.values())), strict=True):
            points[k] = points.get(k, 0.0) + float(rank)
    return points


def _best(table: list[dict], votes: dict[int, float]) -> int:
    """The highest mean score, or the most points (then the first scorer's mean) under a
    vote; on a tie, the smallest count."""
    means = _mean_by_k(table)
    key = {k: (votes.get(k, 0.0), m) for k, m in means.items()}
    top = max(key.values())
    return min(k for k, value in key.items() if value == top)


def _search_one_seed(estimator, X, candidates, seed, scorers, n_jobs) -> tuple[list, float]:
    """The fits of one seed: ``([(k, fitted, score, seconds), ...], shared seconds)``."""
    from joblib import Parallel, delayed

    started = time.perf_counter()
    params, first = shared_stage(estimator, X, candidates[0], seed)
    shared_seconds = time.perf_counter() - started
    if first is not None:  # the shared fit is the first candidate's
        first_result = _fit_and_score(estimator, X, candidates[0], seed, {}, scorers, first)
        first_result = (first, first_result[1], shared_seconds + first_result[2])
        shared_seconds, rest = 0.0, candidates[1:]
    else:
        first_result, rest = None, candidates
    jobs = (delayed(_fit_and_score)(estimator, X, k, seed, params, scorers) for k in rest)
    results = Parallel(n_jobs=n_jobs)(jobs)
    results = ([first_result] if first_result else []) + list(results)
    return [(k, *r) for k, r in zip(candidates, results)], shared_seconds


def choose_n_clusters(
    estimator,
    X,
    candidates: Iterable[int],
    *,
    scoring: str | Callable | None = None,
    seeds: Iterable[int] | int = (0,),
    n_jobs: int | None = None,
) -> NClustersSearch:
    """Fit ``estimator`` at every candidate ``n_clusters`` and choose one without labels.

    Every candidate is fitted with every seed (a clone with ``n_clusters`` and
    ``random_state`` set) and scored on ``X`` with ``scoring``. Where a method has a
    stage that does not depend on ``n_clusters``, it is trained once per seed and shared:

    * :class:`~deepclust.SCANClusterer`: one pretext-only fit per seed (no SCAN step),
      whose network every candidate starts from as ``pretrained``;
    * :class:`~deepclust.ClusterFitTransformer`: the first candidate's
      ``pretext_network_`` is the ``pretrained`` feature source of the others.

    :class:`~deepclust.SelfLabelClusterer` and :class:`~deepclust.DeepClusterEstimator`
    train everything for each candidate (``shared`` of the result says so), as does an
    estimator given its own ``pretrained`` or ``pretext_epochs=0``.

    Parameters
    ----------
    estimator : deepclust estimator
        Its parameters (but ``n_clusters`` and ``random_state``) are used; it is not
        fitted itself.
    X : array-like, images, folder or paths
        The training data, as for ``fit``; also the data scored.
    candidates : iterable of int
        The counts to try: distinct integers >= 2 and smaller than the number of samples,
        in any order. They are checked before anything is trained.
    scoring : str, callable or list, default=None
        None: ``'vote'`` for a deepclust estimator, ``'silhouette'`` for another
        (the vote's agreement labels augmented views with the network). ``'silhouette'``
        (:func:`deepclust.metrics.silhouette_scorer`, the estimators' ``score``),
        ``'augmentation_agreement'``, ``'linear_predictability'``,
        ``'subsample_stability'`` (two extra fits per candidate), or a callable
        ``scorer(estimator, X, y=None)``, greater is better. A list of two or more of
        these holds a vote: each scorer ranks the candidates by their mean score (1 for
        the lowest), a candidate's points are the sum of its ranks, and the most points
        win (on equal points, the first scorer's higher mean). ``'vote'`` is the vote of
        the silhouette, the augmentation agreement and the linear predictability, in
        that order.
    seeds : int or iterable of int, default=(0,)
        The ``random_state`` values; every candidate is fitted once per seed.
    n_jobs : int, optional
        Candidates fitted in parallel processes (joblib); ``None`` fits one at a time.

    Returns
    -------
    NClustersSearch
        The table of scores and times, the chosen ``best_n_clusters_`` (the highest mean
        score over the seeds, or the most points of a vote; on a tie, the smallest
        count) and its fitted estimator.

    Raises
    ------
    ValueError
        For a bad candidate list, seed list or scoring, before anything is trained.
    """
    candidates = check_n_clusters_candidates(candidates, _n_samples(X))
    seeds = _check_seeds(seeds)
    name, scorers = _resolve_scoring(scoring, estimator)
    table, fits, shared_seconds = [], {}, 0.0
    for seed in seeds:
        rows, seconds = _search_one_seed(estimator, X, candidates, seed, scorers, n_jobs)
        shared_seconds += seconds
        for k, fitted, scores, fit_seconds in rows:
            row = {"n_clusters": k, "seed": seed, "score": next(iter(scores.values()))}
            if len(scores) > 1:
                row["scores"] = scores
            table.append({**row, "seconds": fit_seconds})
            fits.setdefault(k, fitted)
    votes = _votes(table, list(scorers)) if len(scorers) > 1 else {}
    best = _best(table, votes)
    return NClustersSearch(
        table=table,
        best_n_clusters_=best,
        best_estimator_=fits[best],
        scoring=name,
        shared=shared_description(estimator),
        shared_seconds=shared_seconds,
        votes=votes,
    )
