"""``vseek bench``: video I/O against the paper's tool path, measured in one run on this machine.

Generates its own test video (120 s, 1280x720, 30 fps, H.264, 2 s keyframe interval; ``--quick``:
20 s, 320x180) and times a 64 s window at 1 fps (64 frames):

(a) reference = the paper's tool path: a new decord reader per call, full-resolution decode, resize
    to 112,896 pixels, PNG encode + base64 + decode;
(b) our ``crop_video`` cold (first touch of the video in the process: empty caches);
(c) warm: a second rollout asking for an overlapping window (shifted by 2 s) -- and the same window;
(d) from the on-disk frame store (empty in-memory caches);
(e) env-step overhead with decoding excluded (a warm ``crop_video`` step minus its ``Video.read``);
(f) peak RSS growth over 1,000 ``open_video`` + ``crop_video`` calls on random windows with a
    bounded cache, and open file descriptors before/after.

Timings interleave (a), (b) and (d) per repeat so machine noise hits all alike; ratios are of
medians. Prints a table, writes JSON (``--out``).

``--long`` adds the long-video measurements of :mod:`vseek_env.commands.bench_long` (``long_*``
keys: the paper protocol's 256-frame overview of a 20-minute video against decord).

Example:
    vseek bench --out bench.json          # about 3 minutes on 2 cores (first run adds ~30 s to encode)
    vseek bench --quick --out quick.json  # seconds; for CI smoke tests
    vseek bench --long --long-only --out long.json   # 20-minute video (encoded once, ~4 min)
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REF_MAX_PIXELS = 112_896  # 336 * 336, the paper's crop_video budget


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark video I/O against the paper's tool path (cold, warm, frame store, step overhead, RSS)",
        description=(__doc__ or "").split("Example:")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    p.add_argument("--quick", action="store_true", help="small video, few repeats (a smoke test, not a measurement)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 7, quick 3)")
    p.add_argument("--calls", type=int, default=None, help="calls for the RSS measurement (default 1000, quick 100)")
    p.add_argument("--cache-mb", type=float, default=32.0,
                   help="frame-cache cap during the RSS run; below the video's 1 fps working set so it evicts "
                        "(default: %(default)s)")
    p.add_argument("--video", default=None, help="use this video instead of generating one")
    p.add_argument("--step-only", action="store_true",
                   help="only (e): the env-step overhead of a warm crop_video step (step_overhead_ms)")
    p.add_argument("--long", action="store_true",
                   help="also time the paper protocol's 256-frame overview of a long video against decord "
                        "(long_* keys; see vseek_env/commands/bench_long.py)")
    p.add_argument("--long-only", action="store_true", help="with --long: skip the short-video measurements")
    p.add_argument("--long-seconds", type=int, default=1200,
                   help="length of the generated long video (default: %(default)s = 20 min; tests use less)")
    p.add_argument("--long-video", default=None, help="use this long video instead of generating one")
    p.add_argument("--long-repeats", type=int, default=1, help="timed repeats of the long measurements (default 1)")
    p.add_argument("--keyframe-tolerance", type=float, default=5.0,
                   help="keyframe_tolerance_s of the long run's tolerance figure (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="decoders per request (VSEEK_DECODE_THREADS; default: the usable cores)")
    p.set_defaults(func=run)
    from vseek_env.commands import bench_segmenter

    bench_segmenter.register(p.add_subparsers(title="other benchmarks", metavar="{segmenter}", dest="bench_target"))


# -- the test video -------------------------------------------------------------------------------------
def encode_h264(path: Path, frames, *, size: tuple[int, int], fps: int, gop: int) -> Path:
    """Encode RGB ``frames`` (an iterable) with libx264 veryfast (B-frames on) and a fixed keyframe
    interval of ``gop`` frames; written to a temporary file renamed into place."""
    import av

    h, w = size
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "veryfast", "crf": "23"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def make_bench_video(path: Path, *, seconds: int, size: tuple[int, int], fps: int = 30, gop_s: float = 2.0) -> Path:
    """H.264 (libx264 veryfast: B-frames on), fixed keyframe interval, moving content, burned frame bits."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = xx * 255 // w
    base[..., 2] = yy * 255 // h
    box = max(8, h // 5)

    def frames():
        for i in range(seconds * fps):
            frame = np.roll(base, i * 4, axis=1)
            x, y = (i * 7) % (w - box), (i * 3) % (h - box)
            frame[y : y + box, x : x + box] = (255, 255, 0)
            band = frame[h - h // 18 :]
            band[:] = 0
            for bit in range(12):
                if (i >> bit) & 1:
                    band[:, bit * (w // 12) : (bit + 1) * (w // 12) - 2] = 255
            yield frame

    return encode_h264(path, frames(), size=size, fps=fps, gop=int(round(gop_s * fps)))


def _bench_video(quick: bool) -> tuple[Path, dict]:
    from vseek_env.data.datasets import cache_dir

    spec = {"seconds": 20, "size": (180, 320)} if quick else {"seconds": 120, "size": (720, 1280)}
    name = f"bench_{spec['seconds']}s_{spec['size'][1]}x{spec['size'][0]}_30fps_g2s.mp4"
    path = cache_dir() / "bench" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"encoding the benchmark video {path} ...", file=sys.stderr)
        make_bench_video(path, **spec)
    return path, {"seconds": spec["seconds"], "width": spec["size"][1], "height": spec["size"][0], "fps": 30,
                  "keyframe_interval_s": 2, "codec": "h264", "path": str(path)}


# -- (a) the paper's tool path ----------------------------------------------------------------------------
def qwen_window_indices(video_fps: float, num_frames: int, start: float, end: float, nframes: int) -> list[int]:
    """qwen-vl-utils' crop sampling: ``linspace(ceil(start*fps), floor(end*fps), n).round()``."""
    first = int(np.ceil(start * video_fps))
    last = min(int(np.floor(end * video_fps)), num_frames - 1)
    return np.linspace(first, last, nframes).round().astype(int).tolist()


def reference_backend() -> str:
    try:
        import decord

        return f"decord {getattr(decord, '__version__', '?')}"
    except ImportError:
        import av

        return f"pyav {av.__version__} (decord not installed)"


def reference_crop(path: Path, start: float, end: float, nframes: int) -> list[np.ndarray]:
    """The paper's path: new reader, full-resolution frames, resize, PNG + base64 round trip."""
    from PIL import Image

    from vseek_env.video import smart_resize

    try:
        import decord

        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
        frames = reader.get_batch(qwen_window_indices(reader.get_avg_fps(), len(reader), start, end, nframes)).asnumpy()
        del reader
    except ImportError:
        frames = _reference_pyav(path, start, end, nframes)
    out = []
    for frame in frames:
        h, w = smart_resize(frame.shape[0], frame.shape[1], max_pixels=REF_MAX_PIXELS)
        image = Image.fromarray(frame).resize((w, h), Image.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        payload = base64.b64encode(buf.getvalue())  # what goes over the wire as a data: URL
        out.append(np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB")))
    return out


def _reference_pyav(path: Path, start: float, end: float, nframes: int) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        wanted = set(qwen_window_indices(fps, stream.frames or 10**9, start, end, nframes))
        container.seek(int(start / stream.time_base), stream=stream, backward=True)
        out = []
        for frame in container.decode(stream):
            i = int(round(float(frame.pts * stream.time_base) * fps))
            if i in wanted:
                out.append(frame.to_ndarray(format="rgb24"))
            if i >= max(wanted):
                break
    return out


# -- helpers ------------------------------------------------------------------------------------------------
def _summary(seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    return {"median_ms": round(statistics.median(ms), 3), "iqr_ms": round(q[2] - q[0], 3),
            "min_ms": round(ms[0], 3), "max_ms": round(ms[-1], 3), "n": len(ms)}


@contextmanager
def _env_var(name: str, value: str | None):
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


# -- the run ----------------------------------------------------------------------------------------------
def run_bench(*, quick: bool = False, repeats: int | None = None, calls: int | None = None,
              cache_mb: float = 32.0, video: str | None = None, log=print) -> dict:
    """Run every measurement; return the result dict (see the module docstring)."""
    from vseek_env.config import EnvConfig
    from vseek_env.frame_store import FrameStore
    from vseek_env.tools import get_tool
    from vseek_env.tools.base import ToolContext
    from vseek_env.video import FrameCache, clear_process_caches, open_video

    repeats = repeats or (3 if quick else 7)
    calls = calls or (100 if quick else 1000)
    if video:
        path, vinfo = Path(video), {"path": str(video)}
    else:
        path, vinfo = _bench_video(quick)
    cfg = EnvConfig(max_pixels=REF_MAX_PIXELS)
    crop = get_tool("crop_video")
    window = _bench_window(path)
    with open_video(path, cache=FrameCache(0)) as v:
        duration = v.duration
    start, length = window[0], window[1] - window[0]
    shifted = (start + 2.0, min(duration, start + length + 2.0))
    nframes = int(min(cfg.crop_max_frames, max(cfg.crop_min_frames, np.ceil(length * cfg.crop_fps))))
    log(f"video {path.name}: {duration:g} s; window {window[0]:g}-{window[1]:g} s at {cfg.crop_fps:g} fps "
        f"({nframes} frames); {repeats} repeats; reference = {reference_backend()}")

    def tool_call(cache: FrameCache, win: tuple[float, float]):
        v = open_video(path, cache=cache)  # every rollout (env.reset) opens the video afresh
        ctx = ToolContext(video=v, sample=None, config=cfg, video_name="")
        result = crop.run(crop.validate({"start_time": win[0], "end_time": win[1]}, ctx), ctx)
        v.close()
        return result

    store_dir = Path(tempfile.mkdtemp(prefix="vseek_bench_store_"))
    try:
        with _env_var("VSEEK_FRAME_STORE", None):
            # the store used for (d); built once, outside the timings
            store = FrameStore(store_dir)
            with open_video(path, cache=FrameCache(0)) as v:
                grid = v.window_indices(0, v.duration, fps=cfg.crop_fps, min_frames=1, max_frames=10**9)
                store.add(v, grid, v.output_size(cfg.max_pixels, cfg.patch_factor))
            times: dict[str, list[float]] = {k: [] for k in ("reference", "cold", "warm_overlap", "warm_same", "store")}
            os.environ.pop("VSEEK_FRAME_STORE", None)
            reference_crop(path, *window, nframes)  # page cache and imports warm for everyone
            for r in range(repeats):
                t = time.perf_counter()
                ref = reference_crop(path, *window, nframes)
                times["reference"].append(time.perf_counter() - t)

                clear_process_caches()
                cache = FrameCache(int(1 << 30))
                t = time.perf_counter()
                cold = tool_call(cache, window)
                times["cold"].append(time.perf_counter() - t)
                t = time.perf_counter()
                tool_call(cache, shifted)
                times["warm_overlap"].append(time.perf_counter() - t)
                t = time.perf_counter()
                tool_call(cache, window)
                times["warm_same"].append(time.perf_counter() - t)

                os.environ["VSEEK_FRAME_STORE"] = str(store_dir)
                clear_process_caches()
                store_cache = FrameCache(int(1 << 30))
                t = time.perf_counter()
                stored = tool_call(store_cache, window)
                times["store"].append(time.perf_counter() - t)
                os.environ.pop("VSEEK_FRAME_STORE", None)
                assert store_cache.decoded == 0, "frame-store read decoded frames"
                if r == 0:
                    assert np.array_equal(cold.frames, stored.frames), "frame store differs from decoding"
                    assert len(ref) == len(cold.times), (len(ref), len(cold.times))
                log(f"  repeat {r + 1}/{repeats}: reference {times['reference'][-1] * 1e3:.0f} ms, "
                    f"cold {times['cold'][-1] * 1e3:.0f} ms, warm {times['warm_overlap'][-1] * 1e3:.1f} ms, "
                    f"store {times['store'][-1] * 1e3:.1f} ms")
            clear_process_caches()
            step = _step_overhead(path, window, repeats=max(20, repeats * 5))
            rss = _rss_in_child(path, calls=calls, cache_mb=cache_mb)
    finally:
        import shutil

        shutil.rmtree(store_dir, ignore_errors=True)
        clear_process_caches()

    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "cold_speedup": round(med["reference"] / med["cold"], 2),
        "warm_speedup": round(med["reference"] / med["warm_overlap"], 1),
        "warm_same_window_speedup": round(med["reference"] / med["warm_same"], 1),
        "store_speedup": round(med["reference"] / med["store"], 1),
        "step_overhead_ms": round(step["overhead"]["median_ms"], 3),
        "rss_growth_mb": rss["rss_growth_mb"],
        "cache_cap_mb": float(cache_mb),
        "fd_growth": rss["fd_growth"],
        "timings": {k: _summary(v) for k, v in times.items()},
        "step": step,
        "rss": rss,
        "window": {"start": window[0], "end": window[1], "frames": nframes, "shifted": list(shifted)},
        "video": vinfo,
        "reference_backend": reference_backend(),
        "decoder": "pyav " + __import__("av").__version__,
        "quick": quick,
        "machine": _machine(),
    }
    return result


def run_step_bench(*, quick: bool = False, repeats: int | None = None, video: str | None = None) -> dict:
    """(e) alone, on the same video and window as :func:`run_bench`: ``step_overhead_ms`` and its timings."""
    path = Path(video) if video else _bench_video(quick)[0]
    window = _bench_window(path)
    step = _step_overhead(path, window, repeats=max(20, (repeats or (3 if quick else 7)) * 5))
    return {"step_overhead_ms": round(step["overhead"]["median_ms"], 3), "step": step,
            "window": {"start": window[0], "end": window[1]}, "quick": quick, "machine": _machine()}


def _bench_window(path: Path) -> tuple[float, float]:
    """The timed window: 64 s (less on short videos) starting at 10 s."""
    from vseek_env.video import FrameCache, open_video

    with open_video(path, cache=FrameCache(0)) as v:
        duration = v.duration
    length = min(64.0, max(4.0, duration - 12.0))
    start = min(10.0, max(0.0, duration - length - 2.0))
    return start, start + length


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "platform": platform.platform()}


def _step_overhead(path: Path, window: tuple[float, float], *, repeats: int) -> dict:
    """A warm ``crop_video`` step through the env, minus the time spent in ``Video.read``."""
    from vseek_env.data import Dataset, Sample, VisualPromptSpec
    from vseek_env.env import VideoSeekerEnv
    from vseek_env.video import FrameCache, Video

    sample = Sample(id="bench", video=path.name, question="What happens?", options=("a", "b"), answer="A",
                    prompt=VisualPromptSpec(time=1.0, style="rectangle", box=(10.0, 10.0, 60.0, 60.0)))
    env = VideoSeekerEnv(dataset=Dataset("bench", [sample], root=path.parent), frame_cache=FrameCache(1 << 30),
                         max_pixels=REF_MAX_PIXELS, max_turns=10**6, max_frames_per_episode=10**9)
    action = ('<think>look closer</think><tool_call>{"name": "crop_video", "arguments": '
              f'{{"start_time": {window[0]}, "end_time": {window[1]}}}}}</tool_call>')
    spent = [0.0]
    real_read = Video.read

    def timed_read(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return real_read(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t

    total, overhead = [], []
    Video.read = timed_read
    try:
        env.reset(seed=0)
        env.step(action)  # warms the cache
        for _ in range(repeats):
            spent[0] = 0.0
            t = time.perf_counter()
            env.step(action)
            elapsed = time.perf_counter() - t
            total.append(elapsed)
            overhead.append(elapsed - spent[0])
    finally:
        Video.read = real_read
        env.close()
    return {"total": _summary(total), "overhead": _summary(overhead),
            "note": "one warm crop_video step (parse, validate, cache reads, observation with letterboxed "
                    "frames, messages, info); 'overhead' excludes Video.read"}


def _rss_in_child(path: Path, *, calls: int, cache_mb: float) -> dict:
    """(f) in a fresh interpreter, so memory freed by the other phases cannot hide growth."""
    import subprocess

    code = ("import json, sys; from pathlib import Path; from vseek_env.commands.bench import _rss_run; "
            f"print(json.dumps(_rss_run(Path({str(path)!r}), calls={int(calls)}, cache_mb={float(cache_mb)!r})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"RSS measurement failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rss_run(path: Path, *, calls: int, cache_mb: float) -> dict:
    """Peak RSS over ``calls`` open+crop calls on random windows, the cache capped at ``cache_mb``."""
    from vseek_env.config import EnvConfig
    from vseek_env.tools import get_tool
    from vseek_env.tools.base import ToolContext
    from vseek_env.video import FrameCache, open_video

    cfg = EnvConfig(max_pixels=REF_MAX_PIXELS)
    crop = get_tool("crop_video")

    def tool_call(cache: FrameCache, win: tuple[float, float]):
        with open_video(path, cache=cache) as v:
            ctx = ToolContext(video=v, sample=None, config=cfg, video_name="")
            return crop.run(crop.validate({"start_time": win[0], "end_time": win[1]}, ctx), ctx)

    cache = FrameCache(int(cache_mb * (1 << 20)))
    with open_video(path, cache=FrameCache(0)) as v:
        duration = v.duration
    tool_call(FrameCache(0), (0.0, min(duration, 4.0)))  # imports and decoder libraries loaded
    rng = np.random.default_rng(0)
    fds0, rss0 = _open_fds(), _rss_bytes()
    peak = rss0
    t0 = time.perf_counter()
    for _ in range(calls):
        length = float(rng.choice([4.0, 8.0, 16.0]))
        start = float(rng.integers(0, max(1, int(duration - length))))
        tool_call(cache, (start, min(duration, start + length)))
        peak = max(peak, _rss_bytes())
    __import__("gc").collect()
    return {"calls": calls, "rss_start_mb": round(rss0 / 2**20, 1), "rss_peak_mb": round(peak / 2**20, 1),
            "rss_growth_mb": round((peak - rss0) / 2**20, 1), "fd_growth": _open_fds() - fds0,
            "cache": cache.stats(), "seconds": round(time.perf_counter() - t0, 1)}


def format_table(result: dict) -> str:
    t = result["timings"]
    ref = t["reference"]["median_ms"]
    rows = [
        ("(a) reference: paper's tool path", t["reference"], 1.0),
        ("(b) crop_video cold", t["cold"], result["cold_speedup"]),
        ("(c) warm, overlapping window", t["warm_overlap"], result["warm_speedup"]),
        ("    warm, same window", t["warm_same"], result["warm_same_window_speedup"]),
        ("(d) frame store", t["store"], result["store_speedup"]),
    ]
    lines = [f"{'measurement':36s} {'median ms':>10s} {'IQR ms':>9s} {'min':>9s} {'max':>9s} {'speedup':>8s}"]
    for name, s, speedup in rows:
        lines.append(f"{name:36s} {s['median_ms']:10.1f} {s['iqr_ms']:9.1f} {s['min_ms']:9.1f} {s['max_ms']:9.1f} "
                     f"{speedup:7.1f}x")
    step = result["step"]
    lines.append(f"(e) env step overhead (excl. decode): {step['overhead']['median_ms']:.3f} ms median "
                 f"(IQR {step['overhead']['iqr_ms']:.3f}); whole warm step {step['total']['median_ms']:.2f} ms")
    rss = result["rss"]
    lines.append(f"(f) RSS over {rss['calls']} calls: +{rss['rss_growth_mb']} MB peak (cache cap "
                 f"{result['cache_cap_mb']:g} MB), fd growth {rss['fd_growth']}, {rss['seconds']} s")
    lines.append(f"reference {ref:.0f} ms = {result['reference_backend']}; ours = {result['decoder']}; "
                 f"machine {result['machine']['cpus']} CPUs, load {result['machine']['load_avg']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        import psutil  # noqa: F401
    except ImportError:
        print("vseek bench needs psutil: pip install psutil", file=sys.stderr)
        return 2
    if args.video and not Path(args.video).is_file():
        print(f"vseek bench: --video {args.video} does not exist", file=sys.stderr)
        return 2
    if args.long_video and not Path(args.long_video).is_file():
        print(f"vseek bench: --long-video {args.long_video} does not exist", file=sys.stderr)
        return 2
    if args.long_seconds < 30:
        print(f"vseek bench: --long-seconds must be at least 30, got {args.long_seconds}", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"vseek bench: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    result: dict = {}
    with _env_var("VSEEK_DECODE_THREADS", str(args.threads) if args.threads else os.environ.get("VSEEK_DECODE_THREADS")):
        if args.step_only:
            result = run_step_bench(quick=args.quick, repeats=args.repeats, video=args.video)
            print(f"step_overhead_ms {result['step_overhead_ms']:.3f} (total {result['step']['total']['median_ms']:.3f} ms)")
        elif not (args.long and args.long_only):
            result = run_bench(quick=args.quick, repeats=args.repeats, calls=args.calls, cache_mb=args.cache_mb,
                               video=args.video, log=log)
            print(format_table(result))
        if args.long:
            from vseek_env.commands.bench_long import format_long, run_long_bench

            long = run_long_bench(seconds=args.long_seconds, video=args.long_video, repeats=args.long_repeats,
                                  tolerance_s=args.keyframe_tolerance, threads=args.threads, log=log)
            result.update(long)
            result.setdefault("machine", _machine())
            print(format_long(long))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")
    return 0
