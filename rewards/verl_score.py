"""verl's ``compute_score`` over the same reward functions as the env.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)``
once per response and collects every returned key except ``score`` into ``reward_extra_info``,
which needs the same keys on every call. Point verl at it with::

    custom_reward_function.path=<site-packages>/vseek_env/rewards/verl_score.py
    custom_reward_function.name=compute_score
    +custom_reward_function.reward_kwargs.reward=paper      # optional: any make_reward spec

What a row must carry (the Parquet exporter writes exactly this):

- ``extra_info["sample"]``: ``Sample.to_dict()`` of the row's sample, or its ``json.dumps`` (better
  in Parquet, where answers of different kinds would not share one column type). Preferred: it
  gives the answer kind, options, evidence window and boxes every reward needs.
- ``ground_truth``: the answer as a string (``"B"``, ``"3"``, ``"[2.0, 4.5]"``). Used only when
  ``extra_info`` has no ``sample``; then ``extra_info`` may give ``question``, ``options`` and
  ``answer_kind`` (default: ``choice`` when options are given, else ``open``).

``solution_str`` may be one response or a whole decoded multi-turn transcript (ChatML, with or
without special tokens), see :func:`vseek_env.trajectory.split_transcript`.

Example:
    >>> out = compute_score("synth", "<think>it moves right</think><answer>B</answer>", "B",
    ...                     {"question": "Which way?", "options": ["left", "right"]})
    >>> out["score"], out["acc"], out["format"], out["parsimony"]
    (1.0, 1.0, 1.0, 1.0)
"""

from __future__ import annotations

import json
import threading
from typing import Any

from vseek_env.data.sample import Sample, SampleError
from vseek_env.rewards.matching import parse_numbers
from vseek_env.rewards.registry import CompositeReward, make_reward
from vseek_env.trajectory import trajectory_from_text

_COMPOSITES: dict[str, CompositeReward] = {}
_LOCK = threading.Lock()


def _composite(spec: Any) -> CompositeReward:
    if isinstance(spec, CompositeReward):
        return spec
    try:
        key = json.dumps(spec, sort_keys=True, default=str)
    except TypeError:
        return make_reward(spec)
    with _LOCK:
        if key not in _COMPOSITES:
            _COMPOSITES[key] = make_reward(_plain(spec))
        return _COMPOSITES[key]


def _plain(spec: Any) -> Any:
    """OmegaConf containers (verl's reward_kwargs) and numpy arrays (Parquet lists) to plain Python."""
    if hasattr(spec, "tolist") and not isinstance(spec, (str, bytes)):
        return spec.tolist()
    if hasattr(spec, "items"):
        return {str(k): _plain(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)) or type(spec).__name__ == "ListConfig":
        return [_plain(v) for v in spec]
    return spec


def sample_from_row(ground_truth: Any, extra_info: dict | None, data_source: str = "") -> Sample:
    """The :class:`Sample` a verl row describes (see the module docstring for the format)."""
    extra = _plain(extra_info) if extra_info is not None else {}
    if not isinstance(extra, dict):
        raise TypeError(f"extra_info must be a dict, got {type(extra_info).__name__}")
    if extra.get("sample") is not None:
        row = extra["sample"]
        if isinstance(row, str):
            row = json.loads(row)
        return Sample.from_dict(row)
    sample_id = str(extra.get("id", extra.get("index", "verl-row")))
    if ground_truth is None or str(ground_truth) == "":
        raise SampleError(f"verl row {sample_id!r} ({data_source}): no ground_truth and no extra_info['sample']")
    options = tuple(extra.get("options") or ())
    kind = extra.get("answer_kind") or ("choice" if options else "open")
    answer: Any = str(ground_truth).strip()
    if kind in ("span", "box"):
        answer = tuple(parse_numbers(answer))
    elif kind == "number":
        numbers = parse_numbers(answer)
        answer = numbers[0] if numbers else answer
    return Sample(id=sample_id, video="", question=str(extra.get("question", "")), answer=answer,
                  answer_kind=kind, options=options, source=str(data_source or ""))


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    reward: Any = "paper",
    **kwargs: Any,
) -> dict[str, Any]:
    """Score one response the way the env would: ``{"score", "acc", <each term>, counts}``.

    Keys are fixed for a given ``reward`` spec: ``score``, ``acc`` (the accuracy term, or the score
    if the spec has none), one key per reward term (unweighted), ``answered``, ``num_turns``,
    ``num_tool_calls``, ``judge_fallback``. Unknown keyword arguments from verl are ignored.
    """
    sample = sample_from_row(ground_truth, extra_info, data_source)
    trajectory = trajectory_from_text(solution_str if isinstance(solution_str, str) else str(solution_str or ""))
    composite = _composite(reward)
    total, components, metrics = composite(sample, trajectory)
    out: dict[str, Any] = {"score": float(total), "acc": float(components.get("accuracy", total))}
    out.update({name: float(value) for name, value in components.items()})
    out.update(
        answered=float(trajectory.answer is not None),
        num_turns=len(trajectory.turns),
        num_tool_calls=trajectory.num_tool_calls,
        judge_fallback=int(metrics.get("accuracy/judge_fallback", 0)),
    )
    return out
