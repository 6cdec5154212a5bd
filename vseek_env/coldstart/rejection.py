"""Rejection sampling: keep the correct, well-formed trajectories, with optional tool-use filters.

A trajectory is kept when the episode finished (``status == "ok"``), its accuracy is 1 (the
``accuracy`` reward component, else the eval's answer score), its format is 1 (the ``format``
component, else the ``format`` reward recomputed from its responses), and the optional filters
hold: at least ``min_tools`` / at most ``max_tools`` tool calls that ran, and with ``no_errors``
no response or tool error at all. Each dropped trajectory is counted under the first rule it fails.

Example:
    >>> kept, stats = rejection_sample(rollouts.records, Criteria(min_tools=1))   # doctest: +SKIP
    >>> print(format_keep_table(stats))                                            # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

REASONS = ("episode_error", "wrong", "format", "too_few_tools", "too_many_tools", "errors")


@dataclass(frozen=True)
class Criteria:
    """Which trajectories to keep (see the module docstring)."""

    min_tools: int = 0
    max_tools: int | None = None
    no_errors: bool = False

    def __post_init__(self) -> None:
        if self.min_tools < 0:
            raise ValueError(f"min_tools must be >= 0, got {self.min_tools}")
        if self.max_tools is not None and self.max_tools < self.min_tools:
            raise ValueError(f"max_tools ({self.max_tools}) must be >= min_tools ({self.min_tools})")


def accuracy_of(record: dict) -> float:
    """The episode's accuracy: the env's ``accuracy`` component when logged, else the eval's score."""
    comps = record.get("components") or {}
    return float(comps["accuracy"]) if "accuracy" in comps else float(record.get("score", 0.0))


def format_of(record: dict) -> float:
    """The episode's format score: the env's ``format`` component, else recomputed from the responses."""
    comps = record.get("components") or {}
    if "format" in comps:
        return float(comps["format"])
    from vseek_env.rewards import get_reward
    from vseek_env.trajectory import trajectory_from_text

    responses = [t["response"] for t in record.get("turns", []) if t.get("response") is not None]
    traj = trajectory_from_text("", responses=responses)
    # Only the last turn can carry the answer that ends an episode; an unanswered one scores 0.
    if not record.get("terminated"):
        traj.answer = None
    return float(get_reward("format").fn(None, traj).value)


def rejection_reason(record: dict, criteria: Criteria) -> str | None:
    """Why ``record`` is dropped (one of :data:`REASONS`), or ``None`` when it is kept."""
    if record.get("status") != "ok":
        return "episode_error"
    if accuracy_of(record) < 1.0 - 1e-9:
        return "wrong"
    if format_of(record) < 1.0 - 1e-9:
        return "format"
    calls = int(record.get("num_tool_calls", 0))
    if calls < criteria.min_tools:
        return "too_few_tools"
    if criteria.max_tools is not None and calls > criteria.max_tools:
        return "too_many_tools"
    if criteria.no_errors and int(record.get("num_errors", 0)) > 0:
        return "errors"
    return None


def rejection_sample(records: Iterable[dict], criteria: Criteria = Criteria()) -> tuple[list[dict], dict]:
    """``(kept records, stats)``; stats hold the keep rate overall and per dimension, and drop reasons."""
    kept: list[dict] = []
    groups: dict[str, dict] = defaultdict(lambda: {"n": 0, "kept": 0, **{r: 0 for r in REASONS}})
    for record in records:
        reason = rejection_reason(record, criteria)
        for key in ("all", str(record.get("dimension"))):
            groups[key]["n"] += 1
            if reason is None:
                groups[key]["kept"] += 1
            else:
                groups[key][reason] += 1
        if reason is None:
            kept.append(record)
    for row in groups.values():
        row["keep_rate"] = row["kept"] / row["n"] if row["n"] else 0.0
    overall = groups.pop("all", {"n": 0, "kept": 0, "keep_rate": 0.0, **{r: 0 for r in REASONS}})
    stats = {
        "criteria": {"min_tools": criteria.min_tools, "max_tools": criteria.max_tools, "no_errors": criteria.no_errors},
        "overall": overall,
        "per_dimension": dict(sorted(groups.items())),
        "samples_with_a_kept_trajectory": len({r["sample_id"] for r in kept}),
    }
    return kept, stats


def format_keep_table(stats: dict) -> str:
    """The keep-rate table (overall, then per dimension) as fixed-width text."""
    head = f"{'dimension':>12} {'n':>6} {'kept':>6} {'rate':>6} " + " ".join(f"{r:>14}" for r in REASONS)
    lines = [head]
    rows = [("all", stats["overall"])] + list(stats["per_dimension"].items())
    for name, row in rows:
        lines.append(f"{name:>12} {row['n']:>6} {row['kept']:>6} {row['keep_rate']:>6.3f} "
                     + " ".join(f"{row[r]:>14}" for r in REASONS))
    return "\n".join(lines)
