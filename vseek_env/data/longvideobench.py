"""LongVideoBench: its annotation file as Samples, and its official answer rule.

A row of ``lvb_val.json`` (Hugging Face ``longvideobench/LongVideoBench``; a JSON array)::

    {"id": "86CxyhFV9MI_0", "video_id": "86CxyhFV9MI", "video_path": "86CxyhFV9MI.mp4",
     "question": "...", "candidates": ["...", "...", "..."], "correct_choice": 1,
     "duration_group": 600, "duration": 472.3, "question_category": "T3O",
     "topic_category": "NP-News-Programs", "level": "L2-Relation", "subtitle_path": "..."}

The lmms-eval form with ``option0`` ... ``option4`` (``"N/A"`` for absent ones) instead of
``candidates`` is read too. Videos are ``video_path`` under ``videos/`` next to the file. Questions
have no visual prompt; subtitles are not used (the paper evaluates the video modality only).

The official rule (lmms-eval ``parse_multi_choice_response``, as in the LongVideoBench paper): strip
the response, delete a few answer prefixes, read the first of A-E; when nothing is found the script
assigns a *random* option. Here that random option is drawn from a generator seeded by the question
id (reproducible) and the number of such rows is reported as ``random_fallbacks``.

Example:
    >>> official_letter("The best answer is D. A book", ["A", "B", "C", "D"])
    ('D', False)
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Sequence

from vseek_env.data.benchmarks import build_dataset, category_meta, default_root, find_file, read_rows, resolve
from vseek_env.data.datasets import Dataset
from vseek_env.data.sample import Sample, SampleError, option_letters

NAME = "longvideobench"
CATEGORY_FIELDS = ("duration_group", "question_category", "topic_category", "level")
RESPONSE_KEY = "response"
_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
             "The best option is", "The correct option is", "Best answer:", "Best option:")


def candidates(row: dict) -> list[str]:
    """The options of a row: ``candidates``, else ``option0`` .. ``option4`` up to the first ``"N/A"``."""
    if row.get("candidates") is not None:
        value = row["candidates"]
        if isinstance(value, str):
            import ast

            value = ast.literal_eval(value)
        return [str(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    out = []
    for i in range(5):
        option = row.get(f"option{i}")
        if option is None or option == "N/A":
            break
        out.append(str(option))
    return out


def truth_letter(row: dict) -> str:
    return chr(ord("A") + int(row["correct_choice"]))


def official_letter(response: Any, choices: Sequence[str], seed: Any = 0) -> tuple[str, bool]:
    """``(letter, guessed)``: LongVideoBench's reading; ``guessed`` when it fell back to a random option."""
    s = str(response).strip() if response is not None else ""
    for prefix in _PREFIXES:
        s = s.replace(prefix, "")
    # The script's "more than 10 words and no A-E" test is implied by "no A-E at all".
    m = re.search(r"[ABCDE]", s)
    if m is None:
        return random.Random(str(seed)).choice(list(choices)), True
    return m[0], False


def official_verdict(row: dict, response: Any) -> bool:
    """Correct or not under the official rule (a random option when nothing is read)."""
    choices = option_letters(len(candidates(row)))
    letter, _ = official_letter(response, choices, seed=row.get("id"))
    return letter == truth_letter(row)


def episode_verdict(sample: Sample, response: str, answer: str | None, judge: Any = None) -> bool:
    """The official rule on an env episode: it reads the answer text (the whole reply if none)."""
    text = answer if answer is not None else response
    letter, _ = official_letter(text, option_letters(len(sample.options)), seed=sample.id)
    return letter == str(sample.answer)


def row_to_sample(row: dict, index: int, videos_root: Path) -> Sample:
    sample_id = str(row.get("id") or f"{row.get('video_id')}_{index}")
    options = tuple(candidates(row))
    if not options:
        raise SampleError(f"LongVideoBench question {sample_id!r} has no candidates")
    try:
        answer = truth_letter(row)
    except (KeyError, TypeError, ValueError):
        raise SampleError(f"LongVideoBench question {sample_id!r}: correct_choice {row.get('correct_choice')!r} is not an index") from None
    if answer not in option_letters(len(options)):
        raise SampleError(f"LongVideoBench question {sample_id!r}: correct_choice {row['correct_choice']!r} is out of range")
    duration = row.get("duration")
    return Sample(
        id=sample_id, video=resolve(videos_root, str(row["video_path"])), question=str(row["question"]).strip(),
        answer=answer, answer_kind="choice", options=options, dimension=row.get("question_category"),
        source="LongVideoBench", duration=float(duration) if duration is not None else None,
        meta=category_meta(NAME, row, CATEGORY_FIELDS, video_id=row.get("video_id")),
    )


def load(path: str | Path, *, videos_root: str | Path | None = None) -> Dataset:
    """Load LongVideoBench from ``lvb_val.json`` (or the folder holding it)."""
    path = find_file(Path(path), ("lvb_val.json", "lvb_*.json", "*.json", "*.parquet"), NAME)
    vroot = default_root(path.parent, videos_root, "videos")
    return build_dataset(NAME, path, read_rows(path), lambda row, i: row_to_sample(row, i, vroot), path.parent)
