"""Known classes for scoring only: one class per top-level sub-folder, and the matched
confusion matrix of the clusters against them (``--labels-from-folders``)."""

from __future__ import annotations

import os

import numpy as np

from deepclust.metrics import matched_confusion_matrix

__all__ = [
    "CLASS_PALETTE",
    "check_no_loose_images",
    "classes_from_names",
    "matched_confusion",
    "purity_order",
]

#: Frame colours of the classes in the montage (repeated beyond its length).
CLASS_PALETTE = (
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def _loose_message(folder: str, loose: list[str]) -> str:
    shown = ", ".join(loose[:5]) + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
    return (
        f"--labels-from-folders: {len(loose)} image(s) lie directly in {folder!r} rather "
        f"than in a class sub-folder ({shown}); move them into a sub-folder named after "
        "their class, or leave out --labels-from-folders."
    )


def check_no_loose_images(folder: str) -> None:
    """Refuse a folder with image files directly in it (they would have no class).

    Parameters
    ----------
    folder : str
        SOURCE, which must be a folder.

    Raises
    ------
    ValueError
        If ``folder`` is not a folder, or holds image files outside any sub-folder.
    """
    from deepclust.data import scan_image_folder

    if not os.path.isdir(folder):
        raise ValueError(
            f"--labels-from-folders needs a folder of class sub-folders; {folder!r} is not "
            "a folder."
        )
    paths, _ = scan_image_folder(folder)
    loose = [
        os.path.relpath(p, folder)
        for p in paths
        if os.sep not in os.path.relpath(p, folder).replace("/", os.sep)
    ]
    if loose:
        raise ValueError(_loose_message(folder, loose))


def classes_from_names(names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each sample's class: the top-level folder of its relative path.

    Parameters
    ----------
    names : list of str
        Paths relative to SOURCE, ``/``-separated (``labels.csv``'s ``source`` column).

    Returns
    -------
    y : ndarray of int64 of shape (n_samples,)
        Index of each sample's class in ``class_names``.
    class_names : list of str
        The sub-folder names, sorted.

    Raises
    ------
    ValueError
        If a name has no folder part.
    """
    loose = [name for name in names if "/" not in name]
    if loose:
        raise ValueError(_loose_message("SOURCE", loose))
    tops = [name.split("/", 1)[0] for name in names]
    class_names, y = np.unique(np.asarray(tops, dtype=object), return_inverse=True)
    return y.astype(np.int64), [str(c) for c in class_names]


def _counts(y_true: np.ndarray, labels: np.ndarray, n_clusters: int, n_classes: int):
    counts = np.zeros((n_clusters, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels, dtype=np.int64), np.asarray(y_true, dtype=np.int64)), 1)
    return counts


def matched_confusion(
    y_true: np.ndarray, labels: np.ndarray, n_clusters: int, class_names: list[str]
) -> dict:
    """:func:`deepclust.metrics.matched_confusion_matrix` of the known classes (indices
    into ``class_names``), with a row for every one of ``n_clusters`` clusters."""
    return matched_confusion_matrix(y_true, labels, n_clusters=n_clusters, class_names=class_names)


def purity_order(y_true: np.ndarray, labels: np.ndarray, n_clusters: int) -> list[int]:
    """Clusters sorted by purity (the fraction of their majority class), purest first;
    empty clusters last, ties by cluster number.

    Parameters
    ----------
    y_true : ndarray of int of shape (n_samples,)
        Class indices.
    labels : ndarray of int of shape (n_samples,)
        Clusters ``0`` to ``n_clusters - 1``.
    n_clusters : int
        Clusters ordered.

    Returns
    -------
    list of int
    """
    counts = _counts(y_true, labels, n_clusters, int(np.max(y_true)) + 1)
    sizes = counts.sum(axis=1)
    purity = np.where(sizes > 0, counts.max(axis=1) / np.maximum(sizes, 1), -1.0)
    return [int(c) for c in np.argsort(-purity, kind="stable")]
