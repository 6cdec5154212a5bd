"""Score segmenters on DAVIS-style sequences: region similarity J and boundary F-measure.

A DAVIS folder holds ``<name>.mp4`` and ``<name>.npz`` (``masks``: bool ``(frames, H, W)``, frame
``i`` of the video is mask ``i``), as ``/work/shared/data/davis`` does. Each sequence is seeded with
the true mask (or only its box) of frame 0 and scored at ``fps`` on every later frame of that grid,
as DAVIS-2016's semi-supervised protocol does (the seed frame itself is not scored).

J is the masks' intersection over union; F is DAVIS's boundary F-measure: the boundary pixels of
each mask are matched to the other's within ``0.008`` of the image diagonal, ``F = 2PR / (P + R)``
(Perazzi et al., CVPR 2016; the reference implementation's ``seg2bmap`` + disk dilation).

Example:
    >>> a = np.zeros((20, 20), bool); a[5:15, 5:15] = True
    >>> j_measure(a, a), f_measure(a, a), round(j_measure(a, np.roll(a, 2, axis=1)), 3)
    (1.0, 1.0, 0.667)
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from vseek_env.masks import mask_to_box
from vseek_env.pipeline.segmenters.base import Segmenter, SegmentRequest, mask_iou

__all__ = ["DavisSequence", "find_sequences", "load_masks", "j_measure", "f_measure", "boundary_map",
           "evaluate_sequence", "static_box_masks"]

BOUNDARY_TOLERANCE = 0.008  # DAVIS: fraction of the image diagonal


def j_measure(pred: np.ndarray | None, truth: np.ndarray) -> float:
    """Region similarity: IoU, with an absent prediction as an empty mask (two empty masks: 1)."""
    return mask_iou(pred if pred is not None else np.zeros_like(truth), truth)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary of a bool mask (DAVIS's ``seg2bmap`` at the mask's own size)."""
    seg = np.asarray(mask, bool)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1], south[:-1, :], south_east[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    b[-1, :] = seg[-1, :] ^ east[-1, :]
    b[:, -1] = seg[:, -1] ^ south[:, -1]
    b[-1, -1] = False
    return b


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.uint8)
    return cv2.dilate(mask.astype(np.uint8), disk).astype(bool)


def f_measure(pred: np.ndarray | None, truth: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """DAVIS's boundary F-measure of ``pred`` against ``truth`` (absent prediction = empty mask)."""
    pred = np.zeros_like(truth, bool) if pred is None else np.asarray(pred, bool)
    radius = int(np.ceil(tolerance * np.linalg.norm(truth.shape)))
    pb, tb = boundary_map(pred), boundary_map(truth)
    n_p, n_t = int(pb.sum()), int(tb.sum())
    if n_p == 0 and n_t == 0:
        return 1.0
    if n_p == 0 or n_t == 0:
        return 0.0
    precision = float((pb & _dilate(tb, radius)).sum()) / n_p
    recall = float((tb & _dilate(pb, radius)).sum()) / n_t
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class DavisSequence:
    """One sequence: its video and its masks file."""

    name: str
    video: Path
    masks: Path


def find_sequences(folder: str | Path) -> list[DavisSequence]:
    """Every ``<name>.mp4`` with a ``<name>.npz`` beside it, sorted by name.

    Raises:
        FileNotFoundError: the folder does not exist or holds no such pair.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"DAVIS folder {root} does not exist; pass the folder holding <name>.mp4 + <name>.npz")
    seqs = [DavisSequence(p.stem, p, p.with_suffix(".npz")) for p in sorted(root.glob("*.mp4")) if p.with_suffix(".npz").is_file()]
    if not seqs:
        raise FileNotFoundError(f"{root} holds no <name>.mp4 with a <name>.npz of masks beside it")
    return seqs


def load_masks(path: str | Path, *, frames: int, size: tuple[int, int]) -> np.ndarray:
    """The ``masks`` array of a sequence, checked against the video's frame count and ``size = (H, W)``
    from the file's header before anything is allocated."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf, zf.open("masks.npy") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(fh)  # the header only: nothing allocated yet
    except (KeyError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not an .npz with a 'masks' array ({exc})") from None
    if len(shape) != 3 or tuple(shape[1:]) != tuple(size) or shape[0] != frames:
        raise ValueError(f"{path}: masks have shape {shape}, expected ({frames}, {size[0]}, {size[1]}) to match the video")
    if dtype.kind not in "bui":
        raise ValueError(f"{path}: masks must be bool or integer, got {dtype}")
    with np.load(path) as data:
        return np.asarray(data["masks"]).astype(bool, copy=False)


def static_box_masks(box, shape: tuple[int, int], n: int) -> list[np.ndarray]:
    """The baseline: the seed box held still, as a mask, ``n`` times."""
    from vseek_env.masks import box_to_mask

    return [box_to_mask(box, shape)] * n


def evaluate_sequence(
    segmenter: Segmenter | Callable[[SegmentRequest], list], seq: DavisSequence, *, fps: float = 6.0, seed: str = "mask",
    max_frames: int | None = None,
) -> dict:
    """Seed ``segmenter`` with frame 0's true mask (``seed="mask"``) or only its box (``"box"``), ask
    for the masks of the later frames on the ``fps`` grid (the first ``max_frames`` of them when
    given), and score them: ``{"J", "F", "frames", "seconds", "ms_per_frame", "J_per_frame"}``."""
    from vseek_env.video import open_video

    if seed not in ("mask", "box"):
        raise ValueError(f"seed must be 'mask' or 'box', got {seed!r}")
    with open_video(seq.video) as video:
        truth = load_masks(seq.masks, frames=video.num_frames, size=(video.height, video.width))
        step = max(1, int(round(video.fps / fps))) if video.fps else 1
        scored = list(range(step, video.num_frames, step))[: max_frames or None]
        if not scored:
            raise ValueError(f"{seq.video}: too short to score at {fps} fps")
        seed_box = mask_to_box(truth[0])
        if seed_box is None:
            raise ValueError(f"{seq.masks}: frame 0's mask is empty; the target must be visible on the seed frame")

        def read_frames(times, max_pixels):
            batch = video.read(sorted({video.index_at(float(t)) for t in times}), max_pixels=max_pixels)
            return batch.frames, batch.times

        request = SegmentRequest(
            times=[float(video.frame_times[i]) for i in scored], frame_shape=(video.height, video.width),
            seed_time=float(video.frame_times[0]), seed_box=seed_box, seed_mask=truth[0] if seed == "mask" else None,
            read_frames=read_frames, text=seq.name.replace("-", " "),
        )
        run = segmenter.segment if isinstance(segmenter, Segmenter) else segmenter
        start = time.perf_counter()
        result = run(request)
        seconds = time.perf_counter() - start
    js = [j_measure(mask, truth[i]) for (_, mask), i in zip(result, scored)]
    fs = [f_measure(mask, truth[i]) for (_, mask), i in zip(result, scored)]
    return {
        "J": float(np.mean(js)), "F": float(np.mean(fs)), "frames": len(scored), "seconds": round(seconds, 3),
        "ms_per_frame": round(1000 * seconds / len(scored), 1), "J_per_frame": [round(j, 4) for j in js],
    }
