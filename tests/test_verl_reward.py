"""``compute_score`` through verl's own reward path: ``load_reward_manager`` -> ``NaiveRewardManager.run_single``
on a hand-built batch of one exported row, scored like the env scores the same responses."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("verl.experimental.reward_loop", reason="needs the verl extra: pip install 'vseek-env[verl]'")

import torch  # noqa: E402
from tiny_vlm import build_tiny_tokenizer  # noqa: E402

import vseek_env.integrations.verl.reward as reward_module  # noqa: E402
from vseek_env.integrations.verl.rows import env_from_extra_info, make_rows  # noqa: E402

CROP = '<think>look</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 2, "end_time": 4}}</tool_call>'


def transcript(tokenizer, responses: list[str]) -> list[int]:
    """Response token ids as a multi-turn rollout lays them out: model turns + rendered tool turns."""
    ids: list[int] = []
    for i, text in enumerate(responses):
        ids += tokenizer.encode(text + "<|im_end|>", add_special_tokens=False)
        if i < len(responses) - 1:
            ids += tokenizer.encode(
                "\n<|im_start|>user\n<tool_response>\n2 frames from 2.0 to 4.0 seconds:<2.0 seconds>"
                "<|vision_start|><|image_pad|><|vision_end|>\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
                add_special_tokens=False,
            )
    return ids


def score_with_verl(tokenizer, row, responses, reward_kwargs=None):
    from omegaconf import OmegaConf
    from tensordict import TensorDict
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = OmegaConf.create({"reward": {
        "custom_reward_function": {"path": reward_module.__file__, "name": "compute_score",
                                   "reward_kwargs": dict(reward_kwargs or {})},
        "reward_manager": {"source": "register", "name": "naive", "module": {"path": None, "name": None}},
    }})
    prompt = tokenizer.encode("<|im_start|>user\nquestion<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    response = transcript(tokenizer, responses)
    padding = 5
    batch = DataProto(
        batch=TensorDict({
            "prompts": torch.tensor([prompt]),
            "responses": torch.tensor([response + [tokenizer.pad_token_id] * padding]),
            "attention_mask": torch.tensor([[1] * (len(prompt) + len(response)) + [0] * padding]),
        }, batch_size=1),
        non_tensor_batch={
            "data_source": np.array([row["data_source"]], dtype=object),
            "reward_model": np.array([row["reward_model"]], dtype=object),
            "extra_info": np.array([row["extra_info"]], dtype=object),
            "tool_extra_fields": np.array([{"tool_rewards": [0.0]}], dtype=object),
            "__num_turns__": np.array([2 * len(responses)], dtype=object),
        },
    )

    async def main():  # the reward manager captures the running event loop at construction
        return await load_reward_manager(cfg, tokenizer).run_single(batch)

    return asyncio.run(main())


def env_reward(row, responses):
    env, sample_id = env_from_extra_info(row["extra_info"])
    env.reset(options={"sample_id": sample_id})
    for text in responses:
        _, reward, terminated, truncated, info = env.step(text)
    assert terminated or truncated
    return reward, info["reward_components"]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.mark.parametrize("answer", ["B", "C"])
def test_naive_reward_manager_scores_like_the_env(tokenizer, small_dataset, answer):
    row = next(make_rows(small_dataset, env_options={"overview_frames": 2}))
    responses = [CROP, f"<think>so</think><answer>{answer}</answer>"]
    result = score_with_verl(tokenizer, row, responses)
    reward, components = env_reward(row, responses)
    assert result["reward_score"] == pytest.approx(reward)
    extra = result["reward_extra_info"]
    assert extra["acc"] == components["accuracy"] == (1.0 if answer == "B" else 0.0)
    assert extra["num_tool_calls"] == 1 and extra["num_turns"] == 2  # the env-side count, not verl's __num_turns__


def test_the_rows_env_reward_spec_is_used_unless_configured(tokenizer, small_dataset):
    row = next(make_rows(small_dataset, env_options={"overview_frames": 2, "reward": "accuracy"}))
    responses = [CROP, "<think>so</think><answer>B</answer>"]
    assert score_with_verl(tokenizer, row, responses)["reward_score"] == pytest.approx(env_reward(row, responses)[0]) == 1.0
    configured = score_with_verl(tokenizer, row, responses, reward_kwargs={"reward": "paper"})
    assert configured["reward_score"] < 1.0  # parsimony charges for the crop


def test_the_env_tool_records_replace_the_calls_parsed_from_text():
    """The adapters' records (clamped windows, which calls ran) decide crop IoU; parsimony counts
    every invocation, so the failed call costs as much as the one that ran."""
    import json

    from conftest import make_sample

    from vseek_env.rewards import compute_score

    sample = make_sample("rec", answer="B", evidence=(2.0, 4.0))
    wide = '<think>a</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 2, "end_time": 99}}</tool_call>'
    text = f"{wide}\nuser\n<tool_response>ok</tool_response>\nassistant\n{wide}\nuser\n" \
           "<tool_response>ok</tool_response>\nassistant\n<think>b</think><answer>B</answer>"
    spec = {"crop_iou": 1.0, "parsimony": 1.0}
    extra = {"sample": json.dumps(sample.to_dict())}
    parsed = compute_score("x", text, "B", extra, reward=spec)
    assert parsed["num_tool_calls"] == 2 and parsed["crop_iou"] < 0.5  # the requested, unclamped windows

    records = [  # the env clamped the first window to the 4 s video; the second call failed
        {"name": "crop_video", "ok": True, "error_code": None, "window": np.array([2.0, 4.0]), "num_frames": 3},
        {"name": "crop_video", "ok": False, "error_code": "budget", "window": None, "num_frames": 0},
    ]
    scored = compute_score("x", text, "B", {**extra, "vseek_tool_calls": np.array(records, dtype=object)}, reward=spec)
    assert scored["crop_iou"] == 1.0 and scored["num_tool_calls"] == 1
    assert scored["parsimony"] == parsed["parsimony"] == pytest.approx(0.8)
    assert set(scored) == set(parsed)
