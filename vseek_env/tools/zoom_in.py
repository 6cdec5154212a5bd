"""``zoom_in(time, box)``: a high-resolution crop of one frame (DeepEyes-style). Optional."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vseek_env.protocol import ErrorCode, format_number, format_timestamp_label
from vseek_env.tools.base import Param, Tool, ToolArgumentError, ToolContext, ToolResult
from vseek_env.video import smart_resize

MIN_SIDE = 8  # pixels of the original video; smaller regions are rejected


class ZoomIn(Tool):
    """The region ``box`` (original-video pixels) of the frame shown at ``time``, at full detail.

    The box is clipped to the frame; after clipping each side must be at least 8 pixels. The crop is
    decoded at full resolution and resized to the env's pixel budget.
    """

    name = "zoom_in"
    description = "Look closely at a region [x1, y1, x2, y2] (video pixels) of the frame shown at a time (seconds)."
    params = (
        Param("time", "number", "time in seconds of the frame to zoom into"),
        Param("box", "box", "region [x1, y1, x2, y2] in the video's pixel coordinates"),
    )

    def check(self, arguments: dict, ctx: ToolContext | None) -> dict:
        t = arguments["time"]
        x1, y1, x2, y2 = arguments["box"]
        if ctx is not None:
            if not 0 <= t <= ctx.video.duration:
                raise ToolArgumentError(
                    ErrorCode.OUT_OF_RANGE,
                    f"zoom_in: time {format_number(t)} is outside the video (0 to {format_number(ctx.video.duration)} seconds).",
                )
            x1, x2 = max(0.0, x1), min(float(ctx.video.width), x2)
            y1, y2 = max(0.0, y1), min(float(ctx.video.height), y2)
        if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
            raise ToolArgumentError(
                ErrorCode.OUT_OF_RANGE,
                f"zoom_in: the box must be at least {MIN_SIDE}x{MIN_SIDE} pixels inside the frame "
                f"(x1 < x2, y1 < y2); got {list(arguments['box'])}.",
            )
        return {"time": t, "box": (x1, y1, x2, y2)}

    def run(self, arguments: dict, ctx: ToolContext) -> ToolResult:
        index = ctx.video.index_at(arguments["time"])
        batch = ctx.video.read([index], max_pixels=None)
        x1, y1, x2, y2 = (int(round(v)) for v in arguments["box"])
        region = batch.frames[0][y1:y2, x1:x2]
        h, w = smart_resize(region.shape[0], region.shape[1], max_pixels=ctx.config.max_pixels, factor=ctx.config.patch_factor)
        zoomed = np.asarray(Image.fromarray(region).resize((w, h), Image.BICUBIC))
        text = f"Region [{x1}, {y1}, {x2}, {y2}] of the frame at {format_timestamp_label(float(batch.times[0]))}:"
        return ToolResult(text=text, frames=zoomed[None], times=batch.times)
