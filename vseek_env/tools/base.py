"""One definition per tool: its parameters generate the JSON schema, the prompt text and the validator.

A tool subclasses :class:`Tool`, declares :class:`Param` s and implements :meth:`Tool.run`. Nothing a
model writes can name a file: tools act on the episode's own video through :class:`ToolContext`.

Example:
    >>> class Echo(Tool):
    ...     name = "echo"
    ...     description = "Repeat a number."
    ...     params = (Param("x", "number", "the number"),)
    ...     def run(self, args, ctx):
    ...         return ToolResult(text=str(args["x"]))
    >>> Echo().validate({"x": "2.5"}, ctx=None)
    {'x': 2.5}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vseek_env.protocol import ErrorCode

_JSON_TYPES = {"number": "number", "integer": "integer", "string": "string", "box": "array"}


class ToolArgumentError(ValueError):
    """Arguments a tool cannot run with; ``code`` is an :class:`ErrorCode`, the message says how to fix it."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Param:
    """A tool parameter. ``type`` is ``number``, ``integer``, ``string`` or ``box`` (4 numbers)."""

    name: str
    type: str
    description: str
    required: bool = True
    compat_only: bool = False  # kept for the paper's prompts (e.g. video_path); checked, never used


@dataclass
class ToolResult:
    """What a tool call returns: text, frames labelled with their true times, and what was looked at."""

    text: str
    # (N, H, W, 3) uint8, or a sequence of N (H, W, 3) arrays (e.g. shared with the frame cache)
    frames: np.ndarray | tuple[np.ndarray, ...] = field(default_factory=lambda: np.zeros((0, 1, 1, 3), np.uint8))
    times: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float64))
    window: tuple[float, float] | None = None  # the clamped time window the call covered, if any
    indices: np.ndarray | None = None  # video frame index of each frame, when frames are whole video frames


@dataclass
class ToolContext:
    """What a tool may touch: the episode's video, sample, rendered prompt frame and config."""

    video: Any  # vseek_env.video.Video
    sample: Any  # vseek_env.data.sample.Sample
    config: Any  # vseek_env.config.EnvConfig
    prompt_frame: np.ndarray | None = None
    prompt_time: float | None = None
    prompt_frames: tuple = ()  # every marked frame when a sample has several (V2P); else empty
    video_name: str = ""
    frame_name: str = ""
    max_frames: int = 1 << 30  # frames this call may return (room left in the observation / episode)


class Tool:
    """Base class of every tool. Subclasses set ``name``, ``description``, ``params`` and ``run``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()

    def visible_params(self, compat_paths: bool = False) -> tuple[Param, ...]:
        return tuple(p for p in self.params if compat_paths or not p.compat_only)

    def json_schema(self, compat_paths: bool = False) -> dict:
        """The OpenAI / verl function schema."""
        properties = {}
        for p in self.visible_params(compat_paths):
            prop: dict[str, Any] = {"type": _JSON_TYPES[p.type], "description": p.description}
            if p.type == "box":
                prop.update(items={"type": "number"}, minItems=4, maxItems=4)
            properties[p.name] = prop
        required = [p.name for p in self.visible_params(compat_paths) if p.required and not p.compat_only]
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {"type": "object", "properties": properties, "required": required},
            },
        }

    def prompt_text(self, compat_paths: bool = False) -> str:
        """The tool's entry in the system prompt."""
        params = self.visible_params(compat_paths)
        signature = ", ".join(p.name for p in params)
        lines = [f"- {self.name}({signature}): {self.description}"]
        lines += [f"    {p.name} ({p.type}): {p.description}" for p in params]
        return "\n".join(lines)

    def validate(self, arguments: dict, ctx: ToolContext | None) -> dict:
        """Typed, checked arguments, or :class:`ToolArgumentError`. Numeric strings are accepted."""
        if not isinstance(arguments, dict):
            raise ToolArgumentError(ErrorCode.INVALID_ARGUMENTS, f"{self.name}: arguments must be a JSON object")
        known = {p.name: p for p in self.params}
        extra = sorted(set(arguments) - set(known))
        if extra:
            raise ToolArgumentError(
                ErrorCode.INVALID_ARGUMENTS,
                f"{self.name} takes no argument(s) {extra}; its arguments are {[p.name for p in self.visible_params()]}.",
            )
        clean: dict[str, Any] = {}
        for p in self.params:
            if p.compat_only:
                continue  # see compat_notes: such arguments never select what is read
            if p.name not in arguments:
                if p.required:
                    raise ToolArgumentError(ErrorCode.INVALID_ARGUMENTS, f"{self.name} needs the argument {p.name!r} ({p.description}).")
                continue
            clean[p.name] = _coerce(self.name, p, arguments[p.name])
        return self.check(clean, ctx)

    def compat_notes(self, arguments: dict, ctx: ToolContext) -> list[str]:
        """Notes for path-like compatibility arguments that do not name this episode's media.

        Such arguments are accepted for the paper's prompts but never used: nothing a model writes
        can make a tool read another file.
        """
        notes = []
        expected = {"video_path": ctx.video_name, "frame_path": ctx.frame_name}
        for p in self.params:
            if p.compat_only and p.name in arguments and str(arguments[p.name]) != expected.get(p.name):
                notes.append(f"note: {p.name} is ignored; tools always act on this episode's video.")
        return notes

    def check(self, arguments: dict, ctx: ToolContext | None) -> dict:
        """Tool-specific range checks after typing; override. Return the (possibly clamped) arguments."""
        return arguments

    def run(self, arguments: dict, ctx: ToolContext) -> ToolResult:
        raise NotImplementedError


def _coerce(tool: str, p: Param, value: Any) -> Any:
    if p.type == "string":
        if not isinstance(value, str):
            raise ToolArgumentError(ErrorCode.INVALID_ARGUMENTS, f"{tool}: {p.name} must be a string")
        return value
    if p.type == "box":
        if not isinstance(value, (list, tuple)) or len(value) != 4:
            raise ToolArgumentError(ErrorCode.INVALID_ARGUMENTS, f"{tool}: {p.name} must be [x1, y1, x2, y2]")
        return tuple(_number(tool, f"{p.name}[{i}]", v) for i, v in enumerate(value))
    number = _number(tool, p.name, value)
    if p.type == "integer":
        if number != int(number):
            raise ToolArgumentError(ErrorCode.INVALID_ARGUMENTS, f"{tool}: {p.name} must be an integer")
        return int(number)
    return number


def _number(tool: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ToolArgumentError(ErrorCode.INVALID_ARGUMENTS, f"{tool}: {name} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ToolArgumentError(ErrorCode.INVALID_ARGUMENTS, f"{tool}: {name} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise ToolArgumentError(ErrorCode.INVALID_ARGUMENTS, f"{tool}: {name} must be a finite number, got {value!r}")
    return number
