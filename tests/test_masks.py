"""Behavioural tests for vseek_env.masks (RLE, boxes, ellipses, distance transform)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vseek_env.masks import (
    box_to_mask,
    clip_box,
    decode_rle,
    distance_transform,
    ellipse_mask,
    encode_rle,
    interior_point,
    mask_to_box,
)

shapes = st.tuples(st.integers(0, 24), st.integers(0, 24))
masks = shapes.flatmap(lambda s: arrays(bool, s))
nonempty_masks = st.tuples(st.integers(1, 24), st.integers(1, 24)).flatmap(lambda s: arrays(bool, s)).filter(
    lambda m: m.any()
)


@st.composite
def blob_masks(draw):
    """Structured masks (unions of rectangles) — closer to real instance masks than noise."""
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    m = np.zeros((h, w), bool)
    for _ in range(draw(st.integers(1, 3))):
        y1, x1 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        y2, x2 = draw(st.integers(y1 + 1, h)), draw(st.integers(x1 + 1, w))
        m[y1:y2, x1:x2] = True
    return m


# --------------------------------------------------------------------------- RLE


@settings(deadline=None)
@given(st.one_of(masks, blob_masks()))
def test_rle_round_trip(mask):
    rle = encode_rle(mask)
    assert rle["size"] == list(mask.shape)
    assert all(isinstance(c, int) and c >= 0 for c in rle["counts"])
    assert sum(rle["counts"]) == mask.size
    json.dumps(rle)  # JSON-serialisable
    out = decode_rle(json.loads(json.dumps(rle)))
    assert out.dtype == bool and out.shape == mask.shape
    assert np.array_equal(out, mask)


@settings(deadline=None)
@given(st.one_of(masks, blob_masks()))
def test_compressed_rle_round_trip(mask):
    rle = encode_rle(mask, compress=True)
    assert isinstance(rle["counts"], str)
    assert np.array_equal(decode_rle(rle), mask)
    assert np.array_equal(decode_rle({"size": rle["size"], "counts": rle["counts"].encode()}), mask)
    # the compressed form decodes to the same runs as the plain one
    plain = encode_rle(mask)
    assert np.array_equal(decode_rle(plain), decode_rle(rle))


def test_rle_layout_is_column_major_starting_with_zeros():
    m = np.array([[0, 1], [1, 1]], bool)
    assert encode_rle(m) == {"size": [2, 2], "counts": [1, 3]}
    m = np.array([[1, 0, 0], [1, 0, 1]], bool)  # columns: [1,1], [0,0], [0,1]
    assert encode_rle(m)["counts"] == [0, 2, 3, 1]
    assert encode_rle(np.zeros((2, 3), bool))["counts"] == [6]
    assert encode_rle(np.ones((2, 3), bool))["counts"] == [0, 6]


def test_rle_accepts_integer_masks():
    m = np.array([[0, 1], [1, 0]], np.uint8)
    assert np.array_equal(decode_rle(encode_rle(m)), m.astype(bool))


@pytest.mark.parametrize(
    "bad, word",
    [
        (np.zeros((2, 2, 2), bool), "mask"),
        (np.array([[0, 2]]), "mask"),
        (np.array([["a"]]), "mask"),
    ],
)
def test_encode_rle_errors_name_mask(bad, word):
    with pytest.raises(ValueError, match=word):
        encode_rle(bad)


@pytest.mark.parametrize(
    "bad, word",
    [
        ({"size": [2, 2]}, "rle"),
        ([1, 3], "rle"),
        ({"size": [2, 2], "counts": [1, 2]}, "counts"),
        ({"size": [2, 2], "counts": [1, -1, 4]}, "counts"),
        ({"size": [2, 2], "counts": [1.5, 2.5]}, "counts"),
        ({"size": [2], "counts": [4]}, "size"),
        ({"size": [-2, -2], "counts": [4]}, "size"),
        ({"size": [2, 2], "counts": "\x7f"}, "counts"),
        ({"size": [2, 2], "counts": 4}, "counts"),
    ],
)
def test_decode_rle_errors(bad, word):
    with pytest.raises(ValueError, match=word):
        decode_rle(bad)


# --------------------------------------------------------------------------- boxes


@settings(deadline=None)
@given(st.one_of(nonempty_masks, blob_masks()))
def test_mask_to_box_is_tight_and_covers(mask):
    box = mask_to_box(mask)
    x1, y1, x2, y2 = box
    assert all(isinstance(v, float) for v in box)
    assert 0 <= x1 < x2 <= mask.shape[1] and 0 <= y1 < y2 <= mask.shape[0]
    ys, xs = np.nonzero(mask)
    # covers every True pixel (x2/y2 exclusive) ...
    assert xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 and ys.max() < y2
    # ... and is tight: each edge row/column holds a True pixel
    assert mask[int(y1)].any() and mask[int(y2) - 1].any()
    assert mask[:, int(x1)].any() and mask[:, int(x2) - 1].any()
    # the box's mask contains the mask
    assert not (mask & ~box_to_mask(box, mask.shape)).any()


def test_mask_to_box_empty_is_none():
    assert mask_to_box(np.zeros((3, 4), bool)) is None
    assert mask_to_box(np.zeros((0, 4), bool)) is None


@st.composite
def int_boxes(draw):
    h, w = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    x1, y1 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
    x2, y2 = draw(st.integers(x1 + 1, w)), draw(st.integers(y1 + 1, h))
    return (h, w), (x1, y1, x2, y2)


@settings(deadline=None)
@given(int_boxes())
def test_integer_box_round_trip(case):
    shape, box = case
    m = box_to_mask(box, shape)
    assert m.sum() == (box[2] - box[0]) * (box[3] - box[1])
    assert mask_to_box(m) == tuple(float(v) for v in box)
    # (H, W, C) shapes work too
    assert np.array_equal(box_to_mask(box, (*shape, 3)), m)


@st.composite
def float_boxes(draw):
    h, w = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    x1 = draw(st.floats(-5, w + 2, allow_nan=False))
    y1 = draw(st.floats(-5, h + 2, allow_nan=False))
    x2 = x1 + draw(st.floats(0.01, w + 5, allow_nan=False))
    y2 = y1 + draw(st.floats(0.01, h + 5, allow_nan=False))
    return (h, w), (x1, y1, x2, y2)


@settings(deadline=None)
@given(float_boxes())
def test_box_and_ellipse_masks(case):
    shape, box = case
    bm = box_to_mask(box, shape)
    em = ellipse_mask(box, shape)
    assert bm.shape == em.shape == shape
    overlaps = clip_box(box, shape) is not None
    # never empty when the box overlaps the frame, always empty otherwise
    assert bm.any() == overlaps and em.any() == overlaps
    if overlaps:
        # pixels are near the box (the sub-pixel fallback pixel is within one pixel of it)
        ys, xs = np.nonzero(bm | em)
        assert xs.min() >= box[0] - 1 and xs.max() < box[2] + 1
        assert ys.min() >= box[1] - 1 and ys.max() < box[3] + 1
        if bm.sum() > 1:
            assert not (em & ~bm).any()  # the inscribed ellipse lies within the box


def test_ellipse_mask_shape_and_symmetry():
    em = ellipse_mask((0, 0, 11, 7), (7, 11))
    assert np.array_equal(em, em[::-1]) and np.array_equal(em, em[:, ::-1])
    assert em[3].all() and not em[0, 0] and em[0, 5]


@pytest.mark.parametrize(
    "box",
    [(0, 0, 0, 5), (5, 0, 2, 3), (0, 0, 1), "abcd", (0, 0, float("nan"), 3), None, (True, 0, 2, 2)],
)
def test_bad_box_errors_name_box(box):
    with pytest.raises(ValueError, match="box"):
        box_to_mask(box, (4, 4))
    with pytest.raises(ValueError, match="box"):
        ellipse_mask(box, (4, 4))


@pytest.mark.parametrize("shape", [(4,), (4, -1), "ab", (4.0, 4), None])
def test_bad_shape_errors_name_shape(shape):
    with pytest.raises(ValueError, match="shape"):
        box_to_mask((0, 0, 1, 1), shape)


# --------------------------------------------------------------------------- distance transform


def _brute_edt(m: np.ndarray) -> np.ndarray:
    p = np.pad(m, 1, constant_values=False)
    bys, bxs = np.nonzero(~p)
    out = np.zeros(m.shape)
    for y, x in zip(*np.nonzero(m)):
        out[y, x] = np.sqrt(((bys - (y + 1)) ** 2 + (bxs - (x + 1)) ** 2).min())
    return out


@settings(deadline=None)
@given(st.one_of(masks, blob_masks()))
def test_distance_transform_matches_brute_force(mask):
    d = distance_transform(mask, max_elements=64)  # tiny chunks exercise the chunking
    assert d.shape == mask.shape
    assert np.allclose(d, _brute_edt(mask))


@settings(deadline=None)
@given(st.one_of(nonempty_masks, blob_masks()))
def test_interior_point_is_in_mask_and_deepest(mask):
    x, y = interior_point(mask)
    c, r = int(x), int(y)
    assert x == c + 0.5 and y == r + 0.5
    assert mask[r, c]
    d = distance_transform(mask)
    assert d[r, c] == pytest.approx(d.max())


def test_interior_point_large_masks_are_downscaled_but_inside():
    yy, xx = np.mgrid[0:600, 0:900]
    ring = ((xx - 450) ** 2 + (yy - 300) ** 2 < 250**2) & ((xx - 450) ** 2 + (yy - 300) ** 2 > 200**2)
    disc = (xx - 300) ** 2 + (yy - 300) ** 2 < 200**2
    line = np.zeros((600, 900), bool)
    line[100, 10:890] = True  # too thin for any all-True block
    for m, near in ((disc, (300, 300)), (ring, None), (line, None)):
        x, y = interior_point(m, max_side=64)
        assert m[int(y), int(x)]
        if near is not None:
            assert abs(x - near[0]) < 20 and abs(y - near[1]) < 20
    assert interior_point(np.zeros((3, 3), bool)) is None
