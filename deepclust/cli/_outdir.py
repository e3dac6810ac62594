"""The output folder of ``deepclust cluster``: checks before a run, its lock, stale files.

A run checks its ``--out`` folder before it reads anything (:func:`check_output_folder`),
then holds :class:`OutputFolderLock` while it works: an exclusive ``fcntl.flock`` on
``DIR/.deepclust.lock``, which holds the PID of its holder. Under the lock it refuses to
overwrite files that no deepclust run wrote (:func:`check_user_files`) and removes the
temporary files of writers killed before they could rename them
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from deepclust.cli._errors import CommandError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are not locked
    fcntl = None

__all__ = [
    "CHECKPOINT_NAME",
    "LOCK_NAME",
    "OUTPUT_NAMES",
    "RUN_NAME",
    "OutputFolderLock",
    "check_output_file",
    "check_output_folder",
    "check_user_files",
    "is_output_name",
    "remove_stale_temporaries",
]

CHECKPOINT_NAME = "checkpoint.pt"
RUN_NAME = "run.json"
LOCK_NAME = ".deepclust.lock"
#: The files ``deepclust cluster`` writes, besides ``clusters.png``, ``clusters-N.png``.
OUTPUT_NAMES = frozenset(
    {
        "labels.csv",
        "model.safetensors",
        "model.json",
        "metrics.json",
        "report.html",
        RUN_NAME,
        CHECKPOINT_NAME,
        LOCK_NAME,
    }
)
_MONTAGE = re.compile(r"clusters(-\d+)?\.png")
# ``deepclust._utils.atomic_write``'s temporary files.
_TEMPORARY = re.compile(r"(?P<target>.+)\.tmp-(?P<pid>\d+)")
# Files listed by name when refusing a folder.
_LISTED = 5


def is_output_name(name: str) -> bool:
    """Whether ``deepclust cluster`` writes a file of this name into its ``--out`` folder.

    Parameters
    ----------
    name : str
        A file name, without its folder.

    Returns
    -------
    bool
    """
    return name in OUTPUT_NAMES or _MONTAGE.fullmatch(name) is not None


def _nearest_existing(path: Path) -> Path:
    """``path`` or the closest of its parents that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _is_within(path: str | Path, folder: str | Path) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def check_output_folder(out: str | Path, *, source: str | None = None) -> None:
    """Refuse an ``--out`` folder that cannot take the outputs; reads and creates nothing.

    Parameters
    ----------
    out : str or Path
        The ``--out`` folder, new or existing.
    source : str, optional
        SOURCE of the run: ``out`` may not lie inside it when it is a folder (the next
        run would cluster the montage written there).

    Raises
    ------
    CommandError
        When ``out`` is a file, lies under a file, is not writable or lies inside SOURCE.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CommandError(
            f"--out {out} is a file, not a folder; give a new folder or the folder of an "
            "earlier run."
        )
    existing = _nearest_existing(out)
    if not existing.is_dir():
        raise CommandError(
            f"--out {out} would be inside {existing}, which is a file; give a folder elsewhere."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(
            f"--out {out}: the folder {existing} is not writable; choose a folder you can write to."
        )
    if source is not None and os.path.isdir(source) and _is_within(out, source):
        raise CommandError(
            f"--out {out} is inside SOURCE {source}, so a later run would cluster the "
            "images written there (clusters.png); choose a folder outside SOURCE."
        )


def check_output_file(out: str | Path) -> None:
    """Refuse an ``--out`` file (of ``deepclust predict``) that cannot be written.

    Parameters
    ----------
    out : str or Path
        The ``--out`` file; it and its missing parent folders need not exist yet.

    Raises
    ------
    CommandError
        When ``out`` is a folder, lies under a file or its folder is not writable.
    """
    out = Path(out)
    if out.is_dir():
        raise CommandError(f"--out {out} is a folder; give a file name, e.g. {out / 'labels.csv'}.")
    existing = _nearest_existing(out.parent)
    if not existing.is_dir():
        raise CommandError(
            f"--out {out} would be inside {existing}, which is a file; give a file name elsewhere."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(
            f"--out {out}: the folder {existing} is not writable; choose a file name in a "
            "folder you can write to."
        )


def _written_by_deepclust(run_path: Path) -> bool:
    """Whether ``run_path`` is the ``run.json`` of a deepclust run."""
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(run, dict) and {"method", "params"} <= set(run)


def check_user_files(folder: str | Path) -> None:
    """Refuse a folder holding files of deepclust's names that no deepclust run wrote.

    Files of other names are left alone; a folder with the ``run.json`` of an earlier run
    holds that run's outputs, which are replaced. ``checkpoint.pt`` is left to the
    ``--resume`` checks.

    Parameters
    ----------
    folder : str or Path
        The ``--out`` folder; one that does not exist yet passes.

    Raises
    ------
    CommandError
        Listing up to five of the files that would be overwritten.
    """
    folder = Path(folder)
    if not folder.is_dir() or _written_by_deepclust(folder / RUN_NAME):
        return
    taken = sorted(
        entry.name
        for entry in os.scandir(folder)
        if is_output_name(entry.name) and entry.name not in (CHECKPOINT_NAME, LOCK_NAME)
    )
    if not taken:
        return
    listing = ", ".join(taken[:_LISTED])
    if len(taken) > _LISTED:
        listing += f" and {len(taken) - _LISTED} more"
    raise CommandError(
        f"--out {folder} holds files that this run would overwrite and that no deepclust "
        f"run wrote (there is no run.json of one): {listing}. Move them away, or choose "
        "another --out folder."
    )


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process holds the lock and has not written anything yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except (OverflowError, ValueError, OSError):
        return False
    return True


def remove_stale_temporaries(folder: str | Path) -> list[str]:
    """Remove ``<output>.tmp-<pid>`` files of ``folder`` whose writer is no longer running.

    Only temporary files of deepclust's outputs are considered; those of a running
    process are kept.

    Parameters
    ----------
    folder : str or Path
        An existing ``--out`` folder.

    Returns
    -------
    list of str
        The names removed.
    """
    removed = []
    for entry in os.scandir(folder):
        match = _TEMPORARY.fullmatch(entry.name)
        if (
            match is None
            or not is_output_name(match["target"])
            or not entry.is_file(follow_symlinks=False)
            or _pid_alive(int(match["pid"]))
        ):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
        removed.append(entry.name)
    return removed


class OutputFolderLock:
    """An exclusive lock on an output folder, created (with its parents) when missing.

    Use as a context manager. The lock is an ``fcntl.flock`` on ``folder/.deepclust.lock``,
    which holds the holder's PID; the kernel drops it when the holder dies, so a lock file
    left by a killed run does not block the next one. Releasing removes the lock file and
    the folders the lock created, if they are still empty (nothing was written).

    Parameters
    ----------
    folder : str or Path
        The ``--out`` folder to lock.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._created: list[Path] = []

    def __enter__(self) -> OutputFolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def acquire(self) -> None:
        """Create the folder if needed and take the lock.

        Raises
        ------
        CommandError
            When another process holds the lock: names its PID.
        """
        self._created = _make_folders(self.folder)
        try:
            self._fd = self._lock()
        except BaseException:
            self._remove_created()
            raise

    def _lock(self) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is None:  # pragma: no cover
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise CommandError(
                    f"another deepclust run (PID {holder}) is writing into {self.folder}; "
                    "wait for it to finish, or choose another --out folder."
                ) from None
            if _same_file(fd, self.path):
                break
            # The previous holder removed the file between our open and flock: lock anew.
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def release(self) -> None:
        """Remove the lock file, drop the lock and remove the still-empty created folders."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in self._created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        self._created = []


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, deepest first."""
    missing = []
    path = Path(os.path.abspath(folder))
    while not path.exists():
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return missing


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (on_disk.st_dev, on_disk.st_ino)
