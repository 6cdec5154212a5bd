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
``frames_<h>x<w>_<digest>.u8`` file of ``n*h*w*3`` bytes per size. Size: about 340 KB per frame at
336x336 pixels, i.e. about 1.2 GB per hour of video at 1 fps.

Every name is computed here, never read from ``meta.json``: the folder is a digest of the video's
key and a data file's name is a digest of its size and frame indices (content-addressed), so a
poisoned or hand-edited ``meta.json`` cannot point a read or a delete outside the store. An entry
is validated when read (format, key, sizes, sorted in-range indices, plausible stream metadata,
data file length); a malformed one is ignored with a warning naming it (the frames are decoded
instead) and replaced by the next build.

A running trainer sees what a concurrent ``vseek cache build`` adds: every lookup re-checks the
``meta.json`` it read (a stat, no parse), so new videos and new frames are picked up at the next
cache miss. A data file is never rewritten in place: a build writes a uniquely named temporary
file, renames it to its content-addressed name, points ``meta.json`` at it and only then deletes
the old one, so a reader holding the old index reads the old file or, once it is gone, decodes
instead. Builders of one video serialise on a lock file in its folder (``flock``), so concurrent
builds neither mix their frames nor lose each other's; a builder holding the lock deletes the
temporary files of builds that were killed.

Example:
    >>> store = FrameStore("/tmp/frames")                          # doctest: +SKIP
    >>> with open_video("clip.mp4") as v:                         # doctest: +SKIP
    ...     store.add(v, v.window_indices(0, v.duration, fps=1, min_frames=1, max_frames=10**6), v.output_size())
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

if TYPE_CHECKING:
    from vseek_env.video import Video, VideoMeta

# 2: PTS of streams with an edit list are read correctly (format-1 stores hold wrong times for them)
# 3: content-addressed data file names, computed from the entry (never stored in it)
_FORMAT = 3
_SIZE_NAME = re.compile(r"^([1-9][0-9]{0,5})x([1-9][0-9]{0,5})$")
log = logging.getLogger(__name__)


def store_root() -> Path:
    """The store's folder: ``$VSEEK_FRAME_STORE``, else ``<cache dir>/frame_store``."""
    if os.environ.get("VSEEK_FRAME_STORE"):
        return Path(os.environ["VSEEK_FRAME_STORE"]).expanduser()
    from vseek_env.data.datasets import cache_dir

    return cache_dir() / "frame_store"


def _size_name(size: tuple[int, int]) -> str:
    return f"{int(size[0])}x{int(size[1])}"


def data_file_name(size: tuple[int, int], indices: np.ndarray) -> str:
    """The content-addressed name of the data file holding frames ``indices`` at ``size``.

    >>> data_file_name((2, 3), np.array([0, 5]))
    'frames_2x3_9a8e71e0170b5f6c7aa2beab.u8'
    """
    digest = hashlib.sha1(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()[:24]
    return f"frames_{_size_name(size)}_{digest}.u8"


def _stored_indices(entry: dict | None, size: tuple[int, int]) -> np.ndarray:
    sized = entry["sizes"].get(_size_name(size)) if entry else None
    return sized if sized is not None else np.zeros(0, np.int64)


def validate_entry(data, key: tuple) -> dict:
    """A parsed ``meta.json`` checked and normalised: ``{"meta": VideoMeta, "sizes": {name: indices}, ...}``.

    Raises ``ValueError`` saying what is wrong. Unknown fields (such as the ``"file"`` of older
    formats) are ignored: names are computed, never read.
    """
    from vseek_env.video import VideoError, VideoMeta, check_frame_size

    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("format") != _FORMAT:
        raise ValueError(f"format {data.get('format')!r}, expected {_FORMAT}")
    if data.get("key") != [str(k) for k in key]:
        raise ValueError("its key is not this video's")
    meta = VideoMeta.from_dict(key, data.get("meta"))
    sizes = data.get("sizes")
    if not isinstance(sizes, dict):
        raise ValueError("'sizes' is not an object")
    out: dict[str, np.ndarray] = {}
    for name, sized in sizes.items():
        m = _SIZE_NAME.match(str(name))
        if not m or not isinstance(sized, dict) or not isinstance(sized.get("indices"), list):
            raise ValueError(f"bad size entry {str(name)[:40]!r}")
        try:
            check_frame_size(int(m.group(2)), int(m.group(1)), f"size {name}")
        except VideoError as exc:
            raise ValueError(str(exc)) from None
        try:
            indices = np.asarray(sized["indices"], dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"size {name}: indices are not integers") from None
        if indices.size and (indices[0] < 0 or indices[-1] >= meta.pts.size or np.any(np.diff(indices) <= 0)):
            raise ValueError(f"size {name}: indices are not increasing frame numbers below {meta.pts.size}")
        out[str(name)] = indices
    return {"meta": meta, "sizes": out, "path": str(data.get("path", ""))}


def _entry_json(key: tuple, entry: dict) -> str:
    return json.dumps({
        "format": _FORMAT, "key": [str(k) for k in key], "path": entry["path"], "meta": entry["meta"].to_dict(),
        "sizes": {name: {"indices": idx.tolist()} for name, idx in entry["sizes"].items()},
    })


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` between processes (``flock``; a no-op where there is none)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # e.g. ENOLCK on some network file systems: writes stay atomic, just unserialised
            log.warning("frame store: cannot lock %s (%s); concurrent builds of this video may redo work", folder, exc)
        yield
    finally:
        os.close(fd)  # releases the lock


def _atomic_write(folder: Path, name: str, chunks: Iterable[bytes]) -> None:
    """Write ``folder/name`` through a uniquely named temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, folder / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        """The video's validated ``meta.json`` (see :func:`validate_entry`), re-read when the file
        changed; None when absent or malformed (a malformed one is logged once per version)."""
        digest = self.digest(key)
        path = self.root / digest / "meta.json"
        try:
            st = os.stat(path)
        except (OSError, ValueError):
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
            entry = validate_entry(json.loads(path.read_text()), key)
        except OSError:
            return None
        except ValueError as exc:  # includes JSON errors
            log.warning("frame store: ignoring %s (%s); its frames are decoded instead, the next "
                        "`vseek cache build` rewrites it", path, exc)
            entry = None
        self._remember(digest, signature, entry)
        return entry

    def _remember(self, digest: str, signature: tuple, entry: dict | None) -> None:
        with self._lock:
            self._entries[digest] = (signature, entry)
            self._entries.move_to_end(digest)
            while len(self._entries) > 4096:
                self._entries.popitem(last=False)

    def meta(self, key: tuple) -> "VideoMeta | None":
        """The stored stream metadata of the video with this key, or None."""
        entry = self._entry(key)
        return entry["meta"] if entry else None

    def indices(self, key: tuple, size: tuple[int, int]) -> np.ndarray:
        """Frame indices stored for this video at ``size`` (sorted)."""
        return _stored_indices(self._entry(key), size)

    def read(self, key: tuple, indices: Iterable[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        """The stored frames among ``indices`` at ``size`` (others are simply absent)."""
        return self._read(key, self._entry(key), indices, size)

    def _read(self, key: tuple, entry: dict | None, indices: Iterable[int], size: tuple[int, int]) -> dict[int, np.ndarray]:
        stored = _stored_indices(entry, size)
        if not stored.size:
            return {}
        want = np.asarray(sorted(set(int(i) for i in indices)), dtype=np.int64)
        rows = np.searchsorted(stored, want)
        ok = (rows < stored.size) & (stored[np.minimum(rows, stored.size - 1)] == want)
        if not ok.any():
            return {}
        h, w = size
        row_bytes = h * w * 3
        out: dict[int, np.ndarray] = {}
        path = self.folder(key) / data_file_name(size, stored)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size != stored.size * row_bytes:
                log.warning("frame store: ignoring %s (not a data file of %d frames)", path, stored.size)
                return {}
            for index, row in zip(want[ok], rows[ok]):
                buf = os.pread(fd, row_bytes, int(row) * row_bytes)
                if len(buf) != row_bytes:  # truncated under us: decode instead
                    break
                out[int(index)] = np.frombuffer(buf, np.uint8).reshape(h, w, 3).copy()
        finally:
            os.close(fd)
        return out

    def add(self, video: "Video", indices: Iterable[int], size: tuple[int, int], *, chunk: int = 128) -> int:
        """Decode and store frames ``indices`` of ``video`` at ``size``; returns how many were new.

        Writes go to uniquely named temporary files renamed into place, under the folder's lock, so
        an interrupted build leaves the store valid, a rerun continues where it stopped, and
        concurrent builds of one video take turns. No indices: nothing to do, nothing written.
        """
        from vseek_env.video import check_frame_size, decode_frames

        key = video.key
        want = np.asarray(sorted(set(int(i) for i in indices)), dtype=np.int64)
        if want.size == 0:
            return 0
        if want[0] < 0 or want[-1] >= video.num_frames:
            raise IndexError(f"frame index out of range for {video.path} ({video.num_frames} frames)")
        h, w = int(size[0]), int(size[1])
        check_frame_size(w, h, f"frame store size for {video.path}")
        name = _size_name((h, w))
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            # every write to the folder happens under this lock: a temporary file seen now was left
            # by a build that was killed
            for stale in folder.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
            with self._lock:
                self._entries.pop(self.digest(key), None)  # re-read under the lock: another builder may have written
            entry = self._entry(key)
            if entry is None:
                for leftover in folder.glob("frames_*.u8"):  # of another format or a malformed entry
                    leftover.unlink(missing_ok=True)
                entry = {"meta": video.meta, "sizes": {}, "path": str(video.path)}
            have = _stored_indices(entry, (h, w))
            new = np.setdiff1d(want, have)
            if new.size == 0 and (folder / "meta.json").exists():
                return 0
            union = np.union1d(want, have)
            old = self._read(key, entry, have, (h, w)) if have.size else {}
            native = (h, w) == (video.height, video.width)

            def rows() -> Iterator[bytes]:
                for start in range(0, union.size, chunk):
                    part = union[start : start + chunk]
                    todo = [int(i) for i in part if int(i) not in old]
                    decoded = decode_frames(video.path, video.meta, todo, None if native else (h, w)) if todo else {}
                    for i in part:
                        frame = old.get(int(i))
                        if frame is None:
                            frame = decoded[int(i)]
                        yield np.ascontiguousarray(frame, dtype=np.uint8).tobytes()

            data_file = data_file_name((h, w), union)
            _atomic_write(folder, data_file, rows())
            old_file = data_file_name((h, w), have) if have.size else None
            entry["sizes"][name] = union
            self._write_entry(key, entry)
            if old_file and old_file != data_file:
                (folder / old_file).unlink(missing_ok=True)
        return int(new.size)

    def _write_entry(self, key: tuple, entry: dict) -> None:
        folder = self.folder(key)
        _atomic_write(folder, "meta.json", [_entry_json(key, entry).encode()])
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
                if not isinstance(entry, dict) or not isinstance(entry.get("sizes"), dict):
                    continue
                videos += 1
                frames += sum(len(s.get("indices", [])) for s in entry["sizes"].values() if isinstance(s, dict))
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
