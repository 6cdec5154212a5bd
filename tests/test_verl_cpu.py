"""verl's own trainer on CPU: the plugin, the ``vseek_hf`` rollout, and ``main_ppo`` end to end.

The last test runs ``examples/verl/run_cpu_smoke.sh``: ``python -m verl.trainer.main_ppo`` on verl's
default V1 (TransferQueue) path with a tiny random Qwen2.5-VL saved from a config, the
``vseek_agent`` loop on ``synth:tiny``, the env reward, 2 GRPO steps and an FSDP2 actor update.
It checks verl's own file log and the saved actor, not anything the project wrote about itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("verl.experimental.agent_loop", reason="needs the verl extra: pip install 'vseek-env[verl]'")
pytest.importorskip("transfer_queue", reason="verl's default V1 trainer needs TransferQueue (the verl extra)")

import torch  # noqa: E402

from vseek_env.integrations.verl.cpu.rollout import HFGenerator, ScriptedResponses, suppressed_token_ids  # noqa: E402
from vseek_env.integrations.verl.cpu.tiny_model import IMAGE_PAD, build_tiny_qwen_vl  # noqa: E402
from vseek_env.integrations.verl.trainer import reward_component_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# -- scripted replies ---------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    ring=st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=4), min_size=2, max_size=6, unique_by=tuple),
    prompts=st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=12), min_size=1, max_size=5),
)
def test_rollouts_of_one_prompt_take_neighbouring_ring_entries(ring, prompts):
    scripted = ScriptedResponses(ring)
    for prompt in prompts:
        first, second = scripted.choose(prompt), scripted.choose(prompt)
        assert first in ring and second in ring
        assert ring.index(second) == (ring.index(first) + 1) % len(ring)  # so a group of 2 always differs


def test_a_later_turn_of_an_answered_prompt_is_a_followup():
    scripted = ScriptedResponses([[1], [2]], [[7], [8]])
    prompt = [10, 11, 12]
    assert scripted.choose(prompt) in ([1], [2])
    scripted.remember(prompt)
    assert scripted.choose(prompt + [1, 99, 98]) in ([7], [8])  # extends an answered prompt
    assert scripted.choose(prompt) in ([1], [2])                # the group's other first turn
    assert scripted.choose([10, 11]) in ([1], [2])              # a prefix is not a follow-up
    assert ScriptedResponses([]).choose(prompt) is None         # nothing scripted: sample


# -- per-step reward components ---------------------------------------------------------------
def test_reward_component_metrics_average_numeric_entries_of_kept_trajectories():
    fields = [
        {"reward_extra_info": {"acc": 1.0, "reward/format": 1.0, "answered": True, "note": "x"}},
        {"reward_extra_info": {"acc": 0.0, "reward/format": 0.5}},
        {"reward_extra_info": {"acc": 1.0, "reward/format": float("nan")}},
        {"reward_extra_info": {"acc": 1.0}},  # padding, dropped by the mask
        None,
    ]
    metrics = reward_component_metrics(fields, mask=[True, True, True, False, True])
    assert metrics == {"vseek/acc/mean": pytest.approx(2 / 3), "vseek/reward/format/mean": pytest.approx(0.75)}


# -- the HF rollout engine ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    model, processor = build_tiny_qwen_vl("qwen2_5_vl", seed=0)
    return model, processor


def image_prompt(processor):
    import numpy as np

    image = np.full((56, 84, 3), 128, dtype=np.uint8)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is it?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
    return ids, [image]


def test_generation_is_bounded_never_emits_vision_tokens_and_reports_log_probs(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    pad = tok.convert_tokens_to_ids(IMAGE_PAD)
    assert pad in suppressed_token_ids(tok)
    with torch.no_grad():  # make <|image_pad|> the model's favourite token
        model.lm_head.weight[pad] = model.lm_head.weight.abs().max() * 50
    engine = HFGenerator(model, processor, tok, default_max_tokens=64)
    prompt, images = image_prompt(processor)
    tokens, log_probs, stop = engine.generate(prompt, {"temperature": 1.0, "max_tokens": 12}, images)
    assert 1 <= len(tokens) <= 12 and pad not in tokens
    assert len(log_probs) == len(tokens) and all(lp <= 0.0 for lp in log_probs)
    assert stop in ("completed", "length")


def test_scripted_replies_are_scored_by_the_model_and_weights_load_by_name(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    engine = HFGenerator(model, processor, tok, default_max_tokens=64, scripted_first_turn=["<answer>A</answer>"])
    prompt, images = image_prompt(processor)
    tokens, log_probs, stop = engine.generate(prompt, {"temperature": 1.0}, images)
    assert tok.decode(tokens, skip_special_tokens=True) == "<answer>A</answer>" and stop == "completed"
    vision = engine.vision_inputs(images, None)
    assert log_probs == pytest.approx(engine.score(prompt, tokens, vision))

    name, weight = "lm_head.weight", model.lm_head.weight
    assert engine.load_weights({name: torch.zeros_like(weight), "not.a.weight": torch.ones(3)}) == 1
    assert float(model.lm_head.weight.abs().sum()) == 0.0
    assert engine.score(prompt, tokens, vision) == pytest.approx([-float(torch.log(torch.tensor(float(weight.shape[0]))))] * len(tokens))
    with pytest.raises(ValueError, match="none of the 1 weights"):
        engine.load_weights({"elsewhere.weight": torch.ones(2)})


# -- the plugin ------------------------------------------------------------------------------------
def test_importing_verl_registers_the_plugin_without_touching_other_runs():
    code = (
        "import os, verl\n"
        "from verl.plugin.platform.platform_manager import PlatformRegistry, _detect_platform_name\n"
        "from verl.workers.rollout.replica import RolloutReplicaRegistry\n"
        "from verl.workers.rollout.base import _ROLLOUT_REGISTRY\n"
        "from verl.trainer.ppo.v1 import get_trainer_cls\n"
        "import verl.utils.distributed as d\n"
        "print(PlatformRegistry.get('cpu').__name__, 'vseek_hf' in RolloutReplicaRegistry._registry,\n"
        "      ('vseek_hf', 'async') in _ROLLOUT_REGISTRY, get_trainer_cls('vseek_sync').__name__,\n"
        "      _detect_platform_name(), getattr(d.initialize_global_process_group_ray, '_vseek_gloo_only', False))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # Without VERL_PLATFORM=cpu nothing changes: detection never picks cpu, gloo is not forced.
    assert out.stdout.split() == ["PlatformCPU", "True", "True", "VSeekPPOTrainer", "nvidia", "False"]
    out = subprocess.run([sys.executable, "-c", code], env={**env, "VERL_PLATFORM": "cpu"},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["cpu", "True"]


# -- main_ppo end to end ---------------------------------------------------------------------------
@pytest.mark.slow
def test_main_ppo_runs_two_grpo_steps_on_cpu_and_moves_the_actor(tmp_path):
    out_dir = tmp_path / "smoke"
    proc = subprocess.run(
        ["bash", str(ROOT / "examples" / "verl" / "run_cpu_smoke.sh"), str(out_dir)],
        capture_output=True, text=True, timeout=1500, env={**os.environ, "PYTHON": sys.executable},
    )
    log_tail = (out_dir / "train.log").read_text()[-4000:] if (out_dir / "train.log").exists() else proc.stderr[-4000:]
    assert proc.returncode == 0, log_tail

    steps = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [s["step"] for s in steps] == [1, 2]
    for step in steps:
        data = step["data"]
        for key in ("critic/score/mean", "critic/score/max", "critic/score/min", "actor/pg_loss", "actor/grad_norm",
                    "vseek/reward/accuracy/mean", "vseek/reward/format/mean", "vseek/reward/parsimony/mean",
                    "vseek/acc/mean", "vseek/prompt_image_tokens/mean", "training/off_policy/trajectory_staleness/mean"):
            assert key in data, f"step {step['step']} lacks {key}"
        # Scripted neighbours differ in format or parsimony: every group has reward variance.
        assert data["critic/score/max"] > data["critic/score/min"]
        assert data["actor/grad_norm"] > 0
    # Well-formed scripted replies reach the env intact (think blocks, tool calls): format is earned.
    assert max(step["data"]["vseek/reward/format/mean"] for step in steps) > 0
    assert max(step["data"]["vseek/num_tool_calls/mean"] for step in steps) > 0
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["actor_weight_change"] > 0  # the saved actor differs from the initial weights
