"""A small OpenAI-compatible chat client for the model-backed pipeline stages (G1, G2, G4).

It speaks ``POST {base_url}/chat/completions`` (vLLM, SGLang, hosted APIs), sends frames as
``data:`` JPEG URLs, retries transport failures and 5xx/429 answers, and turns every reply into
text. Parsing the text is the caller's job: a model's malformed output is an observation, never a
crash (:func:`parse_json_reply` returns ``(None, why)``).

Example:
    >>> client = ChatClient("http://127.0.0.1:8000/v1", "Qwen2.5-VL-7B")        # doctest: +SKIP
    >>> text = client.complete([{"role": "user", "content": "Reply with {}"}])   # doctest: +SKIP
    >>> parse_json_reply('```json\\n{"keep": true}\\n```')
    ({'keep': True}, '')
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ChatClient", "LLMError", "image_part", "parse_json_reply"]


class LLMError(RuntimeError):
    """The endpoint could not be reached or kept failing; the message names the URL."""


@dataclass
class ChatClient:
    """Chat completions against an OpenAI-compatible server.

    Args:
        base_url: e.g. ``http://host:8000/v1`` (``/chat/completions`` is appended).
        model: the served model name.
        api_key: sent as ``Authorization: Bearer``; local servers usually ignore it.
        timeout_s: per request.
        retries: extra attempts after a transport error, a 429 or a 5xx answer.
        temperature, max_tokens: sampling settings sent with every request.
    """

    base_url: str
    model: str
    api_key: str = "EMPTY"
    timeout_s: float = 120.0
    retries: int = 2
    temperature: float = 0.0
    max_tokens: int = 1024
    backoff_s: float = 0.5

    def complete(self, messages: list[dict]) -> str:
        """The assistant message's text for ``messages``; raises :class:`LLMError` when the endpoint fails."""
        url = self.base_url.rstrip("/") + "/chat/completions"
        body = json.dumps(
            {"model": self.model, "messages": messages, "temperature": self.temperature, "max_tokens": self.max_tokens}
        ).encode()
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * attempt)
            request = urllib.request.Request(
                url, data=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    payload = response.read()
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code == 429 or exc.code >= 500:
                    continue
                raise LLMError(f"{url}: HTTP {exc.code}: {exc.read()[:200]!r}") from None
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            try:
                data = json.loads(payload)
                content = data["choices"][0]["message"].get("content")
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                # a garbled body is the model server's fault, not a transport one: retrying is cheap
                last = f"unreadable response body {payload[:120]!r}"
                continue
            return content if isinstance(content, str) else ""
        raise LLMError(f"{url}: no usable answer after {self.retries + 1} attempt(s) ({last})")


def image_part(frame: np.ndarray, *, max_side: int = 448, quality: int = 85) -> dict:
    """An OpenAI ``image_url`` content part holding ``frame`` (H, W, 3 uint8) as a JPEG data URL."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(frame))
    scale = max_side / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()}}


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json_reply(text: Any) -> tuple[dict | None, str]:
    """The first JSON object in a model reply (plain, fenced, or surrounded by prose).

    Returns ``(obj, "")`` or ``(None, reason)``; never raises.

    >>> parse_json_reply('Sure! {"valid": false, "reason": "blurry"} Hope this helps.')
    ({'valid': False, 'reason': 'blurry'}, '')
    >>> parse_json_reply("no json here")[1]
    'reply holds no JSON object'
    """
    if not isinstance(text, str) or not text.strip():
        return None, "empty reply"
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for start in [i for i, ch in enumerate(candidate) if ch == "{"][:64]:
            try:
                obj, _ = decoder.raw_decode(candidate, start)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj, ""
    return None, "reply holds no JSON object"
