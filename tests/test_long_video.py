"""The overview reader (issue 18): exact frames by time, each keyframe interval decoded at most once
per request in any order, decoders over disjoint intervals, opt-in keyframe tolerance, the store."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from videos import read_index, write_indexed_video

from vseek_env.frame_store import FrameStore
from vseek_env.video import (
    DECODE_STATS, FrameCache, VideoMeta, clear_process_caches, open_video, protocol_indices, split_by_keyframe,
)


pytestmark = pytest.mark.usefixtures("fresh_video_caches")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """40 s at 10 fps, a keyframe every 2 s (20 intervals), B-frames on."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    write_indexed_video(path, n_frames=400, fps=10, size=(96, 192), gop=20)
    return path


def _gop_work(video, indices) -> tuple[int, int]:
    """(distinct keyframe intervals, frames from each interval's keyframe to its last wanted frame)."""
    meta = video.meta
    idx = np.unique(indices)
    gop = np.searchsorted(meta.key_pts, meta.pts[idx], side="right") - 1
    work = 0
    for g in np.unique(gop):
        key_index = int(np.searchsorted(meta.pts, meta.key_pts[g]))
        work += int(idx[gop == g].max()) - key_index + 1
    return int(np.unique(gop).size), work


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_read_times_is_exact_in_any_order_with_any_thread_count(long_clip, monkeypatch, threads):
    monkeypatch.setenv("VSEEK_DECODE_THREADS", threads)
    rng = np.random.default_rng(int(threads))
    with open_video(long_clip, cache=FrameCache(1 << 26)) as video:
        wanted = rng.choice(400, size=60, replace=False)
        times = video.frame_times[wanted] + 0.03  # inside each frame's display interval
        batch = video.read_times(rng.permutation(times), max_pixels=96 * 192)
        assert batch.indices.tolist() == sorted(wanted.tolist())
        assert [read_index(f) for f in batch.frames] == sorted(wanted.tolist())
        np.testing.assert_allclose(batch.times, video.frame_times[np.sort(wanted)])


def test_each_keyframe_interval_is_decoded_at_most_once_per_request(long_clip, monkeypatch):
    monkeypatch.setenv("VSEEK_DECODE_THREADS", "2")
    rng = np.random.default_rng(0)
    with open_video(long_clip, cache=FrameCache(0)) as video:
        wanted = rng.permutation(np.unique(rng.choice(400, size=45)))  # out of order, two or so per interval
        gops, work = _gop_work(video, wanted)
        before = DECODE_STATS.snapshot()
        frames = video.read(wanted).frames
        after = DECODE_STATS.snapshot()
        assert [read_index(f) for f in frames] == wanted.tolist()
        # at most one seek per interval (fewer when decoding runs on into the next one), none repeated
        assert 1 <= after["seeks"] - before["seeks"] <= gops
        decoded = after["frames_decoded"] - before["frames_decoded"]
        # never past an interval's last wanted frame, but for the frames it references (B-frame delay)
        assert len(np.unique(wanted)) <= decoded <= work + 4 * gops


def test_keyframe_tolerance_takes_the_nearest_keyframe_labelled_with_its_time(long_clip):
    tol = 0.5
    with open_video(long_clip, cache=FrameCache(0)) as video:
        keys = np.flatnonzero(np.isin(video.meta.pts, video.meta.key_pts))
        key_times = video.frame_times[keys]
        assert keys.size >= 10, "the clip needs keyframes"
        times = np.linspace(0.15, 39.2, 37)
        expected = []
        for t in times:
            k = int(np.argmin(np.abs(key_times - t)))
            expected.append(int(keys[k]) if abs(key_times[k] - t) <= tol else video.index_at(t))
        before = DECODE_STATS.snapshot()
        batch = video.read_times(times, max_pixels=96 * 192, keyframe_tolerance_s=tol)
        decoded = DECODE_STATS.snapshot()["frames_decoded"] - before["frames_decoded"]
        assert batch.indices.tolist() == sorted(set(expected))
        assert any(e != video.index_at(t) for e, t in zip(expected, times)), "some times must snap"
        assert [read_index(f) for f in batch.frames] == batch.indices.tolist()
        np.testing.assert_allclose(batch.times, video.frame_times[batch.indices])  # true times, not asked ones
        exact = video.read_times(times, max_pixels=96 * 192)  # the default stays exact
        assert exact.indices.tolist() == sorted(set(video.index_at(t) for t in times))
        after = DECODE_STATS.snapshot()["frames_decoded"] - before["frames_decoded"] - decoded
        assert decoded < after, "snapping to keyframes decodes less"


def test_a_store_at_the_overview_sampling_serves_it_without_decoding(long_clip, tmp_path, monkeypatch):
    store = FrameStore(tmp_path / "store")
    with open_video(long_clip, cache=FrameCache(0)) as video:
        indices = np.linspace(0, 399, 32).round().astype(int)
        size = video.output_size(96 * 192)
        store.add(video, indices, size)
        exact = video.read(indices, max_pixels=96 * 192).frames
    monkeypatch.setenv("VSEEK_FRAME_STORE", str(store.root))
    clear_process_caches()
    cache = FrameCache(1 << 26)
    with open_video(long_clip, cache=cache) as video:
        batch = video.read_times(video.frame_times[indices], max_pixels=96 * 192, stack=True)
    assert cache.decoded == 0 and cache.store_reads == len(indices)
    assert np.array_equal(batch.frames, exact)


@given(st.lists(st.integers(0, 999), min_size=1, max_size=120, unique=True), st.integers(1, 6),
       st.lists(st.integers(1, 120), min_size=1, max_size=30))
def test_split_by_keyframe_partitions_whole_intervals_in_order(wanted, parts, gaps):
    keys = np.unique(np.concatenate([[0], np.cumsum(gaps)]))
    keys = keys[keys < 1000]
    meta = VideoMeta(key=(), width=2, height=2, duration=1000.0, pts=np.arange(1000), key_pts=keys,
                     time_base=Fraction(1), frame_times=np.arange(1000.0))
    wanted = sorted(wanted)
    runs = split_by_keyframe(meta, wanted, parts)
    assert [i for run in runs for i in run] == wanted and all(runs) and len(runs) <= max(1, parts)
    gop_of = lambda i: int(np.searchsorted(keys, i, side="right")) - 1  # noqa: E731
    owners = [{gop_of(i) for i in run} for run in runs]
    assert all(not (a & b) for n, a in enumerate(owners) for b in owners[n + 1 :]), "an interval split in two"


def test_cache_build_protocol_overview_stores_the_papers_sampling(long_clip, tmp_path):
    from conftest import make_sample

    from vseek_env.commands.cache import build_store
    from vseek_env.data import Dataset

    store = FrameStore(tmp_path / "store")
    ds = Dataset("d", [make_sample("s", video=long_clip.name)], root=long_clip.parent)
    build_store(ds, store, fps=0.25, max_pixels=96 * 192, overview_frames=0, prompt_frames=False,
                protocol_overview=True, log=lambda m: None)
    with open_video(long_clip, cache=FrameCache(0)) as video:
        wanted = protocol_indices(video.num_frames, 10.0)
        assert len(wanted) == 40  # 40 s at 1 fps
        assert set(wanted.tolist()) <= set(store.indices(video.key, video.output_size(96 * 192)).tolist())


def test_protocol_indices_follow_the_paper_rule():
    assert len(protocol_indices(30000, 25.0)) == 256  # 20 min: capped at 256
    assert protocol_indices(250, 25.0).tolist() == [0, 28, 55, 83, 111, 138, 166, 194, 221, 249]  # 10 s: 10 frames
    assert len(protocol_indices(50, 25.0)) == 4  # at least 4
