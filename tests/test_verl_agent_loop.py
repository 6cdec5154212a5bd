"""The ``vseek_agent`` loop runs whole env episodes against a scripted verl server client (CPU).

The pattern is verl's own ``*_on_cpu.py`` agent-loop tests: a fake ``generate`` returning
``TokenOutput`` and a tiny locally built Qwen-VL processor. The episode's reward is checked against
an independent replay of the same responses through a fresh env.
"""

from __future__ import annotations

import asyncio
import os
import types

import pytest

pytest.importorskip("verl.experimental.agent_loop", reason="needs the verl extra: pip install 'vseek-env[verl]'")

import torch  # noqa: E402
from tiny_vlm import IMAGE_PAD, build_tiny_processor  # noqa: E402

from vseek_env.integrations.verl.rows import env_from_extra_info, make_rows  # noqa: E402

ENV_OPTIONS = {"overview_frames": 4, "max_turns": 4, "crop_min_frames": 3, "crop_max_frames": 3}
CROP = '<think>look closer</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 2, "end_time": 4}}</tool_call>'
VIEW = '<think>where is it</think><tool_call>{"name": "view_visual_prompt", "arguments": {}}</tool_call>'
GARBAGE = "I am not following the format <tool_call>{oops</tool_call>"
ANSWER = "<think>it moves right</think><answer>B</answer>"


def compose_config(response_length: int, prompt_length: int = 8192):
    import verl
    from hydra import compose, initialize_config_dir

    cfg_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=cfg_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=[
            f"data.max_prompt_length={prompt_length}", f"data.max_response_length={response_length}",
            "actor_rollout_ref.rollout.name=vllm",
        ])


class ScriptedServer:
    """Stands in for verl's ``LLMServerClient``: replies with the next scripted text, as token ids."""

    def __init__(self, tokenizer, script: list[str], first_step: int = 3):
        self.tokenizer, self.script, self.calls, self.first_step = tokenizer, list(script), [], first_step

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, video_data=None, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        pad = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.calls.append({"prompt_ids": list(prompt_ids), "n_images": len(image_data or []),
                           "n_pads": sum(i == pad for i in prompt_ids), "sampling_params": dict(sampling_params),
                           "mm_processor_kwargs": kwargs.get("mm_processor_kwargs")})
        text = self.script[min(len(self.calls), len(self.script)) - 1]
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.convert_tokens_to_ids("<|im_end|>")]
        # What verl's rollout client adds to every result: the weight version (global step) that
        # generated it; here the policy is updated between every two turns.
        step = self.first_step + len(self.calls) - 1
        versions = {"global_steps": step, "min_global_steps": step, "max_global_steps": step}
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), extra_fields=versions)


@pytest.fixture(scope="module")
def processor():
    return build_tiny_processor("qwen2_5_vl")


@pytest.fixture(scope="module")
def rows(small_dataset):
    return list(make_rows(small_dataset, env_options=ENV_OPTIONS))


def run_loop(processor, row, script, response_length=4096, limit_images=None, **loop_kwargs):
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from vseek_env.integrations.verl.agent_loop import VSeekAgentLoop

    cfg = compose_config(response_length)
    if limit_images is not None:  # the recipe adds it with `+actor_rollout_ref.rollout.limit_images=N`
        from omegaconf import open_dict

        with open_dict(cfg):
            cfg.actor_rollout_ref.rollout.limit_images = limit_images
    server = ScriptedServer(processor.tokenizer, script)  # ignores max_tokens, like a faulty server

    async def main():  # verl's loops capture the running event loop at construction
        loop = VSeekAgentLoop(
            trainer_config=DictConfigWrap(cfg), server_manager=server, tokenizer=processor.tokenizer,
            processor=processor, dataset_cls=RLHFDataset, data_config=DictConfigWrap(cfg.data),
            hf_model_type="qwen2_5_vl", name="vseek_agent", **loop_kwargs,
        )
        return await loop.run({"temperature": 1.0}, extra_info=row["extra_info"], raw_prompt=row["prompt"])

    return asyncio.run(main()), server


def replay(row, script):
    """Reward, components and trajectory of the same responses played directly in a fresh env."""
    env, sample_id = env_from_extra_info(row["extra_info"])
    env.reset(options={"sample_id": sample_id})
    for text in script:
        _, reward, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            return reward, info
    raise AssertionError("the script does not finish the episode")


def model_token_ids(processor, script):
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    return [processor.tokenizer.encode(t, add_special_tokens=False) + [end] for t in script]


def test_episode_tokens_mask_images_and_reward(processor, rows):
    script = [VIEW, CROP, ANSWER]
    out, server = run_loop(processor, rows[0], script)
    tok = processor.tokenizer

    # Model tokens are exactly the generated ones, in order, under mask 1; the rest is observation.
    generated = model_token_ids(processor, script)
    assert len(out.response_ids) == len(out.response_mask)
    trained = [t for t, m in zip(out.response_ids, out.response_mask) if m == 1]
    assert trained == [t for ids in generated for t in ids]
    observed = [t for t, m in zip(out.response_ids, out.response_mask) if m == 0]
    assert tok.convert_tokens_to_ids(IMAGE_PAD) in observed  # the tool frames came back as images
    assert "<tool_response>" in tok.decode(observed) and "<3.0 seconds>" in tok.decode(observed)
    assert out.response_mask[0] == 1 and out.response_mask[-1] == 1

    # Prompt = the env's first observation; every generate call saw the whole running context.
    assert out.prompt_ids == server.calls[0]["prompt_ids"]
    full = out.prompt_ids + out.response_ids
    for call, ids in zip(server.calls[1:], generated):
        assert full[: len(call["prompt_ids"])] == call["prompt_ids"]

    # Images: one placeholder block per image, and as many pad tokens as the processor's features.
    images = out.multi_modal_data["images"]
    n_overview_and_prompt = ENV_OPTIONS["overview_frames"] + 1
    assert len(images) == n_overview_and_prompt + 1 + 3  # + visual-prompt frame + 3 cropped frames
    assert full.count(tok.convert_tokens_to_ids("<|vision_start|>")) == len(images)
    grid = processor.image_processor(images=images, return_tensors="pt")["image_grid_thw"]
    merge = processor.image_processor.merge_size ** 2
    assert full.count(tok.convert_tokens_to_ids(IMAGE_PAD)) == int(grid.prod(-1).sum()) // merge
    assert [c["n_images"] for c in server.calls] == [n_overview_and_prompt, n_overview_and_prompt + 1, len(images)]

    # Reward = what the env gives the same responses; components and stats are reported.
    reward, info = replay(rows[0], script)
    assert out.reward_score == pytest.approx(reward)
    stats = out.extra_fields["reward_extra_info"]
    assert stats["score"] == pytest.approx(reward)
    assert {f"reward/{k}" for k in info["reward_components"]} <= set(stats)
    assert stats["num_tool_calls"] == 2 and stats["answered"] == 1.0 and stats["cut_by_length"] == 0.0
    assert out.extra_fields["crop_windows"] == [[2.0, 4.0]]
    assert out.num_turns == 1 + 3 + 2  # prompt + 3 responses + 2 observations
    assert out.response_logprobs is not None and len(out.response_logprobs) == len(out.response_ids)


def test_trajectory_carries_the_weight_versions_it_was_generated_with(processor, rows):
    """verl's V1 trainer builds an int array of every trajectory's min/max global steps (staleness
    metrics) and fails on None; an episode spans its first turn's version to its last turn's."""
    out, server = run_loop(processor, rows[0], [VIEW, CROP, ANSWER])
    assert len(server.calls) == 3
    assert out.extra_fields["min_global_steps"] == 3 and out.extra_fields["max_global_steps"] == 5


def test_episode_stats_report_the_same_keys_for_every_trajectory(processor, rows):
    from vseek_env.integrations.verl.agent_loop import STAT_KEYS

    short, _ = run_loop(processor, rows[0], [ANSWER])
    long, _ = run_loop(processor, rows[0], [GARBAGE, CROP, ANSWER])
    for out in (short, long):
        stats = out.extra_fields["reward_extra_info"]
        assert set(STAT_KEYS) <= set(stats) and stats["acc"] == stats["reward/accuracy"]
        assert stats["prompt_image_tokens"] > 0
    assert set(short.extra_fields["reward_extra_info"]) == set(long.extra_fields["reward_extra_info"])


def test_malformed_output_becomes_feedback_and_wrong_answer_scores_like_the_env(processor, rows):
    script = [GARBAGE, CROP, "<think>hm</think><answer>A</answer>"]
    out, _ = run_loop(processor, rows[0], script)
    reward, info = replay(rows[0], script)
    assert out.reward_score == pytest.approx(reward)
    assert out.extra_fields["reward_extra_info"]["num_errors"] >= 1
    observed = processor.tokenizer.decode([t for t, m in zip(out.response_ids, out.response_mask) if m == 0])
    assert "Error (" in observed  # the env's feedback reached the model as an observation
    assert out.extra_fields["reward_extra_info"]["reward/accuracy"] == info["reward_components"]["accuracy"] == 0.0


def test_env_truncation_ends_the_episode(processor, rows):
    out, server = run_loop(processor, rows[1], [CROP])  # never answers: max_turns truncates
    assert len(server.calls) == ENV_OPTIONS["max_turns"]
    stats = out.extra_fields["reward_extra_info"]
    assert stats["truncated"] == 1.0 and stats["answered"] == 0.0 and stats["cut_by_length"] == 0.0
    assert out.reward_score == pytest.approx(replay(rows[1], [CROP] * ENV_OPTIONS["max_turns"])[0])


def test_length_budget_cuts_before_images_are_added(processor, rows):
    out, server = run_loop(processor, rows[0], [CROP, ANSWER], response_length=150)
    stats = out.extra_fields["reward_extra_info"]
    assert stats["cut_by_length"] == 1.0 and stats["truncated"] == 1.0 and stats["answered"] == 0.0
    assert len(server.calls) == 1 and len(out.response_ids) <= 150
    full = out.prompt_ids + out.response_ids
    pad = processor.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    images = out.multi_modal_data["images"]
    grid = processor.image_processor(images=images, return_tensors="pt")["image_grid_thw"]
    assert full.count(pad) == int(grid.prod(-1).sum()) // 4  # no image without its tokens
    assert out.reward_score == pytest.approx(stats["score"])


def test_trainer_side_multimodal_inputs_match_the_tokens(processor, rows):
    """verl's worker recomputes pixel values and M-RoPE ids from the output; they must line up."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    out, _ = run_loop(processor, rows[2], [CROP, '<think>t</think><answer>[2, 4]</answer>'])
    worker = types.SimpleNamespace(processor=processor, tokenizer=processor.tokenizer)
    input_ids = torch.tensor([out.prompt_ids + out.response_ids])
    mm = AgentLoopWorker._compute_multi_modal_inputs(worker, out, input_ids)
    assert mm["image_grid_thw"].shape[0] == len(out.multi_modal_data["images"])
    pos = AgentLoopWorker._compute_position_ids(worker, input_ids, torch.ones_like(input_ids), mm)
    assert tuple(pos.shape) == (1, 4, input_ids.shape[1])


def test_rows_without_a_sample_fail_with_a_clear_error(processor):
    with pytest.raises(ValueError, match="export-verl"):
        run_loop(processor, {"extra_info": {"index": 7}, "prompt": []}, [ANSWER])


def test_generation_is_bounded_by_the_budget_and_the_env_scores_only_kept_tokens(processor, rows):
    """A server that overruns max_tokens must not get an answer credited that the trainer cuts off."""
    full_out, _ = run_loop(processor, rows[0], [CROP, ANSWER])
    observation_end = max(i for i, m in enumerate(full_out.response_mask) if m == 0) + 1
    long_answer = "<think>" + "the circle moves to the right " * 60 + "</think><answer>B</answer>"
    assert replay(rows[0], [CROP, long_answer])[1]["reward_components"]["accuracy"] == 1.0  # B is right

    budget = 20
    out, server = run_loop(processor, rows[0], [CROP, long_answer], response_length=observation_end + budget)
    assert [c["sampling_params"]["max_tokens"] for c in server.calls] == [observation_end + budget, budget]
    assert all(c["sampling_params"]["temperature"] == 1.0 for c in server.calls)
    assert all(c["mm_processor_kwargs"] is not None for c in server.calls)
    stats = out.extra_fields["reward_extra_info"]
    assert stats["cut_by_length"] == 1.0 and stats["answered"] == 0.0
    assert stats["reward/accuracy"] == 0.0 and out.extra_fields["answer"] is None
    assert "<answer>" not in processor.tokenizer.decode(out.response_ids)
    assert len(out.response_ids) == observation_end + budget


def test_images_past_the_rollout_limit_cut_the_episode(processor, rows):
    n_prompt = ENV_OPTIONS["overview_frames"] + 1
    out, server = run_loop(processor, rows[0], [VIEW, CROP, ANSWER], limit_images=n_prompt + 1)
    assert len(server.calls) == 2  # the crop's 3 frames would exceed the limit: cut before them
    assert len(out.multi_modal_data["images"]) == n_prompt + 1
    stats = out.extra_fields["reward_extra_info"]
    assert stats["cut_by_length"] == 1.0 and stats["truncated"] == 1.0
    full = out.prompt_ids + out.response_ids
    assert full.count(processor.tokenizer.convert_tokens_to_ids("<|vision_start|>")) == n_prompt + 1
    with pytest.raises(ValueError, match="limit_images"):
        run_loop(processor, rows[0], [ANSWER], limit_images=n_prompt - 1)


def test_the_paper_overview_reaches_the_processor_as_one_video_with_true_times(small_dataset):
    """verl 0.9 hands ``(frames, metadata)`` pairs to the Qwen-VL processor; the metadata's
    ``frames_indices / fps`` are the frames' presentation times. (The Qwen video processors need
    torchvision, absent here, so the processor call itself is not run.)"""
    from vseek_env.config import EnvConfig
    from vseek_env.env import VideoSeekerEnv
    from vseek_env.integrations.verl.messages import to_chat_messages, to_row_messages

    env = VideoSeekerEnv(dataset=small_dataset, config=EnvConfig.from_kwargs(protocol="paper"))
    _, info = env.reset(seed=0)
    part = next(p for m in info["messages"] for p in m["content"] if isinstance(p, dict) and p.get("type") == "video")
    chat, images, videos = to_chat_messages(info["messages"])
    assert images == [] and len(videos) == 1
    frames, metadata = videos[0]
    assert tuple(frames.shape) == (len(part["video"]), 3, *part["video"][0].shape[:2])
    assert [i / metadata["fps"] for i in metadata["frames_indices"]] == pytest.approx(part["timestamps"], abs=1e-3)
    assert sum(p == {"type": "video"} for m in chat if isinstance(m["content"], list) for p in m["content"]) == 1
    rows, blobs = to_row_messages(info["messages"], embed_images=False)
    assert blobs == [] and all(isinstance(r["content"], str) for r in rows)
    with pytest.raises(ValueError, match="vseek_agent loop"):
        to_row_messages(info["messages"], embed_images=True)
    env.close()
