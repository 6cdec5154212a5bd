"""G2 — video verification: is there one clear target, where and when is it, how to ask about it.

A VLM over an OpenAI-compatible endpoint watches the whole clip, as the paper's verifier does: frames
at 1 fps from start to end (:func:`clip_windows`), each after a ``<t seconds>`` label, with the
question, options and answer. When the clip holds more frames than one call's budget, it is split
into consecutive windows of near-equal length, asked in order (each told which part of the video it
shows); the first window whose reply is valid gives the record, and when none is, the sample is
dropped with every window's reason (:func:`verify_clip`). The reply is the paper's JSON
(:data:`VERIFY_PROMPT`)::

    {"valid": true, "reason": "...", "target": "the woman in the yellow coat",
     "tag": "woman in yellow coat",                     # 3-10 words
     "time_window": [12.0, 30.0],                       # seconds, inside the video
     "question": "What does <vp> do after she sits down?",   # must contain <vp>
     "options": ["...", ...],                           # same count as the input's options
     "prompt_style": "ellipse",                         # one of the 8 styles, or null
     "seed_time": 14.0,                                 # a time inside the window ...
     "seed_box": [x1, y1, x2, y2]}                      # ... and the target's box then, 0-1000 normalised

:func:`validate_verification` checks every field strictly; a reply that fails is sent back with
the error (``retries`` times), then the sample is dropped with the reason. ``valid: false`` drops
it with the model's reason. When the source already has target boxes/masks,
:func:`verify_from_annotations` builds the same record without a model call.

Example:
    >>> rec, err = validate_verification({"valid": True, "reason": "ok", "target": "red ball",
    ...     "tag": "small red ball on left", "time_window": [1, 4], "question": "Where does <vp> go?",
    ...     "options": [], "prompt_style": None, "seed_time": 2, "seed_box": [100, 200, 300, 400]},
    ...     duration=6.0, n_options=0, frame_size=(160, 90))
    >>> err, rec["seed_box"], rec["time_window"]
    ('', [16.0, 18.0, 48.0, 36.0], [1.0, 4.0])
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from vseek_env.pipeline.llm import ChatClient, image_part, parse_json_reply
from vseek_env.protocol import format_timestamp_label
from vseek_env.visual_prompts import STYLES

__all__ = [
    "VERIFY_PROMPT",
    "VP_TOKEN",
    "clip_windows",
    "validate_verification",
    "verify_clip",
    "verify_with_model",
    "verify_from_annotations",
]

VP_TOKEN = "<vp>"
TAG_WORDS = (3, 10)

VERIFY_PROMPT = """You turn a video question into an instance-level question whose target will be marked on one frame with a visual prompt.
Frames are given above, each after its timestamp. The video lasts {duration:.1f} seconds and is {width}x{height} pixels.

Question: {question}
{options}Answer: {answer}

Decide whether the question is about ONE specific, visible, unambiguous entity (person, animal or object).
Reply with JSON only, no prose:
{{"valid": true or false,
  "reason": "<why>",
  "target": "<short description of the entity>",
  "tag": "<3 to 10 words naming the entity>",
  "time_window": [start_seconds, end_seconds],
  "question": "<the question rewritten so that the entity is referred to only as <vp>>",
  "options": [<the options rewritten the same way, same number and order{n_opts}>],
  "prompt_style": one of {styles} or null,
  "seed_time": <a time inside the window where the entity is clearly visible>,
  "seed_box": [x1, y1, x2, y2]}}
seed_box is the entity's box at seed_time in coordinates normalised to 0-1000 (x to the right, y down)."""


def clip_windows(duration: float, *, fps: float = 1.0, budget: int = 32) -> list[list[float]]:
    """Sample times at ``fps`` over ``[0, duration)`` (at least one), split into the fewest windows
    of at most ``budget`` frames, of near-equal length.

    >>> [len(w) for w in clip_windows(10.0, budget=4)], clip_windows(2.5, budget=8)
    ([4, 3, 3], [[0.0, 1.0, 2.0]])
    """
    if not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a finite number >= 0, got {duration}")
    if fps <= 0 or budget < 1:
        raise ValueError(f"fps must be > 0 and budget >= 1, got fps={fps}, budget={budget}")
    times = [k / fps for k in range(max(1, math.ceil(duration * fps - 1e-9)))]
    n_windows = -(-len(times) // budget)
    size, extra = divmod(len(times), n_windows)
    out, start = [], 0
    for i in range(n_windows):
        end = start + size + (1 if i < extra else 0)
        out.append(times[start:end])
        start = end
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_verification(
    obj: Any, *, duration: float, n_options: int, frame_size: tuple[int, int]
) -> tuple[dict | None, str]:
    """Check a G2 reply; ``(record, "")`` with times clamped to the video and ``seed_box`` in
    pixels of a ``frame_size = (W, H)`` frame, or ``(None, error)`` naming the first bad field.

    A reply with ``valid: false`` returns ``({"valid": False, "reason": ...}, "")``.
    """
    if not isinstance(obj, dict):
        return None, "the reply must be a JSON object"
    if not isinstance(obj.get("valid"), bool):
        return None, "'valid' must be true or false"
    reason = obj.get("reason")
    if not isinstance(reason, str):
        return None, "'reason' must be a string"
    if not obj["valid"]:
        return {"valid": False, "reason": reason}, ""
    for key in ("target", "tag", "question"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            return None, f"'{key}' must be a non-empty string"
    n_words = len(obj["tag"].split())
    if not TAG_WORDS[0] <= n_words <= TAG_WORDS[1]:
        return None, f"'tag' must have {TAG_WORDS[0]}-{TAG_WORDS[1]} words, got {n_words}"
    if VP_TOKEN not in obj["question"]:
        return None, f"'question' must refer to the target as {VP_TOKEN}"
    window = obj.get("time_window")
    if not (isinstance(window, list) and len(window) == 2 and all(_finite(v) for v in window)):
        return None, "'time_window' must be [start_seconds, end_seconds]"
    tol = max(1.0, 0.02 * duration)  # models round times; a little overshoot is not an error
    start, end = float(window[0]), float(window[1])
    if not (-tol <= start < end <= duration + tol):
        return None, f"'time_window' {window} must satisfy 0 <= start < end <= {duration:.1f}"
    start, end = max(0.0, start), min(duration, end)
    if end <= start:
        return None, f"'time_window' {window} does not overlap the video"
    options = obj.get("options", [])
    if options is None:
        options = []
    if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options):
        return None, "'options' must be a list of non-empty strings"
    if len(options) != n_options:
        return None, f"'options' must keep the {n_options} input option(s), got {len(options)}"
    style = obj.get("prompt_style")
    if style is not None and style not in STYLES:
        return None, f"'prompt_style' must be one of {', '.join(STYLES)} or null, got {style!r}"
    seed_time = obj.get("seed_time")
    if not _finite(seed_time) or not start - tol <= seed_time <= end + tol:
        return None, f"'seed_time' must be a number inside the time window [{start:g}, {end:g}]"
    box = obj.get("seed_box")
    if not (isinstance(box, list) and len(box) == 4 and all(_finite(v) for v in box)):
        return None, "'seed_box' must be [x1, y1, x2, y2] normalised to 0-1000"
    x1, y1, x2, y2 = (min(1000.0, max(0.0, float(v))) for v in box)
    if not (x2 > x1 and y2 > y1):
        return None, f"'seed_box' {box} must have x2 > x1 and y2 > y1 inside 0-1000"
    w, h = frame_size
    return {
        "valid": True,
        "reason": reason,
        "target": obj["target"].strip(),
        "tag": " ".join(obj["tag"].split()),
        "time_window": [start, end],
        "question": obj["question"].strip(),
        "options": [o.strip() for o in options],
        "prompt_style": style,
        "seed_time": float(min(max(seed_time, start), end)),
        "seed_box": [x1 * w / 1000, y1 * h / 1000, x2 * w / 1000, y2 * h / 1000],
        "via": "vlm",
    }, ""


def verify_with_model(
    client: ChatClient,
    item: dict,
    frames: list[tuple[float, Any]],
    *,
    duration: float,
    frame_size: tuple[int, int],
    retries: int = 2,
    prompt_image: Any = None,
    part: tuple[int, int] | None = None,
) -> tuple[dict | None, str]:
    """Ask the VLM; ``(record, "")`` or ``(None, reason)`` after ``retries`` corrections.

    ``part = (i, n)`` tells the model that the frames are window ``i`` of ``n`` of the video.
    """
    content: list[dict] = []
    if part is not None and part[1] > 1 and frames:
        content.append({"type": "text", "text": (
            f"Part {part[0]} of {part[1]} of the video: frames from {frames[0][0]:.1f} to {frames[-1][0]:.1f} seconds. "
            "Answer about this part; the time window and seed must lie in it."
        )})
    for t, frame in frames:
        content.append({"type": "text", "text": format_timestamp_label(t)})
        content.append(image_part(frame))
    if prompt_image is not None:
        content.append({"type": "text", "text": "The dataset's own marked frame of the target:"})
        content.append(image_part(prompt_image))
    options = item.get("options") or []
    opts = "".join(f"{chr(65 + i)}. {o}\n" for i, o in enumerate(options))
    content.append({
        "type": "text",
        "text": VERIFY_PROMPT.format(
            duration=duration, width=frame_size[0], height=frame_size[1], question=item["question"],
            options=f"Options:\n{opts}" if opts else "", answer=item.get("answer"),
            n_opts=f", {len(options)} item(s)" if options else ", [] when there are none", styles=list(STYLES),
        ),
    })
    messages: list[dict] = [{"role": "user", "content": content}]
    error = ""
    for _ in range(retries + 1):
        reply = client.complete(messages)
        obj, error = parse_json_reply(reply)
        if obj is not None:
            record, error = validate_verification(obj, duration=duration, n_options=len(options), frame_size=frame_size)
            if record is not None:
                return record, ""
        messages = messages[:1] + [
            {"role": "assistant", "content": reply if isinstance(reply, str) else ""},
            {"role": "user", "content": f"Your reply was not accepted: {error}. Reply again with the corrected JSON only."},
        ]
    return None, f"invalid reply after {retries + 1} attempt(s): {error}"


def verify_clip(
    client: ChatClient,
    item: dict,
    windows: Iterable[list[tuple[float, Any]]],
    *,
    duration: float,
    frame_size: tuple[int, int],
    retries: int = 2,
    prompt_image: Any = None,
    n_windows: int | None = None,
) -> tuple[dict | None, str]:
    """Ask the VLM window by window (``windows`` yields each window's ``(time, frame)`` list, decoded
    only when reached); the first valid record wins. Otherwise ``({"valid": False, ...}, "")`` with
    the models' reasons when every window was judged invalid, or ``(None, reason)`` when a window's
    reply never passed validation."""
    reasons: list[str] = []
    for i, frames in enumerate(windows, start=1):
        record, why = verify_with_model(
            client, item, frames, duration=duration, frame_size=frame_size, retries=retries,
            prompt_image=prompt_image, part=(i, n_windows) if n_windows else None,
        )
        if record is None:
            return None, why if not n_windows or n_windows == 1 else f"window {i}: {why}"
        if record["valid"]:
            return record, ""
        reasons.append(record["reason"] if not n_windows or n_windows == 1 else f"window {i}: {record['reason']}")
    return {"valid": False, "reason": "; ".join(reasons) or "no frames"}, ""


def verify_from_annotations(item: dict, *, duration: float) -> tuple[dict | None, str]:
    """The G2 record from the source's own target annotations (no model call).

    The window is the sample's evidence window if given, else the annotated span (widened to at
    least one second); the seed is the annotated seed time, else the first annotated time. The
    question keeps its text (a native question already refers to the marked target; a ``<vp>`` in
    it is rewritten by G4).
    """
    ann = item.get("annotations") or {}
    times = [float(t) for t in ann.get("times") or ()]
    boxes = ann.get("boxes") or []
    masks = ann.get("masks") or [None] * len(times)
    known = [i for i, t in enumerate(times) if (i < len(boxes) and boxes[i]) or (i < len(masks) and masks[i])]
    if not known:
        return None, "annotations hold no box or mask"
    seed_time = ann.get("seed_time")
    if seed_time is None or all(abs(times[i] - seed_time) > 1e-6 for i in known):
        seed_time = times[known[0]]
    k = next(i for i in known if abs(times[i] - seed_time) <= 1e-6)
    box = boxes[k] if k < len(boxes) and boxes[k] else None
    if box is None:
        from vseek_env.masks import decode_rle, mask_to_box

        box = list(mask_to_box(decode_rle(masks[k])))
    if item.get("evidence"):
        start, end = (float(v) for v in item["evidence"])
    else:
        start, end = min(times[i] for i in known), max(times[i] for i in known)
    if end - start < 1.0:
        end = start + 1.0
    start, end = max(0.0, min(start, seed_time)), min(duration, max(end, seed_time))
    target = ann.get("target") or "the target"
    tag = " ".join(str(target).split()[:10])
    if len(tag.split()) < TAG_WORDS[0]:
        tag = f"the marked {tag}".strip() if len(tag.split()) >= 1 else "the marked target"
    return {
        "valid": True,
        "reason": "target given by the source's annotations",
        "target": str(target),
        "tag": tag,
        "time_window": [start, end],
        "question": item["question"],
        "options": list(item.get("options") or []),
        "prompt_style": item.get("meta", {}).get("prompt_style"),
        "seed_time": float(seed_time),
        "seed_box": [float(v) for v in box],
        "seed_mask": masks[k] if k < len(masks) else None,
        "via": "annotations",
    }, ""
