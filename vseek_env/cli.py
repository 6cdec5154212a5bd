"""The ``vseek`` command. Each subcommand lives in ``vseek_env/commands/<name>.py``.

Run ``vseek --help`` for the list and ``vseek CMD --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Each module defines register(subparsers) which adds its subcommand(s) with set_defaults(func=...).
COMMAND_MODULES = (
    "vseek_env.commands.demo",
    "vseek_env.commands.synth",
    "vseek_env.commands.eval",
    "vseek_env.commands.v2p",
    "vseek_env.commands.bench",
    "vseek_env.commands.cache",
    "vseek_env.commands.export_verl",
    "vseek_env.commands.rollouts",
    "vseek_env.commands.pipeline",
    "vseek_env.commands.dataset",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vseek",
        description="vseek-env: agentic video QA with visual prompts (Gymnasium env, rewards, eval, verl).",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so a closed pipe is caught below and not at interpreter exit
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`vseek ... | head`): stop quietly, like other tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # what is still buffered must not raise again at exit
        return 141  # 128 + SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
