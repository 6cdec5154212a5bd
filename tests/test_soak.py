"""The soak of ``benchmarks/soak.py`` at CI size: 200 episodes mixing normal samples, hostile data
(videos and rows, through a strict env, ``skip_bad_samples`` and the eval worker) and hostile
responses. No timing thresholds; the RSS bound is loose (the frame cache fills during the run)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hostile_data import HOSTILE_ROWS, VIDEO_CASES

SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"


@pytest.fixture(scope="module")
def soak():
    spec = importlib.util.spec_from_file_location("vseek_soak", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(soak, tmp_path_factory):
    return soak.run_soak(200, every=20, cache_mb=16, seed=3, rss_slack_mb=192, workdir=tmp_path_factory.mktemp("soak"),
                         log=lambda line: None)


def test_the_soak_finishes_with_no_violation_and_no_unexpected_exception(report):
    assert report["violations"] == [] and report["unexpected_by_type"] == {}
    assert sum(report["episodes_by_kind"].values()) == 200 and set(report["episodes_by_kind"]) == {"normal", "hostile", "skip", "eval"}
    assert report["ok"], {k: report[k] for k in ("rss_growth_mb", "fd_growth", "peak_rise_mb", "peak_rss_since", "checkpoints")}


def test_every_hostile_case_is_met_and_handled_as_documented(report):
    names = {f"video:{c['name']}" for c in VIDEO_CASES} | {f"row:{n}" for n in HOSTILE_ROWS}
    assert set(report["hostile_cases"]) == names
    handled = report["handled"]
    for name, (error, stage) in report["hostile_cases"].items():
        if error is None:
            assert handled.get(f"hostile/{name}: played") and handled.get(f"eval/{name}: ok record"), name
        elif stage == "open":
            assert handled.get(f"hostile/{name}: {error}"), name
            assert handled.get(f"eval/{name}: error record {error}"), name
        else:  # only the eval's record is an error; the env plays it
            assert handled.get(f"hostile/{name}: played") and handled.get(f"eval/{name}: error record {error}"), name
    assert any(key.startswith("skip/") for key in handled), "skip_bad_samples skipped some hostile case"
    assert set(report["hostile_errors_by_type"]) == {"VideoError", "SampleError"}
    assert report["tool_errors_by_code"], "the hostile responses produced tool errors"


def test_open_fds_do_not_grow_and_rss_stays_bounded(report):
    fds = [c["open_fds"] for c in report["checkpoints"]]
    assert len(fds) == 10 and max(fds) - fds[0] <= 2 and report["fd_growth"] <= 0
    assert report["rss_growth_mb"] <= 16 + 192
    if report["peak_rss_since"] == "soak start":  # else the peak is the earlier tests' (ru_maxrss)
        assert report["peak_rise_mb"] < 1024


def test_a_violation_is_reported_not_raised(soak, tmp_path):
    """The checker itself: a case whose documented error is wrong shows up as a violation."""
    import dataclasses

    from vseek_env.data import SampleError

    class Lying(soak.Soak):
        def __init__(self, *args):
            super().__init__(*args)
            self.cases = [dataclasses.replace(c, error=SampleError) if c.name == "video:huge_8192" else c
                          for c in self.cases]
            self.by_name = {c.name: c for c in self.cases}

    original, soak.Soak = soak.Soak, Lying
    try:
        report = soak.run_soak(12, every=4, mix=(0, 1, 0, 0), workdir=tmp_path, log=lambda line: None)
    finally:
        soak.Soak = original
    assert not report["ok"] and any("huge_8192" in v and "expected SampleError" in v for v in report["violations"])
