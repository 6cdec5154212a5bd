"""Hostile data (issue 14, items 4-8 and 12): files, memory and time under hostile videos and stores.

The data-side cases of ``tests/adversarial/videos.jsonl`` each run in a fresh interpreter with an
address-space cap and a time limit (``hostile_videos.run_limited``): reset, ``crop_video`` over
the whole video, ``zoom_in``, then ``vseek cache build``. Peak RSS must stay under 1 GB.
The frame-store cases (poisoned and malformed ``meta.json``, concurrent builds) run in-process.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from hostile_data import VIDEO_CASES
from hostile_videos import GENERATORS, restarting_ts, run_limited, sparse_video
from videos import read_index, write_indexed_video

from vseek_env import frame_store as fs_mod
from vseek_env.frame_store import FrameStore
from vseek_env.video import FrameCache, VideoError, clear_process_caches, open_video

CASES = VIDEO_CASES
PEAK_RSS_MB = 1024
ADDRESS_SPACE_MB = 1536


pytestmark = pytest.mark.usefixtures("fresh_video_caches")


def test_the_case_list_names_every_generator():
    assert {c["name"] for c in CASES} == set(GENERATORS)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_hostile_video_is_bounded_in_a_capped_child(case, tmp_path):
    path = GENERATORS[case["name"]](tmp_path)
    code = f"from hostile_play import play\n_report(play({str(path)!r}, {str(tmp_path / 'store')!r}))"
    result = run_limited(code, address_space_mb=ADDRESS_SPACE_MB, timeout_s=180)
    assert result["rc"] == 0, result
    assert result["maxrss_mb"] < PEAK_RSS_MB, result
    if case["expect"] == "ok":
        assert result["outcome"] == "ok", result
        assert result["errors"] == [] and result["crop_frames"] >= 1, result
        assert result["store"] == {"videos": 1, "failed": []}, result
        assert result["first_frame_index"] == case.get("frame_index", 0), result
    else:
        assert result["outcome"] == "error" and case["match"] in result["error"], result
        assert "'hostile'" in result["error"], "the error names the sample"
        [failure] = result["store"]["failed"]
        assert case["match"] in failure and path.name in failure, "cache build names the file"


# -- item 4: a data path is a literal local regular file ---------------------------------------------------------
@pytest.mark.parametrize("name", ["concat:a.mp4|b.mp4", "pipe:0", "file:x.mp4", "subfile,,start,0,end,10,,:x.mp4"])
def test_url_like_names_are_literal_files(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    write_indexed_video(tmp_path / "src.mp4", n_frames=12, fps=10, size=(64, 96))
    (tmp_path / "src.mp4").rename(tmp_path / name)  # FFmpeg's writer would parse the name too
    with open_video(name, cache=FrameCache(0)) as video:
        assert video.num_frames == 12
        assert [read_index(f) for f in video.read([0, 11], max_pixels=None).frames] == [0, 11]


def test_fifos_and_devices_are_refused_without_blocking(tmp_path):
    import os

    from vseek_env.video import open_local_file

    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    with pytest.raises(VideoError, match="not a regular file"):
        open_local_file(fifo)  # a blocking open of a FIFO without writer would hang here
    with pytest.raises(VideoError, match="not a regular file"):
        open_local_file("/dev/zero")


# -- item 8: the resolution cap is checked from the header and configurable -----------------------------------------
def test_resolution_cap_is_configurable_and_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "small.mp4"
    write_indexed_video(path, n_frames=5, fps=5, size=(120, 192))
    monkeypatch.setenv("VSEEK_MAX_VIDEO_PIXELS", str(120 * 192 - 1))
    with pytest.raises(VideoError, match="exceed the cap") as err:
        open_video(path, cache=FrameCache(0))
    assert str(path) in str(err.value)
    monkeypatch.setenv("VSEEK_MAX_VIDEO_PIXELS", str(120 * 192))
    assert open_video(path, cache=FrameCache(0)).width == 192


# -- item 12: restarting timestamps -------------------------------------------------------------------------------
def test_restarting_timestamps_are_refused_not_merged(tmp_path):
    path = restarting_ts(tmp_path / "joined.ts")
    with pytest.raises(VideoError, match="timestamps restart") as err:
        open_video(path, cache=FrameCache(0))
    assert str(path) in str(err.value) and "ffmpeg" in str(err.value)


# -- item 7: work bounded by frames --------------------------------------------------------------------------------
@pytest.mark.parametrize("span", [3e8, 2e15])
def test_sampling_a_sparse_video_costs_its_frames_not_its_duration(tmp_path, span):
    path = sparse_video(tmp_path / "sparse.mkv", span)
    with open_video(path, cache=FrameCache(1 << 24)) as video:
        assert video.num_frames == 3 and video.duration >= span
        idx = video.window_indices(0, video.duration, fps=1.0, min_frames=4, max_frames=64)
        assert idx.tolist() == [0, 1, 2]  # each frame is displayed at some whole second
        assert video.window_indices(1.0, 5.0, fps=1.0, min_frames=4, max_frames=64).tolist() == [0]
        assert [read_index(f) for f in video.read(idx).frames] == [0, 1, 2]


def test_cache_build_records_a_failing_video_and_builds_the_rest(tmp_path, monkeypatch):
    from conftest import make_sample

    from vseek_env.commands.cache import build_store
    from vseek_env.data import Dataset

    write_indexed_video(tmp_path / "good.mp4", n_frames=20, fps=10, size=(64, 96))
    (tmp_path / "bad.mp4").write_bytes(b"x")
    ds = Dataset("mixed", [make_sample("a", video="bad.mp4"), make_sample("b", video="good.mp4")], root=tmp_path)
    real = fs_mod.FrameStore.add

    def add(self, video, indices, size, **kw):  # a memory error on one video must not end the build
        if video.path.name == "good.mp4" and not getattr(add, "raised", False):
            add.raised = True
            raise MemoryError("simulated")
        return real(self, video, indices, size, **kw)

    monkeypatch.setattr(fs_mod.FrameStore, "add", add)
    write_indexed_video(tmp_path / "good2.mp4", n_frames=20, fps=10, size=(64, 96))
    ds = Dataset("mixed", [*ds.samples, make_sample("c", video="good2.mp4")], root=tmp_path)
    counts = build_store(ds, FrameStore(tmp_path / "store"), log=lambda m: None)
    assert counts["videos"] == 1
    assert sorted(f["samples"][0] for f in counts["failed"]) == ["a", "b"]
    assert any("MemoryError" in f["error"] for f in counts["failed"])


# -- items 5 and 6: the frame store is contained, validated and atomic ---------------------------------------------
@pytest.fixture()
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.mp4"
    write_indexed_video(path, n_frames=60, fps=10, size=(96, 160), gop=12)
    return path


def _poison(store: FrameStore, key: tuple, mutate) -> Path:
    meta_file = store.folder(key) / "meta.json"
    data = json.loads(meta_file.read_text())
    mutate(data)
    meta_file.write_text(json.dumps(data))
    return meta_file


def test_a_poisoned_file_entry_is_never_read_or_deleted(clip, tmp_path):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"\xff" * 10_000_000)
    store = FrameStore(tmp_path / "store")
    with open_video(clip, cache=FrameCache(0)) as v:
        size = v.output_size(max_pixels=96 * 160)
        store.add(v, [0, 10], size)

        def point_at_victim(data):
            for sized in data["sizes"].values():
                sized["file"] = str(victim)

        _poison(store, v.key, point_at_victim)
        got = FrameStore(store.root).read(v.key, [0, 10], size)
        assert {i: read_index(f) for i, f in got.items()} == {0: 0, 10: 10}
        FrameStore(store.root).add(v, [0, 10, 20], size)  # a rebuild replaces "the old file"
    assert victim.exists() and victim.stat().st_size == 10_000_000
    assert all(p.parent == store.folder(v.key) for p in store.root.rglob("*") if p.is_file())


@pytest.mark.parametrize("corrupt", ["empty_pts", "huge_size", "index_out_of_range", "unsorted", "not_json", "size_name"])
def test_a_malformed_entry_is_ignored_with_a_warning_and_rebuilt(clip, tmp_path, monkeypatch, caplog, corrupt):
    from vseek_env.data import Dataset
    from vseek_env.env import VideoSeekerEnv
    from conftest import make_sample

    store = FrameStore(tmp_path / "store")
    monkeypatch.setenv("VSEEK_FRAME_STORE", str(store.root))
    with open_video(clip, cache=FrameCache(0)) as v:
        size = v.output_size()
        store.add(v, [0, 10], size)
        key = v.key
    mutations = {
        "empty_pts": lambda d: d["meta"].update(pts=[]),
        "huge_size": lambda d: d["meta"].update(width=100_000, height=100_000),
        "index_out_of_range": lambda d: [s.update(indices=[0, 10**6]) for s in d["sizes"].values()],
        "unsorted": lambda d: [s.update(indices=[10, 0]) for s in d["sizes"].values()],
        "size_name": lambda d: d.update(sizes={"../../x": {"indices": [0]}}),
    }
    meta_file = store.folder(key) / "meta.json"
    if corrupt == "not_json":
        meta_file.write_text("{")
    else:
        _poison(store, key, mutations[corrupt])
    clear_process_caches()
    env = VideoSeekerEnv(dataset=Dataset("d", [make_sample("s", video=clip.name)], root=clip.parent))
    with caplog.at_level(logging.WARNING, logger="vseek_env.frame_store"):
        obs, info = env.reset(seed=0)  # once a bare IndexError (pts: [])
    env.close()
    assert info["video"]["duration"] == pytest.approx(6.0)
    assert any(str(meta_file) in r.getMessage() for r in caplog.records)
    with open_video(clip, cache=FrameCache(0)) as v:
        assert FrameStore(store.root).add(v, [0, 10], v.output_size()) == 2  # rebuilt
        assert {i: read_index(f) for i, f in FrameStore(store.root).read(v.key, [0, 10], v.output_size()).items()} \
            == {0: 0, 10: 10}


def test_concurrent_builds_never_serve_wrong_pixels(clip, tmp_path):
    """Builders of one video and size with different frame sets, started together, many times."""
    with open_video(clip, cache=FrameCache(0)) as v:
        size = v.output_size(max_pixels=96 * 160)
        rng = np.random.default_rng(0)
        for trial in range(12):
            root = tmp_path / f"store{trial}"
            sets = [sorted(rng.choice(60, size=8, replace=False).tolist()) for _ in range(3)]
            barrier = threading.Barrier(len(sets))
            errors: list[BaseException] = []

            def build(indices):
                try:
                    barrier.wait()
                    FrameStore(root).add(v, indices, size)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=build, args=(s,)) for s in sets]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not errors, errors
            stored = FrameStore(root).indices(v.key, size)
            assert set(stored.tolist()) == set().union(*map(set, sets)), "no build's frames are lost"
            got = FrameStore(root).read(v.key, stored, size)
            assert {i: read_index(f) for i, f in got.items()} == {int(i): int(i) for i in stored}
            assert not list(root.rglob("*.tmp")), "no temporary file is left"


def test_a_killed_build_leaves_nothing_a_rerun_does_not_clean(clip, tmp_path):
    store = FrameStore(tmp_path / "store")
    with open_video(clip, cache=FrameCache(0)) as v:
        size = v.output_size()
        store.add(v, [0], size)
        leftover = store.folder(v.key) / ".frames_1x1_dead.u8.abc.tmp"  # as a SIGKILLed writer leaves it
        leftover.write_bytes(b"x" * 1000)
        store.add(v, [0, 5], size)
        assert not leftover.exists()
        assert {i: read_index(f) for i, f in store.read(v.key, [0, 5], size).items()} == {0: 0, 5: 5}
