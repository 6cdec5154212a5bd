"""The policy interface: observation (and info) in, response text out.

Example:
    >>> class Answer(Policy):
    ...     name = "always_a"
    ...     def act(self, observation, info):
    ...         return "<think>guess</think><answer>A</answer>"
"""

from __future__ import annotations

from typing import Any


class Policy:
    """Maps an env observation and its ``info`` to the model's next response text.

    ``info["messages"]`` holds the turn as chat messages and ``info["frames"]`` the frames with their
    times. The ground truth is not in ``info``; oracle-style policies read it from the env given to
    :meth:`bind_env` (``env.sample``).
    """

    name: str = "policy"

    def bind_env(self, env) -> None:
        """Called by :func:`~vseek_env.runner.run_episode` with the unwrapped env before ``reset``
        (chat policies read ``env.tool_schemas()`` here)."""

    def reset(self, seed: int | None = None) -> None:
        """Called at the start of every episode."""

    def act(self, observation: dict, info: dict[str, Any]) -> str:
        raise NotImplementedError

    def close(self) -> None:
        """Release clients, models, threads."""
