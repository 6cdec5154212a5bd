"""Paths from data are literal local regular files: the one way the project opens them.

Example:
    >>> with open_regular_file(__file__) as fh:
    ...     len(fh.read(3))
    3
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class NotARegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder."""


def open_regular_file(path: str | os.PathLike, *, buffering: int = -1) -> BinaryIO:
    """``path`` opened for binary reading, only if it is a regular file.

    Opened non-blocking (a FIFO with no writer must not wait), checked with ``fstat``, then made
    blocking again. Raises :class:`NotARegularFile`, or the ``OSError`` / ``ValueError`` (a NUL byte
    in the name) of the open itself; callers turn these into their own errors.
    """
    fd = os.open(Path(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{path}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise
