"""Play one episode of a policy in an env and keep what happened.

Example:
    >>> import gymnasium as gym, vseek_env                               # doctest: +SKIP
    >>> from vseek_env.policies import make_policy
    >>> result = run_episode(gym.make("VideoSeeker-v0"), make_policy("oracle"), seed=0)
    >>> result.reward, result.components
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class EpisodeResult:
    sample_id: str
    reward: float
    components: dict[str, float]
    metrics: dict[str, Any]
    terminated: bool
    truncated: bool
    answer: str | None
    num_turns: int
    num_tool_calls: int
    num_errors: int
    latency_s: float
    trajectory: Any = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {
            "sample_id": self.sample_id, "reward": self.reward, "components": self.components,
            "metrics": self.metrics, "terminated": self.terminated, "truncated": self.truncated,
            "answer": self.answer, "num_turns": self.num_turns, "num_tool_calls": self.num_tool_calls,
            "num_errors": self.num_errors, "latency_s": self.latency_s,
        }


StepCallback = Callable[[int, dict, str | None, dict], None]


def run_episode(
    env,
    policy,
    *,
    seed: int | None = None,
    sample_id: str | None = None,
    on_step: StepCallback | None = None,
) -> EpisodeResult:
    """Reset ``env`` (optionally on ``sample_id``), let ``policy`` act until the episode ends.

    ``on_step(turn, observation, response, info)`` is called after reset (``response=None``) and
    after every step. The policy's ``bind_env`` gets the unwrapped env first (chat policies read
    the tool schemas from it).
    """
    start = time.perf_counter()
    policy.bind_env(getattr(env, "unwrapped", env))
    options = {"sample_id": sample_id} if sample_id is not None else None
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(seed)
    if on_step:
        on_step(0, obs, None, info)
    reward, terminated, truncated = 0.0, False, False
    while not (terminated or truncated):
        response = policy.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(response)
        if on_step:
            on_step(info["turn"], obs, response, info)
    traj = info["trajectory"]
    return EpisodeResult(
        sample_id=info["sample_id"],
        reward=float(reward),
        components=dict(info["reward_components"]),
        metrics=dict(info["reward_metrics"]),
        terminated=terminated,
        truncated=truncated,
        answer=traj.answer,
        num_turns=len(traj.turns),
        num_tool_calls=traj.num_tool_calls,
        num_errors=traj.num_errors,
        latency_s=time.perf_counter() - start,
        trajectory=traj,
    )
