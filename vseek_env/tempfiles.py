"""Temporary siblings for atomic writes, named by their owner so a rerun can clean a killed one's.

Every atomic write here goes through a temporary file or folder next to its target, renamed into
place when complete. A process killed in between leaves that temporary behind; its name records
the host and process id (``.<target>.tmp-<host>-<pid>-<token>``), so the next writer of the same
target removes the leftovers of processes of this host that are gone, and never those of a live
one (a concurrent build) or of another host (a shared cache folder on NFS).

Example:
    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "samples.jsonl"
    >>> tmp = temp_path(target)
    >>> tmp.name.startswith(".samples.jsonl.tmp-"), clean_stale_temps(target)
    (True, [])
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from pathlib import Path

__all__ = ["clean_stale_temps", "temp_path"]

_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"


def temp_path(target: str | os.PathLike, kind: str = "tmp") -> Path:
    """A fresh, unique sibling name for ``target``'s temporary (``kind`` is ``tmp`` or ``old``)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{kind}-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def clean_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove ``target``'s temporaries left by dead processes of this host; returns what was removed."""
    target = Path(target)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:tmp|old)-{re.escape(_HOST)}-(\d+)-[0-9a-f]+")
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or _alive(int(m.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OverflowError:
        return False
    return True
