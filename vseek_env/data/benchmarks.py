"""Published benchmarks as dataset specs: ``videomme:PATH``, ``longvideobench:PATH``, ``longvt:PATH``,
``videorefer:PATH`` and ``v2p:PATH``.

Each benchmark module reads its published annotation file into :class:`Sample`s whose ``meta`` holds
``benchmark`` (the name) and ``categories`` (the benchmark's own grouping fields: duration group,
task type, ...), which ``vseek eval`` reports per category. Each also exposes its official scoring
rule (``official_verdict``) and ``CATEGORY_FIELDS``.

Example:
    >>> split_spec("videomme:/data/Video-MME/videomme/test-00000-of-00001.parquet")
    ('videomme', '/data/Video-MME/videomme/test-00000-of-00001.parquet')
    >>> split_spec("synth:default") is None
    True
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from vseek_env.data.datasets import Dataset

# name -> module under vseek_env.data
BENCHMARKS: dict[str, str] = {
    "v2p": "v2p", "videomme": "videomme", "longvideobench": "longvideobench", "longvt": "longvt",
    "videorefer": "videorefer",
}
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
_OPTION_LABEL = re.compile(r"^\s*\(?([A-Z])\s*[.:)]\s*")


def split_spec(spec: str) -> tuple[str, str] | None:
    """``(benchmark, path)`` for a ``name:PATH`` spec of a known benchmark, else None."""
    name, sep, path = spec.partition(":")
    if sep and name.lower() in BENCHMARKS and path:
        return name.lower(), path
    return None


def benchmark_module(name: str) -> ModuleType:
    """The module of benchmark ``name`` (``load``, ``official_verdict``, ``CATEGORY_FIELDS``)."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return importlib.import_module(f"vseek_env.data.{BENCHMARKS[name]}")


def load_benchmark(spec: str) -> Dataset:
    """Load a ``name:PATH`` spec; the path may be the annotation file or its folder."""
    parsed = split_spec(spec)
    if parsed is None:
        raise ValueError(f"{spec!r} is not a benchmark spec; use one of {[f'{n}:PATH' for n in BENCHMARKS]}")
    name, path = parsed
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{name}: no such file or folder {str(p)!r} (see README, 'Benchmarks')")
    return benchmark_module(name).load(p)


def strip_option_label(text: Any) -> str:
    """``"A. cat"``, ``"(B) dog"``, ``"C: fish"`` -> the option text."""
    return _OPTION_LABEL.sub("", str(text), count=1).strip()


def default_root(base: Path, given: str | Path | None, *names: str) -> Path:
    """``given``, else the first of ``base/<name>`` that is a folder, else ``base``."""
    if given is not None:
        return Path(given)
    for name in names:
        if (base / name).is_dir():
            return base / name
    return base


def resolve(root: Path | None, rel: str) -> str:
    """``rel`` under ``root`` unless it is absolute (a path from data stays a literal local path)."""
    return str(Path(rel) if Path(rel).is_absolute() or root is None else root / rel)


def category_meta(benchmark: str, row: dict, fields: tuple[str, ...], **extra: Any) -> dict:
    """The ``meta`` of a benchmark sample: its name, its categories (present fields only) and ``extra``."""
    categories = {f: row[f] for f in fields if row.get(f) not in (None, "")}
    return {"benchmark": benchmark, "categories": categories, "prompt_style": "none", **extra}


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a JSON array, JSONL or Parquet file; errors name the file."""
    from vseek_env.data.datasets import iter_json_rows
    from vseek_env.data.sample import SampleError

    path = Path(path)
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("reading Parquet needs pyarrow: pip install 'vseek-env[parquet]'") from None
        return pq.read_table(path).to_pylist()
    try:
        return [row for _, row in iter_json_rows(path)]
    except UnicodeDecodeError as exc:
        raise SampleError(f"{path}: not UTF-8 text ({exc})") from None


def find_file(path: Path, candidates: tuple[str, ...], benchmark: str) -> Path:
    """``path`` itself, or the first of ``candidates`` (globs) inside the folder ``path``."""
    if path.is_file():
        return path
    for pattern in candidates:
        found = sorted(path.glob(pattern))
        if found:
            return found[0]
    raise FileNotFoundError(f"{benchmark}: no annotation file in {str(path)!r} (looked for {', '.join(candidates)})")


def build_dataset(name: str, path: Path, rows: list[dict], to_sample, root: Path) -> Dataset:
    """Samples from rows with ``to_sample(row, index)``; a bad row raises naming the file and row."""
    from vseek_env.data.sample import SampleError

    samples = []
    for index, row in enumerate(rows):
        try:
            samples.append(to_sample(row, index))
        except SampleError as exc:
            raise SampleError(f"{path} row {index}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise SampleError(f"{path} row {index}: not a {name} row ({type(exc).__name__}: {exc})") from None
    if not samples:
        raise SampleError(f"{path}: no {name} questions in this file")
    return Dataset(f"{name}:{path.stem}", samples, root=root)


def score_responses(name: str, rows: list[dict], *, mode: str = "tool", response_key: str | None = None,
                    judge: Any = None) -> dict:
    """Score a response file of benchmark ``name`` (its rows, each with the model's reply).

    Returns ``benchmark``, ``response_key``, ``official`` (the benchmark's own rule: ``overall`` and
    ``per_<category>`` tallies; ``scored_accuracy`` is its number where the rule drops unanswered
    rows, ``accuracy`` otherwise) and, for multiple-choice benchmarks, ``paper`` (VideoSeeker's rule
    in ``mode``, same layout). LongVT adds ``grading`` (which step decided each row: ``rule``,
    ``judge``, ``judge_fallback``); LongVideoBench adds ``random_fallbacks``.
    """
    from collections import Counter

    from vseek_env.evaluation.scoring import paper_correct, tally_by

    module = benchmark_module(name)
    rows = module.flatten_rows(rows) if hasattr(module, "flatten_rows") else list(rows)
    key = response_key or module.RESPONSE_KEY
    missing = [i for i, r in enumerate(rows) if key not in r]
    if missing:
        raise ValueError(f"{name}: row(s) {missing[:5]} have no {key!r} field (pass the field holding the reply)")
    fields = module.CATEGORY_FIELDS
    out: dict = {"benchmark": name, "response_key": key, "n": len(rows)}
    if name == "longvt":
        counts: Counter = Counter()
        verdicts = [module.official_verdict(r, r[key], judge=judge, counts=counts) for r in rows]
        out["grading"] = {k: counts.get(k, 0) for k in ("rule", "judge", "judge_fallback")}
    else:
        verdicts = [module.official_verdict(r, r[key]) for r in rows]
    if name == "longvideobench":
        choices = [[chr(65 + i) for i in range(len(module.candidates(r)))] for r in rows]
        out["random_fallbacks"] = sum(module.official_letter(r[key], c, r.get("id"))[1] for r, c in zip(rows, choices))
    out["official"] = tally_by(zip(rows, verdicts), fields)
    if name != "longvt":
        out["paper_mode"] = mode
        out["paper"] = tally_by(((r, paper_correct(r[key], module.truth_letter(r), mode)) for r in rows), fields)
    return out
