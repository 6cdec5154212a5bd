"""Shared fixtures: small indexed videos and a hand-made dataset over them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

from videos import write_indexed_video  # noqa: E402

from vseek_env.data import Dataset, Sample, Track, VisualPromptSpec  # noqa: E402

# CI runs a bounded hypothesis profile; `HYPOTHESIS_PROFILE=long pytest` explores much more.
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Generated datasets go to a per-session cache, never the user's."""
    if "VSEEK_CACHE_DIR" not in os.environ:
        os.environ["VSEEK_CACHE_DIR"] = str(tmp_path_factory.mktemp("vseek_cache"))
    yield


@pytest.fixture(scope="module")
def no_judge_from_the_environment():
    """A judge configured in the developer's shell must not change rule-based reward expectations.

    Request it per module: ``pytestmark = pytest.mark.usefixtures("no_judge_from_the_environment")``.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("VSEEK_JUDGE_BASE_URL", raising=False)
        yield


@pytest.fixture(scope="session")
def indexed_video(tmp_path_factory) -> Path:
    """A 6 s, 10 fps, 192x120 H.264 video whose frame i shows i."""
    path = tmp_path_factory.mktemp("videos") / "indexed.mp4"
    write_indexed_video(path, n_frames=60, fps=10)
    return path


def make_sample(sample_id: str = "s0", video: str = "indexed.mp4", **overrides) -> Sample:
    fields = dict(
        id=sample_id,
        video=video,
        question="Which way does the marked object move?",
        options=("left", "right", "up", "down"),
        answer="B",
        answer_kind="choice",
        prompt=VisualPromptSpec(time=1.0, style="rectangle", box=(40.0, 40.0, 100.0, 100.0), seed=3),
        track=Track(times=(0.0, 3.0), boxes=((40.0, 40.0, 100.0, 100.0), (80.0, 40.0, 140.0, 100.0))),
        evidence=(2.0, 4.0),
        dimension="OD",
    )
    fields.update(overrides)
    return Sample(**fields)


@pytest.fixture(scope="session")
def small_dataset(indexed_video) -> Dataset:
    samples = [
        make_sample("s0"),
        make_sample("s1", answer="A", prompt=VisualPromptSpec(time=4.25, style="rectangle", box=(10.0, 50.0, 60.0, 110.0))),
        make_sample("span0", answer_kind="span", options=(), answer=(2.0, 4.0), question="When does it move?"),
    ]
    return Dataset("small", samples, root=indexed_video.parent)


@pytest.fixture()
def fresh_video_caches(monkeypatch, tmp_path):
    """No frame store, and empty process caches before and after: each test decodes what it reads."""
    from vseek_env.video import clear_process_caches

    monkeypatch.setenv("VSEEK_FRAME_STORE", str(tmp_path / "no_store_here"))
    clear_process_caches()
    yield
    clear_process_caches()
