"""Built-in rewards: accuracy, format and parsimony.

Each is one registered function of ``(sample, trajectory)``; ranges are in the decorators.
"""

from __future__ import annotations

from vseek_env.rewards.matching import match_answer
from vseek_env.rewards.registry import RewardOutput, register_reward

PARSIMONY_LAMBDA = 0.1


@register_reward("accuracy", range=(0.0, 1.0))
def accuracy(sample, trajectory) -> RewardOutput:
    """1 when the final answer matches the ground truth under the sample's answer kind."""
    if trajectory.answer is None:
        return RewardOutput(0.0, {"rule": "no_answer"})
    score, rule = match_answer(sample, trajectory.answer)
    return RewardOutput(score, {"rule": rule})


@register_reward("format", range=(0.0, 1.0))
def format_reward(sample, trajectory) -> float:
    """1 when every response follows the grammar and the episode ended with an answer."""
    if not trajectory.turns or trajectory.answer is None:
        return 0.0
    return float(all(turn.parsed.well_formed for turn in trajectory.turns))


@register_reward("parsimony", range=(0.0, 1.0))
def parsimony(sample, trajectory) -> float:
    """``max(0, 1 - λ·N)`` with N the tool calls that ran and λ = 0.1 (the paper does not give λ)."""
    return max(0.0, 1.0 - PARSIMONY_LAMBDA * trajectory.num_tool_calls)
