"""Scenes of the synthetic benchmark: layout, motions, transient events, rendering, MP4 output.

A scene is a plain JSON-able *spec* (``dict``): frame size, fps, frame count, background seed,
instances (shape, colour, texture, size, grid cell, motion segments) and events. Everything else —
paths, frames, exact per-frame masks and boxes — is a pure function of the spec, so masks are never
stored: :func:`SceneRenderer.masks_at` recomputes them on demand.

Layout. The frame is a grid of cells (3x2 or 4x2); each instance lives in its own cell and its
centre moves only inside the cell shrunk by ``INSET * size`` on every side, which leaves room for a
jump, a growth or a companion without ever touching another instance. Instances only overlap when an
event says so (an occluding panel).

Motions (per instance, piecewise): ``linear`` (constant velocity), ``stop`` (velocity 0), ``turn``
(a new heading), with ``bounce`` (reflection) at the walls of the free region. Speeds are at most
``MAX_SPEED_PER_GAP * size`` per overview gap, so between two frames of the 16-frame overview an
object drifts by well under half its size.

Events (transient; an instance is back to normal when they end):

============  =================================================================================
``flash``     the instance shows another colour (``color``; ``white`` included) — colour change
``dart``      it jumps ``DART * size`` towards ``direction`` and comes back
``grow``      it scales up by ``1 + GROW`` and back
``hide``      a dark panel covers it (occlusion; its visible mask is empty meanwhile)
``contact``   instance ``partner`` (a neighbour) comes to touch it and goes back
``appear``    companion instance ``partner`` enters next to it on side ``direction``, then leaves
============  =================================================================================

Frame ``f`` is shown from ``f / fps`` seconds (PTS = f in a 1/fps time base); event ``[f0, f1)``
covers frames ``f0 .. f1-1``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from vseek_env.data.synth.palette import (
    ALL_COLORS,
    OCCLUDER,
    TEXTURE_SHADE,
    shape_mask,
    texture_factor,
)

INSET = 1.85  # free region = cell shrunk by INSET * size (centre coordinates)
DART = 1.3  # jump distance in sizes
GROW = 0.6  # extra scale at the peak of a growth
CONTACT_GAP = 0.12  # gap (in sizes) left between touching instances
COMPANION_SCALE = 0.8
MAX_SPEED_PER_GAP = 0.22
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SIDES: dict[str, str] = {"left": "left", "right": "right", "up": "above", "down": "below"}


def overview_indices(n_frames: int, fps: float, n: int = 16) -> list[int]:
    """Frames of the env's uniform overview: the frame shown at ``(i + 0.5) * duration / n``.

    Mirrors :meth:`vseek_env.video.Video.uniform_indices` for a constant-rate video whose frame
    ``f`` has PTS ``f / fps`` and whose duration is ``n_frames / fps``.
    """
    times = np.arange(n_frames) / fps
    duration = n_frames / fps
    n = max(1, min(int(n), n_frames))
    centres = (np.arange(n) + 0.5) * duration / n
    idx = [min(max(int(np.searchsorted(times, t + 1e-9, side="right")) - 1, 0), n_frames - 1) for t in centres]
    return sorted(set(idx))


def _alpha(f: int, f0: int, f1: int, ramp: int) -> float:
    if f < f0 or f >= f1:
        return 0.0
    return min(1.0, (f - f0 + 1) / (ramp + 1), (f1 - f) / (ramp + 1))


def make_background(width: int, height: int, seed: int) -> np.ndarray:
    """A static, low-saturation textured background (value ~0.3-0.58)."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 1, (max(2, height // 40), max(2, width // 40))).astype(np.float32)
    smooth = np.asarray(Image.fromarray((low * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC), np.float32) / 255.0
    base = 78.0 + 62.0 * smooth
    base += rng.normal(0, 4.0, (height, width)).astype(np.float32)
    tile = int(rng.integers(24, 48))
    yy, xx = np.mgrid[0:height, 0:width]
    base[(xx % tile == 0) | (yy % tile == 0)] -= 12.0
    tint = 1.0 + rng.uniform(-0.07, 0.07, 3).astype(np.float32)
    img = np.clip(base[:, :, None] * tint[None, None, :], 0, 255).astype(np.uint8)
    return img


class SceneRenderer:
    """Renders frames and exact masks of one scene spec (see the module docstring)."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.width, self.height = int(spec["width"]), int(spec["height"])
        self.fps = int(spec["fps"])
        self.n_frames = int(spec["n_frames"])
        self.instances = spec["instances"]
        self.events = spec["events"]
        self.background = make_background(self.width, self.height, int(spec["background_seed"]))
        self.paths = {inst["id"]: self._path(inst) for inst in self.instances if not inst.get("companion")}
        self._by_id = {inst["id"]: inst for inst in self.instances}

    # -- motion -----------------------------------------------------------------------------------
    def _path(self, inst: dict) -> np.ndarray:
        """(n_frames, 2) centre positions from the motion segments, reflecting at the region walls."""
        x0, y0, x1, y1 = inst["region"]
        pos = np.array(inst["start"], dtype=np.float64)
        segs = sorted(inst["motion"], key=lambda s: s["frame"])
        out = np.zeros((self.n_frames, 2))
        k, vel = 0, np.zeros(2)
        for f in range(self.n_frames):
            while k < len(segs) and segs[k]["frame"] <= f:
                vel = np.array(segs[k]["velocity"], dtype=np.float64) / self.fps
                k += 1
            out[f] = pos
            pos = pos + vel
            for axis, (lo, hi) in enumerate(((x0, x1), (y0, y1))):
                if pos[axis] < lo:
                    pos[axis] = 2 * lo - pos[axis]
                    vel[axis] = -vel[axis]
                elif pos[axis] > hi:
                    pos[axis] = 2 * hi - pos[axis]
                    vel[axis] = -vel[axis]
                pos[axis] = min(max(pos[axis], lo), hi)
        return out

    # -- state --------------------------------------------------------------------------------------
    def states(self, f: int) -> tuple[list[dict], list[tuple[int, int, int, int]]]:
        """Drawable states at frame ``f`` (draw order) and the occluding panels ``(x1, y1, x2, y2)``."""
        st: dict[int, dict] = {}
        for inst in self.instances:
            if inst.get("companion"):
                continue
            st[inst["id"]] = {"id": inst["id"], "pos": self.paths[inst["id"]][f].copy(), "scale": 1.0, "color": inst["color"]}
        panels: list[tuple[int, int, int, int]] = []
        active = [e for e in self.events if e["f0"] <= f < e["f1"]]
        for e in active:
            s = st[e["inst"]]
            size = self._by_id[e["inst"]]["size"]
            if e["kind"] == "flash":
                s["color"] = e["color"]
            elif e["kind"] == "dart":
                a = _alpha(f, e["f0"], e["f1"], 1)
                dx, dy = DIRECTIONS[e["direction"]]
                s["pos"] += a * DART * size * np.array([dx, dy], dtype=np.float64)
            elif e["kind"] == "grow":
                s["scale"] = 1.0 + GROW * _alpha(f, e["f0"], e["f1"], 1)
        for e in active:  # events that place one instance relative to another
            tgt = st[e["inst"]]
            tsize = self._by_id[e["inst"]]["size"]
            if e["kind"] == "contact":
                partner = self._by_id[e["partner"]]
                p = st[e["partner"]]
                dx, dy = DIRECTIONS[e["direction"]]  # side of the target the partner comes to
                half = 0.5 * (tsize + partner["size"]) + CONTACT_GAP * min(tsize, partner["size"])
                goal = tgt["pos"] + half * np.array([dx, dy], dtype=np.float64)
                ramp = max(1, int(0.28 * (e["f1"] - e["f0"])))
                p["pos"] = p["pos"] + _alpha(f, e["f0"], e["f1"], ramp) * (goal - p["pos"])
            elif e["kind"] == "appear":
                comp = self._by_id[e["partner"]]
                dx, dy = DIRECTIONS[e["direction"]]
                half = 0.5 * (tsize + comp["size"]) + 2 * CONTACT_GAP * tsize
                st[comp["id"]] = {"id": comp["id"], "pos": tgt["pos"] + half * np.array([dx, dy], dtype=np.float64),
                                  "scale": 1.0, "color": comp["color"]}
            elif e["kind"] == "hide":
                side = 1.6 * tsize
                cx, cy = tgt["pos"]
                panels.append((int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(cx + side / 2)), int(round(cy + side / 2))))
        return list(st.values()), panels

    def _place(self, state: dict) -> tuple[int, int, np.ndarray]:
        inst = self._by_id[state["id"]]
        size = max(3, int(round(inst["size"] * state["scale"])))
        m = shape_mask(inst["shape"], size)
        x0 = int(round(state["pos"][0] - size / 2))
        y0 = int(round(state["pos"][1] - size / 2))
        return x0, y0, m

    def _clip(self, x0: int, y0: int, m: np.ndarray) -> tuple[slice, slice, slice, slice]:
        h, w = m.shape
        fx0, fy0 = max(0, x0), max(0, y0)
        fx1, fy1 = min(self.width, x0 + w), min(self.height, y0 + h)
        return slice(fy0, fy1), slice(fx0, fx1), slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0)

    # -- drawing ------------------------------------------------------------------------------------
    def frame(self, f: int) -> np.ndarray:
        """The RGB frame ``f`` (H, W, 3) uint8."""
        img = self.background.copy()
        states, panels = self.states(f)
        for s in states:
            inst = self._by_id[s["id"]]
            x0, y0, m = self._place(s)
            fy, fx, my, mx = self._clip(x0, y0, m)
            if fy.stop <= fy.start or fx.stop <= fx.start:
                continue
            sub = m[my, mx]
            tex = texture_factor(inst["texture"], m.shape[0])[my, mx]
            rgb = np.asarray(ALL_COLORS[s["color"]], np.float32)
            mark = 0.82 if s["color"] == "white" else float(TEXTURE_SHADE)
            colour = rgb[None, None, :] * np.where(tex < 1.0, mark, 1.0)[:, :, None]
            region = img[fy, fx]
            region[sub] = np.clip(colour[sub], 0, 255).astype(np.uint8)
        for x1, y1, x2, y2 in panels:
            img[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = OCCLUDER
        return img

    def masks_at(self, f: int) -> dict[int, np.ndarray]:
        """Exact visible mask (H, W) bool of every instance present at frame ``f`` (empty when hidden)."""
        states, panels = self.states(f)
        out: dict[int, np.ndarray] = {}
        for s in states:
            x0, y0, m = self._place(s)
            fy, fx, my, mx = self._clip(x0, y0, m)
            full = np.zeros((self.height, self.width), bool)
            if fy.stop > fy.start and fx.stop > fx.start:
                full[fy, fx] = m[my, mx]
            for x1, y1, x2, y2 in panels:
                full[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = False
            out[s["id"]] = full
        return out

    def boxes_at(self, f: int) -> dict[int, tuple[float, float, float, float] | None]:
        """Tight visible box (x2/y2 exclusive) of every instance present at frame ``f``."""
        states, panels = self.states(f)
        out: dict[int, tuple[float, float, float, float] | None] = {}
        for s in states:
            x0, y0, m = self._place(s)
            fy, fx, my, mx = self._clip(x0, y0, m)
            if fy.stop <= fy.start or fx.stop <= fx.start:
                out[s["id"]] = None
                continue
            sub = m[my, mx].copy()
            for x1, y1, x2, y2 in panels:  # panels in crop coordinates
                sub[max(0, y1 - fy.start):max(0, y2 - fy.start), max(0, x1 - fx.start):max(0, x2 - fx.start)] = False
            rows = np.flatnonzero(sub.any(axis=1))
            if rows.size == 0:
                out[s["id"]] = None
                continue
            cols = np.flatnonzero(sub.any(axis=0))
            out[s["id"]] = (float(fx.start + cols[0]), float(fy.start + rows[0]), float(fx.start + cols[-1] + 1), float(fy.start + rows[-1] + 1))
        return out

    def all_boxes(self) -> np.ndarray:
        """(n_frames, n_instances, 4) float32 boxes, NaN where an instance is absent or hidden."""
        ids = [inst["id"] for inst in self.instances]
        out = np.full((self.n_frames, len(ids), 4), np.nan, np.float32)
        for f in range(self.n_frames):
            for k, box in self.boxes_at(f).items():
                if box is not None:
                    out[f, ids.index(k)] = box
        return out

    # -- output -------------------------------------------------------------------------------------
    def write_mp4(self, path: Path, frames: Iterable[int] | None = None, crf: int = 20) -> None:
        """Encode the scene as H.264 (yuv420p) with PyAV; frame ``f`` gets PTS ``f`` in a 1/fps time base."""
        import av

        path = Path(path)
        with av.open(str(path), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(self.fps, 1))
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, self.fps)
            stream.codec_context.thread_count = 1
            stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(2 * self.fps), "threads": "1",
                              "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0"}
            for f in range(self.n_frames) if frames is None else frames:
                frame = av.VideoFrame.from_ndarray(self.frame(f), format="rgb24")
                frame.pts = f
                frame.time_base = Fraction(1, self.fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
