"""A montage of a result file's clusters: random members of every cluster, one row each.

Usage (from the repository root)::

    python benchmarks/montage.py benchmarks/results/quality-scan-digits-....json --out m.png

Reads the data the result was made on (``benchmarks/quality.py``'s ``--data`` and
``--limit`` with the result's seed), and draws ``--per-cluster`` members of every cluster
drawn at random, so that what a cluster holds shows, not only its most typical members.
With ``--by-class`` the rows are the true classes instead, for comparison.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality import load_benchmark_data  # noqa: E402

from deepclust.cli._montage import render_montage_pages  # noqa: E402


def result_data(result: dict) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels a result was made on."""
    limit = result["n_samples"] if re.search(r"-n\d+$", result["data_name"]) else None
    X, y, _ = load_benchmark_data(result["data"], limit, result["seed"])
    return X, y


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", help="a quality-*.json or baseline-*.json result file")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--per-cluster", type=int, default=16)
    parser.add_argument("--by-class", action="store_true", help="rows are the true classes")
    args = parser.parse_args(argv)
    result = json.loads(Path(args.result).read_text())
    X, y = result_data(result)
    labels = y if args.by_class else np.asarray(result["labels"])
    n_rows = int(labels.max()) + 1
    order = np.random.default_rng(0).random(len(labels))  # random members, not the typical

    def thumbnails(indices: np.ndarray) -> list[Image.Image]:
        return [Image.fromarray(np.squeeze(X[i])) for i in indices]

    pages, _ = render_montage_pages(
        labels, order, n_rows, thumbnails, per_cluster=args.per_cluster, tile_size=40
    )
    out = Path(args.out)
    out.write_bytes(pages[0])
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
