"""Clustering quality of a non-deep baseline on the data of ``benchmarks/quality.py``.

What a user would pick instead of deep clustering, scored the same way. Usage (from the
repository root)::

    python benchmarks/baselines.py --baseline kmeans --data fashion-mnist --limit 5000 --seed 0

``--baseline`` is

* ``kmeans``: scikit-learn ``KMeans(n_clusters, n_init=10)`` on the raw pixels, scaled to
  ``[0, 1]`` and flattened;
* ``umap-gmm``: ``umap.UMAP(n_components=10, n_neighbors=20, min_dist=0.0)`` on the same
  pixels, then ``GaussianMixture(n_clusters, covariance_type='full')`` on the embedding
  (needs ``umap-learn``, in the ``bench`` extra).

``--data`` and ``--limit`` are those of ``quality.py`` (its ``load_benchmark_data``, so
the same ``--limit`` and ``--seed`` cluster the same images);
``--seed`` is also the baseline's ``random_state``. The JSON result has the keys of
``quality.py``'s (``method`` is the baseline, ``profile`` is ``"baseline"``; ``seconds``
is the fit time) and is written to
``benchmarks/results/baseline-{baseline}-{data}-k{K}-s{seed}-{date}-{commit}.json`` unless
``--out`` names another file.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import (  # noqa: E402
    RESULTS,
    _git_commit,
    _scores,
    load_benchmark_data,
    write_result,
)

BASELINES = ("kmeans", "umap-gmm")


def pixels(X: np.ndarray) -> np.ndarray:
    """Images as rows of float32 pixels in ``[0, 1]``.

    Parameters
    ----------
    X : numpy.ndarray of shape (n_samples, ...), dtype uint8
        Images.

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_pixels), dtype float32
        The flattened images divided by 255.
    """
    return X.reshape(len(X), -1).astype(np.float32) / 255.0


def _import_umap():
    try:
        import umap
    except ImportError as error:
        raise SystemExit(
            "--baseline umap-gmm needs umap-learn: pip install 'umap-learn>=0.5' "
            "(or the 'bench' extra: pip install -e '.[bench]')."
        ) from error
    return umap


def baseline_params(baseline: str, n_clusters: int, seed: int) -> dict:
    """The parameters of a baseline's estimators.

    Parameters
    ----------
    baseline : {'kmeans', 'umap-gmm'}
        The baseline.
    n_clusters : int
        Number of clusters.
    seed : int
        ``random_state`` of every estimator.

    Returns
    -------
    dict
        ``{"kmeans": {...}}`` or ``{"umap": {...}, "gmm": {...}}``: keyword arguments of
        each estimator, in the order they run.
    """
    if baseline == "kmeans":
        return {"kmeans": {"n_clusters": n_clusters, "n_init": 10, "random_state": seed}}
    return {
        "umap": {
            "n_components": 10,
            "n_neighbors": 20,
            "min_dist": 0.0,
            "random_state": seed,
        },
        "gmm": {"n_components": n_clusters, "covariance_type": "full", "random_state": seed},
    }


def fit_baseline(baseline: str, X: np.ndarray, params: dict) -> tuple[np.ndarray, dict]:
    """Cluster images with a baseline.

    Parameters
    ----------
    baseline : {'kmeans', 'umap-gmm'}
        The baseline.
    X : numpy.ndarray of shape (n_samples, ...), dtype uint8
        Images.
    params : dict
        Estimator parameters, as :func:`baseline_params` returns them.

    Returns
    -------
    labels : numpy.ndarray of shape (n_samples,), dtype int64
        The cluster of every image.
    stage_seconds : dict
        Seconds each stage took (``kmeans``, or ``umap`` and ``gmm``).
    """
    data = pixels(X)
    stage_seconds = {}
    if baseline == "kmeans":
        from sklearn.cluster import KMeans

        started = time.perf_counter()
        labels = KMeans(**params["kmeans"]).fit_predict(data)
        stage_seconds["kmeans"] = time.perf_counter() - started
        return labels.astype(np.int64), stage_seconds
    from sklearn.mixture import GaussianMixture

    umap = _import_umap()
    started = time.perf_counter()
    embedding = umap.UMAP(**params["umap"]).fit_transform(data)
    stage_seconds["umap"] = time.perf_counter() - started
    started = time.perf_counter()
    labels = GaussianMixture(**params["gmm"]).fit_predict(embedding)
    stage_seconds["gmm"] = time.perf_counter() - started
    return labels.astype(np.int64), stage_seconds


def result_path(result: dict) -> Path:
    """Where a result is written: named once, by what it is.

    Parameters
    ----------
    result : dict
        A result, with ``method``, ``data_name``, ``cluster_sizes``, ``seed``, ``date``
        and ``commit``.

    Returns
    -------
    pathlib.Path
        ``benchmarks/results/baseline-{method}-{data_name}-k{K}-s{seed}-{date}-{commit}.json``.
    """
    commit = (result.get("commit") or "unknown").replace("+dirty", "-dirty")
    name = (
        f"baseline-{result['method']}-{result['data_name']}"
        f"-k{len(result['cluster_sizes'])}-s{result['seed']}"
        f"-{result['date'].replace('-', '')}-{commit}.json"
    )
    return RESULTS / name


def _machine(baseline: str, threads: int | None) -> str:
    import sklearn

    versions = f"scikit-learn {sklearn.__version__}"
    if baseline == "umap-gmm":
        versions += f", umap-learn {_import_umap().__version__}"
    limit = f"{threads} thread(s)" if threads else "threads not limited"
    return f"{platform.machine()}, {os.cpu_count()} cores, {limit}, {versions}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", choices=BASELINES, required=True)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--n-clusters", type=int, default=None, help="default: the number of classes"
    )
    parser.add_argument("--limit", type=int, default=None, help="cluster a random subset")
    parser.add_argument(
        "--out",
        default=None,
        help="JSON result file (default: named by baseline, data, K, seed, date and "
        "commit in benchmarks/results/)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit OpenMP/BLAS (and numba) threads (default: not limited)",
    )
    return parser


def _fit_with_threads(args, X: np.ndarray, params: dict) -> tuple[np.ndarray, dict]:
    """:func:`fit_baseline`, within ``--threads`` OpenMP, BLAS and numba threads."""
    if args.threads is None:
        return fit_baseline(args.baseline, X, params)
    from threadpoolctl import threadpool_limits

    if args.baseline == "umap-gmm":
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    with threadpool_limits(limits=args.threads):
        return fit_baseline(args.baseline, X, params)


def main(argv: list[str] | None = None) -> dict:
    """Run one baseline on one data set and write its JSON result.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        The result written.
    """
    args = _parser().parse_args(argv)
    commit = _git_commit()  # the code the run starts with
    X, y, info = load_benchmark_data(args.data, args.limit, args.seed)
    n_clusters = args.n_clusters or len(np.unique(y))
    params = baseline_params(args.baseline, n_clusters, args.seed)
    started = time.perf_counter()
    labels, stage_seconds = _fit_with_threads(args, X, params)
    seconds = time.perf_counter() - started
    result = {
        "method": args.baseline,
        "profile": "baseline",
        "seed": args.seed,
        **info,
        "n_samples": int(len(X)),
        **_scores(y, labels),
        "seconds": seconds,
        "stage_seconds": stage_seconds,
        "cluster_sizes": np.bincount(labels, minlength=n_clusters).tolist(),
        "params": params,
        "machine": _machine(args.baseline, args.threads),
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "command": "python benchmarks/baselines.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    }
    result["labels"] = labels.tolist()
    out = Path(args.out) if args.out else result_path(result)
    write_result(result, out, hidden=("labels", "cluster_sizes"))
    return result


if __name__ == "__main__":
    main()
