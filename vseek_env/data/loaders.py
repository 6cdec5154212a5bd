"""File loaders: the native format (JSONL, JSON array, Parquet; one Sample per row)."""

from __future__ import annotations

import json
from pathlib import Path

from vseek_env.data.datasets import Dataset, read_samples
from vseek_env.data.sample import Sample, SampleError


def load_file(path: Path) -> Dataset:
    """Load a native dataset file; the format follows the suffix."""
    suffix = path.suffix.lower()
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
    return Dataset(path.stem, samples, root=path.parent)


def _row(path: Path, index: int, row: dict) -> Sample:
    for key in ("prompt", "track", "meta"):
        if isinstance(row.get(key), str):  # Parquet exports store nested objects as JSON text
            row[key] = json.loads(row[key])
    try:
        return Sample.from_dict(row)
    except SampleError as exc:
        raise SampleError(f"{path} row {index}: {exc}") from None
