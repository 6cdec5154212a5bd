"""Thin wrapper: ``python benchmarks/run_bench.py [--quick] [--out FILE]`` == ``vseek bench ...``.

The implementation lives in ``vseek_env/commands/bench.py`` so it ships with the package.
"""

import sys

from vseek_env.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
