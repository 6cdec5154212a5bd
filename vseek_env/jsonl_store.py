"""The one append-only JSONL store: eval results and pipeline manifests.

One JSON object per line, each written with a single ``write`` on an ``O_APPEND`` descriptor and
fsynced, so a killed process leaves at most one torn last line. Reading never crashes on what a
kill or an editor left behind:

* a torn last line (no trailing newline) is dropped, reported once with a warning, and cut off
  before the next append, so appends always start on a fresh line;
* a corrupt line elsewhere (not JSON, not an object, no key) is skipped and reported with its line
  number; its record is redone by whoever resumes;
* every other record is kept, so a resumed run keeps all finished work.

Records are keyed by one field (``key`` for eval results, ``id`` for manifests); a later record of
a key wins.

Example:
    >>> import tempfile, pathlib
    >>> store = JsonlStore(pathlib.Path(tempfile.mkdtemp()) / "r.jsonl", key="key")
    >>> store.append({"key": "a", "status": "ok"})
    >>> with open(store.path, "a") as fh:
    ...     _ = fh.write('{"key": "b", "sta')                        # killed mid-write
    >>> sorted(store.latest())
    ['a']
    >>> store.repair() > 0, store.path.read_text()
    (True, '{"key": "a", "status": "ok"}\\n')
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path
from typing import Iterable

from vseek_env.tempfiles import clean_stale_temps, temp_path

__all__ = ["JsonlStore", "atomic_write_bytes"]


class JsonlStore:
    """An append-only JSONL file of records keyed by ``record[key]``; safe from several threads."""

    def __init__(self, path: str | os.PathLike, key: str = "key") -> None:
        self.path = Path(path)
        self.key = key
        self._lock = threading.Lock()
        self._reported: set[str] = set()
        #: What the last read dropped: ``"path:line: why"`` strings (also reported as warnings).
        self.dropped: list[str] = []

    def records(self) -> list[dict]:
        """Every valid record in file order; a torn or corrupt line is skipped and reported."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        end = raw.rfind(b"\n") + 1
        dropped = []
        if end < len(raw):
            dropped.append(f"{self.path}: a torn last line ({len(raw) - end} bytes, an interrupted write) is "
                           "ignored; its record will be redone")
        out = []
        for lineno, line in enumerate(raw[:end].split(b"\n")[:-1], 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                row = None
            if isinstance(row, dict) and self.key in row:
                out.append(row)
            else:
                dropped.append(f"{self.path}:{lineno}: not a JSON record with {self.key!r}; skipped, its work will be redone")
        self.dropped = dropped
        self._report(dropped)
        return out

    def latest(self) -> dict[str, dict]:
        """The last record of every key (keys as strings), in order of first appearance."""
        return {str(r[self.key]): r for r in self.records()}

    def repair(self) -> int:
        """Cut a torn last line so that appends start on a fresh line; the bytes cut."""
        with self._lock:
            return self._repair()

    def _repair(self) -> int:
        try:
            fh = open(self.path, "rb+")
        except FileNotFoundError:
            return 0
        with fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return 0
            fh.seek(0)
            data = fh.read()
            keep = data.rfind(b"\n") + 1
            fh.truncate(keep)
        self._report([f"{self.path}: cut a torn last line ({size - keep} bytes) left by an interrupted write"])
        return size - keep

    def append(self, record: dict) -> None:
        """Write one record as one line, durably (one ``write`` + ``fsync``)."""
        if self.key not in record:
            raise KeyError(f"a record of {self.path} needs a {self.key!r} field")
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._repair()  # a line appended after a torn one would be lost with it
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def compact(self, order: Iterable[str]) -> None:
        """Rewrite the file atomically with one record per key, keys in ``order`` first (then by key)."""
        with self._lock:
            records = self.latest()
            rank = {str(k): i for i, k in enumerate(order)}
            keys = sorted(records, key=lambda k: (rank.get(k, len(rank)), k))
            data = "".join(json.dumps(records[k], sort_keys=True, ensure_ascii=False) + "\n" for k in keys)
            atomic_write_bytes(self.path, data.encode("utf-8"))

    def close(self) -> None:
        """Nothing stays open between appends; kept so callers can treat the store as a resource."""

    def _report(self, problems: list[str]) -> None:
        for problem in problems:
            if problem not in self._reported:  # once per store, not on every read
                self._reported.add(problem)
                warnings.warn(problem, UserWarning, stacklevel=3)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
