"""A small OpenAI-compatible chat client for the model-backed pipeline stages (G1, G2, G4).

It speaks ``POST {base_url}/chat/completions`` through :class:`vseek_env.openai_api.ChatEndpoint`
(retrying transport failures, 408/409/425/429/5xx answers and garbled bodies), sends frames as
``data:`` JPEG URLs, and turns every reply into text. Parsing the text is the caller's job: a
model's malformed output is an observation, never a crash (:func:`parse_json_reply` returns
``(None, why)``).

Example:
    >>> client = ChatClient("http://127.0.0.1:8000/v1", "Qwen2.5-VL-7B")        # doctest: +SKIP
    >>> text = client.complete([{"role": "user", "content": "Reply with {}"}])   # doctest: +SKIP
    >>> parse_json_reply('```json\\n{"keep": true}\\n```')
    ({'keep': True}, '')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vseek_env import openai_api
from vseek_env.openai_api import ChatEndpoint, OpenAIAPIError, message_text

__all__ = ["ChatClient", "LLMError", "image_part", "parse_json_reply"]


class LLMError(OpenAIAPIError):
    """The endpoint could not be reached, refused the request or kept failing; the message names the URL.

    Raising it stops a pipeline run (a model server that is down would otherwise drop every item).
    """


@dataclass
class ChatClient:
    """Chat completions against an OpenAI-compatible server.

    Args:
        base_url: e.g. ``http://host:8000/v1`` (``/chat/completions`` is appended).
        model: the served model name.
        api_key: sent as ``Authorization: Bearer``; local servers usually ignore it.
        timeout_s: per request.
        retries: extra attempts after a transport error, a 408/409/425/429 or 5xx answer, or a garbled body.
        backoff_s: the sleep before retry k is ``backoff_s * 2**(k-1)``.
        temperature, max_tokens: sampling settings sent with every request.
    """

    base_url: str
    model: str
    api_key: str = field(default="EMPTY", repr=False)
    timeout_s: float = 120.0
    retries: int = 2
    temperature: float = 0.0
    max_tokens: int = 1024
    backoff_s: float = 0.5

    def complete(self, messages: list[dict]) -> str:
        """The assistant message's text for ``messages``; raises :class:`LLMError` when the endpoint fails."""
        payload = {"model": self.model, "messages": messages, "temperature": self.temperature, "max_tokens": self.max_tokens}
        endpoint = ChatEndpoint(self.base_url, self.api_key, timeout_s=self.timeout_s, retries=self.retries,
                                backoff_s=self.backoff_s)
        try:
            return endpoint.complete(payload, parse=message_text)
        except OpenAIAPIError as exc:
            raise LLMError.wrap(exc) from None


def image_part(frame: np.ndarray, *, max_side: int = 448, quality: int = 85) -> dict:
    """An OpenAI ``image_url`` content part holding ``frame`` (H, W, 3 uint8), at most ``max_side`` pixels a side."""
    return openai_api.image_part(frame, quality, max_side)


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
