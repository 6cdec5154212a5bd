"""``vseek dataset``: check your own dataset file.

    vseek dataset validate my_samples.jsonl          # every problem with its line; exit 1 if any
    vseek dataset validate my_samples.jsonl --no-open   # skip decoding the videos (fast)
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="check a dataset file (README 'Dataset format')", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    v = p.add_subparsers(title="dataset commands", metavar="SUBCOMMAND").add_parser(
        "validate", help="report every problem of a JSONL dataset with its line",
        description="Check the schema of every line, that the videos exist and open, that the prompt time lies inside "
                    "the video and that every box lies inside the frame. Reports every problem (file:line: message) "
                    "and exits 1 when there is any.")
    v.add_argument("file", help="a JSONL dataset file (one sample per line)")
    v.add_argument("--no-open", action="store_true", help="only check that the videos exist (no decoding)")
    v.set_defaults(func=_validate)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _validate(args: argparse.Namespace) -> int:
    from vseek_env.data.validate import validate_file

    problems = validate_file(args.file, open_videos=not args.no_open)
    for problem in problems:
        print(problem)
    lines = {p.line for p in problems}
    if problems:
        print(f"{args.file}: {len(problems)} problem(s) on {len(lines)} line(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: valid")
    return 0
