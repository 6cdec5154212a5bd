"""Parse time of pathological responses at 32 K and 128 K characters (issue 14, finding 10).

Linear parsing keeps the 128 K / 32 K time ratio near 4; the old regexes gave about 16 (3.6 s ->
57 s for ``<think>`` repeated without a closing tag, on a shared 2-core machine).

    python benchmarks/parse_pathological.py
"""

from __future__ import annotations

import time

from vseek_env.protocol import parse_response
from vseek_env.trajectory import trajectory_from_text

CASES = {
    "think_unclosed": lambda n: "<think>" * (n // 7),
    "tool_call_unclosed": lambda n: "<think>a</think>" + "<tool_call>" * (n // 11),
    "answer_unclosed": lambda n: "<think>a</think>" + "<answer>" * (n // 8),
    "tool_response_unclosed": lambda n: "<tool_response>" * (n // 15),
    "im_start": lambda n: "<|im_start|>" * (n // 12),
    "dup_keys": lambda n: '<think>a</think><tool_call>{' + ",".join(f'"k{i}":1' for i in range(n // 10)) + '}</tool_call>',
}


def _seconds(fn, text: str) -> float:
    start = time.perf_counter()
    fn(text)
    return time.perf_counter() - start


def main() -> None:
    for name, make in CASES.items():
        times = []
        for n in (32_000, 128_000):
            text = make(n)
            parse, traj = _seconds(parse_response, text), _seconds(trajectory_from_text, text)
            times.append(parse + traj)
            print(f"{name:24s} {n:7d} chars: parse_response {parse:7.3f} s, trajectory_from_text {traj:7.3f} s")
        print(f"{name:24s} ratio 128K/32K {times[1] / max(times[0], 1e-6):.1f}")


if __name__ == "__main__":
    main()
