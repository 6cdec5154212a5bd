"""Run a call that must not hang, without letting a hang freeze the test suite."""

from __future__ import annotations

import threading


def finishes(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on a daemon thread: its result, or a test failure if it never returns."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001  (re-raised below)
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)  # a guard against hanging the suite, not a timing assertion
    assert not thread.is_alive(), f"{getattr(fn, '__name__', fn)}{args} is blocked"
    if "error" in box:
        raise box["error"]
    return box["result"]
