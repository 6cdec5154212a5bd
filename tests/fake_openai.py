"""A local OpenAI-compatible chat-completions server for tests (loopback only, bounded).

The test decides every reply with a ``reply(request_json) -> Reply``; the server records requests.

Example:
    with FakeOpenAIServer(lambda req: Reply.text("<answer>A</answer>")) as server:
        client_base_url = server.base_url          # "http://127.0.0.1:PORT/v1"
        ...
        assert server.requests[0]["model"] == "m"
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    """What the server does for one request."""

    status: int = 200
    body: Any = None  # dict -> JSON; str -> sent raw (garbage)
    delay_s: float = 0.0  # sleep before answering (a hang when longer than the client's timeout)
    close: bool = False  # drop the connection without answering
    headers: dict = field(default_factory=dict)  # extra response headers (e.g. a redirect's Location)

    @classmethod
    def text(cls, content: str, model: str = "fake") -> "Reply":
        return cls(body=chat_completion(content, model=model))

    @classmethod
    def tool_calls(cls, calls: list[tuple[str, dict]], content: str | None = None) -> "Reply":
        body = chat_completion(content, model="fake")
        body["choices"][0]["message"]["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls)
        ]
        body["choices"][0]["finish_reason"] = "tool_calls"
        return cls(body=body)


def chat_completion(content: str | None, model: str = "fake") -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@dataclass
class FakeOpenAIServer:
    reply: Callable[[dict], Reply]
    requests: list[dict] = field(default_factory=list)

    def __enter__(self) -> "FakeOpenAIServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                try:
                    request = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    request = {}
                request["_path"] = self.path
                request["_headers"] = dict(self.headers)
                server.requests.append(request)
                reply = server.reply(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.close:
                    self.close_connection = True
                    return
                payload = reply.body if isinstance(reply.body, (str, bytes)) else json.dumps(reply.body)
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
