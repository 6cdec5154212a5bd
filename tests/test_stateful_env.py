"""Stateful testing of VideoSeekerEnv: random interleavings of reset / step / render / close.

The machine keeps a model of the episode (active, turn, error count) and checks the env against it
after every rule, with random valid and invalid actions (including the adversarial corpus).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from vseek_env.env import VideoSeekerEnv

CORPUS = [json.loads(line)["response"] for line in (Path(__file__).parent / "adversarial" / "responses.jsonl").open(encoding="utf-8")]
MAX_TURNS, ERROR_BUDGET = 4, 2

_time = st.one_of(st.floats(-2, 8, allow_nan=False), st.integers(-2, 8), st.sampled_from(["1", "x", None]))


def _call(name: str, arguments: dict) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


valid_actions = st.one_of(
    st.builds(lambda s, e: "<think>t</think>" + _call("crop_video", {"start_time": s, "end_time": e}), _time, _time),
    st.just("<think>t</think>" + _call("view_visual_prompt", {})),
    st.builds(lambda t, b: "<think>t</think>" + _call("zoom_in", {"time": t, "box": b}), _time,
              st.lists(st.integers(-10, 200), min_size=4, max_size=4)),
    st.builds(lambda a: f"<think>t</think><answer>{a}</answer>", st.sampled_from(["A", "B", "C", "D", "[2, 4]", "x"])),
)
actions = st.one_of(valid_actions, st.sampled_from(CORPUS), st.text(max_size=200), st.none(), st.integers())


class EnvMachine(RuleBasedStateMachine):
    def __init__(self, dataset, render_mode: str) -> None:
        super().__init__()
        self.env = VideoSeekerEnv(
            dataset=dataset, render_mode=render_mode, tools=("view_visual_prompt", "crop_video", "zoom_in"),
            max_turns=MAX_TURNS, error_budget=ERROR_BUDGET, obs_frames=24, overview_frames=8,
        )
        self.active = False  # an episode is running: step() is allowed
        self.closed = False
        self.turn = 0
        self.errors = 0

    @rule(seed=st.none() | st.integers(0, 2**31 - 1), sample_id=st.none() | st.sampled_from(["s0", "s1", "span0"]))
    def reset(self, seed, sample_id):
        options = {"sample_id": sample_id} if sample_id else None
        obs, info = self.env.reset(seed=seed, options=options)
        assert self.env.observation_space.contains(obs)
        assert obs["turn"] == info["turn"] == info["error_count"] == 0
        if sample_id:
            assert info["sample_id"] == sample_id
        self.active, self.closed, self.turn, self.errors = True, False, 0, 0

    @precondition(lambda self: self.active)
    @rule(action=actions)
    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.turn += 1
        self.errors += bool(info["errors"])
        assert self.env.observation_space.contains(obs)
        assert isinstance(reward, float) and math.isfinite(reward)
        assert not (terminated and truncated)
        assert obs["turn"] == info["turn"] == self.turn <= MAX_TURNS
        assert info["error_count"] == self.errors <= ERROR_BUDGET + 1
        out_of_turns = self.errors > ERROR_BUDGET or self.turn >= MAX_TURNS
        assert truncated == (out_of_turns and not terminated)
        if terminated or truncated:
            assert {"reward_components", "reward_metrics", "trajectory"} <= set(info)
            assert len(info["trajectory"].turns) == self.turn
            self.active = False
        else:
            assert reward == 0.0, "reward is only given at the end of an episode"

    @precondition(lambda self: not self.active and not self.closed)
    @rule(action=actions)
    def step_without_episode(self, action):
        with pytest.raises(RuntimeError, match=r"reset\(\)"):
            self.env.step(action)

    @rule()
    def render(self):
        out = self.env.render()
        if self.env.render_mode == "ansi":
            assert isinstance(out, str)
        else:
            assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3

    @rule()
    def close(self):
        self.env.close()
        # Stepping after close is pinned separately (test_step_after_close_raises_a_clear_error).
        self.active, self.closed = False, True

    def teardown(self):
        self.env.close()


@pytest.mark.parametrize("render_mode", ["ansi", "rgb_array"])
def test_random_interleavings_keep_the_episode_contract(small_dataset, render_mode):
    run_state_machine_as_test(lambda: EnvMachine(small_dataset, render_mode), settings=settings(stateful_step_count=25))


@pytest.mark.parametrize("action", ['<think>t</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 0, '
                                    '"end_time": 2}}</tool_call>', "<think>t</think><answer>A</answer>"])
def test_step_after_close_raises_a_clear_error(small_dataset, action):
    env = VideoSeekerEnv(dataset=small_dataset)
    env.reset(seed=0)
    env.close()
    with pytest.raises(RuntimeError, match=r"reset\(\)"):
        env.step(action)
