"""A policy backed by any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, hosted APIs).

HTTP goes through :class:`vseek_env.openai_api.ChatEndpoint` (stdlib only). Frames go as JPEG
data URLs; the env's tool schemas go as ``tools``; native tool calls in the reply are turned into
our ``<tool_call>`` grammar, so the env parses and scores them like text calls. A reply the env cannot use (garbage body, no choices,
empty message) becomes response text the env scores as an error; only a server that cannot be
reached (after retries) or refuses the request raises :class:`OpenAIPolicyError`.

The API key is read from ``api_key``, else ``$VSEEK_API_KEY``, else ``$OPENAI_API_KEY``; it is sent
only in the ``Authorization`` header and never logged or shown in ``repr``.

Example:
    >>> policy = OpenAIChatPolicy(model="Qwen/Qwen3-VL-8B-Instruct",               # doctest: +SKIP
    ...                           base_url="http://localhost:8000/v1")
    >>> run_episode(env, policy)                                                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

from vseek_env.openai_api import ChatEndpoint, OpenAIAPIError, image_data_url, image_part, video_frames_part
from vseek_env.policies.base import Policy

__all__ = ["OpenAIChatPolicy", "OpenAIPolicyError", "image_data_url", "tool_calls_to_text"]

API_KEY_ENV = ("VSEEK_API_KEY", "OPENAI_API_KEY")
BASE_URL_ENV = ("VSEEK_BASE_URL", "OPENAI_BASE_URL")


class OpenAIPolicyError(OpenAIAPIError):
    """The endpoint could not be reached or refused the request; the message says which and why."""


def tool_calls_to_text(tool_calls: Any) -> str:
    """Native ``tool_calls`` as ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` blocks.

    Arguments that are not a JSON object are passed on as the raw string, so the env reports the
    call as malformed instead of the policy guessing.
    """
    blocks = []
    for call in tool_calls if isinstance(tool_calls, list) else []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            blocks.append(f"<tool_call>{json.dumps(call, default=str)}</tool_call>")
            continue
        raw = fn.get("arguments")
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            args = raw
        if not isinstance(args, dict):
            args = raw if raw is not None else {}
        blocks.append(f"<tool_call>{json.dumps({'name': fn.get('name'), 'arguments': args}, ensure_ascii=False)}</tool_call>")
    return "\n".join(blocks)


class OpenAIChatPolicy(Policy):
    """Chat with an OpenAI-compatible server, one request per env turn.

    Args:
        model: the served model name.
        base_url: e.g. ``http://localhost:8000/v1`` (default ``$VSEEK_BASE_URL``, ``$OPENAI_BASE_URL``,
            else ``https://api.openai.com/v1``).
        api_key: default ``$VSEEK_API_KEY`` / ``$OPENAI_API_KEY``; none is fine for local servers.
        temperature, max_tokens, top_p: sampling; ``extra_body`` is merged into each request.
        native_tools: send the env's tool schemas as ``tools`` (``False``: text grammar only).
        timeout_s: per request; ``max_retries`` with exponential backoff from ``backoff_s``.
        jpeg_quality, max_image_side: how frames are encoded.
        video_as: how a video part of the env (the ``paper`` protocol's overview) is sent:
            ``"video_url"`` (one ``video_url`` part of JPEG frames, vLLM's frame-list form, followed by
            a text line with the frames' true times, which that form cannot carry) or ``"frames"``
            (one image per frame, each after its ``<t seconds>`` label: for APIs without video input).
    """

    name = "openai"

    def __init__(
        self,
        model: str = "gpt-4o",
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        top_p: float | None = None,
        native_tools: bool = True,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        jpeg_quality: int = 85,
        max_image_side: int | None = None,
        extra_body: dict | None = None,
        seed: int | None = None,
        video_as: str = "video_url",
    ) -> None:
        if video_as not in ("video_url", "frames"):
            raise ValueError(f"OpenAIChatPolicy: video_as must be 'video_url' or 'frames', got {video_as!r}")
        self.video_as = video_as
        self.model = model
        self.base_url = (base_url or next((os.environ[k] for k in BASE_URL_ENV if os.environ.get(k)), None)
                         or "https://api.openai.com/v1").rstrip("/")
        self._api_key = api_key or next((os.environ[k] for k in API_KEY_ENV if os.environ.get(k)), None)
        self.temperature, self.max_tokens, self.top_p = temperature, max_tokens, top_p
        self.native_tools = native_tools
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.jpeg_quality, self.max_image_side = jpeg_quality, max_image_side
        self.extra_body = dict(extra_body or {})
        self.seed = seed
        self.tools: list[dict] = []
        self.messages: list[dict] = []
        self._pending: list[tuple[str, str]] = []  # (tool_call_id, name) of the last native calls
        self.usage = {"requests": 0, "retries": 0, "malformed": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChatPolicy(model={self.model!r}, base_url={self.base_url!r})"

    # -- Policy API --------------------------------------------------------------------------------
    def bind_env(self, env) -> None:
        """Take the env's tool schemas (called by :func:`vseek_env.runner.run_episode`)."""
        schemas = getattr(env, "tool_schemas", None)
        self.tools = schemas() if callable(schemas) and self.native_tools else []

    def reset(self, seed: int | None = None) -> None:
        self.messages = []
        self._pending = []
        self._episode_seed = seed

    def act(self, observation: dict, info: dict[str, Any]) -> str:
        self.messages += self._convert(info["messages"])
        reply = self._complete()
        text, message = self._read_reply(reply)
        self.messages.append(message)
        return text

    # -- conversion --------------------------------------------------------------------------------
    def _parts(self, content: list[dict]) -> list[dict]:
        parts = []
        for p in content:
            if p["type"] == "text":
                parts.append({"type": "text", "text": p["text"]})
            elif p["type"] == "image":
                parts.append(image_part(p["image"], self.jpeg_quality, self.max_image_side))
            elif p["type"] == "video":
                parts += self._video_parts(p)
        return parts

    def _video_parts(self, part: dict) -> list[dict]:
        from vseek_env.protocol import format_number, format_timestamp_label

        if self.video_as == "frames":
            out: list[dict] = []
            for image, t in zip(part["video"], part["timestamps"]):
                out += [{"type": "text", "text": format_timestamp_label(t)},
                        image_part(image, self.jpeg_quality, self.max_image_side)]
            return out
        times = ", ".join(format_number(t) for t in part["timestamps"])
        return [video_frames_part(part["video"], self.jpeg_quality, self.max_image_side),
                {"type": "text", "text": f"\n(The video's frames are at {times} seconds.)"}]

    def _convert(self, env_messages: list[dict]) -> list[dict]:
        """Env messages -> API messages.

        Tool messages are text-only in the API, so a native call's result text answers its
        ``tool_call_id`` and its frames (with their time labels) follow in one user message,
        together with the env's feedback.
        """
        out: list[dict] = []
        carried: list[dict] = []
        for m in env_messages:
            role, parts = m["role"], self._parts(m["content"])
            if role == "system":
                out.append({"role": "system", "content": "".join(p.get("text", "") for p in parts)})
            elif role == "tool":
                name = m.get("name")
                match = next((i for i, (_, n) in enumerate(self._pending) if n == name), None)
                if match is None:  # the call came as text: its result is plain user content
                    carried += [{"type": "text", "text": f"Result of {name}: "}] + parts
                    continue
                call_id, _ = self._pending.pop(match)
                has_text = bool(parts) and parts[0]["type"] == "text"
                out.append({"role": "tool", "tool_call_id": call_id, "content": parts[0]["text"] if has_text else ""})
                frames = parts[1:] if has_text else parts
                if frames:
                    carried += [{"type": "text", "text": f"Frames returned by {name}:"}] + frames
            else:
                carried += parts
        for call_id, name in self._pending:  # every native call needs an answer, even one that did not run
            out.append({"role": "tool", "tool_call_id": call_id, "content": f"{name} was not run; see the message below."})
        self._pending = []
        if carried:
            out.append({"role": "user", "content": carried})
        return out

    def _read_reply(self, reply: Any) -> tuple[str, dict]:
        """(response text for the env, assistant message for the history)."""
        try:
            message = reply["choices"][0]["message"]
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
        except (KeyError, IndexError, TypeError) as exc:
            self.usage["malformed"] += 1
            text = f"[malformed server reply: {type(exc).__name__}: {str(exc)[:80]}; body {str(reply)[:200]!r}]"
            return text, {"role": "assistant", "content": text}
        usage = reply.get("usage") if isinstance(reply, dict) else None
        if isinstance(usage, dict):
            for k in ("prompt_tokens", "completion_tokens"):
                if isinstance(usage.get(k), int):
                    self.usage[k] += usage[k]
        content = message.get("content")
        if isinstance(content, list):  # some servers return content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        content = content if isinstance(content, str) else ""
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            calls = []
        text = "\n".join(t for t in (content, tool_calls_to_text(calls)) if t)
        history: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            history["tool_calls"] = calls
            self._pending = [(str(c.get("id") or f"call_{i}"), str((c.get("function") or {}).get("name")))
                             for i, c in enumerate(calls) if isinstance(c, dict)]
        else:
            history["content"] = content
        if not text:
            self.usage["malformed"] += 1
        return text, history

    # -- transport ---------------------------------------------------------------------------------
    def _body(self) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": self.messages, "temperature": self.temperature,
                                "max_tokens": self.max_tokens}
        if self.top_p is not None:
            body["top_p"] = self.top_p
        seed = self.seed if self.seed is not None else getattr(self, "_episode_seed", None)
        if seed is not None:
            body["seed"] = int(seed)
        if self.tools:
            body["tools"] = self.tools
        body.update(self.extra_body)
        return body

    @property
    def _endpoint(self) -> ChatEndpoint:
        return ChatEndpoint(self.base_url, self._api_key or "", timeout_s=self.timeout_s, retries=self.max_retries,
                            backoff_s=self.backoff_s, jitter=True, retry_unparseable=False)

    def _complete(self) -> Any:
        """POST the conversation; transient failures are retried with exponential backoff and jitter."""

        def count(attempt: int) -> None:
            self.usage["requests"] += 1
            self.usage["retries"] += int(attempt > 0)

        try:
            return self._endpoint.complete(self._body(), on_attempt=count)
        except OpenAIAPIError as exc:
            if exc.status == 200:  # a garbage body is the model server's answer: the env scores it
                return {"_unparsable": exc.body}
            if exc.status in (401, 403):
                raise OpenAIPolicyError.wrap(exc, " (check the API key: $VSEEK_API_KEY or $OPENAI_API_KEY)") from None
            hint = "; is the server up and the base_url right?" if exc.retryable else ""
            raise OpenAIPolicyError.wrap(exc, hint) from None
