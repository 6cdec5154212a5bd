"""On-disk frame store: pre-sampled, pre-resized frames so rollouts read instead of decode.

``vseek cache build DATASET --fps 1`` decodes, for every video of a dataset, the frames of the
global 1 fps grid (the frames ``crop_video`` picks, see :meth:`Video.window_indices`), the uniform
overview and the visual-prompt frames, at the env's pixel budget, and writes them here together
with the probed stream metadata. :class:`~vseek_env.video.Video` consults the store on every
cache miss and decodes only what the store lacks, so nothing else changes when a store exists.
Frames are stored raw (exactly the decoder's output), so reading from the store returns the same
pixels as decoding.

Where: ``$VSEEK_FRAME_STORE`` if set, else ``<cache dir>/frame_store`` (cache dir =
``$VSEEK_CACHE_DIR`` or ``~/.cache/vseek_env``). One folder per video content (hash of resolved
path, mtime and size; an edited video simply misses): ``meta.json`` plus one ``frames_<h>x<w>.u8``
file of ``N*h*w*3`` bytes per size. Size: about 340 KB per frame at 336x336 pixels, i.e. about
1.2 GB per hour of video at 1 fps.

Example:
    >>> store = FrameStore("/tmp/frames")                          # doctest: +SKIP
    >>> with open_video("clip.mp4") as v:                         # doctest: +SKIP
    ...     store.add(v, v.window_indices(0, v.duration, fps=1, min_frames=1, max_frames=10**6), v.output_size())
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:
    from vseek_env.video import Video, VideoMeta

_FORMAT = 1


def store_root() -> Path:
    """The store's folder: ``$VSEEK_FRAME_STORE``, else ``<cache dir>/frame_store``."""
    if os.environ.get("VSEEK_FRAME_STORE"):
        return Path(os.environ["VSEEK_FRAME_STORE"]).expanduser()
    from vseek_env.data.datasets import cache_dir

    return cache_dir() / "frame_store"


def _size_name(size: tuple[int, int]) -> str:
    return f"{int(size[0])}x{int(size[1])}"


class FrameStore:
    """A folder of pre-decoded frames keyed by video content. Thread-safe; holds no open files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._entries: OrderedDict[str, dict | None] = OrderedDict()  # digest -> parsed meta.json
        self._lock = threading.Lock()

    @staticmethod
    def digest(key: tuple) -> str:
        return hashlib.sha1(json.dumps([str(k) for k in key]).encode()).hexdigest()[:24]

    def folder(self, key: tuple) -> Path:
        return self.root / self.digest(key)

    def _entry(self, key: tuple) -> dict | None:
        digest = self.digest(key)
        with self._lock:
            if digest in self._entries:
                self._entries.move_to_end(digest)
                return self._entries[digest]
        path = self.root / digest / "meta.json"
        entry = None
        try:
            data = json.loads(path.read_text())
            if data.get("format") == _FORMAT and data.get("key") == [str(k) for k in key]:
                entry = data
        except (OSError, ValueError):
            entry = None
        with self._lock:
            self._entries[digest] = entry
            while len(self._entries) > 4096:
                self._entries.popitem(last=False)
        return entry

    def meta(self, key: tuple) -> "VideoMeta | None":
        """The stored stream metadata of the video with this key, or None."""
        from vseek_env.video import VideoMeta

        entry = self._entry(key)
        return VideoMeta.from_dict(key, entry["meta"]) if entry else None

    def indices(self, key: tuple, size: tuple[int, int]) -> np.ndarray:
        """Frame indices stored for this video at ``size`` (sorted)."""
        entry = self._entry(key)
        sized = entry["sizes"].get(_size_name(size)) if entry else None
        return np.asarray(sized["indices"] if sized else [], dtype=np.int64)

    def read(self, key: tuple, indices: Iterable[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        """The stored frames among ``indices`` at ``size`` (others are simply absent)."""
        entry = self._entry(key)
        sized = entry["sizes"].get(_size_name(size)) if entry else None
        if not sized:
            return {}
        stored = np.asarray(sized["indices"], dtype=np.int64)
        want = np.asarray(sorted(set(int(i) for i in indices)), dtype=np.int64)
        rows = np.searchsorted(stored, want)
        ok = (rows < stored.size) & (stored[np.minimum(rows, stored.size - 1)] == want)
        if not ok.any():
            return {}
        h, w = size
        row_bytes = h * w * 3
        out: dict[int, np.ndarray] = {}
        path = self.folder(key) / sized["file"]
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return {}
        try:
            for index, row in zip(want[ok], rows[ok]):
                buf = os.pread(fd, row_bytes, int(row) * row_bytes)
                if len(buf) != row_bytes:  # a damaged store file: decode instead
                    break
                out[int(index)] = np.frombuffer(buf, np.uint8).reshape(h, w, 3).copy()
        finally:
            os.close(fd)
        return out

    def add(self, video: "Video", indices: Iterable[int], size: tuple[int, int], *, chunk: int = 128) -> int:
        """Decode and store frames ``indices`` of ``video`` at ``size``; returns how many were new.

        Writes go to temporary files renamed into place, so an interrupted build leaves the store
        valid and a rerun continues where it stopped.
        """
        from vseek_env.video import decode_frames

        key = video.key
        want = np.asarray(sorted(set(int(i) for i in indices)), dtype=np.int64)
        have = self.indices(key, size)
        new = np.setdiff1d(want, have)
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        entry = self._entry(key) or {"format": _FORMAT, "key": [str(k) for k in key], "path": str(video.path),
                                     "meta": video.meta.to_dict(), "sizes": {}}
        if new.size == 0 and (folder / "meta.json").exists():
            return 0
        union = np.union1d(want, have)
        name = _size_name(size)
        data_file = f"frames_{name}.u8"
        tmp = folder / f".{data_file}.{os.getpid()}.tmp"
        old = self.read(key, have, size) if have.size else {}
        native = tuple(size) == (video.height, video.width)
        with open(tmp, "wb") as f:
            for start in range(0, union.size, chunk):
                part = union[start : start + chunk]
                todo = [int(i) for i in part if int(i) not in old]
                decoded = decode_frames(video.path, video.meta, todo, None if native else tuple(size)) if todo else {}
                for i in part:
                    frame = old.get(int(i))
                    if frame is None:
                        frame = decoded[int(i)]
                    f.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        os.replace(tmp, folder / data_file)
        entry["sizes"][name] = {"indices": union.tolist(), "file": data_file}
        self._write_entry(key, entry)
        return int(new.size)

    def _write_entry(self, key: tuple, entry: dict) -> None:
        folder = self.folder(key)
        tmp = folder / f".meta.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, folder / "meta.json")
        with self._lock:
            self._entries[self.digest(key)] = entry

    def summary(self) -> dict:
        """Videos, frames and bytes held."""
        videos = frames = nbytes = 0
        if self.root.is_dir():
            for meta in self.root.glob("*/meta.json"):
                try:
                    entry = json.loads(meta.read_text())
                except (OSError, ValueError):
                    continue
                videos += 1
                frames += sum(len(s["indices"]) for s in entry.get("sizes", {}).values())
                nbytes += sum(p.stat().st_size for p in meta.parent.iterdir() if p.is_file())
        return {"root": str(self.root), "videos": videos, "frames": frames, "bytes": nbytes}

    def clear(self) -> None:
        """Delete the whole store folder."""
        if self.root.is_dir():
            shutil.rmtree(self.root)
        with self._lock:
            self._entries.clear()

    def forget(self) -> None:
        """Drop the in-memory index (after files changed behind this object's back)."""
        with self._lock:
            self._entries.clear()


_STORES: dict[str, FrameStore] = {}
_STORES_LOCK = threading.Lock()


def default_frame_store() -> FrameStore | None:
    """The store at :func:`store_root`, or None when that folder does not exist (nothing built)."""
    root = store_root()
    if not root.is_dir():
        return None
    with _STORES_LOCK:
        store = _STORES.get(str(root))
        if store is None:
            store = _STORES[str(root)] = FrameStore(root)
        return store
