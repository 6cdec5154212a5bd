"""The paper's protocol (``protocol="paper"``, ``VideoSeeker-paper-v0``): one test per rule, and the
default's named deviations from it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
from conftest import make_sample
from gymnasium.utils.env_checker import check_env
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import vseek_env  # noqa: F401  (registers the ids)
from vseek_env.config import PROTOCOLS, EnvConfig
from vseek_env.data import Dataset, VisualPromptSpec
from vseek_env.env import VideoSeekerEnv, overview_tokens
from vseek_env.rewards import make_reward
from vseek_env.video import smart_resize

pytestmark = pytest.mark.usefixtures("no_judge_from_the_environment")


def call(name: str, **arguments) -> str:
    return f"<think>look</think><tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


ANSWER_B = "<think>it moves right</think><answer>B</answer>"


@pytest.fixture
def paper(small_dataset):
    with contextlib.closing(VideoSeekerEnv(dataset=small_dataset, protocol="paper")) as env:
        yield env


def test_paper_id_passes_check_env(small_dataset):
    env = gym.make("VideoSeeker-paper-v0", dataset=small_dataset)
    assert env.unwrapped.config.protocol == "paper"
    check_env(env.unwrapped, skip_render_check=True)


def test_protocol_keyword_works_on_any_dataset_and_explicit_options_win(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, protocol="paper", max_turns=4)
    assert env.config.max_turns == 4 and env.config.max_tool_calls_per_turn == 1 and env.config.reward == "paper"
    assert EnvConfig().replace(protocol="paper").overview_as_video
    with pytest.raises(ValueError, match="unknown protocol"):
        EnvConfig.from_kwargs(protocol="nope")


def test_overview_is_one_video_part_at_1_fps_with_true_times(paper):
    obs, info = paper.reset(options={"sample_id": "s0"})  # a 6 s video at 10 fps
    user = info["messages"][0]
    assert user["role"] == "user" and len(info["messages"]) == 1  # no system role: the format instruction leads the user text
    assert user["content"][0]["text"].startswith("Work on the question in steps")
    videos = [p for p in user["content"] if p["type"] == "video"]
    assert len(videos) == 1 and not any(p["type"] == "image" for p in user["content"])
    video = videos[0]
    times = np.asarray(video["timestamps"])
    assert len(video["video"]) == 6 and np.all(np.diff(times) > 0.9) and np.all(np.diff(times) < 1.1)
    assert video["fps"] == pytest.approx(1.0)
    assert [f["time"] for f in info["frames"]] == video["timestamps"]  # the frames' presentation times
    assert all(f.shape[0] * f.shape[1] <= 112896 and f.shape[0] % 32 == 0 for f in video["video"])
    assert obs["text"].count("<video>") == 1 and "<image>" not in obs["text"]


class _LongVideo:
    """Stands in for a long video: only what the overview rule reads."""

    def __init__(self, duration: float) -> None:
        self.duration = duration

    def uniform_indices(self, n: int) -> np.ndarray:
        return np.arange(n)


@pytest.mark.parametrize(("duration", "expected"), [(1000.0, 256), (100.4, 100), (0.3, 1)])
def test_overview_is_1_fps_capped_at_256_frames(small_dataset, duration, expected):
    env = VideoSeekerEnv(dataset=small_dataset, protocol="paper")
    assert len(env._overview_indices(_LongVideo(duration))) == expected
    default = VideoSeekerEnv(dataset=small_dataset)
    assert len(default._overview_indices(_LongVideo(duration))) == 16


@given(h=st.integers(120, 2160), w=st.integers(120, 3840), n=st.integers(1, 256), factor=st.sampled_from([28, 32]))
def test_overview_budget_keeps_the_vision_tokens_under_the_cap(h, w, n, factor):
    """Frames are made smaller, never fewer, so that the overview stays inside overview_max_tokens."""
    cfg = EnvConfig.from_kwargs(protocol="paper", patch_factor=factor)
    env = VideoSeekerEnv.__new__(VideoSeekerEnv)
    env.config = cfg
    budget = env._overview_pixels(n)
    if max(h, w) / min(h, w) > 20:
        return
    oh, ow = smart_resize(h, w, max_pixels=budget, factor=factor)
    assert oh * ow <= 112896
    assert overview_tokens(n, oh, ow, factor=factor, as_video=True) <= cfg.overview_max_tokens


def test_prompt_frame_only_through_view_visual_prompt_without_its_time(paper, small_dataset):
    obs, info = paper.reset(options={"sample_id": "s0"})
    assert all(f["source"] != "prompt" for f in info["frames"])
    assert "view_visual_prompt" in obs["text"]
    obs, _, _, _, info = paper.step(call("view_visual_prompt"))
    (result,) = info["tool_results"]
    assert result["ok"] and result["num_frames"] == 1
    assert "second" not in result["text"] and "1.0" not in result["text"]
    assert obs["timestamps"][0] == -1.0 and "seconds>" not in obs["text"]
    shown = info["frames"][0]["image"]
    assert np.array_equal(shown, paper.prompt_frame)


def test_default_keeps_the_prompt_frame_up_front_and_says_its_time(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset)
    _, info = env.reset(options={"sample_id": "s0"})
    assert info["frames"][-1]["source"] == "prompt"
    _, _, _, _, info = env.step(call("view_visual_prompt"))
    assert "seconds>" in info["tool_results"][0]["text"]
    env.close()


def test_one_tool_call_per_response_and_the_extra_call_still_costs(paper):
    paper.reset(options={"sample_id": "s0"})
    two = call("crop_video", start_time=0, end_time=2) + call("crop_video", start_time=2, end_time=4)
    _, _, _, _, info = paper.step(two)
    assert len(info["tool_results"]) == 1 and [e["code"] for e in info["errors"]] == ["too_many_tool_calls"]
    _, reward, terminated, _, info = paper.step(ANSWER_B)
    assert terminated
    assert info["reward_components"]["parsimony"] == pytest.approx(0.8)  # both invocations count
    assert info["reward_components"]["format"] == 0.0  # two calls in one response break the pattern


def test_five_tool_rounds_then_the_answer_without_a_nudge(paper):
    paper.reset(options={"sample_id": "s0"})
    for _ in range(5):
        _, _, terminated, truncated, info = paper.step(call("view_visual_prompt"))
        assert not (terminated or truncated)
        assert not any("last turn" in p.get("text", "") for m in info["messages"] for p in m["content"])
    _, _, terminated, _, _ = paper.step(ANSWER_B)
    assert terminated


def test_default_still_nudges_on_the_last_turn(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, max_turns=2)
    env.reset(options={"sample_id": "s0"})
    _, _, _, _, info = env.step(call("view_visual_prompt"))
    assert any("last turn" in p.get("text", "") for m in info["messages"] for p in m["content"])
    env.close()


def test_crop_past_the_end_is_an_error_in_the_paper_and_clamped_by_default(small_dataset, paper):
    paper.reset(options={"sample_id": "s0"})
    _, _, _, _, info = paper.step(call("crop_video", start_time=4, end_time=9))
    assert [e["code"] for e in info["errors"]] == ["out_of_range"] and "goes past the video" in info["errors"][0]["message"]
    env = VideoSeekerEnv(dataset=small_dataset)
    env.reset(options={"sample_id": "s0"})
    _, _, _, _, info = env.step(call("crop_video", start_time=4, end_time=9))
    assert info["tool_results"][0]["ok"] and info["tool_results"][0]["window"][1] == pytest.approx(6.0, abs=0.11)
    env.close()


@pytest.mark.parametrize("protocol", ["paper", "default"])
def test_three_failed_crops_then_a_right_answer_score_parsimony_07(small_dataset, protocol):
    env = VideoSeekerEnv(dataset=small_dataset, protocol=protocol)
    env.reset(options={"sample_id": "s0"})
    for _ in range(3):
        _, _, _, _, info = env.step(call("crop_video", start_time=5, end_time=-1))  # reversed: out_of_range
        assert not info["tool_results"][0]["ok"]
    _, reward, terminated, _, info = env.step(ANSWER_B)
    assert terminated
    assert info["reward_components"] == {"accuracy": 1.0, "format": 1.0, "parsimony": pytest.approx(0.7)}
    assert reward == pytest.approx(0.8 + 0.15 + 0.05 * 0.7)
    env.close()


def test_format_on_the_whole_trajectory(small_dataset):
    """think -> (tool call -> think)* -> answer; the default judges each response on its own."""
    steps = [call("crop_video", start_time=0, end_time=2) + call("view_visual_prompt").split("</think>")[1], ANSWER_B]
    scores = {}
    for spec in ("paper", "default"):
        env = VideoSeekerEnv(dataset=small_dataset, reward=spec)
        env.reset(options={"sample_id": "s0"})
        for step in steps:
            _, _, _, _, info = env.step(step)
        scores[spec] = info["reward_components"]["format"]
        env.close()
    assert scores == {"paper": 0.0, "default": 1.0}


def test_lambda_is_an_explicit_reward_option():
    assert make_reward("paper").to_spec()["parsimony"] == {"weight": 0.05, "lam": 0.1}
    assert make_reward({"preset": "paper", "parsimony": {"lam": 0.25}}).options["parsimony"] == {"lam": 0.25}
    with pytest.raises(ValueError, match="lam"):
        make_reward({"preset": "paper", "parsimony": {"lam": -1}})


def test_ground_truth_is_not_in_info_unless_asked(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset)
    _, info = env.reset(options={"sample_id": "s0"})
    assert "sample" not in info and env.sample.answer == "B"
    _, _, _, _, info = env.step(ANSWER_B)
    assert "sample" not in info
    env = VideoSeekerEnv(dataset=small_dataset, info_ground_truth=True)
    _, info = env.reset(options={"sample_id": "s0"})
    assert info["sample"].answer == "B"


def test_oracle_reads_the_bound_env(small_dataset):
    from vseek_env.policies.oracle import OraclePolicy
    from vseek_env.runner import run_episode

    result = run_episode(VideoSeekerEnv(dataset=small_dataset, protocol="paper"), OraclePolicy(), seed=0)
    assert result.components["accuracy"] == 1.0
    with pytest.raises(RuntimeError, match="bind"):
        OraclePolicy().act({}, {})


def test_open_ended_option_turns_choices_into_the_option_text(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, open_ended=True)
    obs, _ = env.reset(options={"sample_id": "s0"})
    assert env.sample.answer_kind == "open" and env.sample.answer == "right" and "A. left" not in obs["text"]
    _, reward, _, _, info = env.step("<think>x</think><answer>right</answer>")
    assert info["reward_components"]["accuracy"] == 1.0
    env.close()


def test_paper_open_preset_asks_the_judge(monkeypatch):
    with pytest.raises(ValueError, match="judge needs an endpoint"):
        make_reward("paper_open")
    monkeypatch.setenv("VSEEK_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    spec = make_reward("paper_open").to_spec()
    assert spec["accuracy"]["judge"]["base_url"] == "http://127.0.0.1:9/v1"
    assert spec["format"] == {"weight": 0.15, "scope": "trajectory"}


def test_every_protocol_field_is_a_config_field():
    names = {f.name for f in dataclasses.fields(EnvConfig)}
    assert set(PROTOCOLS["paper"]) <= names
    import vseek_env.config as config_module

    assert "defaults of the paper" not in config_module.__doc__  # the defaults are not the paper's setting


def test_multi_frame_prompts_are_all_shown(small_dataset, tmp_path):
    paths = []
    for k, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        path = tmp_path / f"p{k}.png"
        Image.new("RGB", (96, 64), colour).save(path)
        paths.append(str(path))
    sample = make_sample("multi", video=str(small_dataset.video_path(small_dataset["s0"])),
                         prompt=VisualPromptSpec(time=None, image=paths[0]), meta={"prompt_images": paths})
    env = VideoSeekerEnv(dataset=Dataset("m", [sample]), protocol="paper")
    env.reset(options={"sample_id": "multi"})
    _, _, _, _, info = env.step(call("view_visual_prompt"))
    frames = [f["image"] for f in info["frames"]]
    assert len(frames) == 2 and frames[0][0, 0, 0] > 200 and frames[1][0, 0, 2] > 200
    env.close()


def test_v2p_loader_keeps_every_prompt_frame(tmp_path):
    from vseek_env.data.v2p import load_v2p

    row = {"video_id": "v", "video_path": "v.mp4", "question": "Q?\nA: x\nB: y\nSelect the best option.",
           "answer": "A", "frame_path": ["f1.jpg", "f2.jpg"], "dimension": 1}
    (tmp_path / "d.jsonl").write_text(json.dumps(row) + "\n")
    sample = load_v2p(tmp_path / "d.jsonl").samples[0]
    assert [p.split("/")[-1] for p in sample.meta["prompt_images"]] == ["f1.jpg", "f2.jpg"]
    assert sample.prompt.image.endswith("f1.jpg")


@pytest.mark.parametrize("hw", [(480, 854), (480, 640), (720, 1280), (1080, 1920), (336, 336)])
def test_paper_overview_fits_16384_tokens_on_qwen_processors(hw):
    """The overview's tokens as the Qwen2.5-VL (patch 14, merge 2) and Qwen3-VL (patch 16, merge 2)
    processors count them, with the processors' own smart_resize, for a 256 s video."""
    qwen2 = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    qwen3 = pytest.importorskip("transformers.models.qwen3_vl.video_processing_qwen3_vl")
    n, text_tokens = 256, 2048  # instructions + question + one <t seconds> label per frame pair
    for factor, resize in ((28, lambda h, w, px: qwen2.smart_resize(h, w, 28, 56 * 56, px)),
                           (32, lambda h, w, px: qwen3.smart_resize(n, h, w, 2, 32, 32 * 32, n * px))):
        env = VideoSeekerEnv.__new__(VideoSeekerEnv)
        env.config = EnvConfig.from_kwargs(protocol="paper", patch_factor=factor)
        px = env._overview_pixels(n)
        h, w = smart_resize(*hw, max_pixels=px, factor=factor)
        ph, pw = resize(h, w, px)  # what the processor makes of the env's frames: unchanged
        assert (ph, pw) == (h, w)
        tokens = math.ceil(n / 2) * (ph // factor) * (pw // factor)
        assert tokens + text_tokens <= 16384


# ------------------------------------------------------------------ eval, policies and exports
def test_eval_prints_and_records_protocol_and_reward(small_dataset, tmp_path, capsys):
    from vseek_env.cli import main

    path = tmp_path / "small.jsonl"
    from vseek_env.data.datasets import write_samples

    write_samples(path, [dataclasses.replace(s, video=str(small_dataset.video_path(s))) for s in small_dataset.samples])
    code = main(["eval", "--policy", "oracle", "--dataset", str(path), "--out", str(tmp_path / "run"), "--protocol", "paper",
                 "--workers", "1", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "protocol paper, reward paper" in printed and '"scope": "trajectory"' in printed
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["protocol"] == "paper" and summary["reward_name"] == "paper"
    assert summary["reward_spec"]["parsimony"] == {"weight": 0.05, "lam": 0.1} and summary["accuracy"] == 1.0


def test_sft_exports_carry_the_video_and_replay(small_dataset, tmp_path):
    from vseek_env.coldstart import export_sft, rejection_sample, run_rollouts, verify_export
    from vseek_env.integrations.verl.rows import read_rows

    rs = run_rollouts("oracle", small_dataset, tmp_path / "ro", k=1, env_args={"protocol": "paper"}, workers=1, progress=False)
    kept, _ = rejection_sample(rs.records)
    assert kept
    opening = kept[0]["conversation"][0]
    (video,) = [p for p in opening["content"] if p["type"] == "video"]
    assert len(video["video"]) == len(video["timestamps"]) == 6 and all(p.endswith(".png") for p in video["video"])
    parquet = export_sft(rs, kept, tmp_path / "sft" / "train.parquet", fmt="verl")
    row = read_rows(parquet)[0]
    assert row["messages"][0]["content"].count("<video>") == 1 and len(row["videos"][0]["video"]) == 6
    sharegpt = export_sft(rs, kept, tmp_path / "lf" / "train.json", fmt="sharegpt")
    entry = json.loads(sharegpt.read_text())[0]
    assert len(entry["videos"]) == 1 and len(entry["videos"][0]) == 6
    assert json.loads((tmp_path / "lf" / "dataset_info.json").read_text())["vseek_coldstart"]["columns"]["videos"] == "videos"
    for path, fmt in ((parquet, "verl"), (sharegpt, "sharegpt")):
        report = verify_export(path, fmt, dataset=small_dataset)
        assert report.mismatches == [] and report.checked == len(kept)


def _video_message(n: int = 4) -> list[dict]:
    frames = [np.full((32, 64, 3), 40 * k, np.uint8) for k in range(n)]
    return [{"role": "user", "content": [{"type": "text", "text": "Q"},
                                         {"type": "video", "video": frames, "timestamps": [0.5 + k for k in range(n)], "fps": 1.0}]}]


def test_openai_policy_sends_a_video_part_or_labelled_frames():
    from vseek_env.policies.openai_chat import OpenAIChatPolicy

    (msg,) = OpenAIChatPolicy(model="m", base_url="http://127.0.0.1:9/v1")._convert(_video_message())
    kinds = [p["type"] for p in msg["content"]]
    assert kinds == ["text", "video_url", "text"]
    url = msg["content"][1]["video_url"]["url"]
    assert url.startswith("data:video/jpeg;base64,") and url.count(",") == 4
    assert "0.5, 1.5, 2.5, 3.5 seconds" in msg["content"][2]["text"]
    (msg,) = OpenAIChatPolicy(model="m", base_url="http://127.0.0.1:9/v1", video_as="frames")._convert(_video_message())
    assert [p["type"] for p in msg["content"]] == ["text"] + ["text", "image_url"] * 4
    assert msg["content"][1]["text"] == "<0.5 seconds>"


def test_hf_policy_hands_the_video_to_the_processor_with_true_times():
    pytest.importorskip("transformers")
    from vseek_env.policies.hf import HFPolicy

    class Processor:
        """Records what the policy asks of a Qwen-VL processor."""

        def apply_chat_template(self, messages, **kw):
            assert not kw.get("tokenize")
            return "".join("<|video_pad|>" if p["type"] == "video" else p.get("text", "") for m in messages for p in m["content"])

        def __call__(self, **kw):
            self.kw = kw
            return kw

    policy = HFPolicy(model=object(), processor=Processor())
    policy.messages = policy._convert(_video_message())
    inputs = policy._video_inputs(policy._context())
    (video,) = inputs["videos"]
    assert video.shape == (4, 32, 64, 3) and inputs["text"] == ["Q<|video_pad|>"]
    (meta,) = inputs["videos_kwargs"]["video_metadata"]
    assert meta.timestamps == pytest.approx([0.5, 1.5, 2.5, 3.5]) and meta.sampled_fps == pytest.approx(1.0)
    assert inputs["videos_kwargs"]["do_sample_frames"] is False and inputs["videos_kwargs"]["do_resize"] is False
