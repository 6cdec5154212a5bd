"""Built-in rewards. Each is one registered function of ``(sample, trajectory, **options)``.

=============  =======  ===============================================================================
name           range    value
=============  =======  ===============================================================================
accuracy       [0, 1]   rule match by answer kind (letter / option text, numeric, tIoU, box IoU, exact /
                        numeric / fuzzy text); open answers the rule misses go to the LLM judge when
                        configured (1 / 0.5 / 0), falling back to the rule if it fails
format         [0, 1]   ``scope="trajectory"`` (the paper's): 1 when the whole rollout reads
                        think -> (tool call -> think)* -> answer; ``scope="response"``: 1 when every
                        response follows the grammar and the episode ended in an answer
parsimony      [0, 1]   ``max(0, 1 - lam * N)``, N = every tool invocation, failed ones included
temporal_iou   [0, 1]   IoU of the answered span with the true span (``span`` samples; else 0)
crop_iou       [0, 1]   IoU of the union of cropped windows with the evidence window (0 when none)
spatial_iou    [0, 1]   IoU of the answered box with the target's box at ``answer_time`` (``box`` samples)
=============  =======  ===============================================================================

Terms that do not apply to a sample (e.g. ``temporal_iou`` on a choice question) are 0 with metric
``applicable = False``; within a GRPO group (one sample) such a constant does not change advantages.
"""

from __future__ import annotations

from vseek_env.data.sample import option_letters
from vseek_env.rewards.judge import get_judge, resolve_judge
from vseek_env.rewards.matching import box_iou, interval_iou, intervals_iou, match_answer, parse_box, parse_span
from vseek_env.rewards.registry import RewardOutput, register_reward

PARSIMONY_LAMBDA = 0.1  # the paper does not give λ; 0.1 makes 10 calls worth the whole term
FORMAT_SCOPES = ("trajectory", "response")


def _check_accuracy(options: dict) -> None:
    for key in ("fuzzy_threshold", "iou_threshold"):
        if key in options and not 0.0 <= float(options[key]) <= 1.0:
            raise ValueError(f"accuracy option {key} must be in [0, 1], got {options[key]!r}")
    if "number_rel_tol" in options and float(options["number_rel_tol"]) < 0:
        raise ValueError(f"accuracy option number_rel_tol must be >= 0, got {options['number_rel_tol']!r}")
    if "judge_kinds" in options and not set(options["judge_kinds"]) <= {"open", "number", "choice", "span", "box"}:
        raise ValueError(f"accuracy option judge_kinds must name answer kinds, got {options['judge_kinds']!r}")
    resolve_judge(options.get("judge", "auto"))  # a bad judge config fails now, not mid-training


def _resolve_accuracy(options: dict) -> dict:
    # "auto" and dicts become the JudgeConfig (or False) they mean now, once: every episode of a
    # composite then grades alike, and the run records which judge graded it.
    config = resolve_judge(options.get("judge", "auto"))
    return {**options, "judge": config if config is not None else False}


def _reference(sample) -> str:
    """The reference answer the judge sees: a choice question's letter with its option text."""
    if sample.answer_kind != "choice":
        return str(sample.answer)
    letter = str(sample.answer).strip().upper()
    letters = option_letters(len(sample.options))
    return f"{letter}. {sample.options[letters.index(letter)]}" if letter in letters else letter


@register_reward("accuracy", range=(0.0, 1.0), validate=_check_accuracy, resolve=_resolve_accuracy)
def accuracy(
    sample,
    trajectory,
    *,
    judge="auto",
    judge_kinds=("open",),
    fuzzy_threshold: float = 0.85,
    iou_threshold: float = 0.5,
    number_rel_tol: float = 1e-3,
) -> RewardOutput:
    """The final answer against the ground truth; open answers may go to an LLM judge.

    Options: ``judge`` — ``"auto"`` (judge when ``VSEEK_JUDGE_BASE_URL`` is set), ``True``, ``False``
    or a dict of :class:`~vseek_env.rewards.judge.JudgeConfig` fields, resolved once when a composite
    is built (its ``to_spec()`` then names the judge's endpoint and model, never its key); ``judge_kinds`` — answer kinds
    routed to the judge when the rule does not give full credit; the rule's thresholds.
    Metrics: ``rule`` (what decided: a rule name, ``judge``, ``judge_cache`` or ``judge_fallback``),
    and with a judge ``judge_fallback`` (0/1 for this answer) and ``judge_fallbacks_total`` (process).
    """
    if trajectory.answer is None:
        return RewardOutput(0.0, {"rule": "no_answer"})
    score, rule = match_answer(
        sample, trajectory.answer, fuzzy_threshold=fuzzy_threshold, iou_threshold=iou_threshold, number_rel_tol=number_rel_tol
    )
    config = resolve_judge(judge)
    if config is None or score >= 1.0 or sample.answer_kind not in judge_kinds:
        return RewardOutput(score, {"rule": rule})
    llm = get_judge(config)
    result = llm.score(sample.question, _reference(sample), trajectory.answer)
    if result.score is None:
        llm.note_fallback()
        return RewardOutput(score, {"rule": "judge_fallback", "fallback_rule": rule, "judge_fallback": 1,
                                    "judge_error": result.error, "judge_fallbacks_total": llm.stats.snapshot()["fallbacks"]})
    return RewardOutput(result.score, {"rule": "judge" if result.source == "judge" else "judge_cache", "judge_fallback": 0,
                                       "judge_fallbacks_total": llm.stats.snapshot()["fallbacks"]})


def _check_format(options: dict) -> None:
    if options.get("scope", "response") not in FORMAT_SCOPES:
        raise ValueError(f"format option scope must be one of {FORMAT_SCOPES}, got {options.get('scope')!r}")


@register_reward("format", range=(0.0, 1.0), validate=_check_format)
def format_reward(sample, trajectory, *, scope: str = "response") -> RewardOutput:
    """Whether the rollout follows the response grammar and ends with an answer.

    ``scope="response"``: every response is well formed on its own (``<think>`` then tool calls, or
    ``<think>`` then one answer). ``scope="trajectory"`` (the paper's): the responses read in order
    are think -> (tool call -> think)* -> answer, i.e. additionally every response before the last
    holds exactly one tool call and only the last one answers.
    """
    turns = trajectory.turns
    bad = sum(not turn.parsed.well_formed for turn in turns)
    ok = bool(turns) and trajectory.answer is not None and bad == 0
    if scope == "trajectory":
        # well_formed already holds per response; the pattern adds one call per response before the answer
        ok = ok and all(len(t.parsed.tool_calls) == 1 for t in turns[:-1])
    return RewardOutput(float(ok), {"malformed_turns": bad, "scope": scope})


def _check_parsimony(options: dict) -> None:
    lam = float(options.get("lam", PARSIMONY_LAMBDA))
    if not lam >= 0.0:
        raise ValueError(f"parsimony option lam must be >= 0, got {options.get('lam')!r}")


@register_reward("parsimony", range=(0.0, 1.0), validate=_check_parsimony)
def parsimony(sample, trajectory, *, lam: float = PARSIMONY_LAMBDA) -> RewardOutput:
    """``max(0, 1 - lam * N)`` with N every tool invocation of the rollout, for episodes that end with an answer.

    Failed invocations count (bad arguments, out-of-range windows, unknown tools, calls over the
    per-response limit): were they free, a policy could spam them. An episode without an answer
    scores 0: otherwise a policy that never answers would still earn the parsimony share.
    """
    n = len(trajectory.tool_calls)
    metrics = {"num_invocations": n, "num_tool_calls": trajectory.num_tool_calls, "answered": trajectory.answer is not None}
    if trajectory.answer is None:
        return RewardOutput(0.0, metrics)
    return RewardOutput(max(0.0, 1.0 - float(lam) * n), metrics)


@register_reward("temporal_iou", range=(0.0, 1.0))
def temporal_iou(sample, trajectory) -> RewardOutput:
    """IoU of the answered ``[start, end]`` (seconds, ``m:ss`` accepted) with the true span."""
    return _answer_iou(sample, trajectory, "span", parse_span, interval_iou)


@register_reward("crop_iou", range=(0.0, 1.0))
def crop_iou(sample, trajectory) -> RewardOutput:
    """IoU of the union of the windows ``crop_video`` returned with the evidence window; 0 when none.

    Windows are the clamped ones the tool actually covered; overlapping crops are merged, so
    re-cropping the same window neither helps nor hurts, and cropping the whole video scores
    ``|evidence| / duration``.
    """
    windows = trajectory.cropped_windows
    if sample.evidence is None:
        return RewardOutput(0.0, {"applicable": False, "num_crops": len(windows)})
    return RewardOutput(intervals_iou(windows, [sample.evidence]), {"applicable": True, "num_crops": len(windows)})


@register_reward("spatial_iou", range=(0.0, 1.0))
def spatial_iou(sample, trajectory) -> RewardOutput:
    """IoU of the answered ``[x1, y1, x2, y2]`` with the target's box at ``answer_time``.

    A ``box`` sample's answer *is* the target's box at ``answer_time`` (original-video pixels).
    """
    return _answer_iou(sample, trajectory, "box", parse_box, box_iou)


def _answer_iou(sample, trajectory, kind: str, parse, iou) -> RewardOutput:
    """IoU of the parsed final answer with ``sample.answer`` for ``kind`` samples; 0 (not applicable) otherwise."""
    if sample.answer_kind != kind:
        return RewardOutput(0.0, {"applicable": False})
    value = parse(trajectory.answer) if trajectory.answer is not None else None
    if value is None:
        return RewardOutput(0.0, {"applicable": True, "parsed": False})
    return RewardOutput(iou(value, sample.answer), {"applicable": True, "parsed": True})
