"""``compute_score`` for verl's ``reward.custom_reward_function`` (the stock ``tool_agent`` path).

It is :func:`vseek_env.rewards.compute_score` (same reward functions as the env), with one
addition: when no ``reward`` keyword is configured, the row's own env options decide the reward
spec, so a row scores the same way in verl as in the env it was exported with. Rows played by the
``vseek_agent`` loop carry the env's reward already and never reach this function.

Point verl at it with::

    reward.custom_reward_function.path=$(python -c "import vseek_env.integrations.verl.reward as m; print(m.__file__)")
    reward.custom_reward_function.name=compute_score

Example:
    >>> compute_score("vseek/x", "<think>t</think><answer>B</answer>", "B",
    ...               {"question": "Which?", "options": ["a", "b"]})["acc"]
    1.0
"""

from __future__ import annotations

import json
from typing import Any

from vseek_env.openai_api import without_endpoints_and_secrets
from vseek_env.rewards import compute_score as _env_compute_score


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Score a decoded response or transcript; see :func:`vseek_env.rewards.compute_score`."""
    if "reward" not in kwargs and extra_info and extra_info.get("env_options"):
        options = extra_info["env_options"]
        options = json.loads(options) if isinstance(options, str) else options
        if "reward" in options:  # data, not configuration: it may not name the judge's endpoint or key
            kwargs["reward"] = without_endpoints_and_secrets(
                options["reward"], f"verl row {extra_info.get('sample_id', extra_info.get('index'))!r} reward")
    return _env_compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)


__all__ = ["compute_score"]
