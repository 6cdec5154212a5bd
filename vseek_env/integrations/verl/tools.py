"""verl ``BaseTool`` adapters over the env's tools, for verl's stock ``tool_agent`` loop.

One adapter class, parametrised by tool name: its schema is the tool's own
:meth:`~vseek_env.tools.Tool.json_schema`, and a call runs through a per-trajectory
:class:`VideoSeekerEnv` (rebuilt from the row's ``tools_kwargs``), so validation, clamping, frame
sampling, budgets and error messages are exactly the env's. Frames come back as images (the stock
loop rejects video) with their timestamps listed in the text, because the stock loop puts a tool
message's images first and its text last.

verl creates and releases a tool instance around every single call and has no end-of-trajectory
hook, so one module-level registry, shared by every adapter, keeps one env per trajectory (keyed by
a token stored on the trajectory's ``agent_data``, whose ``request_id`` may repeat across steps
with ``full_determinism``). The env is closed when that ``agent_data`` is garbage collected, i.e.
when the trajectory has ended; as a backstop the registry holds at most ``max_episodes`` envs and
evicts the least recently used one, closing it under its lock so a call in flight finishes first.
The adapter also appends a record of each call that ran (the env's clamped window, frames sent) to
``agent_data.extra_fields["vseek_tool_calls"]``, which reaches ``compute_score`` as
``extra_info["vseek_tool_calls"]`` and is preferred there over the calls parsed from the text.

Example (the YAML comes from :func:`~.tool_config.write_tool_config`):
    >>> write_tool_config("vseek_tools.yaml")                              # doctest: +SKIP
    >>> from verl.tools.tool_registry import initialize_tools_from_config   # doctest: +SKIP
    >>> [t.name for t in initialize_tools_from_config("vseek_tools.yaml")]  # doctest: +SKIP
    ['view_visual_prompt', 'crop_video']
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
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


_EPISODE_KEY = "_vseek_episode_key"


class _Episode:
    """One trajectory's env; ``lock`` serialises its calls and its closing."""

    def __init__(self, env: Any) -> None:
        self.env, self.lock, self.closed = env, asyncio.Lock(), False


class EpisodeRegistry:
    """The envs of running trajectories, shared by every :class:`VSeekTool` of a process.

    Example:
        >>> registry = EpisodeRegistry(max_episodes=8)
        >>> len(registry)
        0
    """

    def __init__(self, max_episodes: int = 64) -> None:
        self.max_episodes = max_episodes
        self._episodes: OrderedDict[str, _Episode] = OrderedDict()
        self._guard = threading.Lock()  # finalizers run on whichever thread collects garbage

    def __len__(self) -> int:
        return len(self._episodes)

    async def run(self, key: str, create_kwargs: dict, dataset_root: str | None, fn) -> Any:
        """``fn(env)`` in a worker thread on ``key``'s env, built and reset on first use."""
        while True:
            episode = await self._get(key, create_kwargs, dataset_root)
            async with episode.lock:  # parallel calls of one trajectory share its env
                if not episode.closed:  # else evicted between lookup and lock: rebuild
                    return await asyncio.to_thread(fn, episode.env)

    def discard(self, key: str) -> None:
        """Close ``key``'s env (the trajectory ended); a no-op for unknown keys."""
        with self._guard:
            episode = self._episodes.pop(key, None)
        if episode is not None and not episode.closed:
            episode.closed = True
            episode.env.close()

    async def _get(self, key: str, create_kwargs: dict, dataset_root: str | None) -> _Episode:
        with self._guard:
            if key in self._episodes:
                self._episodes.move_to_end(key)
                return self._episodes[key]

        def build():
            env, sample_id = env_from_extra_info(create_kwargs, env_options=_UNBOUNDED, dataset_root=dataset_root)
            env.reset(options={"sample_id": sample_id})
            return env

        env = await asyncio.to_thread(build)
        evicted: list[_Episode] = []
        with self._guard:
            winner = self._episodes.get(key)
            if winner is None:
                winner = self._episodes[key] = _Episode(env)
                while len(self._episodes) > self.max_episodes:
                    evicted.append(self._episodes.popitem(last=False)[1])
        if winner.env is not env:  # another call of the same trajectory won the race
            await asyncio.to_thread(env.close)
        for old in evicted:
            async with old.lock:  # waits for a call in flight on that env
                old.closed = True
                await asyncio.to_thread(old.env.close)
        return winner


EPISODES = EpisodeRegistry()  # one per process: verl's tools and agent loops share a worker's loop


def _episode_key(agent_data: Any, instance_id: str) -> str:
    """The trajectory's registry key; its env is discarded when ``agent_data`` is collected."""
    if agent_data is None:
        return instance_id
    key = getattr(agent_data, _EPISODE_KEY, None)
    if key is None:
        key = f"{getattr(agent_data, 'request_id', '')}-{uuid4().hex}"
        setattr(agent_data, _EPISODE_KEY, key)
        try:
            weakref.finalize(agent_data, EPISODES.discard, key)
        except TypeError:  # not weak-referenceable: the LRU bound closes it eventually
            pass
    return key


class VSeekTool(BaseTool):
    """A vseek tool as a verl native tool. ``config``: ``{"type": "native", "tool": NAME,
    "compat_paths": bool, "max_episodes": int, "dataset_root": str | None}``.

    ``max_episodes`` bounds the shared registry (the YAML gives every tool the same value);
    ``dataset_root`` replaces the rows' root (videos on shared storage on the workers).
    """

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None):
        name = config.get("tool")
        if not name:
            raise ValueError(f"{ADAPTER_CLASS} needs config.tool, one of the vseek tools (e.g. 'crop_video')")
        self.tool = get_tool(name)
        self.compat_paths = bool(config.get("compat_paths", False))
        self.dataset_root = config.get("dataset_root") or None
        EPISODES.max_episodes = int(config.get("max_episodes", EPISODES.max_episodes))
        self._instances: dict[str, dict] = {}
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
        call = json.dumps({"name": self.name, "arguments": parameters})
        step = lambda env: env.step(f"<think></think><tool_call>{call}</tool_call>")  # noqa: E731
        key = _episode_key(agent_data, instance_id)
        _, _, _, _, info = await EPISODES.run(key, create_kwargs, self.dataset_root, step)
        if agent_data is None:  # no trajectory to attach the env to: this call is its whole episode
            await asyncio.to_thread(EPISODES.discard, key)
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
