"""G1 — text filter: keep questions about one concrete, visible instance.

The paper (App. G) rejects questions a visual prompt cannot serve. :func:`rule_reject` covers its
reject list with word rules, one category each (:data:`REJECT_RULES`):

    camera       camera motion, shots, angles, cinematography, editing
    scene        the scene, background, setting, location or weather as a whole
    summary      whole-video summaries, main topic/purpose, "throughout the video"
    counting     how many / number of / how often
    abstract     mood, emotion of the video, audio/speech/music, intent, genre, non-visual facts
    lighting     ambient lighting, overall colour scheme/tone, brightness

Colour *of an object* ("what colour is the man's shirt") is kept: only ambient colour is rejected.
An optional LLM filter (:func:`llm_verdict`) asks an OpenAI-compatible model for
``{"keep": bool, "reason": str}``; malformed replies are retried, then the sample is dropped with
the reason.

Example:
    >>> rule_reject("How many people are in the video?")
    'counting'
    >>> rule_reject("What does the man in the red shirt pick up after sitting down?") is None
    True
"""

from __future__ import annotations

import re
from typing import Any

from vseek_env.pipeline.llm import ChatClient, parse_json_reply

__all__ = ["REJECT_RULES", "rule_reject", "llm_verdict", "LLM_FILTER_PROMPT"]


def _rx(*patterns: str) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


#: category -> pattern; the first matching category (in this order) is the rejection reason.
REJECT_RULES: dict[str, re.Pattern] = {
    "camera": _rx(
        r"\bcamera\b", r"\bcinematograph", r"\b(?:camera|shot|lens) angle", r"\bclose[- ]?ups?\b", r"\bzoom(?:s|ed|ing)? (?:in|out)\b",
        r"\b(?:panning|tilting)\b", r"\bfilm(?:ed|ing)\b", r"\bfootage\b", r"\bshot (?:type|size|composition)\b",
        r"\b(?:wide|long|medium|establishing|aerial|tracking) shot\b", r"\bpoint of view\b", r"\bperspective of the (?:video|camera)\b",
        r"\b(?:editing|transition|cuts? to|scene change|frame rate|slow motion|time-?lapse)\b",
    ),
    "scene": _rx(
        r"\bbackground\b", r"\b(?:describe|what is|what's) (?:the|this) (?:scene|setting|environment|surroundings|venue)\b",
        r"\b(?:scene|setting|environment|surroundings) (?:of|in) (?:the|this) video\b", r"\btype of (?:scene|place|location|venue)\b",
        r"\bwhere (?:is|was) (?:the|this) video\b", r"\bwhere (?:does|did) (?:the|this) video take place\b",
        r"\b(?:location|place) (?:of|shown in) (?:the|this) video\b", r"\bweather\b", r"\b(?:indoors|outdoors)\b",
        r"\btime of (?:day|year)\b", r"\bseason\b",
    ),
    "summary": _rx(
        r"\bsummar", r"\b(?:main|primary|central|overall) (?:topic|theme|idea|focus|subject|event|activity|purpose|message|content)\b",
        r"\bwhat (?:is|was) (?:the|this) video (?:mainly |mostly )?about\b", r"\bdescribe (?:the|this) (?:whole |entire )?video\b",
        r"\b(?:entire|whole) video\b", r"\bthroughout the video\b", r"\boverall\b", r"\bthe video (?:mainly|mostly) (?:shows|depicts|features)\b",
        r"\bsequence of events in the video\b",
    ),
    "counting": _rx(
        r"\bhow many\b", r"\bnumber of\b", r"\bcount(?:s|ed|ing)?\b", r"\bhow often\b", r"\bhow many times\b",
    ),
    "abstract": _rx(
        r"\b(?:mood|atmosphere|tone|vibe|ambien(?:ce|t))\b", r"\bgenre\b", r"\b(?:music|song|soundtrack|sound|audio|noise|voice)\b",
        r"\b(?:say|says|said|saying|speak|speaks|spoke|speaking|narrat\w*|hear|heard|subtitle\w*|dialogue)\b",
        r"\b(?:intended|target) audience\b", r"\bpurpose of (?:the|this) video\b", r"\bmessage of (?:the|this) video\b",
        r"\bwhat (?:do|does|might|could) (?:the )?(?:viewer|audience)s?\b", r"\b(?:symboli[sz]e|represent)s?\b",
        r"\bwhy do you think\b", r"\bopinion\b", r"\bin general\b",
    ),
    "lighting": _rx(
        r"\blighting\b", r"\billuminat", r"\b(?:bright|dim|dark)(?:ness)? (?:of|in) the (?:video|scene|room)\b",
        r"\bcolou?r (?:scheme|palette|tone|grading|temperature)s?\b", r"\b(?:dominant|predominant|main|overall) colou?rs?\b",
        r"\b(?:is|was) (?:the|this) (?:video|scene|room|image) (?:bright|dark|dim|colou?rful)\b",
        r"\b(?:black and white|monochrome|sepia)\b", r"\bhues?\b",
    ),
}

LLM_FILTER_PROMPT = """You filter video questions for a dataset about ONE specific instance marked with a visual prompt.
Keep a question only if it is about a concrete, visible entity (a person, animal or object) that could be marked with a box in a frame.
Reject questions about: camera work or cinematography; the scene, background or setting as a whole; summaries of the whole video; counting;
abstract or non-visual content (audio, speech, mood, intent); ambient lighting or colour.

Question: {question}
{options}
Reply with JSON only: {{"keep": true or false, "reason": "<one short sentence>"}}"""


def rule_reject(question: str, options: Any = ()) -> str | None:
    """The reject category of ``question`` (see :data:`REJECT_RULES`), or ``None`` to keep it.

    Options are not scanned: answer choices such as "three" do not make a question about counting.
    """
    if not isinstance(question, str) or not question.strip():
        return "empty"
    for category, pattern in REJECT_RULES.items():
        if pattern.search(question):
            return category
    return None


def llm_verdict(client: ChatClient, question: str, options: Any = (), *, retries: int = 2) -> tuple[bool, str]:
    """Ask the model whether to keep the question: ``(keep, reason)``.

    A reply that is not ``{"keep": bool, ...}`` is retried ``retries`` times, then the sample is
    dropped with reason ``"llm: invalid reply: ..."``; an unreachable endpoint raises :class:`LLMError`.
    """
    opts = "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options or ()))
    messages = [{"role": "user", "content": LLM_FILTER_PROMPT.format(question=question, options=f"Options:\n{opts}" if opts else "")}]
    why = ""
    for _ in range(retries + 1):
        obj, why = parse_json_reply(client.complete(messages))
        if obj is not None and isinstance(obj.get("keep"), bool):
            reason = obj.get("reason")
            return obj["keep"], reason if isinstance(reason, str) else ""
        why = why or "'keep' must be true or false"
    return False, f"llm: invalid reply: {why}"

