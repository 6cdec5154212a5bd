"""Video-MME: its annotation file as Samples, and its official answer rule.

Accepted forms (JSON array, JSONL or Parquet):

- the Hugging Face rows (``lmms-lab/Video-MME``, ``videomme/test-00000-of-00001.parquet``)::

    {"video_id": "001", "videoID": "fFjv93ACGo8", "question_id": "001-1", "duration": "short",
     "domain": "Knowledge", "sub_category": "Humanity & History", "task_type": "Counting Problem",
     "question": "How many ...?", "options": ["A. 4.", "B. 9.", "C. 5.", "D. 13."], "answer": "B"}

- the official results layout (``evaluation/output_test_template.json``): one object per video with
  ``duration_category``, ``video_category``, ``video_subcategory`` and ``questions`` (each with
  ``question_id``, ``task_type``, ``question``, ``choices``, ``answer`` and a model's ``response``).

Videos are ``<videoID>.mp4`` (else ``<video_id>.mp4``) under ``data/`` or ``videos/`` next to the
file (or one folder up, the Hugging Face layout). Questions have no visual prompt.

The official rule (``eval_your_results.py``): strip the response, delete a few answer prefixes, read
the first of A-D; a response of more than 10 words without any of A-D, or with none at all, is
*unanswered* and left out of the denominator. Its prefix list has two missing commas, so
``"The best option is"`` and ``"Best answer:"`` are never removed on their own; that is kept.

Example:
    >>> official_letter("The answer is C."), official_letter("I cannot tell from these frames at all, sorry about that friend")
    ('C', '')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vseek_env.data.benchmarks import (build_dataset, category_meta, default_root, find_file, read_rows, resolve,
                                       strip_option_label)
from vseek_env.data.datasets import Dataset
from vseek_env.data.sample import Sample, SampleError, option_letters

NAME = "videomme"
CATEGORY_FIELDS = ("duration", "domain", "sub_category", "task_type")
RESPONSE_KEY = "response"
# As in eval_your_results.py, including its two missing commas (adjacent strings concatenate).
_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
             "The best option isThe correct option is", "Best answer:Best option:")


def official_letter(response: Any) -> str:
    """Video-MME's reading of a response: a letter A-D, or ``""`` (unanswered)."""
    s = str(response).strip() if response is not None else ""
    for prefix in _PREFIXES:
        s = s.replace(prefix, "")
    if len(s.split()) > 10 and not re.search("[ABCD]", s):
        return ""
    m = re.search(r"[ABCD]", s)
    return m[0] if m else ""


def official_verdict(row: dict, response: Any) -> bool | None:
    """True / False, or None when the official script leaves the row unanswered."""
    letter = official_letter(response)
    return None if letter == "" else letter == str(row.get("answer", "")).strip()


def truth_letter(row: dict) -> str:
    return str(row.get("answer", "")).strip().upper()


def episode_verdict(sample: Sample, response: str, answer: str | None, judge: Any = None) -> bool | None:
    """The official rule on an env episode: it reads the answer text (the whole reply if none)."""
    return official_verdict({"answer": sample.answer}, answer if answer is not None else response)


def flatten_rows(rows: list[dict]) -> list[dict]:
    """Question rows; the per-video results layout is expanded and its field names normalised."""
    flat = []
    for row in rows:
        if isinstance(row.get("questions"), list):
            video = {"video_id": row.get("video_id"), "videoID": row.get("videoID"),
                     "duration": row.get("duration_category", row.get("duration")),
                     "domain": row.get("video_category", row.get("domain")),
                     "sub_category": row.get("video_subcategory", row.get("sub_category"))}
            for q in row["questions"]:
                flat.append({**video, **q, "options": q.get("options", q.get("choices"))})
        else:
            flat.append(row)
    return flat


def _options(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # some exports store the list as its text
        import ast

        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise SampleError(f"options {value[:60]!r} is not a list") from None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise SampleError(f"options must be a non-empty list, got {type(value).__name__}")
    return tuple(strip_option_label(v) for v in value)


def row_to_sample(row: dict, index: int, videos_root: Path) -> Sample:
    sample_id = str(row.get("question_id") or f"{row.get('video_id')}-{index}")
    options = _options(row.get("options"))
    answer = str(row.get("answer", "")).strip().upper()
    if answer not in option_letters(len(options)):
        raise SampleError(f"Video-MME question {sample_id!r}: answer {row.get('answer')!r} is not one of {option_letters(len(options))}")
    video = row.get("videoID") or row.get("video_id")
    if not video:
        raise SampleError(f"Video-MME question {sample_id!r} has no videoID / video_id")
    name = str(video) if str(video).lower().endswith((".mp4", ".mkv", ".webm")) else f"{video}.mp4"
    return Sample(
        id=sample_id, video=resolve(videos_root, name), question=str(row["question"]).strip(), answer=answer,
        answer_kind="choice", options=options, dimension=row.get("task_type"), source="Video-MME",
        meta=category_meta(NAME, row, CATEGORY_FIELDS, video_id=row.get("video_id")),
    )


def load(path: str | Path, *, videos_root: str | Path | None = None) -> Dataset:
    """Load Video-MME from its annotation file (or the folder holding ``videomme/*.parquet``)."""
    path = find_file(Path(path), ("videomme/*.parquet", "*.parquet", "*.json", "*.jsonl"), NAME)
    vroot = default_root(path.parent, videos_root, "data", "videos", "../data", "../videos")
    rows = flatten_rows(read_rows(path))
    return build_dataset(NAME, path, rows, lambda row, i: row_to_sample(row, i, vroot), path.parent)
