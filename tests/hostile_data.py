"""Hostile data cases (issue 14) shared by the tests and ``benchmarks/soak.py``.

Two kinds, each with the outcome the project documents for it:

- hostile videos: the files of ``tests/adversarial/videos.jsonl``, written by
  :data:`hostile_videos.GENERATORS`;
- hostile rows: a good sample changed by one of :data:`HOSTILE_ROWS` (an RLE mask declaring
  40000x40000 pixels, a NUL byte in ``video``, ``meta.duration = "about 2 min"``).

:func:`hostile_cases` builds both over one good sample. A case's ``stage`` says where it fails:
``"open"`` (``env.reset`` raises ``error`` naming the sample; ``skip_bad_samples`` skips it; an eval
records it as an error) or ``"eval"`` (the env plays it; only ``vseek eval``'s record is an error).
``error is None`` means the case must play like any other sample.

Example:
    >>> cases = hostile_cases(tmp_path, make_sample("s0"))           # doctest: +SKIP
    >>> [c.name for c in cases if c.error is not None][:2]            # doctest: +SKIP
    ['video:huge_8192', 'video:restarting_ts']
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vseek_env.data import Sample, SampleError, VisualPromptSpec
from vseek_env.video import VideoError

TESTS = Path(__file__).parent
VIDEO_CASES: list[dict] = [json.loads(line) for line in (TESTS / "adversarial" / "videos.jsonl").read_text().splitlines()
                           if line.strip()]
HUGE_RLE_SIDE = 40000


@dataclass(frozen=True)
class HostileRow:
    """A change to a good sample and what it must cause."""

    change: Callable[[Sample], Sample]
    error: type[Exception]
    match: str
    stage: str


HOSTILE_ROWS: dict[str, HostileRow] = {
    # 30 bytes of JSON declaring 1.6 G mask pixels: refused before allocating, naming the sample.
    "huge_rle": HostileRow(
        lambda s: dataclasses.replace(s, prompt=dataclasses.replace(
            s.prompt, mask_rle={"size": [HUGE_RLE_SIDE, HUGE_RLE_SIDE], "counts": [HUGE_RLE_SIDE ** 2]})),
        VideoError, str(HUGE_RLE_SIDE), "open"),
    "nul_video": HostileRow(lambda s: dataclasses.replace(s, video=s.video + "\x00.mp4"), SampleError, "NUL byte", "open"),
    # Only ``meta`` gives the duration (a top-level ``duration`` would win over it).
    "bad_meta_duration": HostileRow(lambda s: dataclasses.replace(s, duration=None, meta={**s.meta, "duration": "about 2 min"}),
                                    SampleError, "about 2 min", "eval"),
}


@dataclass(frozen=True)
class HostileCase:
    """One hostile sample: ``error``/``match`` is the documented failure (``None``: it plays)."""

    name: str
    sample: Sample
    error: type[Exception] | None
    match: str
    stage: str


def write_hostile_videos(folder: Path, *, in_child: bool = True) -> dict[str, Path]:
    """Write each video of ``videos.jsonl`` into ``folder/<case>/``; returns ``{case: file}``.

    ``in_child`` encodes them in a fresh interpreter, so the encoder's memory (an 8192x8192 frame
    takes about 450 MB to encode) never counts against the process that plays them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if in_child:
        code = (f"import sys, json; sys.path.insert(0, {str(TESTS)!r}); from pathlib import Path\n"
                "from hostile_data import write_hostile_videos\n"
                f"print(json.dumps({{k: str(v) for k, v in write_hostile_videos(Path({str(folder)!r}), in_child=False).items()}}))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
        return {k: Path(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    from hostile_videos import GENERATORS

    paths = {}
    for case in VIDEO_CASES:
        sub = folder / case["name"]
        sub.mkdir(exist_ok=True)
        paths[case["name"]] = GENERATORS[case["name"]](sub)
    return paths


def hostile_cases(folder: Path, good: Sample) -> list[HostileCase]:
    """Every hostile video (written under ``folder``) and row (changing ``good``) as a sample whose id
    is the case's name; video samples keep ``good``'s question, with a prompt box that fits any video."""
    cases = []
    for case, path in zip(VIDEO_CASES, write_hostile_videos(folder).values()):
        name = f"video:{case['name']}"
        sample = dataclasses.replace(good, id=name, video=str(path.resolve()), meta={}, track=None, evidence=None,
                                     prompt=VisualPromptSpec(time=0.0, style="rectangle", box=(1.0, 1.0, 20.0, 20.0)))
        # The env names the file and sample in a VideoError; hostile_play.py catches that class.
        error = VideoError if case["expect"] == "error" else None
        cases.append(HostileCase(name, sample, error, case.get("match", ""), "open"))
    for key, row in HOSTILE_ROWS.items():
        name = f"row:{key}"
        cases.append(HostileCase(name, row.change(dataclasses.replace(good, id=name)), row.error, row.match, row.stage))
    return cases
