"""``vseek demo``: play a few episodes with a scripted policy and show every turn."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="play a few episodes on the embedded synthetic data and print each turn",
        description="Play episodes with a scripted policy that calls the tools and answers; print each turn "
        "and the reward, and save the frames of every observation as PNG grids.",
    )
    p.add_argument("--env", default="VideoSeeker-v0", help="registered env id (default: %(default)s)")
    p.add_argument("--dataset", default=None, help="dataset name or file (default: the env's own)")
    p.add_argument("--policy", default="oracle",
                   help="policy name: oracle (reads the ground truth, crops the evidence window), pixel (reads "
                        "pixels, scans with crop_video), random, ... (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=3, help="number of episodes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: %(default)s)")
    p.add_argument("--out", default="vseek_runs/demo", help="where frame grids are written (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym
    from PIL import Image

    import vseek_env  # noqa: F401  (registers the env ids)
    from vseek_env.policies import make_policy
    from vseek_env.runner import run_episode

    try:
        policy = make_policy(args.policy)  # before the env: a typo must not wait for a dataset build
    except KeyError as exc:
        raise SystemExit(f"vseek demo: {exc.args[0]}") from None
    kwargs = {"render_mode": "rgb_array"}
    if args.dataset:
        kwargs["dataset"] = args.dataset
    env = gym.make(args.env, **kwargs)
    out = Path(args.out)
    total = 0.0
    for episode in range(args.episodes):
        folder = out / f"episode_{episode}"
        folder.mkdir(parents=True, exist_ok=True)

        def show(turn, obs, response, info, folder=folder):
            if response is None:
                sample = env.unwrapped.sample
                print(f"\n=== episode {episode}: sample {sample.id} ({sample.dimension}, {sample.prompt.style}, "
                      f"{sample.answer_kind}) ===")
                print(obs["text"].split("Tools:", 1)[-1].split("\n\n", 1)[-1].split("<")[0].strip())
            else:
                print(f"--- turn {turn} ---\n[model] {response}")
                for result in info["tool_results"]:
                    print(f"[tool]  {result['text']}")
                for error in info["errors"]:
                    print(f"[error] {error['code']}: {error['message']}")
            if obs["num_frames"]:
                path = folder / f"turn_{turn}.png"
                Image.fromarray(env.render()).save(path)
                print(f"        ({obs['num_frames']} frames -> {path})")

        result = run_episode(env, policy, seed=args.seed + episode, on_step=show)
        total += result.reward
        print(f"reward {result.reward:.3f}  components {result.components}  answer {result.answer!r}  "
              f"truth {env.unwrapped.sample.answer!r}")
    print(f"\nmean reward over {args.episodes} episodes: {total / max(1, args.episodes):.3f}; frames in {out}/")
    env.close()
    return 0
