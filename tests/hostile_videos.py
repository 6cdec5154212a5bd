"""Hostile video files, generated with PyAV, and a runner that measures a case in a capped child.

Each generator writes a small file that once cost the env gigabytes, minutes or a wrong answer
(issue 14): frames spanning 3e8 s, a frame of 8192x8192 pixels, MPEG-TS clips whose timestamps
restart, a file named like an FFmpeg URL, a playlist naming other files. The cases and their
expected outcomes are listed in ``tests/adversarial/videos.jsonl``; ``run_limited`` plays one in a
fresh interpreter with an address-space cap and a time limit and reports its peak RSS.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videos import frame_with_index, write_indexed_video

TESTS = Path(__file__).parent
REPO = TESTS.parent


def write_timed_video(path: Path, times: list[float], *, size: tuple[int, int] = (64, 96), first_index: int = 0,
                      codec: str = "libx264", rate: int = 25) -> Path:
    """Frames ``first_index...`` at presentation ``times`` (seconds) in a 1 ms time base; no B-frames."""
    height, width = size
    tb = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = tb
        stream.codec_context.time_base = tb
        if codec == "libx264":
            stream.options = {"bf": "0", "g": "1000000", "preset": "ultrafast"}
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_with_index(first_index + i, height, width), format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def sparse_video(path: Path, span_s: float) -> Path:
    """Three frames whose times span ``span_s`` seconds (mkv: a few hundred bytes)."""
    return write_timed_video(path, [0.0, span_s / 2, span_s])


def huge_video(path: Path, side: int = 8192) -> Path:
    """One ``side x side`` frame (H.264, ultrafast): its header alone says it needs gigabytes to decode."""
    tb = Fraction(1, 25)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "level": "6.2"}
        frame = av.VideoFrame(side, side, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts, frame.time_base = 0, tb
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def restarting_ts(path: Path, frames_per_clip: int = 20) -> Path:
    """Two MPEG-TS clips joined byte for byte, both starting at time 0; the second's frames show
    indices ``100...`` so a reader that serves its pixels under the first clip's times is caught."""
    a, b = path.with_name(path.stem + ".a.ts"), path.with_name(path.stem + ".b.ts")
    times = [i / 10 for i in range(frames_per_clip)]
    write_timed_video(a, times, first_index=0)
    write_timed_video(b, times, first_index=100)
    path.write_bytes(a.read_bytes() + b.read_bytes())
    a.unlink()
    b.unlink()
    return path


def url_named_copy(folder: Path) -> tuple[Path, Path]:
    """A real video stored under the literal name ``concat:inner.mp4|other.mp4``, next to the two
    files that name would join if FFmpeg parsed it as a URL. Returns ``(literal file, inner)``."""
    inner = folder / "inner.mp4"
    other = folder / "other.mp4"
    write_indexed_video(inner, n_frames=10, fps=10, size=(64, 96))
    write_timed_video(other, [i / 10 for i in range(10)], first_index=500)
    literal = folder / "concat:inner.mp4|other.mp4"
    write_timed_video(literal, [i / 10 for i in range(5)], first_index=300)
    return literal, inner


def playlist(folder: Path, kind: str) -> Path:
    """An HLS playlist or an ffconcat script naming a video beside it (a file read through another)."""
    target = folder / "target.mkv"
    write_indexed_video(target, n_frames=10, fps=10, size=(64, 96))
    if kind == "hls":
        path = folder / "list.m3u8"
        path.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1,\ntarget.mkv\n#EXT-X-ENDLIST\n")
    else:
        path = folder / "list.ffconcat"
        path.write_text("ffconcat version 1.0\nfile target.mkv\n")
    return path


GENERATORS = {
    "sparse_3e8": lambda folder: sparse_video(folder / "sparse.mkv", 3e8),
    "sparse_2e15": lambda folder: sparse_video(folder / "sparse15.mkv", 2e15),
    "huge_8192": lambda folder: huge_video(folder / "huge.mp4", 8192),
    "restarting_ts": lambda folder: restarting_ts(folder / "joined.ts"),
    "url_named": lambda folder: url_named_copy(folder)[0],
    "hls_playlist": lambda folder: playlist(folder, "hls"),
    "ffconcat_script": lambda folder: playlist(folder, "ffconcat"),
}


def _limit(address_space: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return apply


def run_limited(code: str, *, address_space_mb: int = 2048, timeout_s: float = 120.0, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh interpreter with ``RLIMIT_AS`` and a wall-clock limit.

    The child's last stdout line must be JSON; returns it with ``rc``, ``maxrss_mb`` (the child's
    peak resident set, from its own ``getrusage``) and ``stderr``. A child still running at the
    time limit is killed and reported with ``rc = "timeout"``.
    """
    wrapper = (
        "import json, resource, sys\n"
        f"sys.path[:0] = [{str(TESTS)!r}, {str(REPO)!r}]\n"
        "def _report(result):\n"
        "    result['maxrss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "    print(json.dumps(result))\n"
        f"{code}\n"
    )
    child_env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                 **(env or {})}
    try:
        proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout_s,
                              env=child_env, preexec_fn=_limit(address_space_mb << 20))
    except subprocess.TimeoutExpired as exc:
        return {"rc": "timeout", "stderr": str(exc.stderr or "")[-2000:]}
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {"stdout": proc.stdout[-2000:]}
    return {**result, "rc": proc.returncode, "stderr": proc.stderr[-3000:]}
