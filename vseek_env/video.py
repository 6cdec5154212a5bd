"""Decoding facade: true timestamps, sampling by time, a pixel budget and a bounded frame cache.

Every tool reads video through :class:`Video`, never through a decoder directly, so the rules are
in one place:

* a frame's time is its presentation timestamp (PTS) read from the stream, never ``index / fps``;
  times are relative to the first frame, which is shown at 0.0;
* the frame shown at time ``t`` is the last frame whose PTS is ``<= t``;
* frames are resized at decode time to a Qwen-style pixel budget (both sides a multiple of
  ``factor``); only the requested frames are converted to RGB, and frames nobody references
  (non-reference B-frames between two requested frames) are not decoded at all;
* decoded frames land in a process-wide, byte-bounded LRU :class:`FrameCache`, and the stream
  metadata in a small process-wide table, so the 8 rollouts of a GRPO group that re-read one
  video probe it once and decode each frame once; concurrent readers wait only for the frames
  another reader is decoding, and for at most ``VSEEK_DECODE_TIMEOUT`` seconds (a decode stuck
  in C code never blocks other reads);
* when an on-disk frame store (:mod:`vseek_env.frame_store`, ``vseek cache build``) holds a video,
  its metadata and frames are read from there, decoding only what the store lacks.

Backend: PyAV (FFmpeg). A container is opened per decode call and closed before it returns, so a
``Video`` holds no decoder between calls: no handles leak, threads never share a decoder, and a
``Video`` survives ``fork``. Every decode call runs under a deadline (``VSEEK_DECODE_TIMEOUT``
seconds, default 60), so a broken file gives a :class:`VideoError` naming it instead of a hang.
(decord2 and decord 0.6.0 were measured too: both exact on our test videos, but about 2x slower on
this access pattern, with no way to bound a hung decode; see ARCHITECTURE.md "Decoder choice".)

Example:
    >>> with open_video("clip.mp4") as video:                      # doctest: +SKIP
    ...     batch = video.read(video.window_indices(2.0, 6.0, fps=1.0, min_frames=4, max_frames=64))
    ...     batch.times                                           # true PTS of each frame
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from vseek_env.local_files import NotARegularFile, open_regular_file

DEFAULT_MAX_PIXELS = 336 * 336
DEFAULT_MIN_PIXELS = 28 * 28
DEFAULT_FACTOR = 28
# swscale filter used for the budgeted resize; bicubic matches Qwen's processor
RESIZE_INTERPOLATION = "BICUBIC"


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file."""


@dataclass(frozen=True)
class FrameBatch:
    """Decoded frames with their true presentation times (seconds) and frame indices.

    ``frames`` is one ``(N, H, W, 3)`` uint8 array, or with ``Video.read(..., stack=False)`` a tuple
    of ``N`` read-only ``(H, W, 3)`` arrays shared with the frame cache (no copy).
    """

    frames: np.ndarray | tuple[np.ndarray, ...]
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
        if h * w > max_pixels:  # a thin frame: one side clamped to a patch, shrink the other to fit
            if h == factor:
                w = max(factor, max_pixels // (h * factor) * factor)
            else:
                h = max(factor, max_pixels // (w * factor) * factor)
    elif h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * scale / factor) * factor
        w = math.ceil(width * scale / factor) * factor
    return h, w


# -- frame cache -----------------------------------------------------------------------------------
class FrameCache:
    """A thread-safe LRU of decoded frames bounded in bytes, with hit/miss counters.

    Every key starts with the video key ``(resolved path, mtime_ns, size)``, so an edited file
    never serves stale entries. Three kinds of entries share the cache (and its byte cap):

    * ``(*video key, index, (h, w))``: frame ``index`` decoded at size ``(h, w)`` (:meth:`Video.read`);
    * ``(*video key, index, ("letterbox", h, w, out_h, out_w))``: the env's observation thumbnail of
      that frame, letterboxed to ``(out_h, out_w)``;
    * ``(*video key, "prompt", spec sha1, *image file key, max_pixels, factor)``: the env's rendered
      visual-prompt frame of a sample.

    Cached arrays are read-only.

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
        self.decoded = 0  # frames produced by a decoder (not the store) on behalf of this cache
        self.store_reads = 0  # frames read from the on-disk frame store
        self.evictions = 0

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            frame = self._items.get(key)
            if frame is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return frame

    def peek(self, key: tuple) -> np.ndarray | None:
        """Like :meth:`get` without counting a hit or miss (a re-check, not a request)."""
        with self._lock:
            frame = self._items.get(key)
            if frame is not None:
                self._items.move_to_end(key)
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
                self.evictions += 1

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def stats(self) -> dict:
        """Counters for ``info``: hits, misses, frames decoded / read from the store, bytes held, the cap."""
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "decoded": self.decoded,
                "store_reads": self.store_reads,
                "evictions": self.evictions,
                "frames": len(self._items),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
            }

    def clear(self) -> None:
        """Drop every frame and reset the counters."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self.hits = self.misses = self.decoded = self.store_reads = self.evictions = 0


_DEFAULT_CACHE: FrameCache | None = None
_DEFAULT_CACHE_LOCK = threading.Lock()


def default_frame_cache() -> FrameCache:
    """The process-wide cache (size from ``VSEEK_FRAME_CACHE_MB``, default 512 MiB)."""
    global _DEFAULT_CACHE
    with _DEFAULT_CACHE_LOCK:
        if _DEFAULT_CACHE is None:
            mb = os.environ.get("VSEEK_FRAME_CACHE_MB", "512")
            try:
                size = int(float(mb) * (1 << 20))
            except ValueError:
                raise ValueError(f"VSEEK_FRAME_CACHE_MB must be a number of MiB, got {mb!r}") from None
            _DEFAULT_CACHE = FrameCache(size)
        return _DEFAULT_CACHE


# -- stream metadata ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoMeta:
    """What a probe learns about a video stream; enough to map times to frames and seek exactly.

    ``pts`` are the frames' presentation timestamps in ``time_base`` units, sorted (presentation
    order); ``key_pts`` those of the keyframes. ``frame_times`` = ``(pts - pts[0]) * time_base``.
    """

    key: tuple  # (resolved path, mtime_ns, size)
    width: int
    height: int
    duration: float
    pts: np.ndarray
    key_pts: np.ndarray
    time_base: Fraction
    frame_times: np.ndarray = field(repr=False)
    codec: str = ""
    pts_reliable: bool = True  # False when packets carry no PTS (some AVI): decode order is used

    def to_dict(self) -> dict:
        return {
            "width": self.width, "height": self.height, "duration": self.duration,
            "pts": self.pts.tolist(), "key_pts": self.key_pts.tolist(),
            "time_base": [self.time_base.numerator, self.time_base.denominator],
            "codec": self.codec, "pts_reliable": self.pts_reliable,
        }

    @classmethod
    def from_dict(cls, key: tuple, data: dict) -> "VideoMeta":
        """Rebuild from :meth:`to_dict`; raises ``ValueError`` saying what is wrong with ``data``.

        Stored metadata comes from a file (the frame store), so it is checked like a header:
        positive sizes within :func:`max_video_pixels`, at least one PTS, PTS strictly increasing,
        a positive time base.
        """
        if not isinstance(data, dict):
            raise ValueError(f"metadata must be an object, got {type(data).__name__}")
        try:
            width, height = int(data["width"]), int(data["height"])
            duration = float(data["duration"])
            pts = np.asarray(data["pts"], dtype=np.int64).reshape(-1)
            key_pts = np.asarray(data["key_pts"], dtype=np.int64).reshape(-1)
            num, den = (int(x) for x in data["time_base"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"malformed metadata: {type(exc).__name__}: {exc}") from None
        if pts.size == 0 or key_pts.size == 0:
            raise ValueError("metadata lists no frames (empty pts or key_pts)")
        if pts.size > 1 and not bool(np.all(np.diff(pts) > 0)):
            raise ValueError("metadata pts are not strictly increasing")
        if num <= 0 or den <= 0 or not math.isfinite(duration) or duration < 0:
            raise ValueError(f"metadata has a bad time base {num}/{den} or duration {duration}")
        try:
            check_frame_size(width, height, "stored metadata")
        except VideoError as exc:
            raise ValueError(str(exc)) from None
        tb = Fraction(num, den)
        return cls(
            key=key, width=width, height=height, duration=duration,
            pts=pts, key_pts=key_pts, time_base=tb,
            frame_times=_times_from_pts(pts, tb), codec=str(data.get("codec", "")),
            pts_reliable=bool(data.get("pts_reliable", True)),
        )


def _times_from_pts(pts: np.ndarray, time_base: Fraction) -> np.ndarray:
    # exact rational arithmetic, then rounded to the microsecond so 0.9 s reads as 0.9
    return np.round((pts - pts[0]).astype(np.float64) * (time_base.numerator / time_base.denominator), 6)


def decode_timeout() -> float:
    """Seconds one open or decode call may take (``VSEEK_DECODE_TIMEOUT``, default 60).

    Also the longest a reader waits for a frame another reader is decoding before decoding it itself.
    """
    return float(os.environ.get("VSEEK_DECODE_TIMEOUT", "60"))


def file_key(path: str | Path) -> tuple:
    """``(resolved path, mtime_ns, size)``: identifies a video's content for caches and the frame store."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise VideoError(f"video file not found: {p}") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise VideoError(f"cannot stat video {p!r}: {exc}") from None
    if not p.is_file():
        raise VideoError(f"video path is not a file: {p}")
    return (str(p.resolve()), st.st_mtime_ns, st.st_size)


def _import_av():
    import av  # deferred: keeps `import vseek_env` light

    return av


# Demuxers a dataset video may be read with: containers that read only the bytes they are given.
# Playlist and script demuxers (hls, dash, concat, image2, ...) open further files named inside the
# data, so they are not on the list; nested opens are refused too (protocol whitelist "none").
ALLOWED_FORMATS = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "mpegts", "mpeg", "flv",
    "ogg", "asf", "mxf", "nut", "ivf", "h264", "hevc", "m4v", "dv", "gif", "yuv4mpegpipe",
)
_DEMUX_OPTIONS = {"format_whitelist": ",".join(ALLOWED_FORMATS), "protocol_whitelist": "none"}
DEFAULT_MAX_VIDEO_PIXELS = 4096 * 2304  # DCI 4K plus margin


def max_video_pixels() -> int:
    """The largest ``width * height`` a video may have (``VSEEK_MAX_VIDEO_PIXELS``, default 4096x2304).

    Checked against the stream header before any frame is decoded: a decoder's buffers grow with
    the frame size, so an 8192x8192 file would need gigabytes to open.
    """
    raw = os.environ.get("VSEEK_MAX_VIDEO_PIXELS", str(DEFAULT_MAX_VIDEO_PIXELS))
    try:
        value = int(float(raw))
    except ValueError:
        raise ValueError(f"VSEEK_MAX_VIDEO_PIXELS must be a number of pixels, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"VSEEK_MAX_VIDEO_PIXELS must be positive, got {raw!r}")
    return value


def check_frame_size(width: int, height: int, what: Any) -> None:
    """Raise :class:`VideoError` naming ``what`` unless ``width x height`` is positive and within the cap.

    >>> check_frame_size(1280, 720, "clip.mp4")
    """
    cap = max_video_pixels()
    if width <= 0 or height <= 0:
        raise VideoError(f"{what}: bad frame size {width}x{height}")
    if width * height > cap:
        raise VideoError(
            f"{what}: frames of {width}x{height} pixels exceed the cap of {cap:,} pixels "
            "(downscale the video, or raise VSEEK_MAX_VIDEO_PIXELS if the memory is there)"
        )


def open_local_file(path: str | Path) -> BinaryIO:
    """``path`` opened for reading as a literal local regular file; raises :class:`VideoError`.

    The name is never parsed as a URL or FFmpeg protocol (``concat:``, ``pipe:``, ...); FIFOs,
    devices and folders are refused without blocking (opened non-blocking, checked with ``fstat``).

    >>> with open_local_file(__file__) as fh:
    ...     len(fh.read(3))
    3
    """
    p = Path(path)
    try:
        return open_regular_file(p, buffering=0)
    except NotARegularFile:
        raise VideoError(f"video path is not a regular file: {p}") from None
    except FileNotFoundError:
        raise VideoError(f"video file not found: {p}") from None
    except (OSError, ValueError) as exc:  # ValueError: NUL byte in the name
        raise VideoError(f"cannot open video {p}: {exc}") from None


@contextmanager
def open_container(path: str | Path) -> Iterator[Any]:
    """A PyAV input container reading ``path`` through :func:`open_local_file`, demuxers restricted
    to :data:`ALLOWED_FORMATS`. Both are closed on exit.
    """
    av = _import_av()
    fh = open_local_file(path)
    try:
        try:
            container = av.open(fh, "r", options=dict(_DEMUX_OPTIONS), metadata_errors="ignore")
        except Exception as exc:
            raise VideoError(
                f"cannot open video {path}: {type(exc).__name__}: {exc} (supported containers: mp4/mov, mkv/webm, "
                "avi, MPEG-TS/PS, flv, ogg, asf, mxf, nut, ivf, raw H.264/HEVC)"
            ) from exc
        try:
            yield container
        finally:
            container.close()
    finally:
        fh.close()


class _Deadline:
    def __init__(self, path: Path, what: str, seconds: float | None = None) -> None:
        self.path, self.what = path, what
        self.seconds = decode_timeout() if seconds is None else seconds
        self.end = time.monotonic() + self.seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise VideoError(
                f"{self.what} {self.path} took longer than {self.seconds:g} s; the file is probably damaged "
                "(raise VSEEK_DECODE_TIMEOUT if it is just very long)"
            )


def probe_video(path: str | Path, key: tuple | None = None) -> VideoMeta:
    """Read the PTS of every frame (demuxing only) and decode the first frame to prove decodability.

    Raises :class:`VideoError` naming the file for missing, empty, corrupt or stream-less files.
    """
    path = Path(path)
    key = key or file_key(path)
    if key[2] == 0:
        raise VideoError(f"video file is empty (0 bytes): {path}")
    deadline = _Deadline(path, "probing")
    try:
        with open_container(path) as container:
            if not container.streams.video:
                raise VideoError(f"no video stream in {path}")
            stream = container.streams.video[0]
            header_w, header_h = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
            if header_w or header_h:  # checked before anything is decoded
                check_frame_size(header_w, header_h, path)
            time_base = stream.time_base or Fraction(1, 1_000_000)
            pts: list[int | None] = []
            dts: list[int | None] = []
            keys: list[bool] = []
            shown: list[bool] = []
            durations: list[int] = []
            for n, packet in enumerate(container.demux(stream)):
                if n % 256 == 0:
                    deadline.check()
                if packet.size == 0:  # flush packet at EOF
                    continue
                pts.append(packet.pts)
                dts.append(packet.dts)
                keys.append(bool(packet.is_keyframe))
                # an edit list can cut frames off the start: they are decoded (as references), never shown
                shown.append(not packet.is_discard)
                durations.append(int(packet.duration or 0))
            if not any(shown):
                raise VideoError(f"video has no frames: {path}")
            stamps, reliable = frame_stamps(pts, dts)
            check_monotonic(stamps, dts, path)
            all_pts = np.asarray(stamps, dtype=np.int64)
            pts_arr = all_pts[np.asarray(shown)]
            order = np.argsort(pts_arr, kind="stable")
            sorted_pts, first = np.unique(pts_arr[order], return_index=True)
            dur_arr = np.asarray(durations, dtype=np.int64)[np.asarray(shown)][order][first]
            key_pts = np.unique(all_pts[np.asarray(keys, dtype=bool)])  # hidden keyframes are seek points too
            if key_pts.size == 0 or key_pts[0] > sorted_pts[0]:
                key_pts = np.concatenate([[sorted_pts[0]], key_pts])
            # decode the first frame: proves the codec works and gives the true frame size
            container.seek(int(key_pts[0]), stream=stream, backward=True)
            stream.thread_type = "SLICE"
            first_frame = None
            for frame in container.decode(stream):
                first_frame = frame
                break
            deadline.check()
            if first_frame is None:
                raise VideoError(f"no decodable frame in {path}")
            width, height = int(first_frame.width), int(first_frame.height)
            check_frame_size(width, height, path)
            codec = stream.codec_context.name
    except VideoError:
        raise
    except Exception as exc:  # FFmpeg errors come in many types
        raise VideoError(f"cannot open video {path}: {type(exc).__name__}: {exc}") from exc
    times = _times_from_pts(sorted_pts, time_base)
    if sorted_pts.size > 1:
        step = float(np.median(np.diff(sorted_pts)))
    else:
        step = float(dur_arr[-1]) or float(1 / (stream.average_rate or 25) / time_base)
    last = float(dur_arr[-1]) if dur_arr[-1] > 0 else step
    duration = round(float(times[-1]) + last * float(time_base), 6)
    return VideoMeta(
        key=key, width=width, height=height, duration=duration, pts=sorted_pts, key_pts=key_pts,
        time_base=time_base, frame_times=times, codec=codec, pts_reliable=reliable,
    )


def frame_stamps(pts: list[int | None], dts: list[int | None]) -> tuple[list[int], bool]:
    """The packets' timestamps to order frames by, and whether they are true PTS.

    A PTS may be negative (an mp4 edit list puts the frames before the first shown one below
    zero), so only a *missing* PTS makes the PTS unusable. Then the DTS is used if every packet has
    one, else the packet order: for streams without PTS (some AVI), decode order is presentation order.

    >>> frame_stamps([-2, 0, -1], [-3, -2, -1])
    ([-2, 0, -1], True)
    >>> frame_stamps([None, None], [4, 5])
    ([4, 5], False)
    """
    if all(p is not None for p in pts):
        return [int(p) for p in pts], True
    if all(d is not None for d in dts):
        return [int(d) for d in dts], False
    return list(range(len(pts))), False


def check_monotonic(stamps: list[int], dts: list[int | None], path: Any) -> None:
    """Refuse a stream whose timestamps restart (raises :class:`VideoError` naming ``path``).

    Clips joined without re-timing (concatenated MPEG-TS files, a camera that restarts its clock)
    repeat presentation times and step decode times backwards. Such a stream has no single
    timeline: ordering by PTS would interleave the clips and label one clip's pixels with the
    other's times, and a seek by time is ambiguous. So it is refused, with the remedy: remuxing
    with the ffmpeg CLI (which corrects TS discontinuities) gives one monotonic timeline.

    >>> check_monotonic([0, 2, 1, 3], [-1, 0, 1, 2], "ok.mp4")   # B-frame reordering is fine
    >>> try:
    ...     check_monotonic([0, 1, 0, 1], [0, 1, 0, 1], "x.ts")
    ... except VideoError as exc:
    ...     str(exc)[:52]
    'x.ts: timestamps restart at packet 2 (decode time 1 '

    """
    backwards = None
    if all(d is not None for d in dts):
        steps = np.diff(np.asarray(dts, dtype=np.int64))
        if steps.size and steps.min() < 0:
            at = int(np.argmax(steps < 0)) + 1
            backwards = (at, f"decode time {dts[at - 1]} -> {dts[at]}")
    if backwards is None:
        arr = np.asarray(stamps, dtype=np.int64)
        _, first, counts = np.unique(arr, return_index=True, return_counts=True)
        if counts.size and counts.max() > 1:
            dup = np.flatnonzero(arr == arr[first[np.argmax(counts > 1)]])
            backwards = (int(dup[1]), f"presentation time {int(arr[dup[1]])} repeats")
    if backwards is not None:
        raise VideoError(
            f"{path}: timestamps restart at packet {backwards[0]} ({backwards[1]}): the file joins clips "
            "without re-timing them, so frames have no single timeline. Re-time it first, e.g. "
            "`ffmpeg -i IN -c copy OUT.mp4` (the ffmpeg CLI corrects timestamp discontinuities)"
        )


class _MetaTable:
    """Process-wide LRU of probed metadata: re-opening a video (every ``reset``) costs a dict lookup."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple, VideoMeta] = OrderedDict()
        self._lock = threading.Lock()
        self.probes = 0

    def get(self, key: tuple, path: Path) -> VideoMeta:
        with self._lock:
            meta = self._items.get(key)
            if meta is not None:
                self._items.move_to_end(key)
                return meta
        meta = _store_meta(key)
        if meta is None:
            meta = probe_video(path, key)
            with self._lock:
                self.probes += 1
        with self._lock:
            self._items[key] = meta
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return meta

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.probes = 0


_META = _MetaTable()


def _store_meta(key: tuple) -> VideoMeta | None:
    from vseek_env.frame_store import default_frame_store

    store = default_frame_store()
    return store.meta(key) if store is not None else None


def clear_process_caches() -> None:
    """Forget probed metadata and cached frames of this process (tests and benchmarks use it)."""
    _META.clear()
    default_frame_cache().clear()
    _INFLIGHT.clear()


class _InFlight:
    """Frames some reader is filling right now, so the readers of a GRPO group decode a frame once.

    A reader claims the missing frames nobody else is filling and fills them itself; for frames
    another reader claimed it waits, at most :func:`decode_timeout` seconds in all, then fills
    them itself. No lock is held across a decode: a decode stuck in C code (its tool worker
    abandoned by the env) delays only readers of its own frames, by a bounded time, and only
    once, since the first reader to give up on it cancels all of its claims.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims: dict[tuple, threading.Event] = {}  # cache key -> set when its filler is done

    def claim(self, keys: list[tuple]) -> tuple[threading.Event, list[tuple], list[tuple[tuple, threading.Event]]]:
        """``(event to pass to release, keys now the caller's, (key, event) pairs claimed by others)``."""
        done = threading.Event()
        mine: list[tuple] = []
        theirs: list[tuple[tuple, threading.Event]] = []
        with self._lock:
            for key in keys:
                other = self._claims.setdefault(key, done)
                if other is done:
                    mine.append(key)
                else:
                    theirs.append((key, other))
        return done, mine, theirs

    def release(self, done: threading.Event) -> None:
        """End the claims made with ``done`` and wake their waiters."""
        self.cancel(done)
        done.set()

    def cancel(self, event: threading.Event) -> None:
        """Forget every claim made with ``event`` (its filler is stuck); newer claims are kept."""
        with self._lock:
            for key in [k for k, e in self._claims.items() if e is event]:
                del self._claims[key]

    def clear(self) -> None:
        with self._lock:
            self._claims.clear()


_INFLIGHT = _InFlight()


# -- decoding ------------------------------------------------------------------------------------------
# Below this many frames of decoding work a request runs on one decoder: a second container's
# open and seek cost more than they save.
MIN_PARALLEL_FRAMES = 48
RUNS_PER_DECODER = 4


def decode_threads() -> int:
    """Decoders one request may run in parallel (``VSEEK_DECODE_THREADS``, default: the usable cores)."""
    raw = os.environ.get("VSEEK_DECODE_THREADS")
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"VSEEK_DECODE_THREADS must be a whole number, got {raw!r}") from None
        if value < 1:
            raise ValueError(f"VSEEK_DECODE_THREADS must be >= 1, got {raw!r}")
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class DecodeStats:
    """Process-wide counters: frames decoders produced vs frames requests asked for.

    ``frames_decoded / frames_returned`` is the decoding work per frame delivered (1.0 = no frame
    decoded in vain; skipped non-reference frames are not decoded and do not count).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_decoded = 0
        self.frames_returned = 0
        self.seeks = 0

    def add(self, *, decoded: int = 0, returned: int = 0, seeks: int = 0) -> None:
        with self._lock:
            self.frames_decoded += decoded
            self.frames_returned += returned
            self.seeks += seeks

    def snapshot(self) -> dict:
        with self._lock:
            return {"frames_decoded": self.frames_decoded, "frames_returned": self.frames_returned, "seeks": self.seeks}

    def clear(self) -> None:
        with self._lock:
            self.frames_decoded = self.frames_returned = self.seeks = 0


DECODE_STATS = DecodeStats()


def decode_frames(
    path: str | Path, meta: VideoMeta, indices, size: tuple[int, int] | None, *, threads: int | None = None
) -> dict[int, np.ndarray]:
    """Decode frames ``indices`` (presentation order) of ``path``, resized to ``size`` = (h, w).

    Exact by PTS: decoding starts at the last keyframe at or before each requested frame and
    keeps the decoded frame whose PTS equals the requested one. Between requested frames the
    decoder skips non-reference frames (nothing depends on them), and it seeks ahead whenever a
    keyframe lies between two requested frames, so each keyframe interval is decoded at most once
    per call, whatever the order of ``indices``. Each frame is scaled to ``size`` right after it is
    decoded; no native-size RGB frame is kept.

    Requests spanning several keyframe intervals are split into runs of consecutive intervals
    with about equal decoding work, which ``threads`` decoders (default :func:`decode_threads`),
    each with its own container and thread, take from a shared queue.
    """
    path = Path(path)
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return {}
    deadline = _Deadline(path, "decoding")
    try:
        if meta.pts_reliable:
            workers = decode_threads() if threads is None else max(1, int(threads))
            # more runs than decoders: a decoder whose core is busy elsewhere takes fewer of them
            runs = split_by_keyframe(meta, wanted, workers * RUNS_PER_DECODER if workers > 1 else 1)
            queue = list(reversed(runs))
            lock = threading.Lock()

            def decoder() -> dict[int, np.ndarray]:
                found: dict[int, np.ndarray] = {}
                with open_container(path) as container:
                    while True:
                        with lock:
                            if not queue:
                                return found
                            run = queue.pop()
                        found.update(_decode_by_pts(container, path, meta, run, size, deadline))

            out = _in_parallel([decoder] * min(workers, len(runs)), deadline)
        else:
            out = _decode_in_order(path, meta, wanted, size, deadline=deadline)
    except VideoError:
        raise
    except Exception as exc:
        raise VideoError(f"cannot decode frames of {path}: {type(exc).__name__}: {exc}") from exc
    missing = [i for i in wanted if i not in out]
    if missing:
        raise VideoError(
            f"cannot decode frames {missing[:5]} (of {len(missing)}) of {path}: the file is truncated or damaged"
        )
    DECODE_STATS.add(returned=len(wanted))
    return out


def split_by_keyframe(meta: VideoMeta, wanted: list[int], parts: int) -> list[list[int]]:
    """``wanted`` (sorted indices) cut into at most ``parts`` runs of whole keyframe intervals, with
    about equal decoding work (frames from each interval's keyframe to its last wanted frame).

    >>> meta = VideoMeta(key=(), width=2, height=2, duration=400.0, pts=np.arange(400), key_pts=np.array([0, 200]),
    ...                  time_base=Fraction(1), frame_times=np.arange(400.0))
    >>> split_by_keyframe(meta, [10, 150, 210, 390], 2), split_by_keyframe(meta, [10, 20], 2)
    ([[10, 150], [210, 390]], [[10, 20]])
    """
    w = np.asarray(wanted, dtype=np.int64)
    gop = np.searchsorted(meta.key_pts, meta.pts[w], side="right") - 1
    gops, first = np.unique(gop, return_index=True)
    if parts <= 1 or gops.size < 2:
        return [list(wanted)]
    key_index = np.searchsorted(meta.pts, meta.key_pts[np.maximum(gops, 0)])
    last = w[np.append(first[1:], w.size) - 1]
    cost = np.maximum(last - key_index + 1, 1)
    total = int(cost.sum())
    if total < 2 * MIN_PARALLEL_FRAMES:
        return [list(wanted)]
    parts = min(parts, gops.size, total // MIN_PARALLEL_FRAMES)
    cuts = np.searchsorted(np.cumsum(cost), total * np.arange(1, parts) / parts, side="left") + 1
    cuts = np.unique(np.clip(cuts, 1, gops.size - 1))
    bounds = [0, *first[cuts].tolist(), w.size]
    return [list(wanted[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]


def _in_parallel(jobs: list, deadline: "_Deadline") -> dict[int, np.ndarray]:
    """Run the decode ``jobs`` (one here, the rest on daemon threads) and merge their frames.

    Daemon threads, not a pool: a decoder stuck in C code must not keep the process alive, and
    each job stops itself at ``deadline``.
    """
    if len(jobs) == 1:
        return jobs[0]()
    results: list = [None] * len(jobs)
    errors: list = [None] * len(jobs)

    def run(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # re-raised in the caller's thread
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,), name="vseek-decode", daemon=True) for i in range(1, len(jobs))]
    for t in threads:
        t.start()
    run(0)
    for t in threads:
        t.join(max(0.0, deadline.end - time.monotonic()) + 1.0)
        if t.is_alive():
            deadline.check()
            raise VideoError(f"decoding {deadline.path} did not finish within {deadline.seconds:g} s")
    for exc in errors:
        if exc is not None:
            raise exc
    out: dict[int, np.ndarray] = {}
    for part in results:
        out.update(part)
    return out


def _decode_by_pts(container, path: Path, meta: VideoMeta, wanted: list[int], size, deadline: _Deadline) -> dict[int, np.ndarray]:
    """The seeking decoder of :func:`decode_frames` on an open ``container``; frames it cannot find
    are simply absent."""
    target_pts = {int(meta.pts[i]): i for i in wanted}
    out: dict[int, np.ndarray] = {}
    todo = [int(meta.pts[i]) for i in wanted]  # ascending PTS
    missed: list[int] = []
    decoded = seeks = 0
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if not ctx.is_open:
        stream.thread_type = "SLICE"  # parallelism comes from decoders over disjoint keyframe intervals
    pos = 0
    while pos < len(todo):
        sought = _keyframe_before(meta, todo[pos])
        container.seek(sought, stream=stream, backward=True)
        ctx.flush_buffers()
        seeks += 1
        demuxed = -(1 << 62)  # highest PTS sent to the decoder since the seek
        last_out = None
        skip = ""
        ahead_of = -1  # the pos whose keyframe `ahead` is (one search per wanted frame, not per packet)
        for n, packet in enumerate(container.demux(stream)):
            if n % 32 == 0:
                deadline.check()
            pts = packet.pts
            if pts is not None:
                demuxed = max(demuxed, pts)
            want = "DEFAULT" if pts is None or pts in target_pts else "NONREF"
            if want != skip:  # setting the option parses its name: only on a change
                ctx.skip_frame = skip = want
            for frame in ctx.decode(packet):
                decoded += 1
                last_out = frame.pts
                if frame.pts in target_pts:
                    out.setdefault(target_pts[frame.pts], _to_rgb(frame, size))
            pos = _advance(todo, pos, out, target_pts, last_out, missed)
            if pos >= len(todo):
                break
            if ahead_of != pos:
                ahead, ahead_of = _keyframe_before(meta, todo[pos]), pos
            # a later keyframe lies before the next wanted frame: seek there. (Only if later than
            # the last seek: with an edit list, a seek can land a keyframe early, and seeking to
            # the same place again would never progress.)
            if ahead > demuxed and ahead > sought:
                break
        else:  # end of stream: drain the decoder's delayed frames
            ctx.skip_frame = "DEFAULT"
            for frame in ctx.decode(None):
                decoded += 1
                if frame.pts in target_pts:
                    out.setdefault(target_pts[frame.pts], _to_rgb(frame, size))
            while pos < len(todo):
                if target_pts[todo[pos]] not in out:
                    missed.append(target_pts[todo[pos]])
                pos += 1
    DECODE_STATS.add(decoded=decoded, seeks=seeks)
    if missed:
        # a seek landed after a wanted frame (odd index, open GOP): one linear pass by PTS
        out.update(_decode_in_order(path, meta, missed, size, by_pts=True, deadline=deadline))
    return out


def _advance(todo: list[int], pos: int, out: dict, target_pts: dict, last_out, missed: list[int]) -> int:
    """Move past wanted frames already decoded, and past those the decoder's output has overtaken."""
    while pos < len(todo):
        index = target_pts[todo[pos]]
        if index in out:
            pos += 1
        elif last_out is not None and last_out > todo[pos]:
            missed.append(index)  # output is in PTS order: this frame will not come from here
            pos += 1
        else:
            break
    return pos


def _keyframe_before(meta: VideoMeta, pts: int) -> int:
    i = int(np.searchsorted(meta.key_pts, pts, side="right")) - 1
    return int(meta.key_pts[max(i, 0)])


def _to_rgb(frame: Any, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (size[0] == frame.height and size[1] == frame.width):
        return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
    h, w = size
    return np.ascontiguousarray(
        frame.to_ndarray(width=w, height=h, format="rgb24", interpolation=RESIZE_INTERPOLATION)
    )


def _decode_in_order(path, meta, wanted, size, *, by_pts: bool = False, deadline=None) -> dict[int, np.ndarray]:
    """Linear decode from the start, matching frames by PTS (``by_pts``) or by output order."""
    deadline = deadline or _Deadline(path, "decoding")
    want = set(wanted)
    out: dict[int, np.ndarray] = {}
    pts_index = {int(p): i for i, p in enumerate(meta.pts)}
    last = max(want)
    with open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        for n, frame in enumerate(container.decode(stream)):
            DECODE_STATS.add(decoded=1)
            if n % 32 == 0:
                deadline.check()
            i = pts_index.get(frame.pts) if by_pts else n
            if i in want and i not in out:
                out[i] = _to_rgb(frame, size)
                if len(out) == len(want):
                    break
            if not by_pts and n >= last:
                break
    return out


def protocol_indices(num_frames: int, video_fps: float, *, fps: float = 1.0,
                     max_frames: int = 256, min_frames: int = 4) -> np.ndarray:
    """The paper protocol's video sampling (qwen-vl-utils, as its code feeds the video):
    ``round(linspace(0, n-1, k))`` with ``k = duration * fps`` clamped to ``[min_frames, max_frames]``
    and rounded to an even number. Defaults: 1 fps, at most 256 frames. ``vseek cache build
    --protocol-overview`` stores these frames, so the overview is read without decoding.

    >>> protocol_indices(30000, 25.0)[:3].tolist(), len(protocol_indices(30000, 25.0))
    ([0, 118, 235], 256)
    """
    k = num_frames / video_fps * fps
    k = min(max(k, min_frames), max_frames, num_frames)
    k = max(2, int(round(k / 2)) * 2) if num_frames >= 2 else 1
    return np.unique(np.round(np.linspace(0, num_frames - 1, k)).astype(np.int64))


# -- the facade ----------------------------------------------------------------------------------------
class Video:
    """An opened video: metadata, PTS of every frame, cached budgeted decoding.

    Opening probes the stream once per process (or reads the frame store's copy); no decoder stays
    open between calls, so ``close`` only marks the object closed. Thread-safe.
    """

    def __init__(self, path: str | Path, *, cache: FrameCache | None = None) -> None:
        self.path = Path(path)
        self.cache = cache if cache is not None else default_frame_cache()
        self._key = file_key(self.path)
        meta = _META.get(self._key, self.path)
        self.meta = meta
        self.width, self.height = meta.width, meta.height
        self.frame_times = meta.frame_times
        self.num_frames = int(meta.pts.size)
        self.duration = meta.duration
        self.fps = float(self.num_frames / self.duration) if self.duration > 0 else 0.0
        self._closed = False

    @property
    def key(self) -> tuple:
        """``(resolved path, mtime_ns, size)`` of the file this object reads."""
        return self._key

    # -- time <-> index -------------------------------------------------------------------------
    def index_at(self, t: float) -> int:
        """Index of the frame displayed at time ``t`` (clamped to the video)."""
        i = int(np.searchsorted(self.frame_times, t + 1e-9, side="right")) - 1
        return min(max(i, 0), self.num_frames - 1)

    def window_indices(self, start: float, end: float, *, fps: float, min_frames: int, max_frames: int) -> np.ndarray:
        """Frames sampled from ``[start, end]`` (clamped to the video) -- the ``crop_video`` rule.

        ``n = clamp(ceil((end - start) * fps), min_frames, max_frames)`` frames whose PTS lies in
        the window, never more than there are; indices unique and increasing. When no frame
        starts inside the window, the frame displayed at ``start``.

        Which ``n``: frames are taken from a global time grid ``k / fps`` (the frame displayed at
        each grid time), so overlapping windows of different rollouts share frames (cache hits)
        and a frame store built at ``fps`` holds them. If the window holds more grid frames than
        ``n``, ``n`` are spread evenly over them (the first ``n`` when there is one extra, the
        inclusive end point); if it holds fewer (short windows, ``min_frames``), ``n`` are spread
        evenly over all frames of the window.
        """
        start, end = max(0.0, float(start)), min(self.duration, float(end))
        lo = int(np.searchsorted(self.frame_times, start - 1e-9, side="left"))
        hi = int(np.searchsorted(self.frame_times, end + 1e-9, side="right"))
        if hi <= lo:
            return np.array([self.index_at(start)], dtype=np.int64)
        n = max(min_frames, min(max_frames, math.ceil((end - start) * fps - 1e-9)))
        n = min(n, hi - lo)
        candidates = np.arange(lo, hi, dtype=np.int64)
        if fps > 0:
            on_grid = lo + np.flatnonzero(self._on_grid(lo, hi, start, end, fps))
            if on_grid.size >= n:
                candidates = on_grid
                if candidates.size == n + 1:  # both ends on the grid: drop the inclusive end point
                    return candidates[:n]
        if candidates.size == n:
            return candidates
        picks = np.unique(np.round(np.linspace(0, candidates.size - 1, n)).astype(np.int64))
        return candidates[picks]

    def _on_grid(self, lo: int, hi: int, start: float, end: float, fps: float) -> np.ndarray:
        """For frames ``lo..hi-1``: is the frame displayed at some grid time ``k / fps`` in ``[start, end]``?

        Frame ``i`` is displayed at ``g`` when ``t[i] <= g + 1e-9 < t[i+1]`` (:meth:`index_at`), so
        it is on the grid when the first grid time at or after its start (and ``start``) still lies
        before the next frame's start and within ``end``. Work is per frame, never per grid
        point: a file whose few frames span 1e15 s costs what its frames cost.
        """
        times = self.frame_times[lo:hi]
        following = np.append(self.frame_times[lo + 1 : hi + 1], np.inf)[: hi - lo]
        k_first = math.ceil(start * fps - 1e-9)
        k_last = math.floor(end * fps + 1e-9)
        with np.errstate(over="ignore", invalid="ignore"):
            k = np.ceil((times - 1e-9) * fps)
            k -= ((k - 1) / fps + 1e-9 >= times)  # float rounding: the grid point just below still shows it
            k += (k / fps + 1e-9 < times)
            k = np.maximum(k, k_first)
            return (k <= k_last) & (k / fps + 1e-9 < following)

    def uniform_indices(self, n: int) -> np.ndarray:
        """``n`` frames spread over the whole video (segment centres), unique and increasing."""
        n = max(1, min(int(n), self.num_frames))
        centres = (np.arange(n) + 0.5) * self.duration / n
        return np.unique(self.indices_at(centres))

    def indices_at(self, times) -> np.ndarray:
        """:meth:`index_at` of every time in ``times`` (same order, int64)."""
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        at = np.searchsorted(self.frame_times, t + 1e-9, side="right") - 1
        return np.clip(at, 0, self.num_frames - 1).astype(np.int64)

    # -- decoding -------------------------------------------------------------------------------
    def output_size(self, max_pixels: int | None = DEFAULT_MAX_PIXELS, factor: int = DEFAULT_FACTOR) -> tuple[int, int]:
        """``(h, w)`` of frames read with this budget (the native size when ``max_pixels`` is None)."""
        if max_pixels is None:
            return self.height, self.width
        return smart_resize(self.height, self.width, max_pixels=max_pixels, factor=factor)

    def read(
        self, indices, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, factor: int = DEFAULT_FACTOR, stack: bool = True
    ) -> FrameBatch:
        """Frames ``indices`` at the budgeted size: from the cache, else the frame store, else decoded.

        ``stack=False`` returns the cached frames themselves (read-only) instead of a stacked copy:
        what the env uses, since a 64-frame batch copy costs more than the rest of a warm step.
        """
        if self._closed:
            raise VideoError(f"video {self.path} is closed")
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_frames):
            raise IndexError(f"frame index out of range for {self.path} ({self.num_frames} frames)")
        size = self.output_size(max_pixels, factor)
        frames = self._lookup(indices, size)
        missing = sorted({int(indices[p]) for p, f in enumerate(frames) if f is None})
        if missing:
            found = self._fill_shared(missing, size)
            frames = [f if f is not None else found[int(i)] for f, i in zip(frames, indices)]
        times = self.frame_times[indices].copy()
        if not stack:
            return FrameBatch(frames=tuple(frames), times=times, indices=indices)
        h, w = size
        stacked = np.stack(frames) if frames else np.zeros((0, h, w, 3), np.uint8)
        return FrameBatch(frames=stacked, times=times, indices=indices)

    def read_times(
        self, times, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, factor: int = DEFAULT_FACTOR,
        keyframe_tolerance_s: float = 0.0, stack: bool = False,
    ) -> FrameBatch:
        """The frames displayed at ``times`` (seconds, any order), at the budgeted size: the overview reader.

        Each time maps to the frame shown then (:meth:`index_at`); times that show the same frame
        give it once, so the batch is unique and increasing in time, each frame labelled with its
        true PTS. ``keyframe_tolerance_s > 0`` (opt-in) takes instead the nearest keyframe when it
        lies within that many seconds of the requested time: one decoded frame per keyframe
        interval instead of up to a whole interval, at the cost of frames up to the tolerance away
        (their labels stay true). Decoding is :func:`decode_frames`: each keyframe interval at most
        once, over :func:`decode_threads` decoders; the frame store and cache serve what they hold.

        >>> with open_video("clip.mp4") as v:                                # doctest: +SKIP
        ...     v.read_times([0.0, 1.0, 2.0], max_pixels=112896).times
        array([0., 1., 2.])
        """
        indices = self.indices_at(times)
        keys = self._keyframe_indices() if keyframe_tolerance_s and keyframe_tolerance_s > 0 else None
        if keys is not None and keys.size and indices.size:
            t = np.asarray(times, dtype=np.float64).reshape(-1)
            key_times = self.frame_times[keys]
            right = np.clip(np.searchsorted(key_times, t), 0, keys.size - 1)
            left = np.clip(right - 1, 0, keys.size - 1)
            nearest = np.where(np.abs(key_times[left] - t) <= np.abs(key_times[right] - t), left, right)
            close = np.abs(key_times[nearest] - t) <= keyframe_tolerance_s + 1e-9
            indices = np.where(close, keys[nearest], indices)
        return self.read(np.unique(indices), max_pixels=max_pixels, factor=factor, stack=stack)

    def _keyframe_indices(self) -> np.ndarray:
        """Indices of the shown frames that are keyframes (a decode from one needs no other frame)."""
        keys = np.searchsorted(self.meta.pts, self.meta.key_pts)
        keys = keys[keys < self.num_frames]
        return np.unique(keys[np.isin(self.meta.pts[keys], self.meta.key_pts)]).astype(np.int64)

    def _lookup(self, indices: np.ndarray, size: tuple[int, int]) -> list[np.ndarray | None]:
        return [self.cache.get((*self._key, int(i), size)) for i in indices]

    def _fill_shared(self, missing: list[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        """Fill the frames no concurrent reader is filling; wait (bounded) for those one is."""
        done, mine, theirs = _INFLIGHT.claim([(*self._key, i, size) for i in missing])
        try:
            found = self._fill([key[-2] for key in mine], size) if mine else {}
        finally:
            _INFLIGHT.release(done)
        if theirs:
            end = time.monotonic() + decode_timeout()
            late: list[int] = []
            for key, other in theirs:
                if not other.wait(max(0.0, end - time.monotonic())):
                    _INFLIGHT.cancel(other)  # its filler is stuck: later readers must not wait on it
                frame = self.cache.peek(key)
                if frame is None:  # stuck, failed, or too big to cache: fill it here
                    late.append(key[-2])
                else:
                    found[key[-2]] = frame
            if late:
                found.update(self._fill(late, size))
        return found

    def _fill(self, missing: list[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        found: dict[int, np.ndarray] = {}
        still: list[int] = []
        for i in missing:  # another reader may have filled them since our lookup
            frame = self.cache.peek((*self._key, i, size))
            if frame is None:
                still.append(i)
            else:
                found[i] = frame
        if still:
            from vseek_env.frame_store import default_frame_store

            store = default_frame_store()
            if store is not None:
                stored = store.read(self._key, still, size)
                with self.cache._lock:
                    self.cache.store_reads += len(stored)
                for i, frame in stored.items():
                    self.cache.put((*self._key, i, size), frame)
                found.update(stored)
                still = [i for i in still if i not in stored]
        if still:
            native = size == (self.height, self.width)
            decoded = decode_frames(self.path, self.meta, still, None if native else size)
            with self.cache._lock:
                self.cache.decoded += len(decoded)
            for i, frame in decoded.items():
                self.cache.put((*self._key, i, size), frame)
            found.update(decoded)
        return found

    def close(self) -> None:
        """Mark closed; later reads raise. (No decoder is held between calls.)"""
        self._closed = True

    def __enter__(self) -> "Video":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Video({str(self.path)!r}, {self.width}x{self.height}, {self.num_frames} frames, {self.duration:g} s)"


def open_video(path: str | Path, *, cache: FrameCache | None = None) -> Video:
    """Open ``path`` for budgeted, cached, timestamp-exact reading. Raises :class:`VideoError`."""
    return Video(path, cache=cache)
