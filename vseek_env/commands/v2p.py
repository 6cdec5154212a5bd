"""``vseek v2p-score`` (a V2P-Bench response file) and ``vseek score BENCHMARK FILE`` (any supported
benchmark's response file, by its official rule and the paper's)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "v2p-score",
        help="score a V2P-Bench response file with the official first-character rule, the paper's rule and a robust letter extraction",
        description="Read RESPONSES (JSONL or a JSON array of V2P-Bench rows, each with a 'response' field) and print "
        "JSON: n, official_correct (V2P's rule: response[0] == answer), robust_correct (the letter found in "
        "<answer>, 'The answer is B', '(B)', ...), paper_correct / paper_scored / paper_accuracy (VideoSeeker's rule: "
        "the first letter in the first <answer> tag, rows without one dropped from the denominator), accuracies, unanswered, and per_dimension counts keyed by the raw "
        "integer dimension code. Both published code->name maps are included; they disagree (see vseek_env.data.v2p).",
    )
    p.add_argument("responses", help="the response file")
    p.add_argument("--response-key", default="response", help="field holding the model's reply (default: %(default)s)")
    p.add_argument("--mode", default="tool", choices=("direct", "reasoning", "tool"),
                   help="the paper's reading of a response: direct (the whole response is the letter) or "
                   "reasoning / tool (the first letter in the first <answer> tag); default: %(default)s")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.set_defaults(func=run)

    s = sub.add_parser(
        "score",
        help="score a benchmark response file (v2p, videomme, longvideobench, longvt, videorefer) by its official rule and the paper's",
        description="Read RESPONSES in the benchmark's own layout (its annotation rows plus the model's reply: 'response', "
        "or 'pred' for VideoRefer-Bench-Q; Video-MME's per-video results layout too) and print JSON: 'official' (the "
        "benchmark's published rule) and 'paper' (VideoSeeker's rule in --mode; multiple choice only), each overall and per "
        "category with accuracy over all rows and over the rows the rule could read. LongVT grades with the LLM judge "
        "configured by VSEEK_JUDGE_* (rules only when unset) and reports how many rows fell back.",
    )
    s.add_argument("benchmark", choices=("v2p", "videomme", "longvideobench", "longvt", "videorefer"))
    s.add_argument("responses", help="the response file (JSON array, JSONL or Parquet)")
    s.add_argument("--response-key", default=None, help="field holding the model's reply (default: the benchmark's)")
    s.add_argument("--mode", default="tool", choices=("direct", "reasoning", "tool"), help="the paper's mode (default: %(default)s)")
    s.add_argument("--out", default=None, help="also write the JSON to this file")
    s.set_defaults(func=run_score)


def run(args: argparse.Namespace) -> int:
    from vseek_env.data.sample import SampleError
    from vseek_env.data.v2p import read_v2p_rows, score_v2p_responses

    try:
        rows = read_v2p_rows(args.responses)
    except FileNotFoundError:
        print(f"vseek v2p-score: no such file {args.responses!r}", file=sys.stderr)
        return 2
    except SampleError as exc:
        print(f"vseek v2p-score: {exc}", file=sys.stderr)
        return 2
    missing = [i for i, r in enumerate(rows) if "answer" not in r]
    if missing:
        print(f"vseek v2p-score: {args.responses}: row(s) {missing[:5]} have no 'answer' field", file=sys.stderr)
        return 2
    scores = score_v2p_responses(rows, args.response_key, args.mode)
    for problem in scores["row_problems"][:20]:
        print(f"vseek v2p-score: {args.responses}: {problem}", file=sys.stderr)
    text = json.dumps(scores, indent=1)
    return _emit(text, args.out)


def run_score(args: argparse.Namespace) -> int:
    from vseek_env.data.benchmarks import read_rows, score_responses
    from vseek_env.data.sample import SampleError

    judge = None
    try:
        rows = read_rows(args.responses)
        if args.benchmark == "longvt":
            from vseek_env.rewards.judge import get_judge, resolve_judge

            config = resolve_judge("auto")
            judge = get_judge(config) if config is not None else None
        result = score_responses(args.benchmark, rows, mode=args.mode, response_key=args.response_key, judge=judge)
    except FileNotFoundError:
        print(f"vseek score: no such file {args.responses!r}", file=sys.stderr)
        return 2
    except (SampleError, ValueError, KeyError, TypeError) as exc:
        print(f"vseek score: {args.responses}: {exc}", file=sys.stderr)
        return 2
    result["judge"] = None if judge is None else {"model": judge.config.model, **judge.stats.snapshot()}
    text = json.dumps(result, indent=1)
    return _emit(text, args.out)


def _emit(text: str, out: str | None) -> int:
    """Print the scores (and write them to ``out`` when given)."""
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)
    return 0
