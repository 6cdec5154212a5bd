"""File loaders: the native format (JSONL, JSON array, Parquet; one Sample per row) and V2P-Bench.

A ``.jsonl`` / ``.json`` file whose first row has V2P-Bench's fields (``video_id``, ``video_path``,
``frame_path``, ... and no ``id``) is read by :func:`vseek_env.data.v2p.load_v2p`.
"""

from __future__ import annotations

import json
from pathlib import Path

from vseek_env.data.datasets import Dataset, read_samples
from vseek_env.data.sample import Sample, SampleError


def load_file(path: Path) -> Dataset:
    """Load a native dataset file; the format follows the suffix. Errors name the file."""
    try:
        return _load_file(path)
    except UnicodeDecodeError as exc:
        raise SampleError(f"{path}: not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise SampleError(f"{path}: not valid JSON ({exc})") from None


def _load_file(path: Path) -> Dataset:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json") and _looks_like_v2p(path):
        from vseek_env.data.v2p import load_v2p

        return load_v2p(path)
    if suffix == ".jsonl":
        samples = list(read_samples(path))
    elif suffix == ".json":
        with open(path, encoding="utf-8") as fh:
            rows = json.load(fh)
        if not isinstance(rows, list):
            raise SampleError(f"{path}: a .json dataset must be an array of sample objects")
        samples = [_row(path, i, r) for i, r in enumerate(rows)]
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("reading Parquet needs pyarrow: pip install 'vseek-env[parquet]'") from None
        rows = pq.read_table(path).to_pylist()
        samples = [_row(path, i, {k: v for k, v in r.items() if v is not None}) for i, r in enumerate(rows)]
    else:
        raise ValueError(f"{path}: unknown dataset format {suffix!r}; use .jsonl, .json or .parquet")
    if not samples:
        raise SampleError(f"{path}: no samples in this file")
    return Dataset(path.stem, samples, root=path.parent)


def _looks_like_v2p(path: Path) -> bool:
    """Peek at the first row: V2P-Bench rows carry its fields and no ``id``."""
    from vseek_env.data.v2p import is_v2p_row

    with open(path, encoding="utf-8") as fh:
        head = fh.read(1 << 16)
    stripped = head.lstrip()
    if stripped.startswith("["):
        # Decode just the first object of the array.
        try:
            row, _ = json.JSONDecoder().raw_decode(stripped[1:].lstrip())
        except json.JSONDecodeError:
            return False
    else:
        line = next((ln for ln in head.splitlines() if ln.strip()), "")
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            return False
    return is_v2p_row(row)


def _row(path: Path, index: int, row: dict) -> Sample:
    if not isinstance(row, dict):
        raise SampleError(f"{path} row {index}: a sample row must be a JSON object, got {type(row).__name__}")
    try:
        for key in ("prompt", "track", "meta"):
            if isinstance(row.get(key), str):  # Parquet exports store nested objects as JSON text
                row[key] = json.loads(row[key])
    except json.JSONDecodeError as exc:
        raise SampleError(f"{path} row {index}: field {key!r} is not valid JSON ({exc})") from None
    try:
        return Sample.from_dict(row)
    except SampleError as exc:
        raise SampleError(f"{path} row {index}: {exc}") from None
