"""G3 segmenters: the interface, the given-annotation path, the offline OpenCV tracker scored against
exact masks of generated videos, and SAM's clean unavailability without weights.

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
    SegmenterUnavailable,
    SegmentRequest,
    make_segmenter,
    mask_iou,
)

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
    with pytest.raises(ValueError, match="given, opencv, sam"):
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


def test_sam_seeds_on_the_seed_frame_even_when_it_is_no_output_time(monkeypatch):
    """The SAM-2 path with a stand-in model: the box goes on the frame at seed_time, which is read
    for that purpose and left out of the outputs."""
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    H, W = 8, 8
    frame_times = np.arange(10, dtype=float)  # 1 fps video, frame i shows the target at column i
    calls = {}

    def read_frames(times, max_pixels):
        idx = sorted({int(round(t)) for t in times})
        calls["read"] = [float(frame_times[i]) for i in idx]
        return np.zeros((len(idx), H, W, 3), np.uint8), frame_times[idx]

    class Processor:
        def init_video_session(self, video, inference_device):
            calls["n_frames"] = len(video)
            return SimpleNamespace(video_height=H, video_width=W)

        def add_inputs_to_inference_session(self, inference_session, frame_idx, obj_ids, input_boxes):
            calls["seed_idx"] = frame_idx

        def post_process_masks(self, masks, original_sizes, binarize):
            return masks

    class Model:
        def __call__(self, inference_session, frame_idx):
            pass

        def propagate_in_video_iterator(self, session, start_frame_idx, reverse):
            order = range(start_frame_idx, -1, -1) if reverse else range(start_frame_idx, calls["n_frames"])
            for i in order:
                mask = torch.zeros(1, 1, H, W, dtype=torch.bool)
                col = int(calls["read"][i]) // 2
                mask[..., 2:4, col: col + 2] = True
                yield SimpleNamespace(frame_idx=i, pred_masks=mask)

    seg = Sam2Segmenter(model="stand-in")
    monkeypatch.setattr(Sam2Segmenter, "unavailable", lambda self: None)
    monkeypatch.setattr(Sam2Segmenter, "_load", lambda self: (Processor(), Model()))
    request = SegmentRequest(times=[2.0, 4.0, 6.0], frame_shape=(H, W), seed_time=5.0, seed_box=(2, 2, 4, 4),
                             read_frames=read_frames)
    out = seg.segment(request)
    assert calls["read"] == [2.0, 4.0, 5.0, 6.0] and calls["read"][calls["seed_idx"]] == 5.0
    assert len(out) == 3  # the seed frame is not an output
    assert [box[0] for box, _ in out] == [1.0, 2.0, 3.0]  # each output time gets its own frame's mask
