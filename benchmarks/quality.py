"""Clustering quality of one registered method on one data set, with its recipe.

Usage (from the repository root)::

    python benchmarks/quality.py --method scan --data fashion-mnist --budget default --seed 0

``--method`` is any registered method (``deepclust.methods.method_names()``). The
estimator is built as a user would build it: ``n_clusters``, ``budget``, ``device`` and
``random_state``, every other parameter left to the method's recipe (``--set`` overrides
one). The resolved settings are the result's ``recipe``. ``--data`` is ``digits``,
``fashion-mnist`` (Debian's ``dataset-fashion-mnist``), ``shapes``
(``deepclust.datasets.make_shapes(20000, random_state=0)``: 32x32 colour shapes) or an
``.npz`` file holding ``X`` (uint8 images ``(N, H, W[, C])``) and ``y``; ``digits`` and
``fashion-mnist`` followed by ``-recoloured`` or ``-rotated`` are their variants with a
known nuisance (``deepclust.datasets.recolour_images`` / ``rotate_images``, seed 0). All
samples are clustered (``--limit`` takes a random subset). ``--invariant-to`` declares
invariances (the result's profile becomes ``{budget}-inv-{invariances}``). The result
holds the fit's ``nuisance`` report and ``nuisance_seconds``, the time of computing it
again on the same images.

The JSON result holds ``acc`` (Hungarian), ``acc_majority``, ``nmi``, ``ari``, ``seconds``,
the parameters used, ``labels`` (the cluster of every sample, in order), the estimator's
``history``, and what its fitted attributes offer: ``stages`` (scores of each stage's
labels, from ``stage_labels_``), ``predict`` (scores of ``predict(X)`` where it differs
from ``labels_``), ``neighbor_accuracy``, and ``linear_probe`` (logistic regression on the
training images' features, scored on the test images, for estimators with
``pretrained_transform``). It is written to
``benchmarks/results/quality-{method}-{data}-{budget}-k{K}-s{seed}-{date}-{commit}.json``
unless ``--out`` names another file; result files are never renamed, and
``benchmarks/report_quality.py`` decides which runs are current.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepclust.augment import check_invariances  # noqa: E402
from deepclust.datasets import (  # noqa: E402
    load_digits_images,
    load_fashion_mnist,
    recolour_images,
    rotate_images,
)
from deepclust.diagnostics import nuisance_report  # noqa: E402
from deepclust.io import _json_value  # noqa: E402
from deepclust.methods import get_method, method_names  # noqa: E402
from deepclust.metrics import cluster_accuracy, evaluate_clustering  # noqa: E402
from deepclust.recipes import BUDGETS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


#: Variants of a data set with a known nuisance, by the suffix of its name.
VARIANTS = {"-recoloured": recolour_images, "-rotated": rotate_images}


def split_variant(name: str) -> tuple[str, str | None]:
    """``('digits', '-recoloured')`` for ``'digits-recoloured'``; no variant: None."""
    for suffix in VARIANTS:
        if name.endswith(suffix) and not name.endswith(".npz"):
            return name[: -len(suffix)], suffix
    return name, None


def apply_variant(X: np.ndarray, variant: str | None) -> np.ndarray:
    """The images of the variant (its colours or angles drawn with seed 0)."""
    return X if variant is None else VARIANTS[variant](X, random_state=0)


def load_data(name: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(X, y, info)`` for a data set name or an ``.npz`` path (a variant's images are
    made by :func:`apply_variant`, after any subset is drawn)."""
    name, variant = split_variant(name)
    if variant is not None:
        X, y, info = load_data(name)
        info.pop("n_train", None)
        return X, y, {**info, "data": name + variant, "data_name": name + variant}
    if name == "digits":
        X, y = load_digits_images()
        return X, y, {"data": "digits", "data_name": "digits"}
    if name == "fashion-mnist":
        X, y = load_fashion_mnist()
        return X, y, {"data": "fashion-mnist", "data_name": "fashion-mnist", "n_train": 60000}
    if name == "shapes":
        from deepclust.datasets import make_shapes

        X, y = make_shapes(20000, random_state=0)
        return X, y, {"data": "shapes", "data_name": "shapes"}
    with np.load(name) as archive:
        return (
            archive["X"],
            archive["y"],
            {"data": os.path.abspath(name), "data_name": Path(name).stem},
        )


def load_benchmark_data(name: str, limit: int | None, seed: int):
    """``(X, y, info)`` of a run: data set ``name``, a random subset of ``limit`` samples
    drawn by ``seed`` (all when None), then the images of its variant."""
    X, y, info = load_data(name)
    if limit is not None and limit < len(X):
        X, y = random_subset(X, y, limit, seed)
        info.pop("n_train", None)
        info["data_name"] += f"-n{limit}"
    return apply_variant(X, split_variant(name)[1]), y, info


def random_subset(X: np.ndarray, y: np.ndarray, size: int, seed: int):
    """``size`` samples drawn without replacement (by ``seed``), in their original order."""
    keep = np.sort(np.random.default_rng(seed).choice(len(X), size, False))
    return X[keep], y[keep]


def linear_probe(features: np.ndarray, y: np.ndarray, n_train: int) -> float:
    """Test accuracy of a logistic regression trained on the first ``n_train`` features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(features[:n_train], y[:n_train])
    return float(probe.score(features[n_train:], y[n_train:]))


def _git_commit() -> str | None:
    """The checkout's commit (with ``+dirty`` for uncommitted changes), if in git."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _scores(y: np.ndarray, labels: np.ndarray) -> dict:
    scores = evaluate_clustering(y, labels, metrics=("acc", "nmi", "ari"))
    return {
        **{k: float(v) for k, v in scores.items()},
        "acc_majority": float(cluster_accuracy(y, labels, mapping="majority")),
    }


def fitted_extras(est, X: np.ndarray, y: np.ndarray, info: dict) -> dict:
    """What the fitted estimator offers beyond ``labels_``, scored against ``y``."""
    extras: dict = {"history": _json_value(getattr(est, "history_", []))}
    if hasattr(est, "stage_labels_"):
        extras["stages"] = {
            stage: {k: float(v) for k, v in evaluate_clustering(y, stage_labels).items()}
            for stage, stage_labels in est.stage_labels_.items()
        }
    if getattr(est, "neighbor_accuracy_", None) is not None:
        extras["neighbor_accuracy"] = float(est.neighbor_accuracy_)
    predicted = est.predict(X)
    if not np.array_equal(predicted, est.labels_):
        extras["predict"] = _scores(y, predicted)
    if hasattr(est, "pretrained_transform") and info.get("n_train"):
        extras["linear_probe"] = {
            "feature_source": linear_probe(est.pretrained_transform(X), y, info["n_train"]),
            "network": linear_probe(est.transform(X), y, info["n_train"]),
        }
    return extras


def profile_name(budget: str, invariant_to) -> str:
    """A result's profile: its budget, and ``-inv-`` and its declared invariances."""
    return budget + ("-inv-" + "+".join(invariant_to) if invariant_to else "")


def result_path(result: dict) -> Path:
    """Where a result is written: named once, by what it is."""
    commit = (result.get("commit") or "unknown").replace("+dirty", "-dirty")
    name = (
        f"quality-{result['method']}-{result['data_name']}-{result['profile']}"
        f"-k{len(result['cluster_sizes'])}-s{result['seed']}"
        f"-{result['date'].replace('-', '')}-{commit}.json"
    )
    return RESULTS / name


def write_result(result: dict, path: Path, hidden: tuple[str, ...]) -> Path:
    """Print ``result`` less its ``hidden`` keys and write it all, as JSON, to ``path``."""
    shown = {k: v for k, v in result.items() if k not in hidden}
    print(json.dumps(shown, indent=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    print(f"wrote {path}")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=method_names(), required=True)
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument(
        "--budget", default="default", choices=sorted(BUDGETS), help="training budget"
    )
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    parser.add_argument(
        "--invariant-to",
        default=None,
        help="declared invariances, comma-separated (e.g. colour,background)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--n-clusters", type=int, default=None, help="default: the number of classes"
    )
    parser.add_argument("--limit", type=int, default=None, help="cluster a random subset")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="set an estimator parameter (JSON value) over the recipe, repeatable",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="JSON result file (default: named by method, data, profile, K, "
        "seed, date and commit in benchmarks/results/)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: all cores); 1 lets two runs share "
        "a 2-core machine without slowing each other down",
    )
    parser.add_argument("--verbose", action="store_true")
    return parser


def estimator_params(args, y: np.ndarray) -> dict:
    """The estimator's parameters: what a user sets, and the ``--set`` overrides."""
    valid = get_method(args.method)().get_params(deep=False)
    params = {"budget": args.budget} if "budget" in valid else {}
    if args.invariant_to:
        params["invariant_to"] = list(check_invariances(args.invariant_to))
    params["device"] = args.device
    for item in args.set:
        key, _, value = item.partition("=")
        params[key] = json.loads(value)
    params["n_clusters"] = args.n_clusters or len(np.unique(y))
    params["random_state"] = args.seed
    params["verbose"] = args.verbose
    return params


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    commit = _git_commit()  # the code the run starts with
    X, y, info = load_benchmark_data(args.data, args.limit, args.seed)
    params = estimator_params(args, y)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)

    est = get_method(args.method)(**params)
    started, cpu_started = time.perf_counter(), time.process_time()
    est.fit(X, y)  # y is only reported against (e.g. SCAN's neighbour accuracy)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    labels = np.asarray(est.labels_)
    started = time.perf_counter()
    nuisance_report(X, labels, random_state=args.seed)
    nuisance_seconds = time.perf_counter() - started
    result = {
        "method": args.method,
        "profile": profile_name(args.budget, params.get("invariant_to")),
        "budget": args.budget,
        "seed": args.seed,
        **info,
        "n_samples": int(len(X)),
        **_scores(y, labels),
        "seconds": seconds,
        # CPU time of the fit: with one thread, a measure of the work that other jobs
        # sharing the machine inflate far less than the wall time.
        "cpu_seconds": cpu_seconds,
        "cluster_sizes": np.bincount(labels, minlength=params["n_clusters"]).tolist(),
        "params": {k: v for k, v in params.items() if k != "verbose"},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {threads} torch "
        f"thread(s), torch {torch.__version__}, cuda={torch.cuda.is_available()}",
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "command": "python benchmarks/quality.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "recipe": _json_value(est.recipe_),
        "nuisance": est.nuisance_report_.to_dict(),
        "nuisance_seconds": nuisance_seconds,
        **fitted_extras(est, X, y, info),
    }
    result["labels"] = labels.tolist()
    out = Path(args.out) if args.out else result_path(result)
    write_result(result, out, hidden=("labels", "cluster_sizes", "history"))
    return result


if __name__ == "__main__":
    main()
