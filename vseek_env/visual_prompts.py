"""The eight visual-prompt styles of VideoSeeker / V2P-Bench, rendered with numpy + Pillow.

A visual prompt marks one target instance on one video frame so that a question can say
"the target in the highlighted box" instead of a long referring expression.  Styles, in the
paper's order (:data:`STYLES`)::

    rectangle     thin box outline drawn just outside the target box
    mask_contour  thin band hugging the target mask from outside (the target stays unpainted)
    ellipse       ellipse around the target box
    triangle      thin triangle outline whose vertices lie inside the mask
    scribble      thin cubic Bezier stroke through points inside the mask
    point         small filled dot inside the mask near the box centre
    arrow         arrow from outside the box; the head's tip touches the target
    set_of_mark   small numbered labels on the target and on the ``others`` objects (Set-of-Mark)

Rendering rules (see :func:`render_visual_prompt`):

* Marks are drawn in placeholder grey levels on a transparent RGBA overlay (``ImageDraw``), then
  coloured and copied opaquely onto a copy of the frame; the input frame is never modified.
* **Legible.** Stroke widths, dot radius and label size scale with the target (``t``, the square
  root of its mask area) and are capped by the frame scale ``s = max(H, W) / 336`` (ViP-LLaVA's
  anchor), so a mark drawn *on* the target covers at most about half of it; a label that would
  cover more sits just outside the object instead.  The colour is chosen from the pixels the mark
  actually covers and from the target's own pixels (:func:`pick_mark_color`): the palette entry
  farthest from both, so a magenta mark is never drawn on a magenta target.  Marks are opaque.
  Thickness and placement are drawn from the ``rng`` — the same seed gives the same image.
* The target is a ``box`` and/or a ``mask``.  The box is clipped to the frame; a missing mask is
  the clipped box's inscribed ellipse (:func:`vseek_env.masks.ellipse_mask`); a missing box is the
  mask's tight box.
* **Locality guarantee.** Every changed pixel lies inside :func:`prompt_region`: the target box
  (the union of the given box, clipped to the frame, and the mask's box) dilated on each side by
  ``prompt_margin(box, shape) = 0.5 * max(box_w, box_h) + max(32 * s, 16)`` pixels, clipped to
  the frame.  The fixed part leaves room for the arrow's shaft, which starts *outside* the box
  (whenever the frame leaves room there) but inside this margin.  Labels of more than three digits
  are the only exception (their square may be wider).  ``set_of_mark`` labels on ``others`` lie
  in the same margin around *their* boxes.

Example::

    >>> import numpy as np
    >>> frame = np.full((120, 160, 3), 90, np.uint8)
    >>> p = render_visual_prompt(frame, "ellipse", box=(40, 30, 90, 80), rng=0)
    >>> p.image.shape, p.style, p.phrase
    ((120, 160, 3), 'ellipse', 'the target circled by the ellipse')
    >>> bool((frame == 90).all())   # input untouched
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .masks import (
    Box,
    as_mask,
    clip_box,
    distance_transform,
    ellipse_mask,
    interior_point,
    mask_to_box,
    validate_box,
)

__all__ = [
    "STYLES",
    "PALETTE",
    "PromptStyle",
    "PROMPT_STYLES",
    "phrase_for",
    "RenderedPrompt",
    "render_visual_prompt",
    "contact_sheet",
    "pick_mark_color",
    "mark_legibility",
    "som_labels",
    "som_label_size",
    "label_glyph",
    "prompt_margin",
    "prompt_region",
    "distance_transform",
    "interior_point",
]

STYLES: tuple[str, ...] = (
    "rectangle",
    "mask_contour",
    "ellipse",
    "triangle",
    "scribble",
    "point",
    "arrow",
    "set_of_mark",
)

#: Named colours a prompt may take (RGB).  ``render_visual_prompt`` picks the one that contrasts
#: most with the pixels under the mark and with the target (:func:`pick_mark_color`) unless
#: ``color=`` names one.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
    "orange": (255, 165, 0),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}
#: The overlay is drawn in grey levels first: 255 = the mark colour, 0 = the ink of a label
#: (black or white, whichever contrasts with the mark colour); antialiased text mixes the two.
_MARK = (255, 255, 255, 255)
_INK = (0, 0, 0, 255)

ANCHOR_SIZE = 336  # ViP-LLaVA's image_size_anchor: sizes are given in pixels at 336 px
MARGIN_BOX_FRACTION = 0.5  # of the target box's larger side
MARGIN_PAD_AT_ANCHOR = 32.0  # pixels at 336 px, scaled by s
MARGIN_PAD_MIN = 16.0  # pixels, floor for small frames
# Final safety net: pixels outside prompt_region are restored after compositing.  The renderers
# already stay inside it by construction; tests switch this off to check that.
_CLIP_TO_REGION = True


@dataclass(frozen=True)
class PromptStyle:
    """One visual-prompt style.

    ``phrase`` replaces the ``<vp>`` placeholder in a question (``{label}`` is filled in for
    ``set_of_mark``); ``needs_mask`` is True when the style is drawn from the target's mask (a
    box-only target then uses the box's inscribed ellipse as its mask).

    >>> PROMPT_STYLES["arrow"].phrase
    'the target pointed to by the arrow'
    """

    name: str
    phrase: str
    needs_mask: bool


PROMPT_STYLES: dict[str, PromptStyle] = {
    s.name: s
    for s in (
        PromptStyle("rectangle", "the target in the highlighted box", False),
        PromptStyle("mask_contour", "the target outlined by the contour", True),
        PromptStyle("ellipse", "the target circled by the ellipse", False),
        PromptStyle("triangle", "the target marked by the triangle", True),
        PromptStyle("scribble", "the target marked by the scribble", True),
        PromptStyle("point", "the target marked by the dot", True),
        PromptStyle("arrow", "the target pointed to by the arrow", False),
        PromptStyle("set_of_mark", "the target marked with number {label}", True),
    )
}


def _check_style(style: Any) -> str:
    if not isinstance(style, str) or style not in PROMPT_STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}; got {style!r}")
    return style


def _check_label(label: Any) -> int:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
        raise ValueError(f"label must be a non-negative integer, got {label!r}")
    return int(label)


def phrase_for(style: str, label: int = 1) -> str:
    """The phrase that replaces ``<vp>`` in a question for ``style``.

    >>> phrase_for("rectangle")
    'the target in the highlighted box'
    >>> phrase_for("set_of_mark", label=3)
    'the target marked with number 3'
    """
    return PROMPT_STYLES[_check_style(style)].phrase.format(label=_check_label(label))


@dataclass(frozen=True, eq=False)
class RenderedPrompt:
    """A rendered visual prompt.

    ``image`` is a new (H, W, 3) uint8 array; ``color`` a :data:`PALETTE` name; ``phrase`` the
    ``<vp>`` replacement; ``target_box`` the reference box of the locality guarantee and
    ``region`` the integer pixel bounds ``(x1, y1, x2, y2)`` (exclusive) that contain every
    changed pixel.
    """

    image: np.ndarray
    style: str
    color: str
    phrase: str
    label: int = 1
    target_box: Box = (0.0, 0.0, 0.0, 0.0)
    region: tuple[int, int, int, int] = (0, 0, 0, 0)


# --------------------------------------------------------------------------- geometry helpers


def _scale(h: int, w: int) -> float:
    return max(h, w) / ANCHOR_SIZE


def prompt_margin(box: Any, frame_shape: Any) -> float:
    """Margin (pixels) around the target box within which all marks are drawn.

    ``0.5 * max(box_w, box_h) + max(32 * s, 16)`` with ``s = max(H, W) / 336``.

    >>> prompt_margin((10, 10, 30, 20), (336, 336))
    42.0
    """
    x1, y1, x2, y2 = validate_box(box)
    h, w = _frame_hw(frame_shape)
    return MARGIN_BOX_FRACTION * max(x2 - x1, y2 - y1) + max(MARGIN_PAD_AT_ANCHOR * _scale(h, w), MARGIN_PAD_MIN)


def prompt_region(box: Any, frame_shape: Any) -> tuple[int, int, int, int]:
    """Integer pixel bounds ``(x1, y1, x2, y2)`` (exclusive) of the target box dilated by
    :func:`prompt_margin`, clipped to the frame.  Every pixel a renderer changes lies inside.

    >>> prompt_region((10, 10, 30, 20), (336, 336))
    (0, 0, 72, 62)
    """
    x1, y1, x2, y2 = validate_box(box)
    h, w = _frame_hw(frame_shape)
    m = prompt_margin(box, (h, w))
    return (
        max(0, int(math.floor(x1 - m))),
        max(0, int(math.floor(y1 - m))),
        min(w, int(math.ceil(x2 + m))),
        min(h, int(math.ceil(y2 + m))),
    )


def _frame_hw(shape: Any) -> tuple[int, int]:
    try:
        h, w = int(shape[0]), int(shape[1])
    except Exception as exc:
        raise ValueError(f"frame_shape must be (H, W) or (H, W, C), got {shape!r}") from exc
    if h < 1 or w < 1:
        raise ValueError(f"frame_shape must have positive H and W, got {shape!r}")
    return h, w


def _px(value: float, s: float, minimum: int = 1) -> int:
    return max(minimum, int(round(value * s)))


def _to_pil(pt: tuple[float, float]) -> tuple[float, float]:
    """Continuous coords (pixel c covers [c, c+1)) -> PIL coords (pixel c is at c)."""
    return pt[0] - 0.5, pt[1] - 0.5


def _mask_points(m: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random pixel centres (x, y) of the True pixels of ``m``."""
    ys, xs = np.nonzero(m)
    idx = rng.integers(0, len(xs), size=n)
    return np.stack([xs[idx] + 0.5, ys[idx] + 0.5], axis=1).astype(float)


def _in_mask(m: np.ndarray, x: float, y: float) -> bool:
    c, r = int(math.floor(x)), int(math.floor(y))
    return 0 <= r < m.shape[0] and 0 <= c < m.shape[1] and bool(m[r, c])


def _ray_interval(p: np.ndarray, d: np.ndarray, rect: tuple[float, float, float, float]) -> tuple[float, float]:
    """Parameter interval [t0, t1] of the line p + t d inside the closed rectangle (slab test)."""
    t0, t1 = -math.inf, math.inf
    for axis, (lo, hi) in enumerate(((rect[0], rect[2]), (rect[1], rect[3]))):
        if abs(d[axis]) < 1e-12:
            if not lo <= p[axis] <= hi:
                return math.inf, -math.inf
            continue
        a, b = (lo - p[axis]) / d[axis], (hi - p[axis]) / d[axis]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    return t0, t1


def _small_target_points(
    m: np.ndarray, tbox: Box, n: int, min_extent: float, rng: np.random.Generator
) -> np.ndarray | None:
    """For targets smaller than ``min_extent``: ``n`` points spread on a disc around the target's
    interior point (they may leave the mask).  ``None`` if the target is large enough.  At a frame
    edge the disc moves inwards (by at most its radius, well inside the margin) so the stroke
    through the points is drawn on the frame."""
    if max(tbox[2] - tbox[0], tbox[3] - tbox[1]) >= min_extent:
        return None
    cx, cy = interior_point(m)
    radius = min_extent / 2
    h, w = m.shape
    cx = min(max(cx, radius), w - radius) if w > 2 * radius else w / 2
    cy = min(max(cy, radius), h - radius) if h > 2 * radius else h / 2
    ang = rng.uniform(0, 2 * math.pi) + np.arange(n) * (2 * math.pi / n) + rng.uniform(-0.4, 0.4, n)
    rad = radius * rng.uniform(0.7, 1.0, n)
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1)


def _max_angle_deg(tri: np.ndarray) -> float:
    angles = []
    for i in range(3):
        a, b, c = tri[i], tri[(i + 1) % 3], tri[(i + 2) % 3]
        v1, v2 = b - a, c - a
        n1, n2 = np.linalg.norm(v1), np.linalg.norm(v2)
        if n1 < 1e-9 or n2 < 1e-9:
            return 180.0
        angles.append(math.degrees(math.acos(float(np.clip(v1 @ v2 / (n1 * n2), -1, 1)))))
    return max(angles)


def _area(tri: np.ndarray) -> float:
    (x1, y1), (x2, y2), (x3, y3) = tri
    return abs((x2 - x1) * (y3 - y1) - (x3 - x1) * (y2 - y1)) / 2


def _dilate_square(m: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square, O(H*W) via cumulative sums."""
    if r <= 0:
        return m.copy()
    out = m
    for axis in (0, 1):
        n = out.shape[axis]
        cs = np.cumsum(out.astype(np.int32), axis=axis)
        cs = np.concatenate([np.zeros_like(np.take(cs, [0], axis=axis)), cs], axis=axis)
        hi = np.minimum(np.arange(n) + r + 1, n)
        lo = np.maximum(np.arange(n) - r, 0)
        out = (np.take(cs, hi, axis=axis) - np.take(cs, lo, axis=axis)) > 0
    return out


def _boundary(m: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the frame edge counts as outside)."""
    p = np.pad(m, 1, constant_values=False)
    inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError, AttributeError):  # old Pillow / no FreeType
        return ImageFont.load_default()


def _dot(draw: ImageDraw.ImageDraw, centre: tuple[float, float], radius: float, fill) -> None:
    """Filled disc of ``radius`` around a PIL-coordinate ``centre`` (a single pixel if tiny)."""
    x, y = centre
    if radius < 1.0:
        draw.point([(round(x), round(y))], fill=fill)
        return
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill)


def _luma(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


# --------------------------------------------------------------------------- colour and legibility


def _sample_pixels(pixels: np.ndarray, limit: int = 4096) -> np.ndarray:
    """At most ``limit`` rows of an (N, 3) array, evenly strided (deterministic)."""
    pixels = pixels.reshape(-1, 3).astype(np.float32)
    if len(pixels) > limit:
        pixels = pixels[:: int(math.ceil(len(pixels) / limit))]
    return pixels


def _contrast(rgb: np.ndarray, pixels: np.ndarray, q: float = 10.0) -> float:
    """The ``q``-th percentile of the RGB distances between colour ``rgb`` and ``pixels`` (N, 3)."""
    if len(pixels) == 0:
        return 441.7
    return float(np.percentile(np.linalg.norm(pixels - np.asarray(rgb, np.float32)[None], axis=1), q))


def pick_mark_color(
    covered: np.ndarray, target: np.ndarray | None = None, rng: np.random.Generator | int | None = 0
) -> str:
    """The :data:`PALETTE` name that contrasts most with the pixels a mark covers and the target.

    ``covered`` and ``target`` are (N, 3) RGB pixels.  A colour's score is the smaller of its
    10th-percentile distance to ``covered`` and its median distance to ``target``; among the colours
    scoring at least ``min(best, max(0.85 * best, 120))`` one is drawn from ``rng`` for variety.

    >>> import numpy as np
    >>> magenta = np.tile(np.array([[214, 44, 204]], np.uint8), (50, 1))
    >>> pick_mark_color(magenta, magenta) in ("magenta", "red", "blue")
    False
    """
    cov = _sample_pixels(np.asarray(covered))
    tgt = _sample_pixels(np.asarray(target)) if target is not None and len(target) else None
    names = list(PALETTE)
    scores = []
    for name in names:
        score = _contrast(np.asarray(PALETTE[name]), cov)
        if tgt is not None:
            score = min(score, _contrast(np.asarray(PALETTE[name]), tgt, 50.0))
        scores.append(score)
    best = max(scores)
    floor = min(best, max(0.85 * best, 120.0))
    pool = [n for n, sc in zip(names, scores) if sc >= floor - 1e-9]
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return pool[int(gen.integers(0, len(pool)))]


def mark_legibility(clean: np.ndarray, rendered: np.ndarray, target_mask: np.ndarray) -> dict[str, float]:
    """How readable a rendered prompt is: ``{"covered": share of the target's pixels the marks
    changed, "contrast": 10th-percentile RGB distance (0-441) between each changed pixel and the
    clean pixel under it, "changed": number of changed pixels}``.

    >>> import numpy as np
    >>> f = np.full((40, 40, 3), 100, np.uint8); m = np.zeros((40, 40), bool); m[10:30, 10:30] = True
    >>> p = render_visual_prompt(f, "rectangle", mask=m, rng=0)
    >>> r = mark_legibility(f, p.image, m); r["covered"], r["contrast"] >= 80
    (0.0, True)
    """
    changed = (np.asarray(rendered) != np.asarray(clean)).any(axis=2)
    m = as_mask(target_mask, name="target_mask")
    covered = float((changed & m).sum() / max(1, int(m.sum())))
    diff = np.linalg.norm(rendered[changed].astype(np.float32) - clean[changed].astype(np.float32), axis=1)
    contrast = float(np.percentile(diff, 10)) if diff.size else 0.0
    return {"covered": covered, "contrast": contrast, "changed": float(changed.sum())}


# --------------------------------------------------------------------------- renderers
# Each takes a context and draws onto ``ctx.draw`` (an RGBA overlay) in the placeholder grey
# levels ``_MARK`` / ``_INK``; the colour is chosen afterwards from the pixels the marks cover.


@dataclass
class _Ctx:
    h: int
    w: int
    s: float
    box: Box  # the given box clipped to the frame (or the mask's box)
    tbox: Box  # reference box of the locality guarantee
    mask: np.ndarray
    region: tuple[int, int, int, int]
    rng: np.random.Generator
    label: int
    draw: ImageDraw.ImageDraw
    overlay: Image.Image
    others: tuple[Box, ...] = ()

    @property
    def t(self) -> float:
        """Target size: the square root of its mask area (pixels)."""
        return math.sqrt(max(1.0, float(self.mask.sum())))

    def width(self, frac: float, cap: float, low: float = 1.0) -> int:
        """Stroke width ``frac * t`` (jittered +-15%), at least ``low`` and at most ``cap * s`` pixels."""
        value = frac * self.t * self.rng.uniform(0.85, 1.15)
        return max(int(round(low)), int(round(min(value, max(low, cap * self.s)))))

    def pad(self) -> float:
        return max(MARGIN_PAD_AT_ANCHOR * self.s, MARGIN_PAD_MIN)


def _draw_rectangle(ctx: _Ctx) -> None:
    wdt = ctx.width(0.08, 4.0, 2.0)
    x1, y1, x2, y2 = ctx.box
    # outline just outside the box; sides that would leave the frame are pulled inside it
    ox1 = max(0, int(math.floor(x1)) - wdt)
    oy1 = max(0, int(math.floor(y1)) - wdt)
    ox2 = min(ctx.w - 1, int(math.ceil(x2)) - 1 + wdt)
    oy2 = min(ctx.h - 1, int(math.ceil(y2)) - 1 + wdt)
    ctx.draw.rectangle([ox1, oy1, ox2, oy2], outline=_MARK, width=wdt)


def _draw_mask_contour(ctx: _Ctx) -> None:
    """A band of width ``r`` just outside the mask; it paints the target only where the mask
    touches the frame edge (no room outside), so the object itself stays visible."""
    r = ctx.width(0.06, 3.0, 1.0)
    x1, y1, x2, y2 = mask_to_box(ctx.mask)
    c0, r0 = max(0, int(x1) - r - 1), max(0, int(y1) - r - 1)
    c1, r1 = min(ctx.w, int(x2) + r + 1), min(ctx.h, int(y2) + r + 1)
    crop = ctx.mask[r0:r1, c0:c1]
    band = _dilate_square(crop, r) & ~crop
    if not band.any():  # the mask fills the frame: fall back to its inner boundary
        band = _dilate_square(_boundary(crop), r - 1) & crop
    arr = np.array(ctx.overlay)
    arr[r0:r1, c0:c1][band] = _MARK
    ctx.overlay.paste(Image.fromarray(arr, "RGBA"))


def _draw_ellipse(ctx: _Ctx) -> None:
    wdt = ctx.width(0.09, 4.5, 3.0)
    ratio = ctx.rng.uniform(1.15, 1.4)
    x1, y1, x2, y2 = ctx.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hx = ratio * (x2 - x1) / 2 + wdt / 2 + 1
    hy = ratio * (y2 - y1) / 2 + wdt / 2 + 1
    ex1, ey1 = max(0.0, cx - hx - 0.5), max(0.0, cy - hy - 0.5)
    ex2, ey2 = min(ctx.w - 1.0, cx + hx - 0.5), min(ctx.h - 1.0, cy + hy - 0.5)
    if ex2 - ex1 < 1 or ey2 - ey1 < 1:  # frame too small for an ellipse: degenerate to a dot
        ex2, ey2 = ex1 + 1, ey1 + 1
    ctx.draw.ellipse([ex1, ey1, ex2, ey2], outline=_MARK, width=wdt)


def _draw_triangle(ctx: _Ctx) -> None:
    wdt = ctx.width(0.06, 2.5, 1.0)
    mb = mask_to_box(ctx.mask)
    min_extent = min(ctx.pad(), max(5.0 * wdt, 8.0))
    tri = None
    if max(mb[2] - mb[0], mb[3] - mb[1]) >= min_extent:
        cands = _mask_points(ctx.mask, 3 * 64, ctx.rng).reshape(64, 3, 2)
        good = [(t, _area(t)) for t in cands if _max_angle_deg(t) < 150.0]
        min_area = (min_extent**2) * 0.25
        good = [(t, a) for t, a in good if a >= min_area]
        if good:
            best = max(a for _, a in good)
            pool = [t for t, a in good if a >= 0.5 * best]
            tri = pool[int(ctx.rng.integers(0, len(pool)))]
    if tri is None:  # target too small or too thin: small triangle around its interior point
        cx, cy = interior_point(ctx.mask)
        rad = min_extent / 2
        a0 = ctx.rng.uniform(0, 2 * math.pi)
        tri = np.array([[cx + rad * math.cos(a0 + k * 2 * math.pi / 3), cy + rad * math.sin(a0 + k * 2 * math.pi / 3)] for k in range(3)])
    pts = [_to_pil(tuple(p)) for p in tri]
    ctx.draw.line(pts + pts[:2], fill=_MARK, width=wdt, joint="curve")


def _bezier(ctrl: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2, p3 = ctrl
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _draw_scribble(ctx: _Ctx) -> None:
    """Two chained cubic Bezier segments through seven control points inside the mask, ordered
    along a random direction so the stroke sweeps across the target (it stays in the convex hull
    of in-mask points, hence inside the target box)."""
    wdt = ctx.width(0.06, 2.5, 1.0)
    mb = mask_to_box(ctx.mask)
    min_extent = min(ctx.pad(), max(5.0 * wdt, 8.0))
    n_ctrl = 7
    ctrl = _small_target_points(ctx.mask, mb, n_ctrl, min_extent, ctx.rng)
    if ctrl is None:
        spread_goal = 0.5 * min(mb[2] - mb[0], mb[3] - mb[1])
        best, best_spread = None, -1.0
        for _ in range(12):  # prefer a scribble that spans the target
            cand = _mask_points(ctx.mask, n_ctrl, ctx.rng)
            spread = float(np.max(np.linalg.norm(cand[:, None] - cand[None], axis=2)))
            if spread > best_spread:
                best, best_spread = cand, spread
            if spread >= spread_goal:
                break
        ctrl = best
    theta = ctx.rng.uniform(0, math.pi)
    ctrl = ctrl[np.argsort(ctrl @ np.array([math.cos(theta), math.sin(theta)]))]
    curve = []
    for seg in (ctrl[0:4], ctrl[3:7]):
        length = float(np.sum(np.linalg.norm(np.diff(seg, axis=0), axis=1)))
        curve.append(_bezier(seg, max(16, int(length))))
    pts = [_to_pil(tuple(p)) for p in np.concatenate(curve)]
    ctx.draw.line(pts, fill=_MARK, width=wdt, joint="curve")
    for end in (pts[0], pts[-1]):  # round caps
        _dot(ctx.draw, end, wdt / 2 - 0.5, _MARK)


def _draw_point(ctx: _Ctx) -> None:
    rad = max(1.5, min(0.13 * ctx.t * ctx.rng.uniform(0.85, 1.15), 5.0 * ctx.s))
    x1, y1, x2, y2 = mask_to_box(ctx.mask)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    # the dot must sit on the object's body, not on a thin part it would hide (a kite line)
    body = ctx.mask & ~_dilate_square(~ctx.mask, int(math.ceil(rad)))
    inside = body if body.any() else ctx.mask
    centre = None
    for _ in range(20):
        px = ctx.rng.normal(cx, (x2 - x1) / 8)
        py = ctx.rng.normal(cy, (y2 - y1) / 8)
        if _in_mask(inside, px, py):
            centre = (px, py)
            break
    if centre is None:
        centre = interior_point(ctx.mask)
    _dot(ctx.draw, _to_pil(centre), rad, _MARK)


def _draw_arrow(ctx: _Ctx) -> None:
    wdt = ctx.width(0.08, 3.5, 2.0)
    head = max(3.0 * wdt, 6.0)
    half = 0.55 * head + 0.5
    tb = ctx.tbox
    mb = mask_to_box(ctx.mask)
    bw, bh = mb[2] - mb[0], mb[3] - mb[1]
    # anchor: a mask point near the box centre (jittered by up to 25% of the box)
    ax = (mb[0] + mb[2]) / 2 + ctx.rng.uniform(-0.25, 0.25) * bw
    ay = (mb[1] + mb[3]) / 2 + ctx.rng.uniform(-0.25, 0.25) * bh
    anchor = np.array([ax, ay]) if _in_mask(ctx.mask, ax, ay) else np.array(interior_point(ctx.mask))
    # zone for the shaft's start: the locality region and the frame, shrunk by the shaft width
    shrink = wdt / 2 + 1.5
    rx1, ry1, rx2, ry2 = ctx.region
    zone = (max(rx1, 0) + shrink, max(ry1, 0) + shrink, min(rx2, ctx.w) - shrink, min(ry2, ctx.h) - shrink)
    min_out = head + 2.0 * wdt
    max_out = max(min_out, 40.0 * ctx.s + 0.25 * max(bw, bh))
    diag = math.hypot(ctx.w, ctx.h)
    steps = np.arange(0.0, diag, 0.5)
    tip = start = None
    best_fallback = (-1.0, None)
    for _ in range(32):
        theta = ctx.rng.uniform(0, 2 * math.pi)
        d = np.array([math.cos(theta), math.sin(theta)])
        # tip: where the ray from the anchor leaves the mask
        pts = anchor[None] + steps[:, None] * d[None]
        cols, rows = np.floor(pts[:, 0]).astype(int), np.floor(pts[:, 1]).astype(int)
        ok = (cols >= 0) & (cols < ctx.w) & (rows >= 0) & (rows < ctx.h)
        inside = np.zeros(len(steps), bool)
        inside[ok] = ctx.mask[rows[ok], cols[ok]]
        k = int(np.argmin(inside)) if not inside.all() else len(steps)
        cand_tip = anchor + steps[max(k - 1, 0)] * d
        t_box = _ray_interval(cand_tip, d, tb)[1]  # distance to leave the target box
        z0, z1 = _ray_interval(cand_tip, d, zone)
        need = max(t_box, 0.0) + min_out
        if z0 <= need <= z1:
            room = min(z1 - max(t_box, 0.0), max_out)
            l_out = min_out + ctx.rng.uniform(0.35, 1.0) * max(0.0, room - min_out)
            tip, start = cand_tip, cand_tip + (max(t_box, 0.0) + l_out) * d
            break
        a0, a1 = _ray_interval(anchor, d, zone)
        if a0 <= 0 <= a1 and a1 > best_fallback[0]:
            best_fallback = (a1, d)
    if tip is None:  # no room outside the box (e.g. it fills the frame): arrow inside the box
        length, d = best_fallback
        if d is None:
            d, length = np.array([1.0, 0.0]), head + 1
        length = max(min(length, max_out), head + 1.0)
        tip, start = anchor, anchor + length * d
    direction = (tip - start) / max(1e-9, float(np.linalg.norm(tip - start)))
    base = tip - head * direction
    normal = np.array([-direction[1], direction[0]])
    ctx.draw.line([_to_pil(tuple(start)), _to_pil(tuple(base + 0.3 * head * direction))], fill=_MARK, width=wdt)
    _dot(ctx.draw, _to_pil(tuple(start)), wdt / 2 - 0.5, _MARK)
    ctx.draw.polygon([_to_pil(tuple(tip)), _to_pil(tuple(base + half * normal)), _to_pil(tuple(base - half * normal))], fill=_MARK)


#: A set-of-mark label may cover at most this share of the object it sits on; bigger labels go
#: just outside the object.
SOM_MAX_COVER = 0.4


def som_labels(label: int, n_others: int, rng: np.random.Generator) -> list[int]:
    """Numbers for the ``others`` objects of a set-of-mark prompt: distinct, never ``label``,
    drawn from 1..max(9, n + 1) (a random order, so the target's number carries no position).

    >>> sorted(som_labels(3, 4, np.random.default_rng(0)))[:1] != [3]
    True
    """
    pool = [k for k in range(1, max(9, n_others + 1) + 1) if k != label]
    return [pool[i] for i in rng.permutation(len(pool))[:n_others]]


def som_label_size(s: float, rng: np.random.Generator | None = None) -> float:
    """The side (pixels) a set-of-mark label aims at on a frame of scale ``s = max(H, W) / 336``:
    11-13 px at 336 px (drawn from ``rng``; 12 without), at least 9, at most 0.8 of the margin pad.

    >>> som_label_size(1.0)
    12.0
    """
    pad = max(MARGIN_PAD_AT_ANCHOR * s, MARGIN_PAD_MIN)
    per_anchor = 12.0 if rng is None else rng.uniform(11.0, 13.0)
    return max(9.0, min(per_anchor * s, 0.8 * pad))


def label_glyph(text: str, side_goal: float, limit: float | None = None) -> np.ndarray:
    """A set-of-mark label as a (side, side) uint8 square: 255 = the label colour, 0 = the ink
    of ``text`` (antialiased in between).  The font is sized so the side is about ``side_goal``
    and half the side at most ``limit`` (default ``side_goal / 2 + 1``).

    >>> g = label_glyph("7", 12); g.shape[0] == g.shape[1], int(g.max()), int(g.min()) < 128
    (True, 255, True)
    """
    limit = side_goal / 2 + 1 if limit is None else limit
    scratch = ImageDraw.Draw(Image.new("L", (1, 1)))
    size = max(6, int(round(side_goal / 1.5)))
    while True:
        font = _font(size)
        l, t, r, b = scratch.textbbox((0, 0), text, font=font)
        pad = max(1, int(round(0.25 * size)))
        side = max(r - l, b - t) + 2 * pad
        if side / 2 <= limit or size <= 6:
            break
        size -= 1
    img = Image.new("L", (side, side), 255)
    ImageDraw.Draw(img).text((side / 2 - (l + r) / 2, side / 2 - (t + b) / 2), text, font=font, fill=0)
    return np.asarray(img).copy()


def _place_label(ctx: _Ctx, mask: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of a ``side`` square label for the object ``mask``: at its most interior
    point when the label covers at most :data:`SOM_MAX_COVER` of it, else just outside its box
    (above, below, left or right, the first side with room in the frame)."""
    area = float(mask.sum())
    if side * side <= SOM_MAX_COVER * area:
        cx, cy = interior_point(mask)
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    else:
        x1, y1, x2, y2 = mask_to_box(mask)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        gap = 1
        spots = [(cx - side / 2, y1 - side - gap), (cx - side / 2, y2 + gap),
                 (x1 - side - gap, cy - side / 2), (x2 + gap, cy - side / 2)]
        fits = [p for p in spots if 0 <= p[0] and p[0] + side <= ctx.w and 0 <= p[1] and p[1] + side <= ctx.h]
        x0, y0 = (int(round(v)) for v in (fits[0] if fits else spots[0]))
    x0 = min(max(x0, 0), max(0, ctx.w - side))  # keep the whole square in the frame
    y0 = min(max(y0, 0), max(0, ctx.h - side))
    return x0, y0


def _draw_set_of_mark(ctx: _Ctx) -> None:
    """Set-of-Mark: a small numbered square on the target and on each of ``others`` (their
    numbers from :func:`som_labels`); a label sits on its object when it covers little of it."""
    side_goal = som_label_size(ctx.s, ctx.rng)
    limit = min(ctx.pad() - 2, side_goal / 2 + 1)
    objects = [(ctx.label, ctx.mask)]
    numbers = som_labels(ctx.label, len(ctx.others), ctx.rng)
    objects += [(k, ellipse_mask(b, (ctx.h, ctx.w))) for k, b in zip(numbers, ctx.others)]
    arr = np.array(ctx.overlay)
    for number, mask in objects:
        glyph = label_glyph(str(number), side_goal, limit)
        side = glyph.shape[0]
        x0, y0 = _place_label(ctx, mask, side)
        view = arr[y0:y0 + side, x0:x0 + side]  # the frame may be smaller than the label
        g = glyph[: view.shape[0], : view.shape[1]]
        view[..., :3] = g[..., None]
        view[..., 3] = 255
    ctx.overlay.paste(Image.fromarray(arr, "RGBA"))


_RENDERERS = {
    "rectangle": _draw_rectangle,
    "mask_contour": _draw_mask_contour,
    "ellipse": _draw_ellipse,
    "triangle": _draw_triangle,
    "scribble": _draw_scribble,
    "point": _draw_point,
    "arrow": _draw_arrow,
    "set_of_mark": _draw_set_of_mark,
}


# --------------------------------------------------------------------------- public API


def _check_frame(frame: Any) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array (H, W, 3) uint8, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame must have dtype uint8, got {frame.dtype}")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must have shape (H, W, 3) (or (H, W) grayscale), got {frame.shape}")
    return frame


def _resolve_target(
    h: int, w: int, box: Any, mask: Any
) -> tuple[Box, Box, np.ndarray]:
    """Return (box clipped to frame, reference box, mask)."""
    if box is None and mask is None:
        raise ValueError("a target is required: pass box=(x1, y1, x2, y2) and/or mask=<(H, W) bool array>")
    m = None
    if mask is not None:
        m = as_mask(mask, name="mask")
        if m.shape != (h, w):
            raise ValueError(f"mask shape {m.shape} must match the frame's (H, W) = {(h, w)}")
        if not m.any():
            raise ValueError("mask is empty (no True pixel): cannot locate the target")
    cb = None
    if box is not None:
        b = validate_box(box, name="box")
        cb = clip_box(b, (h, w))
        if cb is None:
            raise ValueError(f"box {b} lies outside the {w}x{h} frame")
    if m is None:
        m = ellipse_mask(cb, (h, w))
    mb = mask_to_box(m)
    if cb is None:
        cb = mb
    ref = (min(cb[0], mb[0]), min(cb[1], mb[1]), max(cb[2], mb[2]), max(cb[3], mb[3]))
    return cb, ref, m


def _resolve_others(h: int, w: int, others: Any) -> tuple[Box, ...]:
    """The ``others`` boxes clipped to the frame (boxes wholly outside it are dropped)."""
    out = []
    for i, b in enumerate(others or ()):
        cb = clip_box(validate_box(b, name=f"others[{i}]"), (h, w))
        if cb is not None:
            out.append(cb)
    return tuple(out)


def _colourize(ov: np.ndarray, frame: np.ndarray, mask: np.ndarray, color: str | None,
               rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Replace the overlay's placeholder grey levels by the mark colour (and label ink)."""
    drawn = ov[:, :, 3] > 0
    if color is None:
        target = frame[mask & ~drawn] if (mask & ~drawn).any() else frame[mask]
        color = pick_mark_color(frame[drawn], target, rng)
    rgb = np.asarray(PALETTE[color], np.float32)
    ink = np.zeros(3, np.float32) if _luma(PALETTE[color]) > 140 else np.full(3, 255, np.float32)
    share = ov[:, :, :1].astype(np.float32) / 255.0  # 1 = mark colour, 0 = ink
    out = ov.copy()
    out[:, :, :3] = np.clip(np.rint(share * rgb + (1.0 - share) * ink), 0, 255).astype(np.uint8)
    out[:, :, 3] = np.where(drawn, 255, 0).astype(np.uint8)
    return out, color


def render_visual_prompt(
    frame: np.ndarray,
    style: str,
    *,
    box: Any = None,
    mask: Any = None,
    rng: np.random.Generator | int | None = None,
    label: int = 1,
    color: str | None = None,
    others: Any = None,
) -> RenderedPrompt:
    """Draw the visual prompt ``style`` for one target on a copy of ``frame``.

    Args:
        frame: (H, W, 3) uint8 RGB image (a (H, W) grayscale image is accepted); not modified.
        style: one of :data:`STYLES`.
        box: target box ``(x1, y1, x2, y2)``, x2/y2 exclusive; clipped to the frame.
        mask: target mask, (H, W) bool.  At least one of ``box``/``mask`` is required; a missing
            mask is the clipped box's inscribed ellipse, a missing box the mask's tight box.
        rng: a ``numpy.random.Generator``, an int seed, or None (fresh entropy).  The same seed
            gives the same image.
        label: the number shown by ``set_of_mark`` on the target (and used in its phrase).
        color: a :data:`PALETTE` name; if None, the colour contrasting most with the covered
            pixels and the target (:func:`pick_mark_color`).
        others: boxes of other objects on the frame; ``set_of_mark`` labels them too (other
            numbers, :func:`som_labels`), as Set-of-Mark does.  Ignored by the other styles.

    Every changed pixel lies in :func:`prompt_region` of ``RenderedPrompt.target_box`` or, for
    ``set_of_mark`` labels of ``others``, of their boxes (see the module docstring).  Raises
    ``ValueError`` naming the bad argument.

    >>> import numpy as np
    >>> frame = np.zeros((64, 64, 3), np.uint8)
    >>> p = render_visual_prompt(frame, "set_of_mark", box=(20, 20, 44, 44), rng=1, label=2)
    >>> p.phrase
    'the target marked with number 2'
    >>> x1, y1, x2, y2 = p.region
    >>> changed = (p.image != frame).any(axis=2)
    >>> bool(changed.any()) and not changed[:, :x1].any() and not changed[:y1].any()
    True
    """
    style = _check_style(style)
    label = _check_label(label)
    frame = _check_frame(frame)
    if color is not None and color not in PALETTE:
        raise ValueError(f"color must be one of {', '.join(PALETTE)} or None, got {color!r}")
    h, w = frame.shape[:2]
    cb, ref, m = _resolve_target(h, w, box, mask)
    other_boxes = _resolve_others(h, w, others) if style == "set_of_mark" else ()
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    ctx = _Ctx(
        h=h,
        w=w,
        s=_scale(h, w),
        box=cb,
        tbox=ref,
        mask=m,
        region=prompt_region(ref, (h, w)),
        rng=gen,
        label=label,
        draw=ImageDraw.Draw(overlay),
        overlay=overlay,
        others=other_boxes,
    )
    _RENDERERS[style](ctx)
    ov = np.asarray(overlay)
    if _CLIP_TO_REGION:  # safety net for rasteriser overshoot (renderers stay inside anyway)
        keep = np.zeros((h, w), bool)
        for b in (ref, *other_boxes):
            x1, y1, x2, y2 = prompt_region(b, (h, w))
            keep[y1:y2, x1:x2] = True
        ov = ov * keep[:, :, None].astype(np.uint8)
    ov, name = _colourize(ov, frame, m, color, gen)
    out = frame.copy()
    drawn = ov[:, :, 3] > 0
    out[drawn] = ov[drawn, :3]
    return RenderedPrompt(
        image=out,
        style=style,
        color=name,
        phrase=phrase_for(style, label),
        label=label,
        target_box=ref,
        region=ctx.region,
    )


def contact_sheet(
    frame: np.ndarray,
    *,
    box: Any = None,
    mask: Any = None,
    seed: int = 0,
    columns: int = 4,
    others: Any = None,
) -> np.ndarray:
    """All eight styles rendered on ``frame`` and tiled ``columns`` per row, each tile with a
    caption strip ("style (colour)") underneath.  Style ``i`` uses seed ``seed + i``; ``others``
    (boxes) get ``set_of_mark`` labels too.

    Returns a uint8 array of shape ``(rows * (H + caption_h), columns * W, 3)`` with
    ``rows = ceil(8 / columns)``.

    >>> import numpy as np
    >>> sheet = contact_sheet(np.zeros((60, 80, 3), np.uint8), box=(20, 15, 50, 45))
    >>> sheet.shape[1], sheet.shape[0] % 2
    (320, 0)
    """
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns!r}")
    frame = _check_frame(frame)
    h, w = frame.shape[:2]
    cap = max(14, int(round(0.09 * h)))
    rows = math.ceil(len(STYLES) / columns)
    sheet = Image.new("RGB", (columns * w, rows * (h + cap)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(max(9, cap - 4))
    for i, style in enumerate(STYLES):
        p = render_visual_prompt(frame, style, box=box, mask=mask, rng=seed + i, others=others)
        r, c = divmod(i, columns)
        x0, y0 = c * w, r * (h + cap)
        sheet.paste(Image.fromarray(p.image), (x0, y0))
        draw.text((x0 + 3, y0 + h + 1), f"{style} ({p.color})", font=font, fill=(0, 0, 0))
    return np.asarray(sheet).copy()
