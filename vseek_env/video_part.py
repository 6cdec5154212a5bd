"""The video content part of env messages, and the metadata that carries its true times to Qwen-VL.

The ``paper`` protocol offers the overview as one part of ``info["messages"]``::

    {"type": "video", "video": [H x W x 3 uint8 arrays], "timestamps": [seconds], "fps": frames per second}

``timestamps`` are the frames' presentation times; ``fps`` is the rate they were sampled at
(frames / duration). Hugging Face processors (and verl, which hands ``(frames, metadata)`` pairs
to them) compute a frame's time as ``frames_indices[i] / fps`` and the sampling rate as
``len(frames_indices) / total_num_frames * fps``; :func:`video_metadata` builds metadata for which
both are the true values (times to the millisecond).

Example:
    >>> import numpy as np
    >>> part = video_part([np.zeros((28, 28, 3), np.uint8)] * 2, [0.5, 1.5], duration=2.0)
    >>> part["type"], part["timestamps"], part["fps"]
    ('video', [0.5, 1.5], 1.0)
    >>> m = video_metadata(part["timestamps"], part["fps"])
    >>> [i / m["fps"] for i in m["frames_indices"]], len(m["frames_indices"]) / m["total_num_frames"] * m["fps"]
    ([0.5, 1.5], 1.0)
"""

from __future__ import annotations

from typing import Any, Sequence

TIME_RESOLUTION = 1000.0  # metadata "frames" per second: true times to the millisecond


def video_part(frames: Sequence[Any], timestamps: Sequence[float], *, duration: float) -> dict:
    """The message part of ``frames`` shown at ``timestamps`` (seconds) of a ``duration``-second video."""
    times = [float(t) for t in timestamps]
    if len(times) != len(frames):
        raise ValueError(f"video_part: {len(frames)} frames but {len(times)} timestamps")
    return {"type": "video", "video": list(frames), "timestamps": times,
            "fps": len(frames) / duration if duration > 0 else 1.0}


def video_metadata(timestamps: Sequence[float], fps: float) -> dict:
    """Video metadata (the keys of ``transformers.video_utils.VideoMetadata``, as verl passes them)
    whose ``frames_indices / fps`` are ``timestamps`` and whose sampled rate is ``fps``."""
    indices = [int(round(float(t) * TIME_RESOLUTION)) for t in timestamps]
    duration = len(indices) / fps if fps > 0 else (max(timestamps) if len(timestamps) else 0.0)
    total = max(int(round(duration * TIME_RESOLUTION)), (max(indices) + 1) if indices else 1)
    return {"fps": TIME_RESOLUTION, "frames_indices": indices, "total_num_frames": total, "duration": duration,
            "video_backend": "vseek_env"}
