"""`EnvConfig`: every knob of an episode, with the defaults of the paper's setting.

Example:
    >>> cfg = EnvConfig(max_turns=4, tools=("crop_video",))
    >>> cfg.replace(error_budget=1).error_budget
    1
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from vseek_env.tools import DEFAULT_TOOLS, TOOLS


# Field annotations (strings under postponed evaluation) checked for their type in __post_init__.
_NUMERIC = {"int": Integral, "float": Real, "float | None": (Real, type(None))}
_NUMERIC_NAMES = {"int": "an integer", "float": "a number", "float | None": "a number or None"}


@dataclass(frozen=True)
class EnvConfig:
    """Episode settings. Pass any field as a keyword to ``gym.make("VideoSeeker-v0", ...)``.

    Attributes:
        tools: names of the tools offered (see :data:`vseek_env.tools.TOOLS`).
        max_turns: model responses per episode: ``max_turns - 1`` tool rounds plus the answer
            turn (the paper allows 5 tool rounds, hence 6). A non-answer on the last turn truncates.
        error_budget: responses with errors tolerated; one more truncates the episode.
        overview_frames: frames of the uniform overview in the first observation.
        show_prompt_frame: include the visual-prompt frame in the first observation; if False the
            model must call ``view_visual_prompt`` to see it.
        crop_fps, crop_min_frames, crop_max_frames: the ``crop_video`` sampling rule.
        max_pixels, patch_factor: per-frame pixel budget; sides are multiples of ``patch_factor``.
        max_tool_calls_per_turn: further calls in one response are dropped with an error.
        max_frames_per_episode: frames returned by tools over the whole episode.
        max_response_chars: longer responses are rejected (``response_too_long``).
        obs_frames, obs_frame_size: at most ``obs_frames`` frames per observation, each letterboxed
            to ``obs_frame_size`` in the observation's ``frames`` array. These are thumbnails for
            array-based agents; the chat messages in ``info`` (what LLM policies and the verl loop
            use) carry the frames at the full ``max_pixels`` budget. 160x160 keeps a 64-frame step
            under 1 ms of env overhead (224x224 costs about 1.2 ms, mostly copying thumbnails).
        max_text_chars: longest observation text.
        compat_paths: add the paper's ``video_path`` / ``frame_path`` arguments to tool schemas
            (accepted, checked, never used to open a file).
        reward: a preset name, a ``{name: weight}`` dict, or a CompositeReward.
        diagnostics: add process-level counters (frame-cache hits/misses/bytes) to ``info``. Off by
            default because they depend on what other episodes did, so they would break the
            same-seed-same-info guarantee.
        tool_timeout_s: wall-clock limit of one tool call (seconds; ``None`` disables). A call that
            runs longer is abandoned (its worker thread exits once the call returns; later calls get
            a new one) and answered with a ``tool_failed`` error observation.
        skip_bad_samples: on a video that cannot be opened, move on to another sample (the error is
            recorded in ``info["skipped"]``) instead of raising.
    """

    tools: tuple[str, ...] = DEFAULT_TOOLS
    max_turns: int = 6
    error_budget: int = 3
    overview_frames: int = 16
    show_prompt_frame: bool = True
    crop_fps: float = 1.0
    crop_min_frames: int = 4
    crop_max_frames: int = 64
    max_pixels: int = 336 * 336
    patch_factor: int = 28
    max_tool_calls_per_turn: int = 4
    max_frames_per_episode: int = 256
    max_response_chars: int = 32768
    obs_frames: int = 64
    obs_frame_size: tuple[int, int] = (160, 160)
    max_text_chars: int = 65536
    compat_paths: bool = False
    reward: Any = "paper"
    skip_bad_samples: bool = False
    diagnostics: bool = False
    tool_timeout_s: float | None = 60.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # before any comparison: "four" < 1 names no option
            allowed = _NUMERIC.get(str(f.type))
            value = getattr(self, f.name)
            if allowed is not None and (not isinstance(value, allowed) or isinstance(value, bool)):
                raise TypeError(f"EnvConfig.{f.name} must be {_NUMERIC_NAMES[str(f.type)]}, got {value!r}")
        for name in self.tools:
            if name not in TOOLS:
                raise ValueError(f"EnvConfig.tools: unknown tool {name!r}; choose from {sorted(TOOLS)}")
        positive = ("max_turns", "overview_frames", "crop_min_frames", "crop_max_frames", "max_pixels",
                    "patch_factor", "max_tool_calls_per_turn", "max_response_chars", "obs_frames", "max_text_chars")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"EnvConfig.{name} must be positive, got {getattr(self, name)}")
        if self.error_budget < 0:
            raise ValueError(f"EnvConfig.error_budget must be >= 0, got {self.error_budget}")
        if self.tool_timeout_s is not None and not self.tool_timeout_s > 0:
            raise ValueError(f"EnvConfig.tool_timeout_s must be positive or None, got {self.tool_timeout_s}")
        if self.crop_fps <= 0:
            raise ValueError(f"EnvConfig.crop_fps must be positive, got {self.crop_fps}")
        if self.crop_min_frames > self.crop_max_frames:
            raise ValueError("EnvConfig.crop_min_frames must not exceed crop_max_frames")
        if self.overview_frames + int(self.show_prompt_frame) > self.obs_frames:
            raise ValueError(
                f"EnvConfig.overview_frames ({self.overview_frames}) plus the prompt frame must fit in "
                f"obs_frames ({self.obs_frames})"
            )

    def replace(self, **changes: Any) -> "EnvConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "EnvConfig":
        """Build from keywords, with an error naming any unknown one."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown env option(s) {unknown}; valid options: {sorted(names)}")
        if "tools" in kwargs:
            kwargs["tools"] = tuple(kwargs["tools"])
        if "obs_frame_size" in kwargs:
            kwargs["obs_frame_size"] = tuple(kwargs["obs_frame_size"])
        return cls(**kwargs)
