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


def test_an_empty_index_list_reads_nothing_and_is_never_written(clip, store_dir):
    store = FrameStore(store_dir)
    with open_video(clip, cache=FrameCache(0)) as v:
        size = v.output_size()
        assert store.add(v, [], size) == 0
        assert not store.folder(v.key).exists(), "adding no frames must write nothing"
        # an entry whose index list is empty (another writer, a hand edit) reads as "nothing stored"
        store.add(v, [1, 2], size)
        meta_file = store.folder(v.key) / "meta.json"
        meta = json.loads(meta_file.read_text())
        meta["sizes"][f"{size[0]}x{size[1]}"]["indices"] = []
        meta_file.write_text(json.dumps(meta))
        assert FrameStore(store_dir).read(v.key, [1, 2], size) == {}
        assert store.read(v.key, [1, 2], size) == {}
    clear_process_caches()
    with open_video(clip, cache=FrameCache(1 << 26)) as v:
        assert [read_index(f) for f in v.read([1, 2]).frames] == [1, 2]


def test_a_running_reader_sees_what_a_later_build_adds(clip, store_dir):
    """A trainer's store object must pick up frames that `vseek cache build` stores after it looked."""
    reader, builder = FrameStore(store_dir), FrameStore(store_dir)  # as if in two processes
    with open_video(clip, cache=FrameCache(0)) as v:
        size = v.output_size()
        assert reader.read(v.key, [0, 10], size) == {} and reader.meta(v.key) is None
        builder.add(v, [0, 10], size)
        got = reader.read(v.key, [0, 10], size)
        assert {i: read_index(f) for i, f in got.items()} == {0: 0, 10: 10}
        assert reader.meta(v.key) is not None
        # the build grows the entry: the reader must not read the new file with its old index
        builder.add(v, [5], size)
        got = reader.read(v.key, [10, 5], size)
        assert {i: read_index(f) for i, f in got.items()} == {5: 5, 10: 10}
        assert len(list(builder.folder(v.key).glob("frames_*.u8"))) == 1, "the replaced data file is deleted"


def test_a_video_opened_before_the_build_reads_the_built_frames(clip, store_dir):
    store_dir.mkdir()  # an empty store: the video misses in it first
    cache = FrameCache(1 << 26)
    with open_video(clip, cache=cache) as v:
        assert read_index(v.read([20]).frames[0]) == 20
        assert (cache.decoded, cache.store_reads) == (1, 0)
        FrameStore(store_dir).add(v, [30], v.output_size())
        assert read_index(v.read([30]).frames[0]) == 30
        assert (cache.decoded, cache.store_reads) == (1, 1)
