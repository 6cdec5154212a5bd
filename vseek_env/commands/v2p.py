"""``vseek v2p-score``: score a V2P-Bench response file (dataset rows plus ``response``)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "v2p-score",
        help="score a V2P-Bench response file with the official first-character rule and a robust letter extraction",
        description="Read RESPONSES (JSONL or a JSON array of V2P-Bench rows, each with a 'response' field) and print "
        "JSON: n, official_correct (V2P's rule: response[0] == answer), robust_correct (the letter found in "
        "<answer>, 'The answer is B', '(B)', ...), accuracies, unanswered, and per_dimension counts keyed by the raw "
        "integer dimension code. Both published code->name maps are included; they disagree (see vseek_env.data.v2p).",
    )
    p.add_argument("responses", help="the response file")
    p.add_argument("--response-key", default="response", help="field holding the model's reply (default: %(default)s)")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.set_defaults(func=run)


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
    scores = score_v2p_responses(rows, args.response_key)
    for problem in scores["row_problems"][:20]:
        print(f"vseek v2p-score: {args.responses}: {problem}", file=sys.stderr)
    text = json.dumps(scores, indent=1)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)
    return 0
