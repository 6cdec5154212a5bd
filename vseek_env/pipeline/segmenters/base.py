"""The segmenter interface: a request for one sample, ``(box, mask)`` per requested time.

Example:
    >>> m = np.zeros((4, 4), bool); m[:2] = True
    >>> mask_iou(m, m), mask_iou(m, ~m), mask_iou(None, None)
    (1.0, 0.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from vseek_env.masks import Box

__all__ = ["Segment", "SegmentRequest", "Segmenter", "SegmenterUnavailable", "FrameReader", "mask_iou"]

Segment = tuple[Box | None, np.ndarray | None]
FrameReader = Callable[[Sequence[float], int | None], tuple[np.ndarray, np.ndarray]]


class SegmenterUnavailable(RuntimeError):
    """The chosen segmenter cannot run here (missing package or weights); the message says what to do."""


@dataclass
class SegmentRequest:
    """What a segmenter gets for one sample.

    Attributes:
        times: output times (s), increasing — the 1 fps grid of the target's window.
        frame_shape: (H, W) of the original video; masks are returned at this size.
        seed_time, seed_box: where the target is known (original pixels).
        seed_mask: its mask at ``seed_time`` when known.
        read_frames: ``read_frames(times, max_pixels) -> (frames (N, h, w, 3), true_times)``;
            ``max_pixels=None`` decodes at full resolution.
        annotations: the source's ``{"times", "boxes", "masks"}`` (original pixels), if any.
        text: the target's short name (G2's ``tag``), for text-prompted segmenters.
    """

    times: Sequence[float]
    frame_shape: tuple[int, int]
    seed_time: float
    seed_box: Box
    seed_mask: np.ndarray | None = None
    read_frames: FrameReader | None = None
    annotations: dict | None = None
    text: str | None = None


class Segmenter:
    """Base class: ``segment(request) -> [(box, mask), ...]`` aligned with ``request.times``."""

    name = "base"

    def unavailable(self) -> str | None:
        """``None`` when the segmenter can run, else the reason and the fix."""
        return None

    def segment(self, request: SegmentRequest) -> list[Segment]:
        raise NotImplementedError


def mask_iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Intersection over union of two bool masks (``None`` = empty); two empty masks give 1.0."""
    if a is None and b is None:
        return 1.0
    if a is None or b is None:
        return 0.0
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum()) / union
