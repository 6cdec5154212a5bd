"""G3 segmenters: the interface, the given-annotation path, the weight-free OpenCV propagation scored
against exact masks of generated videos and (when present) real DAVIS footage, the DAVIS J/F
measures, and the SAM 2 / SAM 3 adapters run end to end on tiny random models built from configs.

``write_shapes_video`` (also used by tests/test_pipeline.py) draws moving shapes over a textured
background with PyAV and returns every frame's exact instance masks.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vseek_env.masks import box_to_mask, encode_rle, mask_to_box
from vseek_env.pipeline.segmenters import (
    GivenSegmenter,
    OpenCVSegmenter,
    Sam2Segmenter,
    Sam3Segmenter,
    SegmenterUnavailable,
    SegmentRequest,
    default_segmenter,
    make_segmenter,
    mask_iou,
)
from vseek_env.pipeline.segmenters.davis import evaluate_sequence, f_measure, find_sequences, j_measure, load_masks

from davis_data import DAVIS  # noqa: E402

# --------------------------------------------------------------------------- generated videos


def _shape_mask(kind: str, cx: float, cy: float, rx: float, ry: float, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    if kind == "ellipse":
        return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    return (np.abs(xx - cx) <= rx) & (np.abs(yy - cy) <= ry)


def write_shapes_video(
    path: Path,
    *,
    seconds: float = 6.0,
    fps: int = 10,
    size: tuple[int, int] = (144, 192),
    seed: int = 0,
) -> dict:
    """Two shapes moving over a textured background; returns ``{"times", "masks": {name: [mask per frame]}}``.

    ``target`` (a red ellipse) crosses the frame along a curve; ``other`` (a blue square) moves the
    other way, so a box held still loses the target.
    """
    h, w = size
    rng = np.random.default_rng(seed)
    texture = (rng.integers(60, 140, (h // 8 + 1, w // 8 + 1, 3))).astype(np.uint8)
    background = np.kron(texture, np.ones((8, 8, 1), np.uint8))[:h, :w]
    background = (background.astype(int) + rng.integers(-10, 10, (h, w, 3))).clip(0, 255).astype(np.uint8)
    n = int(seconds * fps)
    times = [i / fps for i in range(n)]
    masks: dict[str, list[np.ndarray]] = {"target": [], "other": []}
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.time_base = Fraction(1, fps)
    stream.options = {"crf": "18", "g": "10"}
    for i, t in enumerate(times):
        u = t / seconds
        frame = background.copy()
        cx, cy = 0.15 * w + 0.7 * w * u, 0.5 * h + 0.25 * h * np.sin(2 * np.pi * u)
        other = _shape_mask("square", 0.85 * w - 0.6 * w * u, 0.3 * h, 12, 12, h, w)
        target = _shape_mask("ellipse", cx, cy, 16 + 6 * u, 12, h, w)
        frame[other] = (40, 70, 220)
        frame[target] = (220, 40, 40)
        masks["other"].append(other & ~target)
        masks["target"].append(target)
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts = i
        for packet in stream.encode(video_frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return {"times": times, "masks": masks, "fps": fps, "size": size}


def frame_reader(path: Path):
    """``read_frames(times, max_pixels)`` over a video file, as G3 builds it."""
    from vseek_env.video import open_video

    video = open_video(path)

    def read(times, max_pixels):
        indices = sorted({video.index_at(t) for t in times})
        batch = video.read(indices, max_pixels=max_pixels)
        return batch.frames, batch.times

    return read


@pytest.fixture(scope="module")
def shapes_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "shapes.mp4"
    truth = write_shapes_video(path)
    return path, truth


# --------------------------------------------------------------------------- tests


def test_mask_iou_basics():
    a = np.zeros((10, 10), bool)
    a[:5] = True
    b = np.zeros((10, 10), bool)
    b[:, :5] = True
    assert mask_iou(a, b) == pytest.approx(25 / 75)
    assert mask_iou(a, None) == 0.0


@given(
    t0=st.floats(0, 5), dt=st.floats(0.5, 5), q=st.floats(0, 1),
    box0=st.tuples(st.floats(0, 50), st.floats(0, 50)), shift=st.floats(-20, 20),
)
def test_given_segmenter_interpolates_boxes_and_never_extrapolates(t0, dt, q, box0, shift):
    x, y = box0
    b0, b1 = [x, y, x + 20, y + 20], [x + shift + 50, y, x + shift + 70, y + 20]
    ann = {"times": [t0, t0 + dt], "boxes": [b0, b1]}
    inside = t0 + q * dt
    req = SegmentRequest(times=[t0 - 1.0, inside, t0 + dt + 1.0], frame_shape=(200, 300), seed_time=t0, seed_box=tuple(b0), annotations=ann)
    before, mid, after = GivenSegmenter(tolerance_s=0.0).segment(req)
    assert before == (None, None) and after == (None, None)
    expected_x1 = (1 - q) * b0[0] + q * b1[0]
    assert mid[0][0] == pytest.approx(expected_x1, abs=1e-6)


def test_given_segmenter_uses_masks_at_annotated_times():
    mask = np.zeros((40, 60), bool)
    mask[5:20, 10:30] = True
    ann = {"times": [1.0], "boxes": [None], "masks": [encode_rle(mask)]}
    req = SegmentRequest(times=[1.0], frame_shape=(40, 60), seed_time=1.0, seed_box=(10, 5, 30, 20), annotations=ann)
    [(box, got)] = make_segmenter("given").segment(req)
    assert box == mask_to_box(mask) and mask_iou(got, mask) == 1.0
    with pytest.raises(ValueError, match="needs annotations"):
        GivenSegmenter().segment(SegmentRequest(times=[0.0], frame_shape=(4, 4), seed_time=0.0, seed_box=(0, 0, 2, 2)))


def test_opencv_segmenter_beats_a_static_box(shapes_video, capsys):
    """Mean IoU against exact masks at 1 fps; the baseline holds the seed box still."""
    cv = OpenCVSegmenter()
    if cv.unavailable():
        pytest.skip(cv.unavailable())
    path, truth = shapes_video
    fps = truth["fps"]
    h, w = truth["size"]
    seed_time = 2.0
    out_times = [float(t) for t in range(0, 6)]
    seed_mask = truth["masks"]["target"][int(seed_time * fps)]
    seed_box = mask_to_box(seed_mask)
    req = SegmentRequest(times=out_times, frame_shape=(h, w), seed_time=seed_time, seed_box=seed_box, read_frames=frame_reader(path))
    result = cv.segment(req)
    assert len(result) == len(out_times)
    gts = [truth["masks"]["target"][int(round(t * fps))] for t in out_times]
    ious = [mask_iou(mask, gt) for (_, mask), gt in zip(result, gts)]
    static = [mask_iou(box_to_mask(seed_box, (h, w)), gt) for gt in gts]
    box_ious = [mask_iou(box_to_mask(box, (h, w)) if box else None, box_to_mask(mask_to_box(gt), (h, w))) for (box, _), gt in zip(result, gts)]
    print(f"\nopencv segmenter mean mask IoU {np.mean(ious):.3f} (box IoU {np.mean(box_ious):.3f}); static seed box {np.mean(static):.3f}")
    assert np.mean(ious) > np.mean(static) + 0.2
    assert min(ious) > 0.3  # never lost on this clip


def test_opencv_segmenter_is_deterministic(shapes_video):
    cv = OpenCVSegmenter()
    if cv.unavailable():
        pytest.skip(cv.unavailable())
    path, truth = shapes_video
    seed_box = mask_to_box(truth["masks"]["target"][0])
    req = SegmentRequest(times=[0.0, 1.0, 2.0], frame_shape=truth["size"], seed_time=0.0, seed_box=seed_box, read_frames=frame_reader(path))
    a, b = cv.segment(req), cv.segment(req)
    assert all(x[0] == y[0] and np.array_equal(x[1], y[1]) for x, y in zip(a, b))


def test_sam_reports_missing_weights_cleanly(tmp_path):
    seg = make_segmenter("sam", model=str(tmp_path / "no-such-sam2"))
    reason = seg.unavailable()
    assert reason and ("not on this machine" in reason or "needs torch" in reason or "not usable" in reason)
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    assert "config.json" in Sam2Segmenter(model=str(empty)).unavailable()
    with pytest.raises(SegmenterUnavailable):
        seg.segment(SegmentRequest(times=[0.0], frame_shape=(4, 4), seed_time=0.0, seed_box=(0, 0, 2, 2)))


def test_unknown_segmenter_names_the_choices():
    with pytest.raises(ValueError, match="given, opencv, sam, sam3"):
        make_segmenter("sam3000")


def test_opencv_segmenter_on_the_synthetic_dataset(capsys):
    """Scored against the generator's exact instance masks (synth:tiny): seed = the sample's prompt
    box at its prompt time, masks at 1 fps for 3 s either side."""
    synthetic = pytest.importorskip("vseek_env.data.synthetic")
    cv = OpenCVSegmenter()
    if cv.unavailable():
        pytest.skip(cv.unavailable())
    from vseek_env.data import load_dataset
    from vseek_env.video import open_video

    ds = load_dataset("synth:tiny")
    ious, static = [], []
    for s in ds.samples:
        with open_video(ds.video_path(s)) as video:
            t = s.prompt.time
            times = [float(video.frame_times[video.index_at(x)]) for x in np.arange(max(0.0, t - 3), min(video.duration, t + 3), 1.0)]

            def read(ts, max_pixels, video=video):
                batch = video.read(sorted({video.index_at(x) for x in ts}), max_pixels=max_pixels)
                return batch.frames, batch.times

            req = SegmentRequest(times=times, frame_shape=(video.height, video.width), seed_time=t, seed_box=s.prompt.box, read_frames=read)
            result = cv.segment(req)
        _, gt = synthetic.load_instance_masks(ds.root, s, times)
        for (_, mask), g in zip(result, gt[s.meta["target"]]):
            if g.any():  # visible frames only: the static box cannot say "absent" either
                ious.append(mask_iou(mask, g))
                static.append(mask_iou(box_to_mask(s.prompt.box, g.shape), g))
    print(f"\nsynth:tiny opencv segmenter mean mask IoU {np.mean(ious):.3f} over {len(ious)} frames; static seed box {np.mean(static):.3f}")
    assert np.mean(ious) > np.mean(static) + 0.15


# --------------------------------------------------------------------------- DAVIS measures


def _square(h, w, y, x, s):
    m = np.zeros((h, w), bool)
    m[y : y + s, x : x + s] = True
    return m


@given(y=st.integers(0, 20), x=st.integers(0, 20), s=st.integers(2, 20), dy=st.integers(-3, 3), dx=st.integers(-3, 3))
def test_j_and_f_are_1_on_identity_and_within_0_1(y, x, s, dy, dx):
    a = _square(40, 40, y, x, s)
    b = _square(40, 40, max(0, y + dy), max(0, x + dx), s)
    assert j_measure(a, a) == 1.0 and f_measure(a, a) == 1.0
    assert 0.0 <= j_measure(b, a) <= 1.0 and 0.0 <= f_measure(b, a) <= 1.0
    assert j_measure(b, a) == j_measure(a, b) and f_measure(b, a) == pytest.approx(f_measure(a, b))


def test_f_tolerates_shifts_within_the_davis_bound_and_not_beyond():
    """DAVIS's tolerance is 0.008 of the diagonal: 4 px on 480x854, so a 3 px shift is a perfect
    boundary while J already drops; shifted 12 px sideways, only the top and bottom edges still match,
    and shifted 12 px both ways nothing does."""
    a = _square(480, 854, 100, 100, 200)
    assert f_measure(np.roll(a, 3, axis=1), a) == 1.0 and j_measure(np.roll(a, 3, axis=1), a) < 1.0
    assert f_measure(np.roll(a, 12, axis=1), a) == pytest.approx(0.5, abs=0.03)
    assert f_measure(np.roll(a, (12, 12), axis=(0, 1)), a) < 0.1
    assert f_measure(None, a) == 0.0 and j_measure(None, a) == 0.0
    empty = np.zeros_like(a)
    assert f_measure(None, empty) == 1.0 and j_measure(None, empty) == 1.0


def test_load_masks_checks_the_header_against_the_video(tmp_path):
    np.savez(tmp_path / "x.npz", masks=np.zeros((3, 4, 5), bool))
    assert load_masks(tmp_path / "x.npz", frames=3, size=(4, 5)).shape == (3, 4, 5)
    with pytest.raises(ValueError, match=r"x.npz: masks have shape \(3, 4, 5\), expected \(3, 4, 6\)"):
        load_masks(tmp_path / "x.npz", frames=3, size=(4, 6))
    np.savez(tmp_path / "y.npz", other=np.zeros(3))
    with pytest.raises(ValueError, match="y.npz: not an .npz with a 'masks' array"):
        load_masks(tmp_path / "y.npz", frames=3, size=(4, 5))
    with pytest.raises(FileNotFoundError, match="holds no <name>.mp4"):
        find_sequences(tmp_path)


@pytest.mark.skipif(not DAVIS.is_dir(), reason=f"DAVIS sequences not at {DAVIS} (set VSEEK_DAVIS_DIR)")
def test_opencv_segmenter_follows_real_footage(capsys):
    """Real video (DAVIS car-shadow, first 4 frames of the 6 fps grid): mask propagation stays on the
    car — the old template tracker + box GrabCut scored J 0.33 mean on these sequences."""
    seg = OpenCVSegmenter()
    if seg.unavailable():
        pytest.skip(seg.unavailable())
    [seq] = [s for s in find_sequences(DAVIS) if s.name == "car-shadow"]
    score = evaluate_sequence(seg, seq, fps=6.0, seed="mask", max_frames=4)
    print(f"\ncar-shadow 4 frames: J {score['J']:.3f} F {score['F']:.3f}")
    assert score["J"] > 0.75 and score["F"] > 0.6


# --------------------------------------------------------------------------- SAM 2 / SAM 3, real code paths


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from sam_tiny import save_tiny_sam2, save_tiny_sam3

    root = tmp_path_factory.mktemp("sam")
    return save_tiny_sam2(root / "sam2"), save_tiny_sam3(root / "sam3")


def _noise_reader(h=48, w=64, n=8):
    """A 1 fps clip of seeded noise frames; records which times were read."""
    frames = np.random.default_rng(0).integers(0, 255, (n, h, w, 3), dtype=np.uint8)
    frame_times = np.arange(n, dtype=float)
    calls = {}

    def read(times, max_pixels):
        idx = sorted({int(round(t)) for t in times})
        calls["read"] = [float(frame_times[i]) for i in idx]
        return frames[idx], frame_times[idx]

    return read, calls


def test_sam2_runs_the_real_video_model_from_a_saved_folder(tiny_sam):
    """Sam2VideoModel + Sam2VideoInferenceSession from disk: the seed frame is read even when it is no
    output time, every output time gets a full-size mask, the box prompt is used (another box, other
    masks) and runs are deterministic."""
    folder, _ = tiny_sam
    seg = Sam2Segmenter(model=str(folder))
    assert seg.unavailable() is None
    read, calls = _noise_reader()
    req = SegmentRequest(times=[2.0, 4.0, 6.0], frame_shape=(48, 64), seed_time=5.0, seed_box=(10, 10, 30, 30), read_frames=read)
    out = seg.segment(req)
    assert calls["read"] == [2.0, 4.0, 5.0, 6.0]
    assert len(out) == 3
    for box, mask in out:
        assert (box is None) == (mask is None)
        if mask is not None:
            assert mask.shape == (48, 64) and mask.dtype == bool and mask_to_box(mask) == box
    again = seg.segment(req)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(out, again))
    other = seg.segment(SegmentRequest(times=req.times, frame_shape=(48, 64), seed_time=5.0, seed_box=(40, 5, 62, 45), read_frames=read))
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(out, other))


def test_sam3_runs_the_real_text_prompted_video_model(tiny_sam):
    """Sam3VideoModel prompted with the tag: SAM 3's detector and tracker run on every frame; the
    instance overlapping the seed box is the target; a request without a tag is refused."""
    _, folder = tiny_sam
    seg = Sam3Segmenter(model=str(folder), min_seed_iou=0.0)
    assert seg.unavailable() is None
    read, calls = _noise_reader(n=3)
    req = SegmentRequest(times=[0.0, 2.0], frame_shape=(48, 64), seed_time=1.0, seed_box=(0, 0, 64, 48), read_frames=read,
                         text="the red ball")
    out = seg.segment(req)
    assert calls["read"] == [0.0, 1.0, 2.0] and len(out) == 2
    assert any(mask is not None for _, mask in out)
    for box, mask in out:
        if mask is not None:
            assert mask.shape == (48, 64) and mask_to_box(mask) == box
    with pytest.raises(ValueError, match="text tag"):
        seg.segment(SegmentRequest(times=[0.0], frame_shape=(48, 64), seed_time=0.0, seed_box=(0, 0, 5, 5), read_frames=read))


def test_sam3_picks_the_instance_under_the_seed_box():
    a, b = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    a[0:5, 0:5], b[10:20, 10:20] = True, True
    seg = Sam3Segmenter(model="unused")
    assert seg._pick({3: a, 7: b}, (10, 10, 20, 20)) == 7
    assert seg._pick({3: a, 7: b}, (0, 0, 5, 5)) == 3
    assert seg._pick({3: a}, (10, 10, 20, 20)) is None  # nothing under the box: not found


def test_auto_prefers_sam_weights_on_disk(tiny_sam, tmp_path):
    sam2, sam3 = tiny_sam
    assert default_segmenter(annotated=False, sam_model=str(sam2), sam3_model=str(sam3)) == "sam3"
    assert default_segmenter(annotated=False, sam_model=str(sam2), sam3_model=str(tmp_path / "none")) == "sam"
    assert default_segmenter(annotated=False, sam_model=str(tmp_path / "none")) == "opencv"
    assert default_segmenter(annotated=True, sam_model=str(sam2)) == "given"


def test_sam3_reports_missing_weights_cleanly(tmp_path):
    reason = Sam3Segmenter(model=str(tmp_path / "none")).unavailable()
    assert "SAM 3 weights folder" in reason and "--segmenter opencv" in reason
    with pytest.raises(SegmenterUnavailable):
        Sam3Segmenter(model=str(tmp_path / "none")).segment(
            SegmentRequest(times=[0.0], frame_shape=(4, 4), seed_time=0.0, seed_box=(0, 0, 2, 2), text="a b c"))
