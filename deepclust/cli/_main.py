"""The ``deepclust`` command: ``cluster`` a folder of images, ``predict`` with a saved model,
``demo`` (clusters scikit-learn's digits), and ``review`` and ``export`` a run's clusters
as labelled images (:mod:`deepclust.cli._review`).

``deepclust cluster SOURCE --method M --n-clusters K --out DIR`` writes into ``DIR``:

- ``labels.csv``: ``source,cluster,confidence`` per input, in input order (``source`` is
  the file's path relative to SOURCE, or the row index for arrays; ``cluster`` is the
  method's own clustering of the images it was fitted on, its ``labels_`` (e.g. SeLa's
  equal-size self-labels); ``confidence`` the network's ``predict_proba`` for that
  cluster). ``metrics.json`` and the report give the fraction of samples on which
  ``predict``, which ``deepclust predict`` uses for new images, agrees with ``labels_``;
- ``clusters.png`` (+ ``clusters-2.png``... beyond 50 clusters): one row per cluster with
  its most confident images;
- ``model.safetensors`` + ``model.json``: the fitted model (:mod:`deepclust.io`);
- ``metrics.json`` when true labels are known (data sets, ``.npz`` with ``y``);
- ``report.html``: montage, cluster sizes and training curves in one offline page;
- ``run.json``: the settings of the run, written when training starts; ``checkpoint.pt``
  while training (removed at the end), which ``--resume`` continues from.

Every output is written to a temporary name and renamed, so a crash never leaves a
half-written file. Arguments and ``DIR`` are checked before SOURCE is read, and a refused
run creates nothing; a run holds a lock on ``DIR`` (:mod:`deepclust.cli._outdir`) and never
overwrites files of deepclust's names that no deepclust run wrote.

The estimator is built as a user of the library would build it: ``n_clusters``,
``budget``, ``device`` and ``random_state``, every other setting resolved at ``fit`` by
the method's recipe (:mod:`deepclust.recipes`) from the data, so the command, the
estimators and ``benchmarks/quality.py`` train alike; ``run.json``, ``metrics.json`` and
the report record the resolved settings. ``--epochs E`` overrides the recipe's training
length as the method's ``method_spec.epoch_params`` says (listed by ``deepclust cluster
--help``).

Precedence: the recipe, then ``--config FILE`` (a JSON object of estimator parameters),
then the explicit options (``--epochs``, ``--batch-size``, ``--image-size``,
``--n-clusters``, ``--budget``, ``--seed``, ``--device``).

Status and per-epoch lines go to stderr (silenced by ``--quiet``), progress bars too when
it is a terminal; results (summary, scores) go to stdout. User errors exit with status 2
and one line ``deepclust: error: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from deepclust.augment import (
    AUTO_INVARIANCES,
    INVARIANCES,
    check_invariances,
    is_auto_invariances,
)
from deepclust.cli._errors import CommandError, one_line, os_error_message
from deepclust.cli._launch import launch, rank_context, under_launcher
from deepclust.cli._outdir import (
    CHECKPOINT_NAME,
    RUN_NAME,
    OutputFolderLock,
    check_output_file,
    check_output_folder,
    check_user_files,
    remove_stale_temporaries,
)
from deepclust.distributed import is_main_process
from deepclust.recipes import BUDGETS
from deepclust.training import Callback, TrainingDivergedError
from deepclust.training._data_parallel import same_on_every_rank

__all__ = ["main", "build_parser"]

LABELS_NAME = "labels.csv"
_LABEL_CHUNK = 4096

#: ``deepclust cluster``'s method when ``--method`` is not given: SCAN, the best of the
#: four on every data set of the benchmarks page.
DEFAULT_METHOD = "scan"
_DEVICE_KINDS = ("auto", "cpu", "cuda")
#: ``--budget`` choices, shortest training first.
_BUDGET_NAMES = sorted(BUDGETS, key=BUDGETS.get)


# ---------------------------------------------------------------------- helpers
def _estimator_class(method: str):
    from deepclust.methods import get_method

    return get_method(method)


def epoch_params(method: str, epochs: int) -> dict:
    """Estimator parameters set by ``--epochs`` for ``method`` (its ``method_spec``).

    Parameters
    ----------
    method : str
        A registered method's name (``--method``).
    epochs : int
        The main training length ``E`` given to ``--epochs``.
    """
    return dict(_estimator_class(method).method_spec.epoch_params(epochs))


def _epochs_help() -> str:
    from deepclust.methods import registered_methods

    parts = []
    for name, cls in registered_methods().items():
        set_by = ", ".join(f"{k}={v}" for k, v in cls.method_spec.epoch_params(10).items())
        parts.append(f"{name}: {set_by}")
    return (
        "training length E, over the recipe's (default: from --budget and the data); "
        "E=10 sets " + "; ".join(parts)
    )


def _progress_factory(quiet: bool):
    """A tqdm factory for progress bars on stderr, or None when quiet or not a terminal."""
    from deepclust._utils import stderr_is_terminal

    if quiet or not stderr_is_terminal():
        return None
    from tqdm.auto import tqdm

    def factory(**kwargs):
        return tqdm(leave=False, dynamic_ncols=True, **kwargs)

    return factory


def _status(args, message: str) -> None:
    """A status line on stderr, unless ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)


def _result(message: str) -> None:
    """A result line on stdout (printed with ``--quiet`` too)."""
    print(message, flush=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the command: one plain line, no Python source."""
    print(f"deepclust: warning: {one_line(str(message))}", file=sys.stderr, flush=True)


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
    """The torch device for ``--device``, or a :class:`CommandError` saying why not.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; other kinds (``mps``...) are refused.

    Returns
    -------
    torch.device
    """
    from deepclust._utils import resolve_device

    if str(device).split(":", 1)[0].strip().lower() not in _DEVICE_KINDS:
        raise CommandError(f"--device {device} is not supported; use cpu, cuda or auto.")
    try:
        return resolve_device(device)
    except ValueError as exc:
        raise CommandError(str(exc).replace("device=", "--device ")) from exc


def estimator_params(args, method: str) -> dict:
    """The parameters given to the estimator: ``--config`` < explicit options; the rest
    is left to the method's recipe.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``cluster`` command line (``--config``, ``--epochs``, ``--batch-size``,
        ``--budget``, ``--n-clusters``, ``--merge-to``, ``--backbone``, ``--weights``,
        ``--freeze-backbone``, ``--seed``, ``--device``, ``--quiet``).
    method : str
        A registered method's name (``--method``): its estimator class.

    Returns
    -------
    dict
        A list ``image_size`` of ``--config`` is made a tuple.
    """
    cls = _estimator_class(method)
    valid = set(cls().get_params(deep=False))
    params = {}
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
    if getattr(args, "budget", None) is not None and "budget" in valid:
        params["budget"] = args.budget
    if getattr(args, "invariant_to", None) is not None:
        value = args.invariant_to
        params["invariant_to"] = list(value) if isinstance(value, tuple) else value
    if getattr(args, "merge_to", None) is not None:
        params["merge_to"] = args.merge_to
    for option in ("backbone", "weights"):
        if getattr(args, option, None) is not None:
            params[option] = getattr(args, option)
    if getattr(args, "freeze_backbone", False):
        params["freeze_backbone"] = True
    params.update(
        n_clusters=args.n_clusters,
        random_state=args.seed,
        device=args.device,
        verbose=not args.quiet,
    )
    return params


def _requested_image_size(args, params: dict):
    """The image size asked for: ``--image-size``, else ``--config``'s side or (H, W)."""
    if args.image_size is not None:
        return args.image_size
    size = params.get("image_size")
    sides = size if isinstance(size, tuple) else (size,)
    if size is not None and not (
        len(sides) in (1, 2)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 4 for v in sides)
    ):
        raise CommandError(
            f"--config: image_size must be a side length of at least 4 px or a list "
            f"[height, width] of them; got {list(sides) if len(sides) > 1 else size!r}."
        )
    return size


def _check_estimator(cls, params: dict) -> None:
    """Refuse invalid estimator parameters (from ``--config``) before any work, and
    weights that are missing or unreadable."""
    try:
        cls(**params)._validate_params()
    except (ValueError, TypeError) as exc:
        raise CommandError(f"--config: {exc}") from exc
    if params.get("weights") is not None:
        from deepclust.networks import read_weights

        estimator = cls(**params)
        try:
            estimator._check_weights_params()
            read_weights(params["weights"], estimator._torchvision_name())
        except (ValueError, TypeError) as exc:
            raise CommandError(f"--weights: {exc}") from exc


def _weights_image_size(cls, params: dict) -> int | None:
    """The side of the images the ``--weights`` of a torchvision backbone were trained on
    (None without such weights)."""
    from deepclust.networks import pretrained_image_size

    return pretrained_image_size(cls(**params)._backbone_name(), params.get("weights"))


def _load_input(args, **kwargs):
    """``load_input`` for the command: its hints name the command's options."""
    from deepclust.cli import _inputs

    try:
        return _inputs.load_input(
            args.source,
            on_bad_image="skip" if args.skip_bad_images else "raise",
            progress=_progress_factory(args.quiet),
            cache_dir=getattr(args, "cache_dir", None),
            **kwargs,
        )
    except ValueError as exc:
        raise CommandError(
            str(exc).replace("pass on_bad_image='skip'", "pass --skip-bad-images")
        ) from exc


def label_samples(
    estimator, data, progress=None, fit_labels=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, their confidence and ``predict``, in chunks with progress.

    Parameters
    ----------
    estimator : fitted deepclust estimator
        Gives ``predict`` and ``predict_proba``.
    data : images or features, as for ``predict``
        The samples to label, sliced in chunks of 4096.
    progress : callable, optional
        A tqdm-like factory.
    fit_labels : ndarray of shape (n_samples,), optional
        The estimator's ``labels_`` when ``data`` is what it was fitted on: these are the
        labels returned; else ``predict``'s.

    Returns
    -------
    labels : ndarray of int64
    confidence : ndarray
        ``predict_proba`` at each label.
    predicted : ndarray of int64
        ``predict``.
    """
    n = len(data)
    bar = progress(total=n, desc="labelling", unit="img") if progress else None
    labels, confidence, predictions = [], [], []
    try:
        for start in range(0, n, _LABEL_CHUNK):
            part = data[start : start + _LABEL_CHUNK]
            predicted = np.asarray(estimator.predict(part), dtype=np.int64)
            proba = np.asarray(estimator.predict_proba(part))
            chosen = (
                predicted
                if fit_labels is None
                else np.asarray(fit_labels[start : start + len(predicted)], dtype=np.int64)
            )
            labels.append(chosen)
            predictions.append(predicted)
            confidence.append(proba[np.arange(len(chosen)), chosen])
            if bar is not None:
                bar.update(len(predicted))
    finally:
        if bar is not None:
            bar.close()
    return np.concatenate(labels), np.concatenate(confidence), np.concatenate(predictions)


def labels_csv(names, labels, confidence) -> str:
    """The text of ``labels.csv``.

    Parameters
    ----------
    names : sequence of str
        The ``source`` column: each sample's file path, or its index for arrays.
    labels : ndarray of int of shape (n_samples,)
        The ``cluster`` column.
    confidence : ndarray of float of shape (n_samples,)
        The ``confidence`` column, the probability of each label, written with 6 decimals.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["source", "cluster", "confidence"])
    for name, label, conf in zip(names, labels, confidence):
        writer.writerow([name, int(label), f"{float(conf):.6f}"])
    return buffer.getvalue()


def _json_safe(params: dict) -> dict:
    from deepclust.io import _json_value

    return {k: _json_value(v) for k, v in params.items()}


def _run_info(estimator, *, method: str, source: str, n_samples: int | None) -> dict:
    """The content of ``run.json``."""
    return {
        "method": method,
        "estimator": type(estimator).__name__,
        "source": source,
        "n_samples": n_samples,
        "params": _json_safe(estimator.get_params(deep=False)),
    }


def _check_resume(run_path: Path, run_info: dict, skip: tuple[str, ...] = ()) -> None:
    """Refuse to resume when the settings differ from ``run_path``'s (but ``skip``)."""
    try:
        previous = json.loads(run_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError(f"Cannot read {run_path} to resume: {exc}") from exc
    ignored = {"verbose", "device", *skip}
    differences = []
    for key in ("method", "source", "n_samples"):
        if key not in ignored and previous.get(key) != run_info[key]:
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


@contextlib.contextmanager
def _output_folder(out_dir: Path):
    """Hold the lock on ``out_dir`` (checked already) and clear what killed runs left."""
    with OutputFolderLock(out_dir):
        check_user_files(out_dir)
        remove_stale_temporaries(out_dir)
        yield


def prepare_resume(
    out_dir: Path, estimator, *, method: str, source: str, resume: bool, say, fresh=False
) -> dict | None:
    """The checkpoint state to resume from, checked before SOURCE is read.

    Parameters
    ----------
    out_dir : Path
        The ``--out`` folder, which may hold the checkpoint and ``run.json``.
    estimator : unfitted estimator of the run
        Its parameters are compared with ``run.json`` (but ``image_size``, which may
        depend on the images).
    method, source : str
        The run's method name and SOURCE (an absolute path when it exists), compared with
        those ``run.json`` records.
    resume : bool
        ``--resume``.
    say : callable
        Prints a status line.
    fresh : bool
        Remove a checkpoint instead (the demo always starts anew).

    Returns
    -------
    dict or None
    """
    from deepclust.training import load_state

    checkpoint = out_dir / CHECKPOINT_NAME
    if fresh:
        checkpoint.unlink(missing_ok=True)
        return None
    if not resume:
        if checkpoint.is_file():
            raise CommandError(
                f"{out_dir} holds the checkpoint of an unfinished run ({checkpoint}). Add "
                "--resume to continue it, delete the file to start over, or choose another "
                "--out folder."
            )
        return None
    if not checkpoint.is_file():
        say(f"No checkpoint in {out_dir}: starting from the beginning.")
        return None
    run_path = out_dir / RUN_NAME
    if run_path.is_file():
        info = _run_info(estimator, method=method, source=source, n_samples=None)
        _check_resume(run_path, info, skip=("n_samples", "image_size"))
    state = load_state(checkpoint)
    say(f"Resuming from {checkpoint} (after {state['epochs_done_total']} epoch(s)).")
    return state


class _RunRecord(Callback):
    """Writes ``run.json`` once: when training starts, or when called after the fit.

    Parameters
    ----------
    path : Path
    info : dict
    """

    def __init__(self, path: Path, info: dict):
        self.path, self.info, self.written = path, info, False

    def __call__(self) -> None:
        """Write ``run.json`` unless it is written already."""
        if not self.written:
            _atomic_write_text(self.path, json.dumps(self.info, indent=1))
            self.written = True

    def on_train_begin(self, trainer) -> None:
        """Write ``run.json``: the run now leaves a checkpoint to resume from.

        Parameters
        ----------
        trainer : Trainer
        """
        self()


# ---------------------------------------------------------------------- pipeline
def n_output_clusters(estimator) -> int:
    """The number of clusters of the outputs: ``merge_to`` after a merge, else
    ``n_clusters``.

    Parameters
    ----------
    estimator : fitted deepclust estimator

    Returns
    -------
    int
    """
    if getattr(estimator, "merge_map_", None) is not None:
        return int(estimator.merge_to)
    return int(estimator.n_clusters)


def merge_record(estimator) -> dict | None:
    """A fit with ``merge_to``: the trained clusters of each merged cluster, for the report.

    Parameters
    ----------
    estimator : fitted deepclust estimator

    Returns
    -------
    dict or None
        ``n_trained`` and ``groups`` (for each merged id, the trained ids in it); None
        without a merge.
    """
    merge_map = getattr(estimator, "merge_map_", None)
    if merge_map is None:
        return None
    merge_map = np.asarray(merge_map)
    groups = [np.flatnonzero(merge_map == m).tolist() for m in range(n_output_clusters(estimator))]
    return {"n_trained": int(len(merge_map)), "groups": groups}


def run_pipeline(
    estimator,
    loaded,
    out_dir: Path,
    *,
    method: str,
    source: str,
    quiet: bool,
    say,
    resume_state: dict | None = None,
    callbacks: tuple = (),
    record_extra: dict | None = None,
) -> dict:
    """Fit with checkpoints, then write every output into ``out_dir`` (locked, existing).

    ``run.json`` is written when training starts, so a fit refused by the estimator's own
    checks leaves nothing behind, and again after the fit with the resolved ``recipe``.

    Parameters
    ----------
    estimator : unfitted deepclust estimator
        Built from the run's parameters; fitted here.
    loaded : LoadedInput
        The input read from SOURCE.
    out_dir : Path
        The ``--out`` folder, locked and existing.
    method : str
        The registered method's name, recorded in ``run.json`` and the outputs.
    source : str
        SOURCE as given (an absolute path when it exists), recorded likewise.
    quiet : bool
        ``--quiet``: no progress bars.
    say : callable
        Prints a status line.
    resume_state : dict, optional
        Checkpoint state from :func:`prepare_resume` to continue the fit from; ``None``
        starts anew.
    callbacks : tuple of Callback, optional
        More trainer callbacks (``--tensorboard``'s logger).
    record_extra : dict, optional
        More entries of ``run.json`` (the ``--n-clusters`` search's ``n_clusters_search``).

    Returns
    -------
    dict
        ``labels`` (``labels_``), ``confidence``, ``agreement`` (the fraction of samples on
        which ``predict`` gives the same cluster), ``metrics`` (or None), ``fit_seconds``,
        ``paths``, ``sizes``.
    """
    from deepclust.training import Checkpoint

    progress = _progress_factory(quiet)
    checkpoint = out_dir / CHECKPOINT_NAME
    run_path = out_dir / RUN_NAME
    run_info = _run_info(estimator, method=method, source=source, n_samples=len(loaded))
    run_info.update(record_extra or {})
    if resume_state is not None and run_path.is_file():
        _check_resume(run_path, run_info)
    record = _RunRecord(run_path, run_info)
    started = time.perf_counter()
    estimator.fit(
        loaded.data,
        loaded.y,
        callbacks=[record, Checkpoint(checkpoint), *callbacks],
        resume_from=resume_state,
    )
    record()  # a method without a training loop never calls on_train_begin
    fit_seconds = time.perf_counter() - started
    run_info["recipe"] = _json_safe(estimator.recipe_)  # the settings the fit resolved
    run_info["nuisance"] = estimator.nuisance_report_.to_dict()
    _atomic_write_text(run_path, json.dumps(run_info, indent=1))
    say(f"Trained in {fit_seconds:.0f} s.")
    fit_labels = getattr(estimator, "labels_", None)
    if fit_labels is not None and len(fit_labels) != len(loaded):
        fit_labels = None
    labels, confidence, predicted = label_samples(estimator, loaded.data, progress, fit_labels)
    sizes = np.bincount(labels, minlength=n_output_clusters(estimator))
    paths = write_outputs(
        estimator,
        loaded,
        out_dir,
        labels,
        confidence,
        sizes,
        predicted=predicted,
        fit_seconds=fit_seconds,
        method=method,
        source=source,
        progress=progress,
        search=run_info.get("n_clusters_search"),
    )
    checkpoint.unlink(missing_ok=True)
    metrics = None
    if loaded.y is not None:
        metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    return {
        "labels": labels,
        "confidence": confidence,
        "metrics": metrics,
        "agreement": float(np.mean(labels == predicted)),
        "fit_seconds": fit_seconds,
        "paths": paths,
        "sizes": sizes,
    }


def _write_metrics(out_dir: Path, loaded, labels, predicted, method: str, estimator) -> dict:
    """``metrics.json``: scores of ``labels`` against ``loaded.y`` and, when it differs, of
    ``predict``, with the recipe the fit resolved and its nuisance report; with known class
    names (``loaded.class_names``), also those and the matched confusion matrix."""
    from deepclust.cli._known_classes import matched_confusion
    from deepclust.metrics import evaluate_clustering

    y, class_names = loaded.y, loaded.class_names

    names = ("acc", "nmi", "ari")
    metrics = evaluate_clustering(y, labels, metrics=names)
    agreement = float(np.mean(labels == predicted))
    record = {**metrics, "n_samples": len(labels), "method": method, "predict_agreement": agreement}
    if agreement < 1:
        record["predict"] = evaluate_clustering(y, predicted, metrics=names)
    if class_names is not None:
        record["class_names"] = list(class_names)
        record["confusion_matrix"] = matched_confusion(
            y, labels, n_output_clusters(estimator), list(class_names)
        )
    record["recipe"] = _json_safe(estimator.recipe_)
    record["nuisance"] = estimator.nuisance_report_.to_dict()
    _atomic_write_text(out_dir / "metrics.json", json.dumps(record, indent=1))
    return metrics


def _invariances_applied(invariances: dict) -> str:
    """The report's line on the declared invariances and what they changed."""
    if not invariances["declared"]:
        return "nothing declared (--invariant-to)"
    parts = [f"{name} ({what})" for name, what in invariances["augmentation"].items()]
    if invariances["input_filter"]:
        parts.append(f"input filter {invariances['input_filter']}")
    return "; ".join(parts)


def _report_summary(estimator, loaded, *, source, method, fit_seconds, agreement) -> dict:
    summary = {
        "source": source,
        "input": loaded.description,
        "method": f"{method} ({type(estimator).__name__})",
        "clusters": n_output_clusters(estimator),
        "training time": f"{fit_seconds:.1f} s",
        "device": str(getattr(estimator, "device_", "cpu")),
        "parameters": ", ".join(
            f"{k}={v}"
            for k, v in sorted(_json_safe(estimator.get_params()).items())
            if k != "verbose"
        ),
        "recipe": f"budget={estimator.recipe_['budget']}: "
        + ", ".join(f"{k}={v}" for k, v in _json_safe(estimator.recipe_["params"]).items()),
        "invariant to": _invariances_applied(estimator.recipe_["invariances"]),
    }
    frozen = estimator.recipe_.get("frozen_features")
    if frozen is not None:
        summary["heads on frozen features"] = (
            f"{frozen['data']['n_features']} features per image; "
            + ", ".join(
                f"{k}={v}" for k, v in _json_safe(frozen["params"]).items() if k != "backbone"
            )
        )
    if agreement < 1:
        summary["labels"] = (
            "labels.csv and the montage show the method's own clustering (labels_); the "
            f"network's predict, used for new images, agrees on {100 * agreement:.1f}% of "
            "the samples"
        )
    return summary


def _nuisance_montage(estimator, labels, confidence, n_clusters, loaded) -> list[bytes]:
    """One montage page of the clusters sorted by the nuisance report's top statistic."""
    from deepclust.cli._montage import render_montage_pages

    order = estimator.nuisance_report_.cluster_order
    if not loaded.is_images or not order:
        return []
    pages, _ = render_montage_pages(
        labels, confidence, n_clusters, loaded.thumbnails, order=order, max_pages=1
    )
    return pages


def _known_classes_view(loaded, labels, n_clusters: int) -> dict:
    """With known classes (``loaded.class_names``): the matched confusion matrix for the
    report, and the montage's arguments (class frames, clusters by purity); else ``None``
    and no arguments."""
    from deepclust.cli._known_classes import matched_confusion, purity_order

    if loaded.class_names is None or loaded.y is None:
        return {"confusion": None, "montage": {}}
    y = np.asarray(loaded.y, dtype=np.int64)
    return {
        "confusion": matched_confusion(y, labels, n_clusters, loaded.class_names),
        "montage": {
            "classes": y,
            "class_names": loaded.class_names,
            "order": purity_order(y, labels, n_clusters),
        },
    }


def write_outputs(
    estimator,
    loaded,
    out_dir: Path,
    labels,
    confidence,
    sizes,
    *,
    fit_seconds: float,
    method: str,
    source: str,
    progress=None,
    predicted=None,
    search: dict | None = None,
) -> list[Path]:
    """Model, ``labels.csv``, ``metrics.json``, montage and ``report.html``, atomically.

    ``predicted`` (``predict`` of the same samples, default ``labels``) gives the
    agreement recorded in ``metrics.json`` and the report.

    Parameters
    ----------
    estimator : fitted deepclust estimator
        Saved as ``model`` and described in the report.
    loaded : LoadedInput
        The input: sample names, true labels (``y``, for ``metrics.json``) and thumbnails.
    out_dir : Path
        The ``--out`` folder.
    labels : ndarray of int of shape (n_samples,)
        The labels written to ``labels.csv`` and shown in the montage.
    confidence : ndarray of float of shape (n_samples,)
        The probability of each label.
    sizes : ndarray of int of shape (n_clusters,)
        Samples per cluster, for the report's bar chart.
    fit_seconds : float
        Training time, in seconds, for the report.
    method : str
        The registered method's name.
    source : str
        SOURCE, for the report.
    progress : callable, optional
        A tqdm-like factory for the progress bar of writing.
    predicted : ndarray of int of shape (n_samples,), optional
        ``predict`` of the same samples; ``None`` means ``labels``.
    search : dict, optional
        The ``--n-clusters`` search's record (``run.json``'s ``n_clusters_search``),
        shown in the report as a table and a curve.

    Returns
    -------
    list of Path
        The files written.
    """
    from deepclust._utils import atomic_write
    from deepclust.cli._montage import CLUSTERS_PER_PAGE, MAX_PAGES, render_montage_pages
    from deepclust.cli._report import render_report
    from deepclust.io import save_model

    predicted = labels if predicted is None else predicted
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
            metrics = _write_metrics(out_dir, loaded, labels, predicted, method, estimator)
            written.append(out_dir / "metrics.json")
        step()
        pages, n_hidden = [], 0
        known = _known_classes_view(loaded, labels, n_clusters)
        if loaded.is_images:
            pages, n_hidden = render_montage_pages(
                labels, confidence, n_clusters, loaded.thumbnails, progress=bar, **known["montage"]
            )
            for number, page in enumerate(pages, start=1):
                name = "clusters.png" if number == 1 else f"clusters-{number}.png"
                atomic_write(out_dir / name, page)
                written.append(out_dir / name)
        nuisance_pages = _nuisance_montage(estimator, labels, confidence, n_clusters, loaded)
        step()
        summary = _report_summary(
            estimator,
            loaded,
            source=source,
            method=method,
            fit_seconds=fit_seconds,
            agreement=float(np.mean(labels == predicted)),
        )
        report = render_report(
            title=f"deepclust: {n_clusters} clusters of {len(labels)} samples",
            summary=summary,
            metrics=metrics,
            sizes=sizes,
            history=getattr(estimator, "history_", []),
            montage_pages=pages,
            n_hidden_clusters=n_hidden,
            files=[p.name for p in written],
            nuisance=estimator.nuisance_report_.to_dict(),
            nuisance_pages=nuisance_pages,
            confusion=known["confusion"],
            search=search,
            merge=merge_record(estimator),
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


def _tensorboard_logger(log_dir: str | None) -> tuple:
    """``--tensorboard``'s logger (none without the option), checked before any work."""
    if log_dir is None:
        return ()
    from deepclust.training import TensorBoardLogger

    if os.path.exists(log_dir) and not os.path.isdir(log_dir):
        raise CommandError(f"--tensorboard {log_dir} is a file; give a folder.")
    try:
        return (TensorBoardLogger(log_dir),)
    except ImportError as exc:
        raise CommandError(str(exc)) from exc


def _search_candidates(spec, n_samples: int) -> list[int]:
    """The candidates of a ``--n-clusters`` search form, checked against ``n_samples``."""
    from deepclust.model_selection import (
        check_n_clusters_candidates,
        default_n_clusters_candidates,
        geometric_n_clusters_grid,
    )

    try:
        if spec == "auto":
            candidates = default_n_clusters_candidates(n_samples)
        elif isinstance(spec, tuple):
            candidates = geometric_n_clusters_grid(spec[1], spec[2])
        else:
            candidates = list(spec)
        return check_n_clusters_candidates(candidates, n_samples)
    except ValueError as exc:
        raise CommandError(f"--n-clusters: {exc}") from None


def _placeholder_n_clusters(args) -> dict | None:
    """For a ``--n-clusters`` search form: refuse ``--resume``, put a count in its place
    (for the checks made before reading SOURCE) and return ``{'spec': form}``."""
    spec = args.n_clusters
    if isinstance(spec, int):
        return None
    if args.resume:
        raise CommandError(
            "--resume needs a fixed --n-clusters K (the n_clusters in run.json's params): "
            "the search for the number of clusters is not resumed."
        )
    args.n_clusters = 2 if spec == "auto" else spec[1] if isinstance(spec, tuple) else spec[0]
    return {"spec": spec}


def _check_merge_to(params: dict, search: dict | None) -> None:
    """Refuse, before any work, a ``merge_to`` (``--merge-to`` or ``--config``) that is
    combined with a ``--n-clusters`` search or is not below ``--n-clusters``."""
    merge_to = params.get("merge_to")
    if merge_to is None:
        return
    if search is not None:
        raise CommandError(
            f"--merge-to {merge_to} needs a fixed --n-clusters K (the number of clusters "
            "trained, then merged into --merge-to); it cannot be combined with the search "
            "--n-clusters auto, LOW:HIGH or K1,K2,..."
        )
    if merge_to >= params["n_clusters"]:
        raise CommandError(
            f"--merge-to {merge_to} must be below --n-clusters {params['n_clusters']}: "
            "the run trains --n-clusters clusters and merges them into --merge-to. Raise "
            "--n-clusters (e.g. to twice --merge-to) or lower --merge-to."
        )


def _search_n_clusters(search: dict, cls, params: dict, loaded, say) -> dict:
    """Run :func:`~deepclust.model_selection.choose_n_clusters` (before the final fit) and
    return its record for ``run.json``; sets ``params['n_clusters']`` to the choice."""
    from deepclust.model_selection import choose_n_clusters

    candidates = _search_candidates(search["spec"], len(loaded))
    rule = "a vote of silhouette, augmentation agreement and linear predictability"
    say(f"Choosing the number of clusters among {candidates} ({rule}; one fit each).")
    result = choose_n_clusters(
        cls(**{**params, "verbose": False}),
        loaded.data,
        candidates,
        scoring="vote",
        seeds=(params["random_state"],),
    )
    if result.votes:
        points = ", ".join(f"{k}: {v:g}" for k, v in result.votes.items())
        say(f"Points by number of clusters: {points}; chose {result.best_n_clusters_}.")
    else:
        scores = ", ".join(f"{k}: {v:.3f}" for k, v in result.mean_scores().items())
        say(f"Scores by number of clusters: {scores}; chose {result.best_n_clusters_}.")
    params["n_clusters"] = result.best_n_clusters_
    return {"n_clusters_search": result.to_dict()}


def _check_class_folders(source: str) -> None:
    """``--labels-from-folders``: refuse, before any work, a SOURCE with loose images."""
    from deepclust.cli._known_classes import check_no_loose_images

    try:
        check_no_loose_images(source)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def _set_folder_classes(loaded, say) -> None:
    """Set ``loaded.y`` and ``loaded.class_names`` from the images' top-level folders."""
    from deepclust.cli._known_classes import classes_from_names

    loaded.y, loaded.class_names = classes_from_names(loaded.names)
    say(
        f"Known classes (for scoring only): {len(loaded.class_names)} sub-folders, "
        + ", ".join(loaded.class_names[:10])
        + (" ..." if len(loaded.class_names) > 10 else "")
        + "."
    )


def _cluster(args: argparse.Namespace) -> int:
    method = args.method
    search = _placeholder_n_clusters(args)
    _set_threads(args)
    device = resolve_cli_device(args.device)
    params = estimator_params(args, method)
    _check_merge_to(params, search)
    image_size = _requested_image_size(args, params)
    cls = _estimator_class(method)
    _check_estimator(cls, params)
    if image_size is None:
        image_size = _weights_image_size(cls, params)
    if args.labels_from_folders:
        _check_class_folders(args.source)
    check_output_folder(Path(args.out), source=args.source)
    loggers = _tensorboard_logger(args.tensorboard)  # rank 0's only, under --nproc
    if args.nproc > 1 and not under_launcher():
        return launch(args.argv, args.nproc, args.threads)
    with rank_context(args, device):
        _cluster_run(args, search, device, params, cls, image_size, loggers)
    return 0


def _cluster_run(args, search, device, params: dict, cls, image_size, loggers) -> None:
    """The checked ``cluster`` command's work: read, fit, write (in one process)."""
    method = args.method
    out_dir = Path(args.out)
    say = functools.partial(_status, args)
    source = os.path.abspath(args.source) if os.path.exists(args.source) else args.source
    with _output_folder(out_dir):
        resume_state = None
        if is_main_process():  # under --nproc, the other ranks' folders are empty
            resume_state = prepare_resume(
                out_dir,
                cls(**params),
                method=method,
                source=source,
                resume=args.resume,
                say=say,
            )
        # Every rank resumes from rank 0's checkpoint: weights, optimiser, position,
        # random generators (the same on every rank at an epoch's end) and fit state.
        resume_state = same_on_every_rank(resume_state)
        if not os.path.isdir(args.source) and not isinstance(image_size, int):
            image_size = None  # arrays: the estimator resizes to a (height, width) itself
        loaded = _load_input(args, image_size=image_size, device=device)
        if loaded.summary:
            say(f"Read {loaded.summary}.")
        if args.labels_from_folders:
            _set_folder_classes(loaded, say)
        if loaded.kind == "folder" or loaded.image_size is not None:
            params["image_size"] = loaded.image_size
        record = _search_n_clusters(search, cls, params, loaded, say) if search else {}
        estimator = cls(**params)
        epochs = {k: v for k, v in params.items() if k.endswith("epochs")}
        length = ", ".join(f"{k}={v}" for k, v in epochs.items()) or f"budget={args.budget}"
        say(
            f"Clustering {loaded.description} into {params['n_clusters']} clusters with "
            f"{type(estimator).__name__} on {device} ({length})."
        )
        result = run_pipeline(
            estimator,
            loaded,
            out_dir,
            method=method,
            source=source,
            quiet=args.quiet,
            say=say,
            resume_state=resume_state,
            callbacks=loggers,
            record_extra=record,
        )
    if is_main_process():  # under --nproc, rank 0 reports
        _summarise(result, out_dir, type(estimator).__name__)


def _summarise(result: dict, out_dir: Path, estimator_name: str) -> None:
    sizes = result["sizes"]
    _result(
        f"{len(result['labels'])} samples in {int((sizes > 0).sum())} non-empty clusters "
        f"(largest {int(sizes.max())}, smallest {int(sizes.min())})."
    )
    if result["agreement"] < 1:
        _result(
            f"labels.csv holds {estimator_name}'s own clustering (labels_); its predict, "
            f"used for new images, agrees on {100 * result['agreement']:.1f}% of them."
        )
    if result["metrics"]:
        m = result["metrics"]
        _result(
            f"Scores against the true labels: ACC {m['acc']:.3f}  NMI {m['nmi']:.3f}  "
            f"ARI {m['ari']:.3f}"
        )
    _result(
        f"Wrote {out_dir / LABELS_NAME}; open {out_dir / 'report.html'} to look at the clusters."
    )


def _predict(args: argparse.Namespace) -> int:
    from deepclust.io import load_model

    device = resolve_cli_device(args.device)
    out = Path(args.out)
    check_output_file(out)
    _set_threads(args)
    model = load_model(args.model)
    model.set_params(device=str(device), verbose=False)
    if args.batch_size is not None:
        model.set_params(batch_size=args.batch_size)
    image_size, channels = None, None
    if model.input_kind_ == "images":
        channels, height, width = model.input_shape_
        image_size = (height, width)
    loaded = _load_input(
        args,
        image_size=image_size if os.path.isdir(args.source) else None,
        n_channels=channels,
        device=device,
    )
    if loaded.summary:
        _status(args, f"Read {loaded.summary}.")
    labels, confidence, _ = label_samples(model, loaded.data, _progress_factory(args.quiet))
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(out, labels_csv(loaded.names, labels, confidence))
    if loaded.y is not None:
        from deepclust.metrics import evaluate_clustering

        m = evaluate_clustering(loaded.y, labels)
        _result(
            f"Scores against the true labels: ACC {m['acc']:.3f}  NMI {m['nmi']:.3f}  "
            f"ARI {m['ari']:.3f}"
        )
    _result(f"Labelled {len(labels)} samples with {type(model).__name__}; wrote {out}.")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sklearn.cluster import KMeans

    from deepclust import SCANClusterer
    from deepclust.metrics import evaluate_clustering

    device = resolve_cli_device(args.device)
    _set_threads(args)
    out_dir = Path(args.out)
    check_output_folder(out_dir)
    say = functools.partial(_status, args)
    # The method and recipe of ``deepclust cluster``, at the demo's budget.
    lengths = {} if args.epochs is None else epoch_params(DEFAULT_METHOD, args.epochs)
    estimator = SCANClusterer(
        n_clusters=10,
        budget=args.budget,
        device=args.device,
        random_state=args.seed,
        verbose=not args.quiet,
        **lengths,
    )
    with _output_folder(out_dir):
        prepare_resume(
            out_dir, estimator, method="scan", source="digits", resume=False, say=say, fresh=True
        )
        from deepclust.cli._inputs import load_input

        loaded = load_input("digits")
        say(
            f"Clustering {len(loaded)} 8x8 digit images from scikit-learn into 10 clusters "
            f"(SCAN) on {device}..."
        )
        result = run_pipeline(
            estimator,
            loaded,
            out_dir,
            method="scan",
            source="digits",
            quiet=args.quiet,
            say=say,
        )
    scores = result["metrics"]
    pixels = loaded.data.reshape(len(loaded), -1).astype(np.float32) / 255.0
    baseline = evaluate_clustering(
        loaded.y, KMeans(10, n_init=1, random_state=args.seed).fit_predict(pixels)
    )
    _result(
        f"SCAN     ACC {scores['acc']:.3f}  NMI {scores['nmi']:.3f}  "
        f"ARI {scores['ari']:.3f}  ({result['fit_seconds']:.0f} s)"
    )
    _result(
        f"k-means  ACC {baseline['acc']:.3f}  NMI {baseline['nmi']:.3f}  "
        f"ARI {baseline['ari']:.3f}  (raw pixels)"
    )
    _result(
        f"Outputs in {out_dir}/: labels.csv, clusters.png, metrics.json, model.json; open "
        f"{out_dir / 'report.html'} in a browser."
    )
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
_n_clusters_int = _int_at_least(2, "need at least 2 clusters")


def _n_clusters(text: str) -> int | str | tuple | list:
    """``--n-clusters``: ``K``, ``auto``, a range ``LOW:HIGH`` or a list ``K1,K2,...``.

    Returns an int for one count, ``'auto'``, ``('range', LOW, HIGH)`` or a sorted list.
    """
    from deepclust.model_selection import check_n_clusters_candidates

    text = text.strip()
    if text == "auto":
        return "auto"
    if ":" in text:
        parts = text.split(":")
        ends = [_n_clusters_int(p) for p in parts] if len(parts) == 2 else None
        if ends is None or ends[0] >= ends[1]:
            raise argparse.ArgumentTypeError(
                f"a range is LOW:HIGH with 2 <= LOW < HIGH, e.g. 5:30; got {text!r}"
            )
        return ("range", ends[0], ends[1])
    if "," in text:
        try:
            values = [int(p) for p in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"a list is integers separated by commas, e.g. 5,10,15; got {text!r}"
            ) from None
        try:
            return check_n_clusters_candidates(values)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (got {text!r})") from None
    return _n_clusters_int(text)


_pixels = _int_at_least(4, "image size must be at least 4 px")


def _invariances(text: str) -> tuple[str, ...] | str:
    """``--invariant-to``: ``auto``, ``none`` or a comma-separated list of invariances."""
    if is_auto_invariances(text):
        return AUTO_INVARIANCES
    if text.strip().lower() == "none":
        return ()
    try:
        return check_invariances(text, "--invariant-to")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _image_size(text: str) -> int | None:
    return None if text == "auto" else _pixels(text)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``deepclust: error: ...``."""

    def error(self, message: str):
        """Print the error on one line and exit with status 2.

        Parameters
        ----------
        message : str
        """
        self.exit(2, f"deepclust: error: {one_line(message)} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the descriptions' line breaks and shows each option's default, if it has one."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


_CLUSTER_DESCRIPTION = """\
Cluster SOURCE (a folder of images, searched recursively; a .npy or .npz array
file; or a data set) and write into the folder DIR:

  labels.csv         one line per input, in input order: source (path relative
                     to SOURCE, or row number), cluster (the method's own
                     clustering of these images) and confidence (the network's
                     probability of that cluster)
  clusters.png       one row per cluster with its most confident images
                     (clusters-2.png and on beyond 50 clusters)
  model.safetensors  the fitted model, with model.json; deepclust predict
                     reads them
  metrics.json       scores against the true labels, when they are known (an
                     .npz 'y', or --labels-from-folders)
  report.html        montage, cluster sizes and training curves in one page
  run.json           the settings of the run
  checkpoint.pt      written during training and removed at the end; --resume
                     continues an interrupted run from it

DIR may be new, or the folder of an earlier run (its outputs are replaced);
files of these names that deepclust did not write are never overwritten. Each
method has its own defaults; --config FILE (a JSON object of estimator
parameters) overrides them, and the options below override both.
"""
_DEMO_DESCRIPTION = """\
Cluster scikit-learn's 1,797 8x8 digits with SCAN and its recipe at the 'fast'
budget (about a minute on 2 CPU cores), print ACC, NMI and ARI next to k-means
on the raw pixels, and write the outputs of deepclust cluster into the --out
folder.
"""
_PREDICT_DESCRIPTION = """\
Label SOURCE with a model written by deepclust cluster (its --out folder, or
its model.json), and write a CSV file like labels.csv: source, cluster (the
model's predict) and confidence.
"""


def _add_demo(commands, runtime) -> None:
    demo = commands.add_parser(
        "demo",
        parents=[runtime],
        formatter_class=_HelpFormatter,
        help="cluster scikit-learn's digits, print scores, write a report",
        description=_DEMO_DESCRIPTION,
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument(
        "--budget",
        default="fast",
        choices=_BUDGET_NAMES,
        help="training budget of the recipe (as deepclust cluster --budget)",
    )
    demo.add_argument(
        "--epochs", type=_non_negative_int, metavar="E", help="training length E, over the recipe's"
    )
    demo.add_argument("--out", default="deepclust-demo", metavar="DIR", help="output folder")
    demo.set_defaults(run=_demo)


_N_CLUSTERS_HELP = (
    "number of clusters: K, or choose it without labels among candidates: 'auto' "
    "(about 25%% apart from a third to three times sqrt(N/2), within [2, 50]), LOW:HIGH "
    "(about 25%% apart from LOW to HIGH) or K1,K2,... (run.json records the scores)"
)


def _add_cluster(commands, runtime) -> None:
    from deepclust.methods import method_names

    cluster = commands.add_parser(
        "cluster",
        parents=[runtime],
        formatter_class=_HelpFormatter,
        help="cluster a folder of images, an array file or a data set",
        description=_CLUSTER_DESCRIPTION,
    )
    cluster.add_argument(
        "source",
        metavar="SOURCE",
        help="folder of images (searched recursively), .npy/.npz file (images or a 2-D "
        "feature matrix; .npz may hold true labels as 'y'), or a data set: digits, "
        "fashion-mnist, fashion-mnist-train, fashion-mnist-test",
    )
    cluster.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=method_names(),
        help="clustering method (the benchmarks' best on every data set tried)",
    )
    cluster.add_argument(
        "--budget",
        default="default",
        choices=_BUDGET_NAMES,
        help="training budget: 'fast' about a third of 'default', 'thorough' three times",
    )
    _add_n_clusters_options(cluster)
    cluster.add_argument(
        "--invariant-to",
        type=_invariances,
        metavar="WHAT",
        help="what must not decide the clusters, comma-separated: "
        + ", ".join(INVARIANCES)
        + " (e.g. colour,background); 'auto' (default): fit again with the invariances "
        "that remove what the first fit's clusters follow; 'none': never",
    )
    cluster.add_argument("--out", required=True, metavar="DIR", help="output folder")
    cluster.add_argument("--seed", type=int, default=0, help="random seed")
    cluster.add_argument("--epochs", type=_non_negative_int, metavar="E", help=_epochs_help())
    cluster.add_argument(
        "--image-size",
        type=_image_size,
        metavar="PX",
        help="side length images are resized to; by default the recipe's: the images' own "
        "size scaled down to at most 20 px (grey) or 32 px (colour) on CPU and 64 px on CUDA",
    )
    cluster.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="B",
        help="training batch size (default: the method's)",
    )
    cluster.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from DIR's checkpoint (same options)",
    )
    cluster.add_argument(
        "--config",
        metavar="FILE",
        help='JSON file holding an object of estimator parameters, e.g. {"lr": 0.001}; '
        "image_size may be a side or [height, width]",
    )
    _add_file_options(cluster)
    cluster.add_argument(
        "--tensorboard",
        metavar="LOGDIR",
        help="write loss, label change and cluster sizes per epoch for TensorBoard into "
        "LOGDIR (needs tensorboard: pip install 'deepclust[tensorboard]')",
    )
    cluster.set_defaults(run=_cluster)


def _add_n_clusters_options(cluster) -> None:
    """The options of ``deepclust cluster`` on the number of clusters."""
    cluster.add_argument(
        "--n-clusters", required=True, type=_n_clusters, metavar="K", help=_N_CLUSTERS_HELP
    )
    cluster.add_argument(
        "--merge-to",
        type=_n_clusters_int,
        metavar="M",
        help="overcluster: train --n-clusters clusters, then merge them into M (below K) by "
        "their prototypes; the report shows which were merged (needs a fixed K)",
    )


def _add_file_options(cluster) -> None:
    """The options of ``deepclust cluster`` on reading image files."""
    cluster.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="keep the decoded images of a folder SOURCE in DIR (one memory-mapped file per "
        "file list and size), so that a later run on the same, unchanged files decodes none",
    )
    cluster.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave out unreadable image files (with a warning) instead of stopping",
    )
    cluster.add_argument(
        "--backbone",
        metavar="NAME",
        help="the network: a deepclust backbone (convnet-small, convnet, resnet18, ...) or "
        "a torchvision classification model (resnet50, vgg16, efficientnet_b0, ...); by "
        "default the recipe's",
    )
    cluster.add_argument(
        "--weights",
        metavar="FILE|NAME",
        help="weights the backbone starts from: a .pth/.pt/.safetensors state dict, or a "
        "torchvision weights name such as IMAGENET1K_V1 (downloaded when online); with a "
        "torchvision backbone the images are read at the weights' size (224 px) unless "
        "--image-size is given",
    )
    cluster.add_argument(
        "--freeze-backbone",
        action="store_true",
        help="keep the backbone of --weights fixed: its features are computed once and only "
        "the clustering heads train (minutes on a CPU)",
    )
    cluster.add_argument(
        "--nproc",
        type=_positive_int,
        default=1,
        metavar="N",
        help="train in N processes on torch.distributed (gloo on CPUs, one GPU each with "
        "nccl), each on its share of every batch; rank 0 writes the outputs",
    )
    cluster.add_argument(
        "--labels-from-folders",
        action="store_true",
        help="a folder SOURCE's top-level sub-folders are known classes, used only to score "
        "the clusters (metrics.json, confusion matrix and class-coloured montage), never "
        "for training; no image may lie directly in SOURCE",
    )


def _add_predict(commands, runtime) -> None:
    predict = commands.add_parser(
        "predict",
        parents=[runtime],
        formatter_class=_HelpFormatter,
        help="label images with a saved model",
        description=_PREDICT_DESCRIPTION,
    )
    predict.add_argument("model", metavar="MODEL", help="model folder, prefix or model.json")
    predict.add_argument("source", metavar="SOURCE", help="as for deepclust cluster")
    predict.add_argument(
        "--out",
        required=True,
        metavar="FILE.csv",
        help="CSV file to write (a file name, not a folder)",
    )
    predict.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="B",
        help="inference batch size (default: the model's)",
    )
    predict.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave out unreadable image files (with a warning)",
    )
    predict.set_defaults(run=_predict)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``deepclust`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    from deepclust import __version__

    parser = _Parser(
        prog="deepclust",
        description="Label unlabelled images by deep clustering.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"deepclust {__version__}")
    # Options every subcommand takes.
    runtime = _Parser(add_help=False)
    runtime.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    runtime.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars, status or per-epoch lines (results and errors still show)",
    )
    runtime.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is often faster for small "
        "images on a busy machine)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_demo(commands, runtime)
    _add_cluster(commands, runtime)
    _add_predict(commands, runtime)
    from deepclust.cli._review import add_export, add_review

    add_review(commands, runtime, _HelpFormatter)
    add_export(commands, runtime, _HelpFormatter)
    return parser


def _error(message: str) -> int:
    print(f"deepclust: error: {one_line(message)}", file=sys.stderr, flush=True)
    return 2


def _interrupted(args) -> int:
    out = getattr(args, "out", None)
    hint = ""
    if args.command == "cluster" and out and (Path(out) / CHECKPOINT_NAME).is_file():
        hint = " Run the same command with --resume to continue from the last checkpoint."
    print(f"deepclust: interrupted.{hint}", file=sys.stderr)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deepclust`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for a user error (one line on stderr), 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return args.run(args)
        except KeyboardInterrupt:
            return _interrupted(args)
        except (ValueError, TypeError, FileNotFoundError, TrainingDivergedError) as exc:
            return _error(str(exc))
        except OSError as exc:
            message = os_error_message(exc)
            if message is None:
                raise
            return _error(message)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
