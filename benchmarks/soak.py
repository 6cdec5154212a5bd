"""Soak test: many episodes with random and adversarial policies; RSS and open files must stay flat.

Not part of CI (it runs for minutes to hours). Run::

    python benchmarks/soak.py --episodes 10000 --out soak.json

Every ``--every`` episodes it records RSS, open file descriptors, frame-cache bytes and throughput.
The first checkpoint is the baseline (caches and lazy imports are warm by then). The run fails
(exit 1) when RSS grows past the baseline by more than the frame-cache cap plus ``--rss-slack-mb``,
or open descriptors by more than ``--fd-slack``. Policies alternate per episode: ``random`` (random
tool calls, windows and answers) and ``adversarial`` (responses from ``tests/adversarial/``, plus a
10 MB response every 500 adversarial episodes).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np
import psutil

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "adversarial" / "responses.jsonl"
TOOLS = ("view_visual_prompt", "crop_video", "zoom_in")


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
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=500, help="episodes between measurements")
    parser.add_argument("--dataset", default="synth:tiny")
    parser.add_argument("--cache-mb", type=float, default=64.0, help="frame-cache cap for this run")
    parser.add_argument("--rss-slack-mb", type=float, default=64.0, help="allowed RSS growth beyond the cache cap")
    parser.add_argument("--fd-slack", type=int, default=8, help="allowed growth in open file descriptors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("soak.json"))
    args = parser.parse_args(argv)

    from vseek_env.env import VideoSeekerEnv
    from vseek_env.video import FrameCache

    cache = FrameCache(int(args.cache_mb * 2**20))
    env = VideoSeekerEnv(dataset=args.dataset, frame_cache=cache, tools=TOOLS, compat_paths=True)
    rng = np.random.default_rng(args.seed)
    adversarial = AdversarialPolicy(rng)
    proc = psutil.Process()
    started = time.perf_counter()
    checkpoints: list[dict] = []
    steps = 0
    outcomes = {"terminated": 0, "truncated": 0}
    for episode in range(1, args.episodes + 1):
        env.reset(seed=args.seed + episode)
        duration = env._video.duration if env._video is not None else 10.0
        done, turn = False, 0
        while not done:
            action = random_response(rng, duration, turn) if episode % 2 else adversarial()
            _, _, terminated, truncated, _ = env.step(action)
            done, turn, steps = terminated or truncated, turn + 1, steps + 1
        outcomes["terminated" if terminated else "truncated"] += 1
        if episode % args.every == 0 or episode == args.episodes:
            checkpoints.append(snapshot(proc, cache, episode, steps, started))
            print(json.dumps(checkpoints[-1]), flush=True)
    env.close()

    base = checkpoints[0]
    rss_growth = max(c["rss_mb"] for c in checkpoints) - base["rss_mb"]
    fd_growth = max(c["open_fds"] for c in checkpoints) - base["open_fds"]
    rss_limit = args.cache_mb + args.rss_slack_mb
    report = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "outcomes": outcomes, "checkpoints": checkpoints,
        "rss_growth_mb": round(rss_growth, 2), "rss_limit_mb": rss_limit,
        "fd_growth": fd_growth, "fd_limit": args.fd_slack,
        "episodes_per_s": round(args.episodes / max(checkpoints[-1]["seconds"], 1e-9), 1),
        "ok": rss_growth <= rss_limit and fd_growth <= args.fd_slack,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(f"RSS growth {rss_growth:.1f} MB (limit {rss_limit:.0f}), fd growth {fd_growth} (limit {args.fd_slack}), "
          f"{report['episodes_per_s']} episodes/s -> {'ok' if report['ok'] else 'FAILED'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
