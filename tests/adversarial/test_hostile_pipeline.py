"""Pipeline inputs that name hostile files: V2P-Bench ``frame_path`` as a FIFO or a pixel bomb (finding 13).

Each bad frame drops its own sample with a reason; the run finishes and keeps the good sample.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from fake_openai import FakeOpenAIServer
from PIL import Image
from test_pipeline import make_reply, shapes  # noqa: F401  (the module's fixture, reused)
from threads import finishes

from vseek_env.images import ImageError, read_image
from vseek_env.pipeline import PipelineConfig, run_pipeline
from vseek_env.pipeline.store import Manifest

QUESTION = ("Which direction does <the boxed thing> move?\nA: left\nB: right\nC: up\nD: down\n"
            "Select the best option that accurately addresses the question.")


def bomb(path) -> None:
    """A 15000 x 15000 PNG: tiny on disk, 675 MB as RGB pixels."""
    Image.new("1", (15000, 15000)).save(path)


def test_read_image_refuses_fifos_devices_and_bombs_without_blocking(tmp_path):
    fifo = tmp_path / "frame.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        finishes(read_image, fifo)  # no writer: a plain open would block forever
    with pytest.raises(ImageError, match="not a regular file"):
        read_image("/dev/zero")
    bomb(tmp_path / "big.png")
    with pytest.raises(ImageError, match="big.png.* pixels"):
        read_image(tmp_path / "big.png")
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(tmp_path / "ok.png")
    assert read_image(tmp_path / "ok.png").mean() == 7


def test_bad_v2p_frames_drop_their_samples_and_the_run_goes_on(shapes, tmp_path):  # noqa: F811
    root, truth = shapes
    videos, frames = tmp_path / "videos", tmp_path / "frames"  # the V2P layout: frames next to videos
    videos.mkdir()
    frames.mkdir()
    shutil.copy(root / "videos" / "clip0.mp4", videos / "clip0.mp4")
    os.mkfifo(frames / "fifo.png")
    bomb(frames / "big.png")
    Image.fromarray(np.zeros((120, 160, 3), np.uint8)).save(frames / "ok.png")
    rows = [{"video_id": "clip0", "video_path": "clip0.mp4", "duration": 6, "question": QUESTION, "answer": "B",
             "source": "T", "frame_path": name, "dimension": 2, "category": 1}
            for name in ("fifo.png", "big.png", "ok.png")]
    path = tmp_path / "v2p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out"
    with FakeOpenAIServer(make_reply(truth)) as server:
        cfg = PipelineConfig(out=str(out), llm_base_url=server.base_url, llm_model="fake", segmenter="opencv",
                             concurrency=1)
        finishes(run_pipeline, path, "v2p", cfg, videos_root=videos, log=lambda s: None)
    g2 = Manifest(out / "manifests" / "g2.jsonl").load()
    assert not g2["clip0#0"]["kept"] and "g2.frame" in g2["clip0#0"]["reason"] and "regular file" in g2["clip0#0"]["reason"]
    assert not g2["clip0#1"]["kept"] and "pixels" in g2["clip0#1"]["reason"]
    assert g2["clip0#2"]["kept"]
