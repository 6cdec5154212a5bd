"""verl ``BaseTool`` adapters over the env's tools, for verl's stock ``tool_agent`` loop.

One adapter class, parametrised by tool name: its schema is the tool's own
:meth:`~vseek_env.tools.Tool.json_schema`, and a call runs through a per-trajectory
:class:`VideoSeekerEnv` (rebuilt from the row's ``tools_kwargs``), so validation, clamping, frame
sampling, budgets and error messages are exactly the env's. Frames come back as images (the stock
loop rejects video) with their timestamps listed in the text, because the stock loop puts a tool
message's images first and its text last.

verl creates and releases a tool instance around every single call, so the episode env is keyed
by the trajectory's ``agent_data.request_id``; idle envs are evicted (least recently used first).
The adapter also appends a record of each call to ``agent_data.extra_fields["vseek_tool_calls"]``,
which reaches ``compute_score`` as ``extra_info["vseek_tool_calls"]``.

Example (the YAML comes from :func:`~.tool_config.write_tool_config`):
    >>> write_tool_config("vseek_tools.yaml")                              # doctest: +SKIP
    >>> from verl.tools.tool_registry import initialize_tools_from_config   # doctest: +SKIP
    >>> [t.name for t in initialize_tools_from_config("vseek_tools.yaml")]  # doctest: +SKIP
    ['view_visual_prompt', 'crop_video']
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Any
from uuid import uuid4

from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from vseek_env.integrations.verl.messages import to_pil
from vseek_env.integrations.verl.rows import CREATE_KWARGS_KEYS, env_from_extra_info
from vseek_env.integrations.verl.tool_config import ADAPTER_CLASS
from vseek_env.protocol import format_timestamp_label
from vseek_env.tools import get_tool

# verl's loop bounds the turns and tool calls; the env must not end the episode on its own.
_UNBOUNDED = {"max_turns": 1_000_000, "error_budget": 1_000_000}


class VSeekTool(BaseTool):
    """A vseek tool as a verl native tool. ``config``: ``{"type": "native", "tool": NAME,
    "compat_paths": bool, "max_episodes": int}``."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None):
        name = config.get("tool")
        if not name:
            raise ValueError(f"{ADAPTER_CLASS} needs config.tool, one of the vseek tools (e.g. 'crop_video')")
        self.tool = get_tool(name)
        self.compat_paths = bool(config.get("compat_paths", False))
        self.max_episodes = int(config.get("max_episodes", 256))
        self._instances: dict[str, dict] = {}
        self._episodes: OrderedDict[str, tuple[Any, asyncio.Lock]] = OrderedDict()
        super().__init__(config, tool_schema)

    def get_openai_tool_schema(self) -> OpenAIFunctionToolSchema:
        return OpenAIFunctionToolSchema.model_validate(self.tool.json_schema(self.compat_paths))

    async def create(self, instance_id: str | None = None, **kwargs: Any) -> tuple[str, ToolResponse]:
        instance_id = instance_id or uuid4().hex
        create_kwargs = kwargs.get("create_kwargs") or {}
        missing = [key for key in CREATE_KWARGS_KEYS if key not in create_kwargs]
        if missing:
            raise ValueError(
                f"{self.name}: tools_kwargs[{self.name!r}].create_kwargs lacks {missing}; export the rows with "
                "`vseek export-verl`"
            )
        self._instances[instance_id] = dict(create_kwargs)
        return instance_id, ToolResponse()

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs: Any) -> tuple[ToolResponse, float, dict]:
        create_kwargs = self._instances[instance_id]
        agent_data = kwargs.get("agent_data")
        key = getattr(agent_data, "request_id", None) or instance_id
        env, lock = await self._episode(key, create_kwargs)
        call = json.dumps({"name": self.name, "arguments": parameters})
        async with lock:  # parallel calls of one trajectory share its env
            _, _, _, _, info = await asyncio.to_thread(env.step, f"<think></think><tool_call>{call}</tool_call>")
        result = info["tool_results"][0] if info["tool_results"] else None
        if result is None:  # the call did not parse (e.g. non-JSON arguments): report the env's error
            text = "\n".join(f"Error ({e['code']}): {e['message']}" for e in info["errors"]) or "Error: no tool call"
            record = {"name": self.name, "ok": False, "error_code": info["errors"][0]["code"] if info["errors"] else None,
                      "window": None, "num_frames": 0}
            images: list = []
        else:
            frames = [f for f in info["frames"] if f["source"] == self.name]
            images = await asyncio.to_thread(lambda: [to_pil(f["image"]) for f in frames])
            text = result["text"]
            if frames:
                labels = ", ".join(format_timestamp_label(f["time"]) if f["time"] >= 0 else "<frame>" for f in frames)
                text += f"\nFrames in order: {labels}"
            record = {"name": self.name, "ok": result["ok"], "error_code": result["error_code"],
                      "window": result["window"], "num_frames": len(frames)}
        if agent_data is not None:
            agent_data.extra_fields.setdefault("vseek_tool_calls", []).append(record)
        response = ToolResponse(text=text, image=images) if images else ToolResponse(text=text)
        return response, 0.0, {"ok": record["ok"], "num_frames": record["num_frames"]}

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        self._instances.pop(instance_id, None)

    async def _episode(self, key: str, create_kwargs: dict) -> tuple[Any, asyncio.Lock]:
        if key in self._episodes:
            self._episodes.move_to_end(key)
            return self._episodes[key]

        def build():
            env, sample_id = env_from_extra_info(create_kwargs, env_options=_UNBOUNDED)
            env.reset(options={"sample_id": sample_id})
            return env

        env = await asyncio.to_thread(build)
        if key in self._episodes:  # another call of the same trajectory won the race
            await asyncio.to_thread(env.close)
            return self._episodes[key]
        self._episodes[key] = (env, asyncio.Lock())
        while len(self._episodes) > self.max_episodes:
            _, (old, _) = self._episodes.popitem(last=False)
            await asyncio.to_thread(old.close)
        return self._episodes[key]
