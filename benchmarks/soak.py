"""Soak: many episodes mixing normal samples, hostile data and hostile responses; RSS and fds must stay flat.

Not part of CI at full size (``tests/test_soak.py`` runs the same code for 200 episodes). Run::

    python benchmarks/soak.py --episodes 10000 --out benchmarks/results/soak_hostile_10k.json

Each episode is one of (seeded draw, ``--mix``):

- ``normal``: a sample of ``--dataset``;
- ``hostile``: the next hostile-data case (``tests/hostile_data.py``: the videos of
  ``tests/adversarial/videos.jsonl`` and the hostile rows), reset by name on a strict env. A case with
  a documented error must raise exactly that class, naming the sample; the others must play;
- ``skip``: a reset on an env with ``skip_bad_samples`` over every failing case and one good sample:
  every skipped case must carry its documented error, and the good sample must be played;
- ``eval``: the next hostile case through ``vseek eval``'s episode worker (random policy): an error
  case must be a ``status="error"`` record with its class and message, never an exception.

Played episodes alternate two policies: ``random`` (random tool calls, windows and answers) and
``adversarial`` (responses from ``tests/adversarial/responses.jsonl``, plus a 10 MB response every
500 adversarial episodes). Every ``--every`` episodes it records RSS, open fds, threads, frame-cache
bytes and time. Growth is the median of the last quarter of checkpoints minus that of the first.
The run fails (exit 1) on any expectation violation, an unexpected exception, RSS growth beyond
the frame-cache cap plus ``--rss-slack-mb``, fd growth beyond ``--fd-slack``, or a peak RSS above
``--peak-rss-mb`` over the RSS at its start. Hostile videos are written by a child process, so the encoder's memory is not
in the peak.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import psutil

TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:  # the hostile-data generators are the tests' own (one definition)
    sys.path.insert(0, str(TESTS))

from hostile_data import HostileCase, hostile_cases  # noqa: E402

CORPUS = TESTS / "adversarial" / "responses.jsonl"
TOOLS = ("view_visual_prompt", "crop_video", "zoom_in")
KINDS = ("normal", "hostile", "skip", "eval")
DEFAULT_MIX = (0.5, 0.25, 0.1, 0.15)
MAX_VIOLATIONS_KEPT = 50


def random_response(rng: np.random.Generator, duration: float, turn: int) -> str:
    """A plausible but random response: 1-3 tool calls with random arguments, or an answer."""
    if turn > 0 and rng.random() < 0.35:
        return f"<think>done</think><answer>{rng.choice(['A', 'B', 'C', 'D', '[1, 2]', 'red'])}</answer>"
    calls = []
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(3)
        if kind == 0:
            start = float(rng.uniform(-1, duration + 1))
            args = {"start_time": round(start, 2), "end_time": round(start + float(rng.uniform(-1, duration)), 2)}
            calls.append({"name": "crop_video", "arguments": args})
        elif kind == 1:
            calls.append({"name": "view_visual_prompt", "arguments": {}})
        else:
            x, y = (int(v) for v in rng.integers(0, 200, 2))
            box = [x, y, x + int(rng.integers(-10, 120)), y + int(rng.integers(-10, 120))]
            calls.append({"name": "zoom_in", "arguments": {"time": round(float(rng.uniform(-1, duration + 1)), 2), "box": box}})
    return "<think>look</think>" + "".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in calls)


class AdversarialPolicy:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.corpus = [json.loads(line)["response"] for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls % 500 == 0:
            return "<think>" + "a" * (10 << 20) + "</think>"
        return self.corpus[int(self.rng.integers(len(self.corpus)))]


def snapshot(proc: psutil.Process, cache, episodes: int, steps: int, started: float) -> dict:
    gc.collect()
    return {
        "episodes": episodes, "steps": steps, "seconds": round(time.perf_counter() - started, 2),
        "rss_mb": round(proc.memory_info().rss / 2**20, 2), "open_fds": proc.num_fds(),
        "cache_mb": round(cache.nbytes / 2**20, 2), "threads": proc.num_threads(),
        "py_objects": len(gc.get_objects()),  # flat here and growing RSS: native memory, not Python's
    }


def reset_peak_rss() -> bool:
    """Start the peak-RSS count from now (Linux ``clear_refs``), so a soak inside a test run measures
    itself, not the tests before it; ``False`` where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def current_peak_rss_mb() -> float:
    """The process's peak RSS since the last :func:`reset_peak_rss` (``VmHWM``), else since it started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quarter_growth(values: list[float]) -> float:
    """Median of the last quarter of ``values`` minus the median of the first (0 for one value)."""
    q = max(1, len(values) // 4)
    return statistics.median(values[-q:]) - statistics.median(values[:q])


def expected_failure(case: HostileCase, message: str, cls_name: str) -> str | None:
    """Why ``cls_name: message`` is not ``case``'s documented failure, or ``None`` when it is."""
    if case.error is None:
        return f"expected to play, got {cls_name}: {message[:300]}"
    if cls_name != case.error.__name__ or case.match not in message or repr(case.name) not in message:
        return f"expected {case.error.__name__} naming {case.name!r} with {case.match!r}, got {cls_name}: {message[:300]}"
    return None


class Soak:
    """The soak's envs, cases and tallies; :meth:`episode` plays one episode of a kind."""

    def __init__(self, dataset: str, cache_mb: float, seed: int, workdir: Path) -> None:
        from vseek_env.data import Dataset, load_dataset
        from vseek_env.env import VideoSeekerEnv
        from vseek_env.evaluation.episode import EpisodeWorker, WorkerSpec
        from vseek_env.video import FrameCache

        base = load_dataset(dataset)
        normal = [dataclasses.replace(s, video=str(base.video_path(s).resolve())) for s in base.samples]
        self.cases = hostile_cases(workdir, normal[0])
        self.by_name = {c.name: c for c in self.cases}
        self.normal_ids = [s.id for s in normal]
        mixed = Dataset("soak", normal + [c.sample for c in self.cases], root=None)
        failing = [c.sample for c in self.cases if c.error is not None and c.stage == "open"]
        self.cache = FrameCache(int(cache_mb * 2**20))
        env_args = dict(frame_cache=self.cache, tools=TOOLS, compat_paths=True)
        self.env = VideoSeekerEnv(dataset=mixed, **env_args)
        self.skip_env = VideoSeekerEnv(dataset=Dataset("skip", [*failing, normal[0]], root=None),
                                       skip_bad_samples=True, **env_args)
        self.worker = EpisodeWorker(WorkerSpec(policy="random", dataset=mixed, env_args=env_args))
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.adversarial = AdversarialPolicy(self.rng)
        self.steps = 0
        self.played = 0
        self.counts: Counter = Counter()  # episodes by kind
        self.handled: Counter = Counter()  # "<kind>/<case>: <outcome>"
        self.hostile_errors: Counter = Counter()  # exception classes raised (and expected) by hostile data
        self.tool_errors: Counter = Counter()  # info["errors"] codes of hostile and random responses
        self.unexpected: Counter = Counter()
        self.violations: list[str] = []
        self._next = {"hostile": 0, "eval": 0}

    def close(self) -> None:
        self.worker.close()
        self.skip_env.close()
        self.env.close()

    def _violation(self, text: str) -> None:
        if len(self.violations) < MAX_VIOLATIONS_KEPT:
            self.violations.append(text)
        self.unexpected["violation"] += 1

    def _next_case(self, kind: str) -> HostileCase:
        case = self.cases[self._next[kind] % len(self.cases)]
        self._next[kind] += 1
        return case

    def _play(self, env) -> None:
        """Steps ``env`` (just reset) to the end with the episode's policy."""
        self.played += 1
        duration = env._video.duration if env._video is not None else 10.0
        done, turn = False, 0
        while not done:
            action = random_response(self.rng, duration, turn) if self.played % 2 else self.adversarial()
            _, _, terminated, truncated, info = env.step(action)
            self.tool_errors.update(e["code"] for e in info["errors"])
            done, turn, self.steps = terminated or truncated, turn + 1, self.steps + 1

    def episode(self, kind: str, number: int) -> None:
        self.counts[kind] += 1
        try:
            getattr(self, f"_{kind}")(number)
        except Exception as exc:  # noqa: BLE001 - the soak reports it and goes on
            self.unexpected[type(exc).__name__] += 1
            self._violation(f"episode {number} ({kind}): {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}")

    def _normal(self, number: int) -> None:
        self.env.reset(seed=self.seed + number, options={"sample_id": self.normal_ids[number % len(self.normal_ids)]})
        self._play(self.env)

    def _hostile(self, number: int) -> None:
        case = self._next_case("hostile")
        try:
            self.env.reset(seed=self.seed + number, options={"sample_id": case.name})
        except Exception as exc:  # noqa: BLE001 - checked against the case's documented error
            if case.stage != "open" or (why := expected_failure(case, str(exc), type(exc).__name__)):
                self._violation(f"episode {number} hostile {case.name}: " + (why or f"{type(exc).__name__}: {exc}"))
                return
            self.hostile_errors[type(exc).__name__] += 1
            self.handled[f"hostile/{case.name}: {type(exc).__name__}"] += 1
            return
        if case.error is not None and case.stage == "open":
            self._violation(f"episode {number} hostile {case.name}: reset did not raise {case.error.__name__}")
            return
        self._play(self.env)
        self.handled[f"hostile/{case.name}: played"] += 1

    def _skip(self, number: int) -> None:
        _, info = self.skip_env.reset(seed=self.seed + number)
        if info["sample_id"] != self.normal_ids[0]:
            self._violation(f"episode {number} skip: opened {info['sample_id']!r}, not the one good sample")
        for skipped in info.get("skipped", []):
            case = self.by_name[skipped["sample_id"]]
            # The env wraps every open failure as the reset's error; its message keeps the cause.
            if why := expected_failure(case, skipped["error"], case.error.__name__ if case.error else "?"):
                self._violation(f"episode {number} skip {case.name}: {why}")
            else:
                self.handled[f"skip/{case.name}: skipped"] += 1
        self._play(self.skip_env)

    def _eval(self, number: int) -> None:
        from vseek_env.evaluation.episode import Task

        case = self._next_case("eval")
        record, _ = self.worker.run(Task(key=f"{case.name}#{number}", sample_id=case.name, repeat=0, seed=self.seed + number))
        if record["status"] == "error":
            cls_name, _, message = record["error"].partition(": ")
            if why := expected_failure(case, message, cls_name):
                self._violation(f"episode {number} eval {case.name}: {why}")
            else:
                self.hostile_errors[cls_name] += 1
                self.handled[f"eval/{case.name}: error record {cls_name}"] += 1
        elif case.error is not None:
            self._violation(f"episode {number} eval {case.name}: status {record['status']!r}, expected an error record")
        else:
            self.handled[f"eval/{case.name}: ok record"] += 1
        self.steps += len(record.get("turns", []))


def run_soak(episodes: int, *, every: int, dataset: str = "synth:tiny", cache_mb: float = 64.0,
             mix: tuple[float, ...] = DEFAULT_MIX, seed: int = 0, rss_slack_mb: float = 64.0, fd_slack: int = 8,
             peak_rss_mb: float = 1024.0, workdir: Path | None = None,
             log: Callable[[str], None] = print) -> dict:
    """Play ``episodes`` mixed episodes; return the report (see the module docstring).

    Example:
        >>> report = run_soak(200, every=20, log=lambda line: None)   # doctest: +SKIP
        >>> report["ok"], report["violations"]                        # doctest: +SKIP
        (True, [])
    """
    p = np.asarray(mix, float)
    if p.shape != (len(KINDS),) or (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"mix must be {len(KINDS)} non-negative weights for {KINDS}, got {mix}")
    with tempfile.TemporaryDirectory(prefix="vseek-soak-") as tmp:
        soak = Soak(dataset, cache_mb, seed, Path(workdir or tmp))
        proc = psutil.Process()
        peak_reset = reset_peak_rss()
        start_rss = proc.memory_info().rss / 2**20  # a test run's process holds other tests' memory
        kinds = np.random.default_rng(seed + 1).choice(len(KINDS), size=episodes, p=p / p.sum())
        started = time.perf_counter()
        checkpoints: list[dict] = []
        try:
            for number in range(1, episodes + 1):
                soak.episode(KINDS[kinds[number - 1]], number)
                if number % every == 0 or number == episodes:
                    checkpoints.append(snapshot(proc, soak.cache, number, soak.steps, started))
                    log(json.dumps(checkpoints[-1]))
        finally:
            soak.close()
    peak = current_peak_rss_mb()
    rss_growth = quarter_growth([c["rss_mb"] for c in checkpoints])
    fd_growth = quarter_growth([c["open_fds"] for c in checkpoints])
    rss_limit = cache_mb + rss_slack_mb
    expected_cases = {c.name: (c.error.__name__ if c.error else None, c.stage) for c in soak.cases}
    report = {
        "args": {"episodes": episodes, "every": every, "dataset": dataset, "cache_mb": cache_mb, "mix": dict(zip(KINDS, mix)),
                 "seed": seed, "rss_slack_mb": rss_slack_mb, "fd_slack": fd_slack, "peak_rss_mb": peak_rss_mb,
                 # glibc's malloc tuning decides whether freed native memory returns to the OS (see README)
                 "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}},
        "episodes_by_kind": dict(soak.counts), "played_episodes": soak.played, "steps": soak.steps,
        "hostile_cases": expected_cases,
        "handled": dict(sorted(soak.handled.items())),
        "hostile_errors_by_type": dict(soak.hostile_errors),
        "tool_errors_by_code": dict(soak.tool_errors.most_common()),
        "unexpected_by_type": dict(soak.unexpected), "violations": soak.violations,
        "checkpoints": checkpoints,
        "rss_growth_mb": round(rss_growth, 2), "rss_limit_mb": rss_limit,
        "rss_max_minus_first_mb": round(max(c["rss_mb"] for c in checkpoints) - checkpoints[0]["rss_mb"], 2),
        "fd_growth": fd_growth, "fd_limit": fd_slack, "peak_rss_mb": round(peak, 1),
        "peak_rss_since": "soak start" if peak_reset else "process start",
        "rss_at_start_mb": round(start_rss, 1), "peak_rise_mb": round(peak - start_rss, 1),
        "episodes_per_s": round(episodes / max(checkpoints[-1]["seconds"], 1e-9), 1),
    }
    report["ok"] = (not soak.unexpected and rss_growth <= rss_limit and fd_growth <= fd_slack
                    and (peak - start_rss <= peak_rss_mb or not peak_reset))  # another workload's peak is not the soak's
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=250, help="episodes between measurements")
    parser.add_argument("--dataset", default="synth:tiny")
    parser.add_argument("--cache-mb", type=float, default=64.0, help="frame-cache cap for this run")
    parser.add_argument("--mix", type=float, nargs=len(KINDS), default=DEFAULT_MIX, metavar="W",
                        help=f"weights of the episode kinds {KINDS}")
    parser.add_argument("--rss-slack-mb", type=float, default=64.0, help="allowed RSS growth beyond the cache cap")
    parser.add_argument("--fd-slack", type=int, default=8, help="allowed growth in open file descriptors")
    parser.add_argument("--peak-rss-mb", type=float, default=1024.0, help="allowed rise of the peak RSS over the RSS when the soak starts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("soak.json"))
    args = parser.parse_args(argv)
    report = run_soak(args.episodes, every=args.every, dataset=args.dataset, cache_mb=args.cache_mb, mix=tuple(args.mix),
                      seed=args.seed, rss_slack_mb=args.rss_slack_mb, fd_slack=args.fd_slack, peak_rss_mb=args.peak_rss_mb)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"RSS growth {report['rss_growth_mb']:.1f} MB (limit {report['rss_limit_mb']:.0f}), fd growth "
          f"{report['fd_growth']} (limit {args.fd_slack}), peak RSS {report['peak_rss_mb']} MB, "
          f"{len(report['violations'])} violations, {report['episodes_per_s']} episodes/s -> "
          f"{'ok' if report['ok'] else 'FAILED'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
