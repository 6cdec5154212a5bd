"""G3 segmenters: the target's mask at each requested time, from a seed box (and mask or name).

One interface (:class:`Segmenter`), four implementations, chosen by name with
:func:`make_segmenter`:

``given``   the source's own annotations (:mod:`.given`).
``opencv``  no model weights: optical-flow mask propagation snapped by GrabCut (:mod:`.opencv`);
            needs ``opencv-python-headless`` (``pip install 'vseek-env[pipeline]'``).
``sam``     SAM 2 through transformers, prompted with the seed box (:mod:`.sam`).
``sam3``    SAM 3 through transformers, prompted with the target's text tag, as in the paper.

``auto`` (:func:`default_segmenter`) picks ``given`` for annotated items, else SAM 3 or SAM 2 when
their weights are on disk, else ``opencv``. A result is one ``(box, mask)`` per requested time in
original-video pixels; ``(None, None)`` means the target is not visible then, and ``mask`` may be
``None`` when only a box is known.

Example:
    >>> seg = make_segmenter("given")
    >>> req = SegmentRequest(times=[0.0, 1.0], frame_shape=(90, 160), seed_time=0.0,
    ...                      seed_box=(10, 10, 40, 40), annotations={"times": [0.0, 2.0],
    ...                      "boxes": [[10, 10, 40, 40], [30, 10, 60, 40]]})
    >>> [box for box, _ in seg.segment(req)]
    [(10.0, 10.0, 40.0, 40.0), (20.0, 10.0, 50.0, 40.0)]
"""

from __future__ import annotations

from vseek_env.pipeline.segmenters.base import (
    FrameReader,
    Segment,
    Segmenter,
    SegmenterUnavailable,
    SegmentRequest,
    mask_iou,
)
from vseek_env.pipeline.segmenters.given import GivenSegmenter
from vseek_env.pipeline.segmenters.opencv import OpenCVSegmenter
from vseek_env.pipeline.segmenters.sam import Sam2Segmenter, Sam3Segmenter

__all__ = [
    "SEGMENTERS",
    "FrameReader",
    "Segment",
    "SegmentRequest",
    "Segmenter",
    "SegmenterUnavailable",
    "GivenSegmenter",
    "OpenCVSegmenter",
    "Sam2Segmenter",
    "Sam3Segmenter",
    "default_segmenter",
    "make_segmenter",
    "mask_iou",
]

_CLASSES = {"given": GivenSegmenter, "opencv": OpenCVSegmenter, "sam": Sam2Segmenter, "sam3": Sam3Segmenter}
SEGMENTERS = tuple(_CLASSES)


def make_segmenter(name: str, **kwargs) -> Segmenter:
    """A segmenter by name (:data:`SEGMENTERS`); keyword arguments go to its constructor."""
    if name not in _CLASSES:
        raise ValueError(f"unknown segmenter {name!r}; use one of {', '.join(SEGMENTERS)}")
    return _CLASSES[name](**kwargs)


def default_segmenter(*, annotated: bool, sam_model: str | None = None, sam3_model: str | None = None) -> str:
    """The segmenter ``auto`` means: ``given`` for annotated items, else the first of ``sam3``,
    ``sam`` whose weights are on disk, else the weight-free ``opencv``.

    >>> default_segmenter(annotated=True)
    'given'
    >>> default_segmenter(annotated=False, sam_model="/no/such/dir", sam3_model="/no/such/dir")
    'opencv'
    """
    if annotated:
        return "given"
    for name, model in (("sam3", sam3_model), ("sam", sam_model)):
        if model and _CLASSES[name](model=model).unavailable() is None:
            return name
    return "opencv"
