"""The GRPO recipes in ``examples/verl`` compose against verl's own Hydra config.

Each script is run by bash with ``python3`` replaced by a stub that records its arguments, so the
overrides checked are exactly what the script would pass to ``verl.trainer.main_ppo`` (shell
quoting and variable defaults included). Composition fails on unknown keys; the dataclass
conversion fails on keys verl's config classes do not accept (e.g. legacy multi-turn keys).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("verl.trainer", reason="needs the verl extra: pip install 'vseek-env[verl]'")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "verl"


def script_overrides(script: str, tmp_path: Path, **env: str) -> list[str]:
    stub = tmp_path / "bin" / "python3"
    stub.parent.mkdir(exist_ok=True)
    record = tmp_path / "argv.txt"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    stub.chmod(0o755)
    full_env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}", "REWARD_PY": "/abs/reward.py", **env}
    subprocess.run(["bash", str(EXAMPLES / script)], env=full_env, check=True, timeout=60)
    argv = record.read_text().splitlines()
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    return argv[2:]


def compose(overrides: list[str]):
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=os.path.join(os.path.dirname(verl.__file__), "trainer", "config"), version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides)


def check_dataclasses(cfg) -> None:
    from verl.utils.config import omega_conf_to_dataclass

    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert rollout.agent.default_agent_loop == "vseek_agent"
    omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)  # (model: its dataclass loads the HF config)


def test_paper_recipe_composes_with_the_papers_settings(tmp_path):
    overrides = script_overrides("run_qwen3vl_8b_grpo.sh", tmp_path)
    assert len(overrides) == len({o.lstrip("+").split("=", 1)[0] for o in overrides})  # no key set twice
    cfg = compose(overrides)
    check_dataclasses(cfg)
    assert cfg.algorithm.adv_estimator == "grpo"
    assert cfg.data.train_batch_size == 32 and cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 8
    assert cfg.actor_rollout_ref.rollout.n == 8
    assert cfg.actor_rollout_ref.actor.optim.lr == pytest.approx(1e-6)
    actor = cfg.actor_rollout_ref.actor
    assert actor.use_kl_loss and actor.kl_loss_coef == pytest.approx(0.001) and actor.kl_loss_type == "low_var_kl"
    assert cfg.actor_rollout_ref.rollout.prompt_length == 16384 and cfg.actor_rollout_ref.rollout.response_length == 4096
    assert cfg.reward.custom_reward_function.path == "/abs/reward.py"
    assert list(cfg.trainer.logger) == ["console", "wandb"]
    assert "custom_reward_function" not in cfg or cfg.custom_reward_function.get("path") is None  # no legacy keys


def test_smoke_recipe_composes_for_one_gpu(tmp_path):
    overrides = script_overrides("run_qwen3vl_2b_smoke.sh", tmp_path)
    cfg = compose(overrides)
    check_dataclasses(cfg)
    assert cfg.trainer.n_gpus_per_node == 1 and cfg.trainer.total_training_steps == 2
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen3-VL-2B-Instruct"
    assert cfg.data.train_batch_size * cfg.actor_rollout_ref.rollout.n % cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 0


def test_agent_loop_yaml_instantiates_the_vseek_loop():
    import hydra
    from omegaconf import OmegaConf

    from vseek_env.integrations.verl import AGENT_LOOP_TARGET, AGENT_NAME

    entries = OmegaConf.load(EXAMPLES / "agent_loops.yaml")
    entry = next(e for e in entries if e.name == AGENT_NAME)
    assert entry._target_ == AGENT_LOOP_TARGET
    # AgentLoopWorker instantiates the entry with its runtime arguments; check the class resolves
    # and accepts the YAML's own keys (constructing the loop itself needs a running event loop).
    cls = hydra.utils.get_class(entry._target_)
    import inspect

    params = inspect.signature(cls.__init__).parameters
    assert {k for k in entry if not k.startswith("_") and k != "name"} <= set(params)


def test_a_misspelled_key_is_caught(tmp_path):
    from hydra.errors import ConfigCompositionException

    overrides = script_overrides("run_qwen3vl_8b_grpo.sh", tmp_path)
    with pytest.raises(ConfigCompositionException):
        compose(overrides + ["actor_rollout_ref.rollout.multi_turn.max_tool_call=3"])


def prepare_data_env_options(**env: str) -> dict:
    """The ENV_OPTIONS prepare_data.sh exports with (from frame_budget.sh, as the shell expands it)."""
    out = subprocess.run(
        ["bash", "-c", f'. "{EXAMPLES / "frame_budget.sh"}" && printf "%s" "$ENV_OPTIONS"'],
        env={**os.environ, **env}, capture_output=True, text=True, check=True, timeout=30,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("script", ["run_qwen3vl_8b_grpo.sh", "run_qwen3vl_2b_smoke.sh"])
def test_exported_episodes_fit_the_turn_and_image_limits(script, tmp_path):
    from vseek_env.config import EnvConfig

    options = prepare_data_env_options()
    assert options["max_turns"] == 6  # the paper's 5 tool rounds + the answer turn
    env = EnvConfig.from_kwargs(**options)
    cfg = compose(script_overrides(script, tmp_path))
    rollout = cfg.actor_rollout_ref.rollout
    grid = cfg.data.image_patch_size * 2  # Qwen3-VL merges 2x2 patches into one visual token
    assert env.patch_factor == grid
    tokens_per_frame = env.max_pixels // grid**2
    worst = env.overview_frames + int(env.show_prompt_frame) + math.ceil(rollout.response_length / tokens_per_frame)
    assert rollout.limit_images >= worst


@pytest.mark.parametrize("script", ["run_qwen3vl_8b_grpo.sh", "run_qwen3vl_2b_smoke.sh"])
def test_export_and_training_share_one_frame_budget(script, tmp_path):
    """The processor keeps the exported frames at their size; vLLM's context is the trajectory's."""
    from vseek_env.config import EnvConfig
    from vseek_env.integrations.verl.frames import processor_kwargs

    for env in ({}, {"PATCH_SIZE": "14", "MAX_PIXELS": "50176"}):
        options = EnvConfig.from_kwargs(**prepare_data_env_options(**env))
        cfg = compose(script_overrides(script, tmp_path, **env))
        assert options.patch_factor == cfg.data.image_patch_size * 2
        assert dict(cfg.data.mm_processor_kwargs) == processor_kwargs(
            max_pixels=options.max_pixels, patch_factor=options.patch_factor
        )
        rollout = cfg.actor_rollout_ref.rollout
        assert rollout.max_model_len == rollout.prompt_length + rollout.response_length
        assert cfg.trainer.v1.trainer_mode == "vseek_sync"


def test_environment_variables_override_every_smoke_default(tmp_path):
    cfg = compose(script_overrides(
        "run_qwen3vl_2b_smoke.sh", tmp_path, TRAIN_BATCH="8", ROLLOUT_N="2", MINI_BATCH="2", TOTAL_STEPS="5",
        MAX_RESPONSE="2048", GPUS_PER_NODE="2", LOGGER='["console","file"]',
    ))
    assert cfg.data.train_batch_size == 8 and cfg.actor_rollout_ref.rollout.n == 2
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 2 and cfg.trainer.total_training_steps == 5
    assert cfg.actor_rollout_ref.rollout.response_length == 2048 and cfg.trainer.n_gpus_per_node == 2
    assert list(cfg.trainer.logger) == ["console", "file"]


def test_the_vseek_sync_trainer_is_verls_sync_trainer():
    from verl.trainer.ppo.v1 import get_trainer_cls

    assert issubclass(get_trainer_cls("vseek_sync"), get_trainer_cls("sync"))


def test_cpu_smoke_overrides_compose_on_the_default_v1_path(tmp_path):
    from vseek_env.integrations.verl.cpu.smoke import SCRIPTED_FIRST_TURN, SCRIPTED_FOLLOWUP, env_options, overrides
    from vseek_env.integrations.verl.frames import processor_kwargs

    for kind in ("qwen2_5_vl", "qwen3_vl"):
        cfg = compose(overrides(tmp_path, steps=2, kind=kind))
        assert cfg.trainer.use_v1 and cfg.trainer.v1.trainer_mode == "vseek_sync"
        assert cfg.actor_rollout_ref.rollout.name == "vseek_hf"
        frames = env_options(kind)
        assert dict(cfg.data.mm_processor_kwargs) == processor_kwargs(
            max_pixels=frames["max_pixels"], patch_factor=frames["patch_factor"]
        )
        assert list(cfg.trainer.logger) == ["console", "file"]
        # The scripted replies survive Hydra's override grammar exactly (an escaped "\n" would not).
        scripted = cfg.actor_rollout_ref.rollout.engine_kwargs.vseek_hf
        assert tuple(scripted.scripted_first_turn) == SCRIPTED_FIRST_TURN
        assert tuple(scripted.scripted_followup) == SCRIPTED_FOLLOWUP
