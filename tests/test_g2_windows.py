"""G2 watches the whole clip: 1 fps frame times split into windows within a budget, asked in order.

Also the ``vseek bench segmenter`` command on one real sequence (skipped without the DAVIS folder).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vseek_env.pipeline.g2_verify import clip_windows, verify_clip
from vseek_env.protocol import format_timestamp_label


@given(duration=st.floats(0, 400, allow_nan=False), fps=st.sampled_from([0.5, 1.0, 2.0]), budget=st.integers(1, 64))
def test_clip_windows_cover_the_whole_clip_within_the_budget(duration, fps, budget):
    windows = clip_windows(duration, fps=fps, budget=budget)
    times = [t for w in windows for t in w]
    assert times == [k / fps for k in range(len(times))]  # every 1/fps step from 0, in order, once
    assert len(times) == max(1, math.ceil(duration * fps - 1e-9))
    assert all(1 <= len(w) <= budget for w in windows)
    assert len(windows) == math.ceil(len(times) / budget)  # as few calls as the budget allows
    assert max(map(len, windows)) - min(map(len, windows)) <= 1  # near-equal windows


def test_clip_windows_reject_bad_arguments():
    for kwargs in ({"fps": 0}, {"budget": 0}):
        with pytest.raises(ValueError):
            clip_windows(10.0, **kwargs)
    with pytest.raises(ValueError, match="duration"):
        clip_windows(float("nan"))


class ScriptedVLM:
    """Replies in turn; records the frame labels and part notes of every request."""

    def __init__(self, replies):
        self.replies, self.seen = list(replies), []

    def complete(self, messages):
        parts = messages[0]["content"]
        self.seen.append([p["text"] for p in parts if p.get("type") == "text" and p["text"].startswith(("<", "Part"))])
        return self.replies.pop(0)


def _valid(t0):
    return json.dumps({"valid": True, "reason": "seen", "target": "the dog", "tag": "brown dog on the left",
                       "time_window": [t0, t0 + 2], "question": "What does <vp> do?", "options": [],
                       "prompt_style": None, "seed_time": t0 + 1, "seed_box": [100, 100, 300, 300]})


def test_verify_clip_asks_windows_in_order_until_one_is_valid():
    windows = clip_windows(10.0, budget=4)  # 0-3, 4-6, 7-9
    frames = [[(t, np.zeros((4, 4, 3), np.uint8)) for t in w] for w in windows]
    vlm = ScriptedVLM([json.dumps({"valid": False, "reason": "no dog here"}), _valid(5.0)])
    record, why = verify_clip(vlm, {"question": "What does the dog do?", "answer": "runs"}, iter(frames),
                              duration=10.0, frame_size=(100, 100), n_windows=len(windows))
    assert why == "" and record["valid"] and record["time_window"] == [5.0, 7.0]
    assert len(vlm.seen) == 2  # the third window is never decoded or asked
    assert vlm.seen[0][0].startswith("Part 1 of 3") and vlm.seen[1][0].startswith("Part 2 of 3")
    assert vlm.seen[1][1:] == [format_timestamp_label(t) for t in (4.0, 5.0, 6.0)]


def test_verify_clip_drops_with_every_windows_reason_when_none_is_valid():
    windows = clip_windows(5.0, budget=3)
    frames = [[(t, np.zeros((4, 4, 3), np.uint8)) for t in w] for w in windows]
    vlm = ScriptedVLM([json.dumps({"valid": False, "reason": "blurry"}), json.dumps({"valid": False, "reason": "two dogs"})])
    record, _ = verify_clip(vlm, {"question": "q", "answer": "a"}, frames, duration=5.0, frame_size=(100, 100),
                            n_windows=len(windows))
    assert record == {"valid": False, "reason": "window 1: blurry; window 2: two dogs"}


from davis_data import DAVIS  # noqa: E402


@pytest.mark.skipif(not (DAVIS / "car-shadow.mp4").is_file(), reason=f"DAVIS sequences not at {DAVIS}")
def test_bench_segmenter_command_scores_every_segmenter(tmp_path, capsys):
    from vseek_env.cli import main

    out = tmp_path / "seg.json"
    rc = main(["bench", "segmenter", "--davis", str(DAVIS), "--sequences", "car-shadow", "--max-frames", "2",
               "--seed", "mask", "--segmenters", "opencv,sam", "--sam-model", str(tmp_path / "none"), "--out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    rows = {(r["segmenter"], r["seed"]): r for r in result["results"]}
    assert set(rows) == {("static-box", "box"), ("opencv", "mask"), ("sam", "mask")}
    assert "not on this machine" in rows[("sam", "mask")]["unavailable"]
    assert rows[("opencv", "mask")]["J"] > rows[("static-box", "box")]["J"] + 0.2
    assert 0 <= rows[("opencv", "mask")]["F"] <= 1 and len(rows[("opencv", "mask")]["sequences"]["car-shadow"]["J_per_frame"]) == 2
    table = capsys.readouterr().out
    assert "mean J" in table and "unavailable" in table
    assert main(["bench", "segmenter", "--davis", str(tmp_path / "missing")]) == 2
