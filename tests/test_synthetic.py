"""The synthetic generator: determinism, ground truth consistency, coverage, answers from GT."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vseek_env.data import load_dataset
from vseek_env.data.synth.generate import TEMPLATES
from vseek_env.data.synth.palette import ALL_COLORS
from vseek_env.data.synth.scene import SceneRenderer, overview_indices
from vseek_env.data.synthetic import (
    CONFIGS,
    _plan,
    build,
    dataset_dir,
    load_instance_boxes,
    load_instance_masks,
    load_scene,
)
from vseek_env.masks import decode_rle, mask_to_box
from vseek_env.video import open_video
from vseek_env.visual_prompts import STYLES


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    build("synth:tiny", root)
    return dataset_dir("synth:tiny", root)


def test_two_builds_are_byte_identical(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("VSEEK_CACHE_DIR", str(tmp_path))
    ds = load_dataset("synth:tiny")  # built through the registry into the env's cache dir
    assert ds.root == dataset_dir("synth:tiny", tmp_path)
    assert (ds.root / "samples.jsonl").read_bytes() == (tiny / "samples.jsonl").read_bytes()
    assert (ds.root / "manifest.json").read_bytes() == (tiny / "manifest.json").read_bytes()
    for video in sorted((tiny / "videos").glob("*.mp4")):
        assert (ds.root / "videos" / video.name).read_bytes() == video.read_bytes()


def test_build_layout_manifest_and_stats(tiny):
    manifest = json.loads((tiny / "manifest.json").read_text())
    stats = json.loads((tiny / "stats.json").read_text())
    assert manifest["generator_version"] and manifest["seed"] == CONFIGS["synth:tiny"].seed
    assert manifest["counts"]["samples"] == stats["samples"] == 6
    assert not list(tiny.parent.glob(".synth_tiny.tmp-*"))  # the temp dir was renamed away


def test_samples_are_well_formed(tiny):
    ds = load_dataset(tiny / "samples.jsonl")
    for s in ds.samples:
        assert s.source == "synthetic" and s.prompt.style in STYLES and s.dimension in {d for d, _ in TEMPLATES.values()}
        assert s.prompt.time is not None and s.prompt.box is not None and s.prompt.mask_rle
        assert s.evidence[0] < s.evidence[1] <= s.duration + 1e-6
        assert s.track is not None and len(s.track.times) == len(s.track.boxes) > 0
        assert (tiny / s.video).is_file()


def test_video_matches_spec_timestamps(tiny):
    ds = load_dataset(tiny / "samples.jsonl")
    s = ds.samples[0]
    spec = load_scene(tiny, s)
    with open_video(tiny / s.video) as v:
        assert v.num_frames == spec["n_frames"] and abs(v.duration - s.duration) < 1e-3
        assert np.allclose(v.frame_times, np.arange(spec["n_frames"]) / spec["fps"], atol=1e-3)
        assert list(v.uniform_indices(16)) == overview_indices(spec["n_frames"], spec["fps"], 16) == spec["overview"]


def test_boxes_and_masks_match_rendered_pixels(tiny):
    """GT masks are exactly the pixels painted in the instance's colour; decoded video agrees."""
    ds = load_dataset(tiny / "samples.jsonl")
    s = ds.samples[0]
    spec = load_scene(tiny, s)
    r = SceneRenderer(spec)
    times, boxes, ids = load_instance_boxes(tiny, s)
    with open_video(tiny / s.video) as v:
        for f in (0, spec["n_frames"] // 2, spec["n_frames"] - 1):
            img = r.frame(f)
            masks = r.masks_at(f)
            states, _ = r.states(f)
            colours = {st["id"]: st["color"] for st in states}
            decoded = v.read([f], max_pixels=None).frames[0].astype(int)
            for k, m in masks.items():
                box = mask_to_box(m)
                col = list(ids).index(k)
                if box is None:
                    assert np.isnan(boxes[f, col, 0])
                    continue
                assert tuple(boxes[f, col]) == box
                rgb = np.asarray(ALL_COLORS[colours[k]])
                painted = img[m].astype(int)
                # every mask pixel is the colour or its texture shade (same hue, darker)
                ratio = painted.sum(axis=1) / rgb.sum()
                assert ((ratio > 0.55) & (ratio < 1.01)).all()
                # outside the mask but inside the box: background, not the object colour
                x1, y1, x2, y2 = (int(v_) for v_ in box)
                ring = ~m[y1:y2, x1:x2]
                if ring.any():
                    assert not (np.abs(img[y1:y2, x1:x2][ring].astype(int) - rgb).sum(axis=1) < 30).any()
                # the encoded video shows the object there (lossy, so compare the mean colour)
                inner = m.copy()
                inner[1:-1, 1:-1] &= m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
                if inner.sum() > 20:
                    assert np.abs(decoded[inner].mean(axis=0) - img[inner].astype(int).mean(axis=0)).max() < 25


def test_prompt_spec_matches_ground_truth(tiny):
    ds = load_dataset(tiny / "samples.jsonl")
    for s in ds.samples:
        times, masks = load_instance_masks(tiny, s, [s.prompt.time])
        m = masks[s.meta["target"]][0]
        assert (decode_rle(s.prompt.mask_rle) == m).all()
        assert tuple(s.prompt.box) == mask_to_box(m)


def test_needs_tools_matches_the_overview(tiny):
    ds = load_dataset(tiny / "samples.jsonl")
    for s in ds.samples:
        spec = load_scene(tiny, s)
        fps = spec["fps"]
        ov = overview_indices(spec["n_frames"], fps, 16) + [s.meta["prompt_frame"]]
        seen = any(round(a * fps) <= f < round(b * fps) for a, b in s.meta["evidence_intervals"] for f in ov)
        assert s.needs_tools == (not seen)


@pytest.fixture(scope="module")
def default_plans():
    return _plan(CONFIGS["synth:default"])


def test_default_covers_every_style_dimension_and_kind(default_plans):
    from vseek_env.visual_prompts import STYLES

    qs = [q for p in default_plans for q in p["questions"]]
    assert 60 <= len(qs) <= 120
    assert {q["style"] for q in qs} == set(STYLES)
    assert {q["planned"].template for q in qs} == set(TEMPLATES)
    assert {TEMPLATES[q["planned"].template][1] for q in qs} == {"choice", "open", "number", "span", "box"}
    hidden = sum(q["planned"].hidden for q in qs)
    assert 0.6 * len(qs) <= hidden < len(qs)


def test_answers_follow_from_the_event_timeline(default_plans):
    """Recompute every (non-box) answer from the scene's events alone."""
    from vseek_env.data.synth.generate import action_text

    def text(e):
        if e["kind"] == "flash":
            return action_text(("flash", e["color"]))
        if e["kind"] == "dart":
            return action_text(("dart", e["direction"]))
        return action_text((e["kind"],))

    for plan in default_plans:
        events = plan["spec"]["events"]
        for item in plan["questions"]:
            q = item["planned"]
            mine = sorted((e for e in events if e["inst"] == q.target), key=lambda e: e["f0"])
            assert all(e["role"] == "question" for e in mine)
            opts = list(q.options)
            pick = (lambda v: opts[ord(q.answer) - 65] == v)
            t = q.template
            if t == "attribute_choice":
                assert pick(mine[0]["color"]) and len(mine) == 1
            elif t == "attribute_open":
                assert q.answer == mine[0]["color"]
            elif t == "direction":
                assert pick(mine[0]["direction"])
            elif t == "counting":
                assert q.answer == sum(e["kind"] == "flash" and e["color"] == "white" for e in mine)
            elif t in ("forward_temporal", "reverse_temporal"):
                seq = [text(e) for e in mine]
                assert pick(seq[1] if t == "forward_temporal" else seq[0])
            elif t == "action_sequence":
                assert pick(", then ".join(text(e) for e in mine))
            elif t == "spatial_relation":
                side = {"left": "left", "right": "right", "up": "above", "down": "below"}[mine[0]["direction"]]
                assert pick(side)
            elif t == "feature_mapping":
                partner = plan["spec"]["instances"][mine[0]["partner"]]
                assert pick(f"the {partner['color']} {partner['shape']}")
            elif t == "temporal_grounding":
                fps = plan["spec"]["fps"]
                assert q.answer == [round(mine[0]["f0"] / fps, 4), round(mine[0]["f1"] / fps, 4)]
            elif t == "spatial_grounding":
                assert mine[0]["f0"] <= q.answer_frame < mine[0]["f1"] and mine[0]["kind"] == "dart"
                assert math.floor(q.answer_time * plan["spec"]["fps"] + 1e-9) == q.answer_frame
            # question events own their frames: no other event overlaps them
            for e in mine:
                for o in events:
                    if o is not e and o["inst"] != q.target and o["role"] == "noise":
                        assert o["f1"] <= e["f0"] or e["f1"] <= o["f0"]


def test_the_pixel_policy_reads_every_question_the_generator_writes(default_plans):
    """The generator's templates and the pixel policy's question parser must move together."""
    from vseek_env.policies.pixel import parse_question

    for plan in default_plans:
        for item in plan["questions"]:
            planned = item["planned"]
            text = planned.question.replace("{ref}", "the target in the highlighted box")
            assert parse_question(text)[0] == TEMPLATES[planned.template][0], text
