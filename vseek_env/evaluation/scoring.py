"""The paper's multiple-choice scoring (its three modes) and the counters every benchmark rule shares.

VideoSeeker's released scorer reads a response in one of three modes:

- ``direct``: the whole response, stripped and upper-cased, must equal the answer letter;
- ``reasoning`` and ``tool``: the first ``<answer>...</answer>`` block (case-insensitive), and in it
  the first character, which must be a letter (upper-cased).

A response with nothing to read (empty in ``direct`` mode; no answer tag, or a tag not starting with
a letter, otherwise) is *unparseable*. The paper drops those rows from the denominator; a
:class:`Tally` reports both accuracies: over every row (unparseable = wrong) and over the scored rows.

This is the one definition: ``vseek v2p-score``, ``vseek score`` and the summary of ``vseek eval``
all call :func:`paper_correct`.

Example:
    >>> paper_prediction("<think>B or C?</think><answer> c) cat</answer>", "tool")
    'C'
    >>> paper_correct("The answer is B", "B", "direct"), paper_correct("", "B", "direct")
    (False, None)
    >>> t = Tally(); t.add(True); t.add(None); t.add(False)
    >>> t.to_dict()["accuracy"], t.to_dict()["scored_accuracy"]
    (0.3333333333333333, 0.5)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from vseek_env.protocol import first_tag_content

PAPER_MODES = ("direct", "reasoning", "tool")


def paper_prediction(response: Any, mode: str = "tool") -> str | None:
    """What the paper's scorer reads from ``response`` in ``mode``, or None when it reads nothing."""
    if mode not in PAPER_MODES:
        raise ValueError(f"paper scoring mode must be one of {PAPER_MODES}, got {mode!r}")
    if not isinstance(response, str):
        return None
    if mode == "direct":
        return response.strip().upper() or None
    first = first_tag_content(response, "answer", ignore_case=True)
    if first is None:
        return None
    inner = first.strip()
    return inner[0].upper() if inner and inner[0].isascii() and inner[0].isalpha() else None


def paper_correct(response: Any, answer: Any, mode: str = "tool") -> bool | None:
    """True / False under the paper's rule, or None when the row is unparseable (no prediction)."""
    prediction = paper_prediction(response, mode)
    if prediction is None:
        return None
    return prediction == str(answer).strip().upper()


@dataclass
class Tally:
    """Counts of one rule over some rows: ``n`` rows, ``scored`` with a reading, ``correct``."""

    n: int = 0
    scored: int = 0
    correct: int = 0

    def add(self, verdict: bool | None) -> None:
        """Count one row: True / False, or None for a row the rule could not read."""
        self.n += 1
        if verdict is not None:
            self.scored += 1
            self.correct += bool(verdict)

    def to_dict(self) -> dict:
        """``n``, ``scored``, ``unparseable``, ``correct``, ``accuracy`` (over all ``n``) and
        ``scored_accuracy`` (over ``scored``, the paper's denominator); 0.0 for an empty count."""
        return {
            "n": self.n, "scored": self.scored, "unparseable": self.n - self.scored, "correct": self.correct,
            "accuracy": self.correct / self.n if self.n else 0.0,
            "scored_accuracy": self.correct / self.scored if self.scored else 0.0,
        }


def tally_by(rows: Iterable[tuple[Mapping[str, Any], bool | None]], fields: Iterable[str]) -> dict:
    """``{"overall": Tally dict, "per_<field>": {value: Tally dict}}`` over ``(row, verdict)`` pairs.

    A row without a field is counted under ``"unknown"``; groups are sorted by their key.
    """
    fields = list(fields)
    total = Tally()
    groups: dict[str, dict[str, Tally]] = {f: defaultdict(Tally) for f in fields}
    for row, verdict in rows:
        total.add(verdict)
        for f in fields:
            value = row.get(f)
            groups[f]["unknown" if value is None else str(value)].add(verdict)
    out: dict = {"overall": total.to_dict()}
    for f in fields:
        out[f"per_{f}"] = {k: v.to_dict() for k, v in sorted(groups[f].items())}
    return out


def paper_scores(rows: Iterable[Mapping[str, Any]], modes: Iterable[str] = PAPER_MODES, *,
                 response_key: str = "response", answer_key: str = "answer", fields: Iterable[str] = ()) -> dict:
    """The paper's rule in each of ``modes`` over response rows, overall and per category field."""
    rows = list(rows)
    return {
        mode: tally_by(((r, paper_correct(r.get(response_key), r.get(answer_key), mode)) for r in rows), fields)
        for mode in modes
    }


def episode_verdicts(sample: Any, response: str | None, answer: str | None, judge: Any = "auto") -> dict:
    """The verdicts an eval record keeps for the benchmark summary.

    ``paper_<mode>`` (True / False / None) for a multiple-choice sample, read from the episode's
    final reply; ``official`` (the benchmark's own rule, see each ``episode_verdict``) for a sample
    of a published benchmark (``meta["benchmark"]``), and for LongVT ``official_by`` (``rule``,
    ``judge`` or ``judge_fallback``: which step decided). ``judge`` serves LongVT's grading: an
    ``LLMJudge``, None (rules only) or ``"auto"`` (the judge ``VSEEK_JUDGE_*`` configures, if any).
    """
    if judge == "auto":
        judge = None
        if sample.meta.get("benchmark") == "longvt":
            from vseek_env.rewards.judge import get_judge, resolve_judge

            config = resolve_judge("auto")
            judge = get_judge(config) if config is not None else None
    out: dict = {}
    if sample.answer_kind == "choice":
        for mode in PAPER_MODES:
            out[f"paper_{mode}"] = paper_correct(response, sample.answer, mode)
    name = sample.meta.get("benchmark")
    if name:
        from vseek_env.data.benchmarks import benchmark_module

        if name == "longvt":  # graded by rule, then judge: record which step decided
            steps: Counter = Counter()
            out["official"] = benchmark_module(name).episode_verdict(sample, response or "", answer, judge, counts=steps)
            out["official_by"] = next(iter(steps), "rule")
        else:
            out["official"] = benchmark_module(name).episode_verdict(sample, response or "", answer, judge)
    return out


def summarize_verdicts(records: Iterable[Mapping[str, Any]]) -> dict:
    """Per-rule tallies of the records' ``verdicts``, overall and per benchmark category.

    Records without a verdict for a rule are left out of that rule; an errored episode (no
    verdicts) counts as unparseable for every rule its benchmark has, so nothing silently vanishes.
    """
    records = list(records)
    rules = sorted({k for r in records for k in (r.get("verdicts") or {}) if not k.endswith("_by")})
    fields = sorted({f for r in records for f in (r.get("categories") or {})})
    out: dict = {}
    for rule in rules:
        pairs = []
        for r in records:
            verdicts = r.get("verdicts")
            if verdicts is None and r.get("status") != "ok":
                applies = r.get("benchmark") if rule == "official" else r.get("answer_kind") == "choice"
                if applies:
                    pairs.append((r.get("categories") or {}, None))
            elif verdicts is not None and rule in verdicts:
                pairs.append((r.get("categories") or {}, verdicts[rule]))
        out[rule] = tally_by(pairs, fields)
    steps = Counter(str(r["verdicts"]["official_by"]) for r in records if "official_by" in (r.get("verdicts") or {}))
    if steps:  # LongVT: how many verdicts the rule, the judge, or the rule after a judge failure gave
        out["official"]["decided_by"] = {k: steps.get(k, 0) for k in ("rule", "judge", "judge_fallback")}
    return out
