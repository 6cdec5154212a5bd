"""Training-sized synthetic datasets: any number of samples, from a seed, in parallel, resumable.

``build_synth(out, samples=N, seed=S)`` plans ``N`` questions over as many procedural videos as
it takes (templates and the eight prompt styles cycle, so every size is balanced across
dimensions, answer kinds and styles), renders the videos in a process pool (or on Ray) and writes::

    out/samples.jsonl      every sample (relative video paths: loadable from anywhere)
    out/train.jsonl        the training split      } no video is in both
    out/val.jsonl          the validation split    }
    out/stats.json         counts per dimension / style / answer kind / split, and near-duplicates
    out/manifest.json      generator version and the build settings
    out/videos/...         vNNNN.mp4, the scene spec (.json) and per-frame boxes (.boxes.npz)

The output is a pure function of the settings: two builds with one seed are byte-identical
(with one PyAV/x264), whatever the number of workers. A killed build continues where it stopped:
each video's files and its sample rows (``out/parts/``) are written through temporary names and
renamed, and a re-run skips the videos whose part exists.

Example:
    >>> path = build_synth("data/synth300", samples=300, seed=11, workers=2)   # doctest: +SKIP
    >>> import gymnasium as gym; env = gym.make("VideoSeeker-v0", dataset=str(path))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from vseek_env.data.datasets import write_samples
from vseek_env.data.open_ended import to_open_ended
from vseek_env.data.sample import Sample
from vseek_env.data.synthetic import CONFIGS, GENERATOR_VERSION, SynthConfig, _plan, _render_video, _write_atomic, compute_stats

#: ``--preset`` names: the synthetic configurations whose video look (durations, fps, sizes,
#: instances) a build copies.
PRESETS: dict[str, str] = {"default": "synth:default", "tiny": "synth:tiny", "long": "synth:long"}
DIFFICULTIES = ("easy", "medium", "hard")


class BuildError(ValueError):
    """Bad build settings, or an output folder that holds another build."""


def synth_config(preset: str = "default", difficulty: str = "medium", seed: int = 0) -> SynthConfig:
    """The generator configuration of a build: ``preset``'s look, shifted by ``difficulty``.

    * ``easy``: fewer instances, more distinct colours and shapes (fewer look-alike distractors),
      longer events, shorter videos.
    * ``medium``: the preset as it is (``synth:default`` for ``default``).
    * ``hard``: more instances, fewer distinct colours and shapes (distractors share the target's
      attributes), shorter events, longer videos.

    >>> synth_config("default", "hard").instances
    (6, 8)
    """
    if preset not in PRESETS:
        raise BuildError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if difficulty not in DIFFICULTIES:
        raise BuildError(f"unknown difficulty {difficulty!r}; choose from {', '.join(DIFFICULTIES)}")
    base = CONFIGS[PRESETS[preset]]
    lo, hi = base.durations
    # the worker count is not part of the data: builds with any number of workers are identical
    cfg = dataclasses.replace(base, name=f"custom:{preset}", seed=int(seed), workers=1)
    if difficulty == "easy":
        return dataclasses.replace(cfg, instances=(max(3, base.instances[0] - 2), max(3, base.instances[1] - 2)),
                                   attribute_pool_extra=3, event_inset=(0.06, 0.12),
                                   durations=(lo, max(lo, round(0.6 * hi))),
                                   duration_cycle=tuple(max(60.0, d / 2) for d in base.duration_cycle))
    if difficulty == "hard":
        return dataclasses.replace(cfg, instances=(min(8, base.instances[0] + 1), 8), attribute_pool_extra=0,
                                   event_inset=(0.24, 0.32), durations=(round(1.5 * lo), round(2 * hi)),
                                   duration_cycle=tuple(min(900.0, 1.5 * d) for d in base.duration_cycle))
    return cfg


def build_synth(out: str | os.PathLike, *, samples: int, seed: int, preset: str = "default",
                difficulty: str = "medium", workers: int = 1, use_ray: bool = False, open_ended: float = 0.0,
                val_fraction: float = 0.1, progress: bool = True, force: bool = False) -> Path:
    """Build ``samples`` synthetic samples into ``out``; returns ``out/samples.jsonl``.

    Args:
        samples: number of samples (questions), at least 1.
        seed: everything is drawn from it; one seed gives byte-identical builds.
        preset, difficulty: see :func:`synth_config`.
        workers: render processes (``use_ray``: Ray tasks in flight).
        open_ended: share (0-1) of the multiple-choice samples turned into open-ended ones
            (:func:`vseek_env.data.open_ended.to_open_ended`), drawn from the seed.
        val_fraction: share of the *videos* whose samples form ``val.jsonl``.
        force: delete an existing build in ``out`` first.
    Raises:
        BuildError: bad settings, or ``out`` holds a build with other settings (without ``force``).
    """
    settings = _check_settings(samples, seed, preset, difficulty, open_ended, val_fraction)
    out = Path(out)
    if force and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    settings_file = out / "build.json"
    if settings_file.is_file():
        previous = json.loads(settings_file.read_text())
        if previous != settings:
            raise BuildError(f"{out} holds a build with other settings ({previous}); pass --force to replace it, "
                             f"or choose another --out")
        if (out / "manifest.json").is_file() and (out / "samples.jsonl").is_file():
            return out / "samples.jsonl"  # finished already
    elif any(out.iterdir()):
        raise BuildError(f"{out} is not empty and holds no vseek build; choose an empty or new --out")
    _write_atomic(settings_file, json.dumps(settings, indent=1, sort_keys=True) + "\n")

    cfg = synth_config(preset, difficulty, seed)
    plans = _plan(cfg, samples=samples)
    width = max(4, len(str(samples)))
    for plan in plans:
        plan["id_width"] = width
    (out / "videos").mkdir(exist_ok=True)
    (out / "parts").mkdir(exist_ok=True)
    todo = [p for p in plans if not (out / "parts" / f"{p['video_id']}.json").is_file()]
    bar = _Progress(len(plans), sum(len(p["questions"]) for p in plans), enabled=progress)
    bar.skip(len(plans) - len(todo), sum(len(p["questions"]) for p in plans) - sum(len(p["questions"]) for p in todo))
    jobs = [(p, str(out)) for p in todo]
    runner = _ray_map if use_ray else _pool_map
    for plan, rows in runner(jobs, max(1, int(workers))):
        _write_atomic(out / "parts" / f"{plan['video_id']}.json", json.dumps(rows, sort_keys=True))
        bar.update(1, len(rows))
    bar.close()
    _assemble(out, plans, settings, cfg)
    shutil.rmtree(out / "parts", ignore_errors=True)
    return out / "samples.jsonl"


def _check_settings(samples, seed, preset, difficulty, open_ended, val_fraction) -> dict:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise BuildError(f"--samples must be a positive integer, got {samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise BuildError(f"--seed must be a non-negative integer, got {seed!r}")
    if not 0.0 <= float(open_ended) <= 1.0:
        raise BuildError(f"--open-ended must be a share between 0 and 1, got {open_ended!r}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise BuildError(f"--val-fraction must be in [0, 1), got {val_fraction!r}")
    synth_config(preset, difficulty)  # validates the names
    return {"samples": samples, "seed": seed, "preset": preset, "difficulty": difficulty,
            "open_ended": float(open_ended), "val_fraction": float(val_fraction),
            "generator_version": GENERATOR_VERSION}


# ------------------------------------------------------------------------------------------ execution
def _render(job: tuple[dict, str]) -> tuple[dict, list]:
    plan, out = job
    return plan, _render_video((plan, out))


def _pool_map(jobs: list, workers: int) -> Iterable[tuple[dict, list]]:
    """Results as they finish; at most ``2 * workers`` jobs in flight (bounded memory)."""
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            yield _render(job)
        return
    with ProcessPoolExecutor(workers) as pool:
        pending = iter(jobs)
        running = {pool.submit(_render, j) for j in _take(pending, 2 * workers)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
            running |= {pool.submit(_render, j) for j in _take(pending, len(done))}


def _ray_map(jobs: list, workers: int) -> Iterable[tuple[dict, list]]:
    try:
        import ray
    except ImportError:
        raise BuildError("--ray needs Ray: pip install 'vseek-env[pipeline]' (or drop --ray)") from None
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(_render)
    pending = iter(jobs)
    running = [remote.remote(j) for j in _take(pending, 2 * workers)]
    while running:
        done, running = ray.wait(running, num_returns=1)
        for ref in done:
            yield ray.get(ref)
        running += [remote.remote(j) for j in _take(pending, len(done))]


def _take(it, n: int) -> list:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except StopIteration:
            break
    return out


class _Progress:
    """A one-line progress bar on stderr: videos, samples, samples per second."""

    def __init__(self, videos: int, samples: int, enabled: bool = True) -> None:
        self.videos, self.samples, self.enabled = videos, samples, enabled
        self.done_v = self.done_s = 0
        self.start = time.perf_counter()
        self.resumed = 0

    def skip(self, videos: int, samples: int) -> None:
        """Count work a previous (killed) build already did; it does not enter the rate."""
        self.resumed = samples
        self.update(videos, samples)

    def update(self, videos: int, samples: int) -> None:
        self.done_v += videos
        self.done_s += samples
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done_v / max(1, self.videos))
        rate = (self.done_s - self.resumed) / max(1e-9, time.perf_counter() - self.start)
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done_v}/{self.videos} videos, "
              f"{self.done_s}/{self.samples} samples, {rate:.2f} samples/s", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


# ------------------------------------------------------------------------------------------ assembly
def _assemble(out: Path, plans: list[dict], settings: dict, cfg: SynthConfig) -> None:
    rows = []
    for plan in plans:
        rows += json.loads((out / "parts" / f"{plan['video_id']}.json").read_text())
    samples = [Sample.from_dict(d) for _, d in sorted(rows, key=lambda r: r[0])]
    seed = settings["seed"]
    if settings["open_ended"] > 0:
        draw = np.random.default_rng([seed, 1]).random(len(samples))
        samples = [to_open_ended(s) if u < settings["open_ended"] else s for s, u in zip(samples, draw)]
    val_videos = split_videos([p["video_id"] for p in plans], settings["val_fraction"], seed)
    samples = [dataclasses.replace(s, meta={**s.meta, "split": "val" if s.meta["video_id"] in val_videos else "train"})
               for s in samples]
    write_samples(out / "samples.jsonl", samples)
    write_samples(out / "train.jsonl", [s for s in samples if s.meta["split"] == "train"])
    write_samples(out / "val.jsonl", [s for s in samples if s.meta["split"] == "val"])
    stats = compute_stats(samples)
    stats["split"] = dict(sorted(Counter(s.meta["split"] for s in samples).items()))
    stats["diversity"] = diversity(samples, [p["spec"] for p in plans])
    _write_atomic(out / "stats.json", json.dumps(stats, indent=1, sort_keys=True) + "\n")
    _write_atomic(out / "manifest.json", json.dumps({
        "generator_version": GENERATOR_VERSION, "settings": settings,
        "config": cfg.to_dict(),
        "counts": {"videos": len(plans), "samples": len(samples), "needs_tools": sum(bool(s.needs_tools) for s in samples),
                   "train": stats["split"].get("train", 0), "val": stats["split"].get("val", 0)},
    }, indent=1, sort_keys=True) + "\n")


def split_videos(video_ids: Sequence[str], val_fraction: float, seed: int) -> set[str]:
    """The videos of the validation split: ``round(val_fraction * n)`` of them (at least one when
    the share is positive and there are two videos or more), drawn from ``seed``.

    >>> sorted(split_videos(["v0", "v1", "v2", "v3"], 0.5, seed=0)) == sorted(split_videos(["v0", "v1", "v2", "v3"], 0.5, 0))
    True
    """
    n = len(video_ids)
    k = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    order = np.random.default_rng([seed, 2]).permutation(n)
    return {video_ids[i] for i in order[:k]}


def video_signature(spec: dict) -> tuple:
    """What a video *looks like*, coarsely: its objects (colour, shape, texture) and layout cells."""
    return tuple(sorted((i["color"], i["shape"], i["texture"], tuple(i["cell"]))
                        for i in spec["instances"] if not i.get("companion")))


def question_signature(sample: Sample) -> tuple:
    """A question with the same wording about a same-looking target with the same answer."""
    desc = sample.meta.get("target_desc", {})
    answer = sample.answer
    if sample.answer_kind == "choice":
        answer = sample.options[ord(str(answer)) - ord("A")]
    if sample.answer_kind in ("span", "box"):
        answer = tuple(round(float(v)) for v in answer)  # same span/box to the second/pixel
    return (sample.question, desc.get("color"), desc.get("shape"), str(answer))


def diversity(samples: Sequence[Sample], specs: Sequence[dict]) -> dict:
    """Near-duplicate counts: videos sharing :func:`video_signature` (same objects in the same
    cells), questions sharing :func:`question_signature`; and the distinct counts.

    >>> diversity([], [])["videos"]
    0
    """
    vs = Counter(video_signature(s) for s in specs)
    qs = Counter(question_signature(s) for s in samples)
    dup_v = sum(c for c in vs.values() if c > 1)
    dup_q = sum(c for c in qs.values() if c > 1)
    return {"videos": len(specs), "distinct_videos": len(vs), "near_duplicate_videos": dup_v,
            "near_duplicate_video_share": round(dup_v / max(1, len(specs)), 4),
            "questions": len(samples), "distinct_questions": len(qs), "near_duplicate_questions": dup_q,
            "near_duplicate_question_share": round(dup_q / max(1, len(samples)), 4),
            "distinct_question_texts": len({s.question for s in samples})}

