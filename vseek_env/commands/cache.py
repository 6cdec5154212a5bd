"""``vseek cache``: build, inspect or clear the on-disk frame store.

``vseek cache build DATASET`` pre-samples every video of a dataset at the crop rate and pixel
budget, so rollouts read frames instead of decoding (see :mod:`vseek_env.frame_store`). A rerun
skips videos already stored, so an interrupted build resumes.

Example:
    vseek cache build synth:tiny --fps 1 --max-pixels 112896
    vseek cache info
"""

from __future__ import annotations

import argparse
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="build / inspect / clear the on-disk frame store that rollouts read instead of decoding",
                       description=(__doc__ or "").split("Example:")[0])
    csub = p.add_subparsers(title="actions", metavar="ACTION")
    b = csub.add_parser("build", help="pre-sample every video of DATASET into the frame store")
    b.add_argument("dataset", help="dataset name (e.g. synth:tiny) or samples file")
    b.add_argument("--fps", type=float, default=1.0, help="grid rate; use the env's crop_fps (default: %(default)s)")
    b.add_argument("--max-pixels", type=int, default=None, help="pixel budget per frame (default: the env's, 112896)")
    b.add_argument("--factor", type=int, default=None, help="side multiple (default: the env's patch_factor, 28)")
    b.add_argument("--overview-frames", type=int, default=None,
                   help="also store the uniform overview of this many frames (default: the env's, 16; 0 = none)")
    b.add_argument("--no-prompt-frames", action="store_true", help="do not store the full-size visual-prompt frames")
    b.add_argument("--protocol-overview", action="store_true",
                   help="also store the paper protocol's overview (1 fps, at most 256 frames, see "
                        "vseek_env.video.protocol_indices): long videos' first observation then needs no decode")
    b.add_argument("--store", default=None, help="store folder (default: $VSEEK_FRAME_STORE or <cache dir>/frame_store)")
    b.set_defaults(func=run_build)
    i = csub.add_parser("info", help="where the store is and what it holds")
    i.add_argument("--store", default=None, help="store folder (default: as for build)")
    i.set_defaults(func=run_info)
    c = csub.add_parser("clear", help="delete the frame store")
    c.add_argument("--store", default=None, help="store folder (default: as for build)")
    c.set_defaults(func=run_clear)
    p.set_defaults(func=lambda args: p.print_help() or 0)


def _store(args):
    from vseek_env.frame_store import FrameStore, store_root

    return FrameStore(args.store or store_root())


def build_store(dataset, store, *, fps: float = 1.0, max_pixels: int | None = None, factor: int | None = None,
                overview_frames: int | None = None, prompt_frames: bool = True, protocol_overview: bool = False,
                log=print) -> dict:
    """Store each video's ``fps`` grid, overview and prompt frames; returns counts (and failures)."""
    from vseek_env.config import EnvConfig
    from vseek_env.data import load_dataset
    from vseek_env.video import FrameCache, VideoError, open_video, protocol_indices

    defaults = EnvConfig()
    max_pixels = max_pixels or defaults.max_pixels
    factor = factor or defaults.patch_factor
    overview = defaults.overview_frames if overview_frames is None else overview_frames
    if fps <= 0:
        raise ValueError(f"--fps must be positive, got {fps}")
    ds = load_dataset(dataset)
    by_video: dict = {}
    for sample in ds.samples:
        by_video.setdefault(str(ds.video_path(sample)), []).append(sample)
    counts = {"videos": 0, "frames_added": 0, "failed": []}
    t0 = time.perf_counter()
    for n, (path, samples) in enumerate(sorted(by_video.items()), 1):
        try:
            with open_video(path, cache=FrameCache(0)) as video:
                size = video.output_size(max_pixels, factor)
                wanted = set(video.window_indices(0, video.duration, fps=fps, min_frames=1, max_frames=10**9).tolist())
                if overview:
                    wanted |= set(video.uniform_indices(overview).tolist())
                if protocol_overview:
                    rate = video.num_frames / video.duration if video.duration > 0 else 1.0
                    wanted |= set(protocol_indices(video.num_frames, rate).tolist())
                added = store.add(video, sorted(wanted), size)
                if prompt_frames:
                    times = [s.prompt.time for s in samples if s.prompt.time is not None and not s.prompt.image]
                    if times:
                        added += store.add(video, sorted({video.index_at(t) for t in times}), (video.height, video.width))
        except (VideoError, OSError, ValueError, IndexError, MemoryError) as exc:
            # one bad video (unreadable, hostile sizes, a full disk) is recorded; the others are still built
            error = str(exc) if isinstance(exc, VideoError) else f"{type(exc).__name__}: {exc}"
            counts["failed"].append({"video": path, "samples": [s.id for s in samples], "error": error})
            log(f"[{n}/{len(by_video)}] FAILED {path}: {error}")
            continue
        counts["videos"] += 1
        counts["frames_added"] += added
        log(f"[{n}/{len(by_video)}] {path}: {added} new frames at {size[1]}x{size[0]}")
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    return counts


def run_build(args: argparse.Namespace) -> int:
    store = _store(args)
    counts = build_store(args.dataset, store, fps=args.fps, max_pixels=args.max_pixels, factor=args.factor,
                         overview_frames=args.overview_frames, prompt_frames=not args.no_prompt_frames,
                         protocol_overview=args.protocol_overview)
    summary = store.summary()
    print(f"frame store {summary['root']}: {counts['videos']} videos stored, {counts['frames_added']} frames added "
          f"in {counts['seconds']} s; now {summary['videos']} videos, {summary['frames']} frames, "
          f"{summary['bytes'] / 2**20:.1f} MiB")
    if counts["failed"]:
        print(f"{len(counts['failed'])} videos could not be read (listed above)", file=sys.stderr)
        return 1
    if args.store:
        print(f"rollouts use it when VSEEK_FRAME_STORE={summary['root']} is set")
    return 0


def run_info(args: argparse.Namespace) -> int:
    s = _store(args).summary()
    print(f"frame store {s['root']}: {s['videos']} videos, {s['frames']} frames, {s['bytes'] / 2**20:.1f} MiB")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    store = _store(args)
    s = store.summary()
    store.clear()
    print(f"deleted {s['root']} ({s['videos']} videos, {s['bytes'] / 2**20:.1f} MiB)")
    return 0
