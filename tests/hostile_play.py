"""One hostile-video case, played in a capped child by ``tests/test_hostile_videos.py``.

``play(path)`` resets the env on a one-sample dataset over ``path``, asks ``crop_video`` for the
whole video and ``zoom_in`` for a corner, and builds the frame store for it, returning what
happened (or the error). Kept import-light: it runs under ``RLIMIT_AS``.
"""

from __future__ import annotations

import os
from pathlib import Path


def play(path: str, store: str) -> dict:
    from vseek_env.commands.cache import build_store
    from vseek_env.data import Dataset, Sample, VisualPromptSpec
    from vseek_env.env import VideoSeekerEnv
    from vseek_env.frame_store import FrameStore
    from vseek_env.video import VideoError

    p = Path(path)
    os.chdir(p.parent)  # a relative video name, as a dataset file in the working folder gives it
    sample = Sample(id="hostile", video=p.name, question="What is shown?", options=("a", "b"), answer="A",
                    prompt=VisualPromptSpec(time=0.0, style="rectangle", box=(1.0, 1.0, 20.0, 20.0)))
    dataset = Dataset("hostile", [sample], root=Path("."))
    env = VideoSeekerEnv(dataset=dataset, tools=("view_visual_prompt", "crop_video", "zoom_in"), tool_timeout_s=60)
    out: dict = {}
    try:
        obs, info = env.reset(seed=0)
    except VideoError as exc:
        out.update(outcome="error", error=str(exc))
    else:
        duration = info["video"]["duration"]
        action = ('<think>all</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 0, '
                  f'"end_time": {duration!r}}}}}</tool_call>')
        obs, reward, terminated, truncated, info = env.step(action)
        frames = info["tool_results"][0].get("num_frames", 0) if info["tool_results"] else 0
        zoom = ('<think>z</think><tool_call>{"name": "zoom_in", "arguments": {"time": 0, '
                '"box": [0, 0, 20, 20]}}</tool_call>')
        env.step(zoom)
        out.update(outcome="ok", duration=duration, crop_frames=frames, errors=[e["code"] for e in info["errors"]],
                   crop_text=info["tool_results"][0]["text"] if info["tool_results"] else "")
        out["first_frame_index"] = _first_index(env)
    finally:
        env.close()
    counts = build_store(dataset, FrameStore(store), log=lambda m: None)
    out["store"] = {"videos": counts["videos"], "failed": [f["error"] for f in counts["failed"]]}
    return out


def _first_index(env) -> int:
    from videos import read_index

    from vseek_env.video import open_video

    with open_video(env.dataset.video_path(env.dataset.samples[0])) as video:
        return read_index(video.read([0], max_pixels=None).frames[0])
