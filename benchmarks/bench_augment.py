"""Throughput of deepclust's batched augmentation against per-image torchvision and kornia.

Measures images per second for the ``weak``, ``simclr`` and ``strong`` policies of
:mod:`deepclust.augment` on a batch of float images, against

* the usual torchvision ``transforms.v2`` pipeline applied image by image in a Python loop,
  as a ``DataLoader`` worker does (single process), and
* kornia's batched ``kornia.augmentation`` equivalents (when kornia is installed).

Run from the repository root::

    python benchmarks/bench_augment.py

Raw figures go to ``benchmarks/results/bench_augment.json`` and a reStructuredText table to
``docs/_bench/bench_augment.rst.inc``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.transforms import v2

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from deepclust.augment import make_augmentation  # noqa: E402

DATE = "2026-11-23"
MACHINE = "2-core x86-64 CPU, 24 GiB, no GPU"
COMMAND = "python benchmarks/bench_augment.py"
WORKLOADS = {"32x32x3": (3, 32, 32), "28x28x1": (1, 28, 28)}
POLICIES = ("weak", "simclr", "strong")


def torchvision_pipeline(policy: str, channels: int, side: int) -> Callable:
    """Per-image torchvision v2 pipeline equivalent to a deepclust policy."""
    padding = round(side / 8)
    crop_flip = [
        v2.RandomCrop(side, padding=padding, padding_mode="reflect"),
        v2.RandomHorizontalFlip(),
    ]
    if policy == "weak":
        return v2.Compose(crop_flip)
    if policy == "simclr":
        return v2.Compose(
            [
                v2.RandomResizedCrop(side, scale=(0.2, 1.0)),
                v2.RandomHorizontalFlip(),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                v2.RandomGrayscale(0.2),
            ]
        )
    cutout_area = (side // 2) ** 2 / side**2
    return v2.Compose(
        [
            v2.RandomCrop(side, padding=padding),
            v2.RandomHorizontalFlip(),
            v2.RandAugment(num_ops=4),
            v2.RandomErasing(p=1.0, scale=(cutout_area, cutout_area), ratio=(1.0, 1.0), value=0),
        ]
    )


def kornia_pipeline(policy: str, channels: int, side: int) -> tuple[Callable, str] | None:
    """Batched kornia equivalent of a policy, with a note on how it differs."""
    try:
        import kornia.augmentation as K
        from kornia.augmentation.auto import RandAugment
    except ImportError:  # pragma: no cover - kornia is optional
        return None
    padding = round(side / 8)
    if policy == "weak":
        module = K.AugmentationSequential(
            K.RandomCrop((side, side), padding=padding, padding_mode="reflect"),
            K.RandomHorizontalFlip(),
        )
        return module, ""
    if policy == "simclr":
        note = ""
        if channels == 3:
            jitter = K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8)
        else:  # kornia's ColorJitter rejects 1-channel input unless only brightness/contrast
            jitter = K.ColorJitter(0.4, 0.4, 0.0, 0.0, p=0.8)
            note = "brightness/contrast jitter only (kornia needs 3 channels for the rest)"
        module = K.AugmentationSequential(
            K.RandomResizedCrop((side, side), scale=(0.2, 1.0)),
            K.RandomHorizontalFlip(),
            jitter,
            K.RandomGrayscale(p=0.2),
        )
        return module, note
    cutout_area = (side // 2) ** 2 / side**2
    module = torch.nn.Sequential(
        K.RandomCrop((side, side), padding=padding),
        K.RandomHorizontalFlip(),
        RandAugment(n=4, m=10),
        K.RandomErasing(p=1.0, scale=(cutout_area, cutout_area), ratio=(1.0, 1.0)),
    )
    return module, "RandAugment draws one op sequence per batch, not per image"


def time_callable(
    run: Callable[[], object], *, warmup: int, repeats: int, batch_size: int
) -> dict[str, float]:
    """Time ``run`` (one batch) ``repeats`` times after ``warmup`` calls.

    Records wall-clock time (the reported figure) and the process CPU time, which is less
    sensitive to other jobs on a shared machine.
    """
    for _ in range(warmup):
        run()
    seconds, cpu_seconds = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        run()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    median = statistics.median(seconds)
    return {
        "median_seconds": median,
        "min_seconds": min(seconds),
        "median_cpu_seconds": statistics.median(cpu_seconds),
        "images_per_second": batch_size / median,
        "best_images_per_second": batch_size / min(seconds),
        "repeats": repeats,
    }


def measure_workload(
    args: argparse.Namespace, workload: str, channels: int, side: int
) -> dict[str, dict]:
    """Time every policy on one image size, ours against torchvision and kornia."""
    images = torch.rand(args.batch_size, channels, side, side)
    rows = {}
    for policy in POLICIES:
        ours = make_augmentation(policy)
        row = {
            "deepclust": time_callable(
                lambda ours=ours: ours(images),
                warmup=args.warmup,
                repeats=args.repeats,
                batch_size=args.batch_size,
            )
        }
        pipeline = torchvision_pipeline(policy, channels, side)
        row["torchvision_per_image"] = time_callable(
            lambda pipeline=pipeline: torch.stack([pipeline(image) for image in images]),
            warmup=1,
            repeats=args.baseline_repeats,
            batch_size=args.batch_size,
        )
        built = kornia_pipeline(policy, channels, side)
        if built is not None:
            module, note = built
            try:
                row["kornia"] = time_callable(
                    lambda module=module: module(images),
                    warmup=args.warmup,
                    repeats=args.repeats,
                    batch_size=args.batch_size,
                )
                row["kornia"]["note"] = note
            except Exception as error:  # record, do not hide, a failing comparison
                row["kornia"] = {"error": f"{type(error).__name__}: {error}"}
        row["speedup_vs_torchvision"] = (
            row["deepclust"]["images_per_second"]
            / row["torchvision_per_image"]["images_per_second"]
        )
        rows[policy] = row
        kornia_text = ""
        if "images_per_second" in row.get("kornia", {}):
            kornia_text = f"  kornia {row['kornia']['images_per_second']:8.0f} img/s"
        print(
            f"threads={torch.get_num_threads()} {workload:8s} {policy:7s} deepclust "
            f"{row['deepclust']['images_per_second']:9.0f} img/s  torchvision "
            f"{row['torchvision_per_image']['images_per_second']:7.0f} img/s  "
            f"x{row['speedup_vs_torchvision']:.1f}{kornia_text}",
            flush=True,
        )
    return rows


def measure(args: argparse.Namespace) -> dict:
    import torchvision

    try:
        import kornia

        kornia_version = kornia.__version__
    except ImportError:  # pragma: no cover
        kornia_version = None
    results: dict = {
        "date": DATE,
        "machine": MACHINE,
        "command": COMMAND,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "kornia": kornia_version,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "baseline_repeats": args.baseline_repeats,
        "load_average_before": os.getloadavg(),
        "runs": {},
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        results["runs"][str(threads)] = {
            workload: measure_workload(args, workload, channels, side)
            for workload, (channels, side, _) in WORKLOADS.items()
        }
    results["load_average_after"] = os.getloadavg()
    return results


def _kornia_cell(entry: dict | None, notes: dict[str, str]) -> str:
    """Table cell for kornia, registering any note or error as a named footnote."""
    if entry is None:
        return "n/a"
    text = entry.get("note") or (f"does not run: ``{entry['error']}``" if "error" in entry else "")
    label = ""
    if text:
        label = notes.setdefault(text, f"kornia-note-{len(notes) + 1}")
    if "error" in entry:
        return f"n/a [#{label}]_"
    figure = f"{entry['images_per_second']:,.0f}"
    return f"{figure} [#{label}]_" if label else figure


def write_rst(results: dict, path: Path) -> None:
    notes: dict[str, str] = {}
    lines = [
        "Batched augmentation throughput",
        "-------------------------------",
        "",
        "Images per second (wall clock, median of "
        f"{results['repeats']} timed batches after {results['warmup']} warm-up batches; "
        f"{results['baseline_repeats']} for the per-image loop) for batches of "
        f"{results['batch_size']} float images on the CPU, single process, with "
        "``torch.set_num_threads(n)`` for the thread counts n listed. ``deepclust`` is "
        ":func:`deepclust.augment.make_augmentation` (whole batch at once, independent "
        "parameters per image); ``torchvision`` applies the equivalent "
        "``torchvision.transforms.v2`` pipeline image by image in a Python loop, as a "
        "``DataLoader`` does; ``kornia`` is the batched ``kornia.augmentation`` "
        f"equivalent (kornia {results.get('kornia')}). Policies: ``weak`` = padded random crop "
        "+ flip; ``simclr`` = RandomResizedCrop(scale 0.2-1) + flip + ColorJitter(0.4, 0.4, "
        "0.4, 0.1) with p=0.8 + RandomGrayscale(0.2); ``strong`` = padded crop + flip + 4 "
        "RandAugment-style ops of random magnitude + cutout of half the side (torchvision: "
        "RandAugment(num_ops=4), fixed magnitude 9 of 31, + RandomErasing of the same square; "
        "kornia: its RandAugment + RandomErasing).",
        "",
        f"Measured on {results['date']}, {results['machine']} (shared with other jobs: "
        f"1-minute load average {results['load_average_before'][0]:.1f} before, "
        f"{results['load_average_after'][0]:.1f} after), torch {results['torch']}, "
        f"torchvision {results['torchvision']}. Command::",
        "",
        f"    {results['command']}",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - Images",
        "     - Threads",
        "     - Policy",
        "     - deepclust (img/s)",
        "     - torchvision per image (img/s)",
        "     - Speed-up vs torchvision",
        "     - kornia (img/s)",
    ]
    for workload in WORKLOADS:
        for threads, run in results["runs"].items():
            for policy, row in run[workload].items():
                lines += [
                    f"   * - {workload}",
                    f"     - {threads}",
                    f"     - {policy}",
                    f"     - {row['deepclust']['images_per_second']:,.0f}",
                    f"     - {row['torchvision_per_image']['images_per_second']:,.0f}",
                    f"     - {row['speedup_vs_torchvision']:.1f}x",
                    f"     - {_kornia_cell(row.get('kornia'), notes)}",
                ]
    lines.append("")
    for note, label in notes.items():
        lines.append(f".. [#{label}] kornia: {note.rstrip('.')}.")
    if notes:
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="torch thread counts to time"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15, help="timed batches (batched)")
    parser.add_argument(
        "--baseline-repeats", type=int, default=5, help="timed batches (per-image loop)"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "bench_augment.json"
    )
    parser.add_argument(
        "--rst", type=Path, default=REPO_ROOT / "docs" / "_bench" / "bench_augment.rst.inc"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    results = measure(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    write_rst(results, args.rst)
    print(f"wrote {args.output} and {args.rst}")


if __name__ == "__main__":
    main()
