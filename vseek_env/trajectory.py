"""What happened in an episode, in the form rewards and exporters consume.

The env appends one :class:`Turn` per ``step``; rewards are functions of ``(Sample, Trajectory)``.
:func:`trajectory_from_text` rebuilds a trajectory from transcript text alone (verl's
``compute_score`` only sees decoded text).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from vseek_env.protocol import ErrorCode, ParsedResponse, ProtocolError, parse_response, split_blocks


@dataclass(frozen=True)
class ToolRecord:
    """One tool call: what was asked, whether it ran, what it covered."""

    name: str
    arguments: dict
    ok: bool
    error_code: str | None = None
    message: str = ""
    window: tuple[float, float] | None = None
    times: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return {
            "name": self.name, "arguments": self.arguments, "ok": self.ok, "error_code": self.error_code,
            "message": self.message, "window": list(self.window) if self.window else None, "times": list(self.times),
        }


@dataclass
class Turn:
    response: str
    parsed: ParsedResponse
    tools: list[ToolRecord] = field(default_factory=list)
    errors: list[ProtocolError] = field(default_factory=list)  # grammar + tool errors of this turn


@dataclass
class Trajectory:
    turns: list[Turn] = field(default_factory=list)
    answer: str | None = None
    terminated: bool = False
    truncated: bool = False

    @property
    def responses(self) -> list[str]:
        return [t.response for t in self.turns]

    @property
    def tool_calls(self) -> list[ToolRecord]:
        return [r for t in self.turns for r in t.tools]

    @property
    def num_tool_calls(self) -> int:
        """Tool calls that ran. (The parsimony reward's N is every invocation: ``len(tool_calls)``.)"""
        return sum(r.ok for r in self.tool_calls)

    @property
    def num_errors(self) -> int:
        return sum(len(t.errors) for t in self.turns)

    @property
    def cropped_windows(self) -> list[tuple[float, float]]:
        return [r.window for r in self.tool_calls if r.ok and r.window is not None]

    def to_dict(self) -> dict:
        return {
            "answer": self.answer, "terminated": self.terminated, "truncated": self.truncated,
            "turns": [
                {"response": t.response, "parsed": t.parsed.to_dict(), "tools": [r.to_dict() for r in t.tools],
                 "errors": [e.to_dict() for e in t.errors]}
                for t in self.turns
            ],
        }


_CHATML_TURN = re.compile(r"<\|im_start\|>(\w+)\n?(.*?)(?=<\|im_start\|>|$)", re.S)
# verl decodes responses with skip_special_tokens=True, which leaves ChatML role names on their own lines.
_BARE_ROLE = re.compile(r"(?:^|\n)(system|user|assistant|tool)\n")
_END = re.compile(r"<\|im_end\|>|<\|endoftext\|>")


def split_transcript(text: str) -> list[tuple[str, str]]:
    r"""``(role, content)`` turns of a decoded chat transcript; plain text is one assistant turn.

    Accepts ChatML with its markers (``<|im_start|>assistant ...<|im_end|>``), the same with the
    markers stripped (verl decodes with ``skip_special_tokens=True``), and a single response. Text
    before the first role header is the assistant's: in verl the first ``<|im_start|>assistant``
    belongs to the prompt, not the response.

    >>> split_transcript("<think>a</think><tool_call>{}</tool_call>\nuser\n<tool_response>ok</tool_response>\nassistant\n<answer>B</answer>")
    [('assistant', '<think>a</think><tool_call>{}</tool_call>'), ('user', '<tool_response>ok</tool_response>'), ('assistant', '<answer>B</answer>')]
    """
    if "<|im_start|>" in text:
        head, _, rest = text.partition("<|im_start|>")
        turns = [("assistant", head)] if _END.sub("", head).strip() else []
        turns += [(role, body) for role, body in _CHATML_TURN.findall("<|im_start|>" + rest)]
    else:
        pieces = _BARE_ROLE.split(text)
        turns = [("assistant", pieces[0])] if pieces[0].strip() else []
        turns += list(zip(pieces[1::2], pieces[2::2]))
    return [(role, _END.sub("", body).strip()) for role, body in turns]


#: Longest transcript :func:`trajectory_from_text` parses; a longer one is one turn with a
#: ``response_too_long`` error and no answer (verl's reward path hands it whatever the model wrote).
MAX_TRANSCRIPT_CHARS = 1_000_000


def trajectory_from_text(text: str, responses: list[str] | None = None, *,
                         max_chars: int | None = MAX_TRANSCRIPT_CHARS) -> Trajectory:
    r"""Rebuild a trajectory from model responses, or from a decoded chat transcript.

    Tool results are not recoverable from text: a call counts as run (``ok=True``) unless the tool
    message answering it starts with ``Error`` (the env's and the verl tool adapters' failure text).
    The answer is the last assistant turn's answer, and only if that turn ends the episode. A
    transcript over ``max_chars`` (:data:`MAX_TRANSCRIPT_CHARS`) is not parsed: it is one turn with
    a ``response_too_long`` error, so a runaway generation costs nothing and scores no answer.

    >>> t = trajectory_from_text('<think>x</think><tool_call>{"name": "crop_video", "arguments": '
    ...                          '{"start_time": 1, "end_time": 3}}</tool_call>\nuser\n<tool_response>Error: no'
    ...                          '</tool_response>\nassistant\n<think>y</think><answer>B</answer>')
    >>> t.answer, t.num_tool_calls, len(t.tool_calls), t.tool_calls[0].window
    ('B', 0, 1, None)
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    total = len(text) if responses is None else sum(len(r) if isinstance(r, str) else 0 for r in responses)
    if max_chars is not None and total > max_chars:
        too_long = ProtocolError(ErrorCode.RESPONSE_TOO_LONG, f"the transcript has {total} characters; the limit is {max_chars}.")
        parsed = ParsedResponse(errors=(too_long,))
        return Trajectory([Turn(response=text[:max_chars], parsed=parsed, errors=[too_long])])
    turns = [("assistant", r) for r in responses] if responses is not None else split_transcript(text)
    traj = Trajectory()
    pending: list[ToolRecord] = []  # the last assistant turn's records, awaiting tool responses
    for role, content in turns:
        if role != "assistant":
            replies = [text for _, text in split_blocks(content, ("tool_response",))[0]] or [content]
            for i, reply in enumerate(replies[: len(pending)]):
                if reply.strip().startswith("Error"):
                    rec = pending[i]
                    pending[i] = ToolRecord(rec.name, rec.arguments, ok=False, error_code="tool_failed",
                                            message=reply.strip()[:200], window=None)
            if traj.turns and pending:
                traj.turns[-1].tools[:] = pending
            pending = []
            continue
        response = split_blocks(content, ("tool_response",), sep="")[1] if responses is None else content
        parsed = parse_response(response)
        records = []
        for call in parsed.tool_calls:
            window = None
            if call.name == "crop_video":
                try:
                    window = (float(call.arguments["start_time"]), float(call.arguments["end_time"]))
                except (KeyError, TypeError, ValueError):
                    window = None
                if window is not None and not (math.isfinite(window[0]) and math.isfinite(window[1]) and window[0] < window[1]):
                    window = None  # the env would have rejected it as out of range
            records.append(ToolRecord(name=call.name, arguments=call.arguments, ok=True, window=window))
        traj.turns.append(Turn(response=response, parsed=parsed, tools=records, errors=list(parsed.errors)))
        pending = list(records)
    if traj.turns and traj.turns[-1].parsed.answer is not None:
        traj.answer = traj.turns[-1].parsed.answer
        traj.terminated = True
    return traj
