"""``vseek synth``: build the synthetic datasets, print their stats, measure tool necessity.

    vseek synth build synth:default
    vseek synth build --samples 3000 --seed 11 --out data/synth3k --workers 8
    vseek synth stats synth:default
    vseek synth necessity --dataset synth:default --out necessity.json
    vseek synth contact-sheet --out styles.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="build / inspect the embedded synthetic benchmark",
                       description="Build the synthetic datasets, print their statistics, measure tool necessity.")
    s = p.add_subparsers(title="synth commands", metavar="SUBCOMMAND")

    b = s.add_parser("build", help="build a named synthetic dataset, or any number of samples with --samples",
                     description="Build synth:tiny/default/long into the cache, or with --samples N --seed S --out DIR "
                                 "a training-sized set: deterministic per seed, balanced, parallel and resumable "
                                 "(re-run the same command to continue a killed build).")
    b.add_argument("name", nargs="?", default="synth:default", help="synth:tiny, synth:default or synth:long")
    b.add_argument("--force", action="store_true", help="rebuild even if cached / replace the build in --out")
    b.add_argument("--workers", type=int, default=None, help="render processes (default: the dataset's; 1 with --out)")
    b.add_argument("--samples", type=int, default=None, help="number of samples of a custom build (needs --out)")
    b.add_argument("--seed", type=int, default=0, help="seed of a custom build (default 0)")
    b.add_argument("--out", default=None, help="output folder of a custom build")
    b.add_argument("--preset", default="default", help="video look of a custom build: default, tiny or long")
    b.add_argument("--difficulty", default="medium", help="easy, medium or hard (instances, look-alike distractors, "
                                                          "event length, video length)")
    b.add_argument("--open-ended", type=float, default=0.0, metavar="SHARE",
                   help="share (0-1) of the multiple-choice samples turned into open-ended questions")
    b.add_argument("--val-fraction", type=float, default=0.1, help="share of the videos in val.jsonl (default 0.1)")
    b.add_argument("--ray", action="store_true", help="render on Ray (ray.init(); RAY_ADDRESS picks a cluster)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)

    st = s.add_parser("stats", help="counts per dimension, prompt style, answer kind and needs_tools")
    st.add_argument("name", nargs="?", default="synth:default")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_stats)

    n = s.add_parser("necessity", help="accuracy on tool-needing samples: oracle, pixel with/without tools, chance")
    n.add_argument("--dataset", default="synth:default")
    n.add_argument("--out", default=None, help="write the results as JSON here")
    n.add_argument("--limit", type=int, default=None, help="use only the first N tool-needing samples")
    n.add_argument("--all", action="store_true", help="also report samples that do not need tools")
    n.set_defaults(func=_necessity)

    c = s.add_parser("contact-sheet", help="render all eight visual-prompt styles on one frame (PNG)",
                     description="Render the eight styles on a dataset sample's prompt frame, or on a frame of "
                                 "your own video with --video and --mask (e.g. a DAVIS sequence).")
    c.add_argument("--out", default="contact_sheet.png")
    c.add_argument("--dataset", default="synth:tiny")
    c.add_argument("--sample", default=None, help="sample id (default: the dataset's first)")
    c.add_argument("--video", default=None, help="a video file to render on instead of a dataset sample")
    c.add_argument("--mask", default=None,
                   help="target mask for --video: .npz with 'masks' (T, H, W) (frame T matches video frame T), "
                        ".npy (H, W) or (T, H, W), or a PNG (non-zero = target)")
    c.add_argument("--frame", type=int, default=0, help="frame index of --video (default 0)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--columns", type=int, default=4)
    c.set_defaults(func=_contact_sheet)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _build(args: argparse.Namespace) -> int:
    from vseek_env.data.synthetic import CONFIGS, build, dataset_dir

    if args.samples is not None or args.out is not None:
        return _build_custom(args)

    if args.name not in CONFIGS:
        print(f"unknown synthetic dataset {args.name!r}; choose from {sorted(CONFIGS)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    path = build(args.name, force=args.force, workers=args.workers)
    manifest = json.loads((dataset_dir(args.name) / "manifest.json").read_text())
    print(f"{args.name}: {manifest['counts']} in {path.parent} ({time.perf_counter() - start:.1f} s)")
    return 0


def _build_custom(args: argparse.Namespace) -> int:
    import os

    from vseek_env.data.synth.build import BuildError, build_synth

    if args.samples is None or args.out is None:
        print("a custom build needs both --samples N and --out DIR", file=sys.stderr)
        return 2
    import resource

    workers = args.workers if args.workers is not None else 1
    start = time.perf_counter()
    cpu0 = _cpu_seconds(resource)
    try:
        path = build_synth(args.out, samples=args.samples, seed=args.seed, preset=args.preset,
                           difficulty=args.difficulty, workers=workers, use_ray=args.ray,
                           open_ended=args.open_ended, val_fraction=args.val_fraction,
                           progress=not args.quiet, force=args.force)
    except BuildError as exc:
        print(f"vseek synth build: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds(resource) - cpu0
    manifest = json.loads((path.parent / "manifest.json").read_text())
    cores = min(workers, os.cpu_count() or 1)
    # per CPU-second is what a core delivers when it is not shared; wall time per core is what you
    # got on this machine now (lower when other work competes for the cores)
    # Ray's workers are not our child processes: their CPU time is not ours to count
    per_cpu = "" if args.ray else f", {args.samples / max(cpu, 1e-9):.2f} samples per CPU-second"
    print(f"{path}: {manifest['counts']} in {seconds:.1f} s: {args.samples / max(seconds, 1e-9) / cores:.2f} samples/s "
          f"per core over {cores} core(s){per_cpu}")
    return 0


def _cpu_seconds(resource) -> float:
    """User + system CPU time of this process and its finished children (the render processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _stats(args: argparse.Namespace) -> int:
    from vseek_env.data import load_dataset
    from vseek_env.data.synthetic import compute_stats

    ds = load_dataset(args.name)
    stats = compute_stats(ds.samples)
    if args.json:
        print(json.dumps(stats, indent=1, sort_keys=True))
        return 0
    print(f"{args.name}: {stats['samples']} samples, {stats['videos']} videos, "
          f"{stats['duration_s']['min']:.0f}-{stats['duration_s']['max']:.0f} s")
    for key in ("dimension", "style", "answer_kind", "needs_tools", "template"):
        print(f"  {key}: " + ", ".join(f"{k}={v}" for k, v in stats[key].items()))
    return 0


# ------------------------------------------------------------------------------------------ necessity
def _play(env, policy, sample_id: str, seed: int = 0):
    """One episode; returns (answer text or None, sample)."""
    try:
        from vseek_env.runner import run_episode
    except ImportError:  # pragma: no cover - the runner ships with the env
        run_episode = None
    if run_episode is not None:
        result = run_episode(env, policy, seed=seed, sample_id=sample_id)
        return result.answer, result
    obs, info = env.reset(seed=seed, options={"sample_id": sample_id})
    policy.reset(seed)
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(policy.act(obs, info))
        done = term or trunc
    return info["trajectory"].answer, None


def chance_accuracy(sample, draws: int = 400) -> float:
    """Expected accuracy of the random policy's answer rule on ``sample`` (Monte Carlo, seeded)."""
    import numpy as np

    from vseek_env.policies.pixel import guess_answer
    from vseek_env.rewards.matching import match_answer

    if sample.answer_kind == "choice":
        return 1.0 / len(sample.options)
    video = {"duration": sample.duration, "width": sample.meta.get("width", 640), "height": sample.meta.get("height", 360)}
    if sample.answer_kind == "box" and sample.prompt.mask_rle:
        video["height"], video["width"] = sample.prompt.mask_rle["size"]
    rng = np.random.default_rng(zlib.crc32(sample.id.encode()))
    hits = sum(match_answer(sample, guess_answer(sample.answer_kind, list(sample.options), sample.question, video, rng))[0]
               for _ in range(draws))
    return hits / draws


def measure_necessity(dataset: str = "synth:default", *, limit: int | None = None, include_all: bool = False,
                      progress: bool = True) -> dict:
    """Accuracy on tool-needing samples of oracle, pixel_with_tools, pixel_overview_only and chance."""
    import gymnasium as gym

    import vseek_env  # noqa: F401  (registers the env ids)
    from vseek_env.data import load_dataset
    from vseek_env.policies.oracle import OraclePolicy
    from vseek_env.policies.pixel import PixelPolicy
    from vseek_env.rewards.matching import match_answer

    ds = load_dataset(dataset)
    needing = [s for s in ds.samples if s.needs_tools]
    if limit is not None:
        needing = needing[:limit]
    others = [s for s in ds.samples if not s.needs_tools] if include_all else []
    env = gym.make("VideoSeeker-v0", dataset=dataset)
    policies = {"oracle": OraclePolicy(use_tool=True), "pixel_with_tools": PixelPolicy(use_tools=True),
                "pixel_overview_only": PixelPolicy(use_tools=False)}
    per_sample: dict[str, dict] = {}
    start = time.perf_counter()
    for group, samples in (("needs_tools", needing), ("no_tools_needed", others)):
        for i, sample in enumerate(samples):
            row = {"dimension": sample.dimension, "kind": sample.answer_kind, "style": sample.prompt.style,
                   "group": group, "chance": chance_accuracy(sample)}
            for name, policy in policies.items():
                answer, _ = _play(env, policy, sample.id, seed=i)
                row[name] = float(match_answer(sample, answer)[0]) if answer is not None else 0.0
                row[name + "_answer"] = answer
            per_sample[sample.id] = row
            if progress:
                print(f"\r{group}: {i + 1}/{len(samples)}", end="", file=sys.stderr, flush=True)
        if progress and samples:
            print(file=sys.stderr)
    env.close()
    names = ["oracle", "pixel_with_tools", "pixel_overview_only", "chance"]

    def summary(rows: list[dict]) -> dict:
        return {n: round(sum(r[n] for r in rows) / len(rows), 4) if rows else None for n in names} | {"n": len(rows)}

    need_rows = [r for r in per_sample.values() if r["group"] == "needs_tools"]
    by_dim = {}
    for dim in sorted({r["dimension"] for r in need_rows}):
        by_dim[dim] = summary([r for r in need_rows if r["dimension"] == dim])
    result = {
        "dataset": dataset,
        "needs_tools": summary(need_rows),
        "by_dimension": by_dim,
        "by_style": {st: summary([r for r in need_rows if r["style"] == st]) for st in sorted({r["style"] for r in need_rows})},
        "seconds": round(time.perf_counter() - start, 1),
        "samples": per_sample,
    }
    if include_all:
        result["no_tools_needed"] = summary([r for r in per_sample.values() if r["group"] == "no_tools_needed"])
    return result


def _necessity(args: argparse.Namespace) -> int:
    result = measure_necessity(args.dataset, limit=args.limit, include_all=args.all)
    head = result["needs_tools"]
    print(f"{args.dataset}: {head['n']} tool-needing samples ({result['seconds']} s)")
    print(f"  {'':<10} " + " ".join(f"{n:>20}" for n in ("oracle", "pixel_with_tools", "pixel_overview_only", "chance")))
    rows = [("all", head)] + list(result["by_dimension"].items())
    if "no_tools_needed" in result:
        rows.append(("no-tool set", result["no_tools_needed"]))
    for label, row in rows:
        print(f"  {label:<10} " + " ".join(f"{row[n]:>20.3f}" for n in ("oracle", "pixel_with_tools", "pixel_overview_only", "chance"))
              + f"   n={row['n']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.out}")
    return 0


def _contact_sheet(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from vseek_env.visual_prompts import contact_sheet

    if args.video:
        if not args.mask:
            print("--video needs --mask (the target's mask on that frame)", file=sys.stderr)
            return 2
        frame, mask, others, what = _own_frame(args)
    else:
        frame, mask, others, what = _dataset_frame(args)
    sheet = contact_sheet(np.ascontiguousarray(frame), mask=mask, seed=args.seed, columns=args.columns,
                          others=others)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}, 8 styles on {what})")
    return 0


def _dataset_frame(args: argparse.Namespace):
    from vseek_env.data import load_dataset
    from vseek_env.masks import box_to_mask, decode_rle
    from vseek_env.video import open_video

    ds = load_dataset(args.dataset)
    sample = ds[args.sample] if args.sample else ds.samples[0]
    with open_video(ds.video_path(sample)) as video:
        frame = video.read([video.index_at(sample.prompt.time)], max_pixels=None).frames[0]
    if sample.prompt.mask_rle:
        mask = decode_rle(sample.prompt.mask_rle)
    else:
        mask = box_to_mask(sample.prompt.box, frame.shape)
    return frame, mask, sample.prompt.others, f"{sample.id} at {sample.prompt.time:.2f} s"


def _own_frame(args: argparse.Namespace):
    import numpy as np
    from PIL import Image

    from vseek_env.video import open_video

    mask_path = Path(args.mask)
    if not mask_path.is_file():
        raise SystemExit(f"--mask {mask_path}: no such file")
    if mask_path.suffix == ".npz":
        with np.load(mask_path) as z:
            if "masks" not in z.files:
                raise SystemExit(f"--mask {mask_path}: expected an array named 'masks', found {z.files}")
            masks = z["masks"]
    elif mask_path.suffix == ".npy":
        masks = np.load(mask_path, mmap_mode="r")
    else:
        masks = np.asarray(Image.open(mask_path).convert("L")) > 0
    if masks.ndim == 3:
        if not 0 <= args.frame < masks.shape[0]:
            raise SystemExit(f"--frame {args.frame} is outside the {masks.shape[0]} masks of {mask_path}")
        masks = masks[args.frame]
    mask = np.asarray(masks).astype(bool)
    with open_video(args.video) as video:
        if not 0 <= args.frame < video.num_frames:
            raise SystemExit(f"--frame {args.frame} is outside the {video.num_frames} frames of {args.video}")
        frame = video.read([args.frame], max_pixels=None).frames[0]
    if mask.shape != frame.shape[:2]:
        raise SystemExit(f"--mask {mask_path}: shape {mask.shape} does not match the frame's {frame.shape[:2]}")
    if not mask.any():
        raise SystemExit(f"--mask {mask_path}: frame {args.frame} has an empty mask")
    return frame, mask, (), f"{args.video} frame {args.frame}"
