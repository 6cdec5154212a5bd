"""``view_visual_prompt()``: show the frame on which the target is marked."""

from __future__ import annotations

import numpy as np

from vseek_env.protocol import format_timestamp_label
from vseek_env.tools.base import Param, Tool, ToolContext, ToolResult


class ViewVisualPrompt(Tool):
    """Returns the rendered visual-prompt frame (the same image every call)."""

    name = "view_visual_prompt"
    description = "Show the frame on which the target of the question is marked with a visual prompt."
    params = (Param("frame_path", "string", "ignored; kept for compatibility", required=False, compat_only=True),)

    def run(self, arguments: dict, ctx: ToolContext) -> ToolResult:
        frame = ctx.prompt_frame
        if ctx.prompt_time is None:
            text = "The visual-prompt frame (its time in the video is not known):"
            times = np.array([-1.0])
        else:
            text = f"The visual-prompt frame, shown at {format_timestamp_label(ctx.prompt_time)}:"
            times = np.array([ctx.prompt_time])
        return ToolResult(text=text, frames=frame[None], times=times)
