"""Decoding throughput: images per second of reading a folder of JPEGs to training size.

A folder of ``--n`` JPEG files of 300 to 500 px a side (random sizes, seeded; smooth colour
gradients under random ellipses and rectangles, so they compress like photographs) is made
once in ``--folder`` (reused when it already holds them). Then the whole folder is decoded
to ``S x S`` px for each ``--sizes`` S, rows side by side in one run:

``deepclust``
    :class:`deepclust.data.FileSource` ``.scan()`` then ``.load()`` of every image in
    batches of 256 (its own thread pool; JPEGs at least twice S on both sides decoded by
    libjpeg at 1/2, 1/4 or 1/8 scale), then the shorter side resized to S with PIL's
    bilinear filter and the centre S x S cropped, as torchvision's ``Resize(S)`` +
    ``CenterCrop(S)``.
``deepclust-no-draft``
    The same with the reduced JPEG decoding turned off (every file decoded in full).
``torchvision``
    ``torchvision.datasets.ImageFolder`` with ``Resize(S)``, ``CenterCrop(S)`` and
    ``ToTensor()``, read through a ``DataLoader(batch_size=64, num_workers=W)``.
``deepclust-cache-build``
    ``FileSource(..., cache_dir=...)`` on an empty cache folder: decodes and writes the
    memory-mapped cache.
``deepclust-cache``
    The same again, the cache built: opens the cache and loads every image from it.

Each figure is the median images/s over ``--repeats`` rounds; every round runs all rows in
turn, so slow phases of a shared machine hit all of them alike. The ratio column divides by
the torchvision row of the same size.

Run from the repository root::

    python benchmarks/bench_decode.py --n 2000 --workers 2 --folder /tmp/deepclust-decode

Writes ``benchmarks/results/bench_decode-<YYYYMMDD>-<commit>.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import deepclust.data._decode as decode  # noqa: E402
from deepclust.data import FileSource, list_image_files  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
ROWS = (
    "deepclust",
    "deepclust-no-draft",
    "torchvision",
    "deepclust-cache-build",
    "deepclust-cache",
)


def _photo(rng: np.random.Generator) -> Image.Image:
    """A random 300-500 px colour image: gradients under a few filled shapes."""
    width, height = (int(v) for v in rng.integers(300, 501, 2))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / 500.0
    channels = [
        np.sin(xx * rng.uniform(1, 8) + yy * rng.uniform(1, 8) + rng.uniform(0, 6))
        for _ in range(3)
    ]
    pixels = (np.stack(channels, -1) * 100 + 128).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        x1, y1 = x0 + int(rng.integers(20, width // 2)), y0 + int(rng.integers(20, height // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x1, y1], fill=fill)
    return image


#: Images per ``FileSource.load`` call of the deepclust rows.
LOAD_BATCH = 256


def make_folder(folder: Path, n: int, seed: int) -> list[str]:
    """``n`` JPEGs in ``folder/images`` (the class folder ImageFolder needs), made once."""
    images = folder / "images"
    if images.is_dir() and len(list_image_files(images)) == n:
        return list_image_files(images)
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        _photo(rng).save(images / f"{i:06d}.jpg", quality=int(rng.integers(80, 96)))
    return list_image_files(images)


def run_deepclust(paths: list[str], side: int, cache_dir: str | None = None) -> None:
    """Scan then load every image with deepclust's file source, in batches of
    ``LOAD_BATCH`` as a training loop reads them (the whole folder at 224 px would be
    12 GB of float32 at once)."""
    source = FileSource(paths, (side, side), n_channels=3, cache_dir=cache_dir).scan()
    for start in range(0, len(source), LOAD_BATCH):
        source.load(slice(start, start + LOAD_BATCH))


def run_no_draft(paths: list[str], side: int) -> None:
    """:func:`run_deepclust` with the reduced JPEG decoding turned off."""
    original = decode.draft_jpeg
    decode.draft_jpeg = lambda *args, **kwargs: False
    try:
        run_deepclust(paths, side)
    finally:
        decode.draft_jpeg = original


def run_torchvision(folder: Path, side: int, workers: int) -> None:
    """Read every image through ImageFolder and a DataLoader, as reference code does."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [transforms.Resize(side), transforms.CenterCrop(side), transforms.ToTensor()]
    )
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    for _ in DataLoader(dataset, batch_size=64, num_workers=workers):
        pass


def _timed(work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def measure_round(paths: list[str], folder: Path, side: int, workers: int) -> dict[str, float]:
    """Seconds of every row at one size, in the order of :data:`ROWS`."""
    cache_dir = tempfile.mkdtemp(prefix="bench-decode-cache-")
    try:
        return {
            "deepclust": _timed(lambda: run_deepclust(paths, side)),
            "deepclust-no-draft": _timed(lambda: run_no_draft(paths, side)),
            "torchvision": _timed(lambda: run_torchvision(folder, side, workers)),
            "deepclust-cache-build": _timed(lambda: run_deepclust(paths, side, cache_dir)),
            "deepclust-cache": _timed(lambda: run_deepclust(paths, side, cache_dir)),
        }
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def _commit() -> str:
    """The checkout's short commit, with ``-dirty`` for uncommitted changes."""
    try:

        def git(*args):
            return subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()

        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> dict:
    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    import torch
    import torchvision

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": Image.__version__,
        "load_average_start": os.getloadavg(),
    }


def table(rows: list[dict]) -> str:
    """The rows as a reStructuredText table."""
    lines = [
        "=====  =======================  ==========  ==================",
        "Size   Reader                   Images/s    x torchvision",
        "=====  =======================  ==========  ==================",
    ]
    for row in rows:
        lines.append(
            f"{row['size']:<5}  {row['reader']:<23}  {row['images_per_s']:>10,.0f}  "
            f"{row['ratio_to_torchvision']:.2f}"
        )
    lines.append(lines[0])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and write its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="number of JPEG files")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all rows")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated files")
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "deepclust-decode"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    started = datetime.datetime.now()
    paths = make_folder(args.folder, args.n, args.seed)
    seconds = {side: {row: [] for row in ROWS} for side in args.sizes}
    for _ in range(args.repeats):
        for side in args.sizes:
            for row, value in measure_round(paths, args.folder, side, args.workers).items():
                seconds[side][row].append(value)
    rows = []
    for side in args.sizes:
        rates = {row: len(paths) / statistics.median(seconds[side][row]) for row in ROWS}
        for row in ROWS:
            rows.append(
                {
                    "size": side,
                    "reader": row,
                    "images_per_s": rates[row],
                    "ratio_to_torchvision": rates[row] / rates["torchvision"],
                    "seconds": seconds[side][row],
                }
            )
    result = {
        "benchmark": "bench_decode",
        "date": started.date().isoformat(),
        "started": started.isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/bench_decode.py", *(argv or sys.argv[1:])]),
        "commit": _commit(),
        "machine": _machine(),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "n_files": len(paths),
        "rows": rows,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"bench_decode-{started:%Y%m%d}-{result['commit']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(f"written: {out}")
    return result


if __name__ == "__main__":
    main()
