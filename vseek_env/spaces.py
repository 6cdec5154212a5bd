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
