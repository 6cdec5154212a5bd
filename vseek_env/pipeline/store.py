"""Crash-safe per-stage manifests: one JSON line per sample, appended atomically.

A manifest ``OUT/manifests/<stage>.jsonl`` holds one record per processed sample::

    {"id": "q7", "kept": true, "reason": "", "data": {...the item after this stage...}}
    {"id": "q8", "kept": false, "reason": "g1.rule: counting"}

It is a :class:`~vseek_env.jsonl_store.JsonlStore` keyed by ``id`` (the same store as eval
results): a killed run leaves at most one torn last line, which :meth:`Manifest.load` drops,
reports and cuts off; a corrupt line is skipped and reported, and its sample is redone. A sample is
finished for a stage exactly when its record is in the manifest, which is what makes re-runs skip
work.

Example:
    >>> import tempfile, pathlib
    >>> m = Manifest(pathlib.Path(tempfile.mkdtemp()) / "g1.jsonl")
    >>> m.append({"id": "a", "kept": True, "reason": "", "data": {"x": 1}})
    >>> sorted(m.load())
    ['a']
"""

from __future__ import annotations

from pathlib import Path

from vseek_env.jsonl_store import JsonlStore, atomic_write_bytes

__all__ = ["Manifest", "atomic_write_bytes"]


class Manifest(JsonlStore):
    """Append-only JSONL of stage records keyed by sample id."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, key="id")

    def load(self) -> dict[str, dict]:
        """Records by id (a later record for the same id wins); cuts a torn last line off."""
        self.repair()
        return self.latest()
