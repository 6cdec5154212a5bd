"""Pluggable rewards (installed as ``vseek_env.rewards``).

Select by name in the env config: ``gym.make("VideoSeeker-v0", reward="paper")`` or
``reward={"accuracy": 1.0, "format": 0.2}``. Register your own with :func:`register_reward` or the
``vseek_env.rewards`` entry-point group.
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
from vseek_env.rewards import builtin  # noqa: F401  (registers the built-ins)

__all__ = [
    "ENTRY_POINT_GROUP", "PRESETS", "CompositeReward", "RewardOutput", "RewardSpec",
    "available_rewards", "get_reward", "make_reward", "register_reward",
]
