"""``given``: the source's own annotations (boxes and/or RLE masks at known times).

Boxes between annotated times are interpolated linearly; nothing is extrapolated.

Example:
    >>> req = SegmentRequest(times=[0.0, 1.0], frame_shape=(90, 160), seed_time=0.0,
    ...                      seed_box=(10, 10, 40, 40), annotations={"times": [0.0, 2.0],
    ...                      "boxes": [[10, 10, 40, 40], [30, 10, 60, 40]]})
    >>> [box for box, _ in GivenSegmenter().segment(req)]
    [(10.0, 10.0, 40.0, 40.0), (20.0, 10.0, 50.0, 40.0)]
"""

from __future__ import annotations

import numpy as np

from vseek_env.masks import clip_box, decode_rle, mask_to_box
from vseek_env.pipeline.segmenters.base import Segment, Segmenter, SegmentRequest

__all__ = ["GivenSegmenter"]


class GivenSegmenter(Segmenter):
    """Masks and boxes from the source's annotations (no decoding)."""

    name = "given"

    def __init__(self, tolerance_s: float = 0.5) -> None:
        self.tolerance_s = tolerance_s

    def segment(self, request: SegmentRequest) -> list[Segment]:
        ann = request.annotations or {}
        times = [float(t) for t in ann.get("times") or ()]
        boxes = [tuple(float(v) for v in b) if b is not None else None for b in ann.get("boxes") or ()]
        masks = list(ann.get("masks") or [None] * len(times))
        if not times:
            raise ValueError("the 'given' segmenter needs annotations (times + boxes or masks); use --segmenter opencv")
        order = np.argsort(times)
        times = [times[i] for i in order]
        boxes = [boxes[i] if i < len(boxes) else None for i in order]
        masks = [masks[i] if i < len(masks) else None for i in order]
        shape = request.frame_shape
        out: list[Segment] = []
        for t in request.times:
            k = int(np.argmin([abs(t - a) for a in times]))
            if abs(times[k] - t) <= self.tolerance_s:
                mask = decode_rle(masks[k]) if masks[k] else None
                box = boxes[k] if boxes[k] is not None else (mask_to_box(mask) if mask is not None else None)
                out.append((clip_box(box, shape) if box else None, mask if box else None))
                continue
            right = next((i for i, a in enumerate(times) if a > t), None)
            if right is None or right == 0 or boxes[right] is None or boxes[right - 1] is None:
                out.append((None, None))
                continue
            t0, t1 = times[right - 1], times[right]
            w = (t - t0) / (t1 - t0)
            box = tuple((1 - w) * a + w * b for a, b in zip(boxes[right - 1], boxes[right]))
            out.append((clip_box(box, shape), None))
        return out
