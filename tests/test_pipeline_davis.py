"""The pipeline on real footage: G4's renderers on DAVIS frames and masks, and a G1 -> G4 run over
the shared DAVIS sequences with questions written here (a scripted OpenAI-compatible server plays
the LLM and the VLM on 127.0.0.1).

The sequences are development data, not a dependency: every test skips when the folder is absent
(``VSEEK_DAVIS_DIR``, default ``shared/data/davis`` beside the repository). Kept short: a 2-second window, tracking at
6 fps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fake_openai import FakeOpenAIServer, Reply

from vseek_env.data import Sample
from vseek_env.masks import box_to_mask, decode_rle, mask_to_box
from vseek_env.pipeline import PipelineConfig, run_pipeline
from vseek_env.pipeline.g4_render import rewrite_template
from vseek_env.pipeline.segmenters import mask_iou
from vseek_env.protocol import format_timestamp_label
from vseek_env.rewards.matching import box_iou
from vseek_env.visual_prompts import STYLES, prompt_region, render_visual_prompt

from davis_data import DAVIS  # noqa: E402
pytestmark = pytest.mark.skipif(not (DAVIS / "blackswan.mp4").is_file(), reason=f"DAVIS sequences not at {DAVIS}")

# sequence: (question as the dataset asks it, answer, G2's tag, G2's rewrite with <vp>)
QUESTIONS = {
    "blackswan": ("<video>\nWhich way does the black swan swim?\nA. left\nB. right\nAnswer with the option's letter.", "B",
                  "black swan on the pond", "Which way does <vp> swim?"),
    "car-shadow": ("<video>\nWhat does the car do?\nA. drives forward\nB. stands still\nAnswer with the option's letter.", "A",
                   "dark car on the street", "What does <vp> do?"),
    "breakdance": ("<video>\nWhat is the dancer doing?", "Spinning on the ground.", "breakdancer in green clothes",
                   "What is <vp> doing?"),
}


def _truth(name: str) -> np.ndarray:
    with np.load(DAVIS / f"{name}.npz") as data:
        return data["masks"]


def _frame(name: str, index: int) -> np.ndarray:
    from vseek_env.video import open_video

    with open_video(DAVIS / f"{name}.mp4") as video:
        return video.read([index], max_pixels=None).frames[0]


@pytest.mark.parametrize("style", STYLES)
def test_g4_renders_every_style_on_a_real_frame_around_the_true_target(style):
    """On a DAVIS frame with its true mask: every changed pixel lies in the prompt region of the
    target's box, the drawing is visible, and mask-following styles stay near the mask."""
    frame, mask = _frame("car-shadow", 20), _truth("car-shadow")[20]
    box = mask_to_box(mask)
    out = render_visual_prompt(frame, style, box=box, mask=mask, rng=7, label=3)
    changed = np.any(out.image != frame, axis=-1)
    assert out.image.shape == frame.shape and changed.sum() > 50
    x1, y1, x2, y2 = prompt_region(box, frame.shape)
    assert not changed[:y1].any() and not changed[y2:].any() and not changed[:, :x1].any() and not changed[:, x2:].any()
    if style == "mask_contour":  # a band hugging the true mask's outline, outside it (the target stays visible)
        import cv2

        band = cv2.dilate(mask.astype(np.uint8), np.ones((21, 21), np.uint8)).astype(bool) & ~mask.astype(bool)
        assert (changed & band).sum() / changed.sum() > 0.9 and not (changed & mask.astype(bool)).any()
    question = rewrite_template("What does <vp> do? <vp> is on the street.", out.phrase)
    assert "<vp>" not in question and question.count(out.phrase) == 1 and question.endswith(" is on the street.")


def _reply_for(request: dict) -> Reply:
    """Scripted LLM/VLM: G1 keeps instance questions; G2 names the clip's target with its true box."""
    content = request["messages"][0]["content"]
    text = content if isinstance(content, str) else "\n".join(p["text"] for p in content if p.get("type") == "text")
    if text.startswith("You filter"):
        return Reply.text(json.dumps({"keep": True, "reason": "about one entity"}))
    name = next(n for n, (q, *_) in QUESTIONS.items() if q.split("\n")[1] in text)
    question, _, tag, rewritten = QUESTIONS[name]
    mask = _truth(name)[24]  # the frame shown at 1.0 s (24 fps)
    x1, y1, x2, y2 = mask_to_box(mask)
    h, w = mask.shape
    options = [line[3:] for line in question.split("\n") if line[:3] in ("A. ", "B. ")]
    return Reply.text(json.dumps({
        "valid": True, "reason": "one clear target", "target": f"the {tag}", "tag": tag, "time_window": [0.0, 2.0],
        "question": rewritten,
        "options": options, "prompt_style": None, "seed_time": 1.0,
        "seed_box": [x1 * 1000 / w, y1 * 1000 / h, x2 * 1000 / w, y2 * 1000 / h],
    }))


@pytest.fixture(scope="module")
def davis_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis_pipe")
    rows = [{"id": name, "video": f"{name}.mp4", "data_source": "davis",
             "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
            for name, (q, a, *_) in QUESTIONS.items()]
    rows[0]["conversations"] += [{"from": "human", "value": "How many birds are in the video?"}, {"from": "gpt", "value": "One."}]
    qa = root / "qa.json"
    qa.write_text(json.dumps(rows))
    with FakeOpenAIServer(_reply_for) as server:
        cfg = PipelineConfig(out=str(root / "out"), llm_base_url=server.base_url, llm_model="fake", segmenter="opencv",
                             track_fps=6.0, concurrency=1, absolute_paths=True)
        report = run_pipeline(qa, "llava", cfg, videos_root=DAVIS, log=lambda s: None)
        requests = list(server.requests)
    return Path(cfg.out), report, requests


def test_pipeline_on_real_video_marks_the_right_object(davis_run):
    out, report, requests = davis_run
    assert {r["stage"]: r["output"] for r in report["retention"]} == {"input": 4, "g1": 3, "g2": 3, "g3": 3, "g4": 3}
    samples = [Sample.from_dict(json.loads(line)) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted(s.id.split("#")[0] for s in samples) == sorted(QUESTIONS)
    for s in samples:
        name = Path(s.video).stem
        truth = _truth(name)[int(round(s.prompt.time * 24))]
        # the prompt's box marks the true object at the prompt time, and holds most of it
        assert box_iou(s.prompt.box, mask_to_box(truth)) > 0.5, (name, s.prompt.box, mask_to_box(truth))
        assert _covered(box_to_mask(s.prompt.box, truth.shape), truth) > 0.9
        assert "<vp>" not in s.question and (out / s.meta["prompt_png"]).is_file()
        assert not any(word in s.question.lower() for word in ("swan", "car ", "dancer"))  # the entity is not named
        # G3's 1 fps masks lie on the true object. Seeded from a box only they are rough: they may
        # take in background (blackswan's box is two-thirds stone wall and water) or miss fast
        # limbs (breakdance, propagated back from the seed), so the bar is "on it", not "exact".
        covered = []
        for t, rle, box in zip(s.track.times, s.track.masks, s.track.boxes):
            true = _truth(name)[int(round(t * 24))]
            assert mask_iou(decode_rle(rle), true) > 0.25 and box_iou(box, mask_to_box(true)) > 0.3, (name, t)
            covered.append(_covered(decode_rle(rle), true))
        assert np.mean(covered) > 0.6, (name, covered)


def _covered(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of the true mask inside ``pred``."""
    return float((pred & truth).sum()) / max(1, int(truth.sum()))


def test_g2_watches_the_whole_real_clip_at_1_fps(davis_run):
    """Each G2 request shows one labelled frame per second from 0 s to the end of the clip."""
    _, _, requests = davis_run
    g2 = [r for r in requests if not isinstance(r["messages"][0]["content"], str)]
    assert len(g2) == 3
    for r in g2:
        parts = r["messages"][0]["content"]
        labels = [p["text"] for p in parts if p.get("type") == "text" and p["text"].startswith("<")]
        images = [p for p in parts if p.get("type") == "image_url"]
        assert labels[0] == format_timestamp_label(0.0) and len(images) == len(labels) >= 2
        assert labels[1] == format_timestamp_label(1.0)
