"""``vseek_sync``: verl's V1 sync trainer, plus the env's reward components in each step's metrics.

verl 0.9's V1 trainer logs ``critic/score/*`` (the total reward) per step, but drops the
per-trajectory ``reward_extra_info`` that ``vseek_agent`` reports (accuracy, format, parsimony,
tool calls, truncation, ``cut_by_length`` ...): they appear only in validation metrics. A GRPO run
on this env is debugged by exactly those numbers, so this trainer reads them from TransferQueue
with the step's other fields and logs ``vseek/<name>/mean`` for each. Everything else is verl's
``PPOTrainerSync`` unchanged. Select it with ``trainer.v1.trainer_mode=vseek_sync`` (the recipes do);
the plugin registers it (:mod:`vseek_env.integrations.verl.plugin`).

Example:
    >>> reward_component_metrics([{"reward_extra_info": {"acc": 1.0}}, {"reward_extra_info": {"acc": 0.0}}])
    {'vseek/acc/mean': 0.5}
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

METRIC_PREFIX = "vseek"
TRAINER_NAME = "vseek_sync"  # trainer.v1.trainer_mode


def reward_component_metrics(extra_fields: Iterable[Any], mask: Sequence[bool] | None = None) -> dict[str, float]:
    """Mean of each numeric ``reward_extra_info`` entry over the trajectories kept by ``mask``."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for index, fields in enumerate(extra_fields):
        if mask is not None and not mask[index]:
            continue
        info = fields.get("reward_extra_info") if isinstance(fields, dict) else None
        for name, value in (info or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            sums[name] = sums.get(name, 0.0) + float(value)
            counts[name] = counts.get(name, 0) + 1
    return {f"{METRIC_PREFIX}/{name}/mean": sums[name] / counts[name] for name in sorted(sums)}


def trainer_class():
    """Build the trainer class (imports verl's V1 trainer, so only inside verl processes)."""
    import numpy as np
    import transfer_queue as tq
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    class VSeekPPOTrainer(PPOTrainerSync):
        """verl's ``PPOTrainerSync`` that also logs the env's reward components per step."""

        def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
            mask = np.array([not tag.get("is_padding", False) for tag in batch.tags], dtype=bool)
            data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
            metrics.update(reward_component_metrics(data.pop("extra_fields").tolist(), mask))
            return super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)

    return VSeekPPOTrainer
