"""``OraclePolicy``: reads the ground truth from the env it is bound to and answers correctly.

The ground truth is not in the policy's ``info`` by default: :func:`~vseek_env.runner.run_episode`
binds the unwrapped env (``bind_env``) and the oracle reads ``env.sample``; an env made with
``info_ground_truth=True`` also works without binding (``info["sample"]``).

With ``use_tool=True`` (default) it first crops the evidence window (or views the visual prompt when
a sample has no evidence window but a marked target), so oracle episodes also exercise the tools.
"""

from __future__ import annotations

import json

from vseek_env.policies.base import Policy


def format_answer(sample) -> str:
    """The ground-truth answer written the way the env's answer grammar expects."""
    kind, ans = sample.answer_kind, sample.answer
    if kind == "choice":
        return str(ans)
    if kind == "number":
        v = float(ans)
        return str(int(v)) if v.is_integer() else f"{v:g}"
    if kind == "span":
        return f"[{float(ans[0]):.2f}, {float(ans[1]):.2f}]"
    if kind == "box":
        return "[" + ", ".join(f"{float(v):.1f}" for v in ans) + "]"
    return str(ans)


class OraclePolicy(Policy):
    """Answers from ground truth; optionally calls one tool first."""

    name = "oracle"

    def __init__(self, use_tool: bool = True) -> None:
        self.use_tool = use_tool
        self._called = False
        self._env = None

    def bind_env(self, env) -> None:
        self._env = getattr(env, "unwrapped", env)

    def _truth(self, info: dict):
        sample = info.get("sample") or getattr(self._env, "sample", None)
        if sample is None:
            raise RuntimeError("OraclePolicy needs the ground truth: bind it to the env (run_episode does, or call "
                               "policy.bind_env(env)) or make the env with info_ground_truth=True")
        return sample

    def reset(self, seed: int | None = None) -> None:
        self._called = False

    def act(self, observation: dict, info: dict) -> str:
        sample = self._truth(info)
        if self.use_tool and not self._called:
            self._called = True
            duration = float(info.get("video", {}).get("duration") or sample.duration or 0.0)
            if sample.evidence is not None and duration > 0:
                s = max(0.0, float(sample.evidence[0]) - 0.5)
                e = min(duration, float(sample.evidence[1]) + 0.5)
                if e > s:
                    call = {"name": "crop_video", "arguments": {"start_time": round(s, 3), "end_time": round(e, 3)}}
                    return f"<think>The evidence is around {s:.1f}-{e:.1f} s; let me watch it.</think><tool_call>{json.dumps(call)}</tool_call>"
            if sample.has_visual_prompt:  # a question without a mark runs without view_visual_prompt
                call = {"name": "view_visual_prompt", "arguments": {}}
                return f"<think>Let me look at the marked target.</think><tool_call>{json.dumps(call)}</tool_call>"
        return f"<think>I know the answer.</think><answer>{format_answer(sample)}</answer>"
