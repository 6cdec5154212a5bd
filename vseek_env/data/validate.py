"""Check a dataset file row by row and report every problem with its line.

:func:`validate_file` reads a native JSONL file (README "Dataset format") and checks, for each
line: that it is a JSON object with a valid sample schema (:meth:`Sample.from_dict`), that its id
is unique, that its video exists and opens, that the prompt time (and span answers, evidence,
``answer_time``, track times) lie inside the video, that every box (prompt box, ``others``, track,
box answer) lies inside the frame and that RLE masks have the frame's size. It never stops at the
first problem.

Example:
    >>> problems = validate_file("data/my_samples.jsonl")        # doctest: +SKIP
    >>> for p in problems: print(p)                               # doctest: +SKIP
    data/my_samples.jsonl:3: sample 'q3': prompt.time 41.0 s is after the end of videos/a.mp4 (30 s)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from vseek_env.data.sample import Sample, SampleError

#: Boxes may overhang the frame by this many pixels (rounding of annotation tools).
BOX_SLACK = 1.0
#: Times may pass the video's end by this many seconds (the last frame's duration).
TIME_SLACK = 0.05


@dataclass(frozen=True)
class Problem:
    """One problem of one line: ``str(p)`` is ``file:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class _VideoInfo:
    width: int
    height: int
    duration: float


def validate_file(path: str | Path, *, open_videos: bool = True) -> list[Problem]:
    """Every problem of the JSONL dataset ``path`` (an empty list when it is valid).

    Relative ``video`` and ``prompt.image`` paths resolve against the file's folder, as
    ``load_dataset`` does. ``open_videos=False`` checks only that the files exist (fast).
    """
    path = Path(path)
    problems: list[Problem] = []
    if not path.is_file():
        return [Problem(str(path), 0, "no such file")]
    root = path.parent
    videos: dict[Path, _VideoInfo | str] = {}
    seen: dict[str, int] = {}
    rows = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            rows += 1

            def report(message: str, _line: int = lineno) -> None:
                problems.append(Problem(str(path), _line, message))

            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                report(f"not valid JSON ({exc})")
                continue
            try:
                sample = Sample.from_dict(row)
            except SampleError as exc:
                report(str(exc))
                continue
            if sample.id in seen:
                report(f"sample {sample.id!r}: duplicate id (first on line {seen[sample.id]})")
            seen.setdefault(sample.id, lineno)
            _check_sample(sample, root, videos, report, open_videos)
    if rows == 0:
        problems.append(Problem(str(path), 0, "no samples in this file"))
    return problems


def _check_sample(sample: Sample, root: Path, videos: dict, report, open_videos: bool) -> None:
    who = f"sample {sample.id!r}"
    video_path = sample.video_path(root)
    info = videos.get(video_path)
    if info is None:
        info = videos[video_path] = _probe(video_path, open_videos)
    if isinstance(info, str):
        report(f"{who}: video {sample.video}: {info}")
        info = None
    prompt = sample.prompt
    if prompt.image is not None:
        image = Path(prompt.image)
        image = image if image.is_absolute() else root / image
        if not image.is_file():
            report(f"{who}: prompt.image {prompt.image}: no such file")
    elif prompt.time is None:
        report(f"{who}: the prompt has neither a time nor an image: nothing to draw it on")
    elif prompt.box is None and prompt.mask_rle is None:
        report(f"{who}: the prompt has a time but neither a box nor a mask_rle: nothing marks the target")
    if info is None:
        return
    end = info.duration + TIME_SLACK
    times = [("prompt.time", prompt.time), ("answer_time", sample.answer_time)]
    if sample.evidence is not None:
        times += [("evidence start", sample.evidence[0]), ("evidence end", sample.evidence[1])]
    if sample.answer_kind == "span":
        times += [("answer start", sample.answer[0]), ("answer end", sample.answer[1])]
        if sample.answer[0] > sample.answer[1]:
            report(f"{who}: span answer {list(sample.answer)} starts after it ends")
    if sample.track is not None and sample.track.times:
        times += [("first track time", sample.track.times[0]), ("last track time", sample.track.times[-1])]
    for name, t in times:
        if t is not None and not (0.0 <= float(t) <= end):
            report(f"{who}: {name} {float(t):g} s is outside the video {sample.video} (0-{info.duration:g} s)")
    boxes = [("prompt.box", prompt.box)] + [(f"prompt.others[{i}]", b) for i, b in enumerate(prompt.others)]
    if sample.answer_kind == "box":
        boxes.append(("box answer", sample.answer))
    if sample.track is not None:
        bad = [i for i, b in enumerate(sample.track.boxes) if _box_problem(b, info)]
        if bad:
            report(f"{who}: {len(bad)} track box(es) outside the {info.width}x{info.height} frame "
                   f"(first: index {bad[0]}, {list(sample.track.boxes[bad[0]])})")
    for name, box in boxes:
        if box is not None and (why := _box_problem(box, info)):
            report(f"{who}: {name} {list(box)} {why}")
    if prompt.mask_rle is not None:
        size = prompt.mask_rle.get("size") if isinstance(prompt.mask_rle, dict) else None
        if not (isinstance(size, list) and len(size) == 2):
            report(f"{who}: prompt.mask_rle needs 'size': [H, W] and 'counts'")
        elif list(size) != [info.height, info.width]:
            report(f"{who}: prompt.mask_rle size {size} is not the frame's [H, W] = [{info.height}, {info.width}]")


def _box_problem(box, info: _VideoInfo) -> str | None:
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x1 < x2 and y1 < y2):
        return "is empty or reversed (x1 < x2 and y1 < y2 are required)"
    if x1 < -BOX_SLACK or y1 < -BOX_SLACK or x2 > info.width + BOX_SLACK or y2 > info.height + BOX_SLACK:
        return f"is not inside the {info.width}x{info.height} frame"
    return None


def _probe(path: Path, open_videos: bool) -> _VideoInfo | str:
    """The video's size and duration, or why it cannot be used."""
    if not path.is_file():
        return "no such file"
    if not open_videos:
        return _VideoInfo(width=10**9, height=10**9, duration=math.inf)
    from vseek_env.video import VideoError, open_video

    try:
        with open_video(path) as video:
            if video.num_frames < 1:
                return "has no video frames"
            return _VideoInfo(int(video.width), int(video.height), float(video.duration))
    except (VideoError, OSError, ValueError) as exc:
        return f"does not open ({exc})"
