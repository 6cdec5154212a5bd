"""The embedded synthetic benchmark: ``synth:tiny``, ``synth:default``, ``synth:long``.

Procedural videos (2-8 instances of six shapes, six colours and three textures over a textured
background; linear / bounce / stop / turn motions; colour changes, jumps, growths, occlusions,
contacts and companions entering and leaving) with exact per-frame masks and an event timeline.
Each sample asks about one instance marked by a visual prompt (the eight styles are cycled) across
the V2P dimensions that apply (codes in :data:`vseek_env.data.synth.generate.DIMENSIONS`) plus
temporal (span) and spatial (box) grounding. About 80% of the samples hide their evidence strictly
between the frames of the default 16-frame overview (``needs_tools=True``).

Building is deterministic from ``(name, seed, size)``: two builds give byte-identical
``samples.jsonl`` (and, with the same PyAV/x264, identical videos). A build writes into a temporary
directory next to its target and renames it into place, so concurrent builds are safe.

Layout of ``cache_dir()/synth_default/``::

    samples.jsonl          one Sample per line
    manifest.json          generator version, seed, config, counts
    stats.json             counts per dimension, style, answer kind, needs_tools
    videos/vNNN.mp4        H.264 videos
    videos/vNNN.json       the scene spec (instances, motions, events, overview frames)
    videos/vNNN.boxes.npz  per-frame boxes of every instance (NaN when absent or hidden)

Example:
    >>> from vseek_env.data import load_dataset                       # doctest: +SKIP
    >>> ds = load_dataset("synth:tiny"); len(ds)                      # doctest: +SKIP
    6
    >>> times, masks = load_instance_masks(ds.root, ds.samples[0])     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vseek_env.data.datasets import cache_dir, register_dataset, write_samples
from vseek_env.data.sample import Sample, Track, VisualPromptSpec
from vseek_env.tempfiles import clean_stale_temps, temp_path

GENERATOR_VERSION = "synth-1.2"


@dataclass(frozen=True)
class SynthConfig:
    """How a named synthetic dataset is drawn."""

    name: str
    seed: int
    videos: int
    questions_per_video: int
    durations: tuple[float, float]  # seconds, drawn uniformly
    fps: tuple[int, ...]
    resolutions: tuple[tuple[int, int], ...]  # (width, height)
    instances: tuple[int, int]  # inclusive range
    visible_share: float = 0.2
    noise_events: int = 6
    max_event_s: float | None = None
    workers: int = 2
    duration_cycle: tuple[float, ...] = ()  # durations taken in turn instead of drawn
    attribute_pool_extra: int = 1  # distinct colours/shapes beyond ceil(n/2): fewer = more look-alikes
    event_inset: tuple[float, float] = (0.12, 0.22)  # share of an overview gap left before/after an event

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


CONFIGS: dict[str, SynthConfig] = {
    "synth:tiny": SynthConfig("synth:tiny", seed=7, videos=2, questions_per_video=3, durations=(10.0, 12.0),
                              fps=(15,), resolutions=((512, 288),), instances=(4, 5), workers=1),
    "synth:default": SynthConfig("synth:default", seed=2024, videos=24, questions_per_video=4,
                                 durations=(12.0, 30.0), fps=(15, 20, 24, 25),
                                 resolutions=((640, 360), (512, 384), (768, 432), (576, 324)), instances=(5, 8)),
    "synth:long": SynthConfig("synth:long", seed=99, videos=6, questions_per_video=4, durations=(60.0, 600.0),
                              fps=(10,), resolutions=((512, 288), (480, 360)), instances=(5, 8),
                              max_event_s=6.0, duration_cycle=(60.0, 600.0, 120.0, 300.0, 90.0, 240.0)),
}

from vseek_env.data.synth.generate import DIMENSIONS, TEMPLATES, ScenePlanner  # noqa: E402
from vseek_env.data.synth.scene import SceneRenderer, overview_indices  # noqa: E402


def dataset_dir(name: str, root: Path | None = None) -> Path:
    """Where ``name`` is (or will be) built: ``cache_dir()/<name with ':' -> '_'>``."""
    return Path(root if root is not None else cache_dir()) / name.replace(":", "_")


# ------------------------------------------------------------------------------------------ planning
def _plan(cfg: SynthConfig, samples: int | None = None) -> list[dict]:
    """Per-video plans (scene spec + planted questions), all from ``cfg.seed``; cheap, no rendering.

    ``cfg.videos`` videos, or with ``samples`` as many videos as it takes to plant exactly that
    many questions (templates and styles cycle, so every count is balanced across them).
    """
    from vseek_env.visual_prompts import STYLES

    master = np.random.default_rng(cfg.seed)
    templates = list(TEMPLATES)
    cursor = 0
    sample_no = 0
    plans = []
    id_width = 3 if samples is None else max(3, len(str(samples)))
    v = -1
    while (v + 1 < cfg.videos) if samples is None else sample_no < samples:
        v += 1
        vseed = int(master.integers(0, 2**31 - 1))
        rng = np.random.default_rng(vseed)
        lo, hi = cfg.durations
        duration = float(round(rng.uniform(lo, hi))) if hi > lo else float(lo)
        if cfg.duration_cycle:  # e.g. long videos spread over 1-10 minutes
            duration = float(cfg.duration_cycle[v % len(cfg.duration_cycle)])
        fps = int(rng.choice(cfg.fps))
        width, height = cfg.resolutions[int(rng.integers(len(cfg.resolutions)))]
        n_inst = int(rng.integers(cfg.instances[0], cfg.instances[1] + 1))
        if n_inst > 6 and width / 4 < 150:
            n_inst = 6
        planner = ScenePlanner(rng, width=width, height=height, fps=fps, duration=duration, n_instances=n_inst,
                               background_seed=vseed, visible_share=cfg.visible_share, max_event_s=cfg.max_event_s,
                               attribute_pool_extra=cfg.attribute_pool_extra, event_inset=cfg.event_inset)
        planted = []
        tries = 0
        want = cfg.questions_per_video if samples is None else min(cfg.questions_per_video, samples - sample_no)
        while len(planted) < want and tries < 3 * len(templates):
            template = templates[cursor % len(templates)]
            tries += 1
            q = planner.plant(template)
            if q is not None:
                cursor += 1
                planted.append(q)
            else:  # try the next template now, come back to this one in the next video
                templates.append(templates.pop(cursor % len(templates)))
        planner.add_noise(cfg.noise_events)
        questions = []
        for q in planted:
            style = STYLES[sample_no % len(STYLES)]
            questions.append({"planned": q, "style": style, "seed": int(rng.integers(0, 2**31 - 1)),
                              "label": int(rng.integers(1, 10)), "number": sample_no})
            sample_no += 1
        plans.append({"video_id": f"v{v:0{id_width}d}", "spec": planner.spec, "questions": questions})
    return plans


# ------------------------------------------------------------------------------------------ rendering
def _render_video(args: tuple[dict, str]) -> list[dict]:
    """Write one video (+ spec, boxes) and return its samples as dicts."""
    plan, out_dir = args
    from vseek_env.masks import encode_rle
    from vseek_env.visual_prompts import phrase_for

    vid = plan["video_id"]
    spec = plan["spec"]
    out = Path(out_dir)
    renderer = SceneRenderer(spec)
    videos = out / "videos"
    # every file goes to a temporary name first: a killed build never leaves a truncated file
    renderer.write_mp4(videos / f".{vid}.mp4.tmp")
    os.replace(videos / f".{vid}.mp4.tmp", videos / f"{vid}.mp4")
    boxes = renderer.all_boxes()
    with open(videos / f".{vid}.boxes.npz.tmp", "wb") as fh:
        np.savez_compressed(fh, boxes=boxes, times=np.arange(spec["n_frames"], dtype=np.float64) / spec["fps"],
                            instance_ids=np.array([i["id"] for i in spec["instances"]]))
    os.replace(videos / f".{vid}.boxes.npz.tmp", videos / f"{vid}.boxes.npz")
    _write_atomic(videos / f"{vid}.json", json.dumps(spec, sort_keys=True, indent=1))
    fps, n = spec["fps"], spec["n_frames"]
    ov = overview_indices(n, fps, 16)
    ids = [i["id"] for i in spec["instances"]]
    rows = []
    for item in plan["questions"]:
        q = item["planned"]
        k = q.target
        col = ids.index(k)
        pf = q.prompt_index
        mask = renderer.masks_at(pf)[k]
        pbox = tuple(float(v) for v in boxes[pf, col])
        # set_of_mark labels every object on the frame, as Set-of-Mark does
        others = tuple(tuple(float(v) for v in boxes[pf, j]) for j in range(len(ids))
                       if j != col and not np.isnan(boxes[pf, j, 0])) if item["style"] == "set_of_mark" else ()
        phrase = phrase_for(item["style"], item["label"])
        question = q.question.replace("{ref}", phrase)
        question = question[0].upper() + question[1:]
        stride = max(1, int(np.ceil(n / 1500)))
        tt, tb = [], []
        for f in range(0, n, stride):
            if not np.isnan(boxes[f, col, 0]):
                tt.append(round(f / fps, 4))
                tb.append(tuple(float(v) for v in boxes[f, col]))
        intervals = [[round(e["f0"] / fps, 4), round(e["f1"] / fps, 4)] for e in q.events]
        frames_in = [(e["f0"], e["f1"]) for e in q.events]
        seen = any(a <= f < b for a, b in frames_in for f in list(ov) + [pf])
        answer = q.answer
        if q.template == "spatial_grounding":
            answer = tuple(float(v) for v in boxes[q.answer_frame, col])
        dim, kind = TEMPLATES[q.template]
        inst = next(i for i in spec["instances"] if i["id"] == k)
        sample = Sample(
            id=f"synth-{item['number']:0{plan.get('id_width', 4)}d}",
            video=f"videos/{vid}.mp4",
            question=question,
            answer=answer,
            answer_kind=kind,
            options=tuple(q.options),
            prompt=VisualPromptSpec(time=round(pf / fps, 6), style=item["style"], box=pbox,
                                    mask_rle=encode_rle(mask), seed=item["seed"], label=item["label"], others=others),
            track=Track(times=tuple(tt), boxes=tuple(tb)),
            evidence=(min(a for a, _ in intervals), max(b for _, b in intervals)),
            answer_time=q.answer_time,
            dimension=dim,
            source="synthetic",
            needs_tools=not seen,
            duration=round(n / fps, 6),
            meta={"template": q.template, "video_id": vid, "target": int(k),
                  "target_desc": {"shape": inst["shape"], "color": inst["color"], "texture": inst["texture"]},
                  "evidence_intervals": intervals, "hidden": bool(q.hidden), "fps": fps,
                  "overview_frames": 16, "prompt_frame": int(pf), **q.meta},
        )
        rows.append((item["number"], sample.to_dict()))
    return rows


def build(name: str, root: Path | None = None, *, force: bool = False, workers: int | None = None) -> Path:
    """Build ``name`` (atomically) unless a build of this generator version exists; return its samples file."""
    cfg = CONFIGS[name]
    final = dataset_dir(name, root)
    manifest = final / "manifest.json"
    if not force and manifest.is_file():
        try:
            if json.loads(manifest.read_text()).get("generator_version") == GENERATOR_VERSION:
                return final / "samples.jsonl"
        except (OSError, ValueError):
            pass
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(final)  # what killed builds left behind
    tmp = temp_path(final)
    tmp.mkdir()
    try:
        started = time.perf_counter()
        (tmp / "videos").mkdir()
        plans = _plan(cfg)
        jobs = [(p, str(tmp)) for p in plans]
        n_workers = max(1, min(workers if workers is not None else cfg.workers, os.cpu_count() or 1, len(jobs)))
        if n_workers > 1:
            with ProcessPoolExecutor(n_workers) as pool:
                results = list(pool.map(_render_video, jobs))
        else:
            results = [_render_video(j) for j in jobs]
        rows = sorted((r for res in results for r in res), key=lambda r: r[0])
        samples = [Sample.from_dict(d) for _, d in rows]
        write_samples(tmp / "samples.jsonl", samples)
        stats = compute_stats(samples)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
        (tmp / "manifest.json").write_text(json.dumps({
            "name": name, "generator_version": GENERATOR_VERSION, "seed": cfg.seed, "config": cfg.to_dict(),
            "counts": {"videos": len(plans), "samples": len(samples),
                       "needs_tools": sum(bool(s.needs_tools) for s in samples)},
            "dimensions": DIMENSIONS,
        }, indent=1, sort_keys=True) + "\n")
        (tmp / "build_seconds.txt").write_text(f"{time.perf_counter() - started:.2f}\n")
        _publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final / "samples.jsonl"


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _publish(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; if another process won the race with the same version, keep theirs."""
    try:
        os.rename(tmp, final)
        return
    except OSError:
        pass
    try:
        if json.loads((final / "manifest.json").read_text()).get("generator_version") == GENERATOR_VERSION:
            return  # a concurrent build finished first; ours is discarded by the caller
    except (OSError, ValueError):
        pass
    trash = temp_path(final, "old")
    try:
        os.rename(final, trash)
    except OSError:
        pass
    os.rename(tmp, final)
    shutil.rmtree(trash, ignore_errors=True)


def compute_stats(samples: Sequence[Sample]) -> dict:
    """Counts per dimension, prompt style, answer kind, needs_tools and template."""
    return {
        "samples": len(samples),
        "dimension": dict(sorted(Counter(str(s.dimension) for s in samples).items())),
        "style": dict(sorted(Counter(s.prompt.style for s in samples).items())),
        "answer_kind": dict(sorted(Counter(s.answer_kind for s in samples).items())),
        "needs_tools": dict(sorted(Counter(str(bool(s.needs_tools)).lower() for s in samples).items())),
        "template": dict(sorted(Counter(s.meta.get("template", "?") for s in samples).items())),
        "videos": len({s.video for s in samples}),
        "duration_s": {"min": min(s.duration for s in samples), "max": max(s.duration for s in samples)},
    }


# ------------------------------------------------------------------------------------------ ground truth
def _video_id(sample_or_video) -> str:
    if isinstance(sample_or_video, Sample):
        return Path(sample_or_video.video).stem
    return Path(str(sample_or_video)).stem


def load_scene(dataset_dir: str | Path, sample_or_video) -> dict:
    """The scene spec (instances, motions, events, overview frames) of a sample's video."""
    return json.loads((Path(dataset_dir) / "videos" / f"{_video_id(sample_or_video)}.json").read_text())


def load_instance_masks(dataset_dir: str | Path, sample_or_video, times: Sequence[float] | None = None,
                        *, fps: float | None = 1.0) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Exact ground-truth masks of every instance, recomputed from the scene spec.

    Args:
        dataset_dir: the built dataset directory (``Dataset.root``).
        sample_or_video: a :class:`Sample` or a video path / id (``"videos/v000.mp4"``, ``"v000"``).
        times: seconds to sample; default every ``1 / fps`` seconds from 0 (1 fps, like pipeline G3).
    Returns:
        ``(times, masks)``: the frame times actually used (PTS of the frame shown at each time) and
        ``{instance_id: (T, H, W) bool}`` (all-False where the instance is absent or hidden).
    """
    spec = load_scene(dataset_dir, sample_or_video)
    r = SceneRenderer(spec)
    vfps, n = spec["fps"], spec["n_frames"]
    if times is None:
        step = 1.0 / (fps or 1.0)
        times = np.arange(0.0, n / vfps, step)
    frames = [min(n - 1, max(0, int(np.floor(float(t) * vfps + 1e-6)))) for t in times]
    ids = [i["id"] for i in spec["instances"]]
    out = {k: np.zeros((len(frames), spec["height"], spec["width"]), bool) for k in ids}
    for j, f in enumerate(frames):
        for k, m in r.masks_at(f).items():
            out[k][j] = m
    return np.array([f / vfps for f in frames]), out


def load_instance_boxes(dataset_dir: str | Path, sample_or_video) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times, boxes (T, N, 4) with NaN when absent, instance_ids)`` for every frame of the video."""
    with np.load(Path(dataset_dir) / "videos" / f"{_video_id(sample_or_video)}.boxes.npz") as z:
        return z["times"], z["boxes"], z["instance_ids"]


def _builder(name: str):
    def run(root: Path) -> Path:
        return build(name, root)
    return run


for _name in CONFIGS:
    register_dataset(_name, _builder(_name))
