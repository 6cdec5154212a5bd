"""``NoToolPolicy``: the pixel policy restricted to the first observation (overview + prompt frame).

It answers on the first turn without calling a tool; on the synthetic benchmark it shows what the
uniform overview alone allows (it guesses uniformly where the overview holds no evidence).
"""

from __future__ import annotations

from vseek_env.policies.pixel import PixelPolicy


class NoToolPolicy(PixelPolicy):
    name = "no_tool"

    def __init__(self) -> None:
        super().__init__(use_tools=False)
