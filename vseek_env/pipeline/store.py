"""Crash-safe per-stage manifests: one JSON line per sample, appended atomically.

A manifest ``OUT/manifests/<stage>.jsonl`` holds one record per processed sample::

    {"id": "q7", "kept": true, "reason": "", "data": {...the item after this stage...}}
    {"id": "q8", "kept": false, "reason": "g1.rule: counting"}

Each record is written with a single ``write`` on an ``O_APPEND`` descriptor and fsynced, so a
killed run leaves at most one torn last line; :meth:`Manifest.load` drops it (and truncates the
file back to the last full line) so that the next append starts clean. A sample is finished for a
stage exactly when its record is in the manifest, which is what makes re-runs skip work.

Example:
    >>> import tempfile, pathlib
    >>> m = Manifest(pathlib.Path(tempfile.mkdtemp()) / "g1.jsonl")
    >>> m.append({"id": "a", "kept": True, "reason": "", "data": {"x": 1}})
    >>> sorted(m.load())
    ['a']
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Iterable

__all__ = ["Manifest", "atomic_write_bytes"]


class Manifest:
    """Append-only JSONL of stage records keyed by sample id."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self) -> dict[str, dict]:
        """Records by id (a later record for the same id wins); repairs a torn last line."""
        if not self.path.exists():
            return {}
        raw = self.path.read_bytes()
        end = raw.rfind(b"\n") + 1
        if end < len(raw):  # the run was killed mid-write: drop the partial line for good
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
        records: dict[str, dict] = {}
        for lineno, line in enumerate(raw[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise ValueError(
                    f"{self.path}:{lineno} is not valid JSON; the manifest was edited or corrupted — "
                    "delete that line to redo the sample"
                ) from None
            records[str(record["id"])] = record
        return records

    def append(self, record: dict) -> None:
        """Write one record durably (one write + fsync)."""
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def compact(self, order: Iterable[str]) -> None:
        """Rewrite the manifest in ``order`` (input order), one record per id, atomically.

        Local and Ray runs finish records in different orders; compacting makes their files equal.
        """
        records = self.load()
        rank = {sample_id: i for i, sample_id in enumerate(order)}
        ids = sorted(records, key=lambda i: (rank.get(i, len(rank)), i))
        data = "".join(json.dumps(records[i], sort_keys=True, ensure_ascii=False) + "\n" for i in ids)
        atomic_write_bytes(self.path, data.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
