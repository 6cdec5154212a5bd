"""Resolve a dataset spec to samples: a registered name (``synth:default``), a file, or a list.

Example:
    >>> ds = load_dataset("synth:tiny")                          # doctest: +SKIP
    >>> ds.samples[0].id, ds.video_path(ds.samples[0])           # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from vseek_env.data.sample import Sample, SampleError


def cache_dir() -> Path:
    """Where generated data lives: ``$VSEEK_CACHE_DIR``, else ``$XDG_CACHE_HOME/vseek_env``, else ``~/.cache/vseek_env``."""
    if os.environ.get("VSEEK_CACHE_DIR"):
        return Path(os.environ["VSEEK_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vseek_env"


@dataclass
class Dataset:
    """Samples plus the directory relative video paths are resolved against."""

    name: str
    samples: list[Sample]
    root: Path | None = None

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError(f"dataset {self.name!r} has no samples")
        self._by_id = {}
        for s in self.samples:
            if s.id in self._by_id:
                raise SampleError(f"dataset {self.name!r}: duplicate sample id {s.id!r}")
            self._by_id[s.id] = s

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, sample_id: str) -> Sample:
        try:
            return self._by_id[sample_id]
        except KeyError:
            raise KeyError(f"dataset {self.name!r} has no sample {sample_id!r}") from None

    def video_path(self, sample: Sample) -> Path:
        return sample.video_path(self.root)

    def resolve(self, path: str | None) -> Path | None:
        if path is None:
            return None
        p = Path(path)
        return p if p.is_absolute() or self.root is None else self.root / p


# name -> builder(cache_dir) returning the path of the built samples file
_BUILDERS: dict[str, Callable[[Path], Path]] = {}


def register_dataset(name: str, builder: Callable[[Path], Path]) -> None:
    """Make ``load_dataset(name)`` build (once, cached) and load a dataset."""
    _BUILDERS[name] = builder


def available_datasets() -> list[str]:
    _ensure_builtin()
    return sorted(_BUILDERS)


def _ensure_builtin() -> None:
    if not any(name.startswith("synth:") for name in _BUILDERS):
        from vseek_env.data import synthetic  # noqa: F401  (registers synth:*)


def load_dataset(spec: str | os.PathLike | Dataset | Sequence[Sample]) -> Dataset:
    """A :class:`Dataset` from a registered name, a benchmark spec (``videomme:PATH``, see
    :mod:`vseek_env.data.benchmarks`), a JSONL / JSON / Parquet file, or samples."""
    if isinstance(spec, Dataset):
        return spec
    if isinstance(spec, (list, tuple)):
        return Dataset("<in-memory>", list(spec))
    spec_str = os.fspath(spec)
    from vseek_env.data.benchmarks import load_benchmark, split_spec

    if split_spec(spec_str) is not None:  # videomme:PATH, longvideobench:PATH, ...
        return load_benchmark(spec_str)
    _ensure_builtin()
    if spec_str in _BUILDERS:
        path = _BUILDERS[spec_str](cache_dir())
        return Dataset(spec_str, list(read_samples(path)), root=path.parent)
    path = Path(spec_str).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"dataset {spec_str!r} is neither a registered name ({', '.join(available_datasets())}) nor an existing file"
        )
    if path.is_dir():
        path = path / "samples.jsonl"
    from vseek_env.data.loaders import load_file

    return load_file(path)


_BOM = b"\xef\xbb\xbf"


def _utf8(data: bytes, where: str) -> str:
    """``data`` as UTF-8 text, or a :class:`SampleError` naming ``where`` and the bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SampleError(f"{where}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 4]!r}); "
                          "save the file as UTF-8") from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSONL file (line numbers from 1).

    A line that is not JSON, or not a JSON object, raises :class:`SampleError` naming ``file:line``.

    Example:
        >>> for lineno, row in iter_jsonl("samples.jsonl"):          # doctest: +SKIP
        ...     print(lineno, row["id"])
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = _utf8(raw[3:] if lineno == 1 and raw.startswith(_BOM) else raw, f"{path}:{lineno}")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SampleError(f"{path}:{lineno}: not valid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise SampleError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def iter_json_rows(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """``(position, object)`` for each row of a JSONL file or a JSON array file.

    The form is detected from the first non-blank character (``[`` opens an array). Positions are
    line numbers (JSONL) or array indices; errors are :class:`SampleError` naming the file and row.
    """
    with open(path, "rb") as fh:
        head = b""
        while chunk := fh.read(4096):
            if chunk.strip():
                head = chunk.removeprefix(_BOM).lstrip()
                break
    if not head.startswith(b"["):
        yield from iter_jsonl(path)
        return
    try:
        data = Path(path).read_bytes()
        rows = json.loads(_utf8(data.removeprefix(_BOM), str(path)))
    except json.JSONDecodeError as exc:
        raise SampleError(f"{path}: not a valid JSON array ({exc})") from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SampleError(f"{path} item {i}: expected a JSON object, got {type(row).__name__}")
        yield i, row


def read_samples(path: Path) -> Iterable[Sample]:
    """Samples from a native JSONL file; errors name the file and line."""
    for lineno, row in iter_jsonl(path):
        try:
            yield Sample.from_dict(row)
        except SampleError as exc:
            raise SampleError(f"{path}:{lineno}: {exc}") from None


def write_samples(path: Path, samples: Iterable[Sample]) -> None:
    """Write samples as JSONL (sorted keys, so equal samples give identical bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(s.to_dict(), sort_keys=True, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
