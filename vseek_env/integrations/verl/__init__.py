"""verl (GRPO) integration. Importing this package does not import verl.

Modules (import them directly; the verl-dependent ones need ``pip install 'vseek-env[verl]'``):

* :mod:`.rows` -- export a dataset to verl Parquet rows, rebuild the env from a row (no verl).
* :mod:`.agent_loop` -- ``vseek_agent``, the agent loop that plays env episodes (verl).
* :mod:`.tools` -- ``BaseTool`` adapters for verl's stock ``tool_agent`` loop (verl).
* :mod:`.tool_config` -- the tool-config YAML for those adapters (no verl).
* :mod:`.reward` -- ``compute_score`` for ``reward.custom_reward_function`` (no verl).
* :mod:`.messages` -- env chat messages to processor / row form (no verl).

Example:
    >>> from vseek_env.integrations.verl.rows import export_verl      # doctest: +SKIP
    >>> export_verl("synth:default", "data/train.parquet")             # doctest: +SKIP
"""

AGENT_NAME = "vseek_agent"
AGENT_LOOP_TARGET = "vseek_env.integrations.verl.agent_loop.VSeekAgentLoop"

__all__ = ["AGENT_NAME", "AGENT_LOOP_TARGET"]
