"""Env chat messages -> what verl's processors and dataset rows take. No verl import.

The env's ``info["messages"]`` are OpenAI-style messages whose content is a list of text and
image parts (images as numpy arrays, each preceded by its ``<t seconds>`` label), and, under the
paper protocol, one video part (:mod:`vseek_env.video_part`). Processors want PIL images and, for
video, ``(frames, metadata)`` pairs (verl 0.9 splits them and passes the metadata, so Qwen-VL
labels frames with their true times); chat templates are most robust with plain-string content when
a message has no media; verl's Parquet rows want strings with ``<image>`` placeholders plus a
separate image list.

Example:
    >>> import numpy as np
    >>> msgs = [{"role": "user", "content": [{"type": "text", "text": "<0.0 seconds>"},
    ...         {"type": "image", "image": np.zeros((28, 28, 3), np.uint8)}]}]
    >>> chat, images, videos = to_chat_messages(msgs)
    >>> len(images), len(videos), chat[0]["content"][1]["type"]
    (1, 0, 'image')
    >>> rows, frames = to_row_messages(msgs, embed_images=False)
    >>> rows[0]["content"], frames
    ('', [])
"""

from __future__ import annotations

import io
from typing import Any

IMAGE_PLACEHOLDER = "<image>"


def to_pil(image: Any):
    """A numpy HxWx3 uint8 array (or a PIL image) as an RGB PIL image."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(image).convert("RGB")


def to_chat_messages(messages: list[dict]) -> tuple[list[dict], list, list]:
    """Processor-ready copies of env messages, their images and their videos in order of appearance.

    Text-only messages get string content (every chat template renders that); messages with
    media keep their list of parts, images converted to PIL, each video part a ``{"type": "video"}``
    placeholder (Qwen templates render ``<|vision_start|><|video_pad|><|vision_end|>``) whose frames
    come back as a ``(T x C x H x W uint8 tensor, metadata)`` pair (:func:`video_input`). Extra keys
    (``name``) are kept.
    """
    out: list[dict] = []
    images: list = []
    videos: list = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append(dict(message))
            continue
        if not any(part.get("type") in ("image", "video") for part in content):
            out.append({**message, "content": "".join(part.get("text", "") for part in content)})
            continue
        parts = []
        for part in content:
            if part.get("type") == "image":
                image = to_pil(part["image"])
                images.append(image)
                parts.append({"type": "image", "image": image})
            elif part.get("type") == "video":
                videos.append(video_input(part))
                parts.append({"type": "video"})
            else:
                parts.append({"type": "text", "text": part.get("text", "")})
        out.append({**message, "content": parts})
    return out, images, videos


def video_input(part: dict) -> tuple[Any, dict]:
    """A video part as verl's processors take it: ``(frames T x C x H x W uint8, metadata)``.

    The metadata makes ``frames_indices / fps`` the frames' true times
    (:func:`vseek_env.video_part.video_metadata`); the frames are already at the env's pixel budget
    on the model's grid, so ``mm_processor_kwargs`` should keep their size (``videos_kwargs:
    {do_resize: false}``; Qwen3-VL's default caps the *whole video* at 786,432 pixels).
    """
    import numpy as np
    import torch

    from vseek_env.video_part import video_metadata

    frames = torch.from_numpy(np.stack([np.asarray(f, dtype=np.uint8) for f in part["video"]]))
    return frames.permute(0, 3, 1, 2).contiguous(), video_metadata(part["timestamps"], part["fps"])


def to_row_messages(messages: list[dict], *, embed_images: bool) -> tuple[list[dict], list[bytes]]:
    """Messages as verl's dataset rows store them: ``{"role", "content": str}``.

    With ``embed_images`` each image becomes ``<image>`` and its PNG bytes are returned in order
    (verl's ``RLHFDataset`` pairs them up again). Without, images are dropped together with the
    timestamp label that introduces them, so no dangling ``<t seconds>`` remains, and so are video
    parts (``vseek_agent`` re-renders every observation from the env). A video part cannot be
    embedded: verl's stock loop would need the frames as a ``videos`` column; that is refused with
    a clear error rather than silently dropped.
    """
    rows: list[dict] = []
    blobs: list[bytes] = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            rows.append({"role": message["role"], "content": content})
            continue
        pieces: list[str] = []
        for i, part in enumerate(content):
            if part.get("type") == "video":
                if embed_images:
                    raise ValueError(
                        "rows with embedded media cannot carry the paper protocol's video overview; export "
                        "without --embed-images and train with the vseek_agent loop (it renders the video itself)"
                    )
                continue
            if part.get("type") == "image":
                if embed_images:
                    pieces.append(IMAGE_PLACEHOLDER)
                    blobs.append(png_bytes(part["image"]))
                continue
            text = part.get("text", "")
            next_is_image = i + 1 < len(content) and content[i + 1].get("type") == "image"
            if next_is_image and not embed_images:
                continue  # the frame's timestamp label
            pieces.append(text)
        rows.append({"role": message["role"], "content": "".join(pieces)})
    return rows, blobs


def png_bytes(image: Any) -> bytes:
    """Lossless PNG encoding of a frame (what ``{"bytes": ...}`` image cells hold)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return buffer.getvalue()
