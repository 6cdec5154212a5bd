"""Input adapters: a QA file in some dataset's layout -> pipeline items (plain dicts).

An *item* is the JSON-serialisable record the stages pass along (it travels to Ray workers as
is)::

    {"id", "video" (path as given), "video_path" (absolute), "question", "options": [...],
     "answer", "answer_kind", "dimension", "source", "duration", "evidence", "meta": {...},
     "annotations": {"times": [...], "boxes": [[x1, y1, x2, y2], ...], "masks": [rle | None, ...],
                     "target": str | None} | None}

Formats (:data:`FORMATS`):

* ``native`` — our Sample rows (JSONL / JSON / Parquet). A sample's track and prompt box/mask
  become ``annotations`` so G2/G3 can run from them.
* ``v2p`` — V2P-Bench ``dataset_info`` (JSONL or a JSON array), parsed with
  :mod:`vseek_env.data.v2p` (ids ``video_id#k``); the pre-rendered prompt frame (``frame_path``,
  under ``frames/`` next to the videos root) is kept in ``meta`` and shown to the G2 model.
* ``llava`` — LLaVA-Video-178K style: ``{"id", "video", "conversations": [{"from": "human",
  "value": ...}, {"from": "gpt", "value": ...}, ...], "data_source"}``; every human/gpt pair is
  one item (``<id>#<k>``); ``A. text`` option lines make it multiple choice.

Example:
    >>> split_options("What is it?\\nA: a cat\\nB: a dog\\nSelect the best option. Give only the letter.")
    ('What is it?', ['a cat', 'a dog'])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from vseek_env.data.datasets import iter_json_rows
from vseek_env.data.sample import SampleError, option_letters

__all__ = ["FORMATS", "read_items", "split_options", "InputError"]

FORMATS = ("native", "v2p", "llava")


class InputError(ValueError):
    """An input file or row the adapter cannot read; the message names the file and row."""


_OPTION = re.compile(r"^\s*\(?([A-Z])\s*[\.\):]\s*(.+?)\s*$")
_INSTRUCTION = re.compile(
    r"^\s*(?:select the best option|answer with the option|please (?:respond|answer)|respond with|give only|"
    r"only (?:give|respond|answer)|answer the question|the best answer is)",
    re.IGNORECASE,
)
_MEDIA_TOKEN = re.compile(r"<(?:image|video)>\s*")


def split_options(text: str) -> tuple[str, list[str]]:
    """Split ``question\\nA: x\\nB: y\\n<instruction>`` into the question and option texts.

    Accepts ``A: x``, ``A. x``, ``(A) x`` and ``A) x`` lines with consecutive letters from A; drops
    trailing answer-format instructions. Without such lines the options are empty.
    """
    lines = _MEDIA_TOKEN.sub("", text).strip().splitlines()
    question: list[str] = []
    options: list[str] = []
    for line in lines:
        m = _OPTION.match(line)
        expected = option_letters(len(options) + 1)[-1]
        if m and m.group(1) == expected and (options or question):
            options.append(m.group(2))
        elif options or _INSTRUCTION.match(line):
            continue  # instructions after (or instead of) the option block
        else:
            question.append(line)
    q = "\n".join(question).strip()
    if not options:
        q = "\n".join(line for line in q.splitlines() if not _INSTRUCTION.match(line)).strip()
    return q, options


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield i, {k: v for k, v in row.items() if v is not None}
        return
    try:
        yield from iter_json_rows(path)
    except SampleError as exc:
        raise InputError(str(exc)) from None


def _resolve(video: str, root: Path) -> str:
    p = Path(video).expanduser()
    return str(p if p.is_absolute() else (root / p).resolve())


def _item(**fields: Any) -> dict:
    item = {
        "id": "", "video": "", "video_path": "", "question": "", "options": [], "answer": None,
        "answer_kind": "open", "dimension": None, "source": "", "duration": None, "evidence": None,
        "meta": {}, "annotations": None,
    }
    item.update(fields)
    return item


def _native(path: Path, root: Path) -> Iterator[dict]:
    from vseek_env.data.loaders import load_file

    try:
        dataset = load_file(path)
    except SampleError as exc:
        raise InputError(str(exc)) from None
    for s in dataset.samples:
        ann = None
        times = list(s.track.times) if s.track else []
        boxes = [list(b) for b in s.track.boxes] if s.track else []
        masks: list = [None] * len(times)
        if s.prompt.time is not None and s.prompt.box is not None:
            if s.prompt.time in times:
                k = times.index(s.prompt.time)
                boxes[k], masks[k] = list(s.prompt.box), s.prompt.mask_rle
            else:
                k = sum(t < s.prompt.time for t in times)
                times.insert(k, float(s.prompt.time))
                boxes.insert(k, list(s.prompt.box))
                masks.insert(k, s.prompt.mask_rle)
        if times:
            ann = {"times": times, "boxes": boxes, "masks": masks, "target": s.meta.get("target"),
                   "seed_time": s.prompt.time}
        yield _item(
            id=s.id, video=s.video, video_path=_resolve(s.video, root), question=s.question, options=list(s.options),
            answer=list(s.answer) if isinstance(s.answer, tuple) else s.answer, answer_kind=s.answer_kind,
            dimension=s.dimension, source=s.source, duration=s.duration,
            evidence=list(s.evidence) if s.evidence else None, meta=dict(s.meta), annotations=ann,
        )


def _v2p(path: Path, root: Path) -> Iterator[dict]:
    from vseek_env.data.v2p import parse_v2p_question, read_v2p_rows, v2p_sample_ids

    try:
        rows = read_v2p_rows(path)
    except SampleError as exc:
        raise InputError(str(exc)) from None
    frames_root = root.parent / "frames" if (root.parent / "frames").is_dir() else root
    for i, (row, sample_id) in enumerate(zip(rows, v2p_sample_ids(rows))):
        where = f"{path} row {i}"
        for key in ("video_path", "question", "answer"):
            if not row.get(key):
                raise InputError(f"{where}: V2P-Bench rows need {key!r}")
        question, options = parse_v2p_question(str(row["question"]))
        answer = str(row["answer"]).strip().upper()
        if options and answer not in option_letters(len(options)):
            raise InputError(f"{where}: answer {answer!r} is not an option letter of {len(options)} options")
        yield _item(
            id=sample_id, video=row["video_path"], video_path=_resolve(row["video_path"], root), question=question,
            options=list(options), answer=answer, answer_kind="choice" if options else "open",
            dimension=row.get("dimension"), source=str(row.get("source") or "V2P-Bench"), duration=row.get("duration"),
            meta={"category": row.get("category"), "frame_path": row.get("frame_path"), "frames_root": str(frames_root)},
        )


def _llava(path: Path, root: Path) -> Iterator[dict]:
    for i, row in _rows(path):
        where = f"{path} row {i}"
        video, turns = row.get("video"), row.get("conversations")
        if not video or not isinstance(turns, list):
            raise InputError(f"{where}: LLaVA-Video rows need 'video' and a 'conversations' list")
        base = str(row.get("id") or Path(video).stem)
        pairs = [(a, b) for a, b in zip(turns[::2], turns[1::2])]
        for k, (human, gpt) in enumerate(pairs):
            if not (isinstance(human, dict) and isinstance(gpt, dict)) or human.get("from") != "human" or gpt.get("from") != "gpt":
                raise InputError(f"{where}: conversation turn {2 * k} must be a human/gpt pair")
            question, options = split_options(str(human.get("value", "")))
            reply = str(gpt.get("value", "")).strip()
            answer: Any = reply
            kind = "open"
            if options:
                m = re.match(r"^\(?([A-Z])\b", reply)
                if not m or m.group(1) not in option_letters(len(options)):
                    raise InputError(f"{where} turn {2 * k + 1}: reply {reply[:40]!r} does not start with an option letter")
                answer, kind = m.group(1), "choice"
            yield _item(
                id=f"{base}#{k}", video=video, video_path=_resolve(video, root), question=question, options=options,
                answer=answer, answer_kind=kind, source=str(row.get("data_source") or "LLaVA-Video-178K"),
                meta={"conversation_turn": k},
            )


def read_items(path: str | Path, fmt: str, videos_root: str | Path | None = None) -> list[dict]:
    """All items of ``path`` in ``fmt`` (one of :data:`FORMATS`), in file order.

    Relative video paths resolve against ``videos_root`` (default: the input file's folder).
    Raises :class:`InputError` naming the file and row; duplicate ids are an error.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    if fmt not in FORMATS:
        raise InputError(f"unknown input format {fmt!r}; use one of {', '.join(FORMATS)}")
    root = Path(videos_root).expanduser().resolve() if videos_root else path.parent.resolve()
    reader = {"native": _native, "v2p": _v2p, "llava": _llava}[fmt]
    items, seen = [], set()
    for item in reader(path, root):
        if item["id"] in seen:
            raise InputError(f"{path}: duplicate id {item['id']!r}; ids must be unique")
        seen.add(item["id"])
        items.append(item)
    if not items:
        raise InputError(f"{path}: no rows")
    return items
