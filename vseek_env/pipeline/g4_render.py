"""G4 — render the visual prompt and rewrite ``<vp>`` into the style's phrase.

* :func:`choose_style`: G2's suggestion when it is allowed, else a per-sample deterministic pick.
* :func:`choose_prompt_time`: the G3 time inside the window where the target is largest.
* :func:`rewrite_template`: ``<vp>`` -> :func:`vseek_env.visual_prompts.phrase_for` (capitalised at
  a sentence start). :func:`rewrite_with_llm` asks a model for a fluent rewrite and falls back to
  the template when the reply is unusable.
* :func:`obfuscate_name`: options must not name the entity (that would leak which instance is
  marked), so the target's description/tag become "the target".

Example:
    >>> rewrite_template("<vp> walks to the door. Where does <vp> stop?", "the target in the highlighted box")
    'The target in the highlighted box walks to the door. Where does the target in the highlighted box stop?'
    >>> obfuscate_name("The man in the red shirt waves", ["man in the red shirt"])
    'the target waves'
"""

from __future__ import annotations

import re
import zlib
from typing import Iterable, Sequence

from vseek_env.pipeline.g2_verify import VP_TOKEN
from vseek_env.pipeline.llm import ChatClient, parse_json_reply
from vseek_env.visual_prompts import STYLES

__all__ = [
    "choose_style",
    "choose_prompt_time",
    "rewrite_template",
    "rewrite_with_llm",
    "obfuscate_name",
    "stable_seed",
    "REWRITE_PROMPT",
]

REWRITE_PROMPT = """Rewrite the question and options so that every "<vp>" is replaced by the phrase "{phrase}" and the text reads naturally.
Do not change the meaning, do not name or describe the entity in any other way, keep the options in the same order.
Question: {question}
Options: {options}
Reply with JSON only: {{"question": "...", "options": [...]}}"""


def stable_seed(*parts: object) -> int:
    """A seed that depends only on ``parts`` (not on Python's per-process hash salt)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode()) & 0x7FFFFFFF


def choose_style(sample_id: str, suggested: str | None, allowed: Sequence[str] = STYLES, seed: int = 0) -> str:
    """``suggested`` if it is in ``allowed``, else ``allowed[stable_seed(seed, id) % len(allowed)]``."""
    if not allowed:
        raise ValueError("at least one prompt style must be allowed")
    if suggested in allowed:
        return suggested
    return list(allowed)[stable_seed(seed, sample_id, "style") % len(allowed)]


def choose_prompt_time(times: Sequence[float], areas: Sequence[float], window: Sequence[float]) -> int | None:
    """Index of the time inside ``window`` with the largest target area (earliest on ties)."""
    best = None
    for i, (t, a) in enumerate(zip(times, areas)):
        if window[0] - 1e-6 <= t <= window[1] + 1e-6 and a > 0 and (best is None or a > areas[best]):
            best = i
    return best


_SENTENCE_START = re.compile(r"(^|[.?!]\s+)" + re.escape(VP_TOKEN))


def rewrite_template(text: str, phrase: str) -> str:
    """Replace every ``<vp>`` by ``phrase``, capitalising it where a sentence starts."""
    text = _SENTENCE_START.sub(lambda m: m.group(1) + phrase[:1].upper() + phrase[1:], text)
    return text.replace(VP_TOKEN, phrase)


def obfuscate_name(text: str, names: Iterable[str], replacement: str = "the target") -> str:
    """Replace mentions of the entity (each name of two or more words, with an optional article)."""
    for name in sorted({n.strip() for n in names if n and len(n.split()) >= 2}, key=len, reverse=True):
        core = re.sub(r"^(?:the|a|an)\s+", "", name, flags=re.IGNORECASE)
        pattern = re.compile(r"\b(?:(?:the|a|an)\s+)?" + re.escape(core) + r"\b", re.IGNORECASE)
        text = pattern.sub(replacement, text)
    return text


def rewrite_with_llm(
    client: ChatClient, question: str, options: Sequence[str], phrase: str, *, retries: int = 1
) -> tuple[str, list[str], str]:
    """A fluent rewrite by the model: ``(question, options, how)``; ``how`` is ``"llm"`` or says why
    the template was used instead. The reply must contain the phrase, no ``<vp>``, and the same
    number of options."""
    messages = [{"role": "user", "content": REWRITE_PROMPT.format(phrase=phrase, question=question, options=list(options))}]
    why = ""
    for _ in range(retries + 1):
        obj, why = parse_json_reply(client.complete(messages))
        if obj is None:
            continue
        q, opts = obj.get("question"), obj.get("options", [])
        if not isinstance(q, str) or phrase.lower() not in q.lower() or VP_TOKEN in q:
            why = "the rewritten question must contain the phrase and no <vp>"
            continue
        if not isinstance(opts, list) or len(opts) != len(options) or not all(isinstance(o, str) and o.strip() for o in opts):
            why = f"the rewrite must keep {len(options)} option(s)"
            continue
        if any(VP_TOKEN in o for o in opts):
            why = "an option still contains <vp>"
            continue
        return q.strip(), [o.strip() for o in opts], "llm"
    return (
        rewrite_template(question, phrase),
        [rewrite_template(o, phrase) for o in options],
        f"template (llm reply unusable: {why})",
    )
