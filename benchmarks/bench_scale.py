"""SeLa at ImageNet scale on one machine: fit time, peak memory and cluster balance.

Fits ``SelfLabelClusterer(n_clusters=K, n_heads=H, max_epochs=1, batch_size=4096,
device='cpu', sinkhorn_dtype=...)`` on ``N`` rows of ``D``-d float32 features drawn from a
Gaussian mixture (``--n-centres`` centres ``~ N(0, 1)``, unit noise scaled by
``--noise``; NumPy ``default_rng(--seed)``). With ``max_epochs=1`` there is no label
update during training: the fit is one training epoch on the random initial labels and the
final label step (one inference pass, then a Sinkhorn solve per head), which holds the
features and one head's two ``N x K`` matrices (probabilities and Sinkhorn kernel; 4 bytes
per entry in float32, 2 in bfloat16) whatever ``H``.

Every configuration (each ``--n-heads`` with each ``--sinkhorn-dtype``) runs in a fresh
subprocess, so its peak resident memory (``ru_maxrss``) is its own. Reported per
configuration: ``fit_seconds`` (the whole ``fit``), ``label_pass_seconds`` (the final
label step), ``peak_rss_gib`` and ``rss_before_fit_gib`` (the data, interpreter and
libraries), ``nxk_matrix_gib`` (one ``N x K`` matrix in the chosen dtype) and
``size_ratio``: the largest over the smallest cluster of ``labels_`` (and the worst head in
``size_ratio_worst_head``; both sizes in ``smallest_largest_cluster``). An exact
equipartition has a ratio of ``ceil(N / K) / floor(N / K)``, 7 / 6 at N = 20,000 and
K = 3,000.

Run from the repository root::

    python benchmarks/bench_scale.py --n-samples 20000 --n-heads 2 4
    python benchmarks/bench_scale.py --n-samples 1281167 --n-heads 1 10 \\
        --sinkhorn-dtype float32 bfloat16

Writes ``benchmarks/results/bench_scale-<YYYYMMDD>-<commit>.json`` (after every
configuration, so an interrupted run keeps what it measured) with the date, machine,
commit and command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
RESULT_PREFIX = "BENCH_SCALE_RESULT "
GIB = 2.0**30


def make_features(n: int, dim: int, n_centres: int, noise: float, seed: int) -> np.ndarray:
    """Seeded Gaussian-mixture rows, float32, built in blocks (no float64 copy of it all).

    Parameters
    ----------
    n : int
        Rows.
    dim : int
        Columns.
    n_centres : int
        Mixture components, centres drawn from ``N(0, 1)``.
    noise : float
        Standard deviation of the noise around a centre.
    seed : int
        Seed of NumPy's ``default_rng``.

    Returns
    -------
    ndarray of shape (n, dim), float32
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):
        rows = min(65536, n - start)
        block = centres[rng.integers(0, n_centres, rows)]
        block += noise * rng.standard_normal((rows, dim), dtype=np.float32)
        out[start : start + rows] = block
    return out


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _size_ratio(labels: np.ndarray, n_clusters: int) -> float | None:
    counts = np.bincount(labels, minlength=n_clusters)
    return None if counts.min() == 0 else float(counts.max() / counts.min())


def run_worker(spec: dict) -> dict:
    """Fit once as ``spec`` says and measure it (in a fresh process).

    Parameters
    ----------
    spec : dict
        ``n_samples``, ``dim``, ``n_clusters``, ``n_centres``, ``noise``, ``seed``,
        ``n_heads``, ``sinkhorn_dtype``, ``batch_size``, ``threads``.

    Returns
    -------
    dict
        ``spec`` with the measurements added.
    """
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from deepclust import SelfLabelClusterer

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    X = make_features(
        spec["n_samples"], spec["dim"], spec["n_centres"], spec["noise"], spec["seed"]
    )
    label_pass, seconds = SelfLabelClusterer._label_pass, []

    def timed_label_pass(self, *args, **kwargs):
        start = time.perf_counter()
        result = label_pass(self, *args, **kwargs)
        seconds.append(time.perf_counter() - start)
        return result

    SelfLabelClusterer._label_pass = timed_label_pass
    est = SelfLabelClusterer(
        n_clusters=spec["n_clusters"],
        n_heads=spec["n_heads"],
        max_epochs=1,
        batch_size=spec["batch_size"],
        sinkhorn_dtype=spec["sinkhorn_dtype"],
        device="cpu",
        random_state=spec["seed"],
    )
    rss_before = _rss_bytes()
    start = time.perf_counter()
    est.fit(X)
    fit_seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    ratios = [_size_ratio(labels, spec["n_clusters"]) for labels in est.labels_per_head_]
    counts = np.bincount(est.labels_, minlength=spec["n_clusters"])
    entry_bytes = 2 if spec["sinkhorn_dtype"] == "bfloat16" else 4
    return {
        **spec,
        "fit_seconds": round(fit_seconds, 3),
        "label_pass_seconds": [round(s, 3) for s in seconds],
        "peak_rss_gib": round(peak / GIB, 3),
        "rss_before_fit_gib": round(rss_before / GIB, 3),
        "nxk_matrix_gib": round(spec["n_samples"] * spec["n_clusters"] * entry_bytes / GIB, 3),
        "size_ratio": _size_ratio(est.labels_, spec["n_clusters"]),
        "size_ratio_worst_head": None if None in ratios else max(ratios),
        "smallest_largest_cluster": [int(counts.min()), int(counts.max())],
        "best_head": int(est.best_head_),
        "precision": est._precision(),
        "torch_threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------- driver side


def _checkout_commit() -> str:
    """The current checkout's short commit, with ``-dirty`` for uncommitted changes."""
    try:
        git = ["git", "-C", str(REPO_ROOT)]
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def _machine_info() -> dict:
    """Platform, CPU model and count, memory, torch version and load average."""
    import torch

    model, memory = "", None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = round(int(line.split()[1]) * 1024 / GIB, 1)
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": memory,
        "torch": torch.__version__,
        "load_average_start": os.getloadavg(),
    }


def _spawn(spec: dict, folder: Path, timeout: float, script: Path | None = None) -> dict:
    """Run one configuration in a fresh interpreter (``script --worker SPEC``, this file by
    default); its result, or the error."""
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec))
    script = Path(__file__).resolve() if script is None else script
    command = [sys.executable, str(script), "--worker", str(spec_path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:g} s"}
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return {**spec, "error": f"exit status {done.returncode}: {done.stderr.strip()[-2000:]}"}


def _result_path(folder: Path, date: str, commit: str, name: str = "bench_scale") -> Path:
    """``<name>-<YYYYMMDD>-<commit>.json`` in ``folder``, numbered if it exists."""
    stem = f"{name}-{date.replace('-', '')}-{commit}"
    path, number = folder / f"{stem}.json", 1
    while path.exists():
        number += 1
        path = folder / f"{stem}-{number}.json"
    return path


def _describe(measurement: dict) -> str:
    if "error" in measurement:
        return f"error: {measurement['error']}"
    ratio = measurement["size_ratio"]
    return (
        f"fit {measurement['fit_seconds']:.1f} s (label step "
        f"{sum(measurement['label_pass_seconds']):.1f} s), peak RSS "
        f"{measurement['peak_rss_gib']:.2f} GiB (before fit "
        f"{measurement['rss_before_fit_gib']:.2f}), largest/smallest cluster "
        + ("inf" if ratio is None else f"{ratio:.3f}")
    )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_281_167)
    parser.add_argument("--n-heads", type=int, nargs="+", default=[1, 10])
    parser.add_argument(
        "--sinkhorn-dtype", nargs="+", choices=["float32", "bfloat16"], default=["float32"]
    )
    parser.add_argument("--n-clusters", type=int, default=3000)
    parser.add_argument("--n-centres", type=int, default=3000, help="mixture components")
    parser.add_argument("--dim", type=int, default=32, help="feature dimension")
    parser.add_argument("--noise", type=float, default=0.3, help="noise around a centre")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave it)")
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per fit")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_configurations(
    script: Path, args: argparse.Namespace, argv: list[str] | None, specs: list[dict], describe
) -> Path:
    """Run every spec in a fresh ``script --worker`` process and write the results.

    The JSON (``<script stem>-<YYYYMMDD>-<commit>.json`` in ``args.results_dir``) holds the
    date, commit, machine, the command line and every measurement, and is rewritten after
    each configuration, so an interrupted run keeps what it measured.

    Parameters
    ----------
    script : pathlib.Path
        The benchmark file, run with ``--worker SPEC``.
    args : argparse.Namespace
        Its parsed command line (``results_dir`` and ``timeout`` are read).
    argv : list of str or None
        The arguments as given (``sys.argv[1:]`` when None), for the recorded command.
    specs : list of dict
        One configuration each.
    describe : callable
        ``describe(spec, measurement)``: the line printed after each configuration.

    Returns
    -------
    pathlib.Path
        The JSON written.
    """
    arguments = sys.argv[1:] if argv is None else argv
    config = {k: v for k, v in vars(args).items() if k not in ("worker", "results_dir")}
    config["command"] = shlex.join(["python", f"benchmarks/{script.name}", *arguments])
    started = datetime.datetime.now().isoformat(timespec="seconds")
    result = {
        "benchmark": script.stem,
        "started": started,
        "commit": _checkout_commit(),
        "config": config,
        "machine": _machine_info(),
        "measurements": [],
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = _result_path(args.results_dir, started[:10], result["commit"], script.stem)
    with tempfile.TemporaryDirectory(prefix=f"{script.stem}-") as tmp:
        for spec in specs:
            measurement = _spawn(spec, Path(tmp), args.timeout, script)
            result["measurements"].append(measurement)
            path.write_text(json.dumps(result, indent=1) + "\n")
            print(describe(spec, measurement), flush=True)
    print(f"wrote {path}")
    return path


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
    specs = [
        {
            "n_samples": args.n_samples,
            "dim": args.dim,
            "n_clusters": args.n_clusters,
            "n_centres": args.n_centres,
            "noise": args.noise,
            "seed": args.seed,
            "n_heads": n_heads,
            "sinkhorn_dtype": dtype,
            "batch_size": args.batch_size,
            "threads": args.threads,
        }
        for dtype in args.sinkhorn_dtype
        for n_heads in args.n_heads
    ]
    run_configurations(
        Path(__file__).resolve(),
        args,
        argv,
        specs,
        lambda spec, m: (
            f"N={spec['n_samples']} H={spec['n_heads']} {spec['sinkhorn_dtype']}: {_describe(m)}"
        ),
    )


if __name__ == "__main__":
    main()
