"""SFT exports of kept trajectories: verl's multi-turn SFT Parquet and LLaMA-Factory ShareGPT JSON.

**verl** (``MultiTurnSFTDataset``, ``data.multiturn.enable=True``): one row per trajectory with

    messages    [{"role": "system"|"user"|"assistant"|"tool", "content": str with <image>}, ...]
    images      [{"image": absolute PNG path}, ...]   in order of the <image> placeholders
    videos      [{"video": [absolute PNG paths]}, ...]  in order of the <video> placeholders (only
                with a video overview, the paper protocol; each video is its frame files)
    extra_info  {key, sample_id, dimension, policy, reward, dataset, env_options (JSON, no secrets)}

Images are read by verl's ``process_image`` (``qwen_vl_utils.fetch_image`` opens local paths).
The tool results of one response form one ``tool`` message (see
:mod:`~vseek_env.coldstart.conversation`), so verl's check that per-message tokenisation equals
the whole conversation holds with Qwen templates. With ``merge_tools=False`` every tool call
gets its own message; then multi-call responses need ``data.multiturn.ignore_input_ids_mismatch=True``.

**ShareGPT** (LLaMA-Factory, ``formatting: sharegpt``): a JSON list of
``{"conversations": [{"from": "human"|"gpt"|"observation", "value": ...}], "system", "images",
"vseek"}`` (and ``"videos"``: one list of frame files per ``<video>``, with the paper
protocol's video overview) with image paths relative to the JSON's folder (LLaMA-Factory's ``media_dir`` defaults
to the dataset folder), plus a ``dataset_info.json`` entry next to it. :func:`validate_sharegpt`
checks a file against LLaMA-Factory's documented schema.

Frames are not copied: both formats reference the rollout folder's ``frames/`` files. Secret-named
env options (e.g. a judge ``api_key`` in the reward spec) are never written: give the judge key as
``VSEEK_JUDGE_API_KEY`` so :func:`~vseek_env.coldstart.replay.verify_export` can replay the rewards.

Example:
    >>> kept, _ = rejection_sample(load_rollouts("runs/pixel").records)            # doctest: +SKIP
    >>> export_sft(load_rollouts("runs/pixel"), kept, "sft/train.parquet", fmt="verl")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from vseek_env.coldstart.conversation import (
    FORMATS,
    IMAGE_TOKEN,
    SHAREGPT_ROLE,
    VIDEO_TOKEN,
    Exchange,
    exchange_from_record,
)
from vseek_env.coldstart.rollouts import RolloutSet
from vseek_env.openai_api import without_endpoints_and_secrets

DATASET_INFO = "dataset_info.json"


def select_trajectories(records: Iterable[dict], *, dedup: bool = True, max_per_sample: int | None = None,
                        max_calls_per_turn: int | None = None) -> list[dict]:
    """Kept records to export: without repeats of the same responses for a sample (``dedup``), at most
    ``max_per_sample`` per sample, and optionally only those whose turns call at most ``max_calls_per_turn`` tools."""
    seen: set[tuple] = set()
    per_sample: dict[str, int] = defaultdict(int)
    out = []
    for r in records:
        responses = tuple(t["response"] for t in r.get("turns", []) if t.get("response") is not None)
        if dedup and (r["sample_id"], responses) in seen:
            continue
        if max_calls_per_turn is not None and any(len(t.get("tool_results", [])) > max_calls_per_turn for t in r.get("turns", [])):
            continue
        if max_per_sample is not None and per_sample[r["sample_id"]] >= max_per_sample:
            continue
        seen.add((r["sample_id"], responses))
        per_sample[r["sample_id"]] += 1
        out.append(r)
    return out


def _meta(rollouts: RolloutSet, record: dict, **extra) -> dict:
    return {**extra,
        "key": record["key"], "sample_id": record["sample_id"], "dimension": str(record.get("dimension")),
        "policy": str(record.get("policy")), "reward": float(record.get("reward", 0.0)),
        # Keys and endpoints are dropped, not masked: a replay takes them from its own configuration.
        "dataset": rollouts.dataset,
        "env_options": json.dumps(without_endpoints_and_secrets(rollouts.env_args, "SFT export env_options"), sort_keys=True),
    }


def _exchange(rollouts: RolloutSet, record: dict, fmt: str, merge_tools: bool = True) -> Exchange:
    ex = exchange_from_record(fmt, record["conversation"], merge_tools=merge_tools)
    texts = [f.text for f in ex.opening] + [t for resp, obs in ex.steps for t in [resp] + [f.text for f in obs]]
    placeholders = sum(t.count(IMAGE_TOKEN) for t in texts)
    if placeholders != len(ex.images):
        raise ValueError(f"trajectory {record['key']!r}: its text contains a literal {IMAGE_TOKEN}, which the SFT formats "
                         "reserve for images; drop that sample or rephrase it")
    missing = [p for p in ex.images + [f for v in ex.videos for f in v] if not (rollouts.root / p).is_file()]
    if missing:
        raise FileNotFoundError(f"trajectory {record['key']!r}: frame {rollouts.root / missing[0]} is missing from the "
                                "rollout folder; re-run `vseek rollouts run` on it to restore the frames")
    return ex


def verl_row(rollouts: RolloutSet, record: dict, *, merge_tools: bool = True) -> dict:
    """One verl multi-turn SFT row of a stored trajectory."""
    ex = _exchange(rollouts, record, "verl", merge_tools)
    messages = [{"role": f.role, "content": f.text} for f in ex.opening]
    for response, obs in ex.steps:
        messages.append({"role": "assistant", "content": response})
        messages += [{"role": f.role, "content": f.text} for f in obs]
    images = [{"image": str((rollouts.root / p).resolve())} for p in ex.images]
    row = {"messages": messages, "images": images, "extra_info": _meta(rollouts, record, merge_tools=merge_tools)}
    if ex.videos:
        row["videos"] = [{"video": [str((rollouts.root / p).resolve()) for p in v]} for v in ex.videos]
    return row


def sharegpt_entry(rollouts: RolloutSet, record: dict, base: Path) -> dict:
    """One LLaMA-Factory ShareGPT entry; image paths relative to ``base`` (the JSON's folder)."""
    ex = _exchange(rollouts, record, "sharegpt")
    system = "\n".join(f.text for f in ex.opening if f.role == "system")
    convo = [{"from": f.role, "value": f.text} for f in ex.opening if f.role != "system"]
    for response, obs in ex.steps:
        convo.append({"from": SHAREGPT_ROLE["assistant"], "value": response})
        convo += [{"from": f.role, "value": f.text} for f in obs]
    def rel(p: str) -> str:
        return os.path.relpath((rollouts.root / p).resolve(), base.resolve())

    entry = {"conversations": convo, "system": system, "images": [rel(p) for p in ex.images], "vseek": _meta(rollouts, record)}
    if ex.videos:
        entry["videos"] = [[rel(p) for p in v] for v in ex.videos]
    return entry


def export_sft(rollouts: RolloutSet, records: Iterable[dict], out: str | os.PathLike, *, fmt: str = "verl",
               dataset_name: str = "vseek_coldstart", merge_tools: bool = True) -> Path:
    """Write ``records`` (kept trajectories of ``rollouts``) as ``fmt`` to ``out``; returns the path.

    ``verl`` writes Parquet; ``sharegpt`` writes the JSON list and registers it as ``dataset_name``
    in ``dataset_info.json`` beside it (other entries of an existing file are kept). ``merge_tools``:
    one ``tool`` message per response in the verl format (default) or one per tool call.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown SFT format {fmt!r}; choose one of {FORMATS}")
    records = list(records)
    if not records:
        raise ValueError("no trajectories to export: rejection sampling kept none (loosen the filters or run more rollouts)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "verl":
        from vseek_env.integrations.verl.rows import write_parquet

        return write_parquet([verl_row(rollouts, r, merge_tools=merge_tools) for r in records], out)
    entries = [sharegpt_entry(rollouts, r, out.parent) for r in records]
    problems = validate_sharegpt(entries, out.parent)
    if problems:
        raise ValueError(f"the ShareGPT export breaks LLaMA-Factory's schema: {problems[:3]}")
    _write_json(out, entries)
    info_path = out.parent / DATASET_INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    info[dataset_name] = sharegpt_dataset_info(out.name, videos=any("videos" in e for e in entries))
    _write_json(info_path, info)
    return out


def sharegpt_dataset_info(file_name: str, videos: bool = False) -> dict:
    """The ``dataset_info.json`` entry LLaMA-Factory needs for the export (default ShareGPT tags)."""
    columns = {"messages": "conversations", "system": "system", "images": "images"}
    if videos:
        columns["videos"] = "videos"
    return {"file_name": file_name, "formatting": "sharegpt", "columns": columns}


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- LLaMA-Factory schema
_ODD = ("human", "observation")  # positions 1, 3, 5, ... (1-based)
_EVEN = ("gpt", "function_call")


def validate_sharegpt(entries, media_dir: str | os.PathLike | None = None) -> list[str]:
    """Problems of a ShareGPT dataset under LLaMA-Factory's documented ``sharegpt`` format; [] when valid.

    The rules (``data/README.md`` and its ShareGPT converter): a list of objects whose
    ``conversations`` is a non-empty list of ``{"from", "value"}`` string pairs; an optional leading
    ``system`` message; then human/observation at odd and gpt/function_call at even positions, an
    even number of them (the last one is the response learned); ``function_call`` values are JSON
    objects (or lists of them) with ``name`` and ``arguments``; ``system`` and ``tools`` are
    strings; ``images`` is a list of paths, as many as ``<image>`` placeholders in the messages,
    ``videos`` a list of frame-path lists, as many as ``<video>`` placeholders, and each file exists
    under ``media_dir`` when given.
    """
    problems: list[str] = []
    if not isinstance(entries, list):
        return [f"the dataset must be a JSON list, got {type(entries).__name__}"]
    for i, entry in enumerate(entries):
        where = f"entry {i}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object")
            continue
        convo = entry.get("conversations")
        if not isinstance(convo, list) or not convo:
            problems.append(f"{where}: 'conversations' must be a non-empty list")
            continue
        if any(not isinstance(m, dict) or set(m) != {"from", "value"} or not all(isinstance(m[k], str) for k in m)
               for m in convo):
            problems.append(f"{where}: every message must be exactly {{'from': str, 'value': str}}")
            continue
        if convo[0]["from"] == "system":
            convo = convo[1:]
        for j, m in enumerate(convo):
            allowed = _ODD if j % 2 == 0 else _EVEN
            if m["from"] not in allowed:
                problems.append(f"{where}: message {j} is from {m['from']!r}; expected one of {allowed}")
                break
            if m["from"] == "function_call" and not _valid_function_call(m["value"]):
                problems.append(f"{where}: message {j}: function_call value must be JSON with 'name' and 'arguments'")
        if len(convo) % 2:
            problems.append(f"{where}: an odd number of messages ({len(convo)}); it must end with a gpt/function_call turn")
        for key in ("system", "tools"):
            if key in entry and not isinstance(entry[key], str):
                problems.append(f"{where}: {key!r} must be a string")
        images = entry.get("images", [])
        if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
            problems.append(f"{where}: 'images' must be a list of paths")
            continue
        placeholders = sum(m["value"].count(IMAGE_TOKEN) for m in convo)
        if placeholders != len(images):
            problems.append(f"{where}: {placeholders} {IMAGE_TOKEN} placeholders but {len(images)} images")
        videos = entry.get("videos", [])
        if not isinstance(videos, list) or not all(isinstance(v, list) and all(isinstance(p, str) for p in v) for v in videos):
            problems.append(f"{where}: 'videos' must be a list of frame-path lists")
            continue
        n_videos = sum(m["value"].count(VIDEO_TOKEN) for m in convo)
        if n_videos != len(videos):
            problems.append(f"{where}: {n_videos} {VIDEO_TOKEN} placeholders but {len(videos)} videos")
        if media_dir is not None:
            for p in images + [f for v in videos for f in v]:
                if not (Path(media_dir) / p).is_file():
                    problems.append(f"{where}: image {p} does not exist under {media_dir}")
                    break
    return problems


def _valid_function_call(value: str) -> bool:
    try:
        calls = json.loads(value)
    except json.JSONDecodeError:
        return False
    calls = calls if isinstance(calls, list) else [calls]
    return bool(calls) and all(isinstance(c, dict) and "name" in c and "arguments" in c for c in calls)
