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
path, mtime and size; an edited video simply misses): ``meta.json`` plus one
``frames_<h>x<w>.<n>.u8`` file of ``n*h*w*3`` bytes per size. Size: about 340 KB per frame at
336x336 pixels, i.e. about 1.2 GB per hour of video at 1 fps.

A running trainer sees what a concurrent ``vseek cache build`` adds: every lookup re-checks the
``meta.json`` it read (a stat, no parse), so new videos and new frames are picked up at the next
cache miss. A data file is never rewritten in place: a build writes a new file (the ``<n>`` in its
name is its frame count), points ``meta.json`` at it and only then deletes the old one, so a reader
holding the old index reads the old file or, once it is gone, decodes instead.

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

# 2: PTS of streams with an edit list are read correctly (format-1 stores hold wrong times for them)
_FORMAT = 2


def store_root() -> Path:
    """The store's folder: ``$VSEEK_FRAME_STORE``, else ``<cache dir>/frame_store``."""
    if os.environ.get("VSEEK_FRAME_STORE"):
        return Path(os.environ["VSEEK_FRAME_STORE"]).expanduser()
    from vseek_env.data.datasets import cache_dir

    return cache_dir() / "frame_store"


def _size_name(size: tuple[int, int]) -> str:
    return f"{int(size[0])}x{int(size[1])}"


def _stored_indices(entry: dict | None, size: tuple[int, int]) -> np.ndarray:
    sized = entry["sizes"].get(_size_name(size)) if entry else None
    return np.asarray(sized["indices"] if sized else [], dtype=np.int64)


class FrameStore:
    """A folder of pre-decoded frames keyed by video content. Thread-safe; holds no open files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        # digest -> (stat signature of meta.json, parsed meta.json); misses are not remembered
        self._entries: OrderedDict[str, tuple[tuple, dict]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def digest(key: tuple) -> str:
        return hashlib.sha1(json.dumps([str(k) for k in key]).encode()).hexdigest()[:24]

    def folder(self, key: tuple) -> Path:
        return self.root / self.digest(key)

    def _entry(self, key: tuple) -> dict | None:
        """The video's parsed ``meta.json``, re-read whenever the file changed (or None)."""
        digest = self.digest(key)
        path = self.root / digest / "meta.json"
        try:
            st = os.stat(path)
        except OSError:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        signature = (st.st_mtime_ns, st.st_size, st.st_ino)  # meta.json is replaced, never edited
        with self._lock:
            cached = self._entries.get(digest)
            if cached is not None and cached[0] == signature:
                self._entries.move_to_end(digest)
                return cached[1]
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("format") != _FORMAT or data.get("key") != [str(k) for k in key]:
            return None
        self._remember(digest, signature, data)
        return data

    def _remember(self, digest: str, signature: tuple, entry: dict) -> None:
        with self._lock:
            self._entries[digest] = (signature, entry)
            self._entries.move_to_end(digest)
            while len(self._entries) > 4096:
                self._entries.popitem(last=False)

    def meta(self, key: tuple) -> "VideoMeta | None":
        """The stored stream metadata of the video with this key, or None."""
        from vseek_env.video import VideoMeta

        entry = self._entry(key)
        return VideoMeta.from_dict(key, entry["meta"]) if entry else None

    def indices(self, key: tuple, size: tuple[int, int]) -> np.ndarray:
        """Frame indices stored for this video at ``size`` (sorted)."""
        return _stored_indices(self._entry(key), size)

    def read(self, key: tuple, indices: Iterable[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        """The stored frames among ``indices`` at ``size`` (others are simply absent)."""
        entry = self._entry(key)
        sized = entry["sizes"].get(_size_name(size)) if entry else None
        if not sized or not sized["indices"]:
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
        valid and a rerun continues where it stopped. No indices: nothing to do, nothing written.
        """
        from vseek_env.video import decode_frames

        key = video.key
        want = np.asarray(sorted(set(int(i) for i in indices)), dtype=np.int64)
        if want.size == 0:
            return 0
        name = _size_name(size)
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        entry = self._entry(key)
        have = _stored_indices(entry, size)
        new = np.setdiff1d(want, have)
        if entry is None:
            for leftover in folder.glob("frames_*.u8"):  # from a store of another format: unreadable now
                leftover.unlink(missing_ok=True)
            entry = {"format": _FORMAT, "key": [str(k) for k in key], "path": str(video.path),
                     "meta": video.meta.to_dict(), "sizes": {}}
        if new.size == 0 and (folder / "meta.json").exists():
            return 0
        union = np.union1d(want, have)
        old_file = entry["sizes"].get(name, {}).get("file")
        data_file = f"frames_{name}.{union.size}.u8"  # a new name per content: see the module docstring
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
        if old_file and old_file != data_file:
            (folder / old_file).unlink(missing_ok=True)
        return int(new.size)

    def _write_entry(self, key: tuple, entry: dict) -> None:
        folder = self.folder(key)
        tmp = folder / f".meta.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, folder / "meta.json")
        st = os.stat(folder / "meta.json")
        self._remember(self.digest(key), (st.st_mtime_ns, st.st_size, st.st_ino), entry)

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
        """Drop the in-memory index (lookups re-check ``meta.json`` anyway; this frees the memory)."""
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
