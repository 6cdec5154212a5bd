"""GRPO through verl's own ``main_ppo`` on CPU: a tiny random Qwen-VL, ``synth:tiny``, 2 steps.

``python -m vseek_env.integrations.verl.cpu.smoke OUTDIR`` (what ``examples/verl/run_cpu_smoke.sh``
runs) prepares everything in ``OUTDIR`` and launches ``python -m verl.trainer.main_ppo`` on verl's
default (V1, TransferQueue) trainer with:

* ``OUTDIR/model``: a random tiny Qwen2.5-VL (or Qwen3-VL) saved from a config, no download;
* ``OUTDIR/data/{train,val}.parquet``: ``synth:tiny`` exported with ``vseek export-verl``'s code;
* the ``vseek_agent`` loop (env episodes, env reward), the ``vseek_hf`` CPU rollout and the ``cpu``
  platform from :mod:`vseek_env.integrations.verl.cpu`;
* ``trainer.logger=['console','file']``: verl writes each step's metrics to ``OUTDIR/metrics.jsonl``.

A random model never writes a well-formed answer, so every reward would be 0 and GRPO's
advantages would vanish. The rollout therefore answers with scripted responses
(``engine_kwargs.vseek_hf``, :class:`~vseek_env.integrations.verl.cpu.rollout.ScriptedResponses`):
right and wrong letters, with and without the think block, one tool call. Each group gets reward
variance, the policy-gradient loss is non-zero and the actor's weights move (the run checks the
saved actor against the initial weights). This tests the plumbing, not learning.

Example:
    >>> from vseek_env.integrations.verl.cpu.smoke import main   # doctest: +SKIP
    >>> main(["/tmp/vseek_smoke"])                                # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

from vseek_env.integrations.verl import AGENT_LOOP_TARGET, AGENT_NAME
from vseek_env.integrations.verl.cpu import PLATFORM_NAME, ROLLOUT_NAME
from vseek_env.integrations.verl.trainer import TRAINER_NAME

# What the rollout answers instead of sampling (see cpu.rollout.ScriptedResponses). Neighbours in
# the first-turn ring always score differently under the paper reward (a tool call costs
# parsimony; a missing think block costs format), so each GRPO group of 2 has reward variance;
# letters are right for some samples and wrong for others. The tool call exercises a second turn.
# No newlines or backslashes: Hydra's override grammar would keep "\n" as two characters.
SCRIPTED_FIRST_TURN = (
    '<think>Look closer.</think> <tool_call>{"name": "crop_video", "arguments": {"start_time": 0.0, "end_time": 1.0}}</tool_call>',
    "<answer>A</answer>",
    "<think>The marked object.</think> <answer>B</answer>",
    "<answer>C</answer>",
)
SCRIPTED_FOLLOWUP = ("<think>Seen it.</think> <answer>A</answer>", "<think>Seen it.</think> <answer>B</answer>")

PATCH_SIZES = {"qwen2_5_vl": 14, "qwen3_vl": 16}


def env_options(kind: str) -> dict:
    """Env options sized for a 2-core machine, on the model's grid: 2 overview frames of at most
    4x4 merged patches (16 image tokens each), 2 frames per crop, one tool round before the answer."""
    factor = 2 * PATCH_SIZES[kind]
    return {
        "max_turns": 2, "overview_frames": 2, "max_pixels": (4 * factor) ** 2, "patch_factor": factor,
        "crop_min_frames": 2, "crop_max_frames": 2, "max_frames_per_episode": 8,
    }


def overrides(out: Path, *, steps: int, kind: str) -> list[str]:
    """The Hydra overrides of ``verl.trainer.main_ppo`` for the CPU smoke run."""
    patch = PATCH_SIZES[kind]
    frames = env_options(kind)
    first, followup = json.dumps(list(SCRIPTED_FIRST_TURN)), json.dumps(list(SCRIPTED_FOLLOWUP))
    return [
        "algorithm.adv_estimator=grpo",
        "algorithm.use_kl_in_reward=False",
        f"data.train_files={out / 'data' / 'train.parquet'}",
        f"data.val_files={out / 'data' / 'val.parquet'}",
        "data.train_batch_size=2",
        "data.val_batch_size=2",
        "data.max_prompt_length=2048",
        "data.max_response_length=384",
        "data.filter_overlong_prompts=False",
        "data.truncation=error",
        f"data.image_patch_size={patch}",
        # The processor keeps the env's frames at their size (see integrations/verl/frames.py).
        f"+data.mm_processor_kwargs.min_pixels={frames['patch_factor'] ** 2}",
        f"+data.mm_processor_kwargs.max_pixels={frames['max_pixels']}",
        "data.dataloader_num_workers=0",
        f"actor_rollout_ref.model.path={out / 'model'}",
        "actor_rollout_ref.model.trust_remote_code=True",
        "actor_rollout_ref.model.use_remove_padding=False",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.actor.strategy=fsdp2",
        "actor_rollout_ref.ref.strategy=fsdp2",
        "actor_rollout_ref.actor.use_torch_compile=False",
        "actor_rollout_ref.actor.optim.lr=1e-3",
        "actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.actor.use_kl_loss=False",
        "actor_rollout_ref.actor.entropy_coeff=0",
        f"actor_rollout_ref.rollout.name={ROLLOUT_NAME}",
        "actor_rollout_ref.rollout.mode=async",
        "actor_rollout_ref.rollout.n=2",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.temperature=1.0",
        "actor_rollout_ref.rollout.max_model_len=2432",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.checkpoint_engine.backend=naive",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME}",
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={out / 'agent_loops.yaml'}",
        f"+actor_rollout_ref.rollout.engine_kwargs.{ROLLOUT_NAME}.scripted_first_turn={first}",
        f"+actor_rollout_ref.rollout.engine_kwargs.{ROLLOUT_NAME}.scripted_followup={followup}",
        "trainer.device=cpu",
        f"trainer.v1.trainer_mode={TRAINER_NAME}",
        "trainer.n_gpus_per_node=1",
        "trainer.nnodes=1",
        "trainer.logger=[console,file]",
        "trainer.project_name=vseek_cpu_smoke",
        "trainer.experiment_name=tiny",
        f"trainer.total_training_steps={steps}",
        "trainer.total_epochs=100",
        "trainer.val_before_train=False",
        "trainer.test_freq=-1",
        # One checkpoint at the end, with a Hugging Face copy of the actor: the run compares it
        # with the initial weights to prove the update reached the model.
        f"trainer.save_freq={steps}",
        "actor_rollout_ref.actor.checkpoint.save_contents=[hf_model]",
        f"trainer.default_local_dir={out / 'checkpoints'}",
        "ray_kwargs.ray_init.num_cpus=16",
        "+ray_kwargs.ray_init.num_gpus=1",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    ]


def run_env(out: Path) -> dict[str, str]:
    """The process environment of the run: the CPU platform and verl's file logger."""
    env = dict(os.environ)
    env.update({
        "VERL_PLATFORM": PLATFORM_NAME,
        # verl keys its engine registry by device; the FSDP engine is registered for "cuda" only
        # and runs unchanged on CPU tensors.
        "VERL_ENGINE_DEVICE": "cuda",
        "VERL_FILE_LOGGER_PATH": str(out / "metrics.jsonl"),
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_DEDUP_LOGS": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    })
    return env


def prepare(out: Path, *, kind: str) -> None:
    """Write the tiny model, the train/val rows and the agent-loop YAML into ``out``."""
    from vseek_env.integrations.verl.cpu.tiny_model import save_tiny_model
    from vseek_env.integrations.verl.rows import export_verl

    save_tiny_model(out / "model", kind)
    with warnings.catch_warnings():
        # synth:tiny labels needs_tools for a 16-frame overview; this run tests plumbing, not necessity.
        warnings.filterwarnings("ignore", message=".*label needs_tools.*", category=UserWarning)
        for split in ("train", "val"):
            export_verl("synth:tiny", out / "data" / f"{split}.parquet", split=split, env_options=env_options(kind))
    (out / "agent_loops.yaml").write_text(
        f"- name: {AGENT_NAME}\n  _target_: {AGENT_LOOP_TARGET}\n  _convert_: all\n"
    )


def read_metrics(path: Path) -> list[dict]:
    """verl's file-logger lines: ``{"step": N, "data": {metric: value}}`` per training step."""
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            steps.append(json.loads(line))
    return steps


def weight_change(initial: Path, checkpoint: Path) -> float | None:
    """Largest absolute difference between the initial model and the saved actor (``None``: no checkpoint)."""
    from safetensors.numpy import load_file

    saved = sorted(checkpoint.glob("actor/huggingface/*.safetensors"))
    if not saved:
        return None
    before = {k: v for f in sorted(initial.glob("*.safetensors")) for k, v in load_file(f).items()}
    after = {k: v for f in saved for k, v in load_file(f).items()}
    shared = sorted(set(before) & set(after))
    if not shared:
        return None
    return max(float(abs(after[k].astype("float64") - before[k].astype("float64")).max()) for k in shared)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_cpu_smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="where the model, data, logs and metrics go")
    parser.add_argument("--steps", type=int, default=2, help="GRPO steps (default 2)")
    parser.add_argument("--kind", choices=("qwen2_5_vl", "qwen3_vl"), default="qwen2_5_vl")
    parser.add_argument("extra", nargs="*", help="further Hydra overrides for main_ppo")
    args = parser.parse_args(argv)
    out = args.outdir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)

    prepare(out, kind=args.kind)
    command = [sys.executable, "-m", "verl.trainer.main_ppo", *overrides(out, steps=args.steps, kind=args.kind), *args.extra]
    (out / "command.txt").write_text(" \\\n  ".join(command) + "\n")
    start = time.perf_counter()
    with open(out / "train.log", "w") as log:
        proc = subprocess.run(command, env=run_env(out), stdout=log, stderr=subprocess.STDOUT, cwd=out)
    elapsed = time.perf_counter() - start
    steps = read_metrics(metrics_path)
    summary = {"returncode": proc.returncode, "wall_s": round(elapsed, 1), "steps": len(steps)}
    for entry in steps:
        data = entry.get("data", {})
        summary[f"step{entry.get('step')}"] = {
            key: data[key] for key in (
                "critic/score/mean", "critic/score/max", "critic/score/min", "actor/pg_loss", "actor/grad_norm",
                "timing_s/step", "response_length/mean", "prompt_length/mean",
            ) if key in data
        }
    summary["actor_weight_change"] = weight_change(out / "model", out / "checkpoints" / f"global_step_{args.steps}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if proc.returncode != 0:
        print(f"main_ppo failed (exit {proc.returncode}); see {out / 'train.log'}", file=sys.stderr)
        return proc.returncode
    if not summary["actor_weight_change"]:
        print(f"the actor checkpoint of step {args.steps} equals the initial weights (or is missing)", file=sys.stderr)
        return 1
    if len(steps) < args.steps:
        print(f"verl logged {len(steps)} step(s), expected {args.steps}; see {out / 'train.log'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
