"""The one HTTP client for OpenAI-compatible chat completions (vLLM, SGLang, hosted APIs); stdlib only.

:class:`ChatEndpoint` POSTs a payload to ``{base_url}/chat/completions`` and retries what may heal
(refused or dropped connections, timeouts, HTTP 408/409/425/429 and 5xx, and, unless told not
to, bodies that are not a JSON object) with exponential backoff; any other 4xx fails at once.
Every failure is one :class:`OpenAIAPIError` carrying ``status`` and ``retryable``. The API key
goes only into the ``Authorization`` header: it is kept out of ``repr`` and of every error text.
:func:`redact_secrets` is the one place that decides which option names hold secrets; everything
that persists or prints options (run.json, exports, reward specs, errors) passes them through it.
:func:`jpeg_bytes` / :func:`image_data_url` / :func:`image_part` encode frames as JPEG.

Used by the LLM judge (``rewards/judge.py``), the data pipeline (``vseek_env/pipeline/llm.py``) and
the ``openai`` policy (``policies/openai_chat.py``), which translate the error into their own.

Example:
    >>> endpoint = ChatEndpoint("http://127.0.0.1:9/v1", timeout_s=0.5, retries=0)
    >>> try:                                                   # nothing listens on port 9
    ...     endpoint.complete({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    ... except OpenAIAPIError as exc:
    ...     exc.status, exc.retryable, "cannot reach" in str(exc)
    (None, True, True)
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ChatEndpoint", "OpenAIAPIError", "REDACTED", "RETRY_STATUS", "image_data_url", "image_part", "is_endpoint_key", "is_secret_key",
           "jpeg_bytes", "message_text", "redact_secrets", "endpoints_in", "without_endpoints",
           "without_endpoints_and_secrets"]

T = TypeVar("T")

#: HTTP statuses worth another try besides 5xx: timeout, conflict, too early, rate limit.
RETRY_STATUS = frozenset({408, 409, 425, 429})

#: Option names whose values are secrets: whole name parts (``api_key``, ``hf_token``, ``client_secret``,
#: ``Authorization``), not substrings, so ``max_tokens`` or ``keyframes`` stay visible and a changed
#: setting is noticed.
SECRET_KEY_PATTERN = re.compile(
    r"(^|[_-])(api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|[a-z]*secret|password|passwd|"
    r"credentials?|authorization|bearer|cookie)$|[_-]key$", re.I)
#: Option names that say where requests go. Options read from data (a training row, a rollouts
#: file) may not set them: endpoints come only from the user's own configuration.
ENDPOINT_KEY_PATTERN = re.compile(r"(^|[_-])(base[_-]?url|api[_-]?base|url|uri|endpoint|proxy)$", re.I)
log = logging.getLogger(__name__)

#: What a redacted value is replaced with (where it is not dropped).
REDACTED = "<redacted>"
# A value that carries its own credential, whatever its option is called.
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic)\s+\S", re.I)


def is_secret_key(name: Any) -> bool:
    """Whether an option named ``name`` holds a secret.

    >>> [is_secret_key(k) for k in ("api_key", "OPENAI_API_KEY", "hf_token", "Authorization", "max_tokens", "keyframes")]
    [True, True, True, True, False, False]
    """
    return isinstance(name, str) and SECRET_KEY_PATTERN.search(name) is not None


def is_endpoint_key(name: Any) -> bool:
    """Whether an option named ``name`` says where requests go.

    >>> [is_endpoint_key(k) for k in ("base_url", "judge_url", "api_base", "model", "max_turns")]
    [True, True, True, False, False]
    """
    return isinstance(name, str) and ENDPOINT_KEY_PATTERN.search(name) is not None


def redact_secrets(value: Any, *, drop: bool = False) -> Any:
    """``value`` with every secret-named entry of every nested dict replaced by ``"<redacted>"``.

    Dicts and lists/tuples are walked recursively (tuples come back as lists); a string value that
    carries a credential itself (``"Bearer sk-..."``) is redacted whatever its name; other values are
    returned as they are. ``drop=True`` removes the entries instead, for files that are replayed
    later (exports): the replaying process then takes the key from its environment, e.g.
    ``VSEEK_JUDGE_API_KEY`` for the LLM judge.

    >>> redact_secrets({"reward": {"accuracy": {"judge": {"api_key": "sk-1", "model": "m"}}}, "max_tokens": 8})
    {'reward': {'accuracy': {'judge': {'api_key': '<redacted>', 'model': 'm'}}}, 'max_tokens': 8}
    >>> redact_secrets([{"token": "t", "n": 1}], drop=True)
    [{'n': 1}]
    """
    return _without(value, is_secret_key, drop=drop, removed=[], path="")


def without_endpoints(value: Any) -> Any:
    """``value`` with every endpoint-named entry of every nested dict dropped (no warning).

    For comparing settings where the server's address does not matter (an eval's run identity).

    >>> without_endpoints({"policy_args": {"base_url": "http://a/v1", "model": "m"}})
    {'policy_args': {'model': 'm'}}
    """
    return _without(value, is_endpoint_key, drop=True, removed=[], path="")


def endpoints_in(value: Any) -> dict[str, Any]:
    """Every endpoint-named entry of ``value`` as ``{dotted path: value}`` (what :func:`without_endpoints` drops).

    >>> endpoints_in({"policy_args": {"base_url": "http://a/v1"}, "n": [{"url": "u"}]})
    {'policy_args.base_url': 'http://a/v1', 'n[0].url': 'u'}
    """
    removed: list[tuple[str, Any]] = []
    _without(value, is_endpoint_key, drop=True, removed=removed, path="")
    return dict(removed)


def without_endpoints_and_secrets(value: Any, where: str) -> Any:
    """Options read from data (a training row, a rollouts file) with endpoints and secrets taken out.

    A row must not decide where a request goes, or the user's key (``VSEEK_JUDGE_API_KEY``) would
    be sent there; nor carry a key. Each removed entry is named in one warning, so a row exported
    with a judge endpoint says what to configure instead.

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     without_endpoints_and_secrets({"reward": {"accuracy": {"judge": {"base_url": "http://x", "model": "m"}}}}, "row 3")
    {'reward': {'accuracy': {'judge': {'model': 'm'}}}}
    """
    removed: list[tuple[str, Any]] = []
    out = _without(value, lambda k: is_secret_key(k) or is_endpoint_key(k), drop=True, removed=removed, path="")
    if removed:
        message = (f"{where}: ignored {', '.join(path for path, _ in removed)}: endpoints and keys come only from your own "
                   "configuration (e.g. VSEEK_JUDGE_BASE_URL / VSEEK_JUDGE_API_KEY for the LLM judge), never from data")
        warnings.warn(message, UserWarning, stacklevel=2)  # shown once per message, not once per row
    return out


def _without(value: Any, hidden: Callable[[Any], bool], *, drop: bool, removed: list[tuple[str, Any]], path: str) -> Any:
    """``value`` without (or with masked) hidden entries; each is added to ``removed`` as ``(path, value)``."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if hidden(k) or (isinstance(v, str) and _SECRET_VALUE.match(v)):
                removed.append((where, v))
                if not drop:
                    out[k] = REDACTED
            else:
                out[k] = _without(v, hidden, drop=drop, removed=removed, path=where)
        return out
    if isinstance(value, (list, tuple)):
        return [_without(v, hidden, drop=drop, removed=removed, path=f"{path}[{i}]") for i, v in enumerate(value)]
    return value


class OpenAIAPIError(RuntimeError):
    """A chat-completions call that gave no usable reply.

    Attributes:
        status: the HTTP status, ``None`` when no answer arrived (refused, reset, timed out);
            200 when the answer came but was unusable (not JSON, or rejected by ``parse``).
        retryable: whether the failure could heal on its own (so a caller may try again later).
        attempts: the HTTP requests made.
        body: the start of the server's answer, for diagnostics.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False, attempts: int = 1,
                 body: str = "") -> None:
        super().__init__(message)
        self.status, self.retryable, self.attempts, self.body = status, retryable, attempts, body

    @classmethod
    def wrap(cls, error: "OpenAIAPIError", hint: str = "") -> "OpenAIAPIError":
        """``error`` as a ``cls`` (a caller's own subclass), its message followed by ``hint``."""
        return cls(str(error) + hint, status=error.status, retryable=error.retryable, attempts=error.attempts,
                   body=error.body)


@dataclass(frozen=True)
class ChatEndpoint:
    """Where and how to POST chat completions.

    Args:
        base_url: the API root, e.g. ``http://localhost:8000/v1`` (``/chat/completions`` is appended).
        api_key: sent as ``Authorization: Bearer``; empty sends no header.
        timeout_s: the total deadline of one request (connect, send, headers and body): a server that
            drips its answer is cut off at ``timeout_s``, so a hung or slow server costs at most
            ``(retries + 1) * timeout_s`` plus backoff. Redirects are never followed (they would
            carry the ``Authorization`` header to another host): a 3xx is an error naming its target.
        retries: further attempts after a retryable failure.
        backoff_s: the sleep before retry k (from 1) is ``backoff_s * 2**(k-1)``.
        jitter: scale each sleep by a random factor in [0.5, 1.5) so parallel clients spread out.
        retry_unparseable: retry a body that is not a JSON object; ``False`` fails at once with
            ``status=200, retryable=False`` (for callers that treat garbage as the model's answer).
    """

    base_url: str
    api_key: str = field(default="", repr=False)
    timeout_s: float = 60.0
    retries: int = 2
    backoff_s: float = 0.5
    jitter: bool = False
    retry_unparseable: bool = True

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def complete(self, payload: Mapping[str, Any], parse: Callable[[dict], T] | None = None,
                 on_attempt: Callable[[int], None] | None = None) -> T | dict:
        """The decoded reply to ``payload`` (or ``parse(reply)``); raises :class:`OpenAIAPIError`.

        ``parse`` may raise a retryable :class:`OpenAIAPIError` to spend another attempt on a reply
        it cannot use (e.g. a judge reply without a score). ``on_attempt(k)`` runs before attempt k
        (from 0), for callers that count requests and retries.
        """
        data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        attempts = 0
        while True:
            if attempts:
                delay = self.backoff_s * 2 ** (attempts - 1)
                time.sleep(delay * (0.5 + random.random()) if self.jitter else delay)
            if on_attempt is not None:
                on_attempt(attempts)
            attempts += 1
            try:
                reply = self._post(data, headers)
                return parse(reply) if parse is not None else reply
            except OpenAIAPIError as exc:
                error = exc
            error.attempts = attempts
            if not error.retryable:
                raise self._scrub(error)
            if attempts > self.retries:
                error.args = (f"{error} (gave up after {attempts} attempt{'s' if attempts != 1 else ''})",)
                raise self._scrub(error)
            _log_retry(self.url, str(self._scrub(error)), attempts, self.retries)

    def _post(self, data: bytes, headers: dict[str, str]) -> dict:
        url = self.url
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        deadline = _Deadline(self.timeout_s)
        opener = urllib.request.build_opener(_RefuseRedirects(), _DeadlineHTTPHandler(deadline),
                                             _DeadlineHTTPSHandler(deadline))
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if 300 <= exc.code < 400:  # never followed: it would re-send the key to wherever it points
                location = exc.headers.get("Location", "") if exc.headers is not None else ""
                raise OpenAIAPIError(
                    f"HTTP {exc.code} from {url} redirects to {location or '<no Location>'}; redirects are not "
                    "followed (the API key would go with them): set base_url to the server's real address",
                    status=exc.code) from None
            try:
                detail = exc.read()[:300].decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                detail = ""
            retryable = exc.code in RETRY_STATUS or exc.code >= 500
            raise OpenAIAPIError(f"HTTP {exc.code} from {url}: {detail}", status=exc.code, retryable=retryable,
                                 body=detail) from None
        except ValueError as exc:  # a malformed URL will not heal
            raise OpenAIAPIError(f"cannot reach {url}: {exc}") from None
        # refused, reset, timed out, or dropped mid-answer
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise OpenAIAPIError(f"cannot reach {url}: timed out (no complete answer within {self.timeout_s} s)",
                                     retryable=True) from None
            reason = getattr(exc, "reason", exc)
            raise OpenAIAPIError(f"cannot reach {url}: {str(reason) or type(reason).__name__}", retryable=True) from None
        finally:
            deadline.cancel()
        try:
            reply = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            reply = None
        if not isinstance(reply, dict):
            excerpt = raw[:200].decode("utf-8", "replace")
            raise OpenAIAPIError(f"not a chat completion from {url}: {excerpt!r}", status=200,
                                 retryable=self.retry_unparseable, body=excerpt)
        return reply

    def _scrub(self, error: OpenAIAPIError) -> OpenAIAPIError:
        """The error without the key, even if a server echoed it back."""
        if self.api_key and self.api_key in str(error):
            error.args = (str(error).replace(self.api_key, "<redacted>"),)
        if self.api_key and self.api_key in error.body:
            error.body = error.body.replace(self.api_key, "<redacted>")
        return error


_RETRY_LOG_EVERY_S = 10.0
_last_retry_log: dict[str, float] = {}
_retry_log_lock = threading.Lock()


def _log_retry(url: str, error: str, attempt: int, retries: int) -> None:
    """Say that an endpoint is failing while the retries run (at most every 10 s per URL), so a
    dead server shows at once instead of after every episode's backoff."""
    now = time.monotonic()
    with _retry_log_lock:
        if now - _last_retry_log.get(url, -_RETRY_LOG_EVERY_S) < _RETRY_LOG_EVERY_S:
            return
        _last_retry_log[url] = now
    log.warning("%s (attempt %d of %d; retrying)", error, attempt, retries + 1)


class _Deadline:
    """A total deadline for one request: when it passes, the request's socket is shut down.

    ``urllib``'s timeout bounds each socket operation, not the request: a server sending one byte
    every few seconds would hold it forever. Shutting the socket down from a timer wakes the
    blocked read at once (it then fails like a dropped connection, and :attr:`expired` says why).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.expired = False
        self._sockets: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


def _deadline_connection(base: type, deadline: _Deadline) -> Callable[..., http.client.HTTPConnection]:
    """A connection class of ``base`` whose socket is handed to ``deadline`` once connected."""

    class Connection(base):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    return Connection


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._connection = _deadline_connection(http.client.HTTPConnection, deadline)

    def http_open(self, req):
        return self.do_open(self._connection, req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._connection = _deadline_connection(http.client.HTTPSConnection, deadline)

    def https_open(self, req):
        return self.do_open(self._connection, req, context=self._context)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turns every 3xx into an ``HTTPError`` (``urllib`` would re-send the POST's headers to the target)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def message_text(reply: dict) -> str:
    """The assistant text of a chat completion (``""`` for a tool-call-only reply).

    Raises a retryable :class:`OpenAIAPIError` (status 200) when ``reply`` has no message, so it
    can be passed as :meth:`ChatEndpoint.complete`'s ``parse``.

    >>> message_text({"choices": [{"message": {"role": "assistant", "content": "hi"}}]})
    'hi'
    """
    try:
        content = reply["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise OpenAIAPIError(f"not a chat completion: {str(reply)[:120]!r}", status=200, retryable=True,
                             body=str(reply)[:200]) from None
    return content if isinstance(content, str) else ""


def jpeg_bytes(image: "np.ndarray", quality: int = 85, max_side: int | None = None) -> bytes:
    """An RGB image array (H, W, 3) as JPEG bytes.

    ``max_side`` shrinks the image (aspect kept) so its longer side is at most that many pixels.

    >>> import numpy as np
    >>> jpeg_bytes(np.zeros((4, 4, 3), np.uint8))[:2]
    b'\\xff\\xd8'
    """
    import numpy as np
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB")
    if max_side:
        im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_data_url(image: "np.ndarray", quality: int = 85, max_side: int | None = None) -> str:
    """An RGB image array (H, W, 3) as a ``data:image/jpeg;base64,...`` URL (see :func:`jpeg_bytes`).

    >>> import numpy as np
    >>> image_data_url(np.zeros((4, 4, 3), np.uint8)).startswith("data:image/jpeg;base64,")
    True
    """
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(image, quality, max_side)).decode("ascii")


def image_part(image: "np.ndarray", quality: int = 85, max_side: int | None = None) -> dict:
    """An OpenAI ``image_url`` content part holding ``image`` (see :func:`image_data_url`)."""
    return {"type": "image_url", "image_url": {"url": image_data_url(image, quality, max_side)}}


def video_frames_part(frames: "list[np.ndarray]", quality: int = 85, max_side: int | None = None) -> dict:
    """An OpenAI-style ``video_url`` part holding pre-sampled frames: a ``data:video/jpeg;base64,``
    URL of the frames' JPEGs joined by commas, the form vLLM's video loader reads for frame lists.

    >>> import numpy as np
    >>> part = video_frames_part([np.zeros((4, 4, 3), np.uint8)] * 2)
    >>> part["type"], part["video_url"]["url"].startswith("data:video/jpeg;base64,"), part["video_url"]["url"].count(",")
    ('video_url', True, 2)
    """
    encoded = ",".join(base64.b64encode(jpeg_bytes(f, quality, max_side)).decode("ascii") for f in frames)
    return {"type": "video_url", "video_url": {"url": "data:video/jpeg;base64," + encoded}}
