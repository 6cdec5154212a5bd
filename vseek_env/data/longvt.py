"""LongVT (VideoSIAH-Eval): its annotation file as open-ended Samples, and its official grading.

A row of the test file (Hugging Face ``longvideotool/VideoSIAH-Eval``, ``test-00000-of-00001.json``,
a JSON array; lmms-eval reads ``video_path``, ``question`` and ``answer``)::

    {"video_path": "videos/abc.mp4", "question": "What does the host hold after ...?", "answer": "a red cup"}

Optional ``id`` / ``question_id`` name the question (else ``<video stem>#k``); any of
:data:`CATEGORY_FIELDS` present is kept as a category. Videos resolve against the file's folder, or
the folder above it when that is where the first ``video_path`` exists (the ``data/`` layout).
Questions have no visual prompt.

The official grading (lmms-eval ``longvt`` task, also VideoSeeker's ``run_evaluation.py``): the
answer is the first ``<answer>...</answer>``, else the last ``\\boxed{...}``, else the trailing number
of the last line that ends with one; one trailing ``.`` is dropped; then a relaxed exact match
(option letters when the truth reads as one, else containment with a 0.9 length ratio, else
equality); when that fails, an LLM judge scores the answer (then the whole response, when it is
under 4,000 characters) and only a full score counts. Here the judge is the project's
(:mod:`vseek_env.rewards.judge`); a failed judge call falls back to the rule's verdict and is
counted as a fallback.

Example:
    >>> extract_answer("<think>..</think><answer>a red cup.</answer>"), extract_answer("So it is 42")
    ('a red cup.', '42')
    >>> relaxed_match("red cup", "a red cup"), relaxed_match("B", "(B) a red cup")
    (0.0, 1.0)
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from vseek_env.data.benchmarks import build_dataset, category_meta, find_file, read_rows, resolve
from vseek_env.data.datasets import Dataset
from vseek_env.data.sample import Sample, SampleError
from vseek_env.protocol import first_tag_content

NAME = "longvt"
CATEGORY_FIELDS = ("question_type", "task_type", "category", "type", "duration_group")
RESPONSE_KEY = "response"
LETTERS = "ABCDEFGH"
_TRAILING_NUMBER = re.compile(r"\b(\d+(?:\.\d+)?)\b(?:\s*\.?\s*$)")
_PHRASES = ("the answer is", "answer is", "the correct answer is", "correct answer is", "the answer", "answer",
            "correct answer", "the correct answer", "the best answer is", "best answer is", "the best answer",
            "best answer", "the option is", "option is", "the correct option is", "correct option is",
            "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select",
            "i pick", "my answer is", "my choice is")
# (suffix after the letter, rank) of the letter forms the official parser looks for; higher wins.
_FORMS = (("(", ")", 6), ("", ".", 5), ("", ":", 4), ("", ")", 3), ("", " ", 2), ("", "-", 1), ("", "_", 1), ("", "=", 1))


def last_boxed(text: str) -> str:
    """The content of the last ``\\boxed{...}`` with balanced braces, or ``""``."""
    found = ""
    start = text.find("\\boxed{")
    while start != -1:
        depth, i = 0, start + len("\\boxed")
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                found = text[start + len("\\boxed{"): i]
                break
            i += 1
        start = text.find("\\boxed{", start + 1)
    return found


def extract_answer(response: str) -> str:
    """The official reading of the answer part of a response (``""`` when none)."""
    inner = first_tag_content(response, "answer")
    if inner is not None:
        return inner
    boxed = last_boxed(response)
    if boxed:
        return boxed
    for line in reversed(response.strip().split("\n")):
        if line.strip():
            number = _TRAILING_NUMBER.search(line)
            if number:
                return number.group(1)
    return ""


def parse_letter(text: str) -> str:
    """The official option-letter reader (A-H): start / end / numbered / phrase / bracket forms,
    best form first, later position breaking ties; any capital A-H as a last resort; ``""`` if none."""
    if not text or not text.strip():
        return ""
    body = text.strip()
    for ch in ",.!?;:'\"":
        body = body.strip(ch)
    body = f" {body} "
    found: list[tuple[int, int, str]] = []  # (rank, position, letter)
    for pre, post, rank in _FORMS:
        for c in LETTERS:
            pos = body.rfind(f"{pre}{c}{post}")
            if pos != -1:
                found.append((rank, pos, c))
    lower = body.lower()
    for phrase in _PHRASES:
        at = lower.find(phrase)
        if at != -1:
            for c in LETTERS:
                pos = body.find(c, at)
                if pos != -1:
                    found.append((7, pos, c))
    for i, c in enumerate(LETTERS):
        if body.strip().startswith(c):
            found.append((10, 0, c))
        if body.strip().endswith(c):
            found.append((9, len(body) - 1, c))
        pos = body.rfind(f"{i + 1}. {c}")
        if pos != -1:
            found.append((8, pos, c))
    if not found:
        found = [(0, body.rfind(c), c) for c in LETTERS if c in body]
    if not found:
        return ""
    return max(found, key=lambda f: (f[0], -f[1]))[2]


def _drop_period(text: str) -> str:
    return (text[:-1] if text.endswith(".") else text).strip()


def relaxed_match(prediction: str, truth: str, portion: float = 0.9) -> float:
    """The official rule-based verdict (1.0 or 0.0) of an extracted prediction."""
    prediction, truth = _drop_period(prediction), _drop_period(truth)
    truth_letter = parse_letter(truth)
    if truth_letter:  # the truth reads as an option letter (as the official parser decides)
        return float(parse_letter(prediction).lower().strip() == truth_letter.lower().strip())
    if prediction in truth and len(prediction) >= portion * len(truth):
        return 1.0
    if truth in prediction and len(truth) >= portion * len(prediction):
        return 1.0
    return float(prediction.strip() == truth.strip())


def grade(question: str, truth: str, response: Any, judge: Any = None, counts: Counter | None = None) -> float:
    """LongVT's verdict (1.0 / 0.0) on a full response, with ``judge`` (an :class:`LLMJudge`) or rules only.

    ``counts`` (if given) gets ``rule``, ``judge`` and ``judge_fallback`` increments: which step
    decided. A judge failure keeps the rule's verdict and is counted on the judge as a fallback.
    """
    counts = counts if counts is not None else Counter()
    text = str(response).strip() if response is not None else ""
    prediction = extract_answer(text)
    if relaxed_match(prediction, str(truth)) == 1.0:
        counts["rule"] += 1
        return 1.0
    if judge is None:
        counts["rule"] += 1
        return 0.0
    for candidate in (prediction, text if len(text) < 4000 else None):
        if candidate is None:
            break
        result = judge.score(question, str(truth), _drop_period(candidate))
        if result.score is None:
            judge.note_fallback()
            counts["judge_fallback"] += 1
            return 0.0
        if result.score >= 1.0:
            counts["judge"] += 1
            return 1.0
    counts["judge"] += 1
    return 0.0


def official_verdict(row: dict, response: Any, judge: Any = None, counts: Counter | None = None) -> bool:
    return grade(str(row.get("question", "")), str(row.get("answer", "")), response, judge, counts) == 1.0


def episode_verdict(sample: Sample, response: str, answer: str | None, judge: Any = None,
                    counts: Counter | None = None) -> bool:
    """The official grading of an env episode's final reply (it finds the answer tag itself);
    ``counts`` gets the step that decided (``rule``, ``judge`` or ``judge_fallback``)."""
    return grade(sample.question, str(sample.answer), response, judge, counts) == 1.0


def truth_letter(row: dict) -> None:
    """None: LongVT is open-ended, so the paper's letter rule does not apply."""
    return None


def row_to_sample(row: dict, index: int, root: Path, seen: Counter) -> Sample:
    video = str(row["video_path"])
    sample_id = row.get("id", row.get("question_id"))
    if sample_id in (None, ""):
        stem = Path(video).stem
        sample_id = f"{stem}#{seen[stem]}"
        seen[stem] += 1
    answer = row.get("answer")
    if answer in (None, ""):
        raise SampleError(f"LongVT question {sample_id!r} has no answer")
    duration = row.get("duration")
    return Sample(
        id=str(sample_id), video=resolve(root, video), question=str(row["question"]).strip(), answer=str(answer),
        answer_kind="open", source="LongVT",
        duration=float(duration) if isinstance(duration, (int, float)) else None,
        meta=category_meta(NAME, row, CATEGORY_FIELDS),
    )


def load(path: str | Path, *, videos_root: str | Path | None = None) -> Dataset:
    """Load LongVT's VideoSIAH-Eval test file (or the folder holding it)."""
    path = find_file(Path(path), ("test-*.json", "data/test-*.json", "*.json", "*.jsonl", "*.parquet"), NAME)
    rows = read_rows(path)
    if videos_root is not None:
        root = Path(videos_root)
    else:  # the Hugging Face layout keeps the file in data/ and video paths relative to the dataset folder
        first = str(rows[0].get("video_path", "")) if rows else ""
        root = next((r for r in (path.parent, path.parent.parent) if first and (r / first).exists()), path.parent)
    seen: Counter = Counter()
    return build_dataset(NAME, path, rows, lambda row, i: row_to_sample(row, i, root, seen), path.parent)
