"""What the synthetic videos are made of: object colours, shapes, textures and the neutral tones.

This is the generator's *public* vocabulary. Detectors (the ``pixel`` policy) may use it the way a
hand-written detector knows what it is looking for; it says nothing about any particular sample.

Objects are strongly saturated (HSV saturation > 0.7) in six hues 60 degrees apart; the background
and the occluding panels are low-saturation greys (saturation < 0.2, value < 0.65), and a "white"
flash is bright and unsaturated, so a colour threshold separates all three.

>>> sorted(COLORS)[:2], SHAPES[0]
(['blue', 'cyan'], 'circle')
>>> shape_mask("square", 5).all()
np.True_
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

#: Base colours of the instances (RGB), hues ~60 degrees apart.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (226, 36, 36),
    "yellow": (232, 208, 28),
    "green": (36, 190, 58),
    "cyan": (30, 192, 214),
    "blue": (48, 78, 232),
    "magenta": (214, 44, 204),
}
WHITE: tuple[int, int, int] = (246, 246, 246)
#: Every colour an object can show, including the ``white`` flash.
ALL_COLORS: dict[str, tuple[int, int, int]] = {**COLORS, "white": WHITE}
#: Hue (degrees) of each base colour, for classification.
HUES: dict[str, float] = {}
OCCLUDER: tuple[int, int, int] = (46, 50, 58)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross")
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted")
#: Texture pixels are the object colour times this factor (saturation is unchanged).
TEXTURE_SHADE = 0.62


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8/float RGB -> (..., 3) float HSV with H in degrees [0, 360), S and V in [0, 1]."""
    a = np.asarray(rgb, dtype=np.float32) / 255.0
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    mx = a.max(axis=-1)
    mn = a.min(axis=-1)
    d = mx - mn
    s = np.where(mx > 0, d / np.maximum(mx, 1e-6), 0.0)
    dd = np.maximum(d, 1e-6)
    h = np.where(mx == r, ((g - b) / dd) % 6.0, np.where(mx == g, (b - r) / dd + 2.0, (r - g) / dd + 4.0))
    h = np.where(d > 0, h * 60.0, 0.0)
    return np.stack([h % 360.0, s, mx], axis=-1)


for _name, _rgb in COLORS.items():
    HUES[_name] = float(rgb_to_hsv(np.array(_rgb, np.uint8))[0])


def classify_hue(hue: float) -> str:
    """The base colour whose hue is nearest ``hue`` (degrees)."""
    best, dist = "red", 1e9
    for name, h in HUES.items():
        d = abs((hue - h + 180.0) % 360.0 - 180.0)
        if d < dist:
            best, dist = name, d
    return best


def _polygon(shape: str) -> list[tuple[float, float]]:
    """Vertices in the unit square [0, 1]^2 (y down)."""
    if shape == "triangle":
        return [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)]
    if shape == "diamond":
        return [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)]
    if shape == "star":
        pts = []
        for k in range(10):
            r = 0.5 if k % 2 == 0 else 0.5 * 0.46
            a = -np.pi / 2 + k * np.pi / 5
            pts.append((0.5 + r * np.cos(a), 0.53 + r * np.sin(a)))
        return pts
    if shape == "cross":
        a, b = 0.32, 0.68
        return [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)]
    raise ValueError(f"no polygon for shape {shape!r}")


@lru_cache(maxsize=512)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """Binary (size, size) mask of ``shape`` filling its box (read-only, cached)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")
    size = max(3, int(size))
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse([0, 0, size - 1, size - 1], fill=1)
    elif shape == "square":
        draw.rectangle([0, 0, size - 1, size - 1], fill=1)
    else:
        draw.polygon([(x * (size - 1), y * (size - 1)) for x, y in _polygon(shape)], fill=1)
    m = np.asarray(img, dtype=bool).copy()
    m.setflags(write=False)
    return m


@lru_cache(maxsize=512)
def texture_factor(texture: str, size: int) -> np.ndarray:
    """(size, size) float32 multiplier: 1 for the object colour, :data:`TEXTURE_SHADE` for texture marks."""
    size = max(3, int(size))
    f = np.ones((size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    period = max(5, size // 5)
    if texture == "striped":
        f[((xx + yy) % period) < period / 2.5] = TEXTURE_SHADE
    elif texture == "dotted":
        cy = (yy % period) - period / 2 + 0.5
        cx = (xx % period) - period / 2 + 0.5
        f[cx * cx + cy * cy <= (period / 4.0) ** 2] = TEXTURE_SHADE
    elif texture != "solid":
        raise ValueError(f"unknown texture {texture!r}; choose from {TEXTURES}")
    f.setflags(write=False)
    return f


@lru_cache(maxsize=64)
def shape_templates(side: int = 24) -> dict[str, np.ndarray]:
    """Each shape's mask cropped to its tight box and resized to ``side`` x ``side`` (for template matching)."""
    out = {}
    for s in SHAPES:
        m = shape_mask(s, 8 * side)
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        tight = m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        img = Image.fromarray(tight.astype(np.uint8) * 255).resize((side, side), Image.BILINEAR)
        out[s] = np.asarray(img) > 127
    return out
