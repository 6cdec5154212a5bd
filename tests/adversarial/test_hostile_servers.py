"""Hostile and careless servers: redirects that would carry keys away, answers dripped byte by byte.

Every server here binds 127.0.0.1, serves a bounded number of requests and bytes, and stops by itself.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from fake_openai import FakeOpenAIServer, Reply

from vseek_env.openai_api import ChatEndpoint, OpenAIAPIError, message_text

PAYLOAD = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
KEY = "sk-policy-key-never-forward"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_naming_its_target_and_the_key_stays_home(status):
    with FakeOpenAIServer(lambda req: Reply.text("the attacker's answer")) as elsewhere:
        target = elsewhere.base_url + "/chat/completions"
        with FakeOpenAIServer(lambda req: Reply(status=status, body={}, headers={"Location": target})) as server:
            endpoint = ChatEndpoint(server.base_url, KEY, timeout_s=5, retries=2, backoff_s=0)
            with pytest.raises(OpenAIAPIError, match="redirect") as err:
                endpoint.complete(PAYLOAD, parse=message_text)
    assert elsewhere.requests == []  # neither the key nor the payload went to the redirect's host
    assert target in str(err.value) and err.value.status == status and not err.value.retryable
    assert len(server.requests) == 1  # a redirect will not heal: no retries


class DripServer:
    """Answers any request with a valid HTTP head, then one body byte every ``interval_s``.

    It sends at most ``max_bytes`` and stops by itself; ``sent`` counts the bytes the client took
    before it hung up.
    """

    def __init__(self, interval_s: float = 0.2, max_bytes: int = 60, head_drip: bool = False) -> None:
        self.interval_s, self.max_bytes, self.head_drip = interval_s, max_bytes, head_drip
        self.sent = 0
        self.finished = threading.Event()

    def __enter__(self) -> "DripServer":
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1)
        self._sock.settimeout(10)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            self.finished.set()
            return
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(65536)
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {self.max_bytes}\r\n\r\n"
                if not self.head_drip:
                    conn.sendall(head.encode())
                    data = b" " * self.max_bytes
                else:
                    data = (head.encode() + b" " * self.max_bytes)[: self.max_bytes]
                for i in range(len(data)):
                    conn.sendall(data[i:i + 1])
                    self.sent += 1
                    time.sleep(self.interval_s)
            except OSError:
                pass  # the client hung up: what we want
        self.finished.set()

    def __exit__(self, *exc) -> None:
        self.finished.wait(30)
        self._sock.close()


@pytest.mark.parametrize("head_drip", [False, True], ids=["body", "headers"])
def test_timeout_is_a_total_deadline_not_a_per_read_one(head_drip):
    # 60 bytes at 0.2 s take 12 s; each byte arrives well within timeout_s, so only a total deadline cuts it.
    with DripServer(interval_s=0.2, max_bytes=60, head_drip=head_drip) as server:
        endpoint = ChatEndpoint(server.base_url, timeout_s=1.0, retries=0)
        with pytest.raises(OpenAIAPIError, match="within 1.0 s") as err:
            endpoint.complete(PAYLOAD)
        assert err.value.retryable and err.value.status is None
        server.finished.wait(30)
    # The client hung up long before the server ran out of bytes (it stops once the socket is shut).
    assert server.sent < server.max_bytes // 2


def test_a_failing_endpoint_is_reported_while_it_is_retried_not_only_at_the_end(caplog):
    import logging
    import socket as socket_mod

    with socket_mod.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = ChatEndpoint(f"http://127.0.0.1:{port}/v1", KEY, timeout_s=1, retries=2, backoff_s=0)
    with caplog.at_level(logging.WARNING, logger="vseek_env.openai_api"):
        with pytest.raises(OpenAIAPIError, match="gave up after 3 attempts"):
            endpoint.complete(PAYLOAD)
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries and f"127.0.0.1:{port}" in retries[0] and "attempt 1 of 3" in retries[0]
    assert all(KEY not in r.getMessage() for r in caplog.records)
