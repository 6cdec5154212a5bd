"""One evaluation episode -> one JSON record plus the JPEG thumbnails its report shows.

An :class:`EpisodeWorker` owns one env and one policy (neither is shared between threads). Its
:meth:`EpisodeWorker.run` never raises for what happens inside an episode: a policy or video
failure becomes a record with ``status="error"`` (retried when the eval is resumed).

Example:
    >>> worker = EpisodeWorker(WorkerSpec(policy="oracle", dataset="synth:tiny"))   # doctest: +SKIP
    >>> record, assets = worker.run(Task(key="q1#0", sample_id="q1", repeat=0, seed=7))
"""

from __future__ import annotations

import hashlib
import math
import re
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vseek_env.openai_api import jpeg_bytes

THUMB_SIDE = 192
THUMB_QUALITY = 80
PROMPT_SIDE = 320
# Assets under this folder are content-addressed (their name determines their bytes): the results
# sink writes each once and never overwrites it, so episodes can share them.
SHARED_ASSET_DIR = "frames/"


@dataclass(frozen=True)
class Task:
    """One episode to play: ``key`` is ``sample_id#repeat``."""

    key: str
    sample_id: str
    repeat: int
    seed: int


@dataclass
class WorkerSpec:
    """Everything a worker (thread or Ray actor) needs to build its own env and policy."""

    policy: str
    policy_args: dict = field(default_factory=dict)
    dataset: Any = "synth:default"  # a name, a path, or a Dataset
    env_args: dict = field(default_factory=dict)
    # Optional hook: a picklable zero-argument factory of an object with ``start(task, env)``,
    # ``on_step(turn, response, info)`` and ``finish(record, assets)``, built once per worker;
    # ``finish`` may add fields to the record and assets (see ``vseek_env.coldstart``).
    recorder: Any = None


def build_policy(name: str, args: dict | None = None):
    """A registered policy by name, or any ``"module:Class"``."""
    from vseek_env.policies import make_policy

    return make_policy(name, **(args or {}))


def asset_dir(key: str) -> str:
    """The folder (relative to the report) of one episode's thumbnails; unique and path-safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:60]
    return f"assets/{safe}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


class _TimedPolicy:
    """Forwards to a policy and adds up the time spent in ``act``."""

    def __init__(self, policy) -> None:
        self.policy, self.seconds = policy, 0.0

    def reset(self, seed=None):
        self.policy.reset(seed)

    def bind_env(self, env):
        self.policy.bind_env(env)

    def act(self, obs, info):
        start = time.perf_counter()
        try:
            return self.policy.act(obs, info)
        finally:
            self.seconds += time.perf_counter() - start


class EpisodeWorker:
    """Plays episodes of one policy on one env and turns each into a record."""

    def __init__(self, spec: WorkerSpec) -> None:
        from vseek_env.env import VideoSeekerEnv

        self.spec = spec
        self.env = VideoSeekerEnv(dataset=spec.dataset, **spec.env_args)
        self.policy = build_policy(spec.policy, spec.policy_args)
        self.recorder = spec.recorder() if spec.recorder is not None else None

    def close(self) -> None:
        self.policy.close()
        self.env.close()

    def run(self, task: Task) -> tuple[dict, dict[str, bytes]]:
        """Play ``task``; return its record and ``{relative path: JPEG bytes}``."""
        from vseek_env.runner import run_episode

        try:  # a bad row (e.g. meta.duration "about 2 min") is this episode's error, not the run's
            sample = self.env.dataset[task.sample_id]
            record = _base_record(task, sample, self.spec.policy)
        except Exception as exc:
            return _error_record(task, self.spec.policy, exc), {}
        folder = asset_dir(task.key)
        assets: dict[str, bytes] = {}
        turns: list[dict] = []
        prompt: dict = {}

        def save(image: np.ndarray, name: str, side: int = THUMB_SIDE) -> str:
            path = f"{folder}/{name}.jpg"
            assets[path] = jpeg_bytes(image, THUMB_QUALITY, side)
            return path

        recorder = self.recorder

        def on_step(turn: int, obs: dict, response: str | None, info: dict) -> None:
            turns.append(_turn_entry(turn, response, info, save, prompt))
            if recorder is not None:
                recorder.on_step(turn, response, info)

        timed = _TimedPolicy(self.policy)
        if recorder is not None:
            recorder.start(task, self.env)
        start = time.perf_counter()
        try:
            result = run_episode(self.env, timed, seed=task.seed, sample_id=task.sample_id, on_step=on_step)
        except Exception as exc:  # an episode failure is data: recorded, retried on resume
            record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc(limit=8), turns=turns,
                          latency_s=time.perf_counter() - start, policy_s=timed.seconds)
            if recorder is not None:
                recorder.finish(record, assets)
            return record, assets
        if not prompt:
            frame = self.env.prompt_frame
            if frame is not None:
                prompt["image"] = save(frame, "prompt", PROMPT_SIDE)
        record.update(_result_fields(sample, result))
        record.update(turns=turns, prompt_image=prompt.get("image"), prompt_time=prompt.get("time"),
                      latency_s=result.latency_s, policy_s=timed.seconds)
        if recorder is not None:
            recorder.finish(record, assets)
        return record, assets


def _error_record(task: Task, policy: str, exc: BaseException) -> dict:
    """The record of an episode that could not start; its message names the sample."""
    message = str(exc) if task.sample_id in str(exc) else f"sample {task.sample_id!r}: {exc}"
    return {"key": task.key, "sample_id": task.sample_id, "repeat": task.repeat, "seed": task.seed,
            "status": "error", "error": f"{type(exc).__name__}: {message}", "policy": policy,
            "traceback": traceback.format_exc(limit=8), "turns": [], "latency_s": 0.0, "policy_s": 0.0}


def _base_record(task: Task, sample, policy: str) -> dict:
    from vseek_env.data import SampleError
    from vseek_env.data.v2p import duration_bucket

    d = sample.to_dict()
    duration = sample.duration if sample.duration is not None else sample.meta.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                 or not math.isfinite(duration)):
        raise SampleError(f"sample {sample.id!r}: meta.duration {duration!r} is not a number of seconds")
    return {
        "key": task.key, "sample_id": task.sample_id, "repeat": task.repeat, "seed": task.seed,
        "status": "ok", "error": None, "policy": policy,
        "dimension": sample.dimension, "prompt_style": sample.meta.get("prompt_style", sample.prompt.style),
        "answer_kind": sample.answer_kind, "duration": duration, "duration_bucket": duration_bucket(duration),
        "source": sample.source, "needs_tools": sample.needs_tools,
        "question": sample.question, "options": d["options"], "truth": d["answer"],
        # A published benchmark's name and its own grouping fields (duration group, task type, ...).
        "benchmark": sample.meta.get("benchmark"), "categories": dict(sample.meta.get("categories") or {}),
    }


def answer_score(sample, result) -> tuple[float, str]:
    """``(score, rule)`` of an episode's answer.

    The env's ``accuracy`` reward term when its reward has one, so the eval grades with the
    episode's own settings (thresholds, LLM judge) and agrees with the reward the policy got;
    otherwise :func:`~vseek_env.rewards.matching.match_answer` with its defaults.
    """
    if result.answer is None:
        return 0.0, "no_answer"
    components = result.components or {}
    if "accuracy" in components:
        return float(components["accuracy"]), str((result.metrics or {}).get("accuracy/rule", "accuracy"))
    from vseek_env.rewards.matching import match_answer

    return match_answer(sample, result.answer)


def _result_fields(sample, result) -> dict:
    from vseek_env.evaluation.scoring import episode_verdicts

    traj = result.trajectory
    score, rule = answer_score(sample, result)
    unread = rule == "unparsed" or (rule == "judge_fallback" and (result.metrics or {}).get("accuracy/fallback_rule") == "unparsed")
    calls = traj.tool_calls
    codes = Counter(e.code.value for t in traj.turns for e in t.errors)
    return {
        "answer": result.answer, "score": float(score), "match_rule": rule, "correct": score >= 1.0 - 1e-9,
        # Parse failures count as wrong: no answer at all, or an answer no rule could read.
        "parse_failure": result.answer is None or unread,
        "reward": result.reward, "components": result.components, "metrics": _jsonable(result.metrics),
        "terminated": result.terminated, "truncated": result.truncated, "num_turns": result.num_turns,
        "num_tool_calls": result.num_tool_calls, "num_errors": result.num_errors,
        "tool_counts": dict(Counter(r.name for r in calls if r.ok)),
        "error_codes": dict(codes),
        "cropped_windows": [list(w) for w in traj.cropped_windows],
        # The paper's rule (three modes) and the benchmark's official rule on the final reply.
        "verdicts": episode_verdicts(sample, traj.turns[-1].response if traj.turns else None, result.answer),
    }


def _turn_entry(turn: int, response: str | None, info: dict, save, prompt: dict) -> dict:
    frames = info["frames"]
    entry: dict[str, Any] = {"turn": turn, "response": response, "errors": info["errors"], "tool_results": [], "frames": []}
    if response is None:
        for i, frame in enumerate(frames):
            if frame["source"] == "prompt":
                prompt["image"] = save(frame["image"], "prompt", PROMPT_SIDE)
                prompt["time"] = frame["time"]
            else:
                entry["frames"].append({"time": frame["time"], "source": frame["source"], "image": save(frame["image"], f"t0_{i:03d}")})
        return entry
    offset = 0
    for j, tool in enumerate(info["tool_results"]):
        shown = frames[offset: offset + tool["num_frames"]]
        offset += tool["num_frames"]
        thumbs = [{"time": f["time"], "image": save(f["image"], f"t{turn}_{j}_{k:03d}")} for k, f in enumerate(shown)]
        if tool["name"] == "view_visual_prompt" and shown and "image" not in prompt:
            prompt["image"] = save(shown[0]["image"], "prompt", PROMPT_SIDE)
            prompt["time"] = shown[0]["time"]
        entry["tool_results"].append({
            "name": tool["name"], "arguments": _jsonable(tool["arguments"]), "ok": tool["ok"],
            "error_code": tool["error_code"], "text": tool["text"], "frames": thumbs,
        })
    feedback = [p["text"] for m in info["messages"] if m["role"] == "user" for p in m["content"] if p["type"] == "text"]
    entry["feedback"] = "\n".join(feedback)
    return entry


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
