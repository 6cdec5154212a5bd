"""`EnvConfig`: every knob of an episode, and the protocols (named presets of knobs).

The defaults are this project's choices (``protocol="default"``); ``protocol="paper"`` is the
VideoSeeker paper's setting (see :data:`PROTOCOLS` and README's "paper vs default" table). Explicit
keywords override a protocol's values.

Example:
    >>> cfg = EnvConfig(max_turns=4, tools=("crop_video",))
    >>> cfg.replace(error_budget=1).error_budget
    1
    >>> paper = EnvConfig.from_kwargs(protocol="paper")
    >>> paper.overview_fps, paper.overview_frames, paper.max_tool_calls_per_turn, paper.show_prompt_frame
    (1.0, 256, 1, False)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from vseek_env.tools import DEFAULT_TOOLS, TOOLS

# The paper's setting (arXiv 2605.16079 and its released code); every field differs from the default
# for a reason given in README's "paper vs default" table.
PAPER_PROTOCOL: dict[str, Any] = {
    "overview_fps": 1.0,  # the video at 1 fps ...
    "overview_frames": 256,  # ... at most 256 frames (appendix C)
    "overview_as_video": True,  # fed as the video modality, not as separate images
    "overview_max_tokens": 14336,  # keeps the prompt inside the paper's 16,384 tokens (text takes the rest)
    "max_pixels": 112896,  # pixels per frame (appendix C); crop frames are 336x336 in the released tool
    "patch_factor": 32,  # Qwen3-VL (patch 16 x merge 2), the paper's base model
    "show_prompt_frame": False,  # the marked frame only through view_visual_prompt
    "reveal_prompt_time": False,  # ... and without its time
    "max_tool_calls_per_turn": 1,  # verl's tool agent loop runs one call per response
    "last_turn_hint": False,  # no "answer now" nudge
    "crop_clamp": False,  # a window past the video's end is an error, not clamped
    "prompt_style": "paper",  # format instructions at the top of the user text, no system message
    "obs_frames": 256,  # the overview must fit in one observation
    "obs_frame_size": (64, 64),  # 256 thumbnails of 64x64 keep the array observation at 3 MB
    "reward": "paper",
}
PROTOCOLS: dict[str, dict[str, Any]] = {"default": {}, "paper": PAPER_PROTOCOL}
PROMPT_STYLES = ("default", "paper")


def token_units(n_frames: int, as_video: bool) -> int:
    """Frame groups that each cost ``(h / f) * (w / f)`` tokens: Qwen-VL merges video frames in pairs."""
    return (n_frames + 1) // 2 if as_video else n_frames


# Field annotations (strings under postponed evaluation) checked for their type in __post_init__.
_NUMERIC = {"int": Integral, "float": Real, "float | None": (Real, type(None))}
_NUMERIC_NAMES = {"int": "an integer", "float": "a number", "float | None": "a number or None"}


@dataclass(frozen=True)
class EnvConfig:
    """Episode settings. Pass any field as a keyword to ``gym.make("VideoSeeker-v0", ...)``.

    Attributes:
        protocol: the preset the other fields started from (``"default"`` or ``"paper"``, see
            :data:`PROTOCOLS`); recorded so runs can say which protocol they ran.
        tools: names of the tools offered (see :data:`vseek_env.tools.TOOLS`).
        max_turns: model responses per episode: ``max_turns - 1`` tool rounds plus the answer
            turn (the paper allows 5 tool rounds, hence 6). A non-answer on the last turn truncates.
        error_budget: responses with errors tolerated; one more truncates the episode.
        overview_frames: frames of the uniform overview in the first observation (the most frames
            when ``overview_fps`` is set).
        overview_fps: ``None``: exactly ``overview_frames`` frames spread over the video; a rate:
            that many frames a second, at most ``overview_frames`` (spread over the video when it
            is longer), as the paper's 1 fps / 256 frames.
        overview_as_video: offer the overview in ``info["messages"]`` as one video content part
            (``{"type": "video", "video": [frames], "timestamps": [...], "fps": rate}``) instead of
            one image part per frame: Qwen-VL processors merge frame pairs, about half the tokens.
        overview_max_tokens: cap on the overview's vision tokens, counted as a Qwen-VL video
            (``ceil(n / 2) * (h / patch_factor) * (w / patch_factor)``; as images, twice that);
            frames are made smaller, never fewer, to fit. ``None``: no cap.
        show_prompt_frame: include the visual-prompt frame in the first observation; if False the
            model must call ``view_visual_prompt`` to see it.
        reveal_prompt_time: ``view_visual_prompt`` says at which time the marked frame is (and labels
            it so); the paper's tool shows the frame only.
        last_turn_hint: tell the model on its last turn that it must answer now.
        crop_clamp: clamp ``crop_video`` windows to the video; if False a window that starts before
            0 or ends after the video's end is an ``out_of_range`` error (the paper's tool).
        prompt_style: ``"default"`` (a system message with the grammar and tools) or ``"paper"``
            (the paper's structure: the output-format instruction at the top of the first user
            text, the question, then how to look at the marked frame; no system message).
        open_ended: turn choice questions into open-ended ones (the correct option's text is the
            answer, :func:`vseek_env.data.open_ended.to_open_ended`), as the paper's RL data.
        info_ground_truth: put the episode's :class:`~vseek_env.data.Sample` (the answer) in every
            ``info`` as ``info["sample"]``. Off by default: ground truth stays out of the policy's
            way; oracles and evaluation read ``env.unwrapped.sample``.
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

    protocol: str = "default"
    tools: tuple[str, ...] = DEFAULT_TOOLS
    max_turns: int = 6
    error_budget: int = 3
    overview_frames: int = 16
    overview_fps: float | None = None
    overview_as_video: bool = False
    overview_max_tokens: int | None = None
    show_prompt_frame: bool = True
    reveal_prompt_time: bool = True
    last_turn_hint: bool = True
    crop_clamp: bool = True
    prompt_style: str = "default"
    open_ended: bool = False
    info_ground_truth: bool = False
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
    reward: Any = "default"
    skip_bad_samples: bool = False
    diagnostics: bool = False
    tool_timeout_s: float | None = 60.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # before any comparison: "four" < 1 names no option
            allowed = _NUMERIC.get(str(f.type))
            value = getattr(self, f.name)
            if allowed is not None and (not isinstance(value, allowed) or isinstance(value, bool)):
                raise TypeError(f"EnvConfig.{f.name} must be {_NUMERIC_NAMES[str(f.type)]}, got {value!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"EnvConfig.protocol: unknown protocol {self.protocol!r}; choose from {sorted(PROTOCOLS)}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"EnvConfig.prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style!r}")
        if self.overview_fps is not None and not self.overview_fps > 0:
            raise ValueError(f"EnvConfig.overview_fps must be positive or None, got {self.overview_fps}")
        if self.overview_max_tokens is not None and self.overview_max_tokens < token_units(self.overview_frames, self.overview_as_video):
            raise ValueError(f"EnvConfig.overview_max_tokens={self.overview_max_tokens} cannot hold {self.overview_frames} "
                             "overview frames (one token per frame group at least); raise it or lower overview_frames")
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
        """A copy with ``changes``; a new ``protocol`` brings its preset's values (``changes`` win)."""
        if "protocol" in changes and changes["protocol"] != self.protocol:
            if changes["protocol"] not in PROTOCOLS:
                raise ValueError(f"unknown protocol {changes['protocol']!r}; choose from {sorted(PROTOCOLS)}")
            changes = {**PROTOCOLS[changes["protocol"]], **changes}
        if "tools" in changes:
            changes["tools"] = tuple(changes["tools"])
        if "obs_frame_size" in changes:
            changes["obs_frame_size"] = tuple(changes["obs_frame_size"])
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "EnvConfig":
        """Build from keywords, with an error naming any unknown one.

        ``protocol="paper"`` starts from :data:`PROTOCOLS` ``["paper"]``; the other keywords override it.
        """
        protocol = kwargs.get("protocol", "default")
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
        kwargs = {**PROTOCOLS[protocol], **kwargs}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"unknown env option(s) {unknown}; valid options: {sorted(names)}")
        if "tools" in kwargs:
            kwargs["tools"] = tuple(kwargs["tools"])
        if "obs_frame_size" in kwargs:
            kwargs["obs_frame_size"] = tuple(kwargs["obs_frame_size"])
        return cls(**kwargs)
