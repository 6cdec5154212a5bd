"""The shared chat-completions client against a local fake server: answers, retries, refusals, hangs, garbage."""

from __future__ import annotations

import base64
import io
import socket

import numpy as np
import pytest
from fake_openai import FakeOpenAIServer, Reply, chat_completion
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from vseek_env.openai_api import (
    REDACTED,
    ChatEndpoint,
    OpenAIAPIError,
    image_data_url,
    image_part,
    is_secret_key,
    jpeg_bytes,
    message_text,
    redact_secrets,
)

SECRET = "sk-shared-client-secret"
PAYLOAD = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def endpoint(base_url: str, **kw) -> ChatEndpoint:
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("retries", 2)
    return ChatEndpoint(base_url, kw.pop("api_key", SECRET), backoff_s=0.0, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scripted(*replies: Reply):
    """A reply function that plays ``replies`` in order, then repeats the last one."""
    queue = list(replies)
    return lambda req: queue.pop(0) if len(queue) > 1 else queue[0]


def test_success_posts_the_payload_with_the_key():
    with FakeOpenAIServer(lambda req: Reply.text("hello")) as server:
        reply = endpoint(server.base_url).complete(PAYLOAD)
    assert message_text(reply) == "hello" and len(server.requests) == 1
    req = server.requests[0]
    assert req["_path"] == "/v1/chat/completions" and req["messages"] == PAYLOAD["messages"] and req["max_tokens"] == 4
    assert req["_headers"]["Authorization"] == f"Bearer {SECRET}"


def test_no_key_sends_no_authorization_header_and_repr_hides_a_key():
    with FakeOpenAIServer(lambda req: Reply.text("x")) as server:
        endpoint(server.base_url, api_key="").complete(PAYLOAD)
    assert "Authorization" not in server.requests[0]["_headers"]
    assert SECRET not in repr(endpoint("http://h/v1"))


@pytest.mark.parametrize("status", [503, 500, 429, 408])
def test_retryable_status_then_success(status):
    attempts: list[int] = []
    with FakeOpenAIServer(scripted(Reply(status=status, body={"error": "busy"}), Reply.text("ok"))) as server:
        text = endpoint(server.base_url).complete(PAYLOAD, parse=message_text, on_attempt=attempts.append)
    assert text == "ok" and len(server.requests) == 2 and attempts == [0, 1]


def test_gives_up_after_retries_with_status_and_count():
    with FakeOpenAIServer(lambda req: Reply(status=503, body={"error": "down"})) as server:
        with pytest.raises(OpenAIAPIError, match="gave up after 3 attempts") as err:
            endpoint(server.base_url, retries=2).complete(PAYLOAD)
    assert len(server.requests) == 3
    assert (err.value.status, err.value.retryable, err.value.attempts) == (503, True, 3) and "down" in err.value.body


@pytest.mark.parametrize("status", [401, 403, 400, 404])
def test_client_errors_are_not_retried_and_never_show_the_key(status):
    # a careless server echoes the key back: it must not reach the error either
    with FakeOpenAIServer(lambda req: Reply(status=status, body={"error": f"bad key {SECRET}"})) as server:
        with pytest.raises(OpenAIAPIError) as err:
            endpoint(server.base_url, retries=3).complete(PAYLOAD)
    assert len(server.requests) == 1
    assert (err.value.status, err.value.retryable, err.value.attempts) == (status, False, 1)
    assert str(status) in str(err.value) and SECRET not in str(err.value) and SECRET not in err.value.body
    assert "<redacted>" in str(err.value)


def test_timeout_is_retried_then_reported():
    with FakeOpenAIServer(lambda req: Reply(body=chat_completion("late"), delay_s=1.0)) as server:
        with pytest.raises(OpenAIAPIError, match="cannot reach .*timed out") as err:
            endpoint(server.base_url, timeout_s=0.2, retries=1).complete(PAYLOAD)
    assert (err.value.status, err.value.retryable, err.value.attempts) == (None, True, 2)
    assert len(server.requests) == 2


def test_dropped_connection_is_retried():
    with FakeOpenAIServer(scripted(Reply(close=True), Reply.text("back"))) as server:
        assert message_text(endpoint(server.base_url).complete(PAYLOAD)) == "back"
    assert len(server.requests) == 2


def test_refused_connection():
    base = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(OpenAIAPIError, match="(?i)refused") as err:
        endpoint(base, retries=1).complete(PAYLOAD)
    assert (err.value.status, err.value.retryable, err.value.attempts) == (None, True, 2)


@pytest.mark.parametrize("garbage", ["<html>oops", "[1, 2]", ""])
def test_garbage_body_is_retried_or_returned_as_configured(garbage):
    with FakeOpenAIServer(scripted(Reply(body=garbage), Reply.text("fine"))) as server:
        assert message_text(endpoint(server.base_url).complete(PAYLOAD)) == "fine"
    assert len(server.requests) == 2
    with FakeOpenAIServer(lambda req: Reply(body=garbage)) as server:
        with pytest.raises(OpenAIAPIError, match="not a chat completion") as err:
            endpoint(server.base_url, retry_unparseable=False, retries=3).complete(PAYLOAD)
    assert len(server.requests) == 1
    assert (err.value.status, err.value.retryable) == (200, False) and err.value.body == garbage[:200]


def test_parse_can_spend_another_attempt():
    def need_digit(reply: dict) -> int:
        text = message_text(reply)
        if not text.isdigit():
            raise OpenAIAPIError(f"no number in {text!r}", status=200, retryable=True)
        return int(text)

    with FakeOpenAIServer(scripted(Reply.text("dunno"), Reply.text("7"))) as server:
        assert endpoint(server.base_url).complete(PAYLOAD, parse=need_digit) == 7
    with FakeOpenAIServer(lambda req: Reply.text("dunno")) as server:
        with pytest.raises(OpenAIAPIError, match="no number in 'dunno'.*gave up after 2 attempts"):
            endpoint(server.base_url, retries=1).complete(PAYLOAD, parse=need_digit)


def test_subclass_wrap_keeps_the_fields():
    class MyError(OpenAIAPIError):
        pass

    err = MyError.wrap(OpenAIAPIError("HTTP 503", status=503, retryable=True, attempts=3, body="b"), " (hint)")
    assert isinstance(err, RuntimeError) and str(err) == "HTTP 503 (hint)"
    assert (err.status, err.retryable, err.attempts, err.body) == (503, True, 3, "b")


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
                         ["choices", "message", "content", "x"]), inner, max_size=3), max_leaves=8)


@given(_json)
def test_message_text_is_text_or_a_retryable_error(reply):
    try:
        assert isinstance(message_text(reply), str)
    except OpenAIAPIError as exc:
        assert exc.retryable and exc.status == 200


@pytest.mark.parametrize("shape,max_side,expected", [((40, 100, 3), None, (100, 40)), ((40, 100, 3), 50, (50, 20)),
                                                      ((30, 20, 3), 50, (20, 30))])
def test_image_data_url_is_a_jpeg_of_the_right_size(shape, max_side, expected):
    image = np.full(shape, 200, np.uint8)
    url = image_data_url(image, quality=90, max_side=max_side)
    head, data = url.split(",", 1)
    decoded = Image.open(io.BytesIO(base64.b64decode(data)))
    assert head == "data:image/jpeg;base64" and decoded.format == "JPEG" and decoded.size == expected
    assert abs(int(np.asarray(decoded).mean()) - 200) <= 2
    assert image_part(image, 90, max_side) == {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize("name,secret", [
    ("api_key", True), ("apikey", True), ("OPENAI_API_KEY", True), ("hf_token", True), ("token", True),
    ("access_token", True), ("authToken", True), ("auth_token", True), ("client_secret", True), ("password", True),
    ("max_tokens", False), ("max_new_tokens", False), ("keyframes", False), ("tokenizer", False), ("key", False),
    ("secret_sauce", False), ("num_tokens", False), ("judge_key", True), ("secret_key", True), ("Authorization", True),
    ("proxy-authorization", True), ("cookie", True),
])
def test_secret_names_are_exact_words_not_substrings(name, secret):
    assert is_secret_key(name) is secret


_json = st.recursive(st.none() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["api_key", "model", "hf_token", "max_tokens", "n"]), inner, max_size=4),
                     max_leaves=12)


def _keys(value):
    """Every dict key, not looking inside the value of a secret one (that is replaced whole)."""
    if isinstance(value, dict):
        return [k for k in value] + [k for key, v in value.items() if not is_secret_key(key) for k in _keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


@given(_json)
def test_redaction_reaches_every_nested_secret_and_keeps_everything_else(value):
    masked, dropped = redact_secrets(value), redact_secrets(value, drop=True)
    assert not any(is_secret_key(k) for k in _keys(dropped))
    assert sorted(_keys(masked)) == sorted(_keys(value))  # masking keeps the shape

    def secrets(v):
        if isinstance(v, dict):
            return [x for k, x in v.items() if is_secret_key(k)] + [s for x in v.values() for s in secrets(x)]
        return [s for x in v for s in secrets(x)] if isinstance(v, list) else []

    assert all(s == REDACTED for s in secrets(masked))
    assert redact_secrets(dropped, drop=True) == dropped and redact_secrets(masked) == masked


def test_jpeg_bytes_is_what_the_data_url_carries():
    image = np.random.default_rng(0).integers(0, 255, (50, 80, 3), dtype=np.uint8)
    blob = jpeg_bytes(image, 80, max_side=40)
    assert Image.open(io.BytesIO(blob)).size == (40, 25)
    assert base64.b64decode(image_data_url(image, 80, 40).split(",", 1)[1]) == blob
