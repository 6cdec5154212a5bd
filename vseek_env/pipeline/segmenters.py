"""G3 segmenters: the target's mask at each requested time, from a seed box.

One interface (:class:`Segmenter`), three implementations, chosen by name with
:func:`make_segmenter`:

``given``   the source's own annotations (boxes and/or RLE masks at known times); boxes between
            annotated times are interpolated linearly, nothing is extrapolated.
``opencv``  no model weights: a template-matching tracker follows the seed box through frames decoded at
            ``track_fps`` (forward and backward from the seed frame), then GrabCut cuts the target
            out of the tracked box at each requested time. Needs ``opencv-python-headless``
            (``pip install 'vseek-env[pipeline]'``).
``sam``     a SAM-2 video model through transformers (``Sam2VideoModel`` + ``Sam2VideoProcessor``),
            prompted with the seed box and propagated both ways. Used only when the weights are
            on disk (a local folder or the Hugging Face cache); :meth:`Segmenter.unavailable`
            says why not otherwise.

A result is one ``(box, mask)`` per requested time in original-video pixels; ``(None, None)``
means the target is not visible then, and ``mask`` may be ``None`` when only a box is known.

Example:
    >>> seg = make_segmenter("given")
    >>> req = SegmentRequest(times=[0.0, 1.0], frame_shape=(90, 160), seed_time=0.0,
    ...                      seed_box=(10, 10, 40, 40), annotations={"times": [0.0, 2.0],
    ...                      "boxes": [[10, 10, 40, 40], [30, 10, 60, 40]]})
    >>> [box for box, _ in seg.segment(req)]
    [(10.0, 10.0, 40.0, 40.0), (20.0, 10.0, 50.0, 40.0)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vseek_env.masks import Box, clip_box, decode_rle, ellipse_mask, mask_to_box

__all__ = [
    "SEGMENTERS",
    "Segment",
    "SegmentRequest",
    "Segmenter",
    "SegmenterUnavailable",
    "GivenSegmenter",
    "OpenCVSegmenter",
    "Sam2Segmenter",
    "make_segmenter",
    "mask_iou",
]

Segment = tuple[Box | None, np.ndarray | None]
FrameReader = Callable[[Sequence[float], int | None], tuple[np.ndarray, np.ndarray]]


class SegmenterUnavailable(RuntimeError):
    """The chosen segmenter cannot run here (missing package or weights); the message says what to do."""


@dataclass
class SegmentRequest:
    """What a segmenter gets for one sample.

    Attributes:
        times: output times (s), increasing — the 1 fps grid of the target's window.
        frame_shape: (H, W) of the original video; masks are returned at this size.
        seed_time, seed_box: where the target is known (original pixels).
        seed_mask: its mask at ``seed_time`` when known.
        read_frames: ``read_frames(times, max_pixels) -> (frames (N, h, w, 3), true_times)``;
            ``max_pixels=None`` decodes at full resolution.
        annotations: the source's ``{"times", "boxes", "masks"}`` (original pixels), if any.
    """

    times: Sequence[float]
    frame_shape: tuple[int, int]
    seed_time: float
    seed_box: Box
    seed_mask: np.ndarray | None = None
    read_frames: FrameReader | None = None
    annotations: dict | None = None


class Segmenter:
    """Base class: ``segment(request) -> [(box, mask), ...]`` aligned with ``request.times``."""

    name = "base"

    def unavailable(self) -> str | None:
        """``None`` when the segmenter can run, else the reason and the fix."""
        return None

    def segment(self, request: SegmentRequest) -> list[Segment]:
        raise NotImplementedError


def mask_iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Intersection over union of two bool masks (``None`` = empty); two empty masks give 1.0.

    >>> m = np.zeros((4, 4), bool); m[:2] = True
    >>> mask_iou(m, m), mask_iou(m, ~m), mask_iou(None, None)
    (1.0, 0.0, 1.0)
    """
    if a is None and b is None:
        return 1.0
    if a is None or b is None:
        return 0.0
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum()) / union


# --------------------------------------------------------------------------- given annotations


class GivenSegmenter(Segmenter):
    """Masks and boxes from the source's annotations (no decoding)."""

    name = "given"

    def __init__(self, tolerance_s: float = 0.5) -> None:
        self.tolerance_s = tolerance_s

    def segment(self, request: SegmentRequest) -> list[Segment]:
        ann = request.annotations or {}
        times = [float(t) for t in ann.get("times") or ()]
        boxes = [tuple(float(v) for v in b) if b is not None else None for b in ann.get("boxes") or ()]
        masks = list(ann.get("masks") or [None] * len(times))
        if not times:
            raise ValueError("the 'given' segmenter needs annotations (times + boxes or masks); use --segmenter opencv")
        order = np.argsort(times)
        times = [times[i] for i in order]
        boxes = [boxes[i] if i < len(boxes) else None for i in order]
        masks = [masks[i] if i < len(masks) else None for i in order]
        shape = request.frame_shape
        out: list[Segment] = []
        for t in request.times:
            k = int(np.argmin([abs(t - a) for a in times]))
            if abs(times[k] - t) <= self.tolerance_s:
                mask = decode_rle(masks[k]) if masks[k] else None
                box = boxes[k] if boxes[k] is not None else (mask_to_box(mask) if mask is not None else None)
                out.append((clip_box(box, shape) if box else None, mask if box else None))
                continue
            right = next((i for i, a in enumerate(times) if a > t), None)
            if right is None or right == 0 or boxes[right] is None or boxes[right - 1] is None:
                out.append((None, None))
                continue
            t0, t1 = times[right - 1], times[right]
            w = (t - t0) / (t1 - t0)
            box = tuple((1 - w) * a + w * b for a, b in zip(boxes[right - 1], boxes[right]))
            out.append((clip_box(box, shape), None))
        return out


# --------------------------------------------------------------------------- OpenCV tracker + GrabCut


def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


@dataclass
class OpenCVSegmenter(Segmenter):
    """A tracker from the seed box + GrabCut in the tracked box (no model weights).

    The default tracker is normalised cross-correlation template matching (``cv2.matchTemplate``),
    which is deterministic; ``tracker="mil"`` uses OpenCV's MIL tracker (the only weight-free one in
    opencv-python-headless 5), whose boxes vary from run to run.

    Args:
        tracker: ``"template"`` or ``"mil"``.
        track_fps: rate at which frames are decoded for tracking (the tracker needs small steps).
        work_pixels: pixel budget of the frames it works on (masks are scaled back up).
        search: how far (in template sizes) around the last position the template is looked for.
        min_score: below this normalised cross-correlation the target counts as lost.
        grabcut_iters: GrabCut iterations per output frame.
        pad: the GrabCut rectangle is the tracked box grown by this fraction per side.
    """

    tracker: str = "template"
    track_fps: float = 5.0
    search: float = 1.0
    min_score: float = 0.0  # NCC at or below 0: nothing like the target in reach, report it absent
    work_pixels: int = 320 * 240
    grabcut_iters: int = 3
    pad: float = 0.15
    name: str = field(default="opencv", init=False)

    def unavailable(self) -> str | None:
        cv2 = _cv2()
        if cv2 is None:
            return "the 'opencv' segmenter needs OpenCV: pip install 'vseek-env[pipeline]' (opencv-python-headless)"
        if self.tracker not in ("template", "mil"):
            return f"unknown tracker {self.tracker!r}; use 'template' or 'mil'"
        if self.tracker == "mil" and not hasattr(cv2, "TrackerMIL_create"):
            return f"OpenCV {cv2.__version__} has no TrackerMIL; install opencv-python-headless>=4.5.1"
        return None

    def segment(self, request: SegmentRequest) -> list[Segment]:
        cv2 = _cv2()
        cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's RNG: same input, same masks
        if request.read_frames is None:
            raise ValueError("the 'opencv' segmenter needs request.read_frames")
        H, W = request.frame_shape
        out_times = [float(t) for t in request.times]
        lo, hi = min(out_times + [request.seed_time]), max(out_times + [request.seed_time])
        step = 1.0 / self.track_fps
        grid = list(np.arange(lo, hi + 1e-9, step)) + out_times + [float(request.seed_time)]
        frames, true_times = request.read_frames(sorted(set(round(t, 6) for t in grid)), self.work_pixels)
        # several grid times can land on one frame; keep unique frames in time order
        true_times, first = np.unique(np.asarray(true_times, float), return_index=True)
        frames = frames[first]
        h, w = frames.shape[1:3]
        sx, sy = w / W, h / H
        bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
        seed = int(np.argmin(np.abs(true_times - request.seed_time)))
        x1, y1, x2, y2 = request.seed_box
        seed_box = (x1 * sx, y1 * sy, x2 * sx, y2 * sy)
        boxes: list[Box | None] = [None] * len(frames)
        boxes[seed] = seed_box
        for direction in (1, -1):
            step_fn = self._tracker(bgr[seed], seed_box)
            i = seed + direction
            while 0 <= i < len(frames):
                box = step_fn(bgr[i])
                if box is None:
                    break  # lost: the target is reported absent from here on in this direction
                boxes[i] = box
                i += direction
        results: list[Segment] = []
        for t in out_times:
            k = int(np.argmin(np.abs(true_times - t)))
            box = boxes[k]
            if box is None:
                results.append((None, None))
                continue
            small = self._grabcut(frames[k], box)
            mask = np.asarray(
                cv2.resize(small.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST), bool
            )
            mbox = mask_to_box(mask)
            if mbox is None:
                results.append((None, None))
                continue
            results.append((mbox, mask))
        return results

    def _tracker(self, frame: np.ndarray, box: Box) -> Callable[[np.ndarray], Box | None]:
        """A stateful ``step(frame) -> box | None`` following ``box`` from ``frame`` on."""
        cv2 = _cv2()
        h, w = frame.shape[:2]
        x1, y1, x2, y2 = box
        rect = (int(round(x1)), int(round(y1)), max(2, int(round(x2 - x1))), max(2, int(round(y2 - y1))))
        if self.tracker == "mil":
            mil = cv2.TrackerMIL_create()
            mil.init(frame, rect)

            def step_mil(image: np.ndarray) -> Box | None:
                ok, (bx, by, bw, bh) = mil.update(image)
                return clip_box((bx, by, bx + bw, by + bh), (h, w)) if ok else None

            return step_mil
        rx, ry, rw, rh = rect
        seed_patch = frame[max(0, ry) : ry + rh, max(0, rx) : rx + rw].astype(np.float32)
        rw, rh = seed_patch.shape[1], seed_patch.shape[0]
        state = {"x": float(max(0, rx)), "y": float(max(0, ry)), "template": seed_patch}

        def step_ncc(image: np.ndarray) -> Box | None:
            # search a window around the last position; the template blends the seed's look with
            # the latest one, so it follows slow appearance change without drifting off the target
            reach = self.search * max(rw, rh)
            sx1, sy1 = int(max(0, state["x"] - reach)), int(max(0, state["y"] - reach))
            sx2, sy2 = int(min(w, state["x"] + rw + reach)), int(min(h, state["y"] + rh + reach))
            if sx2 - sx1 < rw or sy2 - sy1 < rh:
                return None
            search = image[sy1:sy2, sx1:sx2].astype(np.float32)
            scores = cv2.matchTemplate(search, state["template"], cv2.TM_CCOEFF_NORMED)
            _, best, _, (bx, by) = cv2.minMaxLoc(scores)
            if not np.isfinite(best) or best < self.min_score:
                return None
            state["x"], state["y"] = float(sx1 + bx), float(sy1 + by)
            patch = image[sy1 + by : sy1 + by + rh, sx1 + bx : sx1 + bx + rw].astype(np.float32)
            state["template"] = 0.5 * seed_patch + 0.5 * patch
            return clip_box((state["x"], state["y"], state["x"] + rw, state["y"] + rh), (h, w))

        return step_ncc

    def _grabcut(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """Foreground inside ``box`` (grown by ``pad``); the box's inscribed ellipse if GrabCut fails."""
        cv2 = _cv2()
        h, w = frame.shape[:2]
        x1, y1, x2, y2 = box
        px, py = self.pad * (x2 - x1), self.pad * (y2 - y1)
        rx1, ry1 = max(1, int(math.floor(x1 - px))), max(1, int(math.floor(y1 - py)))
        rx2, ry2 = min(w - 1, int(math.ceil(x2 + px))), min(h - 1, int(math.ceil(y2 + py)))
        fallback = ellipse_mask(box, (h, w))
        if rx2 - rx1 < 4 or ry2 - ry1 < 4:
            return fallback
        gc = np.zeros((h, w), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)
        try:
            cv2.grabCut(
                cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), gc, (rx1, ry1, rx2 - rx1, ry2 - ry1), bgd, fgd,
                self.grabcut_iters, cv2.GC_INIT_WITH_RECT,
            )
        except cv2.error:
            return fallback
        fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
        if n <= 1:
            return fallback
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        fg = labels == largest
        box_area = max(1.0, (x2 - x1) * (y2 - y1))
        # GrabCut that keeps almost nothing or floods the rectangle has failed: use the box's shape
        if not 0.15 * box_area <= fg.sum() <= 1.3 * box_area:
            return fallback
        return fg


# --------------------------------------------------------------------------- SAM-2 via transformers


@dataclass
class Sam2Segmenter(Segmenter):
    """SAM-2 video segmentation through ``transformers`` (``Sam2VideoModel``/``Sam2VideoProcessor``).

    Args:
        model: a local folder with the weights, or a Hub id already in the local cache
            (nothing is downloaded: ``local_files_only=True``).
        device: torch device string.
    """

    model: str = "facebook/sam2.1-hiera-tiny"
    device: str = "cpu"
    name: str = field(default="sam", init=False)

    def unavailable(self) -> str | None:
        # the cheap checks (where are the weights?) first: importing torch takes seconds
        path = Path(self.model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                return f"SAM-2 folder {self.model} has no config.json; point --sam-model at a saved Sam2VideoModel"
        elif path.is_absolute() or self.model.startswith((".", "~")) or self.model.count("/") > 1:
            return f"SAM-2 weights folder {self.model} is not on this machine; pass an existing folder or use --segmenter opencv"
        else:
            try:
                from huggingface_hub import try_to_load_from_cache

                cached = try_to_load_from_cache(self.model, "config.json")
            except ImportError:
                return "huggingface_hub is missing; pass --sam-model LOCAL_FOLDER"
            except Exception as exc:  # an ill-formed id raises a validation error
                return f"SAM-2 weights {self.model!r} are not usable: {exc}"
            if not isinstance(cached, str):
                return (
                    f"SAM-2 weights {self.model!r} are not on this machine (no local folder, not in the Hugging Face cache); "
                    "download them (huggingface-cli download facebook/sam2.1-hiera-tiny) or use --segmenter opencv"
                )
        try:
            import torch  # noqa: F401
            from transformers import Sam2VideoModel, Sam2VideoProcessor  # noqa: F401
        except ImportError as exc:
            return f"the 'sam' segmenter needs torch and transformers with SAM-2 video support ({exc}); pip install 'vseek-env[hf]'"
        return None

    def _load(self):
        if getattr(self, "_loaded", None) is None:
            from transformers import Sam2VideoModel, Sam2VideoProcessor

            processor = Sam2VideoProcessor.from_pretrained(self.model, local_files_only=True)
            model = Sam2VideoModel.from_pretrained(self.model, local_files_only=True).to(self.device).eval()
            self._loaded = (processor, model)
        return self._loaded

    def segment(self, request: SegmentRequest) -> list[Segment]:
        why = self.unavailable()
        if why:
            raise SegmenterUnavailable(why)
        import torch

        processor, model = self._load()
        # Seed on the frame where the box is known, even when it is not an output time (as OpenCV's
        # path does): a box put on another frame would mark whatever is there instead.
        out_times = [float(t) for t in request.times]
        frames, times = request.read_frames(out_times + [float(request.seed_time)], None)
        times = np.asarray(times, float)
        seed = int(np.argmin(np.abs(times - request.seed_time)))
        session = processor.init_video_session(video=list(frames), inference_device=self.device)
        processor.add_inputs_to_inference_session(
            inference_session=session, frame_idx=seed, obj_ids=1, input_boxes=[[list(request.seed_box)]]
        )
        masks: dict[int, np.ndarray] = {}
        with torch.inference_mode():
            model(inference_session=session, frame_idx=seed)
            for reverse in (False, True):
                for output in model.propagate_in_video_iterator(session, start_frame_idx=seed, reverse=reverse):
                    full = processor.post_process_masks(
                        [output.pred_masks], original_sizes=[[session.video_height, session.video_width]], binarize=True
                    )[0]
                    masks[int(output.frame_idx)] = np.asarray(full.reshape(-1, *full.shape[-2:])[0].cpu().numpy(), bool)
        results: list[Segment] = []
        for t in out_times:
            mask = masks.get(int(np.argmin(np.abs(times - t))))
            box = mask_to_box(mask) if mask is not None else None
            results.append((box, mask) if box is not None else (None, None))
        return results


SEGMENTERS = ("given", "opencv", "sam")


def make_segmenter(name: str, **kwargs) -> Segmenter:
    """A segmenter by name (:data:`SEGMENTERS`); keyword arguments go to its constructor."""
    classes = {"given": GivenSegmenter, "opencv": OpenCVSegmenter, "sam": Sam2Segmenter}
    if name not in classes:
        raise ValueError(f"unknown segmenter {name!r}; use one of {', '.join(SEGMENTERS)}")
    return classes[name](**kwargs)

