"""Gymnasium spaces for text in and out of the env."""

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
# (AsyncVectorEnv's shared memory reads Text observations only once, so VideoSeeker vector envs use
# shared_memory=False; see vseek_env.make_vec.)
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
