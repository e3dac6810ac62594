"""Errors of the ``deepclust`` command and their one-line messages."""

from __future__ import annotations

import errno
import re

__all__ = ["CommandError", "one_line", "os_error_message"]

# ``atomic_write``'s temporary files: ``<target>.tmp-<pid>``.
_TEMPORARY_SUFFIX = re.compile(r"\.tmp-\d+$")
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}


class CommandError(ValueError):
    """A problem the user can fix; printed without a traceback, exit status 2."""


def one_line(message: str) -> str:
    """``message`` with its lines joined into one, for ``deepclust: error: ...``.

    Parameters
    ----------
    message : str
        Possibly several lines, e.g. a list of files, one per indented line.

    Returns
    -------
    str
        The non-blank lines, stripped, joined by a space after a line ending in
        punctuation, else by ``'. '`` before a capital letter and ``'; '`` otherwise.
    """
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    for line in lines[1:]:
        if text.endswith((":", ".", ";", ",")):
            text += " " + line
        elif line[0].isupper():
            text += ". " + line
        else:
            text += "; " + line
    return text


def os_error_message(exc: OSError) -> str | None:
    """The user's message for a failed write, or None for an error that is not theirs.

    Parameters
    ----------
    exc : OSError
        The error raised while writing outputs; its ``errno`` decides whether it is the
        user's, its ``filename2`` or ``filename`` names the file.

    Returns
    -------
    str or None
        For a full disk (or quota) and for a refused access (permission, read-only file
        system): what failed and on which file; None for anything else.
    """
    target = exc.filename2 if exc.filename2 is not None else exc.filename
    where = "outputs" if target is None else _TEMPORARY_SUFFIX.sub("", str(target))
    if exc.errno in _NO_SPACE:
        return (
            f"no space left on device while writing {where}; free some space or choose "
            "another --out folder."
        )
    if exc.errno in _NOT_ALLOWED:
        return (
            f"cannot access {where}: {exc.strerror}. Check its permissions, or choose a "
            "folder you can write to with --out."
        )
    return None
