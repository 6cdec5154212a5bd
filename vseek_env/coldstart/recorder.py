"""The rollout hook of the eval runner: keep each episode's whole conversation, frames by reference.

:class:`ConversationRecorder` is plugged into :func:`vseek_env.evaluation.evaluate` (``recorder=``).
It stores the env's chat messages of every step (system prompt, question with the overview and
the visual prompt, each response, each tool message, the env's feedback) in the record's
``conversation`` field, in the env's own message form with every image array replaced by a path:

    {"type": "image", "image": "frames/<video>/<index>_<h>x<w>_<digest>.png", "time": 3.0, "source": "crop_video"}
    {"type": "video", "video": ["frames/...png", ...], "timestamps": [0.5, 1.5, ...], "fps": 1.0}   (paper protocol)

Frames are lossless PNG files named by video, frame index, size and a digest of the pixels, so
a name determines its bytes: each is written once per rollout folder (the runner never
overwrites a shared asset) and referenced by every trajectory that saw it. Frames without a
video index (the rendered visual prompt, ``zoom_in`` crops) are named by the digest alone.

Example:
    >>> from vseek_env.evaluation import evaluate
    >>> evaluate("oracle", "synth:tiny", "runs/ro", repeats=4, recorder=ConversationRecorder)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from vseek_env.evaluation.episode import SHARED_ASSET_DIR


def video_digest(path: str | os.PathLike) -> str:
    """A short stable name of a video file's identity (resolved path, mtime, size)."""
    resolved = Path(path).resolve()
    try:
        st = resolved.stat()
        ident = (str(resolved), st.st_mtime_ns, st.st_size)
    except OSError:
        ident = (str(resolved), 0, 0)
    return hashlib.sha1(repr(ident).encode()).hexdigest()[:12]


def frame_name(video_id: str, index: int | None, image: np.ndarray) -> str:
    """The shared-asset path of a frame: video, index, size and pixel digest."""
    h, w = image.shape[:2]
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()[:12]
    stem = f"{int(index):07d}_{h}x{w}_{digest}" if index is not None else f"x_{h}x{w}_{digest}"
    return f"{SHARED_ASSET_DIR}{video_id}/{stem}.png"


class ConversationRecorder:
    """Per-worker hook: turns the env's messages into a JSON conversation with frame references.

    It remembers which frames this worker already emitted, so a frame is PNG-encoded once per
    worker however many episodes show it.
    """

    def __init__(self) -> None:
        self._emitted: set[str] = set()
        self._messages: list[dict] = []
        self._assets: dict[str, bytes] = {}
        self._video_id = ""

    def start(self, task, env) -> None:
        env = getattr(env, "unwrapped", env)
        self._messages, self._assets = [], {}
        self._video_id = video_digest(env.dataset.video_path(env.dataset[task.sample_id]))

    def on_step(self, turn: int, response: str | None, info: dict) -> None:
        from vseek_env.integrations.verl.messages import png_bytes

        frames = iter(info["frames"])
        if response is not None:
            self._messages.append({"role": "assistant", "content": [{"type": "text", "text": response}]})
        for message in info["messages"]:
            parts = []
            for part in message["content"]:
                if part["type"] == "image":
                    frame = next(frames)
                    parts.append({"type": "image", "image": self._frame(frame, part["image"], png_bytes),
                                  "time": frame["time"], "source": frame["source"]})
                elif part["type"] == "video":  # the paper protocol's overview: frames + true times
                    paths = [self._frame(next(frames), image, png_bytes) for image in part["video"]]
                    parts.append({"type": "video", "video": paths, "timestamps": list(part["timestamps"]), "fps": part["fps"]})
                else:
                    parts.append({"type": "text", "text": part["text"]})
            entry: dict[str, Any] = {"role": message["role"], "content": parts}
            if "name" in message:
                entry["name"] = message["name"]
            self._messages.append(entry)

    def _frame(self, frame: dict, image, png_bytes) -> str:
        """The shared-asset path of one frame of ``info["frames"]`` (written once per worker)."""
        if frame["image"] is not image:
            raise RuntimeError("env messages and info['frames'] disagree on frame order")
        path = frame_name(self._video_id, frame.get("index"), frame["image"])
        if path not in self._emitted:
            self._assets[path] = png_bytes(frame["image"])
            self._emitted.add(path)
        return path

    def finish(self, record: dict, assets: dict[str, bytes]) -> None:
        record["conversation"] = self._messages
        assets.update(self._assets)
        self._messages, self._assets = [], {}
