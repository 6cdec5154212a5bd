"""Pluggable rewards (installed as ``vseek_env.rewards``).

Select by name or spec in the env config::

    gym.make("VideoSeeker-v0", reward="paper")                       # 0.8 acc + 0.15 format + 0.05 parsimony
    gym.make("VideoSeeker-v0", reward={"accuracy": 1.0, "crop_iou": 0.0})   # crop_iou logged, not summed
    gym.make("VideoSeeker-v0", reward={"preset": "paper",                    # the paper's mix with an LLM judge
             "accuracy": {"judge": {"base_url": "http://localhost:8000/v1", "model": "Qwen2.5-7B-Instruct"}}})

Register your own with :func:`register_reward` or the ``vseek_env.rewards`` entry-point group.
The same functions back verl's :func:`compute_score`. Built-ins: see :mod:`vseek_env.rewards.builtin`.
"""

from vseek_env.rewards.registry import (
    ENTRY_POINT_GROUP,
    PRESETS,
    CompositeReward,
    RewardOutput,
    RewardSpec,
    available_rewards,
    get_reward,
    make_reward,
    register_reward,
)
from vseek_env.rewards import builtin  # noqa: F401,E402  (registers the built-ins)
from vseek_env.rewards.judge import JudgeConfig, LLMJudge, get_judge, judge_stats  # noqa: E402
from vseek_env.rewards.verl_score import compute_score  # noqa: E402

__all__ = [
    "ENTRY_POINT_GROUP", "PRESETS", "CompositeReward", "RewardOutput", "RewardSpec",
    "available_rewards", "get_reward", "make_reward", "register_reward",
    "JudgeConfig", "LLMJudge", "get_judge", "judge_stats", "compute_score",
]
