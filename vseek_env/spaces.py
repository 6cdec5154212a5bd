"""Gymnasium spaces for text in and out of the env and for its frames, with AsyncVectorEnv shared memory."""

from __future__ import annotations

import string
from typing import Any

from gymnasium import spaces

_SAMPLE_CHARSET = string.ascii_letters + string.digits + string.punctuation + " \n"


class UnicodeText(spaces.Text):
    """Any ``str`` of ``min_length..max_length`` characters, whatever its characters.

    ``gymnasium.spaces.Text`` only admits a fixed charset; model responses and dataset questions are
    arbitrary Unicode. Sampling draws from printable ASCII.

    >>> UnicodeText(10).contains("héllo → ok")
    True
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, UnicodeText) and (self.min_length, self.max_length) == (other.min_length, other.max_length)


# Gymnasium flattens Text values to indices into the space's charset, which would garble any
# character outside it; UnicodeText flattens to Unicode code points + 1 (0 is padding).
from gymnasium.spaces.utils import flatten, flatten_space, unflatten  # noqa: E402

import numpy as np  # noqa: E402


@flatten.register(UnicodeText)
def _flatten_unicode_text(space: UnicodeText, x: str) -> np.ndarray:
    out = np.zeros(space.max_length, dtype=np.int32)
    codes = np.frombuffer(x[: space.max_length].encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    out[: codes.size] = codes.astype(np.int64) + 1
    return out


@flatten_space.register(UnicodeText)
def _flatten_unicode_text_space(space: UnicodeText) -> spaces.Box:
    return spaces.Box(0, 0x110000, (space.max_length,), np.int32)


@unflatten.register(UnicodeText)
def _unflatten_unicode_text(space: UnicodeText, x: np.ndarray) -> str:
    values = np.asarray(x)
    return (values[values > 0].astype(np.uint32) - 1).tobytes().decode("utf-32-le", "surrogatepass")


class FrameSequence(spaces.Sequence):
    """A stacked ``Sequence`` of frames with at most ``max_length`` of them.

    The bound is what lets ``AsyncVectorEnv`` keep the frames in shared memory (a plain
    ``Sequence`` has no size to allocate), so ``gym.make_vec(..., vectorization_mode="async")``
    works with its defaults.

    >>> s = FrameSequence(spaces.Box(0, 255, (2, 2, 3), np.uint8), max_length=4)
    >>> s.contains(np.zeros((3, 2, 2, 3), np.uint8)), s.contains(np.zeros((5, 2, 2, 3), np.uint8))
    (True, False)
    """

    def __init__(self, frame: spaces.Box, max_length: int, *, seed: Any = None) -> None:
        super().__init__(frame, stack=True, seed=seed)
        self.max_length = int(max_length)

    def contains(self, x: Any) -> bool:
        return super().contains(x) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"FrameSequence({self.feature_space}, max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, FrameSequence) and super().__eq__(other) and self.max_length == other.max_length


# -- AsyncVectorEnv shared memory ----------------------------------------------------------------
# Gymnasium reads an observation out of shared memory once, when the vector env starts, and then
# hands out that object after every step: fine for numpy views (Box), wrong for values decoded into
# new objects (Text strings, frame tuples), which would freeze at their first value. These spaces
# therefore read as live views that decode on access; ``deepcopy`` (what AsyncVectorEnv applies
# with its default ``copy=True``) materialises them into the tuples the non-shared path returns.
import collections.abc  # noqa: E402
import ctypes  # noqa: E402

from gymnasium.vector.utils.shared_memory import (  # noqa: E402
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)


class _SharedView(collections.abc.Sequence):
    """One value per env, decoded from shared memory on each access."""

    def __init__(self, n: int, get) -> None:
        self._n, self._get = n, get

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self._get(k) for k in range(self._n)[i])
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._get(i % self._n)

    def __deepcopy__(self, memo) -> tuple:
        return tuple(_copy(self._get(k)) for k in range(self._n))

    def __repr__(self) -> str:
        return repr(tuple(self))


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value


@create_shared_memory.register(UnicodeText)
def _create_text_memory(space: UnicodeText, n: int = 1, ctx: Any = None):
    import multiprocessing as mp

    return (ctx or mp).Array(ctypes.c_int32, n * space.max_length)


@read_from_shared_memory.register(UnicodeText)
def _read_text_memory(space: UnicodeText, shared_memory, n: int = 1) -> _SharedView:
    data = np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape(n, space.max_length)
    return _SharedView(n, lambda i: _unflatten_unicode_text(space, data[i]))


@write_to_shared_memory.register(UnicodeText)
def _write_text_memory(space: UnicodeText, index: int, value: str, shared_memory) -> None:
    data = np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape(-1, space.max_length)
    data[index] = _flatten_unicode_text(space, value)


@create_shared_memory.register(FrameSequence)
def _create_frames_memory(space: FrameSequence, n: int = 1, ctx: Any = None):
    import multiprocessing as mp

    ctx = ctx or mp
    size = int(np.prod(space.feature_space.shape)) * space.max_length
    return ctx.Array(ctypes.c_uint8, n * size), ctx.Array(ctypes.c_int32, n)


def _frames_arrays(space: FrameSequence, shared_memory) -> tuple[np.ndarray, np.ndarray]:
    pixels, counts = shared_memory
    shape = (-1, space.max_length, *space.feature_space.shape)
    return np.frombuffer(pixels.get_obj(), dtype=np.uint8).reshape(shape), np.frombuffer(counts.get_obj(), dtype=np.int32)


@read_from_shared_memory.register(FrameSequence)
def _read_frames_memory(space: FrameSequence, shared_memory, n: int = 1) -> _SharedView:
    pixels, counts = _frames_arrays(space, shared_memory)
    return _SharedView(n, lambda i: pixels[i, : counts[i]])


@write_to_shared_memory.register(FrameSequence)
def _write_frames_memory(space: FrameSequence, index: int, value: Any, shared_memory) -> None:
    pixels, counts = _frames_arrays(space, shared_memory)
    frames = np.asarray(value, dtype=np.uint8).reshape(-1, *space.feature_space.shape)
    if len(frames) > space.max_length:
        raise ValueError(f"{len(frames)} frames do not fit the observation's {space.max_length}")
    pixels[index, : len(frames)] = frames
    counts[index] = len(frames)
