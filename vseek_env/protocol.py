"""The response grammar: model text -> think / tool calls / answer / typed errors.

A response is::

    <think>reasoning</think>
    <tool_call>{"name": "crop_video", "arguments": {"start_time": 3, "end_time": 9}}</tool_call>
    ...
    <answer>B</answer>

Parsing never raises. Everything wrong with a response becomes a :class:`ProtocolError` whose
``code`` is one of :class:`ErrorCode` and whose ``message`` tells the model what to do instead.
Tag-like text inside ``<think>`` is reasoning, not an action.

Example:
    >>> r = parse_response('<think>look</think><tool_call>{"name": "view_visual_prompt", '
    ...                    '"arguments": {}}</tool_call>')
    >>> [c.name for c in r.tool_calls], r.answer, r.errors
    (['view_visual_prompt'], None, ())
"""

from __future__ import annotations

import bisect
import enum
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


class ErrorCode(str, enum.Enum):
    """Why a response (or one tool call in it) could not be acted on."""

    NO_ACTION = "no_action"  # neither a tool call nor an answer
    MULTIPLE_ANSWERS = "multiple_answers"
    EMPTY_ANSWER = "empty_answer"
    UNCLOSED_TAG = "unclosed_tag"
    INVALID_JSON = "invalid_json"  # tool-call body is not one JSON object
    BAD_TOOL_CALL = "bad_tool_call"  # JSON, but not {"name": str, "arguments": object}
    UNKNOWN_TOOL = "unknown_tool"
    INVALID_ARGUMENTS = "invalid_arguments"  # missing / extra / wrongly typed / non-finite
    OUT_OF_RANGE = "out_of_range"  # well-typed but outside the video or reversed
    TOO_MANY_TOOL_CALLS = "too_many_tool_calls"
    RESPONSE_TOO_LONG = "response_too_long"
    TOOL_FAILED = "tool_failed"  # the tool itself failed (e.g. an undecodable frame)
    BUDGET_EXCEEDED = "budget_exceeded"  # an episode-level resource bound was hit
    TOOL_CALL_WITH_ANSWER = "tool_call_with_answer"  # calls next to an answer are not run


@dataclass(frozen=True)
class ProtocolError:
    code: ErrorCode
    message: str

    def to_dict(self) -> dict:
        return {"code": self.code.value, "message": self.message}


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict
    raw: str = ""


@dataclass(frozen=True)
class ParsedResponse:
    """What a response asked for. ``errors`` are the response's own (grammar) errors."""

    think: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    answer: str | None = None
    errors: tuple[ProtocolError, ...] = ()
    well_formed: bool = False
    warnings: tuple[ProtocolError, ...] = field(default=())

    def to_dict(self) -> dict:
        return {
            "think": self.think,
            "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in self.tool_calls],
            "answer": self.answer,
            "errors": [e.to_dict() for e in self.errors],
            "warnings": [w.to_dict() for w in self.warnings],
            "well_formed": self.well_formed,
        }


def first_tag_content(text: str, tag: str, *, ignore_case: bool = False) -> str | None:
    """What ``re.search(r"<tag>(.*?)</tag>", text, re.S)`` captures, in linear time (``None``: no block).

    >>> first_tag_content("x <answer> B </answer><answer>C</answer>", "answer")
    ' B '
    """
    blocks = tag_blocks(text, (tag,), ignore_case=ignore_case)
    return text[blocks[0][2]:blocks[0][3]] if blocks else None


def tag_blocks(text: str, tags: tuple[str, ...], *, ignore_case: bool = False) -> list[tuple[str, int, int, int, int]]:
    """The ``<tag>...</tag>`` blocks of ``text``, leftmost first, in time linear in ``len(text)``.

    Each block is ``(tag, start, content_start, content_end, end)``. The blocks are exactly those
    the regex ``<(t1|t2)>(.*?)</\\1>`` (with ``re.I`` when ``ignore_case``) finds, but without its
    quadratic cost on a tag opened thousands of times and never closed (a regex retries from every
    opening): the openings and closings are located once, and an opening with no closing after it
    rules its tag out for the rest of the text.

    >>> [(t, "a<x>1</x><y>2</y>"[c:d]) for t, _, c, d, _ in tag_blocks("a<x>1</x><y>2</y>", ("x", "y"))]
    [('x', '1'), ('y', '2')]
    >>> tag_blocks("<x><x>", ("x",))
    []
    """
    flags = re.I if ignore_case else 0
    opens = {t: [m.start() for m in re.finditer(re.escape(f"<{t}>"), text, flags)] for t in tags}
    closes = {t: [m.start() for m in re.finditer(re.escape(f"</{t}>"), text, flags)] for t in tags}
    out: list[tuple[str, int, int, int, int]] = []
    alive = list(tags)
    pos = 0
    while True:
        found = []
        for t in alive:
            i = bisect.bisect_left(opens[t], pos)
            if i < len(opens[t]):
                found.append((opens[t][i], t))
        if not found:
            return out
        start, tag = min(found)
        content_start = start + len(tag) + 2
        j = bisect.bisect_left(closes[tag], content_start)
        if j == len(closes[tag]):  # no closing after this opening, so none after any later one
            alive.remove(tag)
            continue
        content_end = closes[tag][j]
        end = content_end + len(tag) + 3
        out.append((tag, start, content_start, content_end, end))
        pos = end


def split_blocks(text: str, tags: tuple[str, ...], sep: str = " ") -> tuple[list[tuple[str, str]], str]:
    """``([(tag, content), ...], text with each block replaced by sep)``, linear (see :func:`tag_blocks`).

    >>> split_blocks("a<x>1</x>b", ("x",))
    ([('x', '1')], 'a b')
    """
    blocks = tag_blocks(text, tags)
    found = [(tag, text[c:d]) for tag, _, c, d, _ in blocks]
    pieces, pos = [], 0
    for _, start, _, _, end in blocks:
        pieces.append(text[pos:start])
        pos = end
    pieces.append(text[pos:])
    return found, sep.join(pieces)


_OPEN = re.compile(r"<(think|tool_call|answer)>")
_CLOSE = re.compile(r"</(think|tool_call|answer)>")
_WELL_FORMED = re.compile(
    r"\s*<think>(?:(?!</?think>).)*</think>\s*"
    r"(?:(?:<tool_call>(?:(?!</?tool_call>|</?answer>).)*</tool_call>\s*)+"
    r"|<answer>(?:(?!</?answer>|</?tool_call>).)*</answer>\s*)",
    re.S,
)


def is_well_formed(text: str) -> bool:
    """True when ``text`` is ``<think>..</think>`` then either tool calls only or one answer."""
    return _WELL_FORMED.fullmatch(text) is not None


def parse_response(text: str, *, max_chars: int | None = None, max_tool_calls: int | None = None) -> ParsedResponse:
    """Split a model response into its parts. Never raises; see :class:`ErrorCode`."""
    if not isinstance(text, str):
        return ParsedResponse(errors=(ProtocolError(ErrorCode.NO_ACTION, f"the response must be text, got {type(text).__name__}"),))
    if max_chars is not None and len(text) > max_chars:
        return ParsedResponse(
            errors=(
                ProtocolError(
                    ErrorCode.RESPONSE_TOO_LONG,
                    f"the response has {len(text)} characters; the limit is {max_chars}. Be brief.",
                ),
            )
        )
    errors: list[ProtocolError] = []
    warnings: list[ProtocolError] = []
    thoughts, body = split_blocks(text, ("think",))
    think_parts = [content for _, content in thoughts]
    if "</think>" in body and "<think>" not in body:
        # Chat templates that open <think> in the prompt produce responses starting mid-thought.
        head, body = body.rsplit("</think>", 1)
        think_parts.insert(0, head)
    elif "<think>" in body:
        body, tail = body.split("<think>", 1)
        think_parts.append(tail)
        errors.append(ProtocolError(ErrorCode.UNCLOSED_TAG, "<think> is never closed: end reasoning with </think> before acting."))
    think = "\n".join(p.strip() for p in think_parts) if think_parts else None

    calls: list[ToolCall] = []
    answers: list[str] = []
    blocks, remainder = split_blocks(body, ("tool_call", "answer"))
    for kind, content in blocks:
        if kind == "answer":
            answers.append(content.strip())
        else:
            call = _parse_tool_call(content, errors)
            if call is not None:
                calls.append(call)
    for tag in sorted(set(_OPEN.findall(remainder)) | set(_CLOSE.findall(remainder))):
        errors.append(ProtocolError(ErrorCode.UNCLOSED_TAG, f"<{tag}> is not matched by </{tag}>: write <{tag}>...</{tag}>."))

    answer = None
    if len(answers) > 1:
        errors.append(ProtocolError(ErrorCode.MULTIPLE_ANSWERS, f"found {len(answers)} <answer> blocks; give exactly one."))
    elif answers:
        answer = answers[0]
        if not answer:
            errors.append(ProtocolError(ErrorCode.EMPTY_ANSWER, "the <answer> block is empty; put your final answer inside it."))
            answer = None
        elif calls:
            warnings.append(
                ProtocolError(
                    ErrorCode.TOOL_CALL_WITH_ANSWER,
                    "tool calls next to an <answer> are not run; the answer ends the episode.",
                )
            )
            calls = []
    if max_tool_calls is not None and len(calls) > max_tool_calls:
        errors.append(
            ProtocolError(
                ErrorCode.TOO_MANY_TOOL_CALLS,
                f"{len(calls)} tool calls in one response; at most {max_tool_calls} are run, the rest are dropped.",
            )
        )
        calls = calls[:max_tool_calls]
    if not calls and answer is None and not any(e.code in _ACTION_ERRORS for e in errors):
        errors.append(
            ProtocolError(
                ErrorCode.NO_ACTION,
                "no action found: call a tool with <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call> "
                "or give the final answer in <answer>...</answer>.",
            )
        )
    return ParsedResponse(
        think=think,
        tool_calls=tuple(calls),
        answer=answer,
        errors=tuple(errors),
        well_formed=not errors and is_well_formed(text),
        warnings=tuple(warnings),
    )


_ACTION_ERRORS = {ErrorCode.INVALID_JSON, ErrorCode.BAD_TOOL_CALL, ErrorCode.MULTIPLE_ANSWERS, ErrorCode.EMPTY_ANSWER}


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    counts = Counter(k for k, _ in pairs)  # keys.count per key would be quadratic in the key count
    duplicated = sorted(k for k, n in counts.items() if n > 1)
    if duplicated:
        raise ValueError(f"duplicated key(s) {duplicated}")
    return dict(pairs)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _parse_tool_call(content: str, errors: list[ProtocolError]) -> ToolCall | None:
    snippet = content.strip()
    shown = snippet if len(snippet) <= 120 else snippet[:117] + "..."
    try:
        payload = json.loads(snippet, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        errors.append(
            ProtocolError(
                ErrorCode.INVALID_JSON,
                f"tool call {shown!r} is not one JSON object ({exc}); "
                "write {\"name\": \"tool_name\", \"arguments\": {...}}.",
            )
        )
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        errors.append(
            ProtocolError(ErrorCode.BAD_TOOL_CALL, f"tool call {shown!r} needs a string \"name\" and an \"arguments\" object.")
        )
        return None
    arguments = payload.get("arguments", {})
    if isinstance(arguments, str):  # OpenAI-style: arguments as a JSON string
        try:
            arguments = json.loads(arguments or "{}", object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            arguments = None
    if not isinstance(arguments, dict) or set(payload) - {"name", "arguments"}:
        errors.append(
            ProtocolError(
                ErrorCode.BAD_TOOL_CALL,
                f"tool call {shown!r} must be exactly {{\"name\": ..., \"arguments\": {{...}}}}.",
            )
        )
        return None
    return ToolCall(name=payload["name"], arguments=arguments, raw=snippet)


def format_number(value: float) -> str:
    """Seconds as the env prints them everywhere: two decimals at most, at least one.

    >>> [format_number(v) for v in (12, 3.47, 12.999, 0.004, -0.001, 2.5)]
    ['12.0', '3.47', '13.0', '0.0', '0.0', '2.5']
    """
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.2f}".rstrip("0")
    text = text + "0" if text.endswith(".") else text
    return "0.0" if text == "-0.0" else text


def format_timestamp_label(t: float) -> str:
    """The text label placed before every frame: ``<12.5 seconds>``."""
    return f"<{format_number(t)} seconds>"


def build_system_prompt(tool_prompts: list[str], style: str = "default", *, visual_prompt: bool = True) -> str:
    """The instructions every episode starts with: the grammar and each tool's description.

    ``style="default"``: the env's system message. ``style="paper"``: the paper's structure, in our
    own words: one tool call per response, think again after every tool result, then the answer;
    the env puts it at the top of the first user text (the paper's inference has no system role).
    ``visual_prompt=False`` (a question with no marked target) drops the sentence about the mark.
    """
    tools = "\n".join(tool_prompts) if tool_prompts else "(no tools: answer directly)"
    if style == "paper":
        return (
            "Work on the question in steps. Start every response with your reasoning inside "
            "<think> and </think>. Then do exactly one of two things: call one tool as\n"
            '<tool_call>{"name": "TOOL", "arguments": {...}}</tool_call>\n'
            "and stop to wait for its result, or, once you are sure, give the final answer as\n"
            "<answer>...</answer>\n"
            "After each tool result, think again about what it shows before the next step.\n\n"
            f"Tools you can call:\n{tools}"
        )
    mark = "The target of the question is marked with a visual prompt on one frame. " if visual_prompt else ""
    return (
        f"You answer questions about one video. {mark}Think, use the tools to look at the video when "
        "the frames you have are not enough, then answer.\n\n"
        "Format every response as\n"
        "<think>your reasoning</think>\n"
        "followed by EITHER one or more tool calls\n"
        '<tool_call>{"name": "TOOL", "arguments": {...}}</tool_call>\n'
        "OR the final answer\n"
        "<answer>...</answer>\n\n"
        "Frames are labelled with their time in the video, e.g. <12.5 seconds>.\n\n"
        f"Tools:\n{tools}"
    )
