"""k-means and kNN at ImageNet size on one machine: time, peak memory, recall.

On ``N`` rows of ``D``-d float32 features from the Gaussian mixture of
``bench_scale.make_features`` (``--n-centres`` centres, seeded), each configuration runs
in a fresh subprocess (so its peak resident memory, ``ru_maxrss``, is its own):

* ``kmeans-faiss`` and ``kmeans-torch``: :func:`deepclust.cluster.kmeans` with
  ``n_clusters=K`` (each ``--n-clusters``), ``init='random'``, ``n_iter=20``,
  ``max_points_per_centroid=256`` (DeepCluster's and faiss' setting: centroids trained on
  ``256 K`` sampled rows, every row assigned at the end) on each backend. Reported: time,
  peak memory, the smallest and largest cluster and the mean squared distance to the
  centroid (``inertia / N``).
* ``knn``: :func:`deepclust.cluster.knn` of every row, ``k`` (``--k``) cosine neighbours
  with ``index='auto'`` (faiss' inverted-file index above 200,000 rows). Its recall@k is
  measured on ``--n-queries`` rows drawn at random: the share of their exact ``k``
  nearest neighbours (an exact flat search of those rows against all ``N``) that the
  search returned. ``--n-probe`` adds one searched-only-on-the-sample row per value to
  show recall against the probes.

Run from the repository root::

    python benchmarks/bench_scale_search.py --n-samples 1281167 --dim 128 --n-clusters 3000

Writes ``benchmarks/results/bench_scale_search-<YYYYMMDD>-<commit>.json`` after every
configuration (an interrupted run keeps what it measured), with the date, machine, commit
and command.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import (  # noqa: E402
    GIB,
    REPO_ROOT,
    RESULT_PREFIX,
    RESULTS_DIR,
    make_features,
    run_configurations,
)


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def _exact_neighbours(X: np.ndarray, rows: np.ndarray, k: int, spec: dict) -> np.ndarray:
    """The exact ``k`` nearest cosine neighbours of ``X[rows]`` among all of ``X``, self
    left out (a flat search of ``k + 1``). Kept in the temporary folder under a name made
    of the data's and the sample's settings, so the configurations of a run (and later
    runs) search them once."""
    from deepclust.cluster import knn

    key = "-".join(
        str(spec[name]) for name in ("n_samples", "dim", "n_centres", "noise", "seed", "k")
    )
    path = Path(tempfile.gettempdir()) / f"bench_scale_search-exact-{key}-{len(rows)}.npy"
    if path.is_file():
        return np.load(path)
    found, _ = knn(X, k + 1, queries=X[rows], index="flat", refine=False)
    exact = np.stack([hits[hits != row][:k] for row, hits in zip(rows, found, strict=True)])
    np.save(path, exact)
    return exact


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row's exact neighbours that ``found`` holds."""
    k = exact.shape[1]
    return float(
        np.mean([np.intersect1d(a, b).size / k for a, b in zip(found, exact, strict=True)])
    )


def _run_kmeans(X: np.ndarray, spec: dict) -> dict:
    from deepclust.cluster import kmeans

    start = time.perf_counter()
    result = kmeans(
        X,
        spec["n_clusters"],
        init="random",
        n_iter=20,
        max_points_per_centroid=256,
        random_state=spec["seed"],
        backend=spec["backend"],
    )
    seconds = time.perf_counter() - start
    labels = np.asarray(result.labels)
    counts = np.bincount(labels, minlength=spec["n_clusters"])
    return {
        "seconds": seconds,
        "smallest_largest_cluster": [int(counts.min()), int(counts.max())],
        "mean_squared_distance": float(result.inertia) / len(X),
    }


def _run_knn(X: np.ndarray, spec: dict) -> dict:
    from deepclust.cluster import knn

    rows = np.sort(np.random.default_rng(spec["seed"]).choice(len(X), spec["n_queries"], False))
    start = time.perf_counter()
    if spec["n_probe"] is None:
        found, _ = knn(X, spec["k"], index="auto")
        found = found[rows]
    else:  # the sample only, searched with this many probes
        found, _ = knn(X, spec["k"] + 1, queries=X[rows], index="ivf", n_probe=spec["n_probe"])
        found = np.stack([hits[hits != row][: spec["k"]] for row, hits in zip(rows, found)])
    seconds = time.perf_counter() - start
    peak = _peak_gib()
    start = time.perf_counter()
    exact = _exact_neighbours(X, rows, spec["k"], spec)
    return {
        "seconds": seconds,
        "peak_rss_gib_search": peak,
        "exact_sample_seconds": time.perf_counter() - start,  # ~0 when kept from before
        "recall": _recall(found, exact),
    }


def run_worker(spec: dict) -> dict:
    """Run one configuration as ``spec`` says and measure it (in a fresh process).

    Parameters
    ----------
    spec : dict
        ``task`` ('kmeans' or 'knn'), ``n_samples``, ``dim``, ``n_centres``, ``noise``,
        ``seed``, ``threads``, and ``n_clusters`` and ``backend`` (k-means) or ``k``,
        ``n_queries`` and ``n_probe`` (kNN).

    Returns
    -------
    dict
        ``spec`` with the measurements added.
    """
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    X = make_features(
        spec["n_samples"], spec["dim"], spec["n_centres"], spec["noise"], spec["seed"]
    )
    before = _peak_gib()
    measured = (_run_kmeans if spec["task"] == "kmeans" else _run_knn)(X, spec)
    return {**spec, **measured, "rss_before_gib": before, "peak_rss_gib": _peak_gib()}


def _describe(m: dict) -> str:
    if "error" in m:
        return f"error: {m['error']}"
    text = f"{m['seconds']:.1f} s, peak RSS {m['peak_rss_gib']:.2f} GiB"
    if m["task"] == "knn":
        return text + f", recall@{m['k']} {m['recall']:.4f} on {m['n_queries']} rows"
    return text + f", cluster sizes {m['smallest_largest_cluster']}"


def _specs(args: argparse.Namespace) -> list[dict]:
    common = {
        "n_samples": args.n_samples,
        "dim": args.dim,
        "n_centres": args.n_centres,
        "noise": args.noise,
        "seed": args.seed,
        "threads": args.threads,
    }
    specs = []
    if "knn" in args.tasks:
        for n_probe in [None, *args.n_probe]:
            specs.append(
                {
                    **common,
                    "task": "knn",
                    "k": args.k,
                    "n_queries": args.n_queries,
                    "n_probe": n_probe,
                }
            )
    for backend in [b for b in ("faiss", "torch") if f"kmeans-{b}" in args.tasks]:
        for n_clusters in args.n_clusters:
            specs.append({**common, "task": "kmeans", "backend": backend, "n_clusters": n_clusters})
    return specs


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_281_167)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--n-centres", type=int, default=3000, help="mixture components")
    parser.add_argument("--noise", type=float, default=0.3, help="noise around a centre")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=["knn", "kmeans-faiss", "kmeans-torch"],
        default=["knn", "kmeans-faiss", "kmeans-torch"],
    )
    parser.add_argument("--n-clusters", type=int, nargs="+", default=[3000])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--n-queries", type=int, default=50_000)
    parser.add_argument("--n-probe", type=int, nargs="*", default=[], help="extra probe counts")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave it)")
    parser.add_argument("--timeout", type=float, default=6 * 3600)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run every configuration (or, with ``--worker``, one) and write the JSON.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``sys.argv[1:]`` when None.
    """
    args = _parse_args(argv)
    if args.worker:
        result = run_worker(json.loads(Path(args.worker).read_text()))
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return
    run_configurations(
        Path(__file__).resolve(),
        args,
        argv,
        _specs(args),
        lambda spec, m: f"N={spec['n_samples']} {spec['task']}: {_describe(m)}",
    )


if __name__ == "__main__":
    main()
