"""Benchmark deepclust.sinkhorn_knopp against SeLa's reference Sinkhorn-Knopp loop.

Run from the repository root::

    python benchmarks/bench_sinkhorn.py [--n 100000] [--k 1000] [--device cpu] [--repeats 3]

On a GPU machine, for the ImageNet-sized problem (the reference is skipped there: it needs
30 GB of float64 and hours)::

    python benchmarks/bench_sinkhorn.py --n 1281167 --k 3000 --device cuda --no-reference

Inputs: ``P = softmax(Z + b)`` with ``Z[i, k] ~ N(0, 1)`` and a per-cluster bias
``b[k] ~ N(0, 0.5^2)`` (NumPy ``default_rng(seed)``), float32. The bias makes some clusters
popular: at N = 100,000, K = 1,000 the plain argmax gives clusters of 0 to 2,788 images
where 100 are wanted, so the balancing is far from trivial (the reference needs 111
iterations).

``--torch-threads 1`` was used for the recorded figures: the iterations are memory-bound, so
a second thread gains little, and on the shared 2-core machine two OpenMP threads were
slowed down erratically (0.6 s to 20 s for the same call) by other processes.

Every method runs in a fresh subprocess that builds the same input, so peak memory can be
measured: ``ru_maxrss`` after the call minus the resident size just before it (input,
interpreter and libraries excluded); on CUDA ``torch.cuda.max_memory_allocated`` minus the
input. Labels are compared with the reference's. Writes
``benchmarks/results/bench_sinkhorn.json`` and ``docs/_bench/bench_sinkhorn.rst.inc``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from deepclust.sinkhorn._reference import reference_sela_sinkhorn  # noqa: E402

DOC_DATE = "2026-11-23"
MACHINE = "2-core x86-64 CPU, 24 GiB, no GPU"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "bench_sinkhorn.json"
DOC = REPO_ROOT / "docs" / "_bench" / "bench_sinkhorn.rst.inc"


def make_probs(n: int, k: int, seed: int, bias_scale: float = 0.5, rows: int = 1024):
    """Seeded softmax(N(0,1) + per-cluster bias) inputs, float32, built in row blocks."""
    rng = np.random.default_rng(seed)
    bias = rng.standard_normal(k) * bias_scale
    out = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, rows):
        logits = rng.standard_normal((min(rows, n - start), k)) + bias
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        out[start : start + rows] = logits
    return out


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# METHODS: name -> keyword arguments of deepclust.sinkhorn.sinkhorn_solve (None: reference)
METHODS = {
    "reference_sela_numpy_float64": None,
    "deepclust_float32": dict(dtype="float32"),
    "deepclust_bfloat16": dict(dtype="bfloat16"),
    "deepclust_float32_tol1e-3": dict(dtype="float32", tol=1e-3),
}


def run_worker(args) -> dict:
    """One measurement in this (fresh) process; print a JSON line."""
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    probs = make_probs(args.n, args.k, args.seed)
    info: dict = {"method": args.worker, "torch_threads": torch.get_num_threads()}
    spec = METHODS[args.worker]
    device = torch.device(args.device)
    if spec is None:
        rss_before = _current_rss_bytes()
        start = time.perf_counter()
        labels, iterations = reference_sela_sinkhorn(probs, args.lamb)
        info["seconds"] = time.perf_counter() - start
        info["iterations"] = int(iterations)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        info["peak_extra_mib"] = (peak - rss_before) / 2**20
    else:
        from deepclust.sinkhorn import sinkhorn_solve

        if device.type == "cuda":
            matrix = torch.empty(probs.shape, dtype=torch.float32, device=device)
            matrix.copy_(torch.from_numpy(probs))
            del probs
            torch.cuda.synchronize()
            input_bytes = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            matrix = torch.from_numpy(probs)
            rss_before = _current_rss_bytes()
        start = time.perf_counter()
        result = sinkhorn_solve(matrix, args.lamb, **spec)
        if device.type == "cuda":
            torch.cuda.synchronize()
        info["seconds"] = time.perf_counter() - start
        info["iterations"] = result.n_iter
        info["warm_start_iterations"] = result.warm_start_iter
        info["kernel_builds"] = result.n_builds
        info["final_error"] = result.error
        info["converged"] = result.converged
        if device.type == "cuda":
            info["peak_extra_mib"] = (torch.cuda.max_memory_allocated() - input_bytes) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            info["peak_extra_mib"] = (peak - rss_before) / 2**20
        labels = result.labels.cpu().numpy()
    sizes = np.bincount(labels, minlength=args.k)
    info["cluster_size_min"] = int(sizes.min())
    info["cluster_size_max"] = int(sizes.max())
    info["cluster_size_ratio"] = float(sizes.max() / max(sizes.min(), 1))
    if args.labels_out:
        np.save(args.labels_out, labels)
    print("RESULT " + json.dumps(info), flush=True)
    return info


def spawn(method: str, args, labels_out: str | None) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        method,
        "--n",
        str(args.n),
        "--k",
        str(args.k),
        "--seed",
        str(args.seed),
        "--lamb",
        str(args.lamb),
        "--device",
        args.device,
        "--torch-threads",
        str(args.torch_threads),
    ]
    if labels_out:
        command += ["--labels-out", labels_out]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{method} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len("RESULT ") :])


def write_doc(report: dict) -> None:
    rows = []
    for name, entry in report["methods"].items():
        agree = entry.get("label_agreement_with_reference")
        rows.append(
            [
                f"``{name}``",
                f"{entry['seconds_best']:.2f}",
                f"{entry['speedup_vs_reference']:.1f}x" if "speedup_vs_reference" in entry else "",
                f"{entry['peak_extra_mib']:.0f}",
                str(entry["iterations"])
                + (
                    f" (+{entry['warm_start_iterations']} warm)"
                    if entry.get("warm_start_iterations")
                    else ""
                ),
                "" if agree is None else f"{100 * agree:.2f} %",
                f"{entry['cluster_size_min']} / {entry['cluster_size_max']}",
            ]
        )
    header = [
        "Method",
        "Wall time (s, best)",
        "Speed-up",
        "Peak extra memory (MiB)",
        "Iterations",
        "Same labels as reference",
        "Cluster sizes min / max",
    ]
    table = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
    ]
    for row in [header, *rows]:
        table.append("   * - " + row[0])
        table.extend(f"     - {cell}" for cell in row[1:])
    cfg = report["config"]
    text = (
        f"""Sinkhorn-Knopp label assignment
-------------------------------

SeLa's label step on N = {cfg["n"]:,} samples and K = {cfg["k"]:,} clusters
(``lamb = {cfg["lamb"]:g}``): :func:`deepclust.sinkhorn_knopp` against the authors'
reference loop (NumPy float64, K x N, ``PS **= lamb``, stop when the summed relative change
of the sample scalings is below 0.1), both on the same seeded input, softmax of Gaussian
logits plus a Gaussian per-cluster bias (plain argmax sizes {cfg["argmax_size_min"]} to
{cfg["argmax_size_max"]}). Each method runs in a fresh process; wall time is the best of
{cfg["repeats"]} runs for deepclust ({cfg["reference_repeats"]} for the reference); peak
extra memory is ``ru_maxrss`` after the call minus the resident size just before it (the
float32 input, {cfg["input_mib"]:.0f} MiB, is excluded; the reference's float64 copy is
763 MiB and ``nanargmax`` makes a second one). deepclust runs with its default
``tol = 1e-2`` unless named otherwise. Torch threads: {cfg["torch_threads"]} (memory-bound
iterations gain little from a second thread, and on this shared machine two OpenMP
threads were erratically slowed down by other processes); NumPy used its default BLAS
threads.
Date {DOC_DATE}, machine: {MACHINE}.

Command: ``{cfg["command"]}``

"""
        + "\n".join(table)
        + "\n"
    )
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="samples (rows)")
    parser.add_argument("--k", type=int, default=1_000, help="clusters (columns)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lamb", type=float, default=25.0)
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda' (deepclust only)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per deepclust method")
    parser.add_argument("--reference-repeats", type=int, default=1)
    parser.add_argument("--no-reference", action="store_true", help="skip the reference")
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="torch.set_num_threads (0: default)"
    )
    parser.add_argument("--methods", nargs="*", default=None, help="subset of methods")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--labels-out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="do not write JSON/RST")
    parser.add_argument(
        "--doc-only", action="store_true", help="rewrite the RST from the saved JSON"
    )
    return parser


def _config(args) -> dict:
    """The run's settings and the input's argmax cluster sizes, for the report."""
    probs = make_probs(args.n, args.k, args.seed)
    argmax_sizes = np.bincount(probs.argmax(1), minlength=args.k)
    return {
        "n": args.n,
        "k": args.k,
        "seed": args.seed,
        "lamb": args.lamb,
        "device": args.device,
        "repeats": args.repeats,
        "reference_repeats": args.reference_repeats,
        "argmax_size_min": int(argmax_sizes.min()),
        "argmax_size_max": int(argmax_sizes.max()),
        "input_mib": probs.nbytes / 2**20,
        "command": "python benchmarks/bench_sinkhorn.py " + " ".join(sys.argv[1:]),
        "python": platform.python_version(),
        "date_run": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": MACHINE if args.device == "cpu" else "see device",
    }


def _measure(methods: list[str], args) -> dict:
    """Every method's runs (each in a fresh process), by method name, with its agreement
    with the reference's labels."""
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        reference_labels = None
        for name in methods:
            is_reference = METHODS[name] is None
            repeats = args.reference_repeats if is_reference else args.repeats
            runs = []
            for rep in range(repeats):
                out = os.path.join(tmp, f"{name}.npy") if rep == 0 else None
                runs.append(spawn(name, args, out))
                print(name, json.dumps(runs[-1]), flush=True)
            entry = dict(runs[0])
            entry["seconds_all"] = [run["seconds"] for run in runs]
            entry["seconds_best"] = min(entry["seconds_all"])
            entry["peak_extra_mib"] = max(run["peak_extra_mib"] for run in runs)
            labels = np.load(os.path.join(tmp, f"{name}.npy"))
            if is_reference:
                reference_labels = labels
            elif reference_labels is not None:
                entry["label_agreement_with_reference"] = float((labels == reference_labels).mean())
            measured[name] = entry
    return measured


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    if args.doc_only:
        write_doc(json.loads(RESULTS.read_text()))
        return

    methods = args.methods or list(METHODS)
    if args.no_reference or args.device != "cpu":
        methods = [m for m in methods if METHODS[m] is not None]
    report = {"config": _config(args), "methods": _measure(methods, args)}
    report["config"]["torch_threads"] = next(
        (e["torch_threads"] for e in report["methods"].values()), None
    )
    ref = next((e for n, e in report["methods"].items() if METHODS[n] is None), None)
    if ref is not None:
        for entry in report["methods"].values():
            entry["speedup_vs_reference"] = ref["seconds_best"] / entry["seconds_best"]
    print(json.dumps(report, indent=2))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        write_doc(report)


if __name__ == "__main__":
    main()
