"""Replay exported SFT conversations through the env and check them against what it returns.

For each conversation the env is reset on its sample, every assistant turn of the file is passed
to ``env.step``, and the env's live messages are rendered with the exporter's own renderer. The
file must hold the same opening (system prompt, question, overview, visual prompt), after every
response the same tool/feedback messages (same text, hence the same frame timestamps, and the same
pixels in the referenced image files), no response left after the episode ended, and the same
final reward as recorded at rollout time.

Example:
    >>> report = verify_export("sft/train.parquet", fmt="verl")              # doctest: +SKIP
    >>> report.ok, report.checked
    (True, 12)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vseek_env.coldstart.conversation import Exchange, Flat, assign_images, exchange_from_flat, render
from vseek_env.openai_api import without_endpoints_and_secrets


@dataclass
class ReplayReport:
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checked > 0 and not self.mismatches


def _load_image(ref: Any, base: Path | None) -> np.ndarray:
    from PIL import Image

    path = Path(ref)
    if base is not None and not path.is_absolute():
        path = base / path
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _compare(where: str, stored: list[Flat], live: list[Flat], base: Path | None, out: list[str]) -> None:
    if [(f.role, f.text) for f in stored] != [(f.role, f.text) for f in live]:
        out.append(f"{where}: messages differ: file {[(f.role, f.text[:120]) for f in stored]} "
                   f"!= env {[(f.role, f.text[:120]) for f in live]}")
        return
    for f, g in zip(stored, live):
        if len(f.images) != len(g.images):
            out.append(f"{where}: {len(f.images)} images in the file, {len(g.images)} from the env")
            return
        if [len(v) for v in f.videos] != [len(v) for v in g.videos]:
            out.append(f"{where}: videos of {[len(v) for v in f.videos]} frames in the file, {[len(v) for v in g.videos]} from the env")
            return
        frames = list(zip(f.images, g.images)) + [pair for v, w in zip(f.videos, g.videos) for pair in zip(v, w)]
        for n, (ref, arr) in enumerate(frames):
            try:
                pixels = _load_image(ref, base)
            except OSError as exc:
                out.append(f"{where}: image {n} ({ref}) cannot be read: {exc}")
                return
            if pixels.shape != np.asarray(arr).shape or not np.array_equal(pixels, arr):
                out.append(f"{where}: image {n} ({ref}) differs from the frame the env returns")
                return


def replay_exchange(env, sample_id: str, exchange: Exchange, fmt: str, *, reward: float | None = None,
                    base: Path | None = None, where: str = "", merge_tools: bool = True) -> list[str]:
    """Mismatches between ``exchange`` (read from an export) and the env replaying its responses."""
    out: list[str] = []
    _, info = env.reset(options={"sample_id": sample_id})
    _compare(f"{where} opening", exchange.opening, render(fmt, info["messages"], merge_tools=merge_tools), base, out)
    done, final = False, None
    for t, (response, observation) in enumerate(exchange.steps, 1):
        if done:
            out.append(f"{where} turn {t}: the episode already ended, yet the file has another response")
            break
        _, r, terminated, truncated, info = env.step(response)
        done = terminated or truncated
        _compare(f"{where} turn {t}", observation, render(fmt, info["messages"], merge_tools=merge_tools), base, out)
        if done:
            final = float(r)
    if not done:
        out.append(f"{where}: the file ends before the episode does")
    elif reward is not None and not math.isclose(final, reward, rel_tol=1e-9, abs_tol=1e-9):
        out.append(f"{where}: replayed reward {final} != recorded reward {reward}")
    return out


def _env_for(dataset: Any, env_options: str, cache: dict):
    from vseek_env.env import VideoSeekerEnv

    key = (dataset if isinstance(dataset, (str, Path)) else id(dataset), env_options)
    if key not in cache:
        options = without_endpoints_and_secrets(json.loads(env_options or "{}"), "replayed env_options")
        cache[key] = VideoSeekerEnv(dataset=dataset, **options)
    return cache[key]


def _conversations(path: Path, fmt: str) -> list[tuple[Exchange, dict, Path | None]]:
    if fmt == "verl":
        from vseek_env.integrations.verl.rows import read_rows

        out = []
        for i, row in enumerate(read_rows(path)):
            flats = [Flat(m["role"], m["content"]) for m in row["messages"]]
            images = [cell["image"] for cell in row.get("images") or []]
            videos = [list(cell["video"]) for cell in row.get("videos") or []]
            flats = assign_images(flats, images, f"{path} row {i}", videos)
            out.append((exchange_from_flat(flats), row["extra_info"], None))
        return out
    entries = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, entry in enumerate(entries):
        flats = ([Flat("system", entry["system"])] if entry.get("system") else []) + [
            Flat(m["from"], m["value"]) for m in entry["conversations"]]
        flats = assign_images(flats, entry.get("images", []), f"{path} entry {i}", entry.get("videos", []))
        out.append((exchange_from_flat(flats), entry["vseek"], path.parent))
    return out


def verify_export(path: str | Path, fmt: str, *, limit: int | None = None, dataset: Any = None) -> ReplayReport:
    """Replay every conversation of an SFT export (``fmt`` = ``verl`` or ``sharegpt``) through the env.

    ``dataset`` (a name, file or Dataset) overrides the dataset each conversation names, e.g. when
    the export is checked on another machine. Raises ``KeyError`` / ``FileNotFoundError`` when
    a conversation's dataset cannot be loaded, ``ValueError`` for a file that is not such an export.
    """
    path = Path(path)
    report = ReplayReport()
    envs: dict = {}
    try:
        for i, (exchange, meta, base) in enumerate(_conversations(path, fmt)[:limit]):
            env = _env_for(dataset if dataset is not None else meta["dataset"], meta.get("env_options", "{}"), envs)
            report.mismatches += replay_exchange(env, meta["sample_id"], exchange, fmt, reward=meta.get("reward"),
                                                 base=base, where=f"{meta.get('key', i)}",
                                                 merge_tools=bool(meta.get("merge_tools", True)))
            report.checked += 1
    finally:
        for env in envs.values():
            env.close()
    return report
