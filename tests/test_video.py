"""The decoding facade: exact frames by PTS (CFR with B-frames, VFR, mp4/mkv/webm), sampling rules,
the shared cache, bounded failure on broken files, no leaked descriptors, thread safety."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from videos import corrupted_copy, read_index, remux, truncated_copy, write_indexed_video

from vseek_env import video as video_mod
from vseek_env.video import FrameCache, VideoError, clear_process_caches, frame_stamps, open_video, smart_resize
from threads import finishes

VFR_TIMES = [0.0, 0.04, 0.1, 0.5, 0.52, 0.9, 1.7, 1.72, 1.74, 2.5, 3.0, 3.05, 4.2, 4.9, 5.0, 6.3, 6.31, 7.0]


@pytest.fixture(autouse=True)
def _fresh_process_caches(monkeypatch, tmp_path):
    monkeypatch.setenv("VSEEK_FRAME_STORE", str(tmp_path / "no_store_here"))
    clear_process_caches()
    yield
    clear_process_caches()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, tuple[Path, list[float]]]:
    """name -> (path, true presentation times of frames 0..n-1)."""
    d = tmp_path_factory.mktemp("video_formats")
    out = {}
    out["mp4_bframes"] = (d / "cfr.mp4", write_indexed_video(d / "cfr.mp4", n_frames=90, fps=15, gop=12))
    out["mp4_vfr"] = (d / "vfr.mp4", write_indexed_video(d / "vfr.mp4", n_frames=len(VFR_TIMES), times=VFR_TIMES, gop=5))
    out["mkv_bframes"] = (d / "cfr.mkv", write_indexed_video(d / "cfr.mkv", n_frames=90, fps=15, gop=12))
    out["mkv_vfr"] = (d / "vfr.mkv", write_indexed_video(d / "vfr.mkv", n_frames=len(VFR_TIMES), times=VFR_TIMES, gop=5))
    out["webm_vp9"] = (d / "vp9.webm", write_indexed_video(d / "vp9.webm", n_frames=40, fps=10, codec="libvpx-vp9"))
    # here a seek to a keyframe lands one keyframe early (mp4 edit list of a B-frame stream)
    out["mp4_early_seek"] = (d / "seek.mp4", write_indexed_video(d / "seek.mp4", n_frames=90, fps=30, gop=10))
    return out


FORMATS = ["mp4_bframes", "mp4_vfr", "mkv_bframes", "mkv_vfr", "webm_vp9", "mp4_early_seek"]


@pytest.mark.parametrize("name", FORMATS)
def test_each_frame_read_alone_is_exact(videos, name, monkeypatch):
    """One seek per frame; a seek that lands early must not make the decoder seek there forever."""
    monkeypatch.setenv("VSEEK_DECODE_TIMEOUT", "20")  # fail in seconds, not minutes, if it loops
    path, truth = videos[name]
    video = open_video(path, cache=FrameCache(0))
    assert [read_index(video.read([i]).frames[0]) for i in range(len(truth))] == list(range(len(truth)))


@pytest.mark.parametrize("name", FORMATS)
def test_frame_times_are_the_stream_pts(videos, name):
    path, truth = videos[name]
    video = open_video(path, cache=FrameCache(0))
    assert video.num_frames == len(truth)
    np.testing.assert_allclose(video.frame_times, np.asarray(truth) - truth[0], atol=1e-3)
    assert video.duration >= video.frame_times[-1]
    assert (video.height, video.width) == (120, 192)


@pytest.mark.parametrize("name", FORMATS)
@given(data=st.data())
def test_every_returned_frame_is_the_one_displayed_at_its_time(videos, name, data):
    path, truth = videos[name]
    clear_process_caches()  # decode for real, from a random starting point, every example
    video = open_video(path, cache=FrameCache(1 << 28))
    indices = sorted(data.draw(st.sets(st.integers(0, len(truth) - 1), min_size=1, max_size=12)))
    max_pixels = data.draw(st.sampled_from([None, 112 * 112, 336 * 336]))
    batch = video.read(indices, max_pixels=max_pixels)
    assert [read_index(f) for f in batch.frames] == indices
    np.testing.assert_allclose(batch.times, np.asarray(truth)[indices] - truth[0], atol=1e-3)
    for t in batch.times:
        assert video.frame_times[video.index_at(t)] == t


@pytest.mark.parametrize("name", ["mp4_vfr", "mkv_bframes"])
@given(t=st.floats(-1, 10, allow_nan=False))
def test_index_at_is_the_last_frame_started(videos, name, t):
    path, truth = videos[name]
    video = open_video(path, cache=FrameCache(0))
    i = video.index_at(t)
    times = video.frame_times
    if t < 0:
        assert i == 0
    else:
        assert times[i] <= max(t, 0) + 1e-9
        assert i == len(times) - 1 or times[i + 1] > t


@given(start=st.floats(0, 6), length=st.floats(0.05, 8), fps=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
       lo=st.integers(1, 6), extra=st.integers(0, 40))
def test_window_indices_follow_the_crop_rule(videos, start, length, fps, lo, extra):
    video = open_video(videos["mp4_bframes"][0], cache=FrameCache(0))
    end = start + length
    idx = video.window_indices(start, end, fps=fps, min_frames=lo, max_frames=lo + extra)
    s, e = max(0.0, start), min(video.duration, end)
    inside = np.nonzero((video.frame_times >= s - 1e-9) & (video.frame_times <= e + 1e-9))[0]
    assert np.all(np.diff(idx) > 0)
    if inside.size == 0:
        assert list(idx) == [video.index_at(s)]
        return
    n = max(lo, min(lo + extra, math.ceil((e - s) * fps - 1e-9)))
    assert len(idx) == min(n, inside.size)
    assert set(idx) <= set(inside)


def test_overlapping_windows_share_grid_frames(videos):
    video = open_video(videos["mp4_bframes"][0], cache=FrameCache(0))
    a = video.window_indices(0.5, 4.5, fps=1, min_frames=1, max_frames=64)
    b = video.window_indices(1.5, 5.5, fps=1, min_frames=1, max_frames=64)
    assert list(video.frame_times[a]) == [1.0, 2.0, 3.0, 4.0]
    assert set(a) & set(b) == set(video.window_indices(1.5, 4.5, fps=1, min_frames=1, max_frames=64))


def test_uniform_indices_spread_over_the_video(videos):
    video = open_video(videos["mp4_bframes"][0], cache=FrameCache(0))
    idx = video.uniform_indices(6)
    assert len(idx) == 6 and np.all(np.diff(idx) > 0)
    assert video.frame_times[idx[0]] < video.duration / 6 <= video.frame_times[idx[1]]
    assert len(video.uniform_indices(10_000)) == video.num_frames


def test_budgeted_size_and_native_size(videos):
    video = open_video(videos["mp4_bframes"][0], cache=FrameCache(1 << 26))
    small = video.read([3], max_pixels=56 * 56, factor=28)
    assert small.frames.shape[1:3] == smart_resize(120, 192, max_pixels=56 * 56, factor=28)
    assert video.read([3], max_pixels=None).frames.shape == (1, 120, 192, 3)
    assert video.output_size(None) == (120, 192)


def test_a_group_re_reading_one_video_decodes_each_frame_once(videos):
    path = videos["mp4_bframes"][0]
    cache = FrameCache(1 << 28)
    results = []
    for _rollout in range(8):  # a GRPO group: 8 rollouts, each re-opens the video (env.reset)
        with open_video(path, cache=cache) as v:
            results.append(v.read(v.window_indices(1, 4, fps=2, min_frames=4, max_frames=64)).frames)
    stats = cache.stats()
    assert stats["decoded"] == results[0].shape[0] == stats["misses"]
    assert stats["hits"] == 7 * results[0].shape[0]
    assert all(np.array_equal(results[0], r) for r in results)
    assert video_mod._META.probes == 1  # the stream was probed once, too
    results[0][:] = 0  # a caller drawing on its frames must not change what the next rollout sees
    with open_video(path, cache=cache) as v:
        assert np.array_equal(v.read(v.window_indices(1, 4, fps=2, min_frames=4, max_frames=64)).frames, results[1])


def test_cache_is_bounded_in_bytes_and_lru(videos):
    video = open_video(videos["mp4_bframes"][0], cache=FrameCache(0))
    frame_bytes = int(np.prod(video.output_size(112 * 112))) * 3
    cache = FrameCache(frame_bytes * 5)
    video = open_video(videos["mp4_bframes"][0], cache=cache)
    video.read(range(0, 10), max_pixels=112 * 112)
    assert cache.nbytes <= cache.max_bytes and len(cache) == 5 and cache.evictions == 5
    before = cache.decoded
    video.read([9], max_pixels=112 * 112)  # most recent: still there
    assert cache.decoded == before
    video.read([0], max_pixels=112 * 112)  # evicted long ago: decoded again
    assert cache.decoded == before + 1
    cache.clear()
    assert cache.nbytes == 0 and cache.stats()["hits"] == 0


def test_concurrent_readers_are_exact_and_decode_once(videos):
    path = videos["mkv_bframes"][0]
    cache = FrameCache(1 << 28)
    video = open_video(path, cache=cache)
    windows = [(0, 3), (1, 4), (2, 5), (0, 6)]
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for r in range(6):
                s, e = windows[(k + r) % len(windows)]
                own = open_video(path, cache=cache) if k % 2 else video  # shared object and fresh ones
                idx = own.window_indices(s, e, fps=3, min_frames=4, max_frames=64)
                assert [read_index(f) for f in own.read(idx).frames] == list(idx)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    wanted = set()
    for s, e in windows:
        wanted |= set(video.window_indices(s, e, fps=3, min_frames=4, max_frames=64).tolist())
    assert cache.decoded == len(wanted)


def test_edited_file_never_serves_stale_frames(tmp_path):
    path = tmp_path / "edit.mp4"
    write_indexed_video(path, n_frames=20, fps=10)
    cache = FrameCache(1 << 26)
    first = open_video(path, cache=cache).read([5]).frames[0]
    write_indexed_video(path, n_frames=30, fps=10, size=(96, 160))
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    again = open_video(path, cache=cache)
    assert again.num_frames == 30 and again.read([5]).frames[0].shape != first.shape


def test_no_descriptor_leak_over_many_opens(videos):
    path = videos["mp4_bframes"][0]
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc")
    open_video(path, cache=FrameCache(0)).read([1, 50])
    before = len(os.listdir(fd_dir))
    for i in range(120):
        clear_process_caches()  # probe and decode anew each time
        with open_video(path, cache=FrameCache(0)) as v:
            v.read([i % 90, (i * 7) % 90])
    assert len(os.listdir(fd_dir)) == before


def test_closed_video_refuses_to_read(videos):
    video = open_video(videos["mp4_bframes"][0])
    video.close()
    with pytest.raises(VideoError, match="closed"):
        video.read([0])
    with pytest.raises(IndexError):
        open_video(videos["mp4_bframes"][0]).read([10_000])


# -- broken input: a clear VideoError naming the file -----------------------------------------------------------
@pytest.fixture(scope="module")
def broken(tmp_path_factory, videos) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("broken")
    src = d / "long.mp4"
    write_indexed_video(src, n_frames=150, fps=15, gop=15)
    fast = remux(src, d / "fast.mp4", options={"movflags": "faststart"})
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 30_000, dtype=np.uint8).tobytes())
    (d / "a_folder.mp4").mkdir()
    return {
        "missing": d / "missing.mp4",
        "empty": d / "empty.mp4",
        "garbage": d / "garbage.mp4",
        "folder": d / "a_folder.mp4",
        "truncated_mp4": truncated_copy(src, d / "trunc.mp4", 0.6),
        "truncated_faststart_mp4": truncated_copy(fast, d / "trunc_fast.mp4", 0.5),
        "corrupt_mp4": corrupted_copy(src, d / "corrupt.mp4", start=0.5, length=20_000),
    }


@pytest.mark.parametrize("name", ["missing", "empty", "garbage", "folder", "truncated_mp4",
                                  "truncated_faststart_mp4", "corrupt_mp4"])
def test_broken_videos_raise_a_video_error_naming_the_file(broken, name):
    path = broken[name]
    with pytest.raises(VideoError) as err:
        with open_video(path, cache=FrameCache(1 << 26)) as video:
            video.read(np.arange(video.num_frames))  # a file that opens must fail on the broken part
    assert str(path) in str(err.value)


def test_truncated_mkv_keeps_what_is_there(tmp_path, videos):
    cut = truncated_copy(remux(videos["mp4_bframes"][0], tmp_path / "full.mkv"), tmp_path / "cut.mkv", 0.6)
    video = open_video(cut, cache=FrameCache(1 << 26))
    assert 0 < video.num_frames < 90
    assert [read_index(f) for f in video.read(range(video.num_frames)).frames] == list(range(video.num_frames))


def test_decoding_is_bounded_by_a_deadline(videos, monkeypatch):
    monkeypatch.setenv("VSEEK_DECODE_TIMEOUT", "0")
    path = videos["mkv_bframes"][0]
    with pytest.raises(VideoError, match="took longer") as err:
        open_video(path, cache=FrameCache(0))
    assert str(path) in str(err.value)


# -- timestamps: negative PTS are real, missing PTS fall back ----------------------------------------------------
def _remux_shifted(src: Path, dst: Path, seconds: float, **options: str) -> Path:
    """Copy ``src`` with every timestamp moved ``seconds`` earlier (an mp4 gets an edit list)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options) as out:
        stream = inp.streams.video[0]
        target = out.add_stream_from_template(stream)
        shift = int(seconds / stream.time_base)
        for packet in inp.demux(stream):
            if packet.dts is None:  # the flush packet
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = target
            out.mux(packet)
    return dst


def test_negative_pts_of_an_edit_list_are_timestamps_not_missing(tmp_path):
    src = tmp_path / "src.mp4"
    write_indexed_video(src, n_frames=30, fps=10, gop=10)
    path = _remux_shifted(src, tmp_path / "edit.mp4", 1.0)
    with av.open(str(path)) as container:
        assert min(p.pts for p in container.demux(video=0) if p.size) < 0, "the test needs negative PTS"
    video = open_video(path, cache=FrameCache(1 << 26))
    # the edit list hides the first second: frames 10..29 are shown, from time 0
    assert video.meta.pts_reliable and video.num_frames == 20
    np.testing.assert_allclose(video.frame_times, np.arange(20) / 10, atol=1e-6)
    assert video.duration == pytest.approx(2.0)
    for wanted in ([19, 5, 0, 12], [17], [3, 4], list(range(20))):  # seeks land a keyframe early here
        clear_process_caches()
        assert [read_index(f) for f in video.read(wanted, max_pixels=None).frames] == [i + 10 for i in wanted]


def test_a_stream_with_missing_pts_is_read_in_decode_order(tmp_path):
    src = tmp_path / "src.mp4"
    write_indexed_video(src, n_frames=30, fps=10, gop=10)
    # matroska cannot store negative times: FFmpeg writes those packets without PTS
    path = _remux_shifted(src, tmp_path / "nopts.mkv", 1.0, avoid_negative_ts="disabled")
    with av.open(str(path)) as container:
        if all(p.pts is not None for p in container.demux(video=0) if p.size):
            pytest.skip("this FFmpeg keeps every PTS in the mkv")
    video = open_video(path, cache=FrameCache(1 << 26))
    assert not video.meta.pts_reliable and video.num_frames == 30
    assert [read_index(f) for f in video.read([29, 3, 17]).frames] == [29, 3, 17]


stamp = st.one_of(st.none(), st.integers(-(2**40), 2**40))


@given(pts=st.lists(stamp, min_size=1, max_size=30), data=st.data())
def test_frame_stamps_trust_any_present_pts_and_fall_back_only_when_one_is_missing(pts, data):
    dts = data.draw(st.lists(stamp, min_size=len(pts), max_size=len(pts)))
    stamps, reliable = frame_stamps(pts, dts)
    assert len(stamps) == len(pts)
    if None not in pts:  # negative or not, present PTS are used as they are
        assert (stamps, reliable) == (pts, True)
    elif None not in dts:
        assert (stamps, reliable) == (dts, False)
    else:
        assert (stamps, reliable) == (list(range(len(pts))), False)


# -- a decode stuck in C code blocks no other read --------------------------------------------------------------
@pytest.fixture()
def stuck_first_decode(monkeypatch):
    """The first ``decode_frames`` call hangs (as a decoder stuck in C code would) until released."""
    monkeypatch.setenv("VSEEK_DECODE_TIMEOUT", "1")
    real = video_mod.decode_frames
    entered, release = threading.Event(), threading.Event()
    calls: list[list[int]] = []

    def decode(path, meta, indices, size):
        calls.append(list(indices))
        if len(calls) == 1:
            entered.set()
            release.wait(120)
        return real(path, meta, indices, size)

    monkeypatch.setattr(video_mod, "decode_frames", decode)
    yield entered, calls
    release.set()


def test_a_stuck_decode_delays_only_readers_of_its_frames_and_only_once(videos, stuck_first_decode):
    entered, calls = stuck_first_decode
    path = videos["mp4_bframes"][0]
    cache = FrameCache(1 << 28)
    video = open_video(path, cache=cache)
    stuck = threading.Thread(target=video.read, args=([0, 1, 2],), daemon=True)
    stuck.start()
    assert entered.wait(60)
    # other frames of the same video and size: no waiting on the stuck reader at all
    assert [read_index(f) for f in finishes(video.read, [10, 11]).frames] == [10, 11]
    assert calls[1] == [10, 11]
    # one of its frames: wait (bounded by VSEEK_DECODE_TIMEOUT), then decode it here
    other = open_video(path, cache=cache)
    assert [read_index(f) for f in finishes(other.read, [1, 20]).frames] == [1, 20]
    assert calls[2:] == [[20], [1]]
    # the stuck reader's claims were cancelled: the next reader of its frames decodes at once
    assert [read_index(f) for f in finishes(video.read, [2]).frames] == [2]
    assert calls[4:] == [[2]]
    assert stuck.is_alive()


@settings(max_examples=200, deadline=None)
@given(height=st.integers(1, 5000), width=st.integers(1, 5000), budget=st.integers(28 * 28, 4_000_000),
       factor=st.sampled_from([14, 28, 32]))
def test_smart_resize_stays_on_the_grid_and_inside_the_budget(height, width, budget, factor):
    if budget < factor * factor:
        return
    h, w = smart_resize(height, width, max_pixels=budget, min_pixels=factor * factor, factor=factor)
    assert h % factor == 0 and w % factor == 0 and h >= factor and w >= factor
    assert h * w <= budget  # thin frames too: a side clamped to one patch shrinks the other
