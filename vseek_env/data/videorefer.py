"""VideoRefer-Bench-Q: its annotation file as Samples with a mask visual prompt, and its official rule.

A row of ``VideoRefer-Bench-Q.json`` (Hugging Face ``DAMO-NLP-SG/VideoRefer-Bench``; a JSON array)::

    {"id": 0, "video": "DAVIS/JPEGImages/480p/aerobatics", "Question": "What is <object3><region> not wearing?",
     "type": "Basic Questions", "options": ["(A) A helmet", "(B) A hat", ...], "Answer": "(A) A helmet",
     "frame_idx": "57", "annotation": [{"0": {"segmentation": RLE}, "57": {"segmentation": RLE}, ...}]}

``video`` is a folder of JPEG frames (DAVIS / MeViS). The env reads video files, so encode each
folder once to ``<folder>.mp4`` at :data:`FRAME_RATE` frames per second (README, "Benchmarks"); a
``video`` that already names a file is used as is. ``annotation`` holds one object per ``<objectN>``
of the question, each a map from frame index to a COCO RLE mask. The visual prompt is the mask of
the first object at ``frame_idx`` (else its first annotated frame), drawn as a numbered
set-of-mark; ``<objectN><region>`` becomes "object N". Only the first object is marked (the
env draws one target): for a question about several objects, ``meta["unmarked_objects"]`` counts
the objects not drawn, so a report can set those questions apart.

The official rule (``eval_videorefer_bench_q.py``): the truth letter is the ``(X)`` in ``Answer``;
the prediction's letter is its first ``(X)``, else its first ``X)``, else its first character
after removing dots; case-insensitive comparison; accuracy per ``type`` and over all rows.

Example:
    >>> official_letter("(B) A hat"), official_letter("b."), official_letter("")
    ('B', 'b', None)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vseek_env.data.benchmarks import (VIDEO_SUFFIXES, build_dataset, category_meta, default_root, find_file,
                                       read_rows, resolve, strip_option_label)
from vseek_env.data.datasets import Dataset
from vseek_env.data.sample import Sample, SampleError, VisualPromptSpec, option_letters

NAME = "videorefer"
CATEGORY_FIELDS = ("type",)
RESPONSE_KEY = "pred"
#: The frame rate the README's ffmpeg command encodes a frame folder with: frame k is at k / FRAME_RATE s.
FRAME_RATE = 24.0
_OBJECT = re.compile(r"<object(\d+)>\s*<region>")


def official_letter(text: Any) -> str | None:
    """The official reading of a prediction (or of ``Answer``); None for an empty one (the script crashes)."""
    s = str(text) if text is not None else ""
    m = re.search(r"\(([A-Z])\)", s) or re.search(r"([A-Z])\)", s)
    if m:
        return m.group(1)
    s = s.replace(".", "")
    return s[0] if s else None


def truth_letter(row: dict) -> str | None:
    return official_letter(row.get("Answer"))


def official_verdict(row: dict, response: Any) -> bool:
    letter, truth = official_letter(response), truth_letter(row)
    return letter is not None and truth is not None and letter.lower() == truth.lower()


def episode_verdict(sample: Sample, response: str, answer: str | None, judge: Any = None) -> bool:
    """The official rule on an env episode: it reads the answer text (the whole reply if none)."""
    return official_verdict({"Answer": f"({sample.answer})"}, answer if answer is not None else response)


def _video_file(video: str) -> str:
    return video if video.lower().endswith(VIDEO_SUFFIXES) else video.rstrip("/") + ".mp4"


def row_to_sample(row: dict, index: int, videos_root: Path, frame_rate: float) -> Sample:
    sample_id = str(row.get("id", index))
    options = tuple(strip_option_label(o) for o in row.get("options") or ())
    if not options:
        raise SampleError(f"VideoRefer question {sample_id!r} has no options")
    answer = truth_letter(row)
    if answer not in option_letters(len(options)):
        raise SampleError(f"VideoRefer question {sample_id!r}: Answer {row.get('Answer')!r} names no option of {option_letters(len(options))}")
    objects = row.get("annotation") or []
    if not objects or not isinstance(objects[0], dict) or not objects[0]:
        raise SampleError(f"VideoRefer question {sample_id!r} has no annotated object")
    first = objects[0]
    frame = str(row.get("frame_idx"))
    if frame not in first or not (first[frame] or {}).get("segmentation"):
        frame = next((k for k in sorted(first, key=lambda k: int(k)) if (first[k] or {}).get("segmentation")), None)
    if frame is None:
        raise SampleError(f"VideoRefer question {sample_id!r}: its first object has no mask")
    rle = first[frame]["segmentation"]
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise SampleError(f"VideoRefer question {sample_id!r}: segmentation at frame {frame} is not an RLE mask")
    labels = [int(n) for n in _OBJECT.findall(str(row["Question"]))]
    label = labels[0] if labels else 1
    question = _OBJECT.sub(lambda m: f"object {m.group(1)}", str(row["Question"])).strip()
    # A quarter frame past the frame's start: the env shows the last frame whose time is <= t.
    time = (int(frame) + 0.25) / frame_rate
    return Sample(
        id=sample_id, video=resolve(videos_root, _video_file(str(row["video"]))), question=question,
        answer=answer, answer_kind="choice", options=options,
        prompt=VisualPromptSpec(time=time, style="set_of_mark", mask_rle=dict(rle), label=label, seed=index),
        dimension=row.get("type"), source="VideoRefer-Bench-Q",
        meta=category_meta(NAME, row, CATEGORY_FIELDS, prompt_style="set_of_mark", frame_idx=int(frame),
                           object_labels=labels, unmarked_objects=len(objects) - 1),
    )


def load(path: str | Path, *, videos_root: str | Path | None = None, frame_rate: float = FRAME_RATE) -> Dataset:
    """Load VideoRefer-Bench-Q from its JSON file (or the folder holding it)."""
    if not frame_rate > 0:
        raise ValueError(f"videorefer: frame_rate must be positive, got {frame_rate}")
    path = find_file(Path(path), ("VideoRefer-Bench-Q.json", "*Bench-Q*.json", "*.json"), NAME)
    vroot = default_root(path.parent, videos_root)
    return build_dataset(NAME, path, read_rows(path), lambda row, i: row_to_sample(row, i, vroot, frame_rate), path.parent)
