"""Visual prompts a model can read: measured over generated datasets (and real DAVIS frames).

For every style, over every sample: the marks cover at most half of the target's pixels, and the
10th-percentile colour distance between a changed pixel and the clean pixel under it is >= 80 on
the 0-441 RGB scale (``mark_legibility``). Measured at the resolution the prompt is drawn at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vseek_env.data import load_dataset
from vseek_env.data.synth.build import build_synth
from vseek_env.data.synthetic import load_instance_boxes
from vseek_env.masks import decode_rle, ellipse_mask
from vseek_env.policies.pixel import find_target
from vseek_env.video import open_video
from vseek_env.visual_prompts import PALETTE, STYLES, mark_legibility, pick_mark_color, render_visual_prompt, som_labels

MAX_COVER = 0.5
MIN_CONTRAST = 80.0
from davis_data import DAVIS  # noqa: E402


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """16 samples over the default look (every style twice, several videos and frame sizes) and
    the synth:tiny set: (sample, full-size prompt frame, observation-size frame, other boxes)."""
    rows = []
    for spec in (build_synth(tmp_path_factory.mktemp("leg") / "d", samples=16, seed=21, progress=False), "synth:tiny"):
        ds = load_dataset(str(spec))
        for s in ds.samples:
            with open_video(ds.video_path(s)) as v:
                idx = v.index_at(s.prompt.time)
                full = v.read([idx], max_pixels=None).frames[0]
                small = v.read([idx]).frames[0]
            _, boxes, ids = load_instance_boxes(ds.root, s)
            f, col = s.meta["prompt_frame"], list(ids).index(s.meta["target"])
            others = tuple(tuple(boxes[f, j]) for j in range(len(ids)) if j != col and not np.isnan(boxes[f, j, 0]))
            rows.append((s, np.ascontiguousarray(full), small, others))
    return rows


@pytest.mark.parametrize("style", STYLES)
def test_every_style_leaves_the_target_visible_and_contrasts(generated, style):
    for s, frame, _, others in generated:
        mask = decode_rle(s.prompt.mask_rle)
        for k in range(3):  # the sample's seed and two more: colour, size and placement vary
            p = render_visual_prompt(frame, style, box=s.prompt.box, mask=mask, rng=s.prompt.seed + k,
                                     label=s.prompt.label, others=others)
            r = mark_legibility(frame, p.image, mask)
            assert r["changed"] > 0, (s.id, style)
            assert r["covered"] <= MAX_COVER, f"{style} covers {r['covered']:.2f} of the target in {s.id}"
            assert r["contrast"] >= MIN_CONTRAST, f"{style} ({p.color}) contrast {r['contrast']:.0f} in {s.id}"


@pytest.mark.skipif(not DAVIS.is_dir(), reason="DAVIS development data not present (VSEEK_DAVIS_DIR)")
@pytest.mark.parametrize("name", ["blackswan", "breakdance", "car-shadow", "kite-surf"])
def test_real_frames_every_style(name):
    with np.load(DAVIS / f"{name}.npz") as z:
        masks = z["masks"]
    with open_video(DAVIS / f"{name}.mp4") as v:
        for idx in (0, 25):
            frame = np.ascontiguousarray(v.read([idx], max_pixels=None).frames[0])
            for style in STYLES:
                p = render_visual_prompt(frame, style, mask=masks[idx], rng=idx)
                r = mark_legibility(frame, p.image, masks[idx])
                assert r["covered"] <= MAX_COVER and r["contrast"] >= MIN_CONTRAST, (name, idx, style, r)


def test_colour_is_chosen_against_the_target_not_at_random():
    # the case: a magenta target on grey; every seed must pick a colour far from both
    frame = np.full((120, 160, 3), 110, np.uint8)
    yy, xx = np.mgrid[0:120, 0:160]
    mask = (xx - 80) ** 2 + (yy - 60) ** 2 < 25**2
    frame[mask] = (214, 44, 204)
    for style in STYLES:
        for seed in range(10):
            p = render_visual_prompt(frame, style, mask=mask, rng=seed)
            distance = np.linalg.norm(np.subtract(PALETTE[p.color], (214, 44, 204)))
            assert distance >= 120, (style, seed, p.color)
            assert mark_legibility(frame, p.image, mask)["contrast"] >= MIN_CONTRAST
    assert pick_mark_color(np.tile([[255, 255, 255]], (9, 1)), rng=0) != "white"


def test_sizes_scale_with_the_target():
    frame = np.full((360, 640, 3), 100, np.uint8)
    yy, xx = np.mgrid[0:360, 0:640]
    changed = {}
    for radius in (12, 48):
        mask = (xx - 320) ** 2 + (yy - 180) ** 2 < radius**2
        for style in ("point", "scribble", "triangle", "mask_contour"):
            p = render_visual_prompt(frame, style, mask=mask, rng=1)
            changed[style, radius] = int((p.image != frame).any(axis=2).sum())
    for style in ("point", "scribble", "triangle", "mask_contour"):
        assert changed[style, 48] > 2 * changed[style, 12], style


def test_set_of_mark_labels_every_object_with_distinct_numbers():
    frame = np.full((288, 512, 3), 100, np.uint8)
    boxes = [(60, 60, 110, 110), (300, 50, 350, 100), (200, 180, 250, 230)]
    target = ellipse_mask(boxes[0], frame.shape)
    p = render_visual_prompt(frame, "set_of_mark", mask=target, rng=4, label=5, others=boxes[1:])
    changed = (p.image != frame).any(axis=2)
    for x1, y1, x2, y2 in boxes:  # a label on (or right next to) every object
        assert changed[max(0, y1 - 20):y2 + 20, max(0, x1 - 20):x2 + 20].any()
    without = render_visual_prompt(frame, "set_of_mark", mask=target, rng=4, label=5)
    assert (without.image != frame).any(axis=2).sum() < changed.sum() / 2
    numbers = som_labels(5, 7, np.random.default_rng(0))
    assert len(set(numbers)) == 7 and 5 not in numbers and all(1 <= k <= 9 for k in numbers)


def test_pixel_policy_reads_the_targets_number_among_several_labels(generated):
    """With labels on every object, only reading the number singles out the target."""
    hits = 0
    for i, (s, full, small, others) in enumerate(generated):
        p = render_visual_prompt(full, "set_of_mark", box=s.prompt.box, mask=decode_rle(s.prompt.mask_rle),
                                 rng=s.prompt.seed + i, label=s.prompt.label, others=others)
        shown = np.asarray(Image.fromarray(p.image).resize((small.shape[1], small.shape[0]), Image.BICUBIC))
        found = find_target(shown, small, s.prompt.label, (full.shape[1], full.shape[0]))
        want = s.meta["target_desc"]
        hits += found is not None and (found.color, found.shape) == (want["color"], want["shape"])
    assert hits >= 0.85 * len(generated)

