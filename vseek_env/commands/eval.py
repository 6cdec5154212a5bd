"""``vseek eval``: run a policy over a dataset (threads or Ray), resumable, with a JSON summary and an HTML report."""

from __future__ import annotations

import argparse
import json
import sys


def parse_kv(items: list[str] | None, flag: str) -> dict:
    """``["k=v", ...]`` -> dict; values are JSON when they parse (``3``, ``true``, ``[1,2]``), else strings."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"vseek eval: {flag} expects key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _env_args(args: argparse.Namespace) -> dict:
    env_args = parse_kv(args.env_arg, "--env-arg")
    if args.protocol is not None:
        if env_args.get("protocol", args.protocol) != args.protocol:
            raise SystemExit(f"vseek eval: --protocol {args.protocol} contradicts --env-arg protocol={env_args['protocol']}")
        env_args["protocol"] = args.protocol
    return env_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a policy on a dataset: parallel, resumable, JSON summary + HTML report",
        description="Play one episode per sample (x --repeats) with the policy, in parallel. Results are appended "
        "to OUT/results.jsonl as episodes finish; re-running the same command finishes only the missing ones. "
        "Writes OUT/summary.json (accuracy overall and per dimension / prompt style / answer kind / duration, "
        "tool calls, rewards, latency; parse failures count as wrong) and OUT/report.html.",
        epilog="examples:\n"
        "  vseek eval --policy oracle --dataset synth:default --out runs/oracle\n"
        "  vseek eval --policy openai --policy-arg model=Qwen/Qwen3-VL-8B-Instruct "
        "--policy-arg base_url=http://localhost:8000/v1 --dataset synth:default --out runs/qwen --workers 16\n"
        "  vseek eval --policy hf --policy-arg model=/models/Qwen2.5-VL-7B-Instruct --policy-arg device=cuda "
        "--dataset v2p/dataset_info.jsonl --out runs/v2p --workers 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--policy", required=True, help="policy name (oracle, random, pixel, no_tool, openai, hf) or module:Class")
    p.add_argument("--policy-arg", action="append", metavar="K=V", help="policy constructor argument (repeatable)")
    p.add_argument("--dataset", default="synth:default", help="dataset name or file, native or V2P-Bench (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder; an existing one is resumed")
    p.add_argument("--workers", type=int, default=4, help="episodes in flight, each with its own env and policy (default: %(default)s)")
    p.add_argument("--ray", action="store_true", help="distribute episodes over Ray actors instead of threads")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--ray-gpus-per-worker", type=float, default=0.0, help="GPUs each Ray actor reserves (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples")
    p.add_argument("--repeats", type=int, default=1, help="episodes per sample (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the episode seeds (default: %(default)s)")
    p.add_argument("--env-arg", action="append", metavar="K=V", help="env option, e.g. max_turns=4 (repeatable)")
    p.add_argument("--protocol", default=None, choices=("default", "paper"),
                   help="episode protocol: the env's defaults or the VideoSeeker paper's (same as --env-arg protocol=...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vseek_env.evaluation import EvalError, evaluate

    if args.workers < 1:
        raise SystemExit("vseek eval: --workers must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise SystemExit("vseek eval: --limit must be >= 1")
    try:
        result = evaluate(
            args.policy, args.dataset, args.out,
            policy_args=parse_kv(args.policy_arg, "--policy-arg"), env_args=_env_args(args),
            workers=args.workers, use_ray=args.ray, ray_address=args.ray_address, ray_num_gpus=args.ray_gpus_per_worker,
            limit=args.limit, repeats=args.repeats, seed=args.seed, progress=not args.no_progress,
        )
    except (EvalError, FileNotFoundError, KeyError, ValueError, TypeError) as exc:
        print(f"vseek eval: {exc}", file=sys.stderr)
        return 2
    s = result.summary
    print(f"protocol {s['protocol']}, reward {s['reward_name']} = {json.dumps(s['reward_spec'], sort_keys=True)}")
    print(f"{s['episodes']} episodes ({result.ran} run now, {result.skipped} from earlier): accuracy {s['accuracy']:.3f}, "
          f"parse failures {s['parse_failures']}, errored {s['errored']}, mean reward {s['reward']['mean']:.3f}, "
          f"tool calls/episode {s['tool_calls']['mean_per_episode']:.2f}")
    for dim, row in s["per_dimension"].items():
        print(f"  {dim:>12}: {row['accuracy']:.3f} ({row['correct']}/{row['n']})")
    if s["errors"]:  # failures of the server or the data, apart from wrong answers
        print(f"errors ({len(s['errors'])} episodes, counted as wrong):")
        for e in s["errors"][:10]:
            print(f"  {e['key']}: {e['error']}")
        if len(s["errors"]) > 10:
            print(f"  ... {len(s['errors']) - 10} more in summary.json")
    print(f"results: {result.out_dir / 'results.jsonl'}\nsummary: {result.out_dir / 'summary.json'}\nreport:  {result.report}")
    return 0 if s["errored"] == 0 else 1
