"""Test videos whose frames carry their own index, so decoded frames can be checked exactly.

Each frame shows its index as 12 binary blocks across the top band (white = 1), robust to H.264
compression, over a gradient that also changes with the index.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 12


def frame_with_index(index: int, height: int, width: int) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 2] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame[..., 1] = (index * 7) % 256
    band = height // 4
    block = width // BITS
    for bit in range(BITS):
        value = 255 if (index >> bit) & 1 else 0
        frame[:band, bit * block : (bit + 1) * block] = value
    return frame


def read_index(frame: np.ndarray) -> int:
    """Inverse of :func:`frame_with_index`, on a frame of any size (e.g. after resizing)."""
    height, width = frame.shape[:2]
    band = height // 4
    block = width / BITS
    index = 0
    for bit in range(BITS):
        x0, x1 = int(bit * block + block * 0.25), int(bit * block + block * 0.75)
        patch = frame[band // 4 : band * 3 // 4, x0:x1].mean()
        if patch > 127:
            index |= 1 << bit
    return index


def write_indexed_video(
    path: Path,
    *,
    n_frames: int = 60,
    fps: int = 10,
    size: tuple[int, int] = (120, 192),
    times: list[float] | None = None,
    codec: str = "libx264",
    gop: int = 20,
) -> list[float]:
    """Write frames 0..n-1; with ``times`` (seconds, increasing) the video is variable-frame-rate.

    Returns the presentation time of every frame.
    """
    height, width = size
    time_base = Fraction(1, 1000)
    variable = times is not None  # B-frames need evenly spaced timestamps in libx264's rate control
    if times is None:
        times = [i / fps for i in range(n_frames)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if codec == "libx264":
            stream.options = {"g": str(gop), "crf": "18", "bf": "0" if variable else "2"}
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_with_index(i, height, width), format="rgb24")
            frame.pts = int(round(t / time_base))
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return [round(t * 1000) / 1000 for t in times]


def remux(src: Path, dst: Path, *, options: dict | None = None) -> Path:
    """Copy the video stream of ``src`` into ``dst`` without re-encoding (container from the suffix).

    ``options={"movflags": "faststart"}`` puts an mp4's index first, so a truncated copy still opens
    and over-reports its frames (the case that hangs decord, dmlc/decord#373).
    """
    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options or {}) as out:
        istream = inp.streams.video[0]
        ostream = out.add_stream_from_template(istream)
        for packet in inp.demux(istream):
            if packet.dts is None:
                continue
            packet.stream = ostream
            out.mux(packet)
    return dst


def truncated_copy(src: Path, dst: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``src``'s bytes, as a download cut short would leave it."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return dst


def corrupted_copy(src: Path, dst: Path, *, start: float = 0.3, length: int = 4096, seed: int = 0) -> Path:
    """``src`` with ``length`` random bytes written over it at ``start`` (a fraction of its size)."""
    data = bytearray(Path(src).read_bytes())
    at = int(len(data) * start)
    data[at : at + length] = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    Path(dst).write_bytes(bytes(data))
    return dst
