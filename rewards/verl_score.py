"""verl's ``compute_score`` over the same reward functions as the env.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)``
once per response and collects every returned key except ``score`` into ``reward_extra_info``,
which needs the same keys on every call. Point verl 0.9.1 at it with (the older top-level
``custom_reward_function.*`` keys are ignored by 0.9.1)::

    reward.custom_reward_function.path=<site-packages>/vseek_env/rewards/verl_score.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.reward=paper      # optional: any make_reward spec

What a row must carry (the Parquet exporter writes exactly this):

- ``extra_info["sample"]``: ``Sample.to_dict()`` of the row's sample, or its ``json.dumps`` (better
  in Parquet, where answers of different kinds would not share one column type). Preferred: it
  gives the answer kind, options, evidence window and boxes every reward needs.
- ``ground_truth``: the answer as a string (``"B"``, ``"3"``, ``"[2.0, 4.5]"``). Used only when
  ``extra_info`` has no ``sample``; then ``extra_info`` may give ``question``, ``options`` and
  ``answer_kind`` (default: ``choice`` when options are given, else ``open``).

``solution_str`` may be one response or a whole decoded multi-turn transcript (ChatML, with or
without special tokens), see :func:`vseek_env.trajectory.split_transcript`.

``extra_info["vseek_tool_calls"]`` (written by the verl tool adapters, merged into ``extra_info``
by verl's reward loop) is the env's own record of the calls that ran, with the clamped windows
they covered; when present it replaces the calls parsed from the text for the crop-window and
parsimony terms.

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
from vseek_env.trajectory import ToolRecord, Trajectory, Turn, trajectory_from_text

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
    records = _plain(extra_info.get("vseek_tool_calls")) if isinstance(extra_info, dict) else None
    if records is not None:
        trajectory = with_tool_records(trajectory, records)
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


def with_tool_records(trajectory: Trajectory, records: list[dict]) -> Trajectory:
    """``trajectory`` with its text-parsed tool calls replaced by the env's ``records``.

    Records are ``{"name", "ok", "error_code", "window", ...}`` in call order. They are handed out
    to the turns in order, as many per turn as the text shows there; any left over (calls the
    text parser missed) join the last turn.

    >>> t = trajectory_from_text('<think>a</think><tool_call>{"name": "crop_video", "arguments": '
    ...                          '{"start_time": 0, "end_time": 99}}</tool_call>')
    >>> with_tool_records(t, [{"name": "crop_video", "ok": True, "window": [0, 8.0]}]).cropped_windows
    [(0.0, 8.0)]
    """
    pool = [_tool_record(r) for r in records if isinstance(r, dict)]
    turns = []
    for i, turn in enumerate(trajectory.turns):
        take = len(pool) if i == len(trajectory.turns) - 1 else min(len(turn.tools), len(pool))
        turns.append(Turn(turn.response, turn.parsed, pool[:take], list(turn.errors)))
        pool = pool[take:]
    return Trajectory(turns, trajectory.answer, trajectory.terminated, trajectory.truncated)


def _tool_record(record: dict) -> ToolRecord:
    window = record.get("window")
    return ToolRecord(
        name=str(record.get("name", "")), arguments={}, ok=bool(record.get("ok")),
        error_code=record.get("error_code"),
        window=(float(window[0]), float(window[1])) if window is not None and len(window) == 2 else None,
    )
