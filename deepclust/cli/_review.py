"""``deepclust review`` and ``deepclust export``: from a run's clusters to labelled images.

``deepclust review RUN`` writes ``RUN/clusters.csv``, one row per cluster:
``cluster,size,mean_confidence,name`` with ``name`` empty. The user fills in ``name``:

- a class name: the cluster's images go to that class; the same name on several clusters
  merges them;
- ``_drop``: the cluster is left out of the export;
- empty: the cluster is kept under its own name, ``cluster_<k>``.

A name is one folder name: no ``/`` or ``\\``, not ``.`` or ``..``, no control characters,
not starting with ``_`` (``_drop`` aside; ``_unsure`` holds the unsure images), and two
names may not differ only in case. An existing ``clusters.csv`` with a name filled in is
never overwritten without ``--force``.

``deepclust export RUN --to DIR`` writes, for a run on a folder of images, an
ImageFolder-style tree: ``DIR/<class>/<path relative to SOURCE>`` for every image
(symbolic links to the files, copies with ``--copy``), the images whose confidence is
below ``--min-confidence`` under ``DIR/_unsure/<class>/...`` instead, and ``DIR/labels.csv``
(``path,label,confidence,unsure,source``). For a run on an array file or a data set,
which has no files to link, it writes ``DIR/labels.csv`` only
(``index,label,confidence,unsure``). Everything (run folder, ``labels.csv``, mapping,
source files) is checked before anything is written, the tree is built in a temporary
folder beside ``DIR`` and renamed into place at the end, so a refused or failed export
leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepclust.cli._errors import CommandError
from deepclust.cli._outdir import RUN_NAME

__all__ = [
    "CLUSTERS_NAME",
    "DROP",
    "UNSURE",
    "add_export",
    "add_review",
    "class_names",
    "read_mapping",
    "read_run",
]

CLUSTERS_NAME = "clusters.csv"
#: The name that leaves a cluster out of the export.
DROP = "_drop"
#: The folder of ``DIR`` that holds the images below ``--min-confidence``.
UNSURE = "_unsure"
_LABELS_NAME = "labels.csv"
_CLUSTERS_COLUMNS = ("cluster", "size", "mean_confidence", "name")


@dataclass
class Run:
    """A finished ``deepclust cluster`` run, read from its folder.

    Attributes
    ----------
    folder : Path
    source : str
        SOURCE as ``run.json`` records it (an absolute path for folders and files).
    n_clusters : int
    names : list of str
        The ``source`` column of ``labels.csv``.
    labels : ndarray of int
    confidence : ndarray of float
    """

    folder: Path
    source: str
    n_clusters: int
    names: list[str]
    labels: np.ndarray
    confidence: np.ndarray

    @property
    def is_folder(self) -> bool:
        """Whether SOURCE is a folder of image files (else an array file or data set)."""
        return os.path.isdir(self.source)

    def sizes(self) -> np.ndarray:
        """Images per cluster, empty clusters included.

        Returns
        -------
        ndarray of int of shape (n_clusters,)
        """
        return np.bincount(self.labels, minlength=self.n_clusters)


def _not_a_run(folder: Path, what: str) -> CommandError:
    return CommandError(
        f"RUN {folder} is not the folder of a finished deepclust cluster run ({what}); give "
        "the --out folder of deepclust cluster."
    )


def _read_run_json(folder: Path) -> dict:
    try:
        run = json.loads((folder / RUN_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _not_a_run(folder, f"no {RUN_NAME}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _not_a_run(folder, f"{RUN_NAME} is unreadable: {exc}") from None
    params = run.get("params") if isinstance(run, dict) else None
    n_clusters = params.get("n_clusters") if isinstance(params, dict) else None
    if not isinstance(n_clusters, int) or not isinstance(run.get("source"), str):
        raise _not_a_run(folder, f"{RUN_NAME} has no source or n_clusters")
    return run


def _read_labels(folder: Path, n_clusters: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    path = folder / _LABELS_NAME
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise _not_a_run(folder, f"no {_LABELS_NAME}: did the run finish?") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _not_a_run(folder, f"{_LABELS_NAME} is unreadable: {exc}") from None
    try:
        names = [row["source"] for row in rows]
        labels = np.array([int(row["cluster"]) for row in rows], dtype=np.int64)
        confidence = np.array([float(row["confidence"]) for row in rows], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise _not_a_run(folder, f"{_LABELS_NAME} is not source,cluster,confidence") from None
    if len(labels) == 0 or labels.min() < 0 or labels.max() >= n_clusters:
        raise _not_a_run(folder, f"{_LABELS_NAME} has no rows or clusters outside 0..K-1")
    return names, labels, confidence


def read_run(folder: str | os.PathLike) -> Run:
    """Read a finished run's ``run.json`` and ``labels.csv``.

    Parameters
    ----------
    folder : str or path
        The ``--out`` folder of ``deepclust cluster``.

    Returns
    -------
    Run
        Its SOURCE, number of clusters and ``labels.csv``.

    Raises
    ------
    CommandError
        When the folder is not that of a finished run.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise _not_a_run(folder, "no such folder")
    run = _read_run_json(folder)
    n_clusters = int(run["params"]["n_clusters"])
    names, labels, confidence = _read_labels(folder, n_clusters)
    return Run(folder, run["source"], n_clusters, names, labels, confidence)


# ---------------------------------------------------------------------- review
def clusters_csv(run: Run) -> str:
    """The text of a fresh ``clusters.csv``: one row per cluster, ``name`` empty.

    Parameters
    ----------
    run : Run
        The finished run whose clusters are listed.

    Returns
    -------
    str
        The CSV text, header ``cluster,size,mean_confidence,name``.
    """
    sizes = run.sizes()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CLUSTERS_COLUMNS)
    for k in range(run.n_clusters):
        mean = float(run.confidence[run.labels == k].mean()) if sizes[k] else 0.0
        writer.writerow([k, int(sizes[k]), f"{mean:.4f}", ""])
    return buffer.getvalue()


def _has_names(path: Path) -> bool:
    """Whether an existing ``clusters.csv`` has a name filled in (or cannot be read)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return any((row.get("name") or "").strip() for row in csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return True


def _review(args: argparse.Namespace) -> int:
    from deepclust._utils import atomic_write

    run = read_run(args.run_folder)
    path = run.folder / CLUSTERS_NAME
    if path.exists() and not args.force and _has_names(path):
        raise CommandError(
            f"{path} exists and has names filled in; export with --mapping {path}, or add "
            "--force to replace it with a fresh one (the names are lost)."
        )
    atomic_write(path, clusters_csv(run).encode("utf-8"))
    sizes = run.sizes()
    print(
        f"Wrote {path}: {run.n_clusters} clusters ({int((sizes > 0).sum())} non-empty). Look "
        f"at {run.folder / 'clusters.png'} and give each cluster a class name in the name "
        f"column (the same name merges clusters, {DROP} leaves one out, an empty name keeps "
        f"it as cluster_<k>), then run: deepclust export {run.folder} --to DIR --mapping "
        f"{path}",
        flush=True,
    )
    return 0


# ---------------------------------------------------------------------- mapping
def _check_name(name: str, where: str) -> None:
    bad = (
        name in (".", "..")
        or "/" in name
        or "\\" in name
        or any(unicodedata.category(c).startswith("C") for c in name)
        or (name.startswith("_") and name != DROP)
    )
    if bad:
        raise CommandError(
            f"{where}: name {name!r} cannot be a folder name; use letters, digits, spaces, "
            f"'-' or '.', not '/' or '\\' or a leading '_' (except {DROP}, which drops the "
            "cluster)."
        )


def _mapping_rows(path: str) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = reader.fieldnames or []
    except FileNotFoundError:
        raise CommandError(f"--mapping {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"--mapping {path} is not a readable CSV file: {exc}") from None
    if "cluster" not in columns or "name" not in columns:
        raise CommandError(
            f"--mapping {path} has columns {columns}, not cluster and name; use the "
            "clusters.csv that deepclust review RUN writes (cluster,size,mean_confidence,name)."
        )
    return rows


def _mapping_row(row: dict, line: int, path: str, run: Run) -> tuple[int, str]:
    """The cluster and name of one mapping row, checked."""
    where = f"--mapping {path} line {line}"
    try:
        cluster = int((row.get("cluster") or "").strip())
    except ValueError:
        raise CommandError(f"{where}: cluster {row.get('cluster')!r} is not a number.") from None
    if not 0 <= cluster < run.n_clusters:
        raise CommandError(
            f"{where}: there is no cluster {cluster}; the run has clusters 0 to "
            f"{run.n_clusters - 1}. Fix the line, or write a fresh file with deepclust "
            "review RUN --force."
        )
    size = (row.get("size") or "").strip()
    actual = int(run.sizes()[cluster])
    if size and size.lstrip("-").isdigit() and int(size) != actual:
        raise CommandError(
            f"{where}: cluster {cluster} has {size} images there but {actual} in this run; "
            "the file was written for another run. Write a fresh one with deepclust review "
            "RUN --force."
        )
    name = (row.get("name") or "").strip()
    if name:
        _check_name(name, where)
    return cluster, name


def read_mapping(path: str, run: Run) -> dict[int, str]:
    """The class name of each cluster from an edited ``clusters.csv``, checked.

    Parameters
    ----------
    path : str
        The mapping file: columns ``cluster`` and ``name`` (others, ``size`` aside, are
        ignored; a ``size`` that differs from the run's marks a file of another run).
    run : Run
        The run the mapping applies to.

    Returns
    -------
    dict
        Every cluster's name (``cluster_<k>`` for empty names and clusters not listed),
        or :data:`DROP`.

    Raises
    ------
    CommandError
        For an unreadable file, a missing column, a cluster that does not exist or appears
        twice, a size that differs from the run's, or a name that cannot be a folder name.
    """
    names: dict[int, str] = {}
    for line, row in enumerate(_mapping_rows(path), start=2):
        cluster, name = _mapping_row(row, line, path, run)
        if cluster in names:
            raise CommandError(
                f"--mapping {path} line {line}: cluster {cluster} is listed twice; keep one "
                "line per cluster."
            )
        names[cluster] = name
    return class_names(run.n_clusters, names, path)


def class_names(n_clusters: int, given: dict[int, str], where: str = "--mapping") -> dict:
    """Every cluster's class name: the given ones, ``cluster_<k>`` for the others.

    Parameters
    ----------
    n_clusters : int
        Number of clusters of the run.
    given : dict
        Names by cluster (empty strings mean none).
    where : str, default='--mapping'
        Names the mapping in error messages.

    Returns
    -------
    dict
        ``{cluster: name}`` for every cluster.

    Raises
    ------
    CommandError
        When two different names differ only in case (they would share a folder on
        case-insensitive file systems).
    """
    names = {k: given.get(k) or f"cluster_{k}" for k in range(n_clusters)}
    folded: dict[str, str] = {}
    for name in names.values():
        other = folded.setdefault(name.casefold(), name)
        if other != name:
            raise CommandError(
                f"--mapping {where}: names {other!r} and {name!r} differ only in case; use "
                "one spelling for one class."
            )
    return names


# ---------------------------------------------------------------------- export
def _check_destination(to: Path, run: Run) -> None:
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise CommandError(f"--to {to} exists and is not an empty folder; give a new folder.")
    parent = Path(os.path.abspath(to)).parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CommandError(f"--to {to}: its folder {parent} is missing or not writable.")
    real = os.path.realpath(to)
    source = os.path.realpath(run.source)
    if run.is_folder and os.path.commonpath([real, source]) == source:
        raise CommandError(
            f"--to {to} is inside SOURCE {run.source}, so a later run would cluster the "
            "exported images again; choose a folder outside SOURCE."
        )


def _source_files(run: Run) -> list[str]:
    """The absolute path of every image of a folder run, checked to exist."""
    paths = [os.path.join(run.source, *name.split("/")) for name in run.names]
    missing = [name for name, path in zip(run.names, paths) if not os.path.isfile(path)]
    bad = [name for name in run.names if name.startswith("/") or ".." in name.split("/")]
    if missing or bad:
        first = (missing or bad)[0]
        raise CommandError(
            f"{len(missing) + len(bad)} image(s) of {run.folder / _LABELS_NAME} are not files "
            f"inside SOURCE {run.source} (first: {first}); the folder changed since the run. "
            "Cluster it again."
        )
    return paths


def export_rows(run: Run, names: dict, min_confidence: float) -> list[dict]:
    """One record per exported image: its class, whether unsure, its place in ``DIR``.

    Parameters
    ----------
    run : Run
        The finished run whose images are exported.
    names : dict
        Every cluster's class name, or :data:`DROP`.
    min_confidence : float
        Images below it are unsure.

    Returns
    -------
    list of dict
        ``index``, ``source``, ``label``, ``confidence``, ``unsure`` and ``path`` (relative
        to ``DIR``, for folder runs), in the run's order; dropped clusters left out.
    """
    rows = []
    for i, (name, cluster) in enumerate(zip(run.names, run.labels)):
        label = names[int(cluster)]
        if label == DROP:
            continue
        unsure = bool(run.confidence[i] < min_confidence)
        parts = ([UNSURE] if unsure else []) + [label, *name.split("/")]
        rows.append(
            {
                "index": i,
                "source": name,
                "label": label,
                "confidence": float(run.confidence[i]),
                "unsure": unsure,
                "path": "/".join(parts),
            }
        )
    return rows


def _export_csv(rows: list[dict], folder_run: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if folder_run:
        writer.writerow(["path", "label", "confidence", "unsure", "source"])
    else:
        writer.writerow(["index", "label", "confidence", "unsure"])
    for row in rows:
        values = [row["label"], f"{row['confidence']:.6f}", int(row["unsure"])]
        if folder_run:
            writer.writerow([row["path"], *values, row["source"]])
        else:
            writer.writerow([row["index"], *values])
    return buffer.getvalue()


def _write_tree(staging: Path, rows: list[dict], files: list[str] | None, copy: bool) -> None:
    for row in rows if files is not None else ():
        target = staging.joinpath(*row["path"].split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        original = os.path.abspath(files[row["index"]])
        if copy:
            shutil.copy2(original, target)
        else:
            os.symlink(original, target)
    (staging / _LABELS_NAME).write_text(_export_csv(rows, files is not None), encoding="utf-8")


@contextlib.contextmanager
def _staging_folder(to: Path):
    """A temporary folder beside ``to``, renamed to ``to`` on success, removed otherwise."""
    to = Path(os.path.abspath(to))
    staging = to.parent / f".{to.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if to.is_dir():
            to.rmdir()  # checked empty before
        os.rename(staging, to)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _export(args: argparse.Namespace) -> int:
    if not 0.0 <= args.min_confidence <= 1.0:
        raise CommandError(f"--min-confidence must be in [0, 1]; got {args.min_confidence}.")
    run = read_run(args.run_folder)
    to = Path(args.to)
    _check_destination(to, run)
    if args.mapping is not None:
        names = read_mapping(args.mapping, run)
    else:
        names = class_names(run.n_clusters, {})
    if not run.is_folder and os.path.isabs(run.source) and not os.path.isfile(run.source):
        raise CommandError(
            f"SOURCE {run.source} of the run no longer exists; put the images back there "
            "(the export links or copies them), or cluster them again where they are."
        )
    files = _source_files(run) if run.is_folder else None
    rows = export_rows(run, names, args.min_confidence)
    with _staging_folder(to) as staging:
        _write_tree(staging, rows, files, args.copy)
    _say_exported(run, to, rows, files is not None, args.copy)
    return 0


def _say_exported(run: Run, to: Path, rows: list[dict], folder_run: bool, copy: bool) -> None:
    classes = sorted({row["label"] for row in rows})
    n_unsure = sum(row["unsure"] for row in rows)
    dropped = len(run.labels) - len(rows)
    counts = f"{len(rows)} images in {len(classes)} classes ({n_unsure} unsure"
    counts += f", {dropped} dropped)" if dropped else ")"
    if folder_run:
        how = "copies" if copy else "symbolic links"
        print(
            f"Exported {counts} to {to}: one folder per class ({how}), {UNSURE}/ for images "
            f"below --min-confidence, and {to / _LABELS_NAME}.",
            flush=True,
        )
    else:
        print(
            f"Exported {counts}: SOURCE {run.source} is not a folder of image files, so "
            f"only {to / _LABELS_NAME} (index,label,confidence,unsure) is written.",
            flush=True,
        )


# ---------------------------------------------------------------------- parsers
_REVIEW_DESCRIPTION = f"""\
Write RUN/{CLUSTERS_NAME}, one row per cluster of a deepclust cluster run:
cluster, size, mean_confidence and an empty name. Give each cluster a class
name (the same name on several clusters merges them; {DROP} leaves a cluster
out; an empty name keeps it as cluster_<k>), then pass the file to deepclust
export --mapping. An edited {CLUSTERS_NAME} is not replaced without --force.
"""
_EXPORT_DESCRIPTION = f"""\
Write the images of a deepclust cluster run on a folder as an ImageFolder-style
tree: DIR/<class>/<path in SOURCE> (symbolic links, or copies with --copy),
images below --min-confidence under DIR/{UNSURE}/<class>/, and DIR/labels.csv
(path,label,confidence,unsure,source). Classes are the clusters (cluster_<k>),
or the names of --mapping (an edited {CLUSTERS_NAME} of deepclust review). For a
run on an array file or a data set only DIR/labels.csv is written
(index,label,confidence,unsure). Nothing is written unless everything checks.
"""


def add_review(commands, runtime, formatter) -> None:
    """Add the ``review`` subcommand.

    Parameters
    ----------
    commands : argparse subparsers
        The subcommands of ``deepclust``.
    runtime : argparse.ArgumentParser
        The options of the commands that run a model (``--device``...); not taken.
    formatter : type
        The help formatter class.
    """
    review = commands.add_parser(
        "review",
        formatter_class=formatter,
        help=f"write RUN/{CLUSTERS_NAME} to name (merge, drop) the clusters of a run",
        description=_REVIEW_DESCRIPTION,
    )
    review.add_argument("run_folder", metavar="RUN", help="the --out folder of deepclust cluster")
    review.add_argument(
        "--force", action="store_true", help=f"replace an edited {CLUSTERS_NAME} (names lost)"
    )
    review.set_defaults(run=_review)


def add_export(commands, runtime, formatter) -> None:
    """Add the ``export`` subcommand.

    Parameters
    ----------
    commands : argparse subparsers
        The subcommands of ``deepclust``.
    runtime : argparse.ArgumentParser
        The options of the commands that run a model (``--device``...); not taken.
    formatter : type
        The help formatter class.
    """
    export = commands.add_parser(
        "export",
        formatter_class=formatter,
        help="write a run's images as one folder per class, with labels.csv",
        description=_EXPORT_DESCRIPTION,
    )
    export.add_argument("run_folder", metavar="RUN", help="the --out folder of deepclust cluster")
    export.add_argument("--to", required=True, metavar="DIR", help="new folder to write")
    export.add_argument(
        "--mapping", metavar="FILE", help=f"edited {CLUSTERS_NAME}: class name per cluster"
    )
    export.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        metavar="C",
        help=f"images whose confidence is below C go to DIR/{UNSURE}/",
    )
    export.add_argument("--copy", action="store_true", help="copy the files instead of linking")
    export.set_defaults(run=_export)
