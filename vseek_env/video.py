"""Decoding facade: true timestamps, sampling by time, a pixel budget and a bounded frame cache.

Every tool reads video through :class:`Video`, never through a decoder directly, so the rules are
in one place:

* a frame's time is its presentation timestamp (PTS) read from the stream, never ``index / fps``;
* the frame shown at time ``t`` is the last frame whose PTS is ``<= t``;
* frames are resized at decode time to a Qwen-style pixel budget (both sides a multiple of
  ``factor``), so nothing decodes at full resolution only to be thrown away;
* decoded frames land in a process-wide, byte-bounded LRU :class:`FrameCache`, so the 8 rollouts of
  a GRPO group that re-read one video decode each frame once.

Example:
    >>> with open_video("clip.mp4") as video:                      # doctest: +SKIP
    ...     batch = video.read(video.window_indices(2.0, 6.0, fps=1.0, min_frames=4, max_frames=64))
    ...     batch.times                                           # true PTS of each frame
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MAX_PIXELS = 336 * 336
DEFAULT_MIN_PIXELS = 28 * 28
DEFAULT_FACTOR = 28


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file."""


@dataclass(frozen=True)
class FrameBatch:
    """Decoded frames with their true presentation times (seconds) and frame indices."""

    frames: np.ndarray  # (N, H, W, 3) uint8
    times: np.ndarray  # (N,) float64, strictly increasing
    indices: np.ndarray  # (N,) int64


def smart_resize(
    height: int,
    width: int,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    factor: int = DEFAULT_FACTOR,
) -> tuple[int, int]:
    """Output ``(h, w)`` keeping the aspect ratio, both multiples of ``factor``, area within budget.

    >>> smart_resize(720, 1280, max_pixels=112896)
    (252, 448)
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"smart_resize: frame size must be positive, got {height}x{width}")
    if max_pixels < factor * factor:
        raise ValueError(f"max_pixels={max_pixels} is below one {factor}x{factor} patch")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / scale / factor) * factor)
        w = max(factor, math.floor(width / scale / factor) * factor)
    elif h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * scale / factor) * factor
        w = math.ceil(width * scale / factor) * factor
    return h, w


class FrameCache:
    """A thread-safe LRU of decoded frames bounded in bytes, with hit/miss counters.

    >>> cache = FrameCache(max_bytes=1 << 20)
    >>> cache.get(("v", 0)) is None
    True
    """

    def __init__(self, max_bytes: int = 512 << 20) -> None:
        if max_bytes < 0:
            raise ValueError(f"FrameCache max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            frame = self._items.get(key)
            if frame is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return frame

    def put(self, key: tuple, frame: np.ndarray) -> None:
        if frame.nbytes > self.max_bytes:
            return
        frame.setflags(write=False)  # shared between episodes: nobody may draw on a cached frame
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = frame
            self._bytes += frame.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= evicted.nbytes

    @property
    def nbytes(self) -> int:
        return self._bytes

    def stats(self) -> dict:
        """Counters for ``info``: hits, misses, bytes held and the cap."""
        return {"hits": self.hits, "misses": self.misses, "bytes": self._bytes, "max_bytes": self.max_bytes}

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


_DEFAULT_CACHE: FrameCache | None = None


def default_frame_cache() -> FrameCache:
    """The process-wide cache (size from ``VSEEK_FRAME_CACHE_MB``, default 512 MiB)."""
    global _DEFAULT_CACHE
    if _DEFAULT_CACHE is None:
        _DEFAULT_CACHE = FrameCache(int(float(os.environ.get("VSEEK_FRAME_CACHE_MB", "512")) * (1 << 20)))
    return _DEFAULT_CACHE


class Video:
    """An opened video file: metadata, PTS of every frame, cached budgeted decoding.

    Thread-safe: decoders are guarded by a lock. Close it (or use ``with``) to release handles.
    """

    def __init__(self, path: str | Path, *, cache: FrameCache | None = None) -> None:
        self.path = Path(path)
        self.cache = cache if cache is not None else default_frame_cache()
        self._lock = threading.Lock()
        self._readers: dict[tuple[int, int], object] = {}
        if not self.path.is_file():
            raise VideoError(f"video file not found: {self.path}")
        try:
            stat = self.path.stat()
            self._key = (str(self.path.resolve()), stat.st_mtime_ns, stat.st_size)
            reader = self._open_reader(-1, -1)
            n = len(reader)
            if n == 0:
                raise VideoError(f"video has no decodable frames: {self.path}")
            stamps = np.asarray(reader.get_frame_timestamp(list(range(n))), dtype=np.float64)
            first = reader[0].shape
        except VideoError:
            raise
        except Exception as exc:  # decoder errors come in many types
            raise VideoError(f"cannot open video {self.path}: {exc}") from exc
        self.height, self.width = int(first[0]), int(first[1])
        # decord reports float32 seconds; round so 0.9 s reads as 0.9, not 0.89999998
        self.frame_times = np.round(stamps[:, 0], 6)
        ends = np.round(stamps[:, 1], 6)
        self.duration = float(max(ends[-1], self.frame_times[-1]))
        self.num_frames = n
        self.fps = float(n / self.duration) if self.duration > 0 else float(reader.get_avg_fps())
        self._readers[(-1, -1)] = reader

    def _open_reader(self, height: int, width: int):
        import decord  # deferred: keeps `import vseek_env` light

        return decord.VideoReader(str(self.path), ctx=decord.cpu(0), width=width, height=height, num_threads=1)

    # -- time <-> index -------------------------------------------------------------------------
    def index_at(self, t: float) -> int:
        """Index of the frame displayed at time ``t`` (clamped to the video)."""
        i = int(np.searchsorted(self.frame_times, t + 1e-9, side="right")) - 1
        return min(max(i, 0), self.num_frames - 1)

    def window_indices(self, start: float, end: float, *, fps: float, min_frames: int, max_frames: int) -> np.ndarray:
        """Frames sampled from ``[start, end]`` (clamped to the video) -- the ``crop_video`` rule.

        ``n = clamp(ceil((end - start) * fps), min_frames, max_frames)`` frames, evenly spread over
        the frames whose PTS lies in the window, and never more than there are. Indices are unique
        and increasing. When no frame starts inside the window, the frame displayed at ``start``.
        """
        start, end = max(0.0, float(start)), min(self.duration, float(end))
        inside = np.nonzero((self.frame_times >= start - 1e-9) & (self.frame_times <= end + 1e-9))[0]
        if inside.size == 0:
            return np.array([self.index_at(start)], dtype=np.int64)
        n = max(min_frames, min(max_frames, math.ceil((end - start) * fps - 1e-9)))
        n = min(n, inside.size)
        picks = np.unique(np.round(np.linspace(0, inside.size - 1, n)).astype(np.int64))
        return inside[picks]

    def uniform_indices(self, n: int) -> np.ndarray:
        """``n`` frames spread over the whole video (segment centres), unique and increasing."""
        n = max(1, min(int(n), self.num_frames))
        centres = (np.arange(n) + 0.5) * self.duration / n
        return np.unique([self.index_at(t) for t in centres]).astype(np.int64)

    # -- decoding -------------------------------------------------------------------------------
    def output_size(self, max_pixels: int | None = DEFAULT_MAX_PIXELS, factor: int = DEFAULT_FACTOR) -> tuple[int, int]:
        if max_pixels is None:
            return self.height, self.width
        return smart_resize(self.height, self.width, max_pixels=max_pixels, factor=factor)

    def read(
        self, indices, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, factor: int = DEFAULT_FACTOR
    ) -> FrameBatch:
        """Decode frames ``indices`` at the budgeted size, through the cache."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_frames):
            raise IndexError(f"frame index out of range for {self.path} ({self.num_frames} frames)")
        size = self.output_size(max_pixels, factor)
        frames: list[np.ndarray | None] = []
        missing: list[int] = []
        for pos, idx in enumerate(indices):
            frame = self.cache.get((*self._key, int(idx), size))
            frames.append(frame)
            if frame is None:
                missing.append(pos)
        if missing:
            decoded = self._decode([int(indices[p]) for p in missing], size)
            for pos, frame in zip(missing, decoded):
                self.cache.put((*self._key, int(indices[pos]), size), frame)
                frames[pos] = frame
        h, w = size
        stacked = np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8)
        return FrameBatch(frames=stacked, times=self.frame_times[indices].copy(), indices=indices)

    def _decode(self, indices: list[int], size: tuple[int, int]) -> list[np.ndarray]:
        key = size if size != (self.height, self.width) else (-1, -1)
        with self._lock:
            if self._readers is None:
                raise VideoError(f"video {self.path} is closed")
            reader = self._readers.get(key)
            try:
                if reader is None:
                    reader = self._readers[key] = self._open_reader(*key)
                batch = reader.get_batch(indices).asnumpy()
            except Exception as exc:
                raise VideoError(f"cannot decode frames {indices[:4]}... of {self.path}: {exc}") from exc
        return [np.ascontiguousarray(frame) for frame in batch]

    def close(self) -> None:
        with self._lock:
            self._readers = None

    def __enter__(self) -> "Video":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_video(path: str | Path, *, cache: FrameCache | None = None) -> Video:
    """Open ``path`` for budgeted, cached, timestamp-exact reading. Raises :class:`VideoError`."""
    return Video(path, cache=cache)
