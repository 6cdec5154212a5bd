"""Env chat messages -> what verl's processors and dataset rows take. No verl import.

The env's ``info["messages"]`` are OpenAI-style messages whose content is a list of text and
image parts (images as numpy arrays, each preceded by its ``<t seconds>`` label). Processors want
PIL images; chat templates are most robust with plain-string content when a message has no image;
verl's Parquet rows want strings with ``<image>`` placeholders plus a separate image list.

Example:
    >>> import numpy as np
    >>> msgs = [{"role": "user", "content": [{"type": "text", "text": "<0.0 seconds>"},
    ...         {"type": "image", "image": np.zeros((28, 28, 3), np.uint8)}]}]
    >>> chat, images = to_chat_messages(msgs)
    >>> len(images), chat[0]["content"][1]["type"]
    (1, 'image')
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


def to_chat_messages(messages: list[dict]) -> tuple[list[dict], list]:
    """Processor-ready copies of env messages and their images in order of appearance.

    Text-only messages get string content (every chat template renders that); messages with
    images keep their list of parts, images converted to PIL. Extra keys (``name``) are kept.
    """
    out: list[dict] = []
    images: list = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            out.append(dict(message))
            continue
        if not any(part.get("type") == "image" for part in content):
            out.append({**message, "content": "".join(part.get("text", "") for part in content)})
            continue
        parts = []
        for part in content:
            if part.get("type") == "image":
                image = to_pil(part["image"])
                images.append(image)
                parts.append({"type": "image", "image": image})
            else:
                parts.append({"type": "text", "text": part.get("text", "")})
        out.append({**message, "content": parts})
    return out, images


def to_row_messages(messages: list[dict], *, embed_images: bool) -> tuple[list[dict], list[bytes]]:
    """Messages as verl's dataset rows store them: ``{"role", "content": str}``.

    With ``embed_images`` each image becomes ``<image>`` and its PNG bytes are returned in order
    (verl's ``RLHFDataset`` pairs them up again). Without, images are dropped together with the
    timestamp label that introduces them, so no dangling ``<t seconds>`` remains.
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
