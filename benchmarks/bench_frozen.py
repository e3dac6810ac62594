"""Frozen pretrained features against a full fit: SCAN on Fashion-MNIST's test images.

Three stages, each writing one JSON result into ``benchmarks/results``:

``pretext``
    SCAN's pretext alone (no SCAN, head-search or self-labelling epoch) on Fashion-MNIST's
    60,000 training images; the backbone's state dict is saved to ``--weights``.
``frozen``
    ``SCANClusterer(backbone=..., weights=WEIGHTS, freeze_backbone=True)`` on the 10,000
    test images: features once, heads only.
``full``
    A default ``SCANClusterer`` fit on the same 10,000 test images, pretext included.

Usage::

    python benchmarks/bench_frozen.py pretext --weights /tmp/pretext.pth --budget fast
    python benchmarks/bench_frozen.py frozen --weights /tmp/pretext.pth
    python benchmarks/bench_frozen.py full
    python benchmarks/bench_frozen.py report   # the RST table of docs/benchmarks.rst
    python benchmarks/bench_frozen.py montage --result RESULT.json --out m.png
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from deepclust import SCANClusterer  # noqa: E402
from deepclust.datasets import load_fashion_mnist  # noqa: E402
from deepclust.metrics import cluster_accuracy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
#: The backbone and image size SCAN's recipe trains Fashion-MNIST with on a CPU.
BACKBONE, IMAGE_SIZE = "convnet-small", 20


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def _write(stage: str, record: dict, seed: int) -> Path:
    record.update(
        stage=stage,
        seed=seed,
        date=date.today().isoformat(),
        commit=_commit(),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
        threads=torch.get_num_threads(),
    )
    path = RESULTS / f"frozen-{stage}-s{seed}-{date.today():%Y%m%d}-{record['commit']}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return path


def pretext(args) -> None:
    X, _ = load_fashion_mnist(subset="train")
    est = SCANClusterer(
        10,
        backbone=BACKBONE,
        image_size=IMAGE_SIZE,
        budget=args.budget,
        max_epochs=0,
        selflabel_epochs=0,
        n_head_candidates=0,
        head_warmup_epochs=0,
        device="cpu",
        random_state=args.seed,
    )
    start = time.perf_counter()
    est.fit(X)
    seconds = time.perf_counter() - start
    torch.save(est.network_.backbone.state_dict(), args.weights)
    pretext_epochs = est.recipe_["params"]["pretext_epochs"]
    _write(
        "pretext",
        {
            "n_samples": len(X),
            "budget": args.budget,
            "pretext_epochs": pretext_epochs,
            "seconds": seconds,
        },
        args.seed,
    )


def _fit_test(params: dict, seed: int) -> dict:
    X, y = load_fashion_mnist(subset="test")
    est = SCANClusterer(10, device="cpu", random_state=seed, **params)
    start = time.perf_counter()
    est.fit(X)
    seconds = time.perf_counter() - start
    frozen_recipe = est.recipe_.get("frozen_features", {}).get("params")
    return {
        "n_samples": len(X),
        "acc": float(cluster_accuracy(y, est.labels_)),
        "seconds": seconds,
        "recipe": est.recipe_["params"],
        "frozen_recipe": {k: str(v) for k, v in (frozen_recipe or {}).items()} or None,
        "labels": est.labels_.tolist(),
    }


def frozen(args) -> None:
    params = dict(
        backbone=BACKBONE, image_size=IMAGE_SIZE, weights=args.weights, freeze_backbone=True
    )
    record = _fit_test(params, args.seed)
    record["weights"] = os.path.basename(args.weights)
    _write("frozen", record, args.seed)


def full(args) -> None:
    _write("full", _fit_test({}, args.seed), args.seed)


def report(args) -> None:
    rows = []
    for path in sorted(glob.glob(str(RESULTS / "frozen-*.json"))):
        record = json.loads(Path(path).read_text())
        acc = f"{record['acc']:.3f}" if "acc" in record else "-"
        minutes = record["seconds"] / 60
        rows.append(
            (
                record["stage"],
                record["seed"],
                record["n_samples"],
                acc,
                minutes,
                record["date"],
                record["commit"],
            )
        )
    print(".. list-table::\n   :header-rows: 1\n")
    print(
        "   * - Stage\n     - Seed\n     - Images\n     - ACC\n     - Minutes\n"
        "     - Date\n     - Commit"
    )
    for stage, seed, n, acc, minutes, day, commit in rows:
        print(
            f"   * - {stage}\n     - {seed}\n     - {n:,}\n     - {acc}\n"
            f"     - {minutes:.1f}\n     - {day}\n     - {commit}"
        )


def montage(args) -> None:
    """Random members of every cluster of a ``frozen`` or ``full`` result, one row each."""
    import numpy as np
    from PIL import Image

    from deepclust.cli._montage import render_montage_pages

    labels = np.asarray(json.loads(Path(args.result).read_text())["labels"])
    X, _ = load_fashion_mnist(subset="test")
    order = np.random.default_rng(0).random(len(labels))
    pages, _ = render_montage_pages(
        labels,
        order,
        int(labels.max()) + 1,
        lambda indices: [Image.fromarray(np.squeeze(X[i])) for i in indices],
        per_cluster=16,
        tile_size=40,
    )
    Path(args.out).write_bytes(pages[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["pretext", "frozen", "full", "report", "montage"])
    parser.add_argument("--result", help="montage: a frozen-*.json result")
    parser.add_argument("--out", default="montage.png", help="montage: the PNG written")
    parser.add_argument("--weights", default="/tmp/deepclust-pretext.pth")
    parser.add_argument("--budget", default="default", choices=["fast", "default", "thorough"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    stages = {"pretext": pretext, "frozen": frozen, "full": full, "report": report}
    stages["montage"] = montage
    stages[args.stage](args)


if __name__ == "__main__":
    main()
