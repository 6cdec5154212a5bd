"""``vseek rollouts``: cold-start data — rollouts, rejection sampling, SFT export, pass@k selection."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


EPILOG = """the cold-start sequence on the embedded data (offline):
  vseek rollouts run --policy pixel --dataset synth:default --k 4 --out runs/ro
  vseek rollouts filter runs/ro --min-tools 1
  vseek rollouts export-sft runs/ro --format verl --out sft/train.parquet --min-tools 1
  vseek rollouts export-sft runs/ro --format sharegpt --out sft/lf/vseek.json --min-tools 1
  vseek rollouts verify sft/train.parquet --format verl
  vseek rollouts run --policy mixture --policy-arg 'policies={"pixel": 0.5, "random": 0.5}' \\
      --dataset synth:default --k 8 --out runs/passk
  vseek rollouts select runs/passk --band 0.125 0.875 --out data/rl_train.parquet
a real teacher: --policy openai --policy-arg model=... --policy-arg base_url=http://host:8000/v1 --workers 32"""


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-tools", type=int, default=0, help="keep trajectories with at least N tool calls that ran")
    p.add_argument("--max-tools", type=int, default=None, help="keep trajectories with at most N tool calls that ran")
    p.add_argument("--no-errors", action="store_true", help="drop trajectories with any response or tool error")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollouts", help="cold-start data: k rollouts per sample, rejection sampling, SFT export, pass@k RL selection",
        description="Teacher rollouts for SFT (kept when correct and well-formed) and pass@k selection of the RL set.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_subparsers(dest="rollouts_command", required=True, metavar="{run,filter,export-sft,verify,select}")

    r = s.add_parser("run", help="k episodes per sample with a policy (parallel, resumable)",
                     description="Play k episodes per sample; every trajectory is stored with its conversation, tool "
                     "results and reward components in OUT/results.jsonl, frames once under OUT/frames/. Re-running the "
                     "same command finishes only the missing episodes.")
    r.add_argument("--policy", required=True, help="policy name (pixel, oracle, random, openai, hf, mixture, ...) or module:Class")
    r.add_argument("--policy-arg", action="append", metavar="K=V", help="policy constructor argument, JSON values allowed (repeatable)")
    r.add_argument("--dataset", default="synth:default", help="dataset name or file (default: %(default)s)")
    r.add_argument("--k", type=int, default=8, help="episodes per sample (default: %(default)s)")
    r.add_argument("--out", required=True, help="rollout folder; an existing one is resumed")
    r.add_argument("--workers", type=int, default=4, help="episodes in flight (default: %(default)s)")
    r.add_argument("--ray", action="store_true", help="distribute over Ray actors instead of threads")
    r.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    r.add_argument("--limit", type=int, default=None, help="only the first N samples")
    r.add_argument("--seed", type=int, default=0, help="base seed of the episode seeds (default: %(default)s)")
    r.add_argument("--env-arg", action="append", metavar="K=V", help="env option, e.g. max_turns=4 (repeatable)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_run)

    f = s.add_parser("filter", help="rejection sampling dry run: the keep rate overall and per dimension")
    f.add_argument("dir", help="rollout folder")
    _add_filters(f)
    f.add_argument("--out", default=None, help="also write the statistics as JSON here")
    f.set_defaults(func=_filter)

    e = s.add_parser("export-sft", help="export the kept trajectories for SFT (verl Parquet or LLaMA-Factory ShareGPT)")
    e.add_argument("dir", help="rollout folder")
    e.add_argument("--format", choices=("verl", "sharegpt"), required=True, help="verl multi-turn SFT or LLaMA-Factory ShareGPT")
    e.add_argument("--out", required=True, help="output .parquet (verl) or .json (sharegpt; dataset_info.json is written beside it)")
    _add_filters(e)
    e.add_argument("--max-per-sample", type=int, default=None, help="at most N trajectories per sample")
    e.add_argument("--keep-duplicates", action="store_true", help="keep repeats of identical responses for a sample")
    e.add_argument("--split-tool-messages", action="store_true",
                   help="verl: one tool message per call instead of one per response (needs "
                   "data.multiturn.ignore_input_ids_mismatch=True for multi-call responses)")
    e.add_argument("--dataset-name", default="vseek_coldstart", help="name in dataset_info.json (default: %(default)s)")
    e.add_argument("--no-verify", action="store_true", help="skip replaying every exported conversation through the env")
    e.set_defaults(func=_export)

    v = s.add_parser("verify", help="replay an SFT export through the env: same tool results, frames and reward")
    v.add_argument("path", help="exported .parquet (verl) or .json (sharegpt)")
    v.add_argument("--format", choices=("verl", "sharegpt"), required=True)
    v.add_argument("--limit", type=int, default=None, help="check only the first N conversations")
    v.add_argument("--dataset", default=None, help="dataset name or file, if not the one each conversation names")
    v.set_defaults(func=_verify)

    k = s.add_parser("select", help="pass@k selection: samples with a success rate c/n in the band -> verl RL rows")
    k.add_argument("dir", help="rollout folder")
    k.add_argument("--band", type=float, nargs=2, default=(0.125, 0.875), metavar=("LOW", "HIGH"),
                   help="keep samples with LOW <= success rate (correct/finished rollouts) <= HIGH (default: 0.125 0.875)")
    k.add_argument("--out", required=True, help="output .parquet (vseek export-verl rows); statistics go to OUT.passk.json")
    k.add_argument("--split", default="train", help="split name stored in extra_info (default: %(default)s)")
    k.add_argument("--embed-images", action="store_true", help="store the first observation's frames in the rows")
    k.add_argument("--dataset", default=None, help="dataset name or file, if not the one in the folder's run.json")
    k.set_defaults(func=_select)


def _fail(msg: str) -> int:
    print(f"vseek rollouts: {msg}", file=sys.stderr)
    return 2


def _reason(exc: BaseException) -> str:
    # str(KeyError("x")) is "'x'": name the type so a missing key reads as one.
    return f"{type(exc).__name__}: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}"


def _criteria(args):
    from vseek_env.coldstart import Criteria

    return Criteria(min_tools=args.min_tools, max_tools=args.max_tools, no_errors=args.no_errors)


def _run(args: argparse.Namespace) -> int:
    from vseek_env.coldstart import RolloutError, run_rollouts
    from vseek_env.commands.eval import parse_kv
    from vseek_env.evaluation import EvalError

    if args.workers < 1 or args.k < 1:
        return _fail("--workers and --k must be >= 1")
    try:
        rs = run_rollouts(args.policy, args.dataset, args.out, k=args.k, policy_args=parse_kv(args.policy_arg, "--policy-arg"),
                          env_args=parse_kv(args.env_arg, "--env-arg"), workers=args.workers, use_ray=args.ray,
                          ray_address=args.ray_address, limit=args.limit, seed=args.seed, progress=not args.no_progress)
    except (EvalError, RolloutError, FileNotFoundError, KeyError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    from vseek_env.coldstart.rejection import accuracy_of

    ok = [r for r in rs.records if r.get("status") == "ok"]
    correct = sum(accuracy_of(r) >= 1.0 - 1e-9 for r in ok)  # the rule rejection sampling and pass@k use
    print(f"{len(rs.records)} episodes in {rs.root} ({len(rs.records) - len(ok)} errored, retried on re-run); "
          f"accuracy {correct / max(1, len(ok)):.3f}; frames under {rs.root / 'frames'}")
    return 0 if len(ok) == len(rs.records) else 1


def _filter(args: argparse.Namespace) -> int:
    from vseek_env.coldstart import RolloutError, format_keep_table, load_rollouts, rejection_sample

    try:
        rs = load_rollouts(args.dir)
        _, stats = rejection_sample(rs.records, _criteria(args))
    except (RolloutError, ValueError) as exc:
        return _fail(str(exc))
    print(format_keep_table(stats))
    if args.out:
        Path(args.out).write_text(json.dumps(stats, indent=1), encoding="utf-8")
        print(f"statistics: {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from vseek_env.coldstart import (RolloutError, export_sft, format_keep_table, load_rollouts, rejection_sample,
                                     select_trajectories, verify_export)

    try:
        rs = load_rollouts(args.dir)
        kept, stats = rejection_sample(rs.records, _criteria(args))
        print(format_keep_table(stats))
        chosen = select_trajectories(kept, dedup=not args.keep_duplicates, max_per_sample=args.max_per_sample)
        path = export_sft(rs, chosen, args.out, fmt=args.format, dataset_name=args.dataset_name,
                          merge_tools=not args.split_tool_messages)
    except (RolloutError, ValueError, FileNotFoundError) as exc:
        return _fail(str(exc))
    print(f"wrote {len(chosen)} conversations ({len(kept)} kept before de-duplication) to {path}")
    if not args.no_verify:
        try:
            report = verify_export(path, args.format)
        except (OSError, KeyError, ValueError) as exc:
            return _fail(f"wrote {path}, but cannot replay it through the env ({_reason(exc)}); "
                         f"check it with `vseek rollouts verify {path} --format {args.format} --dataset ...`")
        if not report.ok:
            return _fail(f"the export does not replay through the env: {report.mismatches[:3]}")
        print(f"verified: all {report.checked} conversations replay through the env to their recorded reward")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from vseek_env.coldstart import verify_export

    try:
        report = verify_export(args.path, args.format, limit=args.limit, dataset=args.dataset)
    except (OSError, ValueError, KeyError) as exc:
        return _fail(f"cannot replay {args.path} as {args.format} ({_reason(exc)}); check the path and --format, "
                     "and pass --dataset when the dataset the export names is not available here")
    for line in report.mismatches[:20]:
        print(line)
    print(f"{report.checked} conversations checked, {len(report.mismatches)} mismatches")
    return 0 if report.ok else 1


def _select(args: argparse.Namespace) -> int:
    from vseek_env.coldstart import RolloutError, export_selection, format_passk_table, load_rollouts, select_band

    try:
        rs = load_rollouts(args.dir)
        sel = select_band(rs, *args.band)
        print(format_passk_table(sel.stats))
        path = export_selection(rs, sel, args.out, split=args.split, embed_images=args.embed_images, dataset=args.dataset)
    except (RolloutError, ValueError, FileNotFoundError, KeyError) as exc:
        return _fail(str(exc))
    stats_path = Path(str(path) + ".passk.json")
    stats_path.write_text(json.dumps({**sel.stats, "sample_ids": sel.sample_ids, "success_rates": sel.rates}, indent=1),
                          encoding="utf-8")
    print(f"wrote {len(sel.sample_ids)} RL rows to {path}; statistics: {stats_path}")
    return 0
