"""Rule-based answer matching for every answer kind.

>>> from vseek_env.rewards.matching import extract_choice
>>> extract_choice("The answer is (B).", 4)
'B'
"""

from __future__ import annotations

import re
import string

_LETTER_PATTERNS = (
    re.compile(r"^\s*\(?([A-Z])\)?\s*(?:[.:)\]]|$)"),  # "B", "(B)", "B.", "B: text"
    re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-Z])\)?\b", re.I),
    re.compile(r"\(([A-Z])\)"),
)


def extract_choice(text: str, n_options: int) -> str | None:
    """The option letter a free-form answer picks, or None when none is recognisable."""
    valid = {chr(ord("A") + i) for i in range(n_options)}
    for pattern in _LETTER_PATTERNS:
        m = pattern.search(text.strip())
        if m and m.group(1).upper() in valid:
            return m.group(1).upper()
    return None


def normalize_text(text: str) -> str:
    text = text.lower().strip()
    text = text.translate(str.maketrans("", "", string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def parse_numbers(text: str) -> list[float]:
    return [float(m) for m in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)]


def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal IoU of two intervals; 0 for empty or disjoint ones."""
    a0, a1 = sorted(a)
    b0, b1 = sorted(b)
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = (a1 - a0) + (b1 - b0) - inter
    return inter / union if union > 0 else 0.0


def box_iou(a, b) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes; 0 for empty or disjoint ones."""
    ax1, ax2 = sorted((a[0], a[2]))
    ay1, ay2 = sorted((a[1], a[3]))
    bx1, bx2 = sorted((b[0], b[2]))
    by1, by2 = sorted((b[1], b[3]))
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def match_answer(sample, prediction: str) -> tuple[float, str]:
    """``(score in [0, 1], rule)`` for ``prediction`` against ``sample.answer``."""
    kind = sample.answer_kind
    if kind == "choice":
        letter = extract_choice(prediction, len(sample.options))
        if letter is None:
            norm = normalize_text(prediction)
            hits = [chr(ord("A") + i) for i, opt in enumerate(sample.options) if norm and normalize_text(opt) == norm]
            letter = hits[0] if len(hits) == 1 else None
            rule = "option_text"
        else:
            rule = "letter"
        if letter is None:
            return 0.0, "unparsed"
        return float(letter == sample.answer), rule
    if kind == "number":
        numbers = parse_numbers(prediction)
        if not numbers:
            return 0.0, "unparsed"
        truth = float(sample.answer)
        return float(abs(numbers[0] - truth) <= 1e-6 + 1e-3 * abs(truth)), "numeric"
    if kind == "span":
        numbers = parse_numbers(prediction)
        if len(numbers) < 2:
            return 0.0, "unparsed"
        return float(interval_iou((numbers[0], numbers[1]), tuple(sample.answer)) >= 0.5), "tiou>=0.5"
    if kind == "box":
        numbers = parse_numbers(prediction)
        if len(numbers) < 4:
            return 0.0, "unparsed"
        return float(box_iou(numbers[:4], sample.answer) >= 0.5), "iou>=0.5"
    # open-ended
    if normalize_text(prediction) == normalize_text(str(sample.answer)):
        return 1.0, "exact"
    return 0.0, "no_match"
