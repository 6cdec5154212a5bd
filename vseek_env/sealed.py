"""Immutable frame stacks whose copies cost a memory mapping instead of a memcpy.

Gymnasium requires every observation to own its data (``check_env`` refuses two observations that
share memory), so a 64-frame observation used to cost a 4.9 MB copy per step, more than the rest
of a warm step. :func:`seal` writes a stack once into a sealed in-memory file (Linux
``memfd_create``); :func:`fresh_copy` then maps that file privately, copy-on-write: a new, writable
array at its own address (``np.shares_memory`` with any other is False, and writing to it touches
no other array) whose pages are shared with the sealed file until written. Elsewhere, or past the
descriptor budget, both fall back to ordinary arrays and copies.

Example:
    >>> frames = seal([np.zeros((512, 512, 3), np.uint8)] * 4)     # 3 MB: sealed on Linux
    >>> a, b = fresh_copy(frames), fresh_copy(frames)
    >>> a[0, 0, 0, 0] = 7
    >>> int(b[0, 0, 0, 0]), bool(np.shares_memory(a, b)), a.flags.writeable
    (0, False, True)
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref

import numpy as np

#: Smaller stacks are plain arrays: their copy is cheap, and every live mapping counts against the
#: kernel's per-process limit (``vm.max_map_count``, 65,530 by default; 1 MiB each is 64 GiB).
MIN_SEALED_BYTES = 1 << 20
#: Sealed stacks hold one descriptor each while they live; past this many, new stacks are plain.
MAX_SEALED_FILES = 64

_open_files = 0
_lock = threading.Lock()


class SealedArray(np.ndarray):
    """A read-only array backed by a sealed memory file (see :func:`seal`)."""

    _fd: int | None = None

    def __array_finalize__(self, obj) -> None:
        self._fd = None  # views and slices do not own the file: their copies are plain


def seal(frames) -> np.ndarray:
    """``np.stack(frames)``, read-only; a :class:`SealedArray` when it is big enough and the
    platform allows, so :func:`fresh_copy` of it costs no copy."""
    first = np.asarray(frames[0])
    shape, nbytes = (len(frames), *first.shape), len(frames) * first.nbytes
    sealed = _sealed_file(nbytes) if first.dtype == np.uint8 and nbytes >= MIN_SEALED_BYTES else None
    if sealed is None:
        out = np.stack(frames)
        out.setflags(write=False)
        return out
    fd = sealed
    try:
        with mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE) as m:
            staging = np.frombuffer(m, np.uint8).reshape(shape)
            np.stack(frames, out=staging)
            del staging  # the mapping closes only once no array exports it
        _seal_writes(fd)
        view = np.frombuffer(mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ), np.uint8)
    except (OSError, ValueError):
        _release(fd)
        out = np.stack(frames)
        out.setflags(write=False)
        return out
    out = view.reshape(shape).view(SealedArray)
    out._fd = fd
    weakref.finalize(out, _release, fd)
    return out


def fresh_copy(stack: np.ndarray) -> np.ndarray:
    """A new writable array equal to ``stack`` that shares no memory with it or any other copy."""
    fd = getattr(stack, "_fd", None)
    if fd is None:
        return np.array(stack)
    try:
        m = mmap.mmap(fd, stack.nbytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, ValueError):  # e.g. the mapping limit: copy instead
        return np.array(stack)
    return np.frombuffer(m, np.uint8).reshape(stack.shape)


def _sealed_file(nbytes: int) -> int | None:
    """A new memory file of ``nbytes``, within the descriptor budget; None where there is none."""
    global _open_files
    if not hasattr(os, "memfd_create"):
        return None
    with _lock:
        if _open_files >= MAX_SEALED_FILES:
            return None
        _open_files += 1
    try:
        fd = os.memfd_create("vseek-obs-frames", os.MFD_CLOEXEC | getattr(os, "MFD_ALLOW_SEALING", 0))
        os.ftruncate(fd, nbytes)
        return fd
    except OSError:
        with _lock:
            _open_files -= 1
        return None


def _seal_writes(fd: int) -> None:
    """Forbid any later write, so no private mapping can ever see the file change. Best effort:
    kernels without seals still get a file that nothing writes after :func:`seal`."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    except (ImportError, AttributeError, OSError):
        pass


def _release(fd: int) -> None:
    global _open_files
    try:
        os.close(fd)
    except OSError:
        pass
    with _lock:
        _open_files -= 1


def open_sealed_files() -> int:
    """Descriptors held by live sealed stacks (for leak checks)."""
    return _open_files
