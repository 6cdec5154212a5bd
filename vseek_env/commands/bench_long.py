"""``vseek bench --long``: the paper protocol's first observation of a long video, against decord.

Generates (once, cached) a long H.264 video with realistic content -- textured scenes under a
panning camera, moving objects, a cut every 30 s, a fixed 10 s keyframe interval, 25 fps,
640x360, 20 minutes by default (``--long-seconds``) -- or takes ``--long-video``. Then, cold
(empty process caches; the probe counts):

* ``long_overview_s``: our reader (:meth:`Video.read_times`) on the paper protocol's overview
  (:func:`~vseek_env.video.protocol_indices`: 1 fps up to 256 frames) at 112,896 pixels,
  exact timestamps (no tolerance);
* ``long_overview_decord_s``: decord's ``get_batch`` on the same indices at full resolution, then a
  bicubic resize to the same size, as the paper's code does;
* ``long_speedup``: their ratio; ``long_frames_decoded_per_frame``: frames our decoders produced
  per frame returned (non-reference frames skipped are not decoded);
* ``long_overview_tolerance_s``: the same with ``keyframe_tolerance_s`` (nearest keyframe within
  the tolerance; labelled with its true time);
* ``long_overview_store_s``: from a frame store holding the overview's frames (no decode).

Example:
    vseek bench --long --out bench_long.json                    # 20 min video; ~3 min the first time
    vseek bench --quick --long --long-seconds 60 --out q.json   # a smoke test
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LONG_SIZE = (360, 640)
LONG_FPS = 25
LONG_GOP_S = 10.0
PROTOCOL_MAX_PIXELS = 112_896
SCENE_S = 30
INDEX_BITS = 16


# -- the long video ------------------------------------------------------------------------------------------------
def _world(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A scene: smooth multi-scale texture (a landscape-like image) to pan a camera over."""
    from PIL import Image

    acc = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((5, 0.35), (20, 0.25), (80, 0.15), (320, 0.13), (width // 3, 0.12)):
        small = rng.integers(0, 256, (max(2, cells * height // width), cells, 3), dtype=np.uint8)
        acc += weight * np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), np.float32)
    return acc.clip(0, 255).astype(np.uint8)


def burn_index(frame: np.ndarray, index: int) -> None:
    """Write ``index`` as 16 black/white blocks into the bottom strip (readable after resizing)."""
    h, w = frame.shape[:2]
    strip = frame[h - max(8, h // 24):]
    block = w // INDEX_BITS
    for bit in range(INDEX_BITS):
        strip[:, bit * block : (bit + 1) * block] = 255 if (index >> bit) & 1 else 0


def read_burned_index(frame: np.ndarray) -> int:
    """Inverse of :func:`burn_index` on a frame of any size."""
    h, w = frame.shape[:2]
    strip = frame[h - max(2, h // 48):]
    block = w / INDEX_BITS
    return sum(1 << bit for bit in range(INDEX_BITS)
               if strip[:, int(bit * block + block * 0.3): int(bit * block + block * 0.7)].mean() > 127)


def make_long_video(path: Path, *, seconds: int, size: tuple[int, int] = LONG_SIZE, fps: int = LONG_FPS,
                    gop_s: float = LONG_GOP_S, seed: int = 0) -> Path:
    """Encode the long benchmark video (libx264 veryfast, B-frames on, fixed keyframe interval).

    Content: a textured scene (five octaves of smooth noise) under a camera panning across it,
    three moving objects, a cut every 30 s; the frame index burned into the bottom strip so a
    reader's frames can be checked. About 0.2 Mbit/s at 640x360 (x264 crf 23).
    """
    from vseek_env.commands.bench import encode_h264

    h, w = size
    rng = np.random.default_rng(seed)
    scene_frames = SCENE_S * fps

    def frames():
        for i in range(seconds * fps):
            k = i % scene_frames
            if k == 0:  # a cut: a new scene, camera path and objects
                world = _world(h * 2, w * 3, rng)
                path_xy = rng.uniform(0, 1, (2, 2)) * [w * 2, h]
                sprites = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-3, 3), rng.uniform(-2, 2),
                            int(rng.integers(h // 12, h // 5)), rng.integers(0, 256, 3)) for _ in range(3)]
            u = k / scene_frames
            x, y = (path_xy[0] * (1 - u) + path_xy[1] * u).astype(int)
            frame = world[y : y + h, x : x + w].copy()
            for sx, sy, vx, vy, r, colour in sprites:
                cx, cy = int(sx + vx * k) % w, int(sy + vy * k) % h
                frame[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r] = colour
            burn_index(frame, i)
            yield frame

    return encode_h264(path, frames(), size=size, fps=fps, gop=int(round(gop_s * fps)))


def long_bench_video(seconds: int, log=print) -> tuple[Path, dict]:
    from vseek_env.data.datasets import cache_dir

    h, w = LONG_SIZE
    path = cache_dir() / "bench" / f"long_{seconds}s_{w}x{h}_{LONG_FPS}fps_g{LONG_GOP_S:g}s.mp4"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        log(f"encoding the long benchmark video {path} ({seconds} s) ...")
        make_long_video(path, seconds=seconds)
    return path, {"seconds": seconds, "width": w, "height": h, "fps": LONG_FPS, "keyframe_interval_s": LONG_GOP_S,
                  "codec": "h264", "path": str(path)}


# -- the readers -------------------------------------------------------------------------------------------------------
def decord_overview(path: Path, indices: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """The paper's code path: decord ``get_batch`` at full resolution, then a bicubic resize."""
    import decord
    from PIL import Image

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    frames = reader.get_batch(indices.tolist()).asnumpy()
    del reader
    h, w = size
    return [np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in frames]


def our_overview(path: Path, indices: np.ndarray, *, tolerance_s: float = 0.0):
    """Cold: empty process caches, open (probe) and :meth:`Video.read_times` on the indices' times."""
    from vseek_env.video import FrameCache, clear_process_caches, open_video

    clear_process_caches()
    with open_video(path, cache=FrameCache(1 << 30)) as video:
        times = video.frame_times[indices]
        return video.read_times(times, max_pixels=PROTOCOL_MAX_PIXELS, keyframe_tolerance_s=tolerance_s)


def run_long_bench(*, seconds: int = 1200, video: str | None = None, repeats: int = 1, tolerance_s: float = 5.0,
                   threads: int | None = None, log=print) -> dict:
    """Every long-video measurement; returns the ``long_*`` keys (see the module docstring)."""
    from vseek_env.frame_store import FrameStore
    from vseek_env.video import DECODE_STATS, FrameCache, clear_process_caches, decode_threads, open_video, protocol_indices

    if video:
        path, vinfo = Path(video), {"path": str(video)}
    else:
        path, vinfo = long_bench_video(seconds, log=log)
    old_threads = os.environ.get("VSEEK_DECODE_THREADS")
    if threads:
        os.environ["VSEEK_DECODE_THREADS"] = str(threads)
    old_store = os.environ.pop("VSEEK_FRAME_STORE", None)
    store_dir = Path(tempfile.mkdtemp(prefix="vseek_bench_long_store_"))
    try:
        with open_video(path, cache=FrameCache(0)) as v:
            indices = protocol_indices(v.num_frames, v.num_frames / v.duration)
            size = v.output_size(PROTOCOL_MAX_PIXELS)
            vinfo.update(duration=v.duration, frames=v.num_frames, keyframes=int(v.meta.key_pts.size))
            FrameStore(store_dir).add(v, indices, size)  # the store for the last figure, built untimed
        log(f"long video {path.name}: {vinfo['duration']:g} s, {len(indices)} overview frames at {size[1]}x{size[0]}, "
            f"{decode_threads()} decode threads, reference = decord")
        times: dict[str, list[float]] = {"ours": [], "decord": [], "tolerance": [], "store": []}
        work: dict[str, dict] = {}
        for r in range(repeats):
            t = time.perf_counter()
            ref = decord_overview(path, indices, size)
            times["decord"].append(time.perf_counter() - t)

            before = DECODE_STATS.snapshot()
            t = time.perf_counter()
            ours = our_overview(path, indices)
            times["ours"].append(time.perf_counter() - t)
            work["ours"] = _work(before, DECODE_STATS.snapshot(), len(ours.indices))

            before = DECODE_STATS.snapshot()
            t = time.perf_counter()
            tol = our_overview(path, indices, tolerance_s=tolerance_s)
            times["tolerance"].append(time.perf_counter() - t)
            work["tolerance"] = _work(before, DECODE_STATS.snapshot(), len(tol.indices))

            os.environ["VSEEK_FRAME_STORE"] = str(store_dir)
            try:
                before = DECODE_STATS.snapshot()
                t = time.perf_counter()
                stored = our_overview(path, indices)
                times["store"].append(time.perf_counter() - t)
                work["store"] = _work(before, DECODE_STATS.snapshot(), len(stored.indices))
            finally:
                os.environ.pop("VSEEK_FRAME_STORE", None)
            if r == 0:
                exact = _check(ours, ref, indices, stored)
                tol_offsets = _offsets(path, indices, tol)
            log(f"  repeat {r + 1}/{repeats}: decord {times['decord'][-1]:.2f} s, ours {times['ours'][-1]:.2f} s, "
                f"tolerance {times['tolerance'][-1]:.2f} s, store {times['store'][-1]:.3f} s")
    finally:
        shutil.rmtree(store_dir, ignore_errors=True)
        clear_process_caches()
        _restore("VSEEK_DECODE_THREADS", old_threads)
        _restore("VSEEK_FRAME_STORE", old_store)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "long_overview_s": round(med["ours"], 3),
        "long_overview_decord_s": round(med["decord"], 3),
        "long_speedup": round(med["decord"] / med["ours"], 2),
        "long_frames_decoded_per_frame": work["ours"]["decoded_per_frame"],
        "long_overview_tolerance_s": round(med["tolerance"], 3),
        "long_tolerance_speedup": round(med["decord"] / med["tolerance"], 2),
        "long_overview_store_s": round(med["store"], 4),
        "long_store_speedup": round(med["decord"] / med["store"], 1),
        "long": {
            "frames": int(len(indices)), "size": [int(size[0]), int(size[1])], "threads": decode_threads_used(threads),
            "tolerance_s": tolerance_s, "repeats": repeats, "timings_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "work": work, "exact": exact, "tolerance_offsets_s": tol_offsets, "video": vinfo,
            "decord_version": _decord_version(),
        },
    }


def decode_threads_used(threads: int | None) -> int:
    from vseek_env.video import decode_threads

    if threads:
        return int(threads)
    return decode_threads()


def _work(before: dict, after: dict, returned: int) -> dict:
    decoded = after["frames_decoded"] - before["frames_decoded"]
    return {"frames_returned": returned, "frames_decoded": decoded, "seeks": after["seeks"] - before["seeks"],
            "decoded_per_frame": round(decoded / max(returned, 1), 2)}


def _check(ours, ref: list[np.ndarray], indices: np.ndarray, stored) -> dict:
    """Our frames are the requested ones (burned-in index), as decord's are; the store's equal ours."""
    got = [read_burned_index(f) for f in ours.frames]
    theirs = [read_burned_index(f) for f in ref]
    diff = [float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) for a, b in zip(ours.frames, ref)]
    return {
        "ours_exact": got == indices.tolist() and ours.indices.tolist() == indices.tolist(),
        "decord_exact": theirs == indices.tolist(),
        "store_equal": all(np.array_equal(a, b) for a, b in zip(ours.frames, stored.frames)),
        "mean_abs_diff_vs_decord": round(max(diff) if diff else 0.0, 2),
    }


def _offsets(path: Path, indices: np.ndarray, tol) -> dict:
    """How far the tolerance path's frames lie from the requested times (seconds)."""
    from vseek_env.video import FrameCache, open_video

    with open_video(path, cache=FrameCache(0)) as v:
        wanted = v.frame_times[indices]
    gaps = np.abs(np.subtract.outer(tol.times, wanted)).min(axis=0)
    return {"max": round(float(gaps.max()), 3), "mean": round(float(gaps.mean()), 3), "frames": int(len(tol.times))}


def _decord_version() -> str:
    try:
        import decord

        return str(getattr(decord, "__version__", "?"))
    except ImportError:
        return "not installed"


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def format_long(result: dict) -> str:
    long = result["long"]
    w = long["work"]
    return "\n".join([
        f"long video {long['video'].get('duration', '?'):g} s, {long['frames']} overview frames at "
        f"{long['size'][1]}x{long['size'][0]}, {long['threads']} decode threads",
        f"  decord get_batch + resize   {result['long_overview_decord_s']:8.2f} s",
        f"  ours, exact                 {result['long_overview_s']:8.2f} s  {result['long_speedup']:5.2f}x  "
        f"({w['ours']['decoded_per_frame']} frames decoded per frame, {w['ours']['seeks']} seeks)",
        f"  ours, keyframe tolerance {long['tolerance_s']:g} s {result['long_overview_tolerance_s']:7.2f} s  "
        f"{result['long_tolerance_speedup']:5.2f}x  ({w['tolerance']['decoded_per_frame']} decoded per frame; "
        f"frames up to {long['tolerance_offsets_s']['max']} s from the asked time)",
        f"  frame store                 {result['long_overview_store_s']:8.3f} s  {result['long_store_speedup']:5.1f}x  "
        f"({w['store']['frames_decoded']} frames decoded)",
        f"  exact: {long['exact']}",
    ])


if __name__ == "__main__":  # pragma: no cover - a developer shortcut
    import json

    print(json.dumps(run_long_bench(seconds=int(sys.argv[1]) if len(sys.argv) > 1 else 1200), indent=2))
