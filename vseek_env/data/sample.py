"""The `Sample` schema: one visual-prompt video question with its ground truth.

A sample is plain data (JSON-serialisable through :meth:`Sample.to_dict`), so datasets can live in
JSONL or Parquet files and travel to Ray workers or verl rows unchanged.

Example:
    >>> s = Sample(id="q1", video="v.mp4", question="What colour is the target?",
    ...            answer="B", answer_kind="choice", options=["red", "blue"])
    >>> Sample.from_dict(s.to_dict()) == s
    True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANSWER_KINDS = ("choice", "open", "span", "box", "number")


class SampleError(ValueError):
    """A dataset row that does not describe a valid sample; the message names the sample."""


@dataclass(frozen=True)
class VisualPromptSpec:
    """Where and how the target is marked.

    Attributes:
        time: presentation time (s) of the frame the prompt is drawn on; ``None`` when unknown
            (V2P-Bench ships only a pre-rendered image).
        style: one of :data:`vseek_env.visual_prompts.STYLES`.
        box: target box ``[x1, y1, x2, y2]`` on that frame, original-video pixels.
        mask_rle: target mask on that frame (:func:`vseek_env.masks.encode_rle`), optional.
        image: path of a pre-rendered prompt frame; used instead of rendering when given.
        seed: seeds colour/thickness/placement variation of the renderer.
        label: the number drawn by ``set_of_mark``.
        others: boxes ``[x1, y1, x2, y2]`` of other objects on that frame (original-video
            pixels); ``set_of_mark`` labels them with other numbers, as Set-of-Mark does.
    """

    time: float | None = None
    style: str = "rectangle"
    box: tuple[float, float, float, float] | None = None
    mask_rle: dict | None = None
    image: str | None = None
    seed: int = 0
    label: int = 1
    others: tuple[tuple[float, float, float, float], ...] = ()


@dataclass(frozen=True)
class Track:
    """The target's boxes (original-video pixels) and optionally masks over time, sorted by time.

    ``masks`` are run-length encoded (:func:`vseek_env.masks.encode_rle`), one per time, or empty
    when only boxes are known.
    """

    times: tuple[float, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    masks: tuple[dict, ...] = ()

    def box_at(self, t: float) -> tuple[float, float, float, float] | None:
        """The box at the latest track time ``<= t`` (``None`` before the first or if empty)."""
        best = None
        for time, box in zip(self.times, self.boxes):
            if time <= t + 1e-6:
                best = box
            else:
                break
        return best


@dataclass(frozen=True)
class Sample:
    """One question about one marked instance in one video.

    ``answer`` is typed by ``answer_kind``: a letter for ``choice``, a string for ``open``, a float
    for ``number``, ``[start, end]`` seconds for ``span`` and ``[x1, y1, x2, y2]`` (original-video
    pixels, at ``answer_time``) for ``box``.
    """

    id: str
    video: str
    question: str
    answer: Any
    answer_kind: str = "choice"
    options: tuple[str, ...] = ()
    prompt: VisualPromptSpec = field(default_factory=VisualPromptSpec)
    track: Track | None = None
    evidence: tuple[float, float] | None = None
    answer_time: float | None = None
    dimension: str | int | None = None
    source: str = ""
    needs_tools: bool | None = None
    duration: float | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise SampleError("sample has an empty 'id'")
        for name, types in (("video", str), ("question", str), ("meta", dict), ("source", str)):
            if not isinstance(getattr(self, name), types):
                raise SampleError(f"sample {self.id!r}: {name!r} must be a {types.__name__}, got {type(getattr(self, name)).__name__}")
        if not (self.dimension is None or isinstance(self.dimension, (str, int))) or isinstance(self.dimension, bool):
            raise SampleError(f"sample {self.id!r}: 'dimension' must be a string, an integer or null")
        if not all(isinstance(option, str) for option in self.options):
            raise SampleError(f"sample {self.id!r}: every option must be a string")
        from vseek_env.visual_prompts import STYLES  # deferred: one definition of the styles

        prompt = self.prompt
        if prompt.style not in STYLES:
            raise SampleError(f"sample {self.id!r}: prompt.style {prompt.style!r} is not one of {STYLES}")
        if prompt.time is not None and not _is_number_list([prompt.time], 1):
            raise SampleError(f"sample {self.id!r}: prompt.time must be a finite number of seconds or null")
        for name in ("seed", "label"):
            if not isinstance(getattr(prompt, name), int) or isinstance(getattr(prompt, name), bool):
                raise SampleError(f"sample {self.id!r}: prompt.{name} must be an integer")
        for name in ("answer_time", "duration"):
            value = getattr(self, name)
            if value is not None and not _is_number_list([value], 1):
                raise SampleError(f"sample {self.id!r}: {name!r} must be a finite number or null")
        if self.needs_tools is not None and not isinstance(self.needs_tools, bool):
            raise SampleError(f"sample {self.id!r}: 'needs_tools' must be true, false or null")
        if self.answer_kind == "number" and not _is_number_list([self.answer], 1):
            raise SampleError(f"sample {self.id!r}: a 'number' answer must be a finite number, got {self.answer!r}")
        if prompt.box is not None and not _is_number_list(prompt.box, 4):
            raise SampleError(f"sample {self.id!r}: prompt.box must be [x1, y1, x2, y2] (4 finite numbers)")
        if not all(_is_number_list(box, 4) for box in prompt.others):
            raise SampleError(f"sample {self.id!r}: every prompt.others box must be [x1, y1, x2, y2] (4 finite numbers)")
        if self.track is not None:
            if len(self.track.times) != len(self.track.boxes):
                raise SampleError(f"sample {self.id!r}: track has {len(self.track.times)} times but {len(self.track.boxes)} boxes")
            if not _is_number_list(self.track.times, len(self.track.times)) or list(self.track.times) != sorted(self.track.times):
                raise SampleError(f"sample {self.id!r}: track.times must be finite and sorted")
            if not all(_is_number_list(box, 4) for box in self.track.boxes):
                raise SampleError(f"sample {self.id!r}: every track box must be [x1, y1, x2, y2] (4 finite numbers)")
            if self.track.masks and (len(self.track.masks) != len(self.track.times)
                                     or not all(isinstance(m, dict) for m in self.track.masks)):
                raise SampleError(f"sample {self.id!r}: track.masks must hold one RLE object per track time")
        if self.answer_kind not in ANSWER_KINDS:
            raise SampleError(
                f"sample {self.id!r}: answer_kind {self.answer_kind!r} is not one of {ANSWER_KINDS}"
            )
        if self.answer_kind == "choice":
            letters = option_letters(len(self.options))
            if not self.options:
                raise SampleError(f"sample {self.id!r}: a 'choice' sample needs 'options'")
            if str(self.answer) not in letters:
                raise SampleError(
                    f"sample {self.id!r}: answer {self.answer!r} is not one of the option letters {letters}"
                )
        if self.answer_kind in ("span", "box"):
            n = 2 if self.answer_kind == "span" else 4
            if not _is_number_list(self.answer, n):
                raise SampleError(f"sample {self.id!r}: a {self.answer_kind!r} answer must be {n} numbers")
        if self.evidence is not None and not _is_number_list(self.evidence, 2):
            raise SampleError(f"sample {self.id!r}: 'evidence' must be [start, end] seconds")

    @property
    def has_visual_prompt(self) -> bool:
        """Whether the target is marked: the prompt has a frame time or a pre-rendered image.

        General video benchmarks (Video-MME, LongVideoBench, LongVT) have none; their episodes run
        without ``view_visual_prompt``.
        """
        return self.prompt.time is not None or bool(self.prompt.image)

    @property
    def choices_text(self) -> str:
        """Options formatted as ``A. text`` lines (empty for non-choice samples)."""
        return "\n".join(f"{letter}. {text}" for letter, text in zip(option_letters(len(self.options)), self.options))

    def video_path(self, root: str | Path | None = None) -> Path:
        """Absolute path of the video, resolving a relative ``video`` against ``root``.

        Raises :class:`SampleError` naming the sample for a ``video`` no file can have (a NUL byte).
        """
        if "\x00" in self.video:
            raise SampleError(f"sample {self.id!r}: 'video' {self.video!r} contains a NUL byte; no file has that name")
        path = Path(self.video)
        if not path.is_absolute() and root is not None:
            path = Path(root) / path
        return path

    def to_dict(self) -> dict:
        """JSON-serialisable form (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, row: dict) -> "Sample":
        """Build a sample from :meth:`to_dict` output; raises :class:`SampleError` naming the row."""
        if not isinstance(row, dict):
            raise SampleError(f"a sample row must be a JSON object, got {type(row).__name__}")
        sample_id = str(row.get("id", "")) or "<missing id>"
        missing = [key for key in ("id", "video", "question", "answer") if row.get(key) in (None, "")]
        if missing:
            raise SampleError(f"sample {sample_id!r} is missing required field(s): {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(row) - known
        if unknown:
            raise SampleError(f"sample {sample_id!r} has unknown field(s): {', '.join(sorted(unknown))}")
        data = dict(row)
        try:
            prompt = data.get("prompt") or {}
            for key, value in (("prompt", prompt), ("track", data.get("track") or {})):
                if not isinstance(value, dict):
                    raise SampleError(f"sample {sample_id!r}: {key!r} must be an object, got {type(value).__name__}")
            if prompt.get("box") is not None:
                prompt = {**prompt, "box": tuple(float(v) for v in prompt["box"])}
            if "others" in prompt:
                others = prompt["others"] if prompt["others"] is not None else ()
                if not isinstance(others, (list, tuple)) or not all(isinstance(b, (list, tuple)) for b in others):
                    raise SampleError(f"sample {sample_id!r}: prompt.others must be a list of [x1, y1, x2, y2] boxes")
                prompt = {**prompt, "others": tuple(tuple(float(v) for v in b) for b in others)}
            data["prompt"] = VisualPromptSpec(**prompt)
            if not data.get("track"):
                data["track"] = None
            else:
                track = data["track"]
                data["track"] = Track(
                    times=tuple(float(t) for t in track.get("times", ())),
                    boxes=tuple(tuple(float(v) for v in b) for b in track.get("boxes", ())),
                    masks=tuple(track.get("masks") or ()),
                )
            for key in ("options",):
                data[key] = tuple(data.get(key) or ())
            for key in ("evidence",):
                if data.get(key) is not None:
                    data[key] = tuple(float(v) for v in data[key])
            if data.get("answer_kind") in ("span", "box"):
                data["answer"] = tuple(float(v) for v in data["answer"])
            data["id"] = str(data["id"])
            return cls(**data)
        except SampleError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise SampleError(f"sample {sample_id!r}: {exc}") from exc


def option_letters(n: int) -> tuple[str, ...]:
    """The first ``n`` option letters: ``option_letters(3) == ('A', 'B', 'C')``."""
    return tuple(chr(ord("A") + i) for i in range(n))


def _is_number_list(value: Any, n: int) -> bool:
    try:
        return len(value) == n and all(math.isfinite(float(v)) for v in value)
    except (TypeError, ValueError):
        return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
