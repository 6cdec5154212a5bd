"""The append-only ``results.jsonl`` of an eval run, and resuming from it.

Each finished episode is one line, written durably as soon as it finishes, so a killed run loses
at most the episodes in flight. It is a :class:`~vseek_env.jsonl_store.JsonlStore` keyed by
``key`` (``sample_id#repeat``): a torn last line is dropped and reported, never a crash. A key is
finished when its latest record has ``status="ok"`` and was played on the sample as it is now
(its ``sample_hash``, see :func:`sample_hash`); failed and stale ones run again.

Example:
    >>> store = ResultsFile(Path("runs/x/results.jsonl"))                  # doctest: +SKIP
    >>> done = store.finished_keys({"q1#0": "3f2a..."})                    # doctest: +SKIP
    >>> store.append({"key": "q1#0", "status": "ok", "sample_hash": "3f2a..."})   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

from vseek_env.jsonl_store import JsonlStore


def sample_hash(sample) -> str:
    """A digest of everything a sample says (question, answer, video, prompt, ...): a changed
    dataset row gets a new one, so its old results are not resumed.

    >>> import dataclasses
    >>> from vseek_env.data import Sample
    >>> a = Sample(id="q", video="a.mp4", question="?", answer="A", options=("x", "y"))
    >>> sample_hash(a) == sample_hash(dataclasses.replace(a, answer="B"))
    False
    """
    text = json.dumps(sample.to_dict(), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ResultsFile(JsonlStore):
    """Read, repair and append the per-episode records of one run."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, key="key")

    def finished_keys(self, hashes: Mapping[str, str] | None = None) -> set[str]:
        """Keys whose latest record is ``ok``; with ``hashes`` (key -> :func:`sample_hash`), only
        those played on the same sample content."""
        return {k for k, r in self.latest().items()
                if r.get("status") == "ok" and (hashes is None or r.get("sample_hash") == hashes.get(k))}
