"""What happened in an episode, in the form rewards and exporters consume.

The env appends one :class:`Turn` per ``step``; rewards are functions of ``(Sample, Trajectory)``.
:func:`trajectory_from_text` rebuilds a trajectory from transcript text alone (verl's
``compute_score`` only sees decoded text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vseek_env.protocol import ParsedResponse, ProtocolError, parse_response


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
        """Tool calls that ran (the N of the parsimony reward)."""
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


_ASSISTANT_SPLIT = re.compile(r"<\|im_start\|>assistant\n?(.*?)(?:<\|im_end\|>|$)", re.S)


def trajectory_from_text(text: str, responses: list[str] | None = None) -> Trajectory:
    """Rebuild a trajectory from model responses, or from a decoded chat transcript.

    Tool results are not recoverable from text, so tool records carry the requested arguments and
    ``ok=True`` (as in verl's stock reward path); the answer is the last turn's answer.
    """
    if responses is None:
        responses = _ASSISTANT_SPLIT.findall(text) or [text]
    traj = Trajectory()
    for response in responses:
        parsed = parse_response(response)
        records = []
        for call in parsed.tool_calls:
            window = None
            if call.name == "crop_video":
                try:
                    window = (float(call.arguments["start_time"]), float(call.arguments["end_time"]))
                except (KeyError, TypeError, ValueError):
                    window = None
            records.append(ToolRecord(name=call.name, arguments=call.arguments, ok=True, window=window))
        traj.turns.append(Turn(response=response, parsed=parsed, tools=records, errors=list(parsed.errors)))
    if traj.turns and traj.turns[-1].parsed.answer is not None:
        traj.answer = traj.turns[-1].parsed.answer
        traj.terminated = True
    return traj
