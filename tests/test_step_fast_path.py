"""The warm-step fast path: tool calls served from the cache run inline, observation stacks are
sealed and handed out copy-on-write, and ``info`` totals are kept incrementally -- all without
changing what a step returns."""

from __future__ import annotations

import gc
import hashlib

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env, data_shares_objects
from hypothesis import given, settings
from hypothesis import strategies as st

from vseek_env import sealed
from vseek_env.env import VideoSeekerEnv
from vseek_env.tools.worker import ToolWorker
from vseek_env.video import FrameCache

CROP = '<think>look</think><tool_call>{{"name": "crop_video", "arguments": {{"start_time": {}, "end_time": {}}}}}</tool_call>'
ZOOM = '<think>z</think><tool_call>{"name": "zoom_in", "arguments": {"time": 2, "box": [10, 10, 90, 90]}}</tool_call>'
PROMPT = '<think>p</think><tool_call>{"name": "view_visual_prompt", "arguments": {}}</tool_call>'
TOOLS = ("view_visual_prompt", "crop_video", "zoom_in")
ACTIONS = [CROP.format(0, 6), ZOOM, PROMPT, CROP.format(1.5, 4)]


def _episode(env: VideoSeekerEnv) -> list[tuple[dict, dict]]:
    out = [env.reset(seed=0, options={"sample_id": "s0"})]
    for action in ACTIONS:
        obs, _, _, _, info = env.step(action)
        out.append((obs, info))
    return out


def _same(a: list[tuple[dict, dict]], b: list[tuple[dict, dict]]) -> None:
    for (obs_a, info_a), (obs_b, info_b) in zip(a, b, strict=True):
        assert obs_a.keys() == obs_b.keys()
        assert obs_a["text"] == obs_b["text"] and obs_a["turn"] == obs_b["turn"]
        assert obs_a["num_frames"] == obs_b["num_frames"]
        np.testing.assert_array_equal(obs_a["frames"], obs_b["frames"])
        np.testing.assert_array_equal(obs_a["timestamps"], obs_b["timestamps"])
        assert info_a["state_key"] == info_b["state_key"] and info_a["num_tool_calls"] == info_b["num_tool_calls"]
        assert info_a["tool_results"] == info_b["tool_results"] and info_a["errors"] == info_b["errors"]


def test_warm_steps_run_inline_and_return_what_the_worker_returns(small_dataset, fresh_video_caches, monkeypatch):
    env = VideoSeekerEnv(dataset=small_dataset, tools=TOOLS, frame_cache=FrameCache(1 << 28))
    cold = _episode(env)  # decodes: every tool call goes to the worker
    assert all(info["errors"] == [] and info["tool_results"][0]["ok"] for _, info in cold[1:])
    decoded = env.frame_cache.decoded

    handed_off, real_call = [], ToolWorker.call

    def recording(self, fn, *args, timeout_s):
        handed_off.append(fn)
        return real_call(self, fn, *args, timeout_s=timeout_s)

    monkeypatch.setattr(ToolWorker, "call", recording)
    warm = _episode(env)
    _same(cold, warm)
    assert env.frame_cache.decoded == decoded
    assert [fn.__name__ for fn in handed_off] == ["_load"]  # reset's read; no tool call
    env.close()


def test_inline_calls_count_cache_hits_like_the_worker(small_dataset, fresh_video_caches):
    """``tool_timeout_s=None`` runs every call directly on the real cache: the reference counts."""
    counts = []
    for timeout in (None, 30.0):
        cache = FrameCache(1 << 28)
        env = VideoSeekerEnv(dataset=small_dataset, tools=TOOLS, frame_cache=cache, tool_timeout_s=timeout)
        _episode(env)
        before = cache.stats()
        _episode(env)
        after = cache.stats()
        counts.append({k: after[k] - before[k] for k in ("hits", "misses", "decoded")})
        env.close()
    assert counts[0] == counts[1] and counts[0]["misses"] == 0


def test_a_call_that_must_decode_goes_to_the_worker(small_dataset, fresh_video_caches, monkeypatch):
    used = []
    real_call = ToolWorker.call

    def recording(self, fn, *args, timeout_s):
        used.append(fn.__name__)
        return real_call(self, fn, *args, timeout_s=timeout_s)

    monkeypatch.setattr(ToolWorker, "call", recording)
    env = VideoSeekerEnv(dataset=small_dataset, tools=TOOLS, frame_cache=FrameCache(1 << 28))
    env.reset(seed=0, options={"sample_id": "s0"})
    used.clear()
    *_, info = env.step(CROP.format(0, 6))
    assert info["errors"] == [] and used == ["run"]
    *_, info = env.step(CROP.format(0, 6))  # now cached
    assert info["errors"] == [] and used == ["run"]
    env.close()


@pytest.fixture
def seal_everything(monkeypatch):
    """Seal even the small stacks of the test video, so the copy-on-write path is exercised."""
    monkeypatch.setattr(sealed, "MIN_SEALED_BYTES", 0)


def test_observations_own_their_frames(small_dataset, fresh_video_caches, seal_everything):
    env = VideoSeekerEnv(dataset=small_dataset, tools=TOOLS, frame_cache=FrameCache(1 << 28))
    env.reset(seed=0, options={"sample_id": "s0"})
    steps = [env.step(CROP.format(0, 6))[0] for _ in range(3)]
    first, second, third = (obs["frames"] for obs in steps)
    assert not data_shares_objects(steps[0], steps[1]) and not data_shares_objects(steps[1], steps[2])
    assert first.flags.writeable and second.flags.writeable
    expected = second.copy()
    first[:] = 255  # the user's array: writing it changes no other observation nor the cache
    np.testing.assert_array_equal(second, expected)
    np.testing.assert_array_equal(third, expected)
    np.testing.assert_array_equal(env.step(CROP.format(0, 6))[0]["frames"], expected)
    env.close()


def test_check_env_with_sealed_observations(small_dataset, fresh_video_caches, seal_everything):
    check_env(VideoSeekerEnv(dataset=small_dataset, tools=TOOLS, frame_cache=FrameCache(1 << 28)), skip_render_check=True)


def test_sealed_and_copied_observations_are_equal(small_dataset, fresh_video_caches, monkeypatch):
    monkeypatch.setattr(sealed, "MIN_SEALED_BYTES", 1 << 62)
    plain = _episode(VideoSeekerEnv(dataset=small_dataset, tools=TOOLS, frame_cache=FrameCache(1 << 28)))
    monkeypatch.setattr(sealed, "MIN_SEALED_BYTES", 0)
    sealed_run = _episode(VideoSeekerEnv(dataset=small_dataset, tools=TOOLS, frame_cache=FrameCache(1 << 28)))
    _same(plain, sealed_run)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(["", "<think>x</think>", "\ud800 garbage", "é\x1e", CROP.format(0, 2), ZOOM,
                                 CROP.format(-5, -1), PROMPT]), min_size=1, max_size=6))
def test_info_totals_match_their_definitions(small_dataset, responses):
    """``state_key`` and ``num_tool_calls`` are kept incrementally; they equal the full recomputation."""
    env = VideoSeekerEnv(dataset=small_dataset, tools=TOOLS, max_turns=50, error_budget=50)
    env.reset(seed=0, options={"sample_id": "s0"})
    for k, response in enumerate(responses, 1):
        *_, info = env.step(response)
        joined = "\x1e".join(responses[:k]).encode("utf-8", "surrogatepass")
        assert info["state_key"] == ("s0", k, hashlib.sha1(joined).hexdigest())
        assert info["num_tool_calls"] == env.trajectory.num_tool_calls
    env.close()


# -- vseek_env.sealed ------------------------------------------------------------------------------
def _frames(n: int = 4, side: int = 400) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(n)]


def test_sealed_stack_copies_are_fresh_and_equal():
    frames = _frames()
    stack = sealed.seal(frames)
    assert not stack.flags.writeable
    a, b = sealed.fresh_copy(stack), sealed.fresh_copy(stack)
    for copy in (a, b):
        np.testing.assert_array_equal(copy, np.stack(frames))
        assert copy.flags.writeable and not np.shares_memory(copy, stack)
    assert not np.shares_memory(a, b)
    a[...] = 0
    np.testing.assert_array_equal(b, np.stack(frames))
    np.testing.assert_array_equal(stack, np.stack(frames))
    with pytest.raises(ValueError):
        stack[0, 0, 0, 0] = 1


def test_sealed_files_are_released_with_their_stack():
    before = sealed.open_sealed_files()
    stack = sealed.seal(_frames())
    copy = sealed.fresh_copy(stack)
    del stack
    gc.collect()
    assert sealed.open_sealed_files() == before
    assert int(copy.sum()) == int(np.stack(_frames()).sum())  # a copy outlives its stack's descriptor


def test_past_the_descriptor_budget_stacks_are_plain(monkeypatch):
    monkeypatch.setattr(sealed, "MAX_SEALED_FILES", sealed.open_sealed_files())
    frames = _frames()
    stack = sealed.seal(frames)
    assert type(stack) is np.ndarray and not stack.flags.writeable
    copy = sealed.fresh_copy(stack)
    assert copy.flags.writeable and not np.shares_memory(copy, stack)
    np.testing.assert_array_equal(copy, np.stack(frames))


def test_views_and_odd_inputs_fall_back_to_copies():
    stack = sealed.seal(_frames())
    part = stack[1:3]
    np.testing.assert_array_equal(sealed.fresh_copy(part), part)
    assert not np.shares_memory(sealed.fresh_copy(part), stack)
    floats = sealed.seal([np.zeros((300, 300, 3), np.float32)] * 4)
    assert floats.dtype == np.float32 and floats.shape == (4, 300, 300, 3)
    with pytest.raises(ValueError):
        sealed.seal([np.zeros((400, 400, 3), np.uint8), np.zeros((400, 300, 3), np.uint8)])
