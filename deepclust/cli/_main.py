"""The ``deepclust`` command: ``cluster`` a folder of images, ``predict`` with a saved model,
and ``demo`` (clusters scikit-learn's digits).

``deepclust cluster SOURCE --method M --n-clusters K --out DIR`` writes into ``DIR``:

- ``labels.csv``: ``source,cluster,confidence`` per input, in input order (``source`` is
  the file's path relative to SOURCE, or the row index for arrays; ``cluster`` is the saved
  model's ``predict``; ``confidence`` its ``predict_proba`` for that cluster);
- ``clusters.png`` (+ ``clusters-2.png``... beyond 50 clusters): one row per cluster with
  its most confident images;
- ``model.safetensors`` + ``model.json``: the fitted model (:mod:`deepclust.io`);
- ``metrics.json`` when true labels are known (data sets, ``.npz`` with ``y``);
- ``report.html``: montage, cluster sizes and training curves in one offline page;
- ``run.json``: the settings of the run; ``checkpoint.pt`` while training (removed at the
  end), which ``--resume`` continues from.

Every output is written to a temporary name and renamed, so a crash never leaves a
half-written file.

``--epochs E`` sets each method's main training length, and each method has its own
command-line defaults; both are declared in the method's ``method_spec``
(``epoch_params``, ``default_epochs`` and ``recipe``, see
:class:`deepclust.methods.MethodSpec`) and listed by ``deepclust cluster --help``.

Precedence: these defaults, then ``--config FILE`` (a JSON object of estimator
parameters), then the explicit options (``--epochs``, ``--batch-size``, ``--image-size``,
``--n-clusters``, ``--seed``, ``--device``).
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser"]

CHECKPOINT_NAME = "checkpoint.pt"
RUN_NAME = "run.json"
LABELS_NAME = "labels.csv"
_LABEL_CHUNK = 4096


class CommandError(ValueError):
    """A problem the user can fix; printed without a traceback, exit status 2."""


# ---------------------------------------------------------------------- helpers
def _estimator_class(method: str):
    from deepclust.methods import get_method

    return get_method(method)


def epoch_params(method: str, epochs: int) -> dict:
    """Estimator parameters set by ``--epochs`` for ``method`` (its ``method_spec``)."""
    return dict(_estimator_class(method).method_spec.epoch_params(epochs))


def _epochs_help() -> str:
    from deepclust.methods import registered_methods

    parts = []
    for name, cls in registered_methods().items():
        spec = cls.method_spec
        set_by = ", ".join(f"{k}={v}" for k, v in spec.epoch_params(spec.default_epochs).items())
        parts.append(f"{name}: {set_by}")
    return "main training length E; the defaults set: " + "; ".join(parts)


def _progress_factory(quiet: bool):
    if quiet:
        return None
    from tqdm.auto import tqdm

    def factory(**kwargs):
        return tqdm(leave=False, dynamic_ncols=True, **kwargs)

    return factory


def _say(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, flush=True)


def _atomic_write_text(path: Path, text: str) -> None:
    from deepclust._utils import atomic_write

    atomic_write(path, text.encode("utf-8"))


def _read_config(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except FileNotFoundError as exc:
        raise CommandError(f"--config file {path!r} does not exist.") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError(f"--config file {path!r} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise CommandError(
            f"--config file {path!r} must hold a JSON object of estimator parameters, e.g. "
            '{"lr": 0.001}; got ' + type(config).__name__ + "."
        )
    return config


def resolve_cli_device(device: str):
    """The torch device for ``--device``, or a :class:`CommandError` saying why not."""
    from deepclust._utils import resolve_device

    try:
        return resolve_device(device)
    except ValueError as exc:
        raise CommandError(str(exc).replace("device=", "--device ")) from exc


def estimator_params(args, method: str) -> dict:
    """All parameters given to the estimator: defaults < ``--config`` < explicit options."""
    cls = _estimator_class(method)
    valid = set(cls().get_params(deep=False))
    params = dict(cls.method_spec.recipe)
    params.update(epoch_params(method, cls.method_spec.default_epochs))
    config = _read_config(args.config)
    unknown = sorted(set(config) - valid)
    if unknown:
        raise CommandError(
            f"--config: {unknown} are not parameters of {cls.__name__}; valid ones are "
            f"{sorted(valid)}."
        )
    if isinstance(config.get("image_size"), list):
        config["image_size"] = tuple(config["image_size"])
    params.update(config)
    if args.epochs is not None:
        params.update(epoch_params(method, args.epochs))
    if args.batch_size is not None:
        params["batch_size"] = args.batch_size
    params.update(
        n_clusters=args.n_clusters, random_state=args.seed, device=args.device,
        verbose=not args.quiet,
    )
    return params


def label_samples(estimator, data, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """``predict`` and the probability of the predicted cluster, in chunks with progress."""
    n = len(data)
    bar = progress(total=n, desc="labelling", unit="img") if progress else None
    labels, confidence = [], []
    try:
        for start in range(0, n, _LABEL_CHUNK):
            part = data[start : start + _LABEL_CHUNK]
            predicted = np.asarray(estimator.predict(part), dtype=np.int64)
            proba = np.asarray(estimator.predict_proba(part))
            labels.append(predicted)
            confidence.append(proba[np.arange(len(predicted)), predicted])
            if bar is not None:
                bar.update(len(predicted))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(labels), np.concatenate(confidence)


def labels_csv(names, labels, confidence) -> str:
    """The text of ``labels.csv``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["source", "cluster", "confidence"])
    for name, label, conf in zip(names, labels, confidence):
        writer.writerow([name, int(label), f"{float(conf):.6f}"])
    return buffer.getvalue()


def _json_safe(params: dict) -> dict:
    from deepclust.io import _json_value

    return {k: _json_value(v) for k, v in params.items()}


def _check_resume(run_path: Path, run_info: dict) -> None:
    try:
        previous = json.loads(run_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CommandError(f"Cannot read {run_path} to resume: {exc}") from exc
    ignored = {"verbose", "device"}
    differences = []
    for key in ("method", "source", "n_samples"):
        if previous.get(key) != run_info[key]:
            differences.append(f"{key}: {previous.get(key)!r} then, {run_info[key]!r} now")
    old, new = previous.get("params", {}), run_info["params"]
    for key in sorted(set(old) | set(new)):
        if key not in ignored and old.get(key) != new.get(key):
            differences.append(f"{key}: {old.get(key)!r} then, {new.get(key)!r} now")
    if differences:
        raise CommandError(
            f"--resume: this run's settings differ from the interrupted run in {run_path.parent} "
            "(" + "; ".join(differences) + "). Resume with the same options, or start a new "
            "run without --resume in another --out folder."
        )


# ---------------------------------------------------------------------- pipeline
def run_pipeline(
    estimator,
    loaded,
    out_dir: Path,
    *,
    method: str,
    source: str,
    resume: bool,
    quiet: bool,
    say,
    fresh: bool = False,
) -> dict:
    """Fit with checkpoints, then write every output into ``out_dir``.

    Returns
    -------
    dict
        ``labels``, ``confidence``, ``metrics`` (or None), ``fit_seconds``, ``paths``.
    """
    from deepclust.training import Checkpoint, load_state

    progress = _progress_factory(quiet)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / CHECKPOINT_NAME
    run_path = out_dir / RUN_NAME
    run_info = {
        "method": method,
        "estimator": type(estimator).__name__,
        "source": source,
        "n_samples": len(loaded),
        "params": _json_safe(estimator.get_params(deep=False)),
    }
    resume_state = None
    if fresh:
        checkpoint.unlink(missing_ok=True)
    if resume:
        if checkpoint.is_file():
            if run_path.is_file():
                _check_resume(run_path, run_info)
            resume_state = load_state(checkpoint)
            say(
                f"Resuming from {checkpoint} (after {resume_state['epochs_done_total']} "
                "epoch(s))."
            )
        else:
            say(f"No checkpoint in {out_dir}: starting from the beginning.")
    elif checkpoint.is_file():
        raise CommandError(
            f"{out_dir} holds the checkpoint of an unfinished run ({checkpoint}). Add --resume "
            "to continue it, delete the file to start over, or choose another --out folder."
        )
    _atomic_write_text(run_path, json.dumps(run_info, indent=1))

    started = time.perf_counter()
    estimator.fit(
        loaded.data, loaded.y, callbacks=[Checkpoint(checkpoint)], resume_from=resume_state
    )
    fit_seconds = time.perf_counter() - started
    say(f"Trained in {fit_seconds:.0f} s.")
    labels, confidence = label_samples(estimator, loaded.data, progress)
    n_clusters = int(estimator.n_clusters)
    sizes = np.bincount(labels, minlength=n_clusters)
    paths = write_outputs(
        estimator, loaded, out_dir, labels, confidence, sizes,
        fit_seconds=fit_seconds, method=method, source=source, progress=progress,
    )
    checkpoint.unlink(missing_ok=True)
    metrics = None
    if loaded.y is not None:
        metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    return {
        "labels": labels, "confidence": confidence, "metrics": metrics,
        "fit_seconds": fit_seconds, "paths": paths, "sizes": sizes,
    }


def write_outputs(
    estimator, loaded, out_dir: Path, labels, confidence, sizes, *, fit_seconds: float,
    method: str, source: str, progress=None,
) -> list[Path]:
    """Model, ``labels.csv``, ``metrics.json``, montage and ``report.html``, atomically."""
    from deepclust._utils import atomic_write
    from deepclust.cli._montage import CLUSTERS_PER_PAGE, MAX_PAGES, render_montage_pages
    from deepclust.cli._report import render_report
    from deepclust.io import save_model
    from deepclust.metrics import evaluate_clustering

    n_clusters = len(sizes)
    n_rows = min(n_clusters, CLUSTERS_PER_PAGE * MAX_PAGES) if loaded.is_images else 0
    bar = progress(total=4 + n_rows, desc="writing outputs") if progress else None
    step = bar.update if bar is not None else (lambda n=1: None)
    written: list[Path] = []
    try:
        written += save_model(estimator, out_dir / "model")
        step()
        atomic_write(out_dir / LABELS_NAME, labels_csv(loaded.names, labels, confidence).encode())
        written.append(out_dir / LABELS_NAME)
        step()
        metrics = None
        if loaded.y is not None:
            metrics = evaluate_clustering(loaded.y, labels, metrics=("acc", "nmi", "ari"))
            fit_labels = getattr(estimator, "labels_", None)
            record = {**metrics, "n_samples": len(labels), "method": method}
            if fit_labels is not None and len(fit_labels) == len(labels):
                record["fit_labels"] = evaluate_clustering(loaded.y, fit_labels)
            _atomic_write_text(out_dir / "metrics.json", json.dumps(record, indent=1))
            written.append(out_dir / "metrics.json")
        step()
        pages, n_hidden = [], 0
        if loaded.is_images:
            pages, n_hidden = render_montage_pages(
                labels, confidence, n_clusters, loaded.thumbnails, progress=bar,
            )
            for number, page in enumerate(pages, start=1):
                name = "clusters.png" if number == 1 else f"clusters-{number}.png"
                atomic_write(out_dir / name, page)
                written.append(out_dir / name)
        step()
        summary = {
            "source": source,
            "input": loaded.description,
            "method": f"{method} ({type(estimator).__name__})",
            "clusters": n_clusters,
            "training time": f"{fit_seconds:.1f} s",
            "device": str(getattr(estimator, "device_", "cpu")),
            "parameters": ", ".join(
                f"{k}={v}" for k, v in sorted(_json_safe(estimator.get_params()).items())
                if k != "verbose"
            ),
        }
        report = render_report(
            title=f"deepclust: {n_clusters} clusters of {len(labels)} samples",
            summary=summary, metrics=metrics, sizes=sizes,
            history=getattr(estimator, "history_", []), montage_pages=pages,
            n_hidden_clusters=n_hidden, files=[p.name for p in written],
        )
        _atomic_write_text(out_dir / "report.html", report)
        written.append(out_dir / "report.html")
        step()
    finally:
        if bar is not None:
            bar.close()
    return written


# ---------------------------------------------------------------------- commands
def _set_threads(args) -> None:
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(args.threads)


def _cluster(args: argparse.Namespace) -> int:
    method = args.method
    _set_threads(args)
    device = resolve_cli_device(args.device)
    params = estimator_params(args, method)
    say = functools.partial(_say, args)
    from deepclust.cli._inputs import load_input

    image_size = args.image_size
    if image_size is None and isinstance(params.get("image_size"), int):
        image_size = params["image_size"]  # from --config
    loaded = load_input(
        args.source, image_size=image_size, device=device,
        on_bad_image="skip" if args.skip_bad_images else "raise",
        progress=_progress_factory(args.quiet),
    )
    if loaded.kind == "folder" or loaded.image_size is not None:
        params["image_size"] = loaded.image_size
    estimator = _estimator_class(method)(**params)
    epochs = {k: v for k, v in params.items() if k.endswith("epochs")}
    say(
        f"Clustering {loaded.description} into {args.n_clusters} clusters with "
        f"{type(estimator).__name__} on {device} ("
        + ", ".join(f"{k}={v}" for k, v in epochs.items()) + ")."
    )
    out_dir = Path(args.out)
    source = os.path.abspath(args.source) if os.path.exists(args.source) else args.source
    result = run_pipeline(
        estimator, loaded, out_dir, method=method, source=source, resume=args.resume,
        quiet=args.quiet, say=say,
    )
    _summarise(args, result, out_dir)
    return 0


def _summarise(args, result: dict, out_dir: Path) -> None:
    sizes = result["sizes"]
    _say(
        args,
        f"{len(result['labels'])} samples in {int((sizes > 0).sum())} non-empty clusters "
        f"(largest {int(sizes.max())}, smallest {int(sizes.min())}).",
    )
    if result["metrics"]:
        m = result["metrics"]
        _say(args, f"Scores against the true labels: ACC {m['acc']:.3f}  NMI {m['nmi']:.3f}  "
                   f"ARI {m['ari']:.3f}")
    _say(args, f"Wrote {out_dir / LABELS_NAME}; open {out_dir / 'report.html'} to look at "
               "the clusters.")


def _predict(args: argparse.Namespace) -> int:
    from deepclust.cli._inputs import load_input
    from deepclust.io import load_model

    device = resolve_cli_device(args.device)
    _set_threads(args)
    model = load_model(args.model)
    model.set_params(device=str(device), verbose=False)
    if args.batch_size is not None:
        model.set_params(batch_size=args.batch_size)
    image_size, channels = None, None
    if model.input_kind_ == "images":
        channels, height, width = model.input_shape_
        image_size = (height, width)
    loaded = load_input(
        args.source, image_size=image_size if os.path.isdir(args.source) else None,
        n_channels=channels, device=device,
        on_bad_image="skip" if args.skip_bad_images else "raise",
        progress=_progress_factory(args.quiet),
    )
    labels, confidence = label_samples(model, loaded.data, _progress_factory(args.quiet))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(out, labels_csv(loaded.names, labels, confidence))
    if loaded.y is not None:
        from deepclust.metrics import evaluate_clustering

        m = evaluate_clustering(loaded.y, labels)
        _say(args, f"Scores against the true labels: ACC {m['acc']:.3f}  NMI {m['nmi']:.3f}  "
                   f"ARI {m['ari']:.3f}")
    _say(args, f"Labelled {len(labels)} samples with {type(model).__name__}; wrote {out}.")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sklearn.cluster import KMeans

    from deepclust import SCANClusterer
    from deepclust.cli._inputs import load_input
    from deepclust.metrics import evaluate_clustering

    device = resolve_cli_device(args.device)
    _set_threads(args)
    loaded = load_input("digits")
    say = functools.partial(_say, args)
    say(f"Clustering {len(loaded)} 8x8 digit images from scikit-learn into 10 clusters "
        f"(SCAN) on {device}...")
    # SimCLR pretext + SCAN step; self-labelling is left out until it helps on 8x8 images.
    estimator = SCANClusterer(
        n_clusters=10, pretext_epochs=args.epochs, max_epochs=30, selflabel_epochs=0,
        lr=1e-3, batch_size=128, device=args.device, random_state=args.seed,
        verbose=not args.quiet,
    )
    out_dir = Path(args.out)
    result = run_pipeline(
        estimator, loaded, out_dir, method="scan", source="digits", resume=False,
        quiet=args.quiet, say=say, fresh=True,
    )
    scores = result["metrics"]
    pixels = loaded.data.reshape(len(loaded), -1).astype(np.float32) / 255.0
    baseline = evaluate_clustering(
        loaded.y, KMeans(10, n_init=1, random_state=args.seed).fit_predict(pixels)
    )
    print(f"SCAN     ACC {scores['acc']:.3f}  NMI {scores['nmi']:.3f}  ARI {scores['ari']:.3f}"
          f"  ({result['fit_seconds']:.0f} s)")
    print(f"k-means  ACC {baseline['acc']:.3f}  NMI {baseline['nmi']:.3f}  "
          f"ARI {baseline['ari']:.3f}  (raw pixels)")
    print(f"Outputs in {out_dir}/: labels.csv, clusters.png, metrics.json, model.json; open "
          f"{out_dir / 'report.html'} in a browser.")
    return 0


# ---------------------------------------------------------------------- parser
def _int_at_least(minimum: int, requirement: str):
    """An argparse type: an integer >= ``minimum``, else an error stating ``requirement``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{requirement}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "expected a positive integer")
_non_negative_int = _int_at_least(0, "expected an integer >= 0")
_n_clusters = _int_at_least(2, "need at least 2 clusters")
_pixels = _int_at_least(4, "image size must be at least 4 px")


def _image_size(text: str) -> int | None:
    return None if text == "auto" else _pixels(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``deepclust`` command."""
    parser = argparse.ArgumentParser(
        prog="deepclust", description="Label unlabelled images by deep clustering."
    )
    # Options every subcommand takes.
    runtime = argparse.ArgumentParser(add_help=False)
    runtime.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    runtime.add_argument("--quiet", action="store_true", help="no progress output")
    runtime.add_argument(
        "--threads", type=_positive_int, metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is often faster for small "
        "images on a busy machine)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", parents=[runtime],
        help="cluster scikit-learn's digits, print scores, write a report",
        description="Cluster scikit-learn's 1,797 8x8 digits with SCAN (about 2 minutes on "
        "2 CPU cores), print ACC/NMI/ARI next to k-means, and write the outputs of "
        "`deepclust cluster` into --out.",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--epochs", type=_non_negative_int, default=60, help="pretext epochs")
    demo.add_argument("--out", default="deepclust-demo", help="output folder")
    demo.set_defaults(run=_demo)

    cluster = commands.add_parser(
        "cluster", parents=[runtime],
        help="cluster a folder of images, an array file or a data set",
        description=__doc__.split("\n\n", 1)[1].split("Precedence")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cluster.add_argument(
        "source", metavar="SOURCE",
        help="folder of images (searched recursively), .npy/.npz file (images or a 2-D "
        "feature matrix; .npz may hold true labels as 'y'), or a data set: digits, "
        "fashion-mnist, fashion-mnist-train, fashion-mnist-test",
    )
    from deepclust.methods import method_names

    cluster.add_argument("--method", required=True, choices=method_names())
    cluster.add_argument("--n-clusters", required=True, type=_n_clusters, metavar="K")
    cluster.add_argument("--out", required=True, metavar="DIR", help="output folder")
    cluster.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    cluster.add_argument(
        "--epochs", type=_non_negative_int, metavar="E", help=_epochs_help(),
    )
    cluster.add_argument(
        "--image-size", type=_image_size, metavar="PX",
        help="side length images are resized to; default for folders: the images' own size, "
        "at most 32 px on CPU and 64 px on CUDA; arrays keep their size",
    )
    cluster.add_argument("--batch-size", type=_positive_int, metavar="B")
    cluster.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted run from DIR's checkpoint (same options)",
    )
    cluster.add_argument("--config", metavar="FILE", help="JSON object of estimator parameters")
    cluster.add_argument(
        "--skip-bad-images", action="store_true",
        help="leave out unreadable image files (with a warning) instead of stopping",
    )
    cluster.set_defaults(run=_cluster)

    predict = commands.add_parser(
        "predict", parents=[runtime], help="label images with a saved model",
        description="Label SOURCE with a model written by `deepclust cluster` (its --out "
        "folder, or model.json). Writes a CSV like labels.csv.",
    )
    predict.add_argument("model", metavar="MODEL", help="model folder, prefix or model.json")
    predict.add_argument("source", metavar="SOURCE", help="as for `deepclust cluster`")
    predict.add_argument("--out", required=True, metavar="FILE.csv")
    predict.add_argument("--batch-size", type=_positive_int, metavar="B")
    predict.add_argument("--skip-bad-images", action="store_true")
    predict.set_defaults(run=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deepclust`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = ""
        if args.command == "cluster" and out and (Path(out) / CHECKPOINT_NAME).is_file():
            hint = " Run the same command with --resume to continue from the last checkpoint."
        print(f"deepclust: interrupted.{hint}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"deepclust: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
