"""The on-disk frame store: same pixels as decoding, used transparently, falls back, resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from videos import read_index, write_indexed_video

from vseek_env import video as video_mod
from vseek_env.cli import main
from vseek_env.commands.cache import build_store
from vseek_env.data.datasets import write_samples
from vseek_env.frame_store import FrameStore, default_frame_store, store_root
from vseek_env.video import FrameCache, clear_process_caches, open_video


@pytest.fixture()
def store_dir(tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("VSEEK_FRAME_STORE", str(root))
    clear_process_caches()
    yield root
    clear_process_caches()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("store_clip") / "clip.mp4"
    write_indexed_video(path, n_frames=80, fps=10, gop=20)
    return path


def test_no_store_folder_means_no_store(tmp_path, monkeypatch):
    monkeypatch.setenv("VSEEK_FRAME_STORE", str(tmp_path / "absent"))
    assert store_root() == tmp_path / "absent" and default_frame_store() is None


def test_stored_frames_equal_decoded_frames_and_skip_the_decoder(clip, store_dir, monkeypatch):
    with open_video(clip, cache=FrameCache(0)) as v:
        grid = v.window_indices(0, v.duration, fps=1, min_frames=1, max_frames=10**6)
        size = v.output_size(112 * 112)
        decoded = v.read(grid, max_pixels=112 * 112).frames
        assert FrameStore(store_dir).add(v, grid, size) == len(grid)
    clear_process_caches()

    def no_probe(*a, **k):
        raise AssertionError("the store's metadata should make probing unnecessary")

    monkeypatch.setattr(video_mod, "probe_video", no_probe)
    cache = FrameCache(1 << 28)
    with open_video(clip, cache=cache) as v:
        window = v.window_indices(2, 6, fps=1, min_frames=4, max_frames=64)
        batch = v.read(window, max_pixels=112 * 112)
    assert set(window) <= set(grid)
    assert np.array_equal(batch.frames, decoded[np.searchsorted(grid, window)])
    assert [read_index(f) for f in batch.frames] == list(window)
    assert cache.decoded == 0 and cache.store_reads == len(window)


def test_frames_the_store_lacks_are_decoded(clip, store_dir):
    with open_video(clip, cache=FrameCache(0)) as v:
        FrameStore(store_dir).add(v, [0, 10, 20], v.output_size())
    clear_process_caches()
    cache = FrameCache(1 << 28)
    with open_video(clip, cache=cache) as v:
        batch = v.read([0, 5, 10, 15], max_pixels=None)  # other size: nothing stored for it
        batch2 = v.read([0, 5, 10, 15])
    assert [read_index(f) for f in batch.frames] == [0, 5, 10, 15] == [read_index(f) for f in batch2.frames]
    assert cache.store_reads == 2 and cache.decoded == 4 + 2


def test_add_is_incremental_and_a_damaged_store_file_falls_back(clip, store_dir):
    store = FrameStore(store_dir)
    with open_video(clip, cache=FrameCache(0)) as v:
        size = v.output_size()
        assert store.add(v, [1, 2, 3], size) == 3
        assert store.add(v, [1, 2, 3], size) == 0
        assert store.add(v, [3, 4], size) == 1
        assert list(store.indices(v.key, size)) == [1, 2, 3, 4]
        data = next(store.folder(v.key).glob("frames_*.u8"))
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 3])  # cut short on disk
    clear_process_caches()
    with open_video(clip, cache=FrameCache(1 << 26)) as v:
        assert [read_index(f) for f in v.read([1, 2, 3, 4]).frames] == [1, 2, 3, 4]


def test_cache_build_command_stores_a_dataset(clip, store_dir, tmp_path, capsys):
    from conftest import make_sample

    samples_file = clip.parent / "samples.jsonl"
    write_samples(samples_file, [make_sample("a", video=clip.name), make_sample("b", video=clip.name)])
    assert main(["cache", "build", str(samples_file), "--fps", "1", "--max-pixels", str(112 * 112)]) == 0
    out = capsys.readouterr().out
    assert "1 videos stored" in out
    store = FrameStore(store_dir)
    assert store.summary()["videos"] == 1
    meta = json.loads(next(store_dir.glob("*/meta.json")).read_text())
    with open_video(clip, cache=FrameCache(0)) as v:
        budget = v.output_size(112 * 112)
        stored = set(store.indices(v.key, budget).tolist())
        assert set(v.window_indices(0, v.duration, fps=1, min_frames=1, max_frames=999).tolist()) <= stored
        assert set(v.uniform_indices(16).tolist()) <= stored
        assert v.index_at(1.0) in set(store.indices(v.key, (v.height, v.width)).tolist())  # prompt frame
    assert meta["path"] == str(clip)
    # a rerun resumes: nothing new to do
    assert main(["cache", "build", str(samples_file), "--fps", "1", "--max-pixels", str(112 * 112)]) == 0
    assert "0 frames added" in capsys.readouterr().out
    assert main(["cache", "info"]) == 0 and "1 videos" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0 and not store_dir.exists()


def test_cache_build_reports_unreadable_videos(tmp_path, store_dir, capsys):
    from conftest import make_sample

    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    samples_file = tmp_path / "bad.jsonl"
    write_samples(samples_file, [make_sample("x", video="bad.mp4")])
    counts = build_store(samples_file, FrameStore(store_dir), log=lambda m: None)
    assert counts["videos"] == 0 and counts["failed"][0]["samples"] == ["x"]
    assert "bad.mp4" in counts["failed"][0]["error"]
    assert main(["cache", "build", str(samples_file)]) == 1
