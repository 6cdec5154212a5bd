"""`VideoSeekerEnv`: the one Gymnasium env; the episode state machine.

An episode is one :class:`~vseek_env.data.Sample`. ``reset`` opens its video, renders the visual
prompt and returns the question with a uniform overview of the video. ``step`` takes the model's
whole response text, runs its tool calls in order and returns their frames (each labelled with its
true time) as the next observation, until an ``<answer>`` ends the episode (``terminated``) or the
turn limit or error budget does (``truncated``). The reward comes at the last step.

Example:
    >>> import gymnasium as gym, vseek_env                               # doctest: +SKIP
    >>> env = gym.make("VideoSeeker-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs, r, terminated, truncated, info = env.step(
    ...     '<think>look</think><tool_call>{"name": "crop_video", '
    ...     '"arguments": {"start_time": 0, "end_time": 4}}</tool_call>')
    >>> obs, r, terminated, truncated, info = env.step("<think>done</think><answer>A</answer>")
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

from vseek_env.config import EnvConfig, token_units
from vseek_env.data import Dataset, Sample, SampleError, load_dataset
from vseek_env.protocol import (
    ErrorCode,
    ProtocolError,
    build_system_prompt,
    format_number,
    format_timestamp_label,
    parse_response,
)
from vseek_env.images import ImageError, read_image
from vseek_env.sealed import fresh_copy, seal
from vseek_env.spaces import FrameSequence, UnicodeText
from vseek_env.tools import ToolArgumentError, ToolContext, ToolResult, get_tool
from vseek_env.tools.crop_video import CropVideo
from vseek_env.tools.view_visual_prompt import ViewVisualPrompt
from vseek_env.tools.zoom_in import ZoomIn
from vseek_env.tools.worker import ToolTimeout, ToolWorker
from vseek_env.trajectory import ToolRecord, Trajectory, Turn
from vseek_env.video import FrameBatch, FrameCache, Video, VideoError, file_key, open_video, smart_resize
from vseek_env.video_part import video_part

IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"

_ANSWER_INSTRUCTIONS = {
    "choice": "Answer with the letter of the correct option.",
    "open": "Answer in a few words.",
    "number": "Answer with a number.",
    "span": "Answer with the time span as [start, end] in seconds.",
    "box": "Answer with the target's box as [x1, y1, x2, y2] in pixels of the {w}x{h} video.",
}


class VideoSeekerEnv(gym.Env[dict, str]):
    """Instance-level video QA with a visual prompt and perception tools.

    Args:
        dataset: a registered name (``"synth:default"``), a dataset file, or a list of samples.
        render_mode: ``"rgb_array"`` (the current observation's frames as a labelled grid) or
            ``"ansi"`` (the transcript so far).
        frame_cache: the decoded-frame cache to use (default: the process-wide one).
        config: an :class:`EnvConfig`; or pass its fields as keywords.

    Observation (``spaces.Dict``): ``text`` (the new turn's text; each frame appears as
    ``<t seconds><image>``), ``frames`` (the turn's frames letterboxed to ``obs_frame_size``,
    stacked: shape ``(num_frames, h, w, 3)``), ``timestamps`` (their times, padded to
    ``obs_frames`` with ``-1``), ``num_frames``, ``turn``.

    Action: the model's response text (``UnicodeText``).

    ``info`` keys: ``sample_id``, ``turn``, ``messages`` (the turn as chat messages with image
    arrays), ``frames`` (list of ``{"time", "image", "source", "index"}``; ``index`` is the video
    frame index or ``None``), ``parsed``, ``tool_results``,
    ``errors``, ``error_count``, ``video``, ``state_key`` (and ``cache`` counters with
    ``diagnostics=True``); at the end ``reward_components``,
    ``reward_metrics``, ``trajectory``. The ground truth is not in ``info`` (unless
    ``info_ground_truth=True``): oracles and evaluation read :attr:`sample` of the unwrapped env.

    With ``overview_as_video`` the overview is one message part
    ``{"type": "video", "video": [H x W x 3 arrays], "timestamps": [seconds], "fps": frames per
    second}`` (true presentation times; ``fps`` is the rate they were sampled at); ``info["frames"]``
    still lists every frame, in message order, and the observation text shows ``<video>`` once.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 1}

    def __init__(
        self,
        dataset: Any = "synth:default",
        render_mode: str | None = None,
        frame_cache: FrameCache | None = None,
        config: EnvConfig | None = None,
        **options: Any,
    ) -> None:
        from vseek_env.rewards import make_reward  # registers built-in rewards

        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.config = config.replace(**options) if config is not None else EnvConfig.from_kwargs(**options)
        self.dataset: Dataset = load_dataset(dataset)
        if self.config.open_ended:
            from vseek_env.data.open_ended import to_open_ended

            ds = self.dataset
            self.dataset = Dataset(f"{ds.name}:open", [to_open_ended(s) for s in ds.samples], root=ds.root)
        self.frame_cache = frame_cache
        self.tools = {name: get_tool(name) for name in self.config.tools}
        self.reward_fn = make_reward(self.config.reward)
        # The tools offered and the system prompt follow the episode's sample (see _offer); before
        # the first reset, whether any sample of the dataset marks a target.
        self._offered, self.system_prompt = self._offer(any(s.has_visual_prompt for s in self.dataset.samples))
        cfg = self.config
        h, w = cfg.obs_frame_size
        self.observation_space = spaces.Dict(
            {
                "text": UnicodeText(cfg.max_text_chars),
                # Variable length (stacked): a fixed (obs_frames, h, w, 3) array would cost a 10 MB
                # allocation per step for observations that mostly carry a few frames.
                "frames": FrameSequence(spaces.Box(0, 255, (h, w, 3), np.uint8), max_length=cfg.obs_frames),
                "timestamps": spaces.Box(-1.0, 1e7, (cfg.obs_frames,), np.float64),
                "num_frames": spaces.Discrete(cfg.obs_frames + 1),
                "turn": spaces.Discrete(cfg.max_turns + 1),
            }
        )
        self.action_space = UnicodeText(cfg.max_response_chars)
        self._video: Video | None = None
        self._worker: ToolWorker | None = None
        self._sample: Sample | None = None
        self._prompt_frames: tuple = ()
        self._last_frames: list[dict] = []
        self.trajectory = Trajectory()
        self.conversation: list[dict] = []
        self._done = True

    # -- public API ------------------------------------------------------------------------------
    @property
    def sample(self) -> Sample | None:
        """The current episode's sample (ground truth)."""
        return self._sample

    @property
    def prompt_frame(self) -> np.ndarray | None:
        """The rendered visual-prompt frame of the current episode (what ``view_visual_prompt`` shows)."""
        return self._prompt_frame if self._sample is not None else None

    def tool_schemas(self) -> list[dict]:
        """OpenAI-style function schemas of the tools this env offers."""
        return [tool.json_schema(self.config.compat_paths) for tool in self._offered.values()]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"sample_id"}
        if unknown:
            raise ValueError(f"reset(options=...) accepts only 'sample_id', got {sorted(unknown)}")
        # Until a new sample is open there is no episode: a failed reset leaves nothing to step.
        self._done, self._sample = True, None
        self._close_video()
        skipped: list[dict] = []
        if "sample_id" in options:
            sample = self.dataset[str(options["sample_id"])]
            overview = self._open(sample)
        else:
            # A seeded order, each sample tried at most once: with skip_bad_samples, any openable
            # sample is found; without it, the first one is the episode.
            order = self.np_random.permutation(len(self.dataset))
            for position in order if self.config.skip_bad_samples else order[:1]:
                sample = self.dataset.samples[int(position)]
                try:
                    overview = self._open(sample)
                    break
                except (VideoError, SampleError) as exc:  # a sample that cannot be opened, named
                    if not self.config.skip_bad_samples:
                        raise
                    skipped.append({"sample_id": sample.id, "error": str(exc)})
            else:
                raise VideoError(f"no sample of dataset {self.dataset.name!r} could be opened; last: {skipped[-1]}")
        self.trajectory = Trajectory()
        # Running totals of what _info reports, so a step costs the same on turn 1 and turn 1,000.
        self._tool_calls_run = 0
        self._responses_hash = hashlib.sha1()
        self._error_count = 0
        self._frames_returned = 0
        self._turn = 0
        self._done = False

        sample, video = self._sample, self._video
        assert sample is not None and video is not None
        frames = [
            {"time": float(t), "image": f, "source": "overview", "index": int(i)}
            for f, t, i in zip(overview.frames, overview.times, overview.indices)
        ]
        n_overview = len(frames)
        show_prompt = self.config.show_prompt_frame and self._prompt_frame is not None
        if show_prompt:
            frames += [{"time": self._prompt_time if k == 0 else None, "image": image, "source": "prompt", "index": None}
                       for k, image in enumerate(self._prompt_frames or (self._prompt_frame,))]
        paper_style = self.config.prompt_style == "paper"
        parts = [{"type": "text", "text": (self.system_prompt + "\n\n" if paper_style else "")
                  + self._question_text(sample, video, n_overview, before=not paper_style)}]
        if self.config.overview_as_video:
            parts.append(self._video_part(frames[:n_overview], video.duration))
        else:
            parts += self._frame_parts(frames[:n_overview])
        if paper_style:
            parts.append({"type": "text", "text": "\n" + self._question_lines(sample, video)})
        if show_prompt:
            parts.append({"type": "text", "text": "\nThe visual-prompt frame:"})
            parts += self._frame_parts(frames[n_overview:])
        elif self._prompt_frame is not None and "view_visual_prompt" in self._offered:
            parts.append({"type": "text", "text": "\nThe target of the question is marked with a visual prompt on a frame "
                          "that is not shown here: call view_visual_prompt to see it."})
        if paper_style and "crop_video" in self._offered:
            parts.append({"type": "text", "text": " To watch part of the video more closely, call crop_video with a start "
                          "and an end time in seconds."})
        messages = [{"role": "user", "content": parts}]
        if not paper_style:
            messages.insert(0, {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        self.conversation = list(messages)
        obs = self._observation(messages, frames)
        info = self._info(messages, frames, parsed=None, tool_results=[], errors=[])
        if skipped:
            info["skipped"] = skipped
        return obs, info

    def step(self, action: str) -> tuple[dict, SupportsFloat, bool, bool, dict]:
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        cfg = self.config
        self._turn += 1
        if not isinstance(action, str):
            action = "" if action is None else str(action)
        parsed = parse_response(action, max_chars=cfg.max_response_chars, max_tool_calls=cfg.max_tool_calls_per_turn)
        turn = Turn(response=action, parsed=parsed, errors=list(parsed.errors))
        dropped = self._dropped_calls(action, parsed)
        self.trajectory.turns.append(turn)
        self._responses_hash.update((b"\x1e" if self._turn > 1 else b"") + action.encode("utf-8", "surrogatepass"))
        self.conversation.append({"role": "assistant", "content": [{"type": "text", "text": action}]})

        terminated = parsed.answer is not None
        frames: list[dict] = []
        messages: list[dict] = []
        tool_results: list[dict] = []
        # On the last allowed turn a non-answer truncates: its tool calls would decode frames that no
        # one ever sees, so they are not run.
        last_turn = self._turn >= cfg.max_turns
        if not terminated and not last_turn:
            for call in parsed.tool_calls:
                record, result, text = self._run_tool(call.name, call.arguments, room=cfg.obs_frames - len(frames))
                turn.tools.append(record)
                self._tool_calls_run += record.ok
                if not record.ok:
                    turn.errors.append(ProtocolError(ErrorCode(record.error_code), record.message))
                call_frames = []
                if result is not None:
                    times = np.asarray(result.times, dtype=np.float64).tolist()
                    indices = np.asarray(result.indices, dtype=np.int64).tolist() if result.indices is not None \
                        else [None] * len(times)
                    call_frames = [
                        {"time": t, "image": f, "source": call.name, "index": i}
                        for f, t, i in zip(result.frames, times, indices)
                    ]
                    frames += call_frames
                tool_results.append({**record.to_dict(), "text": text, "num_frames": len(call_frames)})
                messages.append(
                    {"role": "tool", "name": call.name, "content": [{"type": "text", "text": text}] + self._frame_parts(call_frames)}
                )
            # Calls past max_tool_calls_per_turn are not run, but the model made them: they count as
            # failed invocations (parsimony), so extra calls in one response are never free.
            turn.tools += [ToolRecord(c.name, c.arguments, ok=False, error_code=ErrorCode.TOO_MANY_TOOL_CALLS.value,
                                      message="not run: over the per-response limit") for c in dropped]
        if turn.errors:
            self._error_count += 1
        reward = 0.0
        truncated = False
        if terminated:
            self.trajectory.answer = parsed.answer
            self.trajectory.terminated = True
        elif self._error_count > cfg.error_budget or self._turn >= cfg.max_turns:
            truncated = True
            self.trajectory.truncated = True

        if not terminated:
            feedback = self._feedback(list(parsed.errors), truncated)
            if feedback:
                messages.append({"role": "user", "content": [{"type": "text", "text": feedback}]})
        self.conversation += messages
        if terminated or truncated:
            self._done = True
            reward, components, metrics = self.reward_fn(self._sample, self.trajectory)
        obs = self._observation(messages, frames)
        info = self._info(messages, frames, parsed=parsed, tool_results=tool_results, errors=turn.errors)
        if terminated or truncated:
            info.update(reward_components=components, reward_metrics=metrics, trajectory=self.trajectory)
        return obs, float(reward), terminated, truncated, info

    def truncate(self) -> tuple[float, dict, dict]:
        """End the running episode from outside (e.g. a trainer's token budget) as truncated.

        Returns ``(reward, components, metrics)`` scored on the trajectory so far, exactly as if the
        env had truncated it; a later ``step`` raises until ``reset``.
        """
        if self._done:
            raise RuntimeError("truncate() called on a finished episode; call reset() first")
        self._done = True
        self.trajectory.truncated = True
        return self.reward_fn(self._sample, self.trajectory)

    def render(self) -> Any:
        if self.render_mode == "ansi":
            return self._transcript()
        if self.render_mode == "rgb_array":
            return _frame_grid(self._last_frames, self.config.obs_frame_size)
        return None

    def close(self) -> None:
        self._done = True
        self._close_video()
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        super().close()

    # -- internals -------------------------------------------------------------------------------
    def _open(self, sample: Sample) -> FrameBatch:
        """Open ``sample``'s video, render its prompt and read the overview, within ``tool_timeout_s``
        (a decoder stuck in C code cannot hang ``reset``). The episode's state changes only when all
        of it succeeded; returns the overview frames."""
        try:
            video, prompt_frame, prompt_time, overview = self._tool_worker().call(
                self._load, sample, timeout_s=self.config.tool_timeout_s
            )
        except ToolTimeout:
            self._abandon_worker()
            raise VideoError(
                f"sample {sample.id!r}: reading its video did not finish within {self.config.tool_timeout_s:g} seconds"
            ) from None
        self._video, self._sample = video, sample
        self._prompt_frames = prompt_frame if isinstance(prompt_frame, tuple) else ()
        self._prompt_frame = self._prompt_frames[0] if self._prompt_frames else prompt_frame
        self._prompt_time = prompt_time
        self._offered, self.system_prompt = self._offer(sample.has_visual_prompt)
        return overview

    def _load(self, sample: Sample) -> tuple[Video, np.ndarray | None, float | None, FrameBatch]:
        """The decoding half of :meth:`_open`; touches no episode state (it may run on the worker)."""
        try:
            video = open_video(self.dataset.video_path(sample), cache=self.frame_cache)
        except VideoError as exc:
            raise VideoError(f"sample {sample.id!r}: {exc}") from exc
        try:
            if sample.has_visual_prompt:
                prompt_frame, prompt_time = self._render_prompt(sample, video)
                extra = tuple(self._read_prompt_image(path) for path in _extra_prompt_images(sample))
            else:
                prompt_frame, prompt_time, extra = None, None, ()
            cfg = self.config
            indices = self._overview_indices(video)
            overview = video.read(indices, max_pixels=self._overview_pixels(len(indices)), factor=cfg.patch_factor, stack=False)
        except VideoError as exc:
            video.close()
            raise VideoError(f"sample {sample.id!r}: {exc}") from exc
        except Exception as exc:  # bad prompt data (style, box, mask): name the sample
            video.close()
            raise VideoError(f"sample {sample.id!r}: cannot render its visual prompt: {exc}") from exc
        return video, (prompt_frame, *extra) if extra else prompt_frame, prompt_time, overview

    def _offer(self, prompted: bool) -> tuple[dict, str]:
        """The tools and system prompt of an episode: a question without a marked target gets no
        ``view_visual_prompt`` (there is nothing for it to show) and no sentence about the mark."""
        tools = {name: tool for name, tool in self.tools.items() if prompted or name != "view_visual_prompt"}
        text = build_system_prompt([tool.prompt_text(self.config.compat_paths) for tool in tools.values()],
                                   style=self.config.prompt_style, visual_prompt=prompted)
        return tools, text

    def _close_video(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None

    def _render_prompt(self, sample: Sample, video: Video) -> tuple[np.ndarray, float | None]:
        """The prompt frame at the pixel budget and its time; rendered once per process and kept in
        the shared frame cache (so it counts against the cache's byte cap)."""
        spec = sample.prompt
        cfg = self.config
        time = spec.time if spec.image or spec.time is None else float(video.frame_times[video.index_at(spec.time)])
        spec_json = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str)
        image_key = file_key(self.dataset.resolve(spec.image)) if spec.image else ()  # an edited PNG is re-read
        key = (*video.key, "prompt", hashlib.sha1(spec_json.encode()).hexdigest(), *image_key, cfg.max_pixels, cfg.patch_factor)
        cached = video.cache.get(key)
        if cached is not None:
            return cached, time
        if spec.image:
            image = _read_rgb(self.dataset.resolve(spec.image))
            time = spec.time
        else:
            if spec.time is None:
                raise VideoError("the visual prompt has neither a time nor an image")
            from vseek_env.masks import decode_rle
            from vseek_env.visual_prompts import render_visual_prompt

            index = video.index_at(spec.time)
            batch = video.read([index], max_pixels=None)
            mask = decode_rle(spec.mask_rle, shape=batch.frames[0].shape) if spec.mask_rle else None
            rendered = render_visual_prompt(
                batch.frames[0], spec.style, box=spec.box, mask=mask, rng=spec.seed, label=spec.label,
                others=spec.others,
            )
            image, time = rendered.image, float(batch.times[0])
        image = self._at_pixel_budget(image)
        video.cache.put(key, image)
        return image, time

    def _read_prompt_image(self, path: str) -> np.ndarray:
        """A further pre-rendered prompt frame (multi-frame V2P prompts) at the pixel budget."""
        return self._at_pixel_budget(_read_rgb(self.dataset.resolve(path)))

    def _at_pixel_budget(self, image: np.ndarray) -> np.ndarray:
        """A prompt image resized (bicubic) to ``max_pixels`` on the ``patch_factor`` grid."""
        cfg = self.config
        h, w = smart_resize(image.shape[0], image.shape[1], max_pixels=cfg.max_pixels, factor=cfg.patch_factor)
        return np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC))

    def _question_text(self, sample: Sample, video: Video, n_overview: int, *, before: bool = True) -> str:
        """The video's description, then (``before``) the question; the paper's order puts the
        question after the video (:meth:`_question_lines`)."""
        how = (f"sampled at {format_number(self.config.overview_fps)} per second" if self.config.overview_fps
               else "sampled uniformly from it")
        head = (f"Video: {format_number(video.duration)} seconds, {video.width}x{video.height} pixels. "
                f"Below are {n_overview} frames {how}.")
        if self.config.overview_as_video:
            head = (f"Video: {format_number(video.duration)} seconds, {video.width}x{video.height} pixels, "
                    f"given as {n_overview} frames {how}, each with its time:")
        return head + ("\n\n" + self._question_lines(sample, video) if before else "")

    def _question_lines(self, sample: Sample, video: Video) -> str:
        lines = [f"Question: {sample.question}"]
        if sample.options:
            lines.append(sample.choices_text)
        lines.append(_ANSWER_INSTRUCTIONS[sample.answer_kind].format(w=video.width, h=video.height))
        return "\n".join(lines) + "\n"

    def _overview_indices(self, video: Video) -> np.ndarray:
        """The overview's frames: ``overview_frames`` uniform ones, or ``overview_fps`` a second
        capped at ``overview_frames`` (then spread over the whole video)."""
        cfg = self.config
        n = cfg.overview_frames
        if cfg.overview_fps is not None:
            n = min(n, max(1, int(video.duration * cfg.overview_fps + 1e-9)))
        return video.uniform_indices(n)

    def _overview_pixels(self, n_frames: int) -> int:
        """The per-frame pixel budget of an ``n_frames`` overview: ``max_pixels``, lowered so that
        its vision tokens (:func:`overview_tokens`) stay within ``overview_max_tokens``."""
        cfg = self.config
        if cfg.overview_max_tokens is None:
            return cfg.max_pixels
        units = token_units(n_frames, cfg.overview_as_video)
        per_frame = cfg.overview_max_tokens // units
        if per_frame < 1:
            raise VideoError(f"overview_max_tokens={cfg.overview_max_tokens} cannot hold {n_frames} frames "
                             f"(at least {units} tokens); raise it or lower overview_frames")
        return min(cfg.max_pixels, per_frame * cfg.patch_factor ** 2)

    def _video_part(self, frames: list[dict], duration: float) -> dict:
        return video_part([f["image"] for f in frames], [f["time"] for f in frames], duration=duration)

    def _run_tool(self, name: str, arguments: dict, room: int) -> tuple[ToolRecord, ToolResult | None, str]:
        """Validate and run one call that may return at most ``room`` frames."""
        tool = self._offered.get(name)
        if tool is None:
            msg = f"unknown tool {name!r}; available tools: {', '.join(self._offered) or 'none'}."
            return ToolRecord(name, arguments, ok=False, error_code=ErrorCode.UNKNOWN_TOOL.value, message=msg), None, f"Error: {msg}"
        ctx = ToolContext(
            video=self._video, sample=self._sample, config=self.config, prompt_frame=self._prompt_frame,
            prompt_time=self._prompt_time, prompt_frames=self._prompt_frames, video_name=str(self._sample.video),
            frame_name=str(self._sample.prompt.image or ""),
            max_frames=max(0, min(room, self.config.max_frames_per_episode - self._frames_returned)),
        )
        try:
            clean = tool.validate(arguments, ctx)
        except ToolArgumentError as exc:
            return ToolRecord(name, arguments, ok=False, error_code=exc.code.value, message=str(exc)), None, f"Error: {exc}"
        if ctx.max_frames == 0:
            if self._frames_returned >= self.config.max_frames_per_episode:
                msg = f"the episode's frame budget ({self.config.max_frames_per_episode} frames) is spent; answer now."
            else:
                msg = f"this response's observation is full ({self.config.obs_frames} frames); call {name} in your next response."
            return ToolRecord(name, arguments, ok=False, error_code=ErrorCode.BUDGET_EXCEEDED.value, message=msg), None, f"Error: {msg}"
        try:
            result = self._call(tool, clean, ctx)
        except ToolTimeout:
            self._abandon_worker()
            msg = (f"{name} did not finish within {self.config.tool_timeout_s:g} seconds and was stopped; "
                   "try a shorter window or another tool.")
            return ToolRecord(name, arguments, ok=False, error_code=ErrorCode.TOOL_FAILED.value, message=msg), None, f"Error: {msg}"
        except Exception as exc:  # a failing tool is an observation, never a crash of the episode
            detail = str(exc) if isinstance(exc, VideoError) else f"{type(exc).__name__}: {exc}"
            msg = f"{name} failed on this video: {detail}"
            return ToolRecord(name, arguments, ok=False, error_code=ErrorCode.TOOL_FAILED.value, message=msg), None, f"Error: {msg}"
        self._frames_returned += len(result.times)
        notes = tool.compat_notes(arguments, ctx)
        text = " ".join(notes + [result.text])
        record = ToolRecord(
            name, clean, ok=True, message=text, window=result.window, times=tuple(float(t) for t in result.times)
        )
        return record, result, text

    def _call(self, tool, arguments: dict, ctx: ToolContext) -> ToolResult:
        """``tool.run`` under ``tool_timeout_s``: on the worker thread, or right here when it cannot
        hang -- a built-in tool whose every frame is already in the cache (no decode, no disk read).

        The hand-off to the worker costs more than the rest of a warm step when the cores are busy
        (the worker waits to be scheduled), and most steps of a GRPO group re-read cached frames.
        """
        timeout = self.config.tool_timeout_s
        if timeout is not None and ctx.video is not None and _BUILTIN_RUNS.get(type(tool)) is type(tool).run:
            probe = _CachedOnly(ctx.video.cache)
            try:
                result = tool.run(arguments, dataclasses.replace(ctx, video=_reading_from(ctx.video, probe)))
            except _NotCached:
                pass  # something to decode or load: the worker does all of it, under the timeout
            else:
                probe.count_hits()
                return result
        return self._tool_worker().call(tool.run, arguments, ctx, timeout_s=timeout)

    def _abandon_worker(self) -> None:
        """Drop a worker stuck in a call (e.g. in C decoding code, which cannot be interrupted): its
        thread exits once the call returns; later calls get a fresh worker."""
        self._worker.close()
        self._worker = None

    def _tool_worker(self) -> ToolWorker:
        if self._worker is None or not self._worker.alive:  # a forked child has no worker thread
            self._worker = ToolWorker()
        return self._worker

    def _dropped_calls(self, action: str, parsed) -> list:
        """The tool calls of ``action`` past ``max_tool_calls_per_turn`` (parsed without the limit)."""
        if not any(e.code == ErrorCode.TOO_MANY_TOOL_CALLS for e in parsed.errors):
            return []
        return list(parse_response(action, max_chars=self.config.max_response_chars).tool_calls[len(parsed.tool_calls):])

    def _feedback(self, errors: list[ProtocolError], truncated: bool) -> str:
        lines = [f"Error ({e.code.value}): {e.message}" for e in errors]
        if truncated:
            lines.append("The episode has ended without an answer.")
        elif self._turn == self.config.max_turns - 1 and self.config.last_turn_hint:
            lines.append("This is your last turn: give the final answer now in <answer>...</answer>.")
        elif errors:
            left = self.config.error_budget - self._error_count
            lines.append(f"Fix the response and try again ({left} more failed responses are allowed).")
        return "\n".join(lines)

    def _frame_parts(self, frames: list[dict]) -> list[dict]:
        parts: list[dict] = []
        for frame in frames:
            label = format_timestamp_label(frame["time"]) if frame["time"] is not None and frame["time"] >= 0 else "<frame>"
            parts.append({"type": "text", "text": label})
            parts.append({"type": "image", "image": frame["image"]})
        return parts

    def _observation(self, messages: list[dict], frames: list[dict]) -> dict:
        cfg = self.config
        text = "\n\n".join(_message_text(m) for m in messages)
        if len(text) > cfg.max_text_chars:
            marker = "\n[text truncated]"
            text = (text[: max(0, cfg.max_text_chars - len(marker))] + marker)[: cfg.max_text_chars]
        shown = frames[: cfg.obs_frames]
        stamps = np.full((cfg.obs_frames,), -1.0)
        if shown:
            stamps[: len(shown)] = [-1.0 if f["time"] is None or f["time"] < 0 else f["time"] for f in shown]
        self._last_frames = frames
        return {
            "text": text,
            "frames": self._stacked_thumbnails(shown),
            "timestamps": stamps,
            "num_frames": min(len(frames), cfg.obs_frames),
            "turn": self._turn,
        }

    def _stacked_thumbnails(self, frames: list[dict]) -> np.ndarray:
        """``obs["frames"]``: the frames' thumbnails stacked, in a new array of the observation's own.

        The stack of a set of video frames is kept with them in the frame cache under
        ``(*video key, "obs", ((index, h, w), ...), size)``, sealed (:mod:`vseek_env.sealed`): each
        step that shows that set again (the rollouts of a GRPO group re-reading one window) gets
        a copy-on-write mapping of it instead of re-stacking 64 thumbnails (4.9 MB).
        """
        h, w = self.config.obs_frame_size
        if not frames:
            return np.zeros((0, h, w, 3), np.uint8)
        video = self._video
        if video is None or any(f["index"] is None for f in frames):
            return np.stack([self._thumbnail(frame) for frame in frames])
        key = (*video.key, "obs", tuple((f["index"], *f["image"].shape[:2]) for f in frames), (h, w))
        stacked = video.cache.peek(key)
        if stacked is None:
            stacked = seal([self._thumbnail(frame) for frame in frames])
            video.cache.put(key, stacked)
        return fresh_copy(stacked)

    def _thumbnail(self, frame: dict) -> np.ndarray:
        """The frame letterboxed to ``obs_frame_size``; video frames' thumbnails are cached with them,
        so the rollouts of a GRPO group letterbox each frame once."""
        size = self.config.obs_frame_size
        if frame.get("index") is None or self._video is None:
            return _letterbox(frame["image"], size)
        cache = self._video.cache
        key = (*self._video.key, frame["index"], ("letterbox", *frame["image"].shape[:2], *size))
        thumb = cache.get(key)
        if thumb is None:
            thumb = _letterbox(frame["image"], size)
            cache.put(key, thumb)
        return thumb

    def _info(self, messages, frames, *, parsed, tool_results, errors) -> dict:
        video = self._video
        info = {
            "sample_id": self._sample.id,
            "turn": self._turn,
            "messages": messages,
            "frames": frames,
            "parsed": parsed.to_dict() if parsed is not None else {},
            "tool_results": tool_results,
            "errors": [e.to_dict() for e in errors],
            "error_count": self._error_count,
            "num_tool_calls": self._tool_calls_run,
            "video": {"duration": video.duration, "width": video.width, "height": video.height, "fps": video.fps},
            "state_key": self._state_key(),
        }
        if self.config.diagnostics:
            info["cache"] = video.cache.stats()
        if self.config.info_ground_truth:
            info["sample"] = self._sample
        return info

    def _state_key(self) -> tuple:
        """``(sample id, turn, sha1 of the responses so far joined by "\\x1e")``, hashed incrementally."""
        return (self._sample.id, self._turn, self._responses_hash.copy().hexdigest())

    def _transcript(self) -> str:
        return "\n".join(f"[{m['role']}] {_message_text(m)}" for m in self.conversation)


# The built-in tools' own ``run`` functions: only these run inline on cached frames (a replaced or
# overridden ``run`` may do anything, so it keeps the worker's timeout).
_BUILTIN_RUNS = {cls: cls.run for cls in (CropVideo, ZoomIn, ViewVisualPrompt)}


class _NotCached(BaseException):
    """Raised out of an inline tool run that needs more than the cache holds. A BaseException so
    that no ``except Exception`` on the way (which would turn it into a tool error) can catch it."""


class _CachedOnly:
    """A :class:`FrameCache` as a tool run inline sees it: hits are served, anything else (a miss,
    a ``put``, any other method) raises :class:`_NotCached` before any work is done.

    Hits are looked up with ``peek`` and counted on the real cache only when the run succeeds, so
    the cache's counters read the same whichever thread ran the call.
    """

    def __init__(self, cache: FrameCache) -> None:
        self._cache = cache
        self._hits = 0

    def get(self, key: tuple) -> np.ndarray:
        frame = self._cache.peek(key)
        if frame is None:
            raise _NotCached
        self._hits += 1
        return frame

    def __getattr__(self, name: str) -> Any:
        raise _NotCached

    def count_hits(self) -> None:
        with self._cache._lock:
            self._cache.hits += self._hits


def _reading_from(video: Video, cache: "_CachedOnly") -> Video:
    """A shallow copy of ``video`` that reads through ``cache``."""
    probe = copy.copy(video)
    probe.cache = cache
    return probe


def overview_tokens(n_frames: int, height: int, width: int, *, factor: int, as_video: bool) -> int:
    """Vision tokens of an overview of ``n_frames`` frames of ``height x width`` (multiples of
    ``factor`` = patch size x merge size) for Qwen-VL models: video frames go in pairs
    (temporal patch 2), each pair or image costing ``(height / factor) * (width / factor)``.

    >>> overview_tokens(256, 224, 448, factor=32, as_video=True)     # 128 pairs x 7 x 14
    12544
    """
    return token_units(n_frames, as_video) * (height // factor) * (width // factor)


def _read_rgb(path) -> np.ndarray:
    try:  # a literal regular file of bounded size, like every path from data
        return read_image(path)
    except ImageError as exc:
        raise VideoError(f"cannot read visual-prompt image: {exc}") from exc


def _extra_prompt_images(sample: Sample) -> list[str]:
    """Prompt frames after the first, for samples marked on several frames (V2P's list ``frame_path``)."""
    paths = (sample.meta or {}).get("prompt_images") or []
    return [str(p) for p in paths[1:]] if sample.prompt.image else []


def _message_text(message: dict) -> str:
    """A chat message as text, with each image replaced by ``<image>``."""
    # Text that merely says "<image>" (a model's tool name echoed in an error) must not pass for an
    # image: processors count placeholders against the images they are given.
    return "".join(
        p["text"].replace(IMAGE_PLACEHOLDER, "[image]").replace(VIDEO_PLACEHOLDER, "[video]") if p["type"] == "text"
        else VIDEO_PLACEHOLDER if p["type"] == "video" else IMAGE_PLACEHOLDER
        for p in message["content"]
    )


def _letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fit ``image`` into ``size`` keeping its aspect ratio; nearest-neighbour, centred, black bars."""
    h, w = size
    ih, iw = image.shape[:2]
    scale = min(h / ih, w / iw)
    nh, nw = max(1, int(ih * scale)), max(1, int(iw * scale))
    out = np.zeros((h, w, 3), np.uint8)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[top : top + nh, left : left + nw] = np.asarray(Image.fromarray(image).resize((nw, nh), Image.NEAREST))
    out.setflags(write=False)
    return out


def _frame_grid(frames: list[dict], size: tuple[int, int], columns: int = 4) -> np.ndarray:
    """The frames of one observation tiled in a grid, each captioned with its time.

    Cells are ``size[1]`` wide with the first frame's aspect ratio, so video frames fill them.
    """
    from PIL import ImageDraw

    w = size[1]
    if frames:
        ih, iw = frames[0]["image"].shape[:2]
        h = max(1, round(w * ih / iw))
    else:
        h = size[0]
    caption = 14
    n = max(1, len(frames))
    rows = (n + columns - 1) // columns
    canvas = Image.new("RGB", (columns * w, rows * (h + caption)), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        canvas.paste(Image.fromarray(_letterbox(frame["image"], (h, w))), (c * w, r * (h + caption) + caption))
        label = frame["source"] + (f" {format_number(frame['time'])}s" if frame["time"] is not None and frame["time"] >= 0 else "")
        draw.text((c * w + 2, r * (h + caption) + 1), label, fill=(255, 255, 255))
    return np.asarray(canvas)
