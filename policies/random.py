"""``RandomPolicy``: a uniformly random valid answer of the right kind, no tools.

Choice: a random option letter; number: a random integer in the range the question states
("between 1 and 4"), else 0-10; span: a random ordered pair of times in the video; box: a random
box in the frame; open: a random colour word. It reads only the observation text and
``info["video"]``.
"""

from __future__ import annotations

import zlib

import numpy as np

from vseek_env.policies.base import Policy
from vseek_env.policies.pixel import guess_answer, kind_from_instruction, parse_observation_text


class RandomPolicy(Policy):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.base_seed = seed
        self.seed: int | None = None

    def reset(self, seed: int | None = None) -> None:
        self.seed = seed

    def act(self, observation: dict, info: dict) -> str:
        question, options, instruction = parse_observation_text(observation.get("text", ""))
        kind = kind_from_instruction(instruction, options)
        rng = np.random.default_rng(zlib.crc32(f"{self.base_seed}|{self.seed}|{question}".encode()))
        answer = guess_answer(kind, options, question, dict(info.get("video") or {}), rng)
        return f"<think>I pick a random {kind} answer.</think><answer>{answer}</answer>"
