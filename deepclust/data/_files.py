"""Finding the image files below a folder, and counting every file and folder left out."""

from __future__ import annotations

import os
from collections import Counter, deque
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "IMAGE_EXTENSIONS",
    "LEFT_OUT_REASONS",
    "ImageFolderScan",
    "describe_left_out",
    "list_image_files",
    "scan_image_folder",
    "summarise_images",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""File name endings searched for when a folder is given (case-insensitive)."""

#: Why a file or folder is left out: key -> (singular, plural) as summaries print it, in the
#: order summaries list them.
LEFT_OUT_REASONS = {
    "hidden": ("hidden", "hidden"),
    "AppleDouble": ("AppleDouble", "AppleDouble"),
    "hidden folder": ("hidden folder", "hidden folders"),
    "non-image": ("non-image", "non-image"),
    "broken link": ("broken link", "broken links"),
    "repeated folder": ("repeated folder", "repeated folders"),
    "unreadable folder": ("unreadable folder", "unreadable folders"),
    "unreadable": ("unreadable", "unreadable"),
}


class ImageFolderScan(NamedTuple):
    """The image files found below a folder and the counts of what was left out.

    Attributes
    ----------
    paths : list of str
        Image files, sorted by their path relative to the folder.
    skipped : dict of str to int
        How many entries were left out, by reason (a key of :data:`LEFT_OUT_REASONS`);
        reasons with no entry are absent.
    """

    paths: list[str]
    skipped: dict[str, int]


def scan_image_folder(folder: str | os.PathLike) -> ImageFolderScan:
    """Find the image files below ``folder`` (recursively) and count what is left out.

    Left out, and counted by reason:

    - ``'AppleDouble'``: macOS resource-fork files whose names start with ``._``;
    - ``'hidden'``: other files whose names start with ``.``;
    - ``'hidden folder'``: folders whose names start with ``.`` (not searched, so the
      files inside them are not counted one by one);
    - ``'non-image'``: files whose names do not end in one of :data:`IMAGE_EXTENSIONS`,
      and entries that are neither files nor folders;
    - ``'broken link'``: symbolic links to nothing;
    - ``'repeated folder'``: folders reached a second time through a symbolic link (a link
      to an ancestor folder, or to a folder already searched);
    - ``'unreadable folder'``: folders that cannot be listed.

    Symbolic links to folders are followed. Real sub-folders are searched before linked
    ones, so a folder that is both present and linked is named by its real location.
    Folders are told apart by device and inode, so no folder is searched twice and link
    loops end.

    Parameters
    ----------
    folder : str or path-like
        Folder to search.

    Returns
    -------
    ImageFolderScan
        ``(paths, skipped)``: the image files, sorted by path relative to ``folder``, and
        the counts of entries left out.
    """
    root = os.fspath(folder)
    files: list[str] = []
    skipped: Counter = Counter()
    visited: set[tuple[int, int]] = set()
    real_folders, linked_folders = [root], deque()
    while real_folders or linked_folders:
        directory = real_folders.pop() if real_folders else linked_folders.popleft()
        try:
            stat = os.stat(directory)
        except OSError:
            skipped["unreadable folder"] += 1
            continue
        if (stat.st_dev, stat.st_ino) in visited:
            skipped["repeated folder"] += 1
            continue
        visited.add((stat.st_dev, stat.st_ino))
        _scan_directory(directory, files, real_folders, linked_folders, skipped)
    files.sort(key=lambda p: Path(p).relative_to(root).as_posix())
    return ImageFolderScan(files, dict(skipped))


def _scan_directory(
    directory: str, files: list, real_folders: list, linked_folders: deque, skipped: Counter
) -> None:
    """Sort the entries of one folder into image files, folders to search and left-outs."""
    try:
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        skipped["unreadable folder"] += 1
        return
    for entry in entries:
        name = entry.name
        try:
            is_dir = entry.is_dir()  # follows symbolic links
            is_file = not is_dir and entry.is_file()
        except OSError:
            is_dir = is_file = False
        if is_dir:
            if name.startswith("."):
                skipped["hidden folder"] += 1
            elif entry.is_symlink():
                linked_folders.append(entry.path)
            else:
                real_folders.append(entry.path)
        elif name.startswith("._"):
            skipped["AppleDouble"] += 1
        elif name.startswith("."):
            skipped["hidden"] += 1
        elif entry.is_symlink() and not os.path.exists(entry.path):
            skipped["broken link"] += 1
        elif is_file and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
            files.append(entry.path)
        else:
            skipped["non-image"] += 1


def list_image_files(folder: str | os.PathLike) -> list[str]:
    """All image files below ``folder`` (recursively), in a stable sorted order.

    Hidden and AppleDouble files, hidden folders and non-image files are left out, and
    symbolic links to folders are followed once; see :func:`scan_image_folder`, which also
    counts what is left out.

    Parameters
    ----------
    folder : str or path-like
        Folder to search.

    Returns
    -------
    list of str
        The image files, sorted by their path relative to ``folder``.
    """
    return scan_image_folder(folder).paths


def describe_left_out(skipped: dict[str, int]) -> str:
    """Counts of left-out entries as text, e.g. ``'3 hidden, 2 AppleDouble, 1 unreadable'``.

    Parameters
    ----------
    skipped : dict of str to int
        Counts by reason, as in :attr:`ImageFolderScan.skipped`.

    Returns
    -------
    str
        The non-zero counts in the order of :data:`LEFT_OUT_REASONS` (other reasons last);
        empty when nothing was left out.
    """
    order = [*LEFT_OUT_REASONS, *sorted(set(skipped) - set(LEFT_OUT_REASONS))]
    parts = []
    for reason in order:
        count = skipped.get(reason, 0)
        if count:
            singular, plural = LEFT_OUT_REASONS.get(reason, (reason, reason))
            parts.append(f"{count:,} {singular if count == 1 else plural}")
    return ", ".join(parts)


def summarise_images(n_images: int, skipped: dict[str, int]) -> str:
    """One line on an image collection, e.g. ``'1,200 images; left out: 3 hidden'``.

    Parameters
    ----------
    n_images : int
        Number of images in the collection.
    skipped : dict of str to int
        Counts of what was left out, by reason.

    Returns
    -------
    str
        The number of images, then the counts of :func:`describe_left_out` when any.
    """
    line = f"{n_images:,} image{'' if n_images == 1 else 's'}"
    left_out = describe_left_out(skipped)
    return f"{line}; left out: {left_out}" if left_out else line
