"""``crop_video(start_time, end_time)``: re-watch a window of the video densely."""

from __future__ import annotations

from vseek_env.protocol import ErrorCode, format_number
from vseek_env.tools.base import Param, Tool, ToolArgumentError, ToolContext, ToolResult


class CropVideo(Tool):
    """Frames sampled from ``[start_time, end_time]``, each labelled with its presentation time.

    The window is clamped to ``[0, duration]`` (``EnvConfig.crop_clamp``); without clamping (the
    paper's tool) a window that starts before 0 or ends after the video's end is an
    ``out_of_range`` error. With ``fps``, ``min_frames`` and ``max_frames`` from
    the env config, the call returns ``n = clamp(ceil((end - start) * fps), min_frames, max_frames)``
    (``max_frames`` lowered to what still fits in the observation and the episode's frame budget)
    frames spread evenly over the frames whose presentation time lies in the window, or all of them
    when the window holds fewer than ``n``. Frames come from the global ``k / crop_fps`` time grid
    when the window holds enough grid frames, so overlapping windows of different rollouts share
    frames (cache hits) and a frame store built at that rate serves them. Times strictly increase. When no frame starts inside the
    window (a window shorter than one frame), the single frame displayed at ``start`` is returned.
    Reversed or empty windows and windows starting after the end are errors (``out_of_range``).
    """

    name = "crop_video"
    description = (
        "Watch the part of the video between start_time and end_time (seconds, within the video) "
        "more densely: frames sampled from that window, each labelled with its time."
    )
    params = (
        Param("start_time", "number", "window start in seconds"),
        Param("end_time", "number", "window end in seconds, greater than start_time"),
        Param("video_path", "string", "ignored; kept for compatibility", required=False, compat_only=True),
    )

    def check(self, arguments: dict, ctx: ToolContext | None) -> dict:
        start, end = arguments["start_time"], arguments["end_time"]
        if end <= start:
            raise ToolArgumentError(
                ErrorCode.OUT_OF_RANGE,
                f"crop_video: end_time ({format_number(end)}) must be greater than start_time ({format_number(start)}).",
            )
        if ctx is not None:
            duration = ctx.video.duration
            if start >= duration or end <= 0:
                raise ToolArgumentError(
                    ErrorCode.OUT_OF_RANGE,
                    f"crop_video: the window [{format_number(start)}, {format_number(end)}] is outside the video, "
                    f"which lasts {format_number(duration)} seconds.",
                )
            # The prompt shows the duration rounded to 0.01 s: ending there is not past the end.
            if not getattr(ctx.config, "crop_clamp", True) and (start < 0 or end > duration + 0.005):
                raise ToolArgumentError(
                    ErrorCode.OUT_OF_RANGE,
                    f"crop_video: the window [{format_number(start)}, {format_number(end)}] goes past the video, "
                    f"which runs from 0 to {format_number(duration)} seconds; choose a window inside it.",
                )
            start, end = max(0.0, start), min(duration, end)
        return {"start_time": start, "end_time": end}

    def run(self, arguments: dict, ctx: ToolContext) -> ToolResult:
        cfg = ctx.config
        start, end = arguments["start_time"], arguments["end_time"]
        # Less room in the observation or the episode's frame budget lowers the cap: the window is
        # still covered evenly, just more sparsely.
        cap = min(cfg.crop_max_frames, ctx.max_frames)
        indices = ctx.video.window_indices(start, end, fps=cfg.crop_fps, min_frames=min(cfg.crop_min_frames, cap), max_frames=cap)
        batch = ctx.video.read(indices, max_pixels=cfg.max_pixels, factor=cfg.patch_factor, stack=False)
        text = f"{len(batch.times)} frames from {format_number(start)} to {format_number(end)} seconds:"
        if cap < cfg.crop_max_frames and len(batch.times) == cap:
            text += f" (at most {cap} frames fit)"
        return ToolResult(text=text, frames=batch.frames, times=batch.times, window=(start, end), indices=batch.indices)
