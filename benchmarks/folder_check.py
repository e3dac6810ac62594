"""The new user's path: ``deepclust cluster`` with its defaults on a folder of PNG files.

Usage (from the repository root)::

    python benchmarks/folder_check.py --n 5000 --seed 7 --work /tmp/folder-check

Writes ``--n`` Fashion-MNIST *test* images, drawn by ``--seed``, as PNG files into
``WORK/images`` (the file names carry no label), runs ``deepclust cluster WORK/images
--n-clusters 10 --out WORK/run`` with nothing else but ``--threads``, and scores its
``labels.csv`` against the true classes. Prints ACC, NMI, ARI, the command's wall time and the
recipe the command resolved (from ``run.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepclust.datasets import load_fashion_mnist  # noqa: E402
from deepclust.metrics import evaluate_clustering  # noqa: E402


def write_folder(folder: Path, n: int, seed: int) -> dict[str, int]:
    """PNG files of ``n`` random Fashion-MNIST test images; their true classes by name."""
    X, y = load_fashion_mnist(subset="test")
    keep = np.sort(np.random.default_rng(seed).choice(len(X), n, replace=False))
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in keep:
        name = f"{i:05d}.png"
        Image.fromarray(X[i]).save(folder / name)
        truth[name] = int(y[i])
    return truth


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/folder-check"))
    args = parser.parse_args(argv)
    truth = write_folder(args.work / "images", args.n, args.seed)
    run = args.work / "run"
    command = ["deepclust", "cluster", str(args.work / "images"), "--n-clusters", "10"]
    command += ["--out", str(run), "--threads", str(args.threads), "--quiet"]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    with open(run / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([int(row["cluster"]) for row in rows])
    classes = np.array([truth[row["source"]] for row in rows])
    info = json.loads((run / "run.json").read_text())
    result = {
        **{k: float(v) for k, v in evaluate_clustering(classes, labels).items()},
        "seconds": seconds,
        "command": " ".join(command),
        "recipe": info.get("recipe"),
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
