"""The ``BaseTool`` adapters: the generated tool YAML loads through verl's registry, and the tools run
inside verl's stock ``ToolAgentLoop`` (real ``_call_tool`` and tool-state handling) on CPU."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest

pytest.importorskip("verl.experimental.agent_loop", reason="needs the verl extra: pip install 'vseek-env[verl]'")

from test_verl_agent_loop import ANSWER, CROP, VIEW, ScriptedServer, compose_config  # noqa: E402
from tiny_vlm import IMAGE_PAD, build_tiny_processor  # noqa: E402

from vseek_env.integrations.verl.rows import make_rows, write_parquet  # noqa: E402
from vseek_env.integrations.verl.tool_config import tool_config, write_tool_config  # noqa: E402
from vseek_env.tools import get_tool  # noqa: E402

ENV_OPTIONS = {"overview_frames": 3, "crop_min_frames": 2, "crop_max_frames": 2}


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    from verl.tools.tool_registry import initialize_tools_from_config

    path = write_tool_config(tmp_path_factory.mktemp("tools") / "vseek_tools.yaml")
    return {tool.name: tool for tool in initialize_tools_from_config(str(path))}


@pytest.fixture(scope="module")
def rows(small_dataset):
    return list(make_rows(small_dataset, env_options=ENV_OPTIONS, embed_images=True, agent_name="tool_agent"))


def test_yaml_loads_one_adapter_per_tool_with_the_tools_own_schema(tools):
    assert sorted(tools) == ["crop_video", "view_visual_prompt"]
    for name, tool in tools.items():
        schema = tool.tool_schema.model_dump(exclude_unset=True, exclude_none=True)
        assert schema == get_tool(name).json_schema()
    with pytest.raises(KeyError, match="known tools"):
        tool_config(["crop_vid"])


def _loop_with_real_call_tool(tools, max_tool_response_length=4096):
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop

    loop = MagicMock(spec=ToolAgentLoop)
    loop.tools = tools
    loop.max_tool_response_length = max_tool_response_length
    loop.tool_response_truncate_side = "middle"
    loop._call_tool = ToolAgentLoop._call_tool.__get__(loop)
    return loop


def _call(tools, row, name, arguments, agent_data):
    from verl.experimental.agent_loop.tool_parser import FunctionCall

    loop = _loop_with_real_call_tool(tools)
    call = FunctionCall(name=name, arguments=json.dumps(arguments))
    return asyncio.run(loop._call_tool(call, row["extra_info"]["tools_kwargs"], agent_data))


def test_crop_returns_frames_as_images_with_their_timestamps(tools, rows):
    agent_data = SimpleNamespace(request_id="r1", extra_fields={})
    response, reward, metrics = _call(tools, rows[0], "crop_video", {"start_time": 2, "end_time": 4}, agent_data)
    assert len(response.image) == 2 and response.video is None
    assert response.text.startswith("2 frames from 2.0 to 4.0 seconds")
    labels = response.text.split("Frames in order: ")[1].split(", ")
    times = [float(label.strip("<>").split()[0]) for label in labels]
    assert len(times) == 2 and 2.0 <= times[0] < times[1] <= 4.0
    assert metrics == {"ok": True, "num_frames": 2} and reward == 0.0
    assert agent_data.extra_fields["vseek_tool_calls"] == [
        {"name": "crop_video", "ok": True, "error_code": None, "window": [2.0, 4.0], "num_frames": 2}
    ]


def test_bad_arguments_come_back_as_the_envs_error_text(tools, rows):
    agent_data = SimpleNamespace(request_id="r2", extra_fields={})
    response, _, metrics = _call(tools, rows[0], "crop_video", {"start_time": 5, "end_time": 1}, agent_data)
    assert response.image is None and "must be greater than start_time" in response.text
    assert metrics["ok"] is False
    assert agent_data.extra_fields["vseek_tool_calls"][0]["error_code"] == "out_of_range"
    response, _, _ = _call(tools, rows[0], "crop_video", {"start": 1}, agent_data)
    assert "crop_video takes no argument(s) ['start']" in response.text


def test_rows_without_create_kwargs_give_an_actionable_error(tools, rows):
    row = {"extra_info": {"tools_kwargs": {}}}
    response, _, _ = _call(tools, row, "crop_video", {"start_time": 0, "end_time": 1}, SimpleNamespace(request_id="r3", extra_fields={}))
    assert "Error executing tool 'crop_video'" in response.text and "vseek export-verl" in response.text


def test_stock_tool_agent_loop_runs_an_episode_with_the_adapters(tools, rows, tmp_path, env_spy):
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
    from omegaconf import OmegaConf
    from test_verl_export import PILDataset

    processor = build_tiny_processor("qwen2_5_vl")
    cfg = compose_config(4096)
    cfg.actor_rollout_ref.rollout.multi_turn.max_assistant_turns = 5
    cfg.actor_rollout_ref.rollout.multi_turn.max_tool_response_length = 2048
    path = write_parquet(rows[:1], tmp_path / "rows.parquet")
    item = PILDataset(data_files=[str(path)], tokenizer=processor.tokenizer, processor=processor,
                      config=OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path)}))[0]
    server = ScriptedServer(processor.tokenizer, [VIEW, CROP, ANSWER])

    async def main():
        loop = ToolAgentLoop(
            trainer_config=DictConfigWrap(cfg), server_manager=server, tokenizer=processor.tokenizer,
            processor=processor, dataset_cls=PILDataset, data_config=DictConfigWrap(cfg.data),
            hf_model_type="qwen2_5_vl", tools=ToolListWrap(list(tools.values())),
        )
        return await loop.run({"temperature": 1.0}, **item)

    out = asyncio.run(main())
    import gc

    gc.collect()
    built, closed = env_spy
    assert len(built) == 1 and closed == [built[0][0]]  # the trajectory's env, closed once it ended
    n_initial = ENV_OPTIONS["overview_frames"] + 1
    assert [c["n_images"] for c in server.calls] == [n_initial, n_initial + 1, n_initial + 3]
    assert len(out.multi_modal_data["images"]) == n_initial + 3
    full = out.prompt_ids + out.response_ids
    grid = processor.image_processor(images=out.multi_modal_data["images"], return_tensors="pt")["image_grid_thw"]
    assert full.count(processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)) == int(grid.prod(-1).sum()) // 4
    calls = out.extra_fields["vseek_tool_calls"]
    assert [(c["name"], c["ok"], c["num_frames"]) for c in calls] == [("view_visual_prompt", True, 1), ("crop_video", True, 2)]
    assert out.num_turns == 1 + 3 + 2
    observed = processor.tokenizer.decode([t for t, m in zip(out.response_ids, out.response_mask) if m == 0])
    assert "Frames in order: <" in observed and "The visual-prompt frame" in observed


class Trajectory:
    """Stands in for verl's ``AgentData`` (a plain, weak-referenceable object)."""

    def __init__(self, request_id: str) -> None:
        self.request_id, self.extra_fields = request_id, {}


@pytest.fixture()
def env_spy(monkeypatch):
    """Every env the adapters build, and the ones closed."""
    import vseek_env.integrations.verl.tools as tools_mod

    built, closed, real = [], [], tools_mod.env_from_extra_info

    def spy(*args, **kwargs):
        env, sample_id = real(*args, **kwargs)
        close = env.close
        env.close = lambda: (closed.append(env), close())[1]
        built.append((env, kwargs.get("dataset_root")))
        return env, sample_id

    monkeypatch.setattr(tools_mod, "env_from_extra_info", spy)
    return built, closed


def test_tools_of_one_trajectory_share_one_env_closed_when_it_ends(tools, rows, env_spy):
    import gc

    built, closed = env_spy
    trajectory = Trajectory("same-request")
    _call(tools, rows[0], "view_visual_prompt", {}, trajectory)
    _call(tools, rows[0], "crop_video", {"start_time": 2, "end_time": 4}, trajectory)
    assert len(built) == 1 and not closed
    env = built[0][0]
    assert [r.name for r in env.trajectory.tool_calls] == ["view_visual_prompt", "crop_video"]
    other = Trajectory("same-request")  # full_determinism repeats request ids across steps
    _call(tools, rows[0], "crop_video", {"start_time": 2, "end_time": 4}, other)
    assert len(built) == 2 and len(built[1][0].trajectory.tool_calls) == 1
    del trajectory
    gc.collect()
    assert closed == [env]


def test_the_episode_bound_evicts_and_closes_the_oldest_env(tools, rows, env_spy, monkeypatch):
    from vseek_env.integrations.verl.tools import EPISODES

    built, closed = env_spy
    monkeypatch.setattr(EPISODES, "max_episodes", 1)
    first, second = Trajectory("a"), Trajectory("b")
    _call(tools, rows[0], "view_visual_prompt", {}, first)
    _call(tools, rows[0], "view_visual_prompt", {}, second)
    assert closed == [built[0][0]] and len(EPISODES) == 1
    response, _, _ = _call(tools, rows[0], "crop_video", {"start_time": 2, "end_time": 4}, first)
    assert len(built) == 3 and response.image  # an evicted trajectory gets a fresh env, not a closed one


def test_dataset_root_option_replaces_the_rows_root(rows, env_spy, tmp_path):
    from vseek_env.integrations.verl.tools import VSeekTool

    tool = VSeekTool({"type": "native", "tool": "crop_video", "dataset_root": str(tmp_path)})
    response, _, _ = _call({"crop_video": tool}, rows[0], "crop_video", {"start_time": 2, "end_time": 4}, Trajectory("r"))
    assert env_spy[0][0][1] == str(tmp_path)
    assert "Error executing tool 'crop_video'" in response.text and str(tmp_path) in response.text
