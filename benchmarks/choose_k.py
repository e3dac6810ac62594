"""Choosing the number of clusters without labels: one sweep on one data set and seed.

Usage (from the repository root)::

    python benchmarks/choose_k.py --data digits --seed 0 --threads 1
    python benchmarks/choose_k.py --data fashion-mnist --limit 5000 --seed 0 --threads 1
    python benchmarks/choose_k.py --data fashion-mnist-superclasses --limit 5000 --seed 0
    python benchmarks/choose_k.py --data shapes --limit 5000 --invariant-to colour,background
    python benchmarks/choose_k.py --data digits6 --seed 0 --threads 1

One run fits the method once at the true number of classes K with its default recipe
(the cost reference, ``fit_seconds``), then runs
:func:`deepclust.model_selection.choose_n_clusters` over five candidates around K with
its default scoring (``scoring=None``: the vote of the silhouette, the augmentation
agreement and the linear predictability) and the run's seed; SCAN shares one pretext
network across the candidates. Nothing is tuned per data set.

Candidates: ``floor(K * 1.25 ** i)`` for ``i = -2, -1, 0, 1, 2`` (about 25 % apart, K in
the middle; a value equal to the one before is raised by one, none is below 2), e.g.
``6, 8, 10, 12, 15`` for K = 10, ``3, 4, 5, 6, 7`` for K = 5 and ``5, 6, 8, 10, 12``
for K = 8.

Data sets (``--data``): those of ``benchmarks/quality.py`` (``digits``,
``fashion-mnist``, ``shapes``, an ``.npz`` file; ``--limit`` draws a random subset with
the seed, as there), plus ``fashion-mnist-superclasses`` (Fashion-MNIST's ten classes
grouped into five, :func:`deepclust.datasets.fashion_mnist_superclasses`) and ``digits6``
(scikit-learn's digits 0-5 only, 1,083 images, K = 6).

The result holds each voter's score by candidate (``scores``: the silhouette;
``other_scores``: ``augmentation_agreement`` and ``linear_predictability``) and the
points (``votes``); results made before the vote was the default chose by the silhouette
alone and left the other two scores' time out of ``sweep_seconds``, and
``report_choose_k.py`` computes every rule's pick from the recorded scores. Times are
wall-clock (``*_seconds``) and CPU time of the
process (``*_cpu_seconds``, which other programs on the machine barely change); the cost
ratio is the sweep's over the fit's, for both (``cost_ratio``, ``cost_ratio_cpu``).
``--no-fit`` skips the fit at K (no cost ratio then; the sweep is the same).
``--grid-search`` also runs ``GridSearchCV`` over the same candidates with the
estimator's default ``score`` and a 2-fold ``KFold`` shuffled by the seed (each
candidate fitted on one half and scored on the other; ``grid_scores``,
``grid_chosen_k``, ``grid_seconds``), to compare its pick with the sweep's.
The JSON result is written to
``benchmarks/results/choose-k-{method}-{data}-{profile}-k{K}-s{seed}-{date}-{commit}.json``
(the naming of ``quality.py``'s results); ``benchmarks/report_choose_k.py`` tabulates
them.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality import (  # noqa: E402
    RESULTS,
    _git_commit,
    _scores,
    load_benchmark_data,
    profile_name,
    random_subset,
    write_result,
)

from deepclust.augment import check_invariances  # noqa: E402
from deepclust.datasets import fashion_mnist_superclasses, load_digits_images  # noqa: E402
from deepclust.methods import get_method, method_names  # noqa: E402
from deepclust.model_selection import choose_n_clusters  # noqa: E402
from deepclust.recipes import BUDGETS  # noqa: E402

#: Ratio between neighbouring candidates, and how many lie on each side of the true K.
STEP, SIDE = 1.25, 2


def candidates_around(k: int, step: float = STEP, side: int = SIDE) -> list[int]:
    """``floor(k * step ** i)`` for ``i`` in ``-side..side``, distinct and at least 2.

    Parameters
    ----------
    k : int
        The true number of classes.
    step : float, default=1.25
        The ratio between neighbouring candidates.
    side : int, default=2
        Candidates below (and above) ``k``.

    Returns
    -------
    list of int
        ``2 * side + 1`` increasing candidates, ``k`` in the middle.
    """
    values: list[int] = []
    for i in range(-side, side + 1):
        value = max(2, math.floor(k * step**i + 1e-9))
        values.append(max(value, values[-1] + 1) if values else value)
    return values


def load_choose_k_data(name: str, limit: int | None, seed: int):
    """``(X, y, info)``: a data set of ``quality.py`` or one of this benchmark's own.

    Parameters
    ----------
    name : str
        ``fashion-mnist-superclasses``, ``digits6`` or a ``quality.py`` data set.
    limit : int or None
        A random subset of this many samples (drawn with ``seed``).
    seed : int
        The run's seed.

    Returns
    -------
    X : ndarray
    y : ndarray
    info : dict
        ``data`` and ``data_name`` (with ``-n{limit}`` for a subset).
    """
    if name == "fashion-mnist-superclasses":
        X, y, info = load_benchmark_data("fashion-mnist", limit, seed)
        info.pop("n_train", None)
        info["data"] = name
        info["data_name"] = info["data_name"].replace("fashion-mnist", name, 1)
        return X, fashion_mnist_superclasses(y), info
    if name == "digits6":
        X, y = load_digits_images()
        X, y = X[y < 6], y[y < 6]
        info = {"data": name, "data_name": name}
        if limit is not None and limit < len(X):
            X, y = random_subset(X, y, limit, seed)
            info["data_name"] += f"-n{limit}"
        return X, y, info
    return load_benchmark_data(name, limit, seed)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=method_names(), default="scan")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--budget", default="default", choices=sorted(BUDGETS))
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    parser.add_argument("--invariant-to", default=None, help="e.g. colour,background")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="cluster a random subset")
    parser.add_argument("--out", default=None, help="JSON result file (default: named)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--grid-search",
        action="store_true",
        help="also run GridSearchCV over the candidates (default score, 2-fold KFold)",
    )
    parser.add_argument(
        "--no-fit",
        action="store_true",
        help="skip the default fit at the true K (its time is the cost ratio's divisor)",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser


def _estimator(args, k: int):
    """The method's estimator as a user builds it: K, budget, invariances, seed."""
    cls = get_method(args.method)
    valid = cls().get_params(deep=False)
    params = {"budget": args.budget} if "budget" in valid else {}
    if args.invariant_to:
        params["invariant_to"] = list(check_invariances(args.invariant_to))
    params.update(n_clusters=k, device=args.device, random_state=args.seed, verbose=args.verbose)
    return cls(**params), params


def _reference_fit(args, X, y, k: int) -> dict:
    """One default fit at the true K: its time and scores."""
    estimator, _ = _estimator(args, k)
    started, cpu = time.perf_counter(), time.process_time()
    estimator.fit(X)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "fit_seconds": seconds,
        "fit_cpu_seconds": cpu,
        "fit_scores": _scores(y, np.asarray(estimator.labels_)),
    }


def _sweep(args, X, y, candidates: list[int], k: int) -> dict:
    """``choose_n_clusters`` over ``candidates`` with its default scoring (the vote):
    every scorer's scores, the points, the choice, the time (scoring included)."""
    from deepclust.model_selection._n_clusters import VOTE_SCORERS

    estimator, _ = _estimator(args, k)
    started, cpu = time.perf_counter(), time.process_time()
    search = choose_n_clusters(estimator, X, candidates, seeds=(args.seed,))
    total, cpu = time.perf_counter() - started, time.process_time() - cpu
    chosen = int(search.best_n_clusters_)
    index = candidates.index(chosen)
    first, *others = VOTE_SCORERS
    return {
        "scoring": search.scoring,
        "scores": {str(c): s for c, s in search.mean_scores(first).items()},
        "votes": {str(c): v for c, v in search.votes.items()},
        "table": search.table,
        "chosen_k": chosen,
        "exact": chosen == k,
        "steps_off": index - candidates.index(k),
        "chosen_scores": _scores(y, np.asarray(search.best_estimator_.labels_)),
        "other_scores": {
            name: {str(c): s for c, s in search.mean_scores(name).items()} for name in others
        },
        "sweep_seconds": total,
        "sweep_cpu_seconds": cpu,
        "shared": search.shared,
        "shared_seconds": search.shared_seconds,
    }


def _grid_search(args, X, candidates: list[int], k: int) -> dict:
    """GridSearchCV over ``candidates`` with the estimator's default ``score`` (held-out
    folds of a 2-fold ``KFold`` shuffled by the seed): scores, pick, time."""
    from sklearn.model_selection import GridSearchCV, KFold

    estimator, _ = _estimator(args, k)
    cv = KFold(n_splits=2, shuffle=True, random_state=args.seed)
    grid = GridSearchCV(estimator, {"n_clusters": candidates}, cv=cv, refit=False)
    started = time.perf_counter()
    grid.fit(X)
    means = grid.cv_results_["mean_test_score"]
    chosen = int(candidates[int(np.argmax(means))])
    return {
        "grid_scores": {str(c): float(m) for c, m in zip(candidates, means, strict=True)},
        "grid_score_std": {
            str(c): float(s)
            for c, s in zip(candidates, grid.cv_results_["std_test_score"], strict=True)
        },
        "grid_chosen_k": chosen,
        "grid_seconds": time.perf_counter() - started,
    }


def _cost_ratios(sweep: dict, reference: dict) -> dict:
    """The sweep's wall and CPU time over the default fit's (none without the fit)."""
    if not reference:
        return {}
    return {
        "cost_ratio": sweep["sweep_seconds"] / reference["fit_seconds"],
        "cost_ratio_cpu": sweep["sweep_cpu_seconds"] / reference["fit_cpu_seconds"],
    }


def main(argv: list[str] | None = None) -> dict:
    """Run one benchmark: parse ``argv``, fit, sweep, write the JSON result.

    Parameters
    ----------
    argv : list of str, optional
        The command line (``sys.argv[1:]`` by default).

    Returns
    -------
    dict
        The result written.
    """
    args = _parser().parse_args(argv)
    commit = _git_commit()
    X, y, info = load_choose_k_data(args.data, args.limit, args.seed)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    k = len(np.unique(y))
    candidates = candidates_around(k)
    _, params = _estimator(args, k)
    reference = {} if args.no_fit else _reference_fit(args, X, y, k)
    sweep = _sweep(args, X, y, candidates, k)
    grid = _grid_search(args, X, candidates, k) if args.grid_search else {}
    result = {
        "method": args.method,
        "profile": profile_name(args.budget, params.get("invariant_to")),
        "budget": args.budget,
        "seed": args.seed,
        **info,
        "n_samples": int(len(X)),
        "true_k": k,
        "candidates": candidates,
        "candidate_rule": f"floor(K * {STEP} ** i), i = -{SIDE}..{SIDE}",
        **sweep,
        **reference,
        **grid,
        **_cost_ratios(sweep, reference),
        "params": {key: v for key, v in params.items() if key != "verbose"},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {threads} torch "
        f"thread(s), torch {torch.__version__}, cuda={torch.cuda.is_available()}",
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "command": "python benchmarks/choose_k.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    }
    out = Path(args.out) if args.out else result_path(result)
    write_result(result, out, hidden=("table",))
    return result


def result_path(result: dict) -> Path:
    """Where a result is written: named once, by what it is.

    Parameters
    ----------
    result : dict
        The run's result.

    Returns
    -------
    pathlib.Path
        In ``benchmarks/results/``.
    """
    commit = (result.get("commit") or "unknown").replace("+dirty", "-dirty")
    name = (
        f"choose-k-{result['method']}-{result['data_name']}-{result['profile']}"
        f"-k{result['true_k']}-s{result['seed']}-{result['date'].replace('-', '')}"
        f"-{commit}.json"
    )
    return RESULTS / name


if __name__ == "__main__":
    main()
