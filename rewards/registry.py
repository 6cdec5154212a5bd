"""Reward registry and composition.

A reward is a named function ``fn(sample, trajectory, **options) -> float | RewardOutput`` with a
documented range; its keyword-only parameters are its options. A :class:`CompositeReward` is a
weighted list of rewards; zero-weight terms are computed and reported but not summed.

Reward specs, as accepted by :func:`make_reward` and the env's ``reward=`` option:

- a preset name: ``"paper"`` (see :data:`PRESETS`), or one reward name: ``"accuracy"``;
- ``{name: weight}``: ``{"accuracy": 1.0, "format": 0.2, "crop_iou": 0.0}``;
- ``{name: {"weight": w, **options}}``: ``{"parsimony": {"weight": 0.05, "lam": 0.2}}``;
- a ``"preset"`` key as the base, the other keys overriding or adding terms (the weight of an
  overridden term defaults to the preset's): ``{"preset": "paper", "accuracy": {"judge": True}}``.

Custom rewards register with :func:`register_reward` or through the ``vseek_env.rewards``
entry-point group (loaded lazily, by name, the first time a name is asked for).

Example:
    >>> from vseek_env.rewards import register_reward, make_reward
    >>> @register_reward("answered", range=(0.0, 1.0))
    ... def answered(sample, trajectory):
    ...     return float(trajectory.answer is not None)
    >>> make_reward({"preset": "paper", "answered": 0.0}).names
    ('accuracy', 'format', 'parsimony', 'answered')
"""

from __future__ import annotations

import inspect
import math
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Mapping

from vseek_env.openai_api import redact_secrets

ENTRY_POINT_GROUP = "vseek_env.rewards"


@dataclass
class RewardOutput:
    """A reward value plus metrics to log (e.g. which rule matched, the IoU)."""

    value: float
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RewardSpec:
    """A registered reward: its function, range and options (the function's keyword-only parameters)."""

    name: str
    fn: Callable[..., Any]
    range: tuple[float, float] = (0.0, 1.0)
    description: str = ""
    validate: Callable[[dict], None] | None = None
    resolve: Callable[[dict], dict] | None = None

    @property
    def options(self) -> dict[str, Any]:
        """Option names and defaults."""
        params = inspect.signature(self.fn).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise a clear error for unknown or invalid options."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "none"
            raise TypeError(f"reward {self.name!r} has no option(s) {unknown}; its options: {valid}")
        if self.validate is not None:
            self.validate(dict(options))

    def __call__(self, sample, trajectory, **options: Any) -> RewardOutput:
        out = self.fn(sample, trajectory, **options)
        if not isinstance(out, RewardOutput):
            out = RewardOutput(float(out))
        out.value = float(out.value)
        lo, hi = self.range
        if not (math.isfinite(out.value) and lo - 1e-9 <= out.value <= hi + 1e-9):
            raise ValueError(
                f"reward {self.name!r} ({getattr(self.fn, '__module__', '?')}) returned {out.value} for sample "
                f"{getattr(sample, 'id', '?')!r}, outside its declared range [{lo}, {hi}]"
            )
        return out


_REGISTRY: dict[str, RewardSpec] = {}
_LOCK = threading.RLock()
RESERVED_NAMES = frozenset({"preset", "weight"})


def register_reward(
    name: str,
    *,
    range: tuple[float, float] = (0.0, 1.0),
    description: str = "",
    validate: Callable[[dict], None] | None = None,
    resolve: Callable[[dict], dict] | None = None,
) -> Callable:
    """Decorator registering ``fn(sample, trajectory, **options)`` as reward ``name``.

    ``range`` is checked on every call; ``validate(options)`` (optional) rejects bad option values
    when a composite is built, before any episode runs; ``resolve(options)`` (optional) returns the
    options as the composite keeps them, e.g. with an environment-dependent default fixed once (the
    ``accuracy`` term's ``judge="auto"``), so that :meth:`CompositeReward.to_spec` records it.
    """
    if not isinstance(name, str) or not name or name in RESERVED_NAMES:
        raise ValueError(f"reward name must be a non-empty string other than {sorted(RESERVED_NAMES)}, got {name!r}")
    lo, hi = (float(v) for v in range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"reward {name!r}: range must be finite (lo, hi) with lo <= hi, got {range!r}")

    def decorate(fn: Callable) -> Callable:
        with _LOCK:
            if name in _REGISTRY and _REGISTRY[name].fn is not fn:
                raise ValueError(f"a reward named {name!r} is already registered ({_REGISTRY[name].fn.__module__})")
            doc = description or (fn.__doc__ or "").strip().split("\n")[0]
            _REGISTRY[name] = RewardSpec(name, fn, (lo, hi), doc, validate, resolve)
        return fn

    return decorate


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(name: str) -> None:
    ep = _entry_points().get(name)
    if ep is None:
        return
    try:
        obj = ep.load()  # importing the module may already register it by decorator
    except Exception as exc:
        dist = getattr(getattr(ep, "dist", None), "name", "?")
        raise ImportError(f"reward plugin {name!r} = {ep.value!r} (distribution {dist}) failed to load: {exc}") from exc
    with _LOCK:
        if name in _REGISTRY:
            return
        if isinstance(obj, RewardSpec):
            _REGISTRY[name] = RewardSpec(name, obj.fn, obj.range, obj.description, obj.validate, obj.resolve)
        elif callable(obj):
            register_reward(name)(obj)
        else:
            raise TypeError(f"reward plugin {name!r} = {ep.value!r} is neither a function nor a RewardSpec")


def get_reward(name: str) -> RewardSpec:
    """The reward registered as ``name`` (built-in, decorator or entry point)."""
    if name not in _REGISTRY:
        _load_entry_point(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown reward {name!r}; registered rewards: {available_rewards()}, presets: {sorted(PRESETS)}"
        ) from None


def available_rewards() -> list[str]:
    """Names of every registered reward plus the installed plugins (not imported until used)."""
    return sorted(set(_REGISTRY) | set(_entry_points()))


# Presets: ``{name: weight}`` or ``{name: {"weight": w, **options}}``, as the dict spec.
_PAPER_TERMS: dict[str, Any] = {
    "accuracy": 0.8,
    # the paper's format term: the whole rollout follows think -> (tool call -> think)* -> answer
    "format": {"weight": 0.15, "scope": "trajectory"},
    # every invocation counts, failed ones too; the paper does not give lambda
    "parsimony": {"weight": 0.05, "lam": 0.1},
}
PRESETS: dict[str, dict[str, Any]] = {
    # The paper's mix (VideoSeeker §3.3): 0.8 accuracy + 0.15 format + 0.05 parsimony.
    "paper": _PAPER_TERMS,
    # The paper's mix for open-ended answers (its RL data): accuracy by the LLM judge (1 / 0.5 / 0;
    # VSEEK_JUDGE_BASE_URL required), the rule when the judge fails. Pair with open_ended=True.
    "paper_open": {**_PAPER_TERMS, "accuracy": {"weight": 0.8, "judge": True, "judge_kinds": ["open", "choice"]}},
    # The env's default: the same weights, format judged per response (several calls in one
    # response allowed), parsimony counting every invocation.
    "default": {"accuracy": 0.8, "format": {"weight": 0.15, "scope": "response"}, "parsimony": {"weight": 0.05, "lam": 0.1}},
    # What the paper's released code actually optimises (verl/custom_rewards/vl_agent_v2p.py).
    "paper_code": {"accuracy": 0.8, "format": 0.2},
    "accuracy": {"accuracy": 1.0},
    # The paper's mix plus the grounding terms, logged but not summed.
    "paper_logged": {**_PAPER_TERMS, "crop_iou": 0.0, "temporal_iou": 0.0, "spatial_iou": 0.0},
}


class CompositeReward:
    """A weighted sum of named rewards. Zero-weight terms are reported, not summed.

    Calling it returns ``(total, components, metrics)``: ``components`` maps every term to its
    unweighted value, ``metrics`` holds each term's metrics as ``"term/key"``.

    >>> r = CompositeReward({"format": 0.5, "parsimony": 0.0}, options={"parsimony": {"lam": 0.2}})
    >>> r.weights, r.options
    ({'format': 0.5, 'parsimony': 0.0}, {'format': {}, 'parsimony': {'lam': 0.2}})
    >>> r.to_spec()
    {'format': 0.5, 'parsimony': {'weight': 0.0, 'lam': 0.2}}
    """

    def __init__(self, weights: Mapping[str, float], options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        if not weights:
            raise ValueError("a composite reward needs at least one term")
        options = dict(options or {})
        stray = sorted(set(options) - set(weights))
        if stray:
            raise ValueError(f"options given for reward(s) {stray} that have no weight")
        self.weights: dict[str, float] = {}
        for name, w in weights.items():
            try:
                w = float(w)
            except (TypeError, ValueError):
                raise TypeError(f"weight of reward {name!r} must be a number, got {w!r}") from None
            if not math.isfinite(w):
                raise ValueError(f"weight of reward {name!r} must be finite, got {w}")
            self.weights[name] = w
        self.specs = {name: get_reward(name) for name in self.weights}
        self.options = {name: dict(options.get(name) or {}) for name in self.weights}
        for name, spec in self.specs.items():
            spec.check_options(self.options[name])
            if spec.resolve is not None:
                self.options[name] = dict(spec.resolve(dict(self.options[name])))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.weights)

    @property
    def range(self) -> tuple[float, float]:
        """Bounds of the total, from the terms' declared ranges."""
        pairs = [(w * s.range[0], w * s.range[1]) for w, s in zip(self.weights.values(), self.specs.values())]
        return sum(min(p) for p in pairs), sum(max(p) for p in pairs)

    def __call__(self, sample, trajectory) -> tuple[float, dict[str, float], dict[str, Any]]:
        components: dict[str, float] = {}
        metrics: dict[str, Any] = {}
        total = 0.0
        for name, spec in self.specs.items():
            out = spec(sample, trajectory, **self.options[name])
            components[name] = out.value
            metrics.update({f"{name}/{k}": v for k, v in out.metrics.items()})
            if self.weights[name] != 0.0:
                total += self.weights[name] * out.value
        return total, components, metrics

    def to_spec(self) -> dict[str, Any]:
        """A spec :func:`make_reward` rebuilds this composite from (JSON-serialisable if the options are).

        Options are as resolved when the composite was built (an object option is written as its
        ``to_spec()``), and secret-named options (``api_key``, ``token``, ...) are left out: a
        rebuilt composite takes them from the environment (``VSEEK_JUDGE_API_KEY`` for the judge).
        """
        spec = {n: ({"weight": w, **_spec_value(self.options[n])} if self.options[n] else w) for n, w in self.weights.items()}
        return redact_secrets(spec, drop=True)

    def __repr__(self) -> str:
        return f"CompositeReward({self.to_spec()})"


def _spec_value(value: Any) -> Any:
    if hasattr(value, "to_spec") and callable(value.to_spec):
        return value.to_spec()
    if isinstance(value, Mapping):
        return {k: _spec_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_spec_value(v) for v in value]
    return value


def _add_terms(spec: Mapping[str, Any], weights: dict[str, float], options: dict[str, dict[str, Any]]) -> None:
    """Merge ``{name: weight | {"weight": w, **options}}`` into ``weights`` / ``options`` (later wins;
    an option dict without a weight keeps the term's earlier weight and adds to its options)."""
    for name, value in spec.items():
        if isinstance(value, Mapping):
            value = dict(value)
            if "weight" in value:
                weights[name] = value.pop("weight")
            elif name not in weights:
                raise ValueError(f"reward {name!r}: give a 'weight' in {{'weight': w, ...options}}")
            options[name] = {**options.get(name, {}), **value}
        else:
            weights[name] = value


def make_reward(spec: Any) -> CompositeReward:
    """A :class:`CompositeReward` from a preset name, a reward name, a spec dict, or a CompositeReward.

    See the module docstring for the spec forms.
    """
    if isinstance(spec, CompositeReward):
        return spec
    if isinstance(spec, str):
        if spec in PRESETS:
            return make_reward({"preset": spec})
        get_reward(spec)  # a clear error naming presets and rewards
        return CompositeReward({spec: 1.0})
    if isinstance(spec, Mapping):
        spec = dict(spec)
        weights: dict[str, float] = {}
        options: dict[str, dict[str, Any]] = {}
        if "preset" in spec:
            preset = spec.pop("preset")
            if preset not in PRESETS:
                raise KeyError(f"unknown reward preset {preset!r}; presets: {sorted(PRESETS)}")
            _add_terms(PRESETS[preset], weights, options)
        _add_terms(spec, weights, options)
        return CompositeReward(weights, options)
    raise TypeError(
        f"reward must be a preset name {sorted(PRESETS)}, a reward name, a spec dict "
        f"({{name: weight}} or {{name: {{'weight': w, **options}}}}) or a CompositeReward, got {spec!r}"
    )
