"""The four stages as functions of one item: ``stage(item, ctx) -> Outcome``.

Each function is pure apart from model calls and video reads, so the local runner and the Ray
runner call the very same code. An :class:`Outcome` either keeps the item (with this stage's
fields added) or drops it with a reason; G4 also returns the files to write (the rendered PNG).

A sample-level failure (an unreadable video, a segmenter that finds nothing, a model that keeps
answering nonsense) is a drop with a reason. An endpoint that cannot be reached raises
:class:`~vseek_env.pipeline.llm.LLMError` instead: the run stops, nothing is recorded for the
sample, and the next run retries it.

Example:
    >>> cfg = PipelineConfig(out="/tmp/x")
    >>> g1_filter({"id": "a", "question": "How many dogs are there?", "options": []}, StageContext(cfg)).reason
    'g1.rule: counting'
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vseek_env.images import ImageError
from vseek_env.pipeline.llm import ChatClient, LLMError

__all__ = ["PipelineConfig", "StageContext", "Outcome", "STAGES", "STAGE_FUNCS", "process_batch", "ConfigError"]

STAGES = ("g1", "g2", "g3", "g4")


class ConfigError(ValueError):
    """Settings that cannot work together; the message says which option to change."""


@dataclass
class PipelineConfig:
    """Settings of one pipeline run (see ``vseek pipeline run --help``).

    ``fingerprint()`` covers the settings that change outputs; a resumed run must match it.
    """

    out: str
    segmenter: str = "auto"  # auto = given when the item has annotations, else sam3 / sam with weights on disk, else opencv
    g1: str = "auto"  # rules | llm | both | off; auto = both with an LLM endpoint, else rules
    llm_base_url: str | None = None
    llm_model: str | None = None
    vlm_base_url: str | None = None  # default: the LLM endpoint
    vlm_model: str | None = None
    api_key: str = "EMPTY"
    rewrite: str = "template"  # template | llm
    styles: tuple[str, ...] = ()  # empty = all eight
    fps: float = 1.0
    n_frames: int = 32  # G2's frame budget per model call (the clip at `fps` is split into windows above it)
    retries: int = 2
    seed: int = 0
    use_annotations: bool = True
    sam_model: str = "facebook/sam2.1-hiera-tiny"
    sam3_model: str = "facebook/sam3"
    track_fps: float = 12.0
    timeout_s: float = 120.0
    batch_size: int = 8
    concurrency: int = 4
    parquet: bool = False
    absolute_paths: bool = False

    # how and where a run executes, not what it produces (an endpoint may move between runs)
    _RUNTIME = ("out", "batch_size", "concurrency", "timeout_s", "api_key", "parquet", "llm_base_url", "vlm_base_url")

    def fingerprint(self) -> dict:
        """The output-relevant settings, JSON-normalised (tuples as lists)."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if k not in self._RUNTIME}
        data["uses_llm"] = bool(self.llm_base_url)
        return json.loads(json.dumps(data))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PipelineConfig":
        data = dict(data)
        data["styles"] = tuple(data.get("styles") or ())
        return cls(**data)

    def validate(self) -> None:
        from vseek_env.pipeline.segmenters import SEGMENTERS
        from vseek_env.visual_prompts import STYLES

        if self.segmenter not in ("auto", *SEGMENTERS):
            raise ConfigError(f"--segmenter must be auto or one of {', '.join(SEGMENTERS)}, got {self.segmenter!r}")
        if self.g1 not in ("auto", "rules", "llm", "both", "off"):
            raise ConfigError(f"--g1 must be auto, rules, llm, both or off, got {self.g1!r}")
        if self.rewrite not in ("template", "llm"):
            raise ConfigError(f"--rewrite must be template or llm, got {self.rewrite!r}")
        bad = [s for s in self.styles if s not in STYLES]
        if bad:
            raise ConfigError(f"unknown prompt style(s) {bad}; choose from {', '.join(STYLES)}")
        if bool(self.llm_base_url) != bool(self.llm_model):
            raise ConfigError("--llm-base-url and --llm-model go together")
        if (self.g1 in ("llm", "both") or self.rewrite == "llm") and not self.llm_base_url:
            raise ConfigError("--g1 llm/both and --rewrite llm need --llm-base-url and --llm-model")
        if self.fps <= 0 or self.track_fps <= 0 or self.n_frames < 1:
            raise ConfigError("--fps, --track-fps and --frames must be positive")

    @property
    def g1_mode(self) -> str:
        if self.g1 == "auto":
            return "both" if self.llm_base_url else "rules"
        return self.g1


@dataclass
class Outcome:
    """A stage's verdict on one item."""

    kept: bool
    reason: str = ""
    item: dict | None = None
    files: dict[str, bytes] = field(default_factory=dict)

    def record(self, sample_id: str) -> dict:
        rec = {"id": sample_id, "kept": self.kept, "reason": self.reason}
        if self.kept:
            rec["data"] = self.item
        return rec


class StageContext:
    """Per-process resources of a run: chat clients and segmenters, built on first use."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._segmenters: dict[str, Any] = {}

    def llm(self) -> ChatClient | None:
        c = self.config
        if not c.llm_base_url:
            return None
        return ChatClient(c.llm_base_url, c.llm_model, api_key=c.api_key, timeout_s=c.timeout_s)

    def vlm(self) -> ChatClient | None:
        c = self.config
        url, model = c.vlm_base_url or c.llm_base_url, c.vlm_model or c.llm_model
        if not url:
            return None
        return ChatClient(url, model, api_key=c.api_key, timeout_s=c.timeout_s)

    def segmenter(self, name: str):
        with self._lock:
            if name not in self._segmenters:
                from vseek_env.pipeline.segmenters import make_segmenter

                kwargs = {
                    "opencv": {"track_fps": self.config.track_fps},
                    "sam": {"model": self.config.sam_model},
                    "sam3": {"model": self.config.sam3_model},
                }.get(name, {})
                self._segmenters[name] = make_segmenter(name, **kwargs)
            return self._segmenters[name]

    def segmenter_name(self, item: dict) -> str:
        """The configured segmenter; ``auto`` is resolved once per run (see ``default_segmenter``)."""
        name = self.config.segmenter
        if name != "auto":
            return name
        if item.get("annotations"):
            return "given"
        with self._lock:
            if not hasattr(self, "_auto"):
                from vseek_env.pipeline.segmenters import default_segmenter

                self._auto = default_segmenter(annotated=False, sam_model=self.config.sam_model, sam3_model=self.config.sam3_model)
            return self._auto


def _open(item: dict):
    from vseek_env.video import open_video

    return open_video(item["video_path"])


# --------------------------------------------------------------------------- G1


def g1_filter(item: dict, ctx: StageContext) -> Outcome:
    from vseek_env.pipeline.g1_filter import llm_verdict, rule_reject

    mode = ctx.config.g1_mode
    if mode in ("rules", "both"):
        category = rule_reject(item["question"], item.get("options"))
        if category:
            return Outcome(False, f"g1.rule: {category}")
    if mode in ("llm", "both"):
        keep, reason = llm_verdict(ctx.llm(), item["question"], item.get("options"), retries=ctx.config.retries)
        if not keep:
            return Outcome(False, f"g1.llm: {reason}" if not reason.startswith("llm:") else f"g1.{reason}")
    return Outcome(True, item=item)


# --------------------------------------------------------------------------- G2


def g2_verify(item: dict, ctx: StageContext) -> Outcome:
    from vseek_env.pipeline.g2_verify import clip_windows, verify_clip, verify_from_annotations

    cfg = ctx.config
    try:
        video = _open(item)
    except Exception as exc:
        return Outcome(False, f"g2.video: {exc}")
    with video:
        duration = float(video.duration)
        if item.get("annotations") and cfg.use_annotations:
            record, why = verify_from_annotations(item, duration=duration)
        else:
            client = ctx.vlm()
            if client is None:
                return Outcome(False, "g2.config: no target annotations and no VLM endpoint (--llm-base-url)")
            try:
                prompt_image = _prompt_image(item)
            except ImageError as exc:
                return Outcome(False, f"g2.frame: {exc}")
            windows = clip_windows(duration, fps=cfg.fps, budget=cfg.n_frames)

            def decoded(video=video):
                for times in windows:  # one window's frames in memory at a time
                    batch = video.read(sorted({video.index_at(t) for t in times}))
                    yield [(float(t), f) for t, f in zip(batch.times, batch.frames)]

            record, why = verify_clip(
                client, item, decoded(), duration=duration, frame_size=(video.width, video.height),
                retries=cfg.retries, prompt_image=prompt_image, n_windows=len(windows),
            )
    if record is None:
        return Outcome(False, f"g2.schema: {why}")
    if not record["valid"]:
        return Outcome(False, f"g2.invalid: {record['reason']}")
    return Outcome(True, item={**item, "duration": duration, "g2": record})


def _prompt_image(item: dict):
    """The source's own pre-rendered prompt frame (V2P-Bench ``frame_path``), or None without one.

    Opened like every path from data (:func:`vseek_env.images.read_image`): a missing file is no
    frame; a FIFO, a device or an image too large to decode raises :class:`ImageError`, which
    drops this sample with its reason.
    """
    from vseek_env.images import read_image

    frame = (item.get("meta") or {}).get("frame_path")
    if isinstance(frame, list):
        frame = frame[0] if frame else None
    if not frame:
        return None
    path = Path(item["meta"].get("frames_root") or Path(item["video_path"]).parent) / str(frame)
    if not os.path.lexists(path):
        return None
    return read_image(path)


# --------------------------------------------------------------------------- G3


def g3_masks(item: dict, ctx: StageContext) -> Outcome:
    from vseek_env.masks import decode_rle, encode_rle
    from vseek_env.pipeline.segmenters import SegmentRequest

    cfg = ctx.config
    g2 = item["g2"]
    name = ctx.segmenter_name(item)
    if name == "given" and not item.get("annotations"):
        return Outcome(False, "g3.given: the source has no target annotations")
    segmenter = ctx.segmenter(name)
    try:
        video = _open(item)
    except Exception as exc:
        return Outcome(False, f"g3.video: {exc}")
    with video:
        start, end = g2["time_window"]
        grid = np.arange(start, end + 1e-9, 1.0 / cfg.fps)
        indices = sorted({video.index_at(float(t)) for t in grid})
        times = [float(video.frame_times[i]) for i in indices]

        def read_frames(ts, max_pixels):
            idx = sorted({video.index_at(float(t)) for t in ts})
            batch = video.read(idx, max_pixels=max_pixels)
            return batch.frames, batch.times

        seed_mask = decode_rle(g2["seed_mask"]) if g2.get("seed_mask") else None
        request = SegmentRequest(
            times=times, frame_shape=(video.height, video.width), seed_time=g2["seed_time"],
            seed_box=tuple(g2["seed_box"]), seed_mask=seed_mask, read_frames=read_frames,
            annotations=item.get("annotations"), text=g2.get("tag"),
        )
        try:
            segments = segmenter.segment(request)
        except (LLMError, MemoryError):
            raise
        except Exception as exc:  # a segmenter failing on one clip drops that clip, not the run
            return Outcome(False, f"g3.{name}: {type(exc).__name__}: {exc}")
    track = {"times": [], "boxes": [], "masks": [], "areas": [], "segmenter": name}
    for t, (box, mask) in zip(times, segments):
        if box is None:
            continue
        track["times"].append(round(t, 6))
        track["boxes"].append([round(float(v), 3) for v in box])
        track["masks"].append(encode_rle(mask, compress=True) if mask is not None else None)
        track["areas"].append(int(mask.sum()) if mask is not None else int((box[2] - box[0]) * (box[3] - box[1])))
    if not track["times"]:
        return Outcome(False, f"g3.{name}: target not found in the window [{start:g}, {end:g}] s")
    return Outcome(True, item={**item, "g3": track})


# --------------------------------------------------------------------------- G4


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def png_name(sample_id: str) -> str:
    """File name of a sample's rendered prompt frame (safe on every file system, collision-free)."""
    from vseek_env.pipeline.g4_render import stable_seed

    return f"{_UNSAFE.sub('_', sample_id)[:80]}-{stable_seed(sample_id):08x}.png"


def g4_render(item: dict, ctx: StageContext) -> Outcome:
    from PIL import Image

    from vseek_env.data.sample import Sample, SampleError, Track, VisualPromptSpec
    from vseek_env.masks import decode_rle
    from vseek_env.pipeline.g4_render import (
        choose_prompt_time,
        choose_style,
        obfuscate_name,
        rewrite_template,
        rewrite_with_llm,
        stable_seed,
    )
    from vseek_env.visual_prompts import STYLES, phrase_for, render_visual_prompt

    cfg = ctx.config
    g2, g3 = item["g2"], item["g3"]
    k = choose_prompt_time(g3["times"], g3["areas"], g2["time_window"])
    if k is None:
        return Outcome(False, "g4: no segmented frame inside the time window")
    seed = stable_seed(cfg.seed, item["id"])
    style = choose_style(item["id"], g2.get("prompt_style"), cfg.styles or STYLES, cfg.seed)
    label = 1 + seed % 9
    phrase = phrase_for(style, label)
    box = tuple(g3["boxes"][k])
    mask = decode_rle(g3["masks"][k]) if g3["masks"][k] else None
    try:
        video = _open(item)
    except Exception as exc:
        return Outcome(False, f"g4.video: {exc}")
    with video:
        batch = video.read([video.index_at(g3["times"][k])], max_pixels=None)
    rendered = render_visual_prompt(batch.frames[0], style, box=box, mask=mask, rng=seed, label=label)
    names = [g2.get("tag", ""), g2.get("target", "")]
    options = [obfuscate_name(o, names) for o in g2.get("options") or []]
    question = g2["question"]
    how = "template"
    if cfg.rewrite == "llm":
        question, options, how = rewrite_with_llm(ctx.llm(), question, options, phrase, retries=cfg.retries)
    else:
        question, options = rewrite_template(question, phrase), [rewrite_template(o, phrase) for o in options]
    buf = io.BytesIO()
    Image.fromarray(rendered.image).save(buf, format="PNG")
    png = f"prompts/{png_name(item['id'])}"
    out = Path(cfg.out).resolve()
    video_ref = item["video_path"] if cfg.absolute_paths else os.path.relpath(item["video_path"], out)
    g3_meta = {k2: g3[k2] for k2 in ("segmenter",)}
    try:
        sample = Sample(
            id=item["id"], video=video_ref, question=question, answer=_answer(item), answer_kind=item["answer_kind"],
            options=tuple(options),
            prompt=VisualPromptSpec(
                time=float(batch.times[0]), style=style, box=tuple(round(float(v), 3) for v in box),
                mask_rle=g3["masks"][k], seed=seed, label=label,
            ),
            track=Track(times=tuple(g3["times"]), boxes=tuple(tuple(b) for b in g3["boxes"]), masks=_track_masks(g3)),
            evidence=tuple(g2["time_window"]), dimension=item.get("dimension"), source=item.get("source") or "",
            duration=item.get("duration"),
            meta={
                **(item.get("meta") or {}),
                "prompt_png": png,
                "original_question": item["question"],
                "pipeline": {"target": g2["target"], "tag": g2["tag"], "g2": g2["via"], "rewrite": how, "color": rendered.color, **g3_meta},
            },
        )
    except SampleError as exc:
        return Outcome(False, f"g4.sample: {exc}")
    return Outcome(True, item={"sample": sample.to_dict()}, files={png: buf.getvalue()})


def _track_masks(g3: dict) -> tuple[dict, ...]:
    """G3's per-time masks (RLE) for the sample's track: all of them, or none when a segmenter gave
    only boxes at some time (a Track holds one mask per time or no masks)."""
    masks = g3.get("masks") or []
    return tuple(masks) if masks and all(m is not None for m in masks) else ()


def _answer(item: dict) -> Any:
    ans = item.get("answer")
    return tuple(ans) if isinstance(ans, list) else ans


STAGE_FUNCS: dict[str, Callable[[dict, StageContext], Outcome]] = {
    "g1": g1_filter, "g2": g2_verify, "g3": g3_masks, "g4": g4_render,
}
_IO_BOUND = {"g1", "g2"}  # model calls: run several requests at once within a batch


def process_batch(
    stage: str, items: list[dict], ctx: StageContext, on_result: Callable[[dict, Outcome], None]
) -> None:
    """Run ``stage`` over ``items``; ``on_result(item, outcome)`` is called as each one finishes.

    Model-calling stages run up to ``config.concurrency`` requests at once; the others run in order.
    """
    fn = STAGE_FUNCS[stage]
    workers = max(1, ctx.config.concurrency) if stage in _IO_BOUND else 1
    if workers == 1 or len(items) <= 1:
        for item in items:
            on_result(item, fn(item, ctx))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fn, item, ctx): item for item in items}
        for future in as_completed(futures):
            on_result(futures[future], future.result())
