"""An example vseek-env reward plugin: ``brevity`` rewards short reasoning.

Installed, it is selectable by name without importing anything:
``gym.make("VideoSeeker-v0", reward={"accuracy": 1.0, "brevity": 0.1})``.
"""

from vseek_env.rewards import RewardOutput, register_reward


@register_reward("brevity", range=(0.0, 1.0))
def brevity(sample, trajectory, *, budget: int = 2000) -> RewardOutput:
    """``max(0, 1 - chars / budget)`` over all ``<think>`` text of the episode."""
    chars = sum(len(turn.parsed.think or "") for turn in trajectory.turns)
    return RewardOutput(max(0.0, 1.0 - chars / max(1, budget)), {"think_chars": chars})
