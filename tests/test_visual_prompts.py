"""Behavioural tests for vseek_env.visual_prompts: locality, determinism, looks, errors."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vseek_env.visual_prompts as vp
from vseek_env.masks import box_to_mask, ellipse_mask, mask_to_box
from vseek_env.visual_prompts import (
    PALETTE,
    PROMPT_STYLES,
    STYLES,
    RenderedPrompt,
    contact_sheet,
    phrase_for,
    prompt_margin,
    prompt_region,
    render_visual_prompt,
)


def noise_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Values in [60, 190]: no palette colour (channels 0/165/255) equals a frame pixel, so every
    drawn pixel shows up as a change."""
    return np.random.default_rng(seed).integers(60, 191, size=(h, w, 3), dtype=np.uint8)


@contextlib.contextmanager
def no_safety_clip():
    """Check the renderers themselves honour the margin (not just the final clip)."""
    old = vp._CLIP_TO_REGION
    vp._CLIP_TO_REGION = False
    try:
        yield
    finally:
        vp._CLIP_TO_REGION = old


def documented_region(box, mask, shape):
    """The locality region as documented, computed independently of the module."""
    h, w = shape
    if box is not None:
        cb = (max(box[0], 0), max(box[1], 0), min(box[2], w), min(box[3], h))
    if mask is None:
        mask = ellipse_mask(cb, shape)  # documented: inscribed ellipse of the clipped box
    mb = mask_to_box(mask)
    if box is None:
        ref = mb
    else:
        ref = (min(cb[0], mb[0]), min(cb[1], mb[1]), max(cb[2], mb[2]), max(cb[3], mb[3]))
    s = max(h, w) / 336
    m = 0.5 * max(ref[2] - ref[0], ref[3] - ref[1]) + max(32 * s, 16)
    return ref, (
        max(0, math.floor(ref[0] - m)),
        max(0, math.floor(ref[1] - m)),
        min(w, math.ceil(ref[2] + m)),
        min(h, math.ceil(ref[3] + m)),
    )


def changed_pixels(p: RenderedPrompt, frame: np.ndarray) -> np.ndarray:
    return (p.image != frame).any(axis=2)


# --------------------------------------------------------------------------- strategies


@st.composite
def targets(draw):
    """(shape, box or None, mask or None): interior, border-touching, tiny, huge, clipped."""
    h, w = draw(st.integers(16, 120)), draw(st.integers(16, 120))
    kind = draw(st.sampled_from(["any", "tiny", "border", "full", "overhang"]))
    if kind == "tiny":
        x1, y1 = draw(st.floats(0, w - 1)), draw(st.floats(0, h - 1))
        box = (x1, y1, x1 + draw(st.floats(0.3, 3)), y1 + draw(st.floats(0.3, 3)))
    elif kind == "border":
        bw, bh = draw(st.integers(1, w)), draw(st.integers(1, h))
        x1 = draw(st.sampled_from([0, w - bw]))
        y1 = draw(st.sampled_from([0, h - bh, draw(st.integers(0, h - bh))]))
        box = (float(x1), float(y1), float(x1 + bw), float(y1 + bh))
    elif kind == "full":
        box = (0.0, 0.0, float(w), float(h))
    elif kind == "overhang":
        box = (-draw(st.floats(0, 20)), -draw(st.floats(0, 20)), draw(st.floats(1, w + 20)), draw(st.floats(1, h + 20)))
    else:
        x1, y1 = draw(st.floats(0, w - 1)), draw(st.floats(0, h - 1))
        box = (x1, y1, draw(st.floats(x1 + 0.5, w)), draw(st.floats(y1 + 0.5, h)))
    which = draw(st.sampled_from(["box", "mask", "both", "both_other"]))
    mask = None
    if which != "box":
        shape_fn = draw(st.sampled_from([box_to_mask, ellipse_mask]))
        if which == "both_other":  # a mask that does not match the box
            x1, y1 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
            mbox = (x1, y1, draw(st.integers(x1 + 1, w)), draw(st.integers(y1 + 1, h)))
        else:
            mbox = box
        mask = shape_fn(mbox, (h, w))
        if draw(st.booleans()) and mask.sum() > 4:  # punch a hole / make it non-convex
            ys, xs = np.nonzero(mask)
            k = draw(st.integers(0, len(ys) - 1))
            mask = mask.copy()
            mask[ys[k] : ys[k] + 3, xs[k] : xs[k] + 3] = False
            if not mask.any():
                mask[ys[k], xs[k]] = True
    if which == "mask":
        box = None
    return (h, w), box, mask


# --------------------------------------------------------------------------- the locality guarantee


@pytest.mark.parametrize("style", STYLES)
@settings(deadline=None)
@given(case=targets(), seed=st.integers(0, 2**32 - 1), label=st.integers(0, 99))
def test_marks_stay_within_documented_margin(style, case, seed, label):
    shape, box, mask = case
    frame = noise_frame(*shape, seed=seed % 1000)
    before = frame.copy()
    with no_safety_clip():
        p = render_visual_prompt(frame, style, box=box, mask=mask, rng=seed, label=label)
    assert np.array_equal(frame, before), "input frame was modified"
    assert p.image.shape == frame.shape and p.image.dtype == np.uint8
    assert p.image is not frame and not np.shares_memory(p.image, frame)
    assert p.style == style and p.color in PALETTE and p.phrase == phrase_for(style, label)
    changed = changed_pixels(p, frame)
    assert changed.any(), "nothing was drawn"
    ref, (x1, y1, x2, y2) = documented_region(box, mask, shape)
    assert p.target_box == pytest.approx(ref)
    assert p.region == (x1, y1, x2, y2)
    outside = changed.copy()
    outside[y1:y2, x1:x2] = False
    assert not outside.any(), f"{style}: changed pixels outside {p.region}: {np.argwhere(outside)[:5]}"


def test_prompt_margin_formula():
    assert prompt_margin((10, 10, 30, 20), (336, 336)) == pytest.approx(10 + 32)
    assert prompt_margin((0, 0, 100, 40), (672, 400)) == pytest.approx(50 + 64)
    assert prompt_margin((0, 0, 4, 4), (100, 100)) == pytest.approx(2 + 16)  # small-frame floor
    assert prompt_region((10, 10, 30, 20), (336, 336)) == (0, 0, 72, 62)
    assert prompt_region((300, 300, 330, 330), (336, 336)) == (253, 253, 336, 336)


# --------------------------------------------------------------------------- per-style looks

H, W = 240, 320
BOX = (120.0, 80.0, 200.0, 160.0)
yy, xx = np.mgrid[0:H, 0:W]
DISC = (xx - 160) ** 2 + (yy - 120) ** 2 < 38**2  # inside BOX


@pytest.fixture(scope="module")
def frame():
    return noise_frame(H, W, seed=7)


def _render(frame, style, seed, **kw):
    with no_safety_clip():
        p = render_visual_prompt(frame, style, rng=seed, **kw)
    return p, changed_pixels(p, frame)


def _inside_box(changed, box, pad=0):
    x1, y1, x2, y2 = (int(box[0]) - pad, int(box[1]) - pad, int(box[2]) + pad, int(box[3]) + pad)
    m = np.zeros_like(changed)
    m[max(y1, 0) : y2, max(x1, 0) : x2] = True
    return changed & m


@pytest.mark.parametrize("seed", range(6))
def test_rectangle_is_a_thin_outline_around_the_box(frame, seed):
    p, ch = _render(frame, "rectangle", seed, box=BOX)
    assert not _inside_box(ch, BOX).any()  # drawn just outside the box
    assert ch[int(BOX[1]) - 1, 150] and ch[int(BOX[3]), 150]  # top and bottom edges
    assert ch[120, int(BOX[0]) - 1] and ch[120, int(BOX[2])]  # left and right edges
    widths = ch[: int(BOX[1]), 150].sum()
    assert 2 <= widths <= 5  # ~3 px at 336


def test_rectangle_on_full_frame_box_stays_visible(frame):
    p, ch = _render(frame, "rectangle", 0, box=(0, 0, W, H))
    assert ch[0].all() and ch[-1].all() and ch[:, 0].all() and ch[:, -1].all()


@pytest.mark.parametrize("seed", range(6))
def test_ellipse_surrounds_the_target(frame, seed):
    p, ch = _render(frame, "ellipse", seed, box=BOX)
    assert not _inside_box(ch, (140, 100, 180, 140)).any()  # the centre stays clear
    ys, xs = np.nonzero(ch)
    assert xs.min() < BOX[0] and xs.max() >= BOX[2] and ys.min() < BOX[1] and ys.max() >= BOX[3]
    assert ch[:, 160].sum() >= 2 * 3  # thick: >= 3 px at each crossing


@pytest.mark.parametrize("seed", range(6))
def test_mask_contour_follows_the_boundary(frame, seed):
    p, ch = _render(frame, "mask_contour", seed, mask=DISC)
    dist_from_centre = np.hypot(xx - 160 + 0.5, yy - 120 + 0.5)
    assert ch.any()
    assert np.all(np.abs(dist_from_centre[ch] - 38) <= 6)  # a band along the circle
    assert not ch[120, 160]


@pytest.mark.parametrize("style", ["triangle", "scribble"])
@pytest.mark.parametrize("seed", range(6))
def test_triangle_and_scribble_lie_on_the_mask(frame, style, seed):
    p, ch = _render(frame, style, seed, mask=DISC)
    dist_from_centre = np.hypot(xx - 160 + 0.5, yy - 120 + 0.5)
    assert np.all(dist_from_centre[ch] <= 38 + 4)  # inside the mask up to half a stroke
    assert ch.sum() > 30


def test_triangle_vertices_inside_mask_have_bounded_angles(frame):
    # the outline hugs three in-mask points: its changed pixels span a real triangle
    for seed in range(5):
        p, ch = _render(frame, "triangle", seed, mask=DISC)
        ys, xs = np.nonzero(ch)
        assert xs.max() - xs.min() > 10 and ys.max() - ys.min() > 10


@pytest.mark.parametrize("seed", range(6))
def test_point_is_a_filled_dot_inside_the_mask(frame, seed):
    p, ch = _render(frame, "point", seed, mask=DISC)
    ys, xs = np.nonzero(ch)
    cy, cx = int(ys.mean()), int(xs.mean())
    assert DISC[cy, cx]
    # filled: the dot's bounding box is mostly covered
    area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert ch.sum() >= 0.6 * area


@pytest.mark.parametrize("seed", range(10))
def test_arrow_starts_outside_and_tips_at_target(frame, seed):
    p, ch = _render(frame, "arrow", seed, box=BOX, mask=DISC)
    dist_from_centre = np.hypot(xx - 160 + 0.5, yy - 120 + 0.5)
    # the tip touches the target: some arrow pixels lie on/at the mask's edge
    assert dist_from_centre[ch].min() <= 38 + 1.5
    # the shaft starts outside the target box by a visible length
    outside = ch & ~box_to_mask(BOX, (H, W))
    assert outside.sum() > 10
    ys, xs = np.nonzero(outside)
    gap = np.maximum.reduce([BOX[0] - xs, xs + 1 - BOX[2], BOX[1] - ys, ys + 1 - BOX[3]])
    assert gap.max() >= 8


def test_arrow_in_a_frame_filling_box_still_draws(frame):
    p, ch = _render(frame, "arrow", 0, box=(0, 0, W, H))
    assert ch.sum() > 10


@pytest.mark.parametrize("seed", range(6))
def test_set_of_mark_label_at_deepest_interior_point(frame, seed):
    # an L-shaped mask: the deepest point is in the big square part, not the box centre
    m = np.zeros((H, W), bool)
    m[40:200, 40:120] = True
    m[160:200, 40:280] = True
    p, ch = _render(frame, "set_of_mark", seed, mask=m, label=7)
    ys, xs = np.nonzero(ch)
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    assert m[int(cy), int(cx)]
    assert 40 <= cx <= 120 and 40 <= cy <= 200  # in the tall arm, not the mask box centre
    # a filled square with a digit in a contrasting colour
    assert xs.max() - xs.min() == pytest.approx(ys.max() - ys.min(), abs=1)
    tile = p.image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].reshape(-1, 3)
    assert len({tuple(c) for c in tile}) >= 2
    assert p.phrase == "the target marked with number 7"


def test_set_of_mark_label_stays_in_frame_at_corner(frame):
    m = np.zeros((H, W), bool)
    m[0:3, 0:3] = True
    p, ch = _render(frame, "set_of_mark", 0, mask=m, label=42)
    assert ch[0:3, 0:3].any()


# --------------------------------------------------------------------------- determinism, inputs


@pytest.mark.parametrize("style", STYLES)
def test_deterministic_under_seed_and_varies_across_seeds(frame, style):
    a = render_visual_prompt(frame, style, box=BOX, mask=DISC, rng=123)
    b = render_visual_prompt(frame, style, box=BOX, mask=DISC, rng=np.random.default_rng(123))
    assert np.array_equal(a.image, b.image) and a.color == b.color
    images = {render_visual_prompt(frame, style, box=BOX, mask=DISC, rng=s).image.tobytes() for s in range(6)}
    assert len(images) >= 2


def test_generator_is_advanced_and_none_works(frame):
    g = np.random.default_rng(5)
    a = render_visual_prompt(frame, "scribble", box=BOX, rng=g)
    b = render_visual_prompt(frame, "scribble", box=BOX, rng=g)
    assert not np.array_equal(a.image, b.image)
    assert render_visual_prompt(frame, "point", box=BOX).image.shape == frame.shape


def test_read_only_and_grayscale_frames(frame):
    ro = frame.copy()
    ro.setflags(write=False)
    p = render_visual_prompt(ro, "rectangle", box=BOX, rng=0)
    assert changed_pixels(p, ro).any()
    gray = frame[:, :, 0].copy()
    p = render_visual_prompt(gray, "ellipse", box=BOX, rng=0)
    assert p.image.shape == (H, W, 3)


def test_color_argument_and_palette(frame):
    for name, rgb in PALETTE.items():
        p = render_visual_prompt(frame, "point", box=BOX, rng=0, color=name)
        assert p.color == name
        ch = changed_pixels(p, frame)
        mean = p.image[ch].mean(axis=0)
        assert np.abs(mean - np.array(rgb)).max() < 60  # mostly opaque dot of that colour


def test_random_colour_avoids_target_colour():
    f = np.zeros((H, W, 3), np.uint8)
    f[...] = (250, 5, 5)  # a red target region: red should not be picked
    assert {render_visual_prompt(f, "rectangle", box=BOX, rng=s).color for s in range(30)} - {"red"}
    assert "red" not in {render_visual_prompt(f, "rectangle", box=BOX, rng=s).color for s in range(30)}


def test_large_frame_each_style_is_fast_and_local():
    import time

    h, w = 720, 1280
    f = noise_frame(h, w, seed=3)
    yy2, xx2 = np.mgrid[0:h, 0:w]
    m = (xx2 - 700) ** 2 / 300**2 + (yy2 - 380) ** 2 / 250**2 < 1
    t0 = time.perf_counter()
    for style in STYLES:
        with no_safety_clip():
            p = render_visual_prompt(f, style, mask=m, rng=1)
        ch = changed_pixels(p, f)
        x1, y1, x2, y2 = p.region
        out = ch.copy()
        out[y1:y2, x1:x2] = False
        assert ch.any() and not out.any()
    assert time.perf_counter() - t0 < 8.0


# --------------------------------------------------------------------------- phrases and styles


def test_style_table():
    assert STYLES == ("rectangle", "mask_contour", "ellipse", "triangle", "scribble", "point", "arrow", "set_of_mark")
    assert tuple(PROMPT_STYLES) == STYLES
    for name, ps in PROMPT_STYLES.items():
        assert ps.name == name and ps.phrase.startswith("the target")
        assert isinstance(ps.needs_mask, bool)
        with pytest.raises(AttributeError):
            ps.name = "x"  # frozen
    assert phrase_for("rectangle") == "the target in the highlighted box"
    assert phrase_for("set_of_mark", 12) == "the target marked with number 12"
    assert phrase_for("set_of_mark") == "the target marked with number 1"
    assert PROMPT_STYLES["mask_contour"].needs_mask and not PROMPT_STYLES["rectangle"].needs_mask


# --------------------------------------------------------------------------- contact sheet


@pytest.mark.parametrize("columns, rows", [(4, 2), (3, 3), (8, 1), (1, 8)])
def test_contact_sheet_shape(frame, columns, rows):
    sheet = contact_sheet(frame, box=BOX, mask=DISC, seed=1, columns=columns)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    assert sheet.shape[1] == columns * W
    assert sheet.shape[0] % rows == 0 and sheet.shape[0] // rows > H  # frame + caption strip
    tile_h = sheet.shape[0] // rows
    for i, style in enumerate(STYLES):  # every tile shows its own prompt
        r, c = divmod(i, columns)
        tile = sheet[r * tile_h : r * tile_h + H, c * W : (c + 1) * W]
        expected = render_visual_prompt(frame, style, box=BOX, mask=DISC, rng=1 + i).image
        assert np.array_equal(tile, expected)
        caption = sheet[r * tile_h + H : (r + 1) * tile_h, c * W : (c + 1) * W]
        assert (caption < 128).any()  # some caption text


def test_contact_sheet_errors(frame):
    with pytest.raises(ValueError, match="columns"):
        contact_sheet(frame, box=BOX, columns=0)
    with pytest.raises(ValueError, match="box"):
        contact_sheet(frame)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(style="circle", box=BOX), "style"),
        (dict(style=None, box=BOX), "style"),
        (dict(style="point"), "box"),
        (dict(style="point"), "mask"),
        (dict(style="point", mask=np.zeros((H, W), bool)), "mask"),
        (dict(style="point", mask=np.ones((10, 10), bool)), "mask"),
        (dict(style="point", mask=np.ones((H, W, 2), bool)), "mask"),
        (dict(style="point", box=(500, 500, 600, 600)), "box"),
        (dict(style="point", box=(10, 10, 5, 20)), "box"),
        (dict(style="point", box=(10, 10, 20)), "box"),
        (dict(style="point", box=BOX, color="pink"), "color"),
        (dict(style="set_of_mark", box=BOX, label=-1), "label"),
        (dict(style="set_of_mark", box=BOX, label="1"), "label"),
    ],
)
def test_errors_name_the_bad_argument(frame, kwargs, word):
    style = kwargs.pop("style")
    with pytest.raises(ValueError, match=word):
        render_visual_prompt(frame, style, **kwargs)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 4), np.uint8), np.zeros((0, 10, 3), np.uint8), [[1, 2]]],
)
def test_bad_frame(bad):
    with pytest.raises(ValueError, match="frame"):
        render_visual_prompt(bad, "point", box=(0, 0, 5, 5))


def test_phrase_for_errors():
    with pytest.raises(ValueError, match="style"):
        phrase_for("nope")
    with pytest.raises(ValueError, match="label"):
        phrase_for("set_of_mark", label=-3)
