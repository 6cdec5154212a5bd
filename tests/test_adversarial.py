"""Adversarial model outputs: none raises, none reads outside the episode, each yields its code.

The corpus is ``tests/adversarial/responses.jsonl`` (format in ``tests/adversarial/README.md``).
Every file the process opens while ``step`` runs is recorded twice over: a ``sys.addaudithook``
hook sees every Python-level ``open`` (``open``, ``io.open``, ``os.open``, ``Path.open``, PIL), and
``av.open`` (the decoder) is wrapped because its C code opens files without an audit event.
``decord.VideoReader`` is wrapped too, as a guard only: decord is no backend of the env (just
``vseek bench``'s reference path, installed with the bench extra), so a tool that started reading
through it would still be caught. Spawning processes or opening sockets during ``step`` is
recorded as a violation too.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import math
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from vseek_env import video as video_mod
from vseek_env.env import IMAGE_PLACEHOLDER, VideoSeekerEnv
from vseek_env.protocol import ErrorCode
from threads import finishes

CORPUS_PATH = Path(__file__).parent / "adversarial" / "responses.jsonl"
CORPUS = [json.loads(line) for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
BY_NAME = {r["name"]: r for r in CORPUS}
ADVERSARIAL_TOOLS = ("view_visual_prompt", "crop_video", "zoom_in")
_FORBIDDEN_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork", "socket.connect", "socket.bind"}
_MODULE_SUFFIXES = tuple(importlib.machinery.all_suffixes())


class OpenRecorder:
    """Records paths opened (and forbidden events) while :meth:`recording` is active."""

    _installed = False
    _active: "OpenRecorder | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.forbidden: list[str] = []

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        recorder = cls._active
        if recorder is None:
            return
        if event == "open" and isinstance(args[0], (str, bytes, Path)):
            path = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            if not path.endswith(_MODULE_SUFFIXES):  # a lazy import is not a data read
                recorder.paths.append(path)
        elif event in _FORBIDDEN_EVENTS:
            recorder.forbidden.append(f"{event}{args!r}"[:200])

    @contextlib.contextmanager
    def recording(self, monkeypatch: pytest.MonkeyPatch):
        with self._lock:
            if not OpenRecorder._installed:
                sys.addaudithook(OpenRecorder._hook)  # cannot be removed; inert while _active is None
                OpenRecorder._installed = True
        _wrap_decoder(monkeypatch, "decord", "VideoReader", self)
        _wrap_decoder(monkeypatch, "av", "open", self)
        OpenRecorder._active = self
        try:
            yield self
        finally:
            OpenRecorder._active = None


def _wrap_decoder(monkeypatch: pytest.MonkeyPatch, module_name: str, attr: str, recorder: OpenRecorder) -> None:
    try:
        module = __import__(module_name)
    except ImportError:
        return
    original = getattr(module, attr)

    def wrapper(path, *args, **kwargs):
        if hasattr(path, "fileno"):  # the env hands av.open a file it opened itself: record which file
            recorder.paths.append(os.readlink(f"/proc/self/fd/{path.fileno()}"))
        else:
            recorder.paths.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(module, attr, wrapper)


@pytest.fixture(scope="module")
def adv_env(small_dataset):
    env = VideoSeekerEnv(dataset=small_dataset, tools=ADVERSARIAL_TOOLS, compat_paths=True, max_turns=3, error_budget=5)
    yield env
    env.close()


def check_observation(env: VideoSeekerEnv, obs: dict, reward, info: dict) -> None:
    """Invariants every step result must satisfy, whatever the action was."""
    assert env.observation_space.contains(obs), {k: getattr(v, "shape", v) for k, v in obs.items() if k != "text"}
    assert isinstance(reward, float) and math.isfinite(reward)
    for error in info["errors"]:
        assert ErrorCode(error["code"]) and error["message"].strip()
        # (the observation shows model-echoed "<image>" as "[image]": it is not an image slot)
        assert error["message"].replace("<image>", "[image]") in obs["text"], "every error must be told to the model"
    for message in info["messages"]:
        assert message["role"] in ("system", "user", "assistant", "tool")
        for part in message["content"]:
            assert part["type"] in ("text", "image")
            if part["type"] == "image":
                image = part["image"]
                assert isinstance(image, np.ndarray) and image.dtype == np.uint8
                assert image.ndim == 3 and image.shape[2] == 3


@pytest.mark.parametrize("record", CORPUS, ids=[r["name"] for r in CORPUS])
def test_corpus_response_yields_its_documented_code_and_reads_nothing_else(adv_env, record, monkeypatch):
    adv_env.reset(seed=0, options={"sample_id": "s0"})
    video = adv_env.dataset.video_path(adv_env.sample).resolve()
    with OpenRecorder().recording(monkeypatch) as rec:
        obs, reward, terminated, truncated, info = adv_env.step(record["response"])
    assert not rec.forbidden
    assert {Path(p).resolve() for p in rec.paths} <= {video}, rec.paths
    check_observation(adv_env, obs, reward, info)
    assert sorted({e["code"] for e in info["errors"]}) == record["expected_codes"]
    assert (terminated, truncated) == (record["outcome"] == "terminated", False)


def test_corpus_is_well_formed():
    codes = {c.value for c in ErrorCode}
    assert len(BY_NAME) == len(CORPUS) > 90
    for record in CORPUS:
        assert set(record) <= {"name", "response", "expected_codes", "outcome", "note"}
        assert set(record["expected_codes"]) <= codes and record["outcome"] in ("terminated", "continue")
    # the categories the corpus must keep covering
    for name in ("unclosed_think", "tool_call_inside_think", "trailing_garbage", "duplicate_argument_key",
                 "control_chars_in_answer", "rtl_override_in_tool_name", "path_traversal_video_path",
                 "proc_environ_frame_path", "file_url_video_path", "numbers_as_strings", "nan_literal",
                 "overflowing_float", "negative_window", "reversed_window", "huge_int_5000_digits",
                 "unicode_escape_tool_name", "empty", "whitespace_only", "many_tool_calls"):
        assert name in BY_NAME


def test_ten_megabyte_response_is_rejected_without_parsing(adv_env, monkeypatch):
    adv_env.reset(seed=0, options={"sample_id": "s0"})
    crop = '<tool_call>{"name": "crop_video", "arguments": {"start_time": 0, "end_time": 6}}</tool_call>'
    huge = "<think>" + "a" * (10 << 20) + "</think>" + crop * 1000
    with OpenRecorder().recording(monkeypatch) as rec:
        obs, reward, terminated, truncated, info = adv_env.step(huge)
    assert not rec.paths
    check_observation(adv_env, obs, reward, info)
    assert [e["code"] for e in info["errors"]] == ["response_too_long"]
    assert str(adv_env.config.max_response_chars) in info["errors"][0]["message"]
    assert info["tool_results"] == [] and obs["num_frames"] == 0
    assert len(obs["text"]) < 1000, "the observation must not echo the huge response"


def test_whole_corpus_in_one_episode_stream_keeps_every_invariant(small_dataset, monkeypatch):
    """Consecutive bad turns: budgets end episodes with truncated=True, never an exception."""
    env = VideoSeekerEnv(dataset=small_dataset, tools=ADVERSARIAL_TOOLS, max_turns=4, error_budget=2)
    env.reset(seed=1)
    video = lambda: env.dataset.video_path(env.sample).resolve()  # noqa: E731
    episodes = 0
    with OpenRecorder().recording(monkeypatch) as rec:
        for record in CORPUS:
            allowed = video()
            rec.paths.clear()
            obs, reward, terminated, truncated, info = env.step(record["response"])
            assert {Path(p).resolve() for p in rec.paths} <= {allowed}
            check_observation(env, obs, reward, info)
            assert not (terminated and truncated)
            assert info["error_count"] <= env.config.error_budget + 1 and info["turn"] <= env.config.max_turns
            if terminated or truncated:
                episodes += 1
                with pytest.raises(RuntimeError, match="reset"):
                    env.step(record["response"])
                rec.paths.clear()
                OpenRecorder._active = None  # reset() opens the next episode's video: allowed
                env.reset()
                OpenRecorder._active = rec
    env.close()
    assert episodes >= len(CORPUS) // 4


@pytest.mark.parametrize("name", ["image_placeholder_in_tool_name", "image_placeholder_in_argument_name",
                                  "image_placeholder_in_bad_json"])
def test_model_text_cannot_inject_image_placeholders(adv_env, name):
    adv_env.reset(seed=0, options={"sample_id": "s0"})
    obs, *_, info = adv_env.step(BY_NAME[name]["response"])
    images = sum(p["type"] == "image" for m in info["messages"] for p in m["content"])
    assert obs["text"].count(IMAGE_PLACEHOLDER) == images == obs["num_frames"]


def test_the_recorder_catches_a_tool_that_reads_another_file(adv_env, monkeypatch, tmp_path):
    """Guards the harness: a file read during step() must show up in the recording."""
    secret = tmp_path / "secret.txt"
    secret.write_text("x")

    def leaky_run(self, arguments, ctx):
        secret.read_text()
        raise RuntimeError("leaky tool")

    adv_env.reset(seed=0, options={"sample_id": "s0"})
    monkeypatch.setattr(type(adv_env.tools["view_visual_prompt"]), "run", leaky_run)
    with OpenRecorder().recording(monkeypatch) as rec:
        *_, info = adv_env.step(BY_NAME["proc_environ_frame_path"]["response"])
    assert str(secret) in rec.paths
    # and a failing tool is an observation, not a crash
    assert [e["code"] for e in info["errors"]] == ["tool_failed"] and "RuntimeError: leaky tool" in info["errors"][0]["message"]


def test_a_hung_tool_gives_tool_failed_not_a_hang(small_dataset, monkeypatch):
    release = threading.Event()

    def hung_run(self, arguments, ctx):
        release.wait(30)  # a decoder stuck in C code, as far as the env can tell
        raise AssertionError("the env should have stopped waiting")

    env = VideoSeekerEnv(dataset=small_dataset, tool_timeout_s=0.2)
    env.reset(seed=0, options={"sample_id": "s0"})
    monkeypatch.setattr(type(env.tools["crop_video"]), "run", hung_run)
    try:
        obs, reward, terminated, truncated, info = env.step(BY_NAME["numbers_as_strings"]["response"])
    finally:
        release.set()
    assert [e["code"] for e in info["errors"]] == ["tool_failed"] and "0.2 seconds" in info["errors"][0]["message"]
    assert not (terminated or truncated) and env.observation_space.contains(obs)
    monkeypatch.undo()
    obs, *_, info = env.step(BY_NAME["numbers_as_strings"]["response"])  # a fresh worker serves the next call
    assert info["errors"] == [] and obs["num_frames"] > 0
    env.close()


def _crop(start: float, end: float) -> str:
    return f'<tool_call>{{"name": "crop_video", "arguments": {{"start_time": {start}, "end_time": {end}}}}}</tool_call>'


def test_a_decode_hung_in_c_code_blocks_no_other_read(small_dataset, monkeypatch):
    """The hang is inside the decoder, after Video.read decided to decode: other reads of the video
    (other frames in this env, another env, a reset) must still finish."""
    monkeypatch.setenv("VSEEK_DECODE_TIMEOUT", "1")  # how long a reader waits for another's frames
    video_mod.clear_process_caches()
    env = VideoSeekerEnv(dataset=small_dataset, tool_timeout_s=0.5)
    env.reset(seed=0, options={"sample_id": "s0"})
    real, entered, release, calls = video_mod.decode_frames, threading.Event(), threading.Event(), []

    def hangs_first(path, meta, indices, size):
        calls.append(list(indices))
        if len(calls) == 1:
            entered.set()
            release.wait(120)  # stuck in C code, as far as anyone can tell
        return real(path, meta, indices, size)

    monkeypatch.setattr(video_mod, "decode_frames", hangs_first)
    try:
        *_, info = env.step(_crop(0, 1.5))
        assert entered.is_set() and [e["code"] for e in info["errors"]] == ["tool_failed"]
        # other frames of the same video, same env: decoded at once by a fresh worker
        obs, *_, info = finishes(env.step, _crop(4, 5.5))
        assert info["errors"] == [] and obs["num_frames"] > 0
        # another env on the same video, after its cached frames are gone: reset reads the overview
        # on the main thread (no tool timeout there), then a crop of yet other frames
        video_mod.default_frame_cache().clear()
        other = VideoSeekerEnv(dataset=small_dataset, tool_timeout_s=30)  # longer than VSEEK_DECODE_TIMEOUT
        obs, info = finishes(other.reset, seed=0, options={"sample_id": "s0"})
        assert obs["num_frames"] > 0 and info["frames"]
        obs, *_, info = finishes(other.step, _crop(2, 3.5))
        assert info["errors"] == [] and obs["num_frames"] > 0
        # and the hung frames themselves: whoever asks again waits a bounded time, then decodes
        obs, *_, info = finishes(other.step, _crop(0, 1.5))
        assert info["errors"] == [] and obs["num_frames"] > 0
        other.close()
    finally:
        release.set()
    env.close()
