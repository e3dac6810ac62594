"""Training throughput: images per second of one training epoch of every method.

Measures one epoch of each method's training loop on Fashion-MNIST images resized to 20 and
64 px (the estimators' ``image_size``), all with the same ``convnet-small`` backbone
(:class:`deepclust.networks.SmallConvNet`, width 16, 64 features; the same network at both
sizes, its global average pooling absorbs the size) and batch size 256:

``pretext``
    One SimCLR pretext epoch of :class:`~deepclust.SCANClusterer` (``pretext_epochs=1,
    max_epochs=0, selflabel_epochs=0``): two augmented views per image, NT-Xent loss.
``sela``
    One SeLa epoch of :class:`~deepclust.SelfLabelClusterer` (``max_epochs=1,
    n_label_updates=0, augmentation='strong'``): cross-entropy against the labels.
``deepcluster``
    One epoch of :class:`~deepclust.DeepClusterEstimator` (``max_epochs=1, pca_dim=32``).
    Its ``seconds`` include the epoch's re-clustering (features of all images, PCA-whitening,
    k-means) before the training batches; the history does not time them apart.
``scan``
    The SCAN step of :class:`~deepclust.SCANClusterer` (``pretext_epochs=0, max_epochs=1,
    selflabel_epochs=0``; randomly initialised backbone, whole network trained).
``clusterfit``
    The pseudo-label epoch of :class:`~deepclust.ClusterFitTransformer`
    (``pretext_epochs=1, max_epochs=1``; its ``clusterfit`` record, the pretext not timed).

Each figure is ``n / seconds`` of that stage's record in ``history_`` (``n`` images, one
epoch), the first and only epoch of a fresh fit, so start-up costs of the epoch count.
Reference rows train the same network the way the reference implementations do:
torchvision per-image transforms of PIL images in a ``DataLoader`` with two workers, a
plain float32 loop with SGD (``reference-simclr``: two views, RandomResizedCrop, flip,
ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8, RandomGrayscale(0.2), both views in one forward
pass through the backbone and deepclust's projection head, NT-Xent;
``reference-pseudolabel``: RandomResizedCrop, flip, a linear head and cross-entropy on
fixed random labels; ``reference-strong``: the same with SCAN's strong policy, a padded
random crop, flip, RandAugment with 4 operations and a cutout, the counterpart of the
``sela`` case's ``augmentation='strong'``). They run with the current checkout only.

Every measurement runs in a fresh subprocess. With ``--compare REV`` a git worktree of
``REV`` is made in a temporary folder and every case runs alternately with the current
checkout and with REV (``PYTHONPATH`` names the tree; the worker checks
``deepclust.__file__``), ``--repeats`` rounds of all cases, so both see the same machine
load. Reported: the median images/s of each and the ratio of the medians current/REV.

Run from the repository root::

    python benchmarks/bench_train.py                       # current checkout only
    python benchmarks/bench_train.py --compare ebb284d     # side by side with ebb284d
    python benchmarks/bench_train.py --cases pretext sela --sizes 64 --repeats 5
    python benchmarks/bench_train.py --device cuda --n 20000
    python benchmarks/bench_train.py --report              # rewrite the table from the JSON

Writes ``benchmarks/results/bench_train-<YYYYMMDD>-<commit>.json`` (after every
measurement, so an interrupted run keeps what it measured) and the reStructuredText table
``docs/_bench/train.rst.inc``. Workers call ``torch.set_num_threads(--threads)``, by default
the number of CPUs; ``--threads 0`` leaves the thread count to torch and deepclust.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
DOC = REPO_ROOT / "docs" / "_bench" / "train.rst.inc"
RESULT_PREFIX = "RESULT "
CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

#: case -> the method (its name in deepclust's method registry), the estimator's parameters
#: (besides those of :func:`common_params`), the ``history_`` stage timed, and the reference
#: row it is compared with.
CASES = {
    "pretext": {
        "method": "scan",
        "params": {"pretext_epochs": 1, "max_epochs": 0, "selflabel_epochs": 0, "n_neighbors": 5},
        "stage": "pretext",
        "reference": "reference-simclr",
    },
    "sela": {
        "method": "sela",
        "params": {"max_epochs": 1, "n_label_updates": 0, "augmentation": "strong"},
        "stage": "selflabel",
        "reference": "reference-strong",
    },
    "deepcluster": {
        "method": "deepcluster",
        "params": {"max_epochs": 1, "pca_dim": 32},
        "stage": "deepcluster",
        "reference": "reference-pseudolabel",
        "note": "includes the epoch's re-clustering: features of all images, PCA, k-means",
    },
    "scan": {
        "method": "scan",
        "params": {"pretext_epochs": 0, "max_epochs": 1, "selflabel_epochs": 0, "n_neighbors": 5},
        "stage": "scan",
        "reference": "reference-pseudolabel",
    },
    "clusterfit": {
        "method": "clusterfit",
        "params": {"pretext_epochs": 1, "max_epochs": 1},
        "stage": "clusterfit",
        "reference": "reference-pseudolabel",
    },
}
REFERENCES = ("reference-simclr", "reference-pseudolabel", "reference-strong")
#: The estimator classes of checkouts older than the method registry (before 8b8bcea;
#: ``ebb284d`` for one), by method name.
CLASSES_BEFORE_REGISTRY = {
    "sela": "SelfLabelClusterer",
    "deepcluster": "DeepClusterEstimator",
    "scan": "SCANClusterer",
    "clusterfit": "ClusterFitTransformer",
}
#: The NT-Xent temperature of the reference pretext (SCANClusterer's default).
REFERENCE_TEMPERATURE = 0.1


def common_params(spec: dict) -> dict:
    """Estimator parameters shared by every case.

    Parameters
    ----------
    spec : dict
        A worker's task: ``backbone``, ``size``, ``batch_size``, ``device``.

    Returns
    -------
    dict
        Keyword arguments for the estimator.
    """
    return {
        "n_clusters": 10,
        "backbone": spec["backbone"],
        "image_size": spec["size"],
        "batch_size": spec["batch_size"],
        "device": spec["device"],
        "random_state": 0,
    }


# --------------------------------------------------------------------------- worker side


def _jsonable(value):
    """``value`` as JSON: numbers as float/int, containers recursively, others as text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


def _estimator_class(method: str) -> type:
    """The estimator class of ``method``, from the registry or, before it, by class name."""
    import deepclust
    import deepclust.methods

    if hasattr(deepclust.methods, "get_method"):
        return deepclust.methods.get_method(method)
    return getattr(deepclust, CLASSES_BEFORE_REGISTRY[method])


def time_estimator(spec: dict, images: np.ndarray) -> dict:
    """Fit one case's estimator and return the timed epoch of its ``history_``.

    Parameters that the imported deepclust does not take (an older checkout) are left out
    and listed under ``dropped_params``.

    Parameters
    ----------
    spec : dict
        The worker's task (``case``, ``size``, ``device``, ...).
    images : numpy.ndarray of shape (n, 28, 28), dtype uint8
        The training images.

    Returns
    -------
    dict
        ``seconds`` and ``images_per_second`` of the epoch, the fit's wall time, the record.
    """
    case = CASES[spec["case"]]
    cls = _estimator_class(case["method"])
    wanted = {**common_params(spec), **case["params"]}
    accepted = cls().get_params()
    params = {key: value for key, value in wanted.items() if key in accepted}
    estimator = cls(**params)
    started = time.perf_counter()
    estimator.fit(images)
    fit_seconds = time.perf_counter() - started
    records = [r for r in estimator.history_ if r.get("stage") == case["stage"]]
    if not records:
        stages = sorted({str(r.get("stage")) for r in estimator.history_})
        raise RuntimeError(f"no {case['stage']!r} record in history_ (stages: {stages})")
    seconds = float(records[0]["seconds"])
    return {
        "seconds": seconds,
        "images_per_second": len(images) / seconds,
        "loss": _jsonable(records[0].get("loss")),
        "fit_seconds": fit_seconds,
        "estimator": cls.__name__,
        "params": _jsonable(params),
        "dropped_params": sorted(set(wanted) - set(accepted)),
        "record": _jsonable(records[0]),
    }


class ReferenceDataset:
    """Fashion-MNIST as PIL images through per-image torchvision transforms.

    Parameters
    ----------
    images : numpy.ndarray of shape (n, 28, 28), dtype uint8
        The training images.
    transform : callable
        The torchvision transform of one PIL image.
    labels : numpy.ndarray of shape (n,) or None
        Fixed labels (pseudo-label epoch); ``None`` gives two views per image (SimCLR).
    """

    def __init__(self, images, transform, labels=None):
        self.images, self.transform, self.labels = images, transform, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.images[index])  # uint8 (28, 28): mode "L"
        if self.labels is None:
            return self.transform(image), self.transform(image)
        return self.transform(image), int(self.labels[index])


def _reference_transform(kind: str, size: int):
    """The reference implementations' per-image torchvision pipeline for ``kind``."""
    from torchvision import transforms as T

    if kind == "reference-simclr":
        return T.Compose(
            [
                T.RandomResizedCrop(size),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                T.RandomGrayscale(0.2),
                T.ToTensor(),
            ]
        )
    if kind == "reference-strong":  # SCAN's strong policy: crop, flip, RandAugment, cutout
        return T.Compose(
            [
                T.Resize(size),
                T.RandomCrop(size, padding=max(1, size // 8)),
                T.RandomHorizontalFlip(),
                T.RandAugment(num_ops=4),
                T.ToTensor(),
                T.RandomErasing(p=1.0, scale=(0.25, 0.25), ratio=(1.0, 1.0)),
            ]
        )
    return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor()])


def _nt_xent(z1, z2, temperature: float):
    """SimCLR's NT-Xent loss written plainly, as in the reference implementations."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


def _reference_model(kind: str, device):
    """``convnet-small`` (SmallConvNet, width 16) with a projection or a linear head."""
    from torch import nn

    from deepclust.networks import ProjectionHead, SmallConvNet

    head = ProjectionHead(64, 128, 128) if kind == "reference-simclr" else nn.Linear(64, 10)
    return nn.Sequential(SmallConvNet(1, width=16), head).to(device)


def time_reference(spec: dict, images: np.ndarray) -> dict:
    """One epoch of the reference-style loop; ``skipped`` if torchvision does not load.

    Parameters
    ----------
    spec : dict
        The worker's task (``case`` is a name of :data:`REFERENCES`).
    images : numpy.ndarray of shape (n, 28, 28), dtype uint8
        The training images.

    Returns
    -------
    dict
        ``seconds`` and ``images_per_second`` of the epoch, or ``skipped`` with the reason.
    """
    import torch

    try:
        import torchvision.transforms  # noqa: F401
    except Exception as error:  # a torchvision that does not match torch
        return {"skipped": f"torchvision.transforms does not load: {type(error).__name__}: {error}"}
    kind, device = spec["case"], torch.device(spec["device"])
    torch.manual_seed(0)
    labels = None
    if kind != "reference-simclr":
        labels = np.random.default_rng(0).integers(0, 10, len(images))
    dataset = ReferenceDataset(images, _reference_transform(kind, spec["size"]), labels)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=spec["batch_size"],
        shuffle=True,
        num_workers=2,
        pin_memory=device.type == "cuda",
    )
    model = _reference_model(kind, device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    started = time.perf_counter()
    total = 0.0
    for first, second in loader:
        first = first.to(device, non_blocking=True)
        second = second.to(device, non_blocking=True)
        if labels is None:  # both views in one forward pass, as SCAN's simclr_train
            z1, z2 = model(torch.cat([first, second])).chunk(2)
            loss = _nt_xent(z1, z2, REFERENCE_TEMPERATURE)
        else:
            loss = torch.nn.functional.cross_entropy(model(first), second)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "images_per_second": len(images) / seconds,
        "loss": total / len(loader),
    }


def run_worker(spec: dict) -> dict:
    """Run one measurement in this fresh process and print it as a ``RESULT`` JSON line.

    Parameters
    ----------
    spec : dict
        The task: ``kind`` (``'estimator'`` or ``'reference'``), ``case``, ``size``,
        ``device``, ``backbone``, ``batch_size``, ``threads``, ``data`` (a ``.npy`` file)
        and ``tree`` (the folder ``deepclust`` must be imported from).

    Returns
    -------
    dict
        The measurement.
    """
    import torch

    info: dict = {"torch_threads_default": torch.get_num_threads()}
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    import deepclust

    info["deepclust_file"] = str(Path(deepclust.__file__).resolve())
    tree = Path(spec["tree"]).resolve()
    if not Path(info["deepclust_file"]).is_relative_to(tree):
        raise RuntimeError(f"deepclust imported from {info['deepclust_file']}, not {tree}")
    info["torch_threads_before_fit"] = torch.get_num_threads()
    images = np.load(spec["data"])
    try:
        measure = time_estimator if spec["kind"] == "estimator" else time_reference
        info.update(measure(spec, images))
    except Exception as error:  # recorded, the benchmark goes on with the other cases
        info["error"] = f"{type(error).__name__}: {error}"
    info["torch_threads_after_fit"] = torch.get_num_threads()
    print(RESULT_PREFIX + json.dumps(info), flush=True)
    return info


# --------------------------------------------------------------------------- driver side


def _git(*arguments: str, cwd: Path = REPO_ROOT) -> str:
    """Output of a git command in ``cwd`` (stripped); raises if git fails."""
    done = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _checkout_commit() -> str:
    """The current checkout's short commit, with ``-dirty`` for uncommitted changes."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def _machine_info(devices: list[str]) -> dict:
    """Platform, CPU model and flags, torch version, load average; GPU name if used."""
    import torch

    model = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in lscpu.splitlines()
                if line.startswith("Model name")
            ),
            "",
        )
    except OSError:
        pass
    try:
        flags = set(
            next(
                line
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("flags")
            )
            .split(":", 1)[1]
            .split()
        )
    except (OSError, StopIteration):
        flags = set()
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS},
        "torch": torch.__version__,
        "load_average_start": os.getloadavg(),
    }
    if "cuda" in devices:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _prepare_data(n: int, seed: int, folder: Path) -> Path:
    """``n`` random Fashion-MNIST training images (seeded) saved to ``folder/images.npy``."""
    sys.path.insert(0, str(REPO_ROOT))
    from deepclust.datasets import load_fashion_mnist

    images, _ = load_fashion_mnist(subset="train")
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))
    path = folder / "images.npy"
    np.save(path, np.ascontiguousarray(images[chosen]))
    return path


def _add_worktree(rev: str, folder: Path) -> tuple[Path, str]:
    """A detached git worktree of ``rev`` in ``folder``; returns it and the short commit."""
    commit = _git("rev-parse", "--short", f"{rev}^{{commit}}")
    path = folder / f"rev-{commit}"
    _git("worktree", "add", "--detach", str(path), commit)
    return path, commit


def _remove_worktree(path: Path) -> None:
    """Remove a worktree made by :func:`_add_worktree` (and git's note of it)."""
    try:
        _git("worktree", "remove", "--force", str(path))
    except subprocess.CalledProcessError as error:
        print(f"could not remove worktree {path}: {error.stderr}", file=sys.stderr)
    _git("worktree", "prune")


def _spawn(spec: dict, folder: Path, timeout: float) -> dict:
    """Run :func:`run_worker` on ``spec`` in a fresh interpreter with ``PYTHONPATH=tree``."""
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec))
    # The tree first, so that ``import deepclust`` finds it; other entries (carried wheels,
    # say) stay after it.
    path = os.pathsep.join(p for p in (spec["tree"], os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path)]
    try:
        done = subprocess.run(
            command,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        tail = (done.stdout + done.stderr)[-2000:]
        return {"error": f"worker exited with {done.returncode}: {tail}"}
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def _plan_tasks(args: argparse.Namespace) -> list[dict]:
    """Every (kind, case, size, device) to measure, in the order of a round."""
    tasks = []
    for device in args.device:
        for size in args.sizes:
            for case in args.cases:
                tasks.append({"kind": "estimator", "case": case, "size": size, "device": device})
            if args.no_reference:
                continue
            for case in REFERENCES:
                if any(CASES[c]["reference"] == case for c in args.cases):
                    tasks.append(
                        {"kind": "reference", "case": case, "size": size, "device": device}
                    )
    return tasks


def _describe(measurement: dict) -> str:
    """One progress line for a measurement."""
    where = (
        f"[round {measurement['round'] + 1}] {measurement['case']:21s} "
        f"{measurement['size']:3d}px {measurement['device']:4s} {measurement['tree']:4s}"
    )
    if "images_per_second" in measurement:
        threads = measurement.get("torch_threads_after_fit")
        return (
            f"{where} {measurement['images_per_second']:9.0f} img/s  (epoch "
            f"{measurement['seconds']:.2f} s, {threads} threads)"
        )
    return f"{where} {measurement.get('skipped') or measurement.get('error')}"


def run_benchmark(args: argparse.Namespace, result: dict, path: Path, folder: Path) -> None:
    """Measure every task ``--repeats`` times, alternating the trees; save as it goes.

    Each round runs every task once, each estimator case with the current checkout and
    then with REV (when compared), so slow phases of a shared machine hit both alike.

    Parameters
    ----------
    args : argparse.Namespace
        The command line.
    result : dict
        The result record; measurements are appended to ``result['measurements']``.
    path : pathlib.Path
        The JSON file, rewritten after every measurement.
    folder : pathlib.Path
        A temporary folder for the images and the workers' task files.
    """
    trees = result["trees"]
    data = _prepare_data(args.n, args.seed, folder)
    base = {
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "data": str(data),
    }
    tasks = _plan_tasks(args)
    per_round = sum(len(trees) if task["kind"] == "estimator" else 1 for task in tasks)
    result["planned_measurements"] = args.repeats * per_round
    for round_index in range(args.repeats):
        for task in tasks:
            labels = list(trees) if task["kind"] == "estimator" else ["now"]
            for label in labels:
                spec = {**base, **task, "tree": trees[label]["path"]}
                load = os.getloadavg()[0]
                measured = _spawn(spec, folder, args.timeout)
                measurement = {
                    **task,
                    "tree": label,
                    "round": round_index,
                    "load_average_1min": load,
                    **measured,
                }
                result["measurements"].append(measurement)
                print(_describe(measurement), flush=True)
                _save_result(result, path)


def _median_ips(measurements: list[dict]) -> float | None:
    values = [m["images_per_second"] for m in measurements if "images_per_second" in m]
    return statistics.median(values) if values else None


def _summarise_group(key: tuple, measurements: list[dict], trees: dict) -> dict:
    """Median images/s per tree, notes and ratios of one case, size and device."""
    row = {"case": key[0], "size": key[1], "device": key[2]}
    for label in trees:
        mine = [m for m in measurements if m["tree"] == label]
        row[f"ips_{label}"] = _median_ips(mine)
        row[f"runs_{label}"] = [m.get("images_per_second") for m in mine]
    notes = {m.get("skipped") or m.get("error") for m in measurements} - {None}
    notes |= {
        f"parameters not taken at {m['tree']}: {', '.join(m['dropped_params'])}"
        for m in measurements
        if m.get("dropped_params")
    }
    row["notes"] = sorted(notes)
    if row.get("ips_now") and row.get("ips_rev"):
        row["ratio"] = row["ips_now"] / row["ips_rev"]
        ips = {(m["round"], m["tree"]): m.get("images_per_second") for m in measurements}
        rounds = sorted({m["round"] for m in measurements})
        row["ratios_by_round"] = [
            ips[(r, "now")] / ips[(r, "rev")]
            for r in rounds
            if ips.get((r, "now")) and ips.get((r, "rev"))
        ]
    return row


def summarise(result: dict) -> list[dict]:
    """Per case, size and device: median images/s per tree, ratios, the reference's.

    Parameters
    ----------
    result : dict
        A result record with its ``measurements`` and ``trees``.

    Returns
    -------
    list of dict
        One row per case, size and device, in the order first measured.
    """
    groups: dict = {}
    for m in result["measurements"]:
        groups.setdefault((m["case"], m["size"], m["device"]), []).append(m)
    rows = [_summarise_group(key, ms, result["trees"]) for key, ms in groups.items()]
    reference = {(r["case"], r["size"], r["device"]): r.get("ips_now") for r in rows}
    for row in rows:
        if row["case"] in CASES:
            ref = reference.get((CASES[row["case"]]["reference"], row["size"], row["device"]))
            row["reference_ips"] = ref
            if ref and row.get("ips_now"):
                row["ratio_to_reference"] = row["ips_now"] / ref
    return rows


def _save_result(result: dict, path: Path) -> None:
    """Write ``result`` (with its summary brought up to date) to ``path``."""
    result["summary"] = summarise(result)
    result["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


def _result_path(folder: Path, date: str, commit: str) -> Path:
    """``bench_train-<YYYYMMDD>-<commit>.json`` in ``folder``, numbered if it exists."""
    stem = f"bench_train-{date.replace('-', '')}-{commit}"
    path, number = folder / f"{stem}.json", 2
    while path.exists():
        path, number = folder / f"{stem}-{number}.json", number + 1
    return path


def _newest_result(folder: Path) -> dict:
    """The result file in ``folder`` whose run started last."""
    results = [json.loads(p.read_text()) for p in folder.glob("bench_train-*.json")]
    if not results:
        raise SystemExit(f"no bench_train-*.json in {folder}")
    return max(results, key=lambda r: r["started"])


# --------------------------------------------------------------------------- the table


def _fmt(value: float | None, pattern: str = "{:,.0f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def _table_rows(result: dict, footnotes: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table; notes become footnotes (appended to ``footnotes``)."""
    compare = "rev" in result["trees"]
    rev_name = result["trees"].get("rev", {}).get("commit", "REV")
    header = ["Case", "Size", "Device", "Images/s now"]
    if compare:
        header += [f"Images/s {rev_name}", f"Ratio now / {rev_name}", "Per-round ratios"]
    header += ["Reference images/s", "Ratio now / reference"]
    rows = []
    for row in result["summary"]:
        notes = list(row["notes"])
        if row["case"] in CASES and "note" in CASES[row["case"]]:
            notes.insert(0, CASES[row["case"]]["note"])
        mark = ""
        for note in notes:
            footnotes.append(note)
            mark += f" [#train-{len(footnotes)}]_"
        cells = [
            f"``{row['case']}``{mark}",
            f"{row['size']} px",
            row["device"],
            _fmt(row.get("ips_now")),
        ]
        if compare:
            per_round = ", ".join(f"{r:.2f}" for r in row.get("ratios_by_round", []))
            cells += [_fmt(row.get("ips_rev")), _fmt(row.get("ratio"), "{:.2f}x"), per_round]
        if row["case"] in CASES:
            cells += [
                _fmt(row.get("reference_ips")),
                _fmt(row.get("ratio_to_reference"), "{:.2f}x"),
            ]
        else:
            cells += ["", ""]
        rows.append(cells)
    return header, rows


def render_doc(result: dict) -> str:
    """The reStructuredText text of ``docs/_bench/train.rst.inc`` for ``result``.

    Parameters
    ----------
    result : dict
        A result record, as saved in the JSON file (with its ``summary``).

    Returns
    -------
    str
        Title, description, date, machine, command and the table.
    """
    footnotes: list[str] = []
    header, rows = _table_rows(result, footnotes)
    m, cfg = result["machine"], result["config"]
    flags = ", ".join(f for f, present in m["cpu_flags"].items() if present) or "none"
    trees = "; ".join(f"{label}: {tree['commit']}" for label, tree in result["trees"].items())
    lines = [
        "Training throughput",
        "-------------------",
        "",
        f"Images per second of one training epoch (``n / seconds`` of the stage's "
        f"``history_`` record) on {cfg['n']:,} Fashion-MNIST training images, backbone "
        f"``{cfg['backbone']}`` at every size, batch size {cfg['batch_size']}; median of "
        f"{cfg['repeats']} runs, each in a fresh process, the trees alternated run by run. "
        "Reference rows: the same network trained as the reference implementations do "
        "(per-image torchvision transforms of PIL images, ``DataLoader`` with 2 workers, "
        "float32, SGD); ``pretext`` is compared with ``reference-simclr`` (SimCLR's "
        "transforms), ``sela`` (whose ``strong`` policy is SCAN's) with ``reference-strong`` "
        "(crop, flip, RandAugment with 4 operations, a cutout of a quarter of the image), "
        "the other cases with ``reference-pseudolabel`` (random resized crop and flip). "
        "See ``benchmarks/bench_train.py`` for the cases.",
        "",
        f"Date {result['started'][:10]}. Machine: {m['cpu_model'] or 'unknown CPU'}, "
        f"{m['cpu_count']} CPUs (of the flags {', '.join(CPU_FLAGS)}: {flags}), "
        f"{m.get('gpu', 'no GPU used')}, {m['platform']}, torch {m['torch']}, "
        f"threads {cfg['threads'] or 'torch default'}. Trees: {trees}.",
        "",
        "Command::",
        "",
        f"    {cfg['command']}",
        "",
    ]
    if cfg["n"] < 5000 or cfg["repeats"] < 2:
        lines += [
            ".. note::",
            "",
            "   A smoke test of the benchmark, too small to compare "
            "figures: run it with the default ``--n`` and ``--repeats``.",
            "",
        ]
    made, planned = len(result["measurements"]), result.get("planned_measurements", 0)
    if made < planned:
        lines += [
            ".. note::",
            "",
            f"   The run stopped early: {made} of {planned} measurements made.",
            "",
        ]
    lines += [".. list-table::", "   :header-rows: 1", ""]
    for cells in [header, *rows]:
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {cell}".rstrip() for cell in cells[1:])
    lines.append("")
    lines += [f".. [#train-{i}] {note}" for i, note in enumerate(footnotes, 1)]
    return "\n".join(lines).rstrip() + "\n"


def write_doc(result: dict, doc: Path) -> None:
    """Write :func:`render_doc` of ``result`` to ``doc``.

    Parameters
    ----------
    result : dict
        A result record, as saved in the JSON file.
    doc : pathlib.Path
        The ``.rst.inc`` file to write.
    """
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render_doc(result))
    print(f"wrote {doc}")


# --------------------------------------------------------------------------- command line


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="training images (default 10000)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 64], help="image sizes")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument(
        "--device",
        nargs="+",
        choices=["cpu", "cuda"],
        default=None,
        help="default: cpu, and cuda when available",
    )
    parser.add_argument("--backbone", default="convnet-small")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="torch.set_num_threads in the workers (0: leave it)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all cases")
    parser.add_argument("--compare", metavar="REV", help="also measure git revision REV")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference rows")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image choice")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--doc", type=Path, default=DOC, help="the .rst.inc to write")
    parser.add_argument(
        "--report",
        action="store_true",
        help="rewrite --doc from the newest JSON in --results-dir; run nothing",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _new_result(args: argparse.Namespace, argv: list[str] | None) -> dict:
    """The result record before any measurement: configuration, machine, trees."""
    started = datetime.datetime.now().isoformat(timespec="seconds")
    config = {
        key: value
        for key, value in vars(args).items()
        if key not in ("worker", "report", "results_dir", "doc")
    }
    arguments = sys.argv[1:] if argv is None else argv
    config["command"] = shlex.join(["python", "benchmarks/bench_train.py", *arguments])
    return {
        "benchmark": "bench_train",
        "started": started,
        "config": config,
        "machine": _machine_info(args.device),
        "trees": {"now": {"path": str(REPO_ROOT), "commit": _checkout_commit()}},
        "measurements": [],
    }


def _exit_on_sigterm(signum, frame) -> None:
    """Turn SIGTERM (``timeout``, a batch system) into SystemExit, so cleanup runs."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, a worker (``--worker``) or the report (``--report``).

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``sys.argv[1:]`` when None.
    """
    args = _parse_args(argv)
    if args.worker:
        run_worker(json.loads(Path(args.worker).read_text()))
        return
    if args.report:
        write_doc(_newest_result(args.results_dir), args.doc)
        return
    if args.device is None:
        import torch

        args.device = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    result = _new_result(args, argv)
    path = _result_path(args.results_dir, result["started"][:10], result["trees"]["now"]["commit"])
    with tempfile.TemporaryDirectory(prefix="bench_train-") as tmp:
        folder, worktree = Path(tmp), None
        try:
            if args.compare:
                worktree, commit = _add_worktree(args.compare, folder)
                result["trees"]["rev"] = {
                    "path": str(worktree),
                    "commit": commit,
                    "rev": args.compare,
                }
            run_benchmark(args, result, path, folder)
        finally:
            if worktree is not None:
                _remove_worktree(worktree)
    result["machine"]["load_average_end"] = os.getloadavg()
    _save_result(result, path)
    print(f"wrote {path}")
    write_doc(result, args.doc)


if __name__ == "__main__":
    main()
