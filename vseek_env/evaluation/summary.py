"""Aggregate episode records into the summary JSON of an eval run.

Accuracy is over every planned episode: an episode that ended without a readable answer (a parse
failure) or failed with an error counts as wrong. Errored episodes are also counted (``errored``)
and listed (``errors``: key, sample id, error) apart from wrong answers.

Example:
    >>> s = summarize([{"key": "a#0", "status": "ok", "correct": True, "dimension": "OD",
    ...                 "prompt_style": "box", "answer_kind": "choice", "duration_bucket": "short",
    ...                 "num_tool_calls": 2, "reward": 1.0, "components": {"accuracy": 1.0},
    ...                 "latency_s": 0.5, "parse_failure": False}])
    >>> s["accuracy"], s["per_dimension"]["OD"]["accuracy"]
    (1.0, 1.0)
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable

from vseek_env.evaluation.scoring import summarize_verdicts

GROUPS = {"per_dimension": "dimension", "per_prompt_style": "prompt_style", "per_answer_kind": "answer_kind",
          "per_duration": "duration_bucket", "per_source": "source",
          "per_needs_tools": "needs_tools"}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(records: Iterable[dict]) -> dict:
    """The summary of the given records (one per episode)."""
    records = list(records)
    ok = [r for r in records if r.get("status") == "ok"]
    correct = [bool(r.get("status") == "ok" and r.get("correct")) for r in records]
    out: dict = {
        "episodes": len(records),
        "completed": len(ok),
        "errored": len(records) - len(ok),
        "correct": sum(correct),
        "accuracy": _mean([float(c) for c in correct]),
        "parse_failures": sum(1 for r in ok if r.get("parse_failure")),
        "truncated": sum(1 for r in ok if r.get("truncated")),
    }
    for name, field in GROUPS.items():
        groups: dict[str, list[bool]] = defaultdict(list)
        for r, c in zip(records, correct):
            groups[str(r.get(field))].append(c)
        out[name] = {k: {"n": len(v), "correct": sum(v), "accuracy": _mean([float(x) for x in v])} for k, v in sorted(groups.items())}

    calls = [r.get("num_tool_calls", 0) for r in ok]
    tools: Counter = Counter()
    for r in ok:
        tools.update(r.get("tool_counts") or {})
    out["tool_calls"] = {
        "mean_per_episode": _mean([float(c) for c in calls]),
        "max_per_episode": max(calls, default=0),
        "histogram": {str(k): v for k, v in sorted(Counter(calls).items())},
        "by_tool": dict(sorted(tools.items())),
        "episodes_with_tools": sum(1 for c in calls if c),
    }
    components: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        for k, v in (r.get("components") or {}).items():
            components[k].append(float(v))
    errors: Counter = Counter()
    for r in ok:
        errors.update(r.get("error_codes") or {})
    out["reward"] = {
        "mean": _mean([float(r.get("reward", 0.0)) for r in ok]),
        "components": {k: _mean(v) for k, v in sorted(components.items())},
    }
    out["response_errors"] = dict(sorted(errors.items()))
    latency = [float(r.get("latency_s", 0.0)) for r in records]
    policy_s = [float(r.get("policy_s", 0.0)) for r in records]
    out["latency_s"] = {
        "mean": _mean(latency), "p50": _quantile(latency, 0.5), "p90": _quantile(latency, 0.9),
        "max": max(latency, default=0.0), "total": sum(latency), "policy_mean": _mean(policy_s),
    }
    out["turns_mean"] = _mean([float(r.get("num_turns", 0)) for r in ok])
    out["per_category"] = _per_category(records, correct)
    benchmarks = sorted({str(r["benchmark"]) for r in records if r.get("benchmark")})
    if benchmarks or any("verdicts" in r for r in records):
        # The paper's rule in its three modes and each benchmark's official rule, overall and per
        # category; each with accuracy over all rows and over the rows it could read.
        out["benchmark"] = {"names": benchmarks, "rules": summarize_verdicts(records)}
    # Errored episodes count as wrong above, but are listed apart from wrong answers: a failure of
    # the server or the data is not the model's mistake.
    out["errors"] = [{"key": r.get("key"), "sample_id": r.get("sample_id"), "error": str(r.get("error"))[:300]}
                     for r in records if r.get("status") != "ok"]
    return out


def _per_category(records: list[dict], correct: list[bool]) -> dict:
    """``{field: {value: {n, correct, accuracy}}}`` over the benchmark categories of the records."""
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r, c in zip(records, correct):
        for field, value in (r.get("categories") or {}).items():
            groups[field][str(value)].append(c)
    return {f: {k: {"n": len(v), "correct": sum(v), "accuracy": _mean([float(x) for x in v])}
                for k, v in sorted(vals.items())} for f, vals in sorted(groups.items())}
