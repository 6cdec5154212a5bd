"""Binary-mask utilities: run-length encoding, boxes, ellipses, distance transform.

Conventions used throughout ``vseek_env``:

* A **mask** is a 2-D ``numpy`` array of ``bool`` with shape ``(H, W)``; row index = y,
  column index = x.  Integer or float arrays holding only 0 and 1 are accepted as input.
* A **box** is ``(x1, y1, x2, y2)`` in pixel coordinates, ``x2``/``y2`` **exclusive**: pixel
  column ``c`` covers the interval ``[c, c + 1)``, so the box of a mask whose pixels span columns
  ``3..5`` is ``x1 = 3, x2 = 6``.  A pixel belongs to a box when its centre ``(c + 0.5, r + 0.5)``
  lies inside ``[x1, x2) x [y1, y2)``.
* An **RLE** is the uncompressed COCO run-length form: ``{"size": [H, W], "counts": [...]}``
  where ``counts`` are alternating run lengths of 0s and 1s over the mask flattened in
  **column-major** (Fortran) order, always starting with a run of 0s (which may be empty).
  ``decode_rle`` also reads COCO's compressed string ``counts`` (as written by pycocotools /
  SAM), and ``encode_rle(mask, compress=True)`` writes it.

Example::

    >>> import numpy as np
    >>> m = np.zeros((4, 5), bool); m[1:3, 2:4] = True
    >>> rle = encode_rle(m); rle
    {'size': [4, 5], 'counts': [9, 2, 2, 2, 5]}
    >>> bool((decode_rle(rle) == m).all())
    True
    >>> mask_to_box(m)
    (2.0, 1.0, 4.0, 3.0)
    >>> int(box_to_mask((2, 1, 4, 3), m.shape).sum())
    4

Every function raises ``ValueError`` naming the offending argument on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "Box",
    "as_mask",
    "validate_box",
    "validate_shape",
    "encode_rle",
    "decode_rle",
    "MAX_MASK_PIXELS",
    "mask_to_box",
    "box_to_mask",
    "ellipse_mask",
    "clip_box",
    "distance_transform",
    "interior_point",
]

Box = tuple[float, float, float, float]


# --------------------------------------------------------------------------- validation


def as_mask(mask: Any, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a 2-D bool array, or raise ``ValueError`` naming ``name``.

    Accepts bool arrays and integer/float arrays whose values are all 0 or 1.

    >>> as_mask([[0, 1], [1, 0]]).dtype
    dtype('bool')
    """
    try:
        arr = np.asarray(mask)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} must be a 2-D boolean array, got {type(mask).__name__}") from exc
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) boolean array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind in "iuf":
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0/1 (or bool) values")
        return arr.astype(bool)
    raise ValueError(f"{name} must be a boolean array, got dtype {arr.dtype}")


def validate_shape(shape: Any, name: str = "shape") -> tuple[int, int]:
    """Return ``(H, W)`` from a shape ``(H, W)`` or ``(H, W, C)``; ``ValueError`` otherwise.

    >>> validate_shape((480, 640, 3))
    (480, 640)
    """
    if not isinstance(shape, (Sequence, np.ndarray)) or isinstance(shape, (str, bytes)):
        raise ValueError(f"{name} must be a (H, W) tuple, got {shape!r}")
    if len(shape) not in (2, 3):
        raise ValueError(f"{name} must be (H, W) or (H, W, C), got {tuple(shape)!r}")
    h, w = shape[0], shape[1]
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 0:
            raise ValueError(f"{name} must hold non-negative integers, got {tuple(shape)!r}")
    return int(h), int(w)


def validate_box(box: Any, name: str = "box") -> Box:
    """Return ``box`` as a tuple of 4 floats ``(x1, y1, x2, y2)`` with ``x2 > x1`` and ``y2 > y1``.

    >>> validate_box([1, 2, 3, 4])
    (1.0, 2.0, 3.0, 4.0)
    """
    if isinstance(box, (str, bytes)) or not isinstance(box, (Sequence, np.ndarray)):
        raise ValueError(f"{name} must be a sequence (x1, y1, x2, y2), got {box!r}")
    vals = list(np.asarray(box, dtype=object).ravel()) if isinstance(box, np.ndarray) else list(box)
    if len(vals) != 4:
        raise ValueError(f"{name} must have 4 numbers (x1, y1, x2, y2), got {len(vals)}")
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)):
            raise ValueError(f"{name} must hold 4 finite numbers, got {box!r}")
        out.append(float(v))
    x1, y1, x2, y2 = out
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"{name} must satisfy x2 > x1 and y2 > y1 (x2/y2 exclusive), got {tuple(out)!r}")
    return x1, y1, x2, y2


# --------------------------------------------------------------------------- RLE


def encode_rle(mask: Any, *, compress: bool = False) -> dict:
    """Run-length encode a binary mask (COCO layout, column-major, starts with a 0-run).

    Returns ``{"size": [H, W], "counts": [int, ...]}``; the counts sum to ``H * W``.
    With ``compress=True`` ``counts`` is COCO's compact ASCII string instead.

    >>> encode_rle(np.array([[0, 1], [1, 1]], bool))
    {'size': [2, 2], 'counts': [1, 3]}
    >>> encode_rle(np.array([[1, 0], [0, 0]], bool))
    {'size': [2, 2], 'counts': [0, 1, 3]}
    """
    m = as_mask(mask)
    h, w = m.shape
    flat = m.T.ravel()  # column-major
    if flat.size == 0:
        counts: list[int] = []
    else:
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        edges = np.concatenate(([0], change, [flat.size]))
        counts = np.diff(edges).astype(np.int64).tolist()
        if flat[0]:
            counts.insert(0, 0)
    if compress:
        return {"size": [h, w], "counts": _counts_to_string(counts)}
    return {"size": [h, w], "counts": [int(c) for c in counts]}


#: Largest mask :func:`decode_rle` allocates (H * W), about an 8K x 8K frame. Sizes come from data:
#: a 273-byte row declaring 40000 x 40000 must fail before 1.6 GB are allocated, not after.
MAX_MASK_PIXELS = 1 << 26


def decode_rle(rle: Mapping, *, shape: Any = None, max_pixels: int = MAX_MASK_PIXELS) -> np.ndarray:
    """Decode an RLE produced by :func:`encode_rle` (or COCO/pycocotools) to a bool mask.

    ``counts`` may be a list of non-negative ints or COCO's compressed string (str or bytes).
    The declared size is checked before anything is allocated: against ``shape`` (the frame the
    mask belongs to, ``(H, W)`` or ``(H, W, C)``) when given, and against ``max_pixels``.

    >>> decode_rle({"size": [2, 2], "counts": [1, 3]}).astype(int).tolist()
    [[0, 1], [1, 1]]
    >>> decode_rle({"size": [40000, 40000], "counts": [1600000000]})
    Traceback (most recent call last):
    ValueError: rle['size'] [40000, 40000] is 1600000000 pixels; masks are limited to 67108864 (MAX_MASK_PIXELS)
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise ValueError("rle must be a mapping with keys 'size' and 'counts'")
    size = rle["size"]
    if isinstance(size, (str, bytes)) or not isinstance(size, (Sequence, np.ndarray)) or len(size) != 2:
        raise ValueError(f"rle['size'] must be [H, W], got {size!r}")
    h, w = validate_shape(tuple(size), name="rle['size']")
    if shape is not None and (h, w) != validate_shape(shape):
        raise ValueError(f"rle['size'] {[h, w]} does not match the frame's {list(validate_shape(shape))}")
    if h * w > max_pixels:
        raise ValueError(f"rle['size'] {[h, w]} is {h * w} pixels; masks are limited to {max_pixels} (MAX_MASK_PIXELS)")
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        counts = _string_to_counts(counts)
    elif isinstance(counts, (Sequence, np.ndarray)):
        counts = list(counts)
        for c in counts:
            if isinstance(c, bool) or not isinstance(c, Integral) or c < 0:
                raise ValueError(f"rle['counts'] must hold non-negative integers, got {c!r}")
    else:
        raise ValueError(f"rle['counts'] must be a list of ints or a COCO string, got {type(counts).__name__}")
    total = int(sum(int(c) for c in counts))
    if total != h * w:
        raise ValueError(f"rle['counts'] sum to {total}, expected H*W = {h * w} for size {[h, w]}")
    values = (np.arange(len(counts)) % 2).astype(bool)
    flat = np.repeat(values, np.asarray(counts, dtype=np.int64)) if counts else np.zeros(0, bool)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def _counts_to_string(counts: list[int]) -> str:
    """COCO compressed counts: delta (from i > 2) + 5-bit little-endian groups, offset 48."""
    out = []
    for i, c in enumerate(counts):
        x = int(c)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5  # arithmetic shift, like C on a signed long
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def _string_to_counts(s: str | bytes) -> list[int]:
    if isinstance(s, bytes):
        try:
            s = s.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError("rle['counts'] string must be ASCII") from exc
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("rle['counts'] string is truncated")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"rle['counts'] string has an invalid character {s[p]!r}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        if x < 0:
            raise ValueError("rle['counts'] string decodes to a negative run")
        counts.append(x)
    return counts


# --------------------------------------------------------------------------- boxes


def mask_to_box(mask: Any) -> Box | None:
    """Tight box ``(x1, y1, x2, y2)`` (x2/y2 exclusive) of the True pixels, or ``None`` if empty.

    >>> m = np.zeros((5, 5), bool); m[2, 3] = True
    >>> mask_to_box(m)
    (3.0, 2.0, 4.0, 3.0)
    """
    m = as_mask(mask)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def clip_box(box: Any, shape: Any) -> Box | None:
    """Intersect ``box`` with the frame ``[0, W) x [0, H)``; ``None`` when they do not overlap.

    >>> clip_box((-5, 2, 4, 50), (10, 10))
    (0.0, 2.0, 4.0, 10.0)
    """
    x1, y1, x2, y2 = validate_box(box)
    h, w = validate_shape(shape)
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    if cx2 <= cx1 or cy2 <= cy1:
        return None
    return cx1, cy1, cx2, cy2


def _pixel_ranges(box: Box, h: int, w: int) -> tuple[int, int, int, int]:
    """Index ranges [c0, c1) x [r0, r1) of pixels whose centres may fall in ``box``."""
    x1, y1, x2, y2 = box
    c0 = max(0, int(math.floor(x1 - 0.5)))
    r0 = max(0, int(math.floor(y1 - 0.5)))
    c1 = min(w, int(math.ceil(x2 + 0.5)))
    r1 = min(h, int(math.ceil(y2 + 0.5)))
    return c0, r0, c1, r1


def _ensure_centre_pixel(m: np.ndarray, box: Box) -> None:
    """If ``m`` is empty but the box overlaps the frame, set the pixel at the overlap's centre."""
    if m.any():
        return
    h, w = m.shape
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    if cx2 <= cx1 or cy2 <= cy1:
        return
    c = min(w - 1, int(math.floor((cx1 + cx2) / 2)))
    r = min(h - 1, int(math.floor((cy1 + cy2) / 2)))
    m[r, c] = True


def box_to_mask(box: Any, shape: Any) -> np.ndarray:
    """Bool mask of the pixels whose centres lie in ``box`` (clipped to the frame).

    ``shape`` is ``(H, W)`` or ``(H, W, C)``.  A box that overlaps the frame but covers no pixel
    centre (a sub-pixel box) still yields the one pixel at the centre of the overlap, so a box
    inside the frame never gives an empty mask.  For integer boxes inside the frame,
    ``mask_to_box(box_to_mask(box, shape)) == box``.

    >>> box_to_mask((1, 0, 3, 1), (2, 4)).astype(int).tolist()
    [[0, 1, 1, 0], [0, 0, 0, 0]]
    """
    b = validate_box(box)
    h, w = validate_shape(shape)
    m = np.zeros((h, w), bool)
    c0, r0, c1, r1 = _pixel_ranges(b, h, w)
    if c1 > c0 and r1 > r0:
        xs = np.arange(c0, c1) + 0.5
        ys = np.arange(r0, r1) + 0.5
        inx = (xs >= b[0]) & (xs < b[2])
        iny = (ys >= b[1]) & (ys < b[3])
        m[r0:r1, c0:c1] = iny[:, None] & inx[None, :]
    _ensure_centre_pixel(m, b)
    return m


def ellipse_mask(box: Any, shape: Any) -> np.ndarray:
    """Bool mask of the ellipse inscribed in ``box`` (pixel centres inside or on the ellipse).

    Like :func:`box_to_mask`, never empty when the box overlaps the frame, and always a subset of
    ``box_to_mask(box, shape)`` apart from that single fallback pixel.

    >>> ellipse_mask((0, 0, 5, 5), (5, 5)).astype(int).tolist()[0]
    [0, 1, 1, 1, 0]
    """
    b = validate_box(box)
    h, w = validate_shape(shape)
    m = np.zeros((h, w), bool)
    c0, r0, c1, r1 = _pixel_ranges(b, h, w)
    if c1 > c0 and r1 > r0:
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        rx, ry = (b[2] - b[0]) / 2, (b[3] - b[1]) / 2
        xs = (np.arange(c0, c1) + 0.5 - cx) / rx
        ys = (np.arange(r0, r1) + 0.5 - cy) / ry
        inside = ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0 + 1e-9
        xs_abs = np.arange(c0, c1) + 0.5
        ys_abs = np.arange(r0, r1) + 0.5
        inbox = ((ys_abs >= b[1]) & (ys_abs < b[3]))[:, None] & ((xs_abs >= b[0]) & (xs_abs < b[2]))[None, :]
        m[r0:r1, c0:c1] = inside & inbox
    _ensure_centre_pixel(m, b)
    return m


# --------------------------------------------------------------------------- distance transform


def distance_transform(mask: Any, *, max_elements: int = 1 << 24) -> np.ndarray:
    """Exact Euclidean distance from every True pixel to the nearest False pixel.

    Pixels outside the array count as False, so a mask touching the border has distance 1 at
    that border.  False pixels get 0.  Separable algorithm: a vectorised 1-D pass along the
    longer axis, then a brute-force minimum along the shorter one, in row chunks of at most
    ``max_elements`` temporaries — O(H·W·min(H, W)) time, fine for masks up to a few hundred
    pixels a side (callers downscale larger masks, see :func:`interior_point`).

    >>> distance_transform(np.ones((3, 3), bool)).tolist()[1]
    [1.0, 2.0, 1.0]
    """
    m = as_mask(mask)
    if m.size == 0:
        return np.zeros(m.shape, float)
    transpose = m.shape[1] > m.shape[0]  # make axis 1 the shorter one for the quadratic pass
    if transpose:
        m = m.T
    h, w = m.shape
    # Pass 1 (axis 0, vectorised): distance to the nearest False in the same column,
    # with virtual False rows at -1 and h.
    idx = np.arange(h)[:, None]
    big = np.int64(h + w + 2)
    prev = np.where(~m, idx, -1)
    prev = np.maximum.accumulate(prev, axis=0)
    nxt = np.where(~m, idx, h)
    nxt = np.minimum.accumulate(nxt[::-1], axis=0)[::-1]
    g = np.minimum(idx - prev, nxt - idx).astype(np.float64)
    g = np.minimum(g, big)
    # Pass 2 (axis 1): D^2(y, x) = min_x' g(y, x')^2 + (x - x')^2, with virtual zero columns
    # at x' = -1 and x' = w.
    gp = np.zeros((h, w + 2))
    gp[:, 1:-1] = g
    xs = np.arange(w, dtype=np.float64)
    xp = np.arange(-1, w + 1, dtype=np.float64)
    dx2 = (xs[:, None] - xp[None, :]) ** 2  # (w, w+2)
    out = np.empty((h, w))
    chunk = max(1, int(max_elements // max(1, w * (w + 2))))
    for r in range(0, h, chunk):
        sl = gp[r : r + chunk]
        out[r : r + chunk] = (sl[:, None, :] ** 2 + dx2[None, :, :]).min(axis=2)
    out = np.sqrt(out)
    out[~m] = 0.0
    return out.T if transpose else out


def interior_point(mask: Any, *, max_side: int = 160) -> tuple[float, float] | None:
    """The pixel centre ``(x, y)`` inside ``mask`` farthest from its boundary (the frame edge
    counts as boundary); ties go to the pixel nearest the mask's centroid.  ``None`` if empty.

    Masks whose bounding box is larger than ``max_side`` are reduced by integer block factors
    first (a block is kept only if it lies entirely in the mask; if none does, any-pixel blocks
    are used and the point snapped back onto a mask pixel), so the cost stays bounded.  The
    returned point always lies on a True pixel.

    >>> m = np.zeros((9, 9), bool); m[1:8, 2:7] = True
    >>> interior_point(m)
    (4.5, 4.5)
    """
    m = as_mask(mask)
    box = mask_to_box(m)
    if box is None:
        return None
    h, w = m.shape
    # crop to the box plus a one-pixel ring (keeps frame-edge semantics: pad only inside frame)
    c0, r0, c1, r1 = int(box[0]), int(box[1]), int(box[2]), int(box[3])
    crop = m[r0:r1, c0:c1]
    f = max(1, int(math.ceil(max(crop.shape) / max_side)))

    def reduce(arr: np.ndarray, fn) -> np.ndarray:
        ch, cw = arr.shape
        ph, pw = -ch % f, -cw % f
        padded = np.pad(arr, ((0, ph), (0, pw)), constant_values=False)
        return fn(padded.reshape((ch + ph) // f, f, (cw + pw) // f, f), axis=(1, 3))

    small = reduce(crop, np.all) if f > 1 else crop
    if not small.any():  # thin shape: no block lies fully inside; use any-pixel blocks
        small = reduce(crop, np.any)
    # edges of the crop that are not frame edges border the background anyway (the crop is the
    # tight box, so the ring outside it inside the frame is False) — the EDT's virtual False
    # border therefore matches the full-frame semantics.
    d = distance_transform(small)
    best = d.max()
    rr, cc = np.nonzero(d >= best - 1e-9)
    ys, xs = np.nonzero(small)
    cy, cx = ys.mean(), xs.mean()
    k = int(np.argmin((rr - cy) ** 2 + (cc - cx) ** 2))
    br, bc = int(rr[k]), int(cc[k])
    if f == 1:
        return c0 + bc + 0.5, r0 + br + 0.5
    # centre pixel of the block (inside the mask for all-blocks), or nearest mask pixel in it
    blk = crop[br * f : (br + 1) * f, bc * f : (bc + 1) * f]
    py, px = (blk.shape[0] - 1) / 2, (blk.shape[1] - 1) / 2
    by, bx = np.nonzero(blk)
    j = int(np.argmin((by - py) ** 2 + (bx - px) ** 2))
    return c0 + bc * f + int(bx[j]) + 0.5, r0 + br * f + int(by[j]) + 0.5
