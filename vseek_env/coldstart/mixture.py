"""``MixturePolicy``: per episode, one of several policies, drawn by weight from the episode seed.

Gives a teacher of controllable strength for pass@k experiments without a model: e.g. oracle with
probability 0.5, random otherwise, so each sample's success rate over k rollouts spreads out.

Example:
    >>> policy = MixturePolicy({"oracle": 0.5, "random": 0.5})
    >>> policy.reset(seed=3); policy.current in ("oracle", "random")
    True

From the shell: ``--policy vseek_env.coldstart.mixture:MixturePolicy
--policy-arg 'policies={"oracle": 0.5, "random": 0.5}'``.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping

import numpy as np

from vseek_env.policies.base import Policy


class MixturePolicy(Policy):
    """Plays each episode with one member policy, picked with probability proportional to its weight.

    Args:
        policies: ``{policy name or "module:Class": weight}``; weights are >= 0 with a positive sum.
        policy_args: optional ``{policy name: constructor kwargs}``.
        seed: mixes into the per-episode draw (the episode seed decides it otherwise).
    """

    name = "mixture"

    def __init__(self, policies: Mapping[str, float], policy_args: Mapping[str, dict] | None = None, seed: int = 0) -> None:
        from vseek_env.policies import make_policy

        if not isinstance(policies, Mapping) or not policies:
            raise ValueError(f"MixturePolicy: policies must be a non-empty {{name: weight}} mapping, got {policies!r}")
        weights = np.array([float(w) for w in policies.values()])
        if not np.all(np.isfinite(weights)) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"MixturePolicy: weights must be finite, >= 0 and not all 0, got {dict(policies)}")
        args = dict(policy_args or {})
        unknown = set(args) - set(policies)
        if unknown:
            raise ValueError(f"MixturePolicy: policy_args names {sorted(unknown)}, which are not in policies {list(policies)}")
        self.names = list(policies)
        self.probs = weights / weights.sum()
        self.members = {n: make_policy(n, **args.get(n, {})) for n in self.names}
        self.base_seed = seed
        self.current = self.names[0]
        self._env = None

    def bind_env(self, env) -> None:
        self._env = env
        for member in self.members.values():
            member.bind_env(env)

    def reset(self, seed: int | None = None) -> None:
        rng = np.random.default_rng(zlib.crc32(f"{self.base_seed}|{seed}".encode()))
        self.current = self.names[int(rng.choice(len(self.names), p=self.probs))]
        self.members[self.current].reset(seed)

    def act(self, observation: dict, info: dict[str, Any]) -> str:
        return self.members[self.current].act(observation, info)

    def close(self) -> None:
        for member in self.members.values():
            member.close()
