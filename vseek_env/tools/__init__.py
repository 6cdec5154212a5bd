"""The tool registry: every tool an env can offer, by name.

Example:
    >>> from vseek_env.tools import get_tool
    >>> get_tool("crop_video").json_schema()["function"]["name"]
    'crop_video'
"""

from __future__ import annotations

from vseek_env.tools.base import Param, Tool, ToolArgumentError, ToolContext, ToolResult
from vseek_env.tools.crop_video import CropVideo
from vseek_env.tools.view_visual_prompt import ViewVisualPrompt
from vseek_env.tools.zoom_in import ZoomIn

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (ViewVisualPrompt(), CropVideo(), ZoomIn())}
DEFAULT_TOOLS = ("view_visual_prompt", "crop_video")


def get_tool(name: str) -> Tool:
    """The tool called ``name``; ``KeyError`` lists the known ones."""
    try:
        return TOOLS[name]
    except KeyError:
        raise KeyError(f"unknown tool {name!r}; known tools: {sorted(TOOLS)}") from None


__all__ = ["TOOLS", "DEFAULT_TOOLS", "Param", "Tool", "ToolArgumentError", "ToolContext", "ToolResult", "get_tool"]
