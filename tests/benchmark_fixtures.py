"""Small files in each published benchmark's own layout, with generated videos, for the loader and
eval tests. Written from the formats documented in each loader module (our data, not copied)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from videos import write_indexed_video
from vseek_env.masks import encode_rle

N_QUESTIONS = 24
WORDS = ("a red cup", "the tall man", "a blue kite", "two dogs", "the left door", "a wooden boat")


def _videos(folder: Path, names: list[str], *, fps: int = 10, n_frames: int = 30) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            write_indexed_video(path, n_frames=n_frames, fps=fps, size=(96, 128))


def videomme(root: Path) -> Path:
    """``videomme/test-00000-of-00001.parquet``-style rows (as JSON) plus ``data/<videoID>.mp4``."""
    ann = root / "videomme" / "test.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    _videos(root / "data", ["vidAAA.mp4", "vidBBB.mp4"])
    rows = []
    for i in range(N_QUESTIONS):
        video = i % 2
        rows.append({
            "video_id": f"00{video + 1}", "videoID": ["vidAAA", "vidBBB"][video], "question_id": f"00{video + 1}-{i}",
            "duration": ["short", "medium"][video], "domain": "Knowledge", "sub_category": "Astronomy",
            "task_type": ["Counting Problem", "OCR Problems", "Temporal Reasoning"][i % 3],
            "question": f"Question {i}: which option is right?",
            "options": [f"A. opt{i}a.", f"B. opt{i}b.", f"C. opt{i}c.", f"D. opt{i}d."], "answer": "ABCD"[i % 4],
        })
    ann.write_text(json.dumps(rows))
    return ann


def longvideobench(root: Path) -> Path:
    """``lvb_val.json`` rows plus ``videos/<video_path>``."""
    _videos(root / "videos", ["lvA.mp4", "lvB.mp4"])
    rows = []
    for i in range(N_QUESTIONS):
        n = 4 if i % 3 else 5
        rows.append({
            "id": f"lv{i}", "video_id": ["lvA", "lvB"][i % 2], "video_path": ["lvA.mp4", "lvB.mp4"][i % 2],
            "question": f"What happens in part {i}?", "question_wo_referring_query": "What happens?",
            "candidates": [f"event {i}-{k}" for k in range(n)], "correct_choice": i % n, "position": [1],
            "topic_category": "NP-News-Programs", "question_category": ["T3O", "S2E"][i % 2], "level": "L2-Relation",
            "subtitle_path": "x_en.json", "duration_group": [15, 600][i % 2], "starting_timestamp_for_subtitles": 0,
            "duration": 3.0, "view_count": 1,
        })
    path = root / "lvb_val.json"
    path.write_text(json.dumps(rows))
    return path


def longvt(root: Path) -> Path:
    """VideoSIAH-Eval-style ``test-00000-of-00001.json`` (open-ended) plus its videos."""
    _videos(root / "videos", ["long1.mp4", "long2.mp4"])
    rows = [{"video_path": f"videos/long{1 + i % 2}.mp4", "question": f"What is shown at moment {i}?",
             "answer": WORDS[i % len(WORDS)], "question_type": ["object", "action"][i % 2]} for i in range(N_QUESTIONS)]
    path = root / "test-00000-of-00001.json"
    path.write_text(json.dumps(rows))
    return path


def videorefer(root: Path, frame_rate: int = 24) -> Path:
    """``VideoRefer-Bench-Q.json`` with COCO RLE masks, plus the frame folders encoded to ``<folder>.mp4``."""
    names = ["DAVIS/JPEGImages/480p/clipa", "DAVIS/JPEGImages/480p/clipb"]
    _videos(root, [n + ".mp4" for n in names], fps=frame_rate, n_frames=40)
    rows = []
    for i in range(N_QUESTIONS):
        mask = np.zeros((96, 128), bool)
        mask[20 + i % 10: 60, 30: 80 + i % 20] = True
        rle = encode_rle(mask, compress=True)
        objects = [{str(f): {"segmentation": rle} for f in (0, 10 + i % 5, 30)}]
        question = f"What is <object{i % 3 + 1}><region> doing in clip {i}?"
        if i % 6 == 5:  # a two-object question
            objects.append({"3": {"segmentation": rle}})
            question = f"How does <object1><region> relate to <object2><region> in clip {i}?"
        rows.append({
            "id": i, "video": names[i % 2], "Question": question,
            "type": ["Basic Questions", "Sequential Questions", "Relationship Questions"][i % 3],
            "options": [f"({'ABCD'[k]}) act{i}{k}" for k in range(4)], "Answer": f"({'ABCD'[i % 4]}) act{i}{i % 4}",
            "frame_idx": str(10 + i % 5), "annotation": objects,
        })
    path = root / "VideoRefer-Bench-Q.json"
    path.write_text(json.dumps(rows))
    return path


WRITERS = {"videomme": videomme, "longvideobench": longvideobench, "longvt": longvt, "videorefer": videorefer}
