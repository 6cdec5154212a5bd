"""The append-only ``results.jsonl`` of an eval run, and resuming from it.

Each finished episode is one line, flushed as soon as it is written, so a killed run loses at most
the episodes in flight. On resume, a torn last line (the process died mid-write) is cut off, the
keys whose latest record has ``status="ok"`` are skipped, and failed ones run again.

Example:
    >>> store = ResultsFile(Path("runs/x/results.jsonl"))                  # doctest: +SKIP
    >>> done = store.finished_keys()
    >>> store.append({"key": "q1#0", "status": "ok", ...})
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class ResultsFile:
    """Read, repair and append the per-episode records of one run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fh = None

    def records(self) -> list[dict]:
        """Every valid record in file order (a torn or corrupt line is skipped)."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and "key" in row:
                    out.append(row)
        return out

    def latest(self) -> dict[str, dict]:
        """The last record of every key."""
        return {r["key"]: r for r in self.records()}

    def finished_keys(self) -> set[str]:
        return {k for k, r in self.latest().items() if r.get("status") == "ok"}

    def repair(self) -> int:
        """Cut a torn last line (no trailing newline) so appends start on a fresh line; bytes cut."""
        if not self.path.exists():
            return 0
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if not data or data.endswith(b"\n"):
                return 0
            keep = data.rfind(b"\n") + 1
            fh.truncate(keep)
            return len(data) - keep

    def append(self, record: dict) -> None:
        """Write one record as one line and flush it (safe from several threads)."""
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8")
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
