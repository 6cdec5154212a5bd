"""``vseek bench segmenter``: every available G3 segmenter on DAVIS-style sequences, in one run.

Each sequence (``DIR/<name>.mp4`` + ``DIR/<name>.npz``) is seeded with frame 0's true mask — and,
with ``--seed both`` (the default), separately with only its box, as G2 gives it — then scored at
``--fps`` by region similarity J and boundary F (:mod:`vseek_env.pipeline.segmenters.davis`). The
static-box baseline holds the seed box still. A segmenter that cannot run here (no weights, no
package) is listed with the reason instead of a score. Prints a table; writes JSON to ``--out``.

Example:
    vseek bench segmenter --davis /work/shared/data/davis --out benchmarks/results/segmenter_davis.json
    vseek bench segmenter --davis DIR --segmenters opencv --max-frames 4     # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

__all__ = ["register", "run_segmenter_bench", "format_table"]

BASELINE = "static-box"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segmenter",
        help="score the G3 segmenters on DAVIS-style sequences (J and F per sequence, means)",
        description=(__doc__ or "").split("Example:")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--davis", required=True, help="folder of <name>.mp4 + <name>.npz (masks of every frame)")
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    p.add_argument("--segmenters", default="opencv,sam,sam3",
                   help="comma-separated segmenters to score besides the static box (default: %(default)s)")
    p.add_argument("--seed", choices=("mask", "box", "both"), default="both",
                   help="seed with frame 0's mask, its box, or both (default: %(default)s)")
    p.add_argument("--fps", type=float, default=6.0, help="scoring rate (default: %(default)s)")
    p.add_argument("--max-frames", type=int, default=None, help="score only the first N frames of each sequence")
    p.add_argument("--sequences", default=None, help="comma-separated sequence names (default: all in --davis)")
    p.add_argument("--sam-model", default=None, help="SAM 2 weights (folder or cached Hub id)")
    p.add_argument("--sam3-model", default=None, help="SAM 3 weights (folder or cached Hub id)")
    p.set_defaults(func=run)


def run_segmenter_bench(
    davis: str | Path, *, segmenters=("opencv", "sam", "sam3"), seeds=("mask", "box"), fps: float = 6.0,
    max_frames: int | None = None, sequences=None, options: dict | None = None, log=lambda m: None,
) -> dict:
    """Score each segmenter (and the static box) on each sequence; the JSON-ready result."""
    from vseek_env.pipeline.segmenters import make_segmenter
    from vseek_env.pipeline.segmenters.davis import evaluate_sequence, find_sequences, static_box_masks

    seqs = find_sequences(davis)
    if sequences:
        unknown = sorted(set(sequences) - {s.name for s in seqs})
        if unknown:
            raise ValueError(f"no sequence(s) {unknown} in {davis}; found {[s.name for s in seqs]}")
        seqs = [s for s in seqs if s.name in sequences]
    rows: list[dict] = []

    def static(request):
        return [(request.seed_box, m) for m in static_box_masks(request.seed_box, request.frame_shape, len(request.times))]

    runners = [(BASELINE, "box", static, None)]
    for name in segmenters:
        seg = make_segmenter(name, **(options or {}).get(name, {}))
        why = seg.unavailable()
        for seed in seeds:
            runners.append((name, seed, seg, why))
    for name, seed, seg, why in runners:
        row = {"segmenter": name, "seed": seed, "sequences": {}}
        if why:
            row["unavailable"] = why
            log(f"{name} ({seed} seed): unavailable: {why}")
            rows.append(row)
            continue
        for seq in seqs:
            score = evaluate_sequence(seg, seq, fps=fps, seed=seed, max_frames=max_frames)
            row["sequences"][seq.name] = score
            log(f"{name:10s} {seed:4s} {seq.name:14s} J {score['J']:.3f}  F {score['F']:.3f}  {score['ms_per_frame']:.0f} ms/frame")
        row["J"] = float(np.mean([s["J"] for s in row["sequences"].values()]))
        row["F"] = float(np.mean([s["F"] for s in row["sequences"].values()]))
        row["ms_per_frame"] = float(np.mean([s["ms_per_frame"] for s in row["sequences"].values()]))
        rows.append(row)
    return {
        "davis": str(davis), "fps": fps, "max_frames": max_frames, "sequences": [s.name for s in seqs], "results": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": _load()},
    }


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def format_table(result: dict) -> str:
    """One line per (segmenter, seed): J and F per sequence, their means, time per frame."""
    names = result["sequences"]
    head = f"{'segmenter':<11}{'seed':<6}" + "".join(f"{n[:14]:>16}" for n in names) + f"{'mean J':>9}{'mean F':>9}{'ms/frame':>10}"
    lines = [f"J / F at {result['fps']:g} fps, seeded on frame 0", head]
    for row in result["results"]:
        start = f"{row['segmenter']:<11}{row['seed']:<6}"
        if "unavailable" in row:
            lines.append(start + f"  unavailable: {row['unavailable']}")
            continue
        cells = "".join(f"{row['sequences'][n]['J']:>9.3f}/{row['sequences'][n]['F']:.3f}"[-16:].rjust(16) for n in names)
        lines.append(start + cells + f"{row['J']:>9.3f}{row['F']:>9.3f}{row['ms_per_frame']:>10.0f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    names = [s.strip() for s in args.segmenters.split(",") if s.strip()]
    seeds = ("mask", "box") if args.seed == "both" else (args.seed,)
    options = {k: v for k, v in (("sam", {"model": args.sam_model}), ("sam3", {"model": args.sam3_model})) if v["model"]}
    try:
        result = run_segmenter_bench(
            args.davis, segmenters=names, seeds=seeds, fps=args.fps, max_frames=args.max_frames,
            sequences=[s.strip() for s in args.sequences.split(",")] if args.sequences else None,
            options=options, log=lambda m: print(m, file=sys.stderr),
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"vseek bench segmenter: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        print(f"wrote {out}")
    return 0
