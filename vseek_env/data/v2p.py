"""V2P-Bench: load its dataset files as Samples and score its response files.

A V2P-Bench row (JSONL or a JSON array, e.g. ``dataset_info.jsonl``) looks like::

    {"video_id": "01a1", "video_path": "EgoSchema/01a1.mp4", "duration": 179,
     "question": "What ...?\\nA: ...\\nB: ...\\nC: ...\\nD: ...\\nSelect the best option ...",
     "answer": "D", "source": "EgoSchema", "frame_path": "EgoSchema/01a1.jpg",
     "dimension": 2, "category": 1}

Options are the ``\\nA: text`` lines inside ``question``; the fixed "Select the best option..."
instruction after them is dropped (the env adds its own answer instruction). ``frame_path`` (a
string or a list) is the pre-rendered visual-prompt frame; no frame time and no box are given.
``dimension`` stays the raw integer: the public code's code→name map (:data:`DIMENSIONS_EVAL_PY`)
disagrees with the question contents and the per-dimension counts of the paper's figure for 8 of 12
codes (:data:`DIMENSIONS_BY_CONTENT`), so both maps are exposed and neither is applied.

Example:
    >>> stem, options = parse_v2p_question("Why?\\nA: rain\\nB: sun\\nSelect the best option. Only the letter.")
    >>> stem, options
    ('Why?', ('rain', 'sun'))
    >>> official_correct("B. sun", "B"), robust_letter("The answer is (B).", 2)
    (True, 'B')
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from vseek_env.data.datasets import Dataset, iter_json_rows
from vseek_env.data.sample import Sample, SampleError, VisualPromptSpec, option_letters
from vseek_env.protocol import tag_blocks

# The code -> abbreviation map of V2P-Bench's eval/eval.py (copied by VideoSeeker's eval_all.py).
DIMENSIONS_EVAL_PY: dict[int, str] = {
    1: "OA", 2: "HA", 3: "OD", 4: "FM", 5: "CR", 6: "PU", 7: "CI", 9: "FT", 10: "RT", 12: "AS", 13: "SR", 14: "GC",
}
# The map the question contents and the per-dimension counts of V2P's figs/sta.png support.
DIMENSIONS_BY_CONTENT: dict[int, str] = {
    1: "OA", 2: "HA", 3: "OD", 4: "FM", 5: "FT", 6: "RT", 7: "AS", 9: "SR", 10: "GC", 12: "CR", 13: "PU", 14: "CI",
}
DIMENSION_NAMES: dict[str, str] = {
    "OA": "Object Attribute", "HA": "Human Attribute", "OD": "Object Direction", "FM": "Feature Mapping",
    "CR": "Causal Relationship", "PU": "Plot Understanding", "CI": "Counterfactual Inference",
    "FT": "Forward Temporal", "RT": "Reverse Temporal", "AS": "Action Sequence", "SR": "Spatial Relationship",
    "GC": "General Counting",
}
# V2P's eval.py buckets: durations=[0, 240, 1800, 7200].
DURATION_BUCKETS: tuple[tuple[str, float], ...] = (("short", 240.0), ("medium", 1800.0), ("long", float("inf")))

V2P_FIELDS = ("video_id", "video_path", "question", "answer", "frame_path")
_SUFFIX = re.compile(r"\n\s*Select the best option.*$", re.S | re.I)
_OPTION = re.compile(r"\n\s*([A-Z])\s*[:.)]\s*")


def duration_bucket(seconds: float | None) -> str:
    """``short`` (< 240 s), ``medium`` (< 1800 s) or ``long``, as V2P's eval.py; ``unknown`` if None."""
    if seconds is None:
        return "unknown"
    for name, upper in DURATION_BUCKETS:
        if float(seconds) < upper:
            return name
    return DURATION_BUCKETS[-1][0]


def parse_v2p_question(text: str) -> tuple[str, tuple[str, ...]]:
    """Split a V2P question into its stem and its options (``\\nA: ...`` lines), suffix removed.

    Options must run ``A, B, C, ...`` in order; a question without them gives ``()``.
    """
    body = _SUFFIX.sub("", text).rstrip()
    marks = list(_OPTION.finditer(body))
    # Only a run of A, B, C... counts as options; a stray "\nB:" inside the stem does not.
    start = next((i for i, m in enumerate(marks) if m.group(1) == "A"), None)
    if start is None:
        return body.strip(), ()
    run = [marks[start]]
    for m in marks[start + 1:]:
        if m.group(1) == chr(ord(run[-1].group(1)) + 1):
            run.append(m)
    options = []
    for i, m in enumerate(run):
        end = run[i + 1].start() if i + 1 < len(run) else len(body)
        options.append(body[m.end():end].strip())
    return body[: run[0].start()].strip(), tuple(options)


def is_v2p_row(row: Any) -> bool:
    """True when ``row`` has the V2P-Bench fields and is not a native Sample row."""
    return isinstance(row, dict) and "id" not in row and all(k in row for k in V2P_FIELDS)


def v2p_row_to_sample(row: dict, sample_id: str, *, videos_root: Path | None = None,
                      frames_root: Path | None = None) -> Sample:
    """One V2P-Bench row as a :class:`Sample`; raises :class:`SampleError` naming the sample.

    ``video`` and the prompt image are resolved against ``videos_root`` / ``frames_root``; the raw
    paths, every frame path, ``category`` and both dimension names stay in ``meta``.
    """
    missing = [k for k in V2P_FIELDS if row.get(k) in (None, "", [])]
    if missing:
        raise SampleError(f"V2P sample {sample_id!r} is missing field(s): {', '.join(missing)}")
    stem, options = parse_v2p_question(str(row["question"]))
    if not options:
        raise SampleError(f"V2P sample {sample_id!r}: no '\\nA: ...' option lines found in the question")
    answer = str(row["answer"]).strip().upper()
    if answer not in option_letters(len(options)):
        raise SampleError(f"V2P sample {sample_id!r}: answer {row['answer']!r} is not one of {option_letters(len(options))}")
    frames = row["frame_path"] if isinstance(row["frame_path"], list) else [row["frame_path"]]
    dimension = row.get("dimension")
    try:
        dimension = int(dimension) if dimension is not None else None
    except (TypeError, ValueError):
        raise SampleError(f"V2P sample {sample_id!r}: dimension {dimension!r} is not an integer code") from None

    def resolve(root: Path | None, rel: str) -> str:
        return str(Path(rel) if Path(rel).is_absolute() or root is None else root / rel)

    meta = {
        "benchmark": "v2p",
        "categories": {k: v for k, v in (("dimension", dimension), ("source", row.get("source")),
                                         ("category", row.get("category"))) if v not in (None, "")},
        "video_id": row["video_id"], "video_path": row["video_path"], "frame_paths": list(frames),
        # every marked frame, resolved: view_visual_prompt shows them all (24 of 1,169 rows have several)
        "prompt_images": [resolve(frames_root, str(f)) for f in frames],
        "category": row.get("category"),
        "prompt_style": "unknown",  # V2P ships rendered frames without naming the style
        "dimension_eval_py": DIMENSIONS_EVAL_PY.get(dimension), "dimension_by_content": DIMENSIONS_BY_CONTENT.get(dimension),
    }
    duration = row.get("duration")
    return Sample(
        id=sample_id,
        video=resolve(videos_root, str(row["video_path"])),
        question=stem,
        answer=answer,
        answer_kind="choice",
        options=options,
        prompt=VisualPromptSpec(time=None, image=resolve(frames_root, str(frames[0]))),
        dimension=dimension,
        source=str(row.get("source") or ""),
        duration=float(duration) if duration is not None else None,
        meta=meta,
    )


def read_v2p_rows(path: str | Path) -> list[dict]:
    """The rows of a V2P-Bench file (JSONL, or a JSON array); errors name the file and line."""
    return [row for _, row in iter_json_rows(path)]


def v2p_sample_ids(rows: Iterable[dict]) -> list[str]:
    """Stable ids: ``video_id#k`` for the k-th question (from 0) on that video, in file order."""
    seen: Counter = Counter()
    ids = []
    for row in rows:
        vid = str(row.get("video_id", ""))
        ids.append(f"{vid}#{seen[vid]}")
        seen[vid] += 1
    return ids


def load_v2p(path: str | Path, *, root: str | Path | None = None, videos_root: str | Path | None = None,
             frames_root: str | Path | None = None) -> Dataset:
    """Load a V2P-Bench dataset file as a :class:`Dataset`.

    ``root`` defaults to the file's folder. Videos resolve against ``videos_root`` (default
    ``root/videos`` when that folder exists, else ``root``), frames against ``frames_root``
    (``root/frames`` likewise): the layout of the published data.
    """
    path = Path(path)
    base = Path(root) if root is not None else path.parent

    def default(given, name):
        if given is not None:
            return Path(given)
        return base / name if (base / name).is_dir() else base

    vroot, froot = default(videos_root, "videos"), default(frames_root, "frames")
    rows = read_v2p_rows(path)
    samples = []
    for index, (row, sid) in enumerate(zip(rows, v2p_sample_ids(rows))):
        try:
            samples.append(v2p_row_to_sample(row, sid, videos_root=vroot, frames_root=froot))
        except SampleError as exc:
            raise SampleError(f"{path} row {index}: {exc}") from None
    return Dataset(path.stem, samples, root=base)


def load(path: str | Path) -> Dataset:
    """``v2p:PATH``: the dataset file, or the folder holding ``dataset_info*.json*``."""
    from vseek_env.data.benchmarks import find_file

    return load_v2p(find_file(Path(path), ("dataset_info*.jsonl", "dataset_info*.json", "*.jsonl", "*.json"), "v2p"))


# -- scoring ---------------------------------------------------------------------------------------

NAME = "v2p"
CATEGORY_FIELDS = ("dimension", "source", "category")
RESPONSE_KEY = "response"


def official_verdict(row: dict, response: Any) -> bool:
    """V2P-Bench's rule on a response row (see :func:`official_correct`)."""
    return official_correct(response, str(row.get("answer", "")).strip().upper())


def truth_letter(row: dict) -> str:
    return str(row.get("answer", "")).strip().upper()


def episode_verdict(sample: Sample, response: str, answer: str | None, judge: Any = None) -> bool:
    """The official rule on an env episode: it reads the answer text (the whole reply if none)."""
    return official_correct(answer if answer is not None else response, str(sample.answer))



def official_correct(response: Any, answer: str) -> bool:
    """V2P-Bench's published rule: the response's first character equals the answer letter.

    No stripping, case-sensitive; an empty or non-text response is wrong (eval.py would crash).
    """
    return isinstance(response, str) and len(response) > 0 and response[0] == str(answer)


def robust_letter(response: Any, n_options: int = 4) -> str | None:
    """The option letter a response picks, or None.

    Looks inside the last ``<answer>...</answer>`` when present, then reads the letter with
    :func:`vseek_env.rewards.matching.extract_choice` ("B", "(B)", "B: text", "the answer is B"),
    the same reader the env's reward uses; a response naming several options picks none.

    >>> robust_letter("<answer>(C)</answer>"), robust_letter("It is not D"), robust_letter("maybe C or D")
    ('C', None, None)
    """
    from vseek_env.rewards.matching import extract_choice

    if not isinstance(response, str) or not response.strip():
        return None
    tagged = tag_blocks(response, ("answer",), ignore_case=True)  # linear: responses come from files
    if tagged:
        _, _, start, end, _ = tagged[-1]
        return extract_choice(response[start:end].strip(), n_options)
    return extract_choice(response, n_options)


def _n_options(row: dict) -> int:
    _, options = parse_v2p_question(str(row.get("question", "")))
    return len(options) or 4


def _dimension_key(dim: Any, index: int, problems: list[str]) -> Any:
    """A row's dimension as a grouping key: integer codes as ints, other scalars as they are, and
    anything else (a list, a dict, a 5000-digit number) as its JSON text, noted in ``problems``."""
    if isinstance(dim, (int, float, str)) and not isinstance(dim, bool):
        text = str(dim).strip()
        if text.lstrip("-").isdigit() and len(text) <= 18:
            return int(text)
        if len(text) <= 100:
            return dim
    elif dim is None or isinstance(dim, bool):
        return dim
    key = json.dumps(dim, default=str)[:100]
    problems.append(f"row {index}: dimension {key} is not a code; grouped under that text")
    return key


def _duration_key(duration: Any, index: int, problems: list[str]) -> str:
    """A row's duration bucket; a duration that is not a number of seconds is ``unknown`` (noted)."""
    if duration is None:
        return "unknown"
    if isinstance(duration, str):
        try:
            duration = float(duration)  # "125.4" as text is still seconds
        except ValueError:
            pass
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration):
        problems.append(f"row {index}: duration {str(duration)[:40]!r} is not a number of seconds; bucket 'unknown'")
        return "unknown"
    return duration_bucket(duration)


def score_v2p_responses(rows: Iterable[dict], response_key: str = "response", mode: str = "tool") -> dict:
    """Score V2P-Bench response rows (dataset rows plus ``response``).

    Returns ``n``, ``official_correct`` (first-character rule), ``robust_correct``, the paper's rule
    in ``mode`` (:func:`vseek_env.evaluation.scoring.paper_correct`): ``paper_correct``,
    ``paper_scored`` (rows it could read), ``paper_accuracy`` (correct / scored, the paper's
    denominator) and ``paper_accuracy_all`` (correct / n); the accuracies, ``unanswered`` (no letter
    found by the robust reader), ``per_dimension`` keyed by the raw integer code (as a string in JSON)
    with the same counts, ``per_duration``, ``row_problems`` (rows whose dimension or duration could
    not be read, by index), ``paper_mode`` and both dimension maps.
    """
    from vseek_env.evaluation.scoring import paper_correct

    total = Counter()
    per_dim: dict[Any, Counter] = {}
    per_dur: dict[str, Counter] = {}
    problems: list[str] = []
    for index, row in enumerate(rows):
        answer = str(row.get("answer", "")).strip().upper()
        response = row.get(response_key)
        off = official_correct(response, answer)
        letter = robust_letter(response, _n_options(row))
        rob = letter is not None and letter == answer
        paper = paper_correct(response, answer, mode)
        dim = _dimension_key(row.get("dimension"), index, problems)
        bucket_name = _duration_key(row.get("duration"), index, problems)
        for bucket in (total, per_dim.setdefault(dim, Counter()), per_dur.setdefault(bucket_name, Counter())):
            bucket["n"] += 1
            bucket["official_correct"] += off
            bucket["robust_correct"] += rob
            bucket["unanswered"] += letter is None
            bucket["paper_scored"] += paper is not None
            bucket["paper_correct"] += bool(paper)

    def block(c: Counter) -> dict:
        n = c["n"]
        return {
            "n": n, "official_correct": c["official_correct"], "robust_correct": c["robust_correct"],
            "unanswered": c["unanswered"],
            "official_accuracy": c["official_correct"] / n if n else 0.0,
            "robust_accuracy": c["robust_correct"] / n if n else 0.0,
            "paper_correct": c["paper_correct"], "paper_scored": c["paper_scored"],
            "paper_accuracy": c["paper_correct"] / c["paper_scored"] if c["paper_scored"] else 0.0,
            "paper_accuracy_all": c["paper_correct"] / n if n else 0.0,
        }

    def dim_key(d):
        return (isinstance(d, str), str(d)) if not isinstance(d, int) else (False, f"{d:09d}")

    out = block(total)
    out["per_dimension"] = {str(d): block(per_dim[d]) for d in sorted(per_dim, key=dim_key)}
    out["per_duration"] = {k: block(v) for k, v in per_dur.items()}
    out["paper_mode"] = mode
    out["row_problems"] = problems
    out["dimension_maps"] = {
        "eval_py": {str(k): v for k, v in DIMENSIONS_EVAL_PY.items()},
        "by_content": {str(k): v for k, v in DIMENSIONS_BY_CONTENT.items()},
        "names": DIMENSION_NAMES,
    }
    return out
