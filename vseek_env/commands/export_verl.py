"""``vseek export-verl DATASET OUT.parquet``: rows for verl's trainer (and its tool config)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-verl",
        help="export a dataset to verl Parquet rows (for GRPO with the vseek_agent loop)",
        description="Write one verl row per sample: the env's first observation as the prompt, the answer as "
        "reward_model.ground_truth, and in extra_info everything the env needs to rebuild the episode on a "
        "Ray worker. Every video is opened once, so unreadable samples fail here, by id.",
    )
    p.add_argument("dataset", help="registered dataset name (e.g. synth:default) or dataset file")
    p.add_argument("out", help="output .parquet file (written atomically)")
    p.add_argument("--split", default="train", help="split name stored in extra_info (default: %(default)s)")
    p.add_argument("--env-options", default="{}", metavar="JSON",
                   help='env options as JSON, e.g. \'{"max_turns": 6}\' (default: the env defaults)')
    p.add_argument("--embed-images", action="store_true",
                   help="store the first observation's frames in an 'images' column (needed by verl's stock "
                   "tool_agent loop; the vseek_agent loop renders them itself)")
    p.add_argument("--agent-name", default=None, help="agent loop named in each row (default: vseek_agent)")
    p.add_argument("--tool-config", default=None, metavar="YAML",
                   help="also write verl's tool config for the env's tools (for the stock tool_agent loop)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vseek_env.integrations.verl import AGENT_NAME
    from vseek_env.integrations.verl.rows import export_verl

    try:
        options = json.loads(args.env_options)
    except json.JSONDecodeError as exc:
        # the text may hold a key: name the place, never echo it
        raise SystemExit(f"--env-options is not valid JSON ({exc})") from None
    if not isinstance(options, dict):
        raise SystemExit(f"--env-options must be a JSON object, got a {type(options).__name__}")
    from vseek_env.data import SampleError

    try:
        path = export_verl(args.dataset, args.out, split=args.split, env_options=options,
                           embed_images=args.embed_images, agent_name=args.agent_name or AGENT_NAME)
    except (FileNotFoundError, SampleError, TypeError, ValueError, KeyError) as exc:
        raise SystemExit(f"export-verl: {exc}") from None
    import pyarrow.parquet as pq

    print(f"wrote {pq.ParquetFile(path).metadata.num_rows} rows to {path}")
    if args.tool_config:
        from vseek_env.config import EnvConfig
        from vseek_env.integrations.verl.tool_config import write_tool_config

        config = EnvConfig.from_kwargs(**options)
        written = write_tool_config(args.tool_config, config.tools, compat_paths=config.compat_paths)
        print(f"wrote the tool config for {', '.join(config.tools)} to {written}")
    return 0
