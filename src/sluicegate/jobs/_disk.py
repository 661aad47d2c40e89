"""A full disk (or a file-size limit) while saving: recognised, and told in one line with the file and free space."""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

__all__ = ["NoSpace", "no_space", "no_space_in"]

_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_SQLITE_FULL, _SQLITE_IOERR = 13, 10


class NoSpace(Exception):
    """Saving failed because the file cannot grow: which file, and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def describe(self) -> str:
        """One line: the file, the reason and how much space its disk has left."""
        try:
            free = shutil.disk_usage(self.path.parent).free
            room = f"{_size(free)} free on its disk"
        except OSError:
            room = "free space unknown"
        return f"cannot save to {self.path}: {self.reason} ({room})"


def no_space(exc: BaseException, store: Path, output: Path) -> NoSpace | None:
    """The NoSpace that `exc` means, or None when it is some other error (which must not be hidden)."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
        return NoSpace(Path(exc.filename) if exc.filename else output, exc.strerror or str(exc))
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (_SQLITE_FULL, _SQLITE_IOERR):
            return NoSpace(store, str(exc))
    return None


def no_space_in(exc: BaseException, store: Path, output: Path) -> NoSpace | None:
    """`no_space` for an error that may come wrapped in a task group's exception group: found when every error in
    it means a full disk (anything else must still be raised)."""
    if isinstance(exc, BaseExceptionGroup):
        found = [no_space_in(inner, store, output) for inner in exc.exceptions]
        return found[0] if found and all(problem is not None for problem in found) else None
    return no_space(exc, store, output)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count:,} bytes"
    value = float(count)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:.1f} {unit}"
