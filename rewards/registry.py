"""Reward registry and composition.

A reward is a named function ``(sample, trajectory) -> float | RewardOutput`` with a documented
range. A :class:`CompositeReward` is a weighted list of them; zero-weight terms are computed and
reported but not summed.

Example:
    >>> from vseek_env.rewards import register_reward, make_reward
    >>> @register_reward("answered", range=(0.0, 1.0))
    ... def answered(sample, trajectory):
    ...     return float(trajectory.answer is not None)
    >>> make_reward({"answered": 1.0}).names
    ('answered',)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "vseek_env.rewards"


@dataclass
class RewardOutput:
    """A reward value plus metrics to log (e.g. which rule matched, the IoU)."""

    value: float
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RewardSpec:
    name: str
    fn: Callable[..., Any]
    range: tuple[float, float] = (0.0, 1.0)
    description: str = ""

    def __call__(self, sample, trajectory) -> RewardOutput:
        out = self.fn(sample, trajectory)
        if not isinstance(out, RewardOutput):
            out = RewardOutput(float(out))
        lo, hi = self.range
        if not (math.isfinite(out.value) and lo - 1e-9 <= out.value <= hi + 1e-9):
            raise ValueError(f"reward {self.name!r} returned {out.value}, outside its range [{lo}, {hi}]")
        return out


_REGISTRY: dict[str, RewardSpec] = {}
_entry_points_loaded = False


def register_reward(name: str, *, range: tuple[float, float] = (0.0, 1.0), description: str = "") -> Callable:
    """Decorator registering ``fn(sample, trajectory)`` as reward ``name``."""

    def decorate(fn: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"a reward named {name!r} is already registered ({_REGISTRY[name].fn.__module__})")
        _REGISTRY[name] = RewardSpec(name, fn, tuple(range), description or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return decorate


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        obj = ep.load()  # importing the module may already register it by decorator
        if ep.name not in _REGISTRY:
            if isinstance(obj, RewardSpec):
                _REGISTRY[ep.name] = obj
            elif callable(obj):
                register_reward(ep.name)(obj)


def get_reward(name: str) -> RewardSpec:
    """The reward registered as ``name`` (built-in, decorator or entry point)."""
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown reward {name!r}; registered rewards: {available_rewards()}") from None


def available_rewards() -> list[str]:
    _load_entry_points()
    return sorted(_REGISTRY)


PRESETS: dict[str, dict[str, float]] = {
    # The paper's mix (VideoSeeker §3.3): 0.8 accuracy + 0.15 format + 0.05 parsimony.
    "paper": {"accuracy": 0.8, "format": 0.15, "parsimony": 0.05},
    # What the paper's released code actually optimises.
    "paper_code": {"accuracy": 0.8, "format": 0.2},
    "accuracy": {"accuracy": 1.0},
}


class CompositeReward:
    """A weighted sum of named rewards. Zero-weight terms are reported, not summed.

    Calling it returns ``(total, components, metrics)`` where ``components`` maps every term name
    to its unweighted value.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        if not weights:
            raise ValueError("a composite reward needs at least one term")
        self.weights = {name: float(w) for name, w in weights.items()}
        self.specs = {name: get_reward(name) for name in self.weights}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.weights)

    @property
    def range(self) -> tuple[float, float]:
        lo = sum(min(w * s.range[0], w * s.range[1]) for w, s in zip(self.weights.values(), self.specs.values()))
        hi = sum(max(w * s.range[0], w * s.range[1]) for w, s in zip(self.weights.values(), self.specs.values()))
        return lo, hi

    def __call__(self, sample, trajectory) -> tuple[float, dict[str, float], dict[str, Any]]:
        components: dict[str, float] = {}
        metrics: dict[str, Any] = {}
        total = 0.0
        for name, spec in self.specs.items():
            out = spec(sample, trajectory)
            components[name] = out.value
            metrics.update({f"{name}/{k}": v for k, v in out.metrics.items()})
            if self.weights[name] != 0.0:
                total += self.weights[name] * out.value
        return total, components, metrics

    def __repr__(self) -> str:
        return f"CompositeReward({self.weights})"


def make_reward(spec: Any) -> CompositeReward:
    """A preset name, a ``{name: weight}`` dict, a single reward name, or a CompositeReward."""
    if isinstance(spec, CompositeReward):
        return spec
    if isinstance(spec, str):
        if spec in PRESETS:
            return CompositeReward(PRESETS[spec])
        return CompositeReward({spec: 1.0})
    if isinstance(spec, Mapping):
        return CompositeReward(spec)
    raise TypeError(f"reward must be a preset name {sorted(PRESETS)}, a reward name or a {{name: weight}} dict, got {spec!r}")
