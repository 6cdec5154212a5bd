"""The tool-config YAML verl's ``multi_turn.tool_config_path`` reads. No verl import.

Each entry names the one adapter class (:class:`~.tools.VSeekTool`) and the tool it wraps; the
schema is left out so the adapter builds it from the tool's own definition.

Example:
    >>> tool_config(["crop_video"])["tools"][0]["config"]["tool"]
    'crop_video'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from vseek_env.tools import DEFAULT_TOOLS, get_tool

ADAPTER_CLASS = "vseek_env.integrations.verl.tools.VSeekTool"


def tool_config(
    tools: Sequence[str] = DEFAULT_TOOLS,
    *,
    compat_paths: bool = False,
    max_episodes: int = 64,
    dataset_root: str | None = None,
) -> dict:
    """verl's tool-config mapping for ``tools`` (names of vseek tools).

    ``max_episodes`` bounds the envs kept for unfinished trajectories per worker process;
    ``dataset_root`` replaces the rows' video root on the workers (like the agent loop's option).
    """
    for name in tools:
        get_tool(name)  # an unknown name fails here, listing the known ones
    return {
        "tools": [
            {"class_name": ADAPTER_CLASS,
             "config": {"type": "native", "tool": name, "compat_paths": compat_paths, "max_episodes": max_episodes,
                        "dataset_root": dataset_root}}
            for name in tools
        ]
    }


def write_tool_config(path: str | os.PathLike, tools: Sequence[str] = DEFAULT_TOOLS, **kwargs: Any) -> Path:
    """Write :func:`tool_config` to ``path`` as YAML (JSON, itself valid YAML, when PyYAML is absent)."""
    config = tool_config(tools, **kwargs)
    try:
        import yaml

        text = yaml.safe_dump(config, sort_keys=False)
    except ImportError:
        text = json.dumps(config, indent=2) + "\n"
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
