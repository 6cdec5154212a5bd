"""The pixel policy: finds the marked target for every style, never reads ground truth, needs tools."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import vseek_env  # noqa: F401  (registers the env ids)
from vseek_env.data import load_dataset
from vseek_env.data.synthetic import build
from vseek_env.masks import decode_rle
from vseek_env.policies.oracle import OraclePolicy
from vseek_env.policies.pixel import PixelPolicy, detect, find_target
from vseek_env.policies.random import RandomPolicy
from vseek_env.rewards.matching import match_answer
from vseek_env.video import open_video
from vseek_env.visual_prompts import STYLES, render_visual_prompt


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("VSEEK_CACHE_DIR", str(root))
    build("synth:tiny", root)
    yield load_dataset("synth:tiny")
    mp.undo()


class NoGroundTruth(dict):
    """An info dict whose ground-truth entry cannot be read."""

    def __getitem__(self, key):
        if key == "sample":
            raise AssertionError("the pixel policy read info['sample']")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key == "sample":
            raise AssertionError("the pixel policy read info['sample']")
        return super().get(key, default)


def play(env, policy, sample_id, *, hide_truth=True):
    policy.bind_env(env.unwrapped)
    obs, info = env.reset(seed=0, options={"sample_id": sample_id})
    policy.reset(0)
    done = False
    while not done:
        view = NoGroundTruth({k: v for k, v in info.items() if k != "sample"}) if hide_truth else info
        obs, _, term, trunc, info = env.step(policy.act(obs, view))
        done = term or trunc
    return info["trajectory"]


def test_detector_finds_every_instance(tiny):
    s = tiny.samples[0]
    from vseek_env.data.synthetic import load_instance_boxes, load_scene

    spec = load_scene(tiny.root, s)
    _, boxes, ids = load_instance_boxes(tiny.root, s)
    with open_video(tiny.video_path(s)) as v:
        f = spec["overview"][0]
        frame = v.read([f]).frames[0]
        sx, sy = frame.shape[1] / v.width, frame.shape[0] / v.height
    blobs = detect(frame)
    for k, inst in enumerate(spec["instances"]):
        if np.isnan(boxes[f, k, 0]):
            continue
        x1, y1, x2, y2 = boxes[f, k] * np.array([sx, sy, sx, sy])
        near = [b for b in blobs if x1 <= b.cx <= x2 and y1 <= b.cy <= y2 and b.box[0] >= x1 - 3 and b.box[2] <= x2 + 3]
        assert near and near[0].color == inst["color"], (inst, blobs)


@given(st.integers(0, 40), st.integers(0, 30), st.integers(6, 30), st.integers(6, 20))
def test_detect_gives_the_exact_box_of_a_solid_square(x, y, w, h):
    image = np.zeros((64, 80, 3), np.uint8)
    image[y:y + h, x:x + w] = (230, 30, 30)
    (blob,) = detect(image)
    assert blob.box == (x, y, x + w, y + h) and blob.area == w * h  # corners exclusive, like the slice
    assert (blob.cx, blob.cy) == pytest.approx((x + w / 2, y + h / 2))


@pytest.mark.parametrize("style", STYLES)
def test_find_target_for_every_style(tiny, style):
    """The prompt marks drawn on a frame single out the target among the detected objects."""
    hits = 0
    for i, s in enumerate(tiny.samples):
        with open_video(tiny.video_path(s)) as v:
            idx = v.index_at(s.prompt.time)
            full = v.read([idx], max_pixels=None).frames[0]
            clean = v.read([idx]).frames[0]
        p = render_visual_prompt(full, style, box=s.prompt.box, mask=decode_rle(s.prompt.mask_rle), rng=i, label=3)
        from PIL import Image

        small = np.asarray(Image.fromarray(p.image).resize((clean.shape[1], clean.shape[0]), Image.BICUBIC))
        found = find_target(small, clean)
        want = s.meta["target_desc"]
        hits += found is not None and found.color == want["color"]
    assert hits >= len(tiny.samples) - 1


def test_pixel_policy_never_reads_ground_truth_and_needs_tools(tiny):
    env = gym.make("VideoSeeker-v0", dataset="synth:tiny")
    needing = [s for s in tiny.samples if s.needs_tools]
    assert needing
    with_tools = overview = oracle = 0
    for s in needing:
        traj = play(env, PixelPolicy(use_tools=True), s.id)
        assert traj.num_tool_calls > 0
        with_tools += match_answer(s, traj.answer)[0]
        traj = play(env, PixelPolicy(use_tools=False), s.id)
        assert traj.num_tool_calls == 0
        overview += match_answer(s, traj.answer)[0]
        traj = play(env, OraclePolicy(), s.id, hide_truth=False)
        oracle += match_answer(s, traj.answer)[0]
    n = len(needing)
    assert oracle == n
    assert with_tools / n >= 0.75
    assert overview / n <= 0.5
    env.close()


def test_random_policy_answers_every_kind(tiny):
    env = gym.make("VideoSeeker-v0", dataset="synth:tiny")
    for s in tiny.samples:
        traj = play(env, RandomPolicy(), s.id)
        assert traj.answer is not None and traj.num_tool_calls == 0
    env.close()
