"""HFPolicy with a tiny random-init Qwen2.5-VL / Qwen3-VL: it generates, and the env takes its output."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_vlm import build_tiny_qwen_vl, image_pad_id  # noqa: E402

from vseek_env.env import VideoSeekerEnv  # noqa: E402
from vseek_env.policies import make_policy  # noqa: E402
from vseek_env.runner import run_episode  # noqa: E402


@pytest.mark.parametrize("kind", ["qwen2_5_vl", "qwen3_vl"])
def test_tiny_model_plays_through_the_env(kind):
    model, processor = build_tiny_qwen_vl(kind)
    policy = make_policy("hf", model=model, processor=processor, device="cpu", max_new_tokens=12)
    env = VideoSeekerEnv(dataset="synth:tiny", max_turns=3, error_budget=5)
    result = run_episode(env, policy, seed=0)
    assert result.num_turns == 3 and result.truncated  # random weights never answer, and nothing crashes
    assert all(isinstance(t.response, str) for t in result.trajectory.turns)
    roles = [m["role"] for m in policy.messages]
    assert roles[:3] == ["system", "user", "assistant"] and roles.count("assistant") == 3
    # every frame the env showed reached the model as an image
    shown = sum(1 for m in policy.messages for p in m["content"] if p["type"] == "image")
    assert shown == 17
    # the tool schemas are rendered into the prompt
    text = processor.apply_chat_template(policy.messages[:2], tools=policy.tools, tokenize=False, add_generation_prompt=True)
    assert '"name": "crop_video"' in text and text.count("<|image_pad|>") == 17


def test_tool_results_come_back_with_their_frames():
    model, processor = build_tiny_qwen_vl("qwen2_5_vl")
    policy = make_policy("hf", model=model, processor=processor, max_new_tokens=4)
    env = VideoSeekerEnv(dataset="synth:tiny")
    obs, info = env.reset(seed=0)
    policy.bind_env(env)
    policy.reset(0)
    policy.act(obs, info)
    obs, _, _, _, info = env.step('<think>x</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 0, "end_time": 4}}</tool_call>')
    policy.act(obs, info)
    tool_turn = policy.messages[3]
    texts = "".join(p["text"] for p in tool_turn["content"] if p["type"] == "text")
    assert tool_turn["role"] == "user" and texts.startswith("<tool_response>") and "seconds>" in texts
    assert sum(p["type"] == "image" for p in tool_turn["content"]) == obs["num_frames"] > 0
    ids = processor.apply_chat_template(policy.messages, tokenize=True, return_dict=True, return_tensors="pt")["input_ids"]
    assert int((ids == image_pad_id(processor)).sum()) > 0


def test_max_images_keeps_the_newest():
    model, processor = build_tiny_qwen_vl("qwen2_5_vl")
    policy = make_policy("hf", model=model, processor=processor, max_images=2)
    img = np.zeros((28, 28, 3), np.uint8)
    policy.messages = policy._convert([{"role": "user", "content": [{"type": "image", "image": img}] * 3 + [{"type": "text", "text": "q"}]}])
    kept = policy._context()[0]["content"]
    assert [p["type"] for p in kept] == ["text", "image", "image", "text"] and kept[0]["text"] == "[image omitted]"
    with pytest.raises(ValueError, match="processor"):
        make_policy("hf", model=model)
