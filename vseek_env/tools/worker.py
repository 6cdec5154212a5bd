"""Run tool calls under a wall-clock limit on one long-lived daemon thread.

A decoder stuck in C code cannot be interrupted, only abandoned: on a timeout the caller drops the
worker and makes a new one, and the daemon thread cannot keep the process alive at exit. One
persistent thread (rather than a thread per call) keeps the cost per call at a queue hand-off and
lets the thread's allocator reuse the memory of earlier frame batches.

Example:
    >>> worker = ToolWorker()
    >>> worker.call(sum, [1, 2, 3], timeout_s=5)
    6
    >>> worker.close()
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable


class ToolTimeout(Exception):
    """A tool call ran past ``EnvConfig.tool_timeout_s``."""


class ToolWorker:
    """A daemon thread that runs one call at a time."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="vseek-tool", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # re-raised in the caller's thread
                future.set_exception(exc)

    @property
    def alive(self) -> bool:
        """False in a forked child (the thread was not copied) or after the thread ended."""
        return self._pid == os.getpid() and self._thread.is_alive()

    def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float | None) -> Any:
        """``fn(*args)`` on the worker; :class:`ToolTimeout` after ``timeout_s`` (``None``: no limit)."""
        if timeout_s is None:
            return fn(*args)
        future: Future = Future()
        self._jobs.put((fn, args, future))
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            raise ToolTimeout from None

    def close(self) -> None:
        self._jobs.put(None)
