"""``view_visual_prompt()``: show the frame(s) on which the target is marked."""

from __future__ import annotations

import numpy as np

from vseek_env.protocol import format_timestamp_label
from vseek_env.tools.base import Param, Tool, ToolContext, ToolResult


class ViewVisualPrompt(Tool):
    """Returns the rendered visual-prompt frame (the same image every call), or all of a sample's
    marked frames when it has several (some V2P-Bench questions).

    With ``EnvConfig.reveal_prompt_time`` (the default) the text says when the frame is; with it
    off (the paper's tool) the frame comes without a time, labelled ``<frame>``.
    """

    name = "view_visual_prompt"
    description = (
        "Show the frame of the video on which the target instance of the question is marked with a "
        "visual prompt (a box, contour, arrow, point, ...). Takes no arguments."
    )
    params = (Param("frame_path", "string", "ignored; kept for compatibility", required=False, compat_only=True),)

    def run(self, arguments: dict, ctx: ToolContext) -> ToolResult:
        frames = tuple(ctx.prompt_frames) or (ctx.prompt_frame,)
        reveal = getattr(ctx.config, "reveal_prompt_time", True)
        if len(frames) > 1:
            text = f"The {len(frames)} frames on which the target is marked:"
            return ToolResult(text=text, frames=frames, times=np.full(len(frames), -1.0))
        if ctx.prompt_time is None or not reveal:
            text = "The frame on which the target is marked:" if not reveal else \
                "The visual-prompt frame (its time in the video is not known):"
            times = np.array([-1.0])
        else:
            text = f"The visual-prompt frame, shown at {format_timestamp_label(ctx.prompt_time)}:"
            times = np.array([ctx.prompt_time])
        return ToolResult(text=text, frames=frames[0][None], times=times)
