"""Rule-based answer matching and the IoU primitives every reward shares.

Nothing here raises on model output: unparseable text gives ``None`` / score 0, and every IoU is a
finite number in ``[0, 1]`` (degenerate, non-finite or disjoint inputs give 0).

>>> extract_choice("The answer is (B).", 4)
'B'
>>> interval_iou((0, 2), (1, 3))
0.3333333333333333
>>> parse_span("from 0:12 to 0:30.5")
(12.0, 30.5)
"""

from __future__ import annotations

import difflib
import math
import re
import string
from typing import Any, Iterable, Sequence

# -- choice letters ------------------------------------------------------------------------------

# Tried in order; the first pattern that yields a valid letter wins. Upper-case letters only except
# where the whole answer is the letter, so "a dog" is never read as option A.
_LETTER_PATTERNS = (
    re.compile(r"^\W*([A-Za-z])\W*$"),  # "B", "(b)", "**B**", "B."
    re.compile(r"^\s*[\(\[*]*([A-Z])(?:[\)\]*]+|\s*[.:\-)\]])"),  # "B. text", "(B) text", "B: text", "**B** text"
    re.compile(r"(?i:answer|option|choice)\s*(?i:is|:|=)?\s*(?i:option\s*)?[\(\[*]*([A-Z])\b"),  # "the answer is B"
)
_ANYWHERE = (re.compile(r"\(([A-Z])\)"), re.compile(r"\*\*([A-Z])\*\*"))  # unique "(B)" / "**B**" in prose
# A capital letter standing alone ("(B)", "B.", "B:", "[B]", "**B**", "A-B", "A or B") is an option
# marker, except before a lower-case word, where it is the article "A" or the pronoun "I".
_MARKER = re.compile(r"(?<![A-Za-z0-9'])([A-Z])(?![A-Za-z0-9])(?!\s+[a-z]|'[a-z])")


def extract_choice(text: str, n_options: int) -> str | None:
    """The option letter a free-form answer picks, or None when none is recognisable.

    An answer that also marks another valid option ("(A) or (B)", "A.B.C.D", "the answer is A or
    B") picks none: crediting its first letter would reward hedging.

    >>> [extract_choice(t, 4) for t in ("b", "C: left", "I think the answer is D", "(A) or (B)", "B: A man walks", "a dog")]
    ['B', 'C', 'D', None, 'B', None]
    """
    if not isinstance(text, str):
        return None
    valid = {chr(ord("A") + i) for i in range(max(0, min(n_options, 26)))}
    text = text.strip()
    letter = None
    for pattern in _LETTER_PATTERNS:
        m = pattern.search(text)
        if m and m.group(1).upper() in valid:
            letter = m.group(1).upper()
            break
    else:
        for pattern in _ANYWHERE:
            letters = {m for m in pattern.findall(text) if m in valid}
            if len(letters) == 1:  # "(A) is wrong, (B) is right" is ambiguous: no letter
                letter = letters.pop()
                break
    if letter is None or any(m != letter and m in valid for m in _MARKER.findall(text)):
        return None
    return letter


def match_option_text(prediction: str, options: Sequence[str]) -> str | None:
    """The letter of the one option whose text the prediction states, or None if zero or several.

    An option counts when the normalised prediction equals it or contains it as whole words; an
    option contained in another contained option ("red" in "dark red") is dropped in its favour.

    >>> match_option_text("It moves to the right.", ["left", "right"])
    'B'
    """
    pred = f" {normalize_text(prediction)} "
    norms = [normalize_text(o) for o in options]
    exact = [i for i, n in enumerate(norms) if n and pred.strip() == n]
    if len(exact) == 1:
        return chr(ord("A") + exact[0])
    hits = [i for i, n in enumerate(norms) if n and f" {n} " in pred]
    hits = [i for i in hits if not any(j != i and norms[i] != norms[j] and f" {norms[i]} " in f" {norms[j]} " for j in hits)]
    return chr(ord("A") + hits[0]) if len(hits) == 1 else None


# -- text and numbers ----------------------------------------------------------------------------

_NUMBER_WORDS = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_CLOCK = re.compile(r"(?<![\d.])(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)(?![\d:])")


def normalize_text(text: str) -> str:
    """Lower case, no punctuation or articles, single spaces: ``"The Red  car." -> "red car"``."""
    text = str(text).lower().strip()
    text = text.translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def parse_numbers(text: str) -> list[float]:
    """Finite numbers in ``text`` in order, digits or number words up to twenty.

    >>> parse_numbers("three cars, 2.5 s, 1e999")
    [3.0, 2.5]
    """
    out: list[tuple[int, float]] = []
    for m in _NUMBER.finditer(text):
        value = float(m.group())
        if math.isfinite(value):
            out.append((m.start(), value))
    for m in re.finditer(r"[A-Za-z]+", text):
        word = m.group().lower()
        if word in _NUMBER_WORDS:
            out.append((m.start(), float(_NUMBER_WORDS[word])))
    return [v for _, v in sorted(out)]


def parse_times(text: str) -> list[float]:
    """Times in seconds in order: plain numbers and ``m:ss`` / ``h:mm:ss(.f)`` clock values."""
    found: list[tuple[int, float]] = []
    covered: list[tuple[int, int]] = []
    for m in _CLOCK.finditer(text):
        h, mnt, sec = m.group(1), m.group(2), m.group(3)
        found.append((m.start(), (int(h) if h else 0) * 3600 + int(mnt) * 60 + float(sec)))
        covered.append(m.span())
    for m in _NUMBER.finditer(text):
        if any(a <= m.start() < b for a, b in covered):
            continue
        value = float(m.group())
        if math.isfinite(value):
            found.append((m.start(), value))
    return [v for _, v in sorted(found)]


def parse_span(text: str) -> tuple[float, float] | None:
    """The first two times in ``text`` as ``(start, end)``, or None."""
    times = parse_times(text) if isinstance(text, str) else []
    return (times[0], times[1]) if len(times) >= 2 else None


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The first four numbers in ``text`` as ``(x1, y1, x2, y2)``, or None."""
    numbers = [float(v) for v in _NUMBER.findall(text)] if isinstance(text, str) else []
    numbers = [v for v in numbers if math.isfinite(v)]
    return tuple(numbers[:4]) if len(numbers) >= 4 else None  # type: ignore[return-value]


def text_similarity(prediction: str, truth: str) -> float:
    """Similarity of two normalised texts in ``[0, 1]``.

    The larger of difflib's ratio and, when one text contains the other as whole words, the ratio
    of their lengths (the paper's code accepts containment at ≥ 0.8 length ratio).
    """
    a, b = normalize_text(prediction), normalize_text(truth)
    if not a or not b:
        return float(a == b and bool(a))
    ratio = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    short, long_ = sorted((a, b), key=len)
    if f" {short} " in f" {long_} ":
        ratio = max(ratio, len(short) / len(long_))
    return ratio


# -- IoU -----------------------------------------------------------------------------------------


def _finite(values: Iterable[Any]) -> list[float] | None:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _scaled(values: list[float]) -> list[float]:
    # IoU is scale-invariant; rescaling huge coordinates keeps differences and areas from overflowing.
    # Ordinary values are left alone so that their IoU is exact.
    scale = max((abs(v) for v in values), default=0.0)
    return [v / scale for v in values] if scale > 1e100 or 0 < scale < 1e-100 else values


def interval_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Temporal IoU of two ``(start, end)`` intervals (either order); 0 for empty, disjoint or non-finite ones.

    >>> interval_iou((0, 4), (2, 6)), interval_iou((0, 1), (1, 2))
    (0.3333333333333333, 0.0)
    """
    values = _finite(list(a)[:2] + list(b)[:2])
    if values is None or len(values) != 4:
        return 0.0
    a0, a1, b0, b1 = _scaled(values)
    a0, a1 = sorted((a0, a1))
    b0, b1 = sorted((b0, b1))
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = (a1 - a0) + (b1 - b0) - inter
    return min(1.0, inter / union) if union > 0 and inter > 0 else 0.0


def merge_intervals(intervals: Iterable[Sequence[float]]) -> list[tuple[float, float]]:
    """Sorted, non-overlapping union of intervals; empty and non-finite ones are dropped."""
    clean = []
    for iv in intervals:
        values = _finite(list(iv)[:2])
        if values is not None and len(values) == 2 and values[0] != values[1]:
            clean.append(tuple(sorted(values)))
    merged: list[tuple[float, float]] = []
    for s, e in sorted(clean):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def intervals_iou(a: Iterable[Sequence[float]], b: Iterable[Sequence[float]]) -> float:
    """IoU of the unions of two sets of intervals (overlaps merged first); 0 when either is empty.

    >>> intervals_iou([(0, 2), (1, 3)], [(2, 4)])
    0.25
    """
    ma, mb = merge_intervals(a), merge_intervals(b)
    if not ma or not mb:
        return 0.0
    flat = _scaled([v for iv in ma + mb for v in iv])
    pts = list(zip(flat[0::2], flat[1::2]))
    ma, mb = pts[: len(ma)], pts[len(ma):]
    inter, i, j = 0.0, 0, 0
    while i < len(ma) and j < len(mb):
        inter += max(0.0, min(ma[i][1], mb[j][1]) - max(ma[i][0], mb[j][0]))
        if ma[i][1] < mb[j][1]:
            i += 1
        else:
            j += 1
    union = sum(e - s for s, e in ma) + sum(e - s for s, e in mb) - inter
    return min(1.0, inter / union) if union > 0 and inter > 0 else 0.0


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes (corners in either order); 0 for empty, disjoint or non-finite ones.

    >>> box_iou([0, 0, 2, 2], [1, 1, 3, 3])
    0.14285714285714285
    """
    values = _finite(list(a)[:4] + list(b)[:4])
    if values is None or len(values) != 8:
        return 0.0
    v = _scaled(values)
    ax1, ax2 = sorted((v[0], v[2]))
    ay1, ay2 = sorted((v[1], v[3]))
    bx1, bx2 = sorted((v[4], v[6]))
    by1, by2 = sorted((v[5], v[7]))
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return min(1.0, inter / union) if union > 0 and inter > 0 else 0.0


# -- the rule matcher ----------------------------------------------------------------------------


def match_answer(
    sample: Any,
    prediction: str,
    *,
    fuzzy_threshold: float = 0.85,
    iou_threshold: float = 0.5,
    number_rel_tol: float = 1e-3,
) -> tuple[float, str]:
    """``(score in {0, 1}, rule)`` for ``prediction`` against ``sample.answer`` by answer kind.

    ``rule`` names what decided: ``letter``, ``option_text``, ``numeric``, ``tiou>=T``, ``iou>=T``,
    ``exact``, ``fuzzy``, ``no_match`` or ``unparsed``.
    """
    if not isinstance(prediction, str):
        return 0.0, "unparsed"
    kind = sample.answer_kind
    if kind == "choice":
        letter, rule = extract_choice(prediction, len(sample.options)), "letter"
        if letter is None:
            letter, rule = match_option_text(prediction, sample.options), "option_text"
        if letter is None:
            return 0.0, "unparsed"
        return float(letter == str(sample.answer)), rule
    if kind == "number":
        numbers = parse_numbers(prediction)
        if not numbers:
            return 0.0, "unparsed"
        return float(_numbers_equal(numbers[0], float(sample.answer), number_rel_tol)), "numeric"
    if kind == "span":
        span = parse_span(prediction)
        if span is None:
            return 0.0, "unparsed"
        return float(interval_iou(span, sample.answer) >= iou_threshold), f"tiou>={iou_threshold:g}"
    if kind == "box":
        box = parse_box(prediction)
        if box is None:
            return 0.0, "unparsed"
        return float(box_iou(box, sample.answer) >= iou_threshold), f"iou>={iou_threshold:g}"
    return match_open(prediction, str(sample.answer), fuzzy_threshold=fuzzy_threshold, number_rel_tol=number_rel_tol)


def match_open(prediction: str, truth: str, *, fuzzy_threshold: float = 0.85, number_rel_tol: float = 1e-3) -> tuple[float, str]:
    """Open-ended rule: normalised exact, then numeric (when the truth is one number), then fuzzy."""
    norm_pred, norm_truth = normalize_text(prediction), normalize_text(truth)
    if norm_pred and norm_pred == norm_truth:
        return 1.0, "exact"
    if len(truth.strip()) == 1 and truth.strip().isalpha():  # a bare letter answer without options
        letter = extract_choice(prediction, 26)
        return float(letter == truth.strip().upper()), "letter"
    truth_numbers = parse_numbers(truth)
    if len(truth_numbers) == 1 and re.fullmatch(r"[\d\s.,+\-eE]+|[a-z]+", norm_truth or "x"):
        pred_numbers = parse_numbers(prediction)
        if pred_numbers:
            return float(_numbers_equal(pred_numbers[0], truth_numbers[0], number_rel_tol)), "numeric"
    if norm_pred and text_similarity(prediction, truth) >= fuzzy_threshold:
        return 1.0, "fuzzy"
    return 0.0, "no_match"


def _numbers_equal(a: float, b: float, rel_tol: float) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-6)
