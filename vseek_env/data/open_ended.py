"""Open-ended variants of multiple-choice samples.

The paper trains RL on open-ended answers: with options in the prompt, a policy can reward-hack by
guessing letters. :func:`to_open_ended` drops the options and makes the correct option's text the
answer, graded by the open-answer rule (and the LLM judge when one is configured).

Example:
    >>> from vseek_env.data.sample import Sample
    >>> s = Sample(id="q1", video="v.mp4", question="What colour is the target?",
    ...            answer="B", answer_kind="choice", options=("red", "blue"))
    >>> o = to_open_ended(s)
    >>> (o.id, o.answer_kind, o.answer, o.options)
    ('q1', 'open', 'blue', ())
"""

from __future__ import annotations

import dataclasses

from vseek_env.data.sample import Sample, option_letters


def to_open_ended(sample: Sample) -> Sample:
    """The same question without options, answered by the correct option's text.

    Non-choice samples are returned unchanged. The original letter and options are kept in
    ``meta["open_ended_from"]`` so reports can trace the conversion.
    """
    if sample.answer_kind != "choice":
        return sample
    letters = option_letters(len(sample.options))
    answer_text = sample.options[letters.index(str(sample.answer))]
    meta = {**sample.meta, "open_ended_from": {"answer": str(sample.answer), "options": list(sample.options)}}
    return dataclasses.replace(sample, answer=answer_text, answer_kind="open", options=(), meta=meta)
