"""The episode contract of VideoSeekerEnv."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from videos import read_index

import vseek_env
from vseek_env.env import VideoSeekerEnv
from vseek_env.video import VideoError

CROP = '<think>look</think><tool_call>{{"name": "crop_video", "arguments": {{"start_time": {}, "end_time": {}}}}}</tool_call>'


@pytest.fixture
def env(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, render_mode="ansi")
    yield env
    env.close()


def test_check_env_passes(small_dataset):
    check_env(VideoSeekerEnv(dataset=small_dataset), skip_render_check=True)


@pytest.mark.parametrize("env_id", vseek_env.ENV_IDS)
def test_check_env_on_registered_ids(env_id):
    """Every registered id, on its own embedded dataset (built on first use, like a user's first run)."""
    check_env(gym.make(env_id).unwrapped)


def test_all_registered_ids_exist():
    for env_id in vseek_env.ENV_IDS:
        assert env_id in gym.registry


def test_first_observation(env):
    obs, info = env.reset(seed=0, options={"sample_id": "s0"})
    assert env.observation_space.contains(obs)
    assert obs["num_frames"] == 17  # 16 overview frames + the prompt frame
    assert obs["text"].count("<image>") == 17
    assert "Question: Which way" in obs["text"] and "B. right" in obs["text"] and "crop_video" in obs["text"]
    overview = [f for f in info["frames"] if f["source"] == "overview"]
    for frame in overview:  # labels are true times of the frames shown
        assert env._video.frame_times[read_index(frame["image"])] == pytest.approx(frame["time"])
    assert info["frames"][-1]["source"] == "prompt" and info["frames"][-1]["time"] == pytest.approx(1.0)
    roles = [m["role"] for m in info["messages"]]
    assert roles == ["system", "user"]
    images = [p for p in info["messages"][1]["content"] if p["type"] == "image"]
    assert len(images) == 17 and all(isinstance(p["image"], np.ndarray) for p in images)
    assert info["turn"] == 0
    _, again = env.reset(seed=0, options={"sample_id": "s0"})
    assert again["state_key"] == info["state_key"] and hash(again["state_key"]) == hash(info["state_key"])
    env.step(CROP.format(2, 4))
    assert env._info([], [], parsed=None, tool_results=[], errors=[])["state_key"] != info["state_key"]


def test_prompt_frame_can_be_withheld(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, show_prompt_frame=False)
    obs, info = env.reset(seed=0, options={"sample_id": "s0"})
    assert obs["num_frames"] == 16 and "view_visual_prompt" in obs["text"]
    obs, *_ , info = env.step('<think>t</think><tool_call>{"name": "view_visual_prompt", "arguments": {}}</tool_call>')
    assert obs["num_frames"] == 1 and info["frames"][0]["source"] == "view_visual_prompt"
    marked = info["frames"][0]["image"]
    plain = env._video.read([env._video.index_at(1.0)]).frames[0]
    assert marked.shape == plain.shape and not np.array_equal(marked, plain)  # the prompt is drawn


def test_tool_round_then_answer_scores(env):
    env.reset(seed=0, options={"sample_id": "s0"})
    obs, reward, terminated, truncated, info = env.step(CROP.format(2, 4))
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert obs["num_frames"] == 4 and list(obs["timestamps"][:4]) == pytest.approx([2.0, 2.7, 3.3, 4.0], abs=0.05)
    assert info["messages"][0]["role"] == "tool" and info["tool_results"][0]["ok"]
    obs, reward, terminated, truncated, info = env.step("<think>it moved right</think><answer>B</answer>")
    assert terminated and not truncated
    assert info["reward_components"] == {"accuracy": 1.0, "format": 1.0, "parsimony": pytest.approx(0.9)}
    assert reward == pytest.approx(0.8 + 0.15 + 0.05 * 0.9)
    assert env.observation_space.contains(obs)
    with pytest.raises(RuntimeError):
        env.step("<answer>B</answer>")


def test_wrong_answer_scores_no_accuracy(env):
    env.reset(seed=0, options={"sample_id": "s0"})
    *_, info = env.step("<think>guess</think><answer>C</answer>")
    assert info["reward_components"]["accuracy"] == 0.0


def test_error_budget_truncates(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, error_budget=1)
    env.reset(seed=0, options={"sample_id": "s0"})
    obs, r, term, trunc, info = env.step("no tags at all")
    assert not (term or trunc) and info["errors"][0]["code"] == "no_action" and "Error (no_action)" in obs["text"]
    obs, r, term, trunc, info = env.step('<tool_call>{"name": "teleport", "arguments": {}}</tool_call>')
    assert trunc and not term and info["errors"][0]["code"] == "unknown_tool"
    assert info["reward_components"]["accuracy"] == 0.0


def test_max_turns_truncates_and_warns_before_the_last_turn(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, max_turns=3)
    env.reset(seed=0, options={"sample_id": "s0"})
    obs, *_ = env.step(CROP.format(0, 2))
    assert "last turn" not in obs["text"]
    obs, r, term, trunc, info = env.step(CROP.format(2, 4))
    assert "last turn" in obs["text"] and not trunc
    obs, r, term, trunc, info = env.step(CROP.format(4, 6))
    # the truncating turn's calls are not run: nobody would see their frames
    assert trunc and not term and info["trajectory"].num_tool_calls == 2 and obs["num_frames"] == 0


def test_same_seed_same_episode(small_dataset):
    def play(seed):
        env = VideoSeekerEnv(dataset=small_dataset)
        obs0, info = env.reset(seed=seed)
        obs1, r1, *_ = env.step(CROP.format(1, 3))
        obs2, r2, *_ = env.step("<think>x</think><answer>B</answer>")
        return info["sample_id"], obs0, obs1, r2

    a, b = play(7), play(7)
    assert a[0] == b[0] and a[3] == b[3]
    for x, y in ((a[1], b[1]), (a[2], b[2])):
        assert x["text"] == y["text"] and np.array_equal(x["frames"], y["frames"])
    ids = {play(seed)[0] for seed in range(8)}
    assert len(ids) > 1, "different seeds should reach different samples"


def test_span_answers(env):
    env.reset(options={"sample_id": "span0"})
    *_, info = env.step("<think>x</think><answer>[2.1, 4.0]</answer>")
    assert info["reward_components"]["accuracy"] == 1.0


def test_missing_video_names_the_sample(small_dataset):
    from conftest import make_sample
    from vseek_env.data import Dataset

    ds = Dataset("broken", [make_sample("gone", video="missing.mp4")], root=small_dataset.root)
    env = VideoSeekerEnv(dataset=ds)
    with pytest.raises(VideoError, match="gone.*missing.mp4"):
        env.reset(seed=0)
    skipping = VideoSeekerEnv(dataset=Dataset("mixed", [make_sample("gone", video="missing.mp4"), make_sample("ok")],
                                              root=small_dataset.root), skip_bad_samples=True)
    for seed in range(4):
        _, info = skipping.reset(seed=seed)
        assert info["sample_id"] == "ok"


def test_render_modes(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, render_mode="rgb_array")
    env.reset(seed=0, options={"sample_id": "s0"})
    grid = env.render()
    assert grid.ndim == 3 and grid.shape[2] == 3 and grid.dtype == np.uint8
    env = VideoSeekerEnv(dataset=small_dataset, render_mode="ansi")
    env.reset(seed=0, options={"sample_id": "s0"})
    env.step("<think>x</think><answer>B</answer>")
    text = env.render()
    assert "[system]" in text and "[assistant] <think>x</think><answer>B</answer>" in text


def test_unknown_options_are_rejected_with_names(small_dataset):
    with pytest.raises(TypeError, match="max_turn"):
        VideoSeekerEnv(dataset=small_dataset, max_turn=3)
    with pytest.raises(ValueError, match="teleport"):
        VideoSeekerEnv(dataset=small_dataset, tools=("teleport",))


bad_times = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                      st.text(max_size=5), st.none(), st.booleans())


@settings(max_examples=40)
@given(start=bad_times, end=bad_times, junk=st.text(max_size=60))
def test_malformed_actions_never_raise(small_dataset, start, end, junk):
    import json

    env = VideoSeekerEnv(dataset=small_dataset, max_turns=4, error_budget=10)
    env.reset(seed=0, options={"sample_id": "s0"})
    try:
        args = json.dumps({"start_time": start, "end_time": end}, allow_nan=True)
    except ValueError:
        args = "{}"
    actions = [
        '<tool_call>{"name": "crop_video", "arguments": ' + args + "}</tool_call>",
        junk,
        "<tool_call>" + junk + "</tool_call>",
    ]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            break


@pytest.mark.parametrize("asynchronous", [False, True])
def test_vector_envs_autoreset_and_keep_unicode_text(small_dataset, asynchronous):
    from conftest import make_sample
    from vseek_env.data import Dataset

    ds = Dataset("uni", [make_sample("u0", question="Où va l'objet → ?"), make_sample("u1", answer="C")],
                 root=small_dataset.root)
    fns = [lambda: VideoSeekerEnv(dataset=ds) for _ in range(2)]
    envs = gym.vector.AsyncVectorEnv(fns, shared_memory=False) if asynchronous else gym.vector.SyncVectorEnv(fns)
    try:
        obs, info = envs.reset(seed=1)
        assert all("Où va l'objet → ?" in t or "Which way" in t for t in obs["text"])
        obs, reward, terminated, truncated, info = envs.step(["<think>a</think><answer>B</answer>", "bad"])
        assert terminated[0] and not terminated[1] and obs["text"][1].startswith("Error (no_action)")
        obs, *_ = envs.step(["ignored: this sub-env autoresets", "bad"])
        assert obs["text"][0].startswith("You answer questions") and obs["num_frames"][0] == 17
    finally:
        envs.close()


def test_unicode_text_flattens_losslessly():
    from gymnasium.spaces.utils import flatten, unflatten

    from vseek_env.spaces import UnicodeText

    space = UnicodeText(32)
    for text in ["", "plain", "Où → 東京 \u202e rtl", "\x00\x01 control"]:
        assert unflatten(space, flatten(space, text)) == text


def test_truncate_from_outside_scores_the_episode(env):
    env.reset(seed=0, options={"sample_id": "s0"})
    env.step(CROP.format(2, 4))
    reward, components, _ = env.truncate()
    assert env.trajectory.truncated and components["accuracy"] == 0.0 and reward == 0.0
    with pytest.raises(RuntimeError):
        env.step("<answer>B</answer>")


def test_a_hung_decode_cannot_hang_reset(small_dataset, tmp_path, monkeypatch):
    import shutil
    import threading
    from pathlib import Path

    import vseek_env.video as video_mod
    from conftest import make_sample
    from vseek_env.data import Dataset

    stuck = tmp_path / "stuck.mp4"
    shutil.copy(small_dataset.root / "indexed.mp4", stuck)
    release, real = threading.Event(), video_mod.decode_frames

    def hang_on_stuck(path, *args, **kwargs):
        if Path(path).name == "stuck.mp4":
            release.wait(30)  # a decoder stuck in C code, as far as the env can tell
        return real(path, *args, **kwargs)

    monkeypatch.setattr(video_mod, "decode_frames", hang_on_stuck)
    ds = Dataset("hang", [make_sample("stuck", video=str(stuck)),
                          make_sample("ok", video=str(small_dataset.root / "indexed.mp4"))])
    env = VideoSeekerEnv(dataset=ds, tool_timeout_s=0.5)
    try:
        env.reset(options={"sample_id": "ok"})
        with pytest.raises(VideoError, match="'stuck'.*did not finish within 0.5 seconds"):
            env.reset(options={"sample_id": "stuck"})
        with pytest.raises(RuntimeError, match="reset"):  # the failed reset left no episode behind
            env.step("<answer>A</answer>")
        _, info = env.reset(options={"sample_id": "ok"})  # a fresh worker serves the next episode
        assert info["sample_id"] == "ok"
    finally:
        release.set()
        env.close()
