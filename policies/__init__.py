"""Policies (installed as ``vseek_env.policies``): observation + info -> response text.

>>> from vseek_env.policies import available_policies
>>> "oracle" in available_policies()
True
"""

from __future__ import annotations

import importlib
from typing import Any

from vseek_env.policies.base import Policy

# name -> "module:Class"; imported on demand so optional dependencies stay optional.
_POLICIES = {
    "random": "vseek_env.policies.random:RandomPolicy",
    "oracle": "vseek_env.policies.oracle:OraclePolicy",
    "pixel": "vseek_env.policies.pixel:PixelPolicy",
    "no_tool": "vseek_env.policies.no_tool:NoToolPolicy",
    "openai": "vseek_env.policies.openai_chat:OpenAIChatPolicy",
    "hf": "vseek_env.policies.hf:HFPolicy",
    "mixture": "vseek_env.coldstart.mixture:MixturePolicy",
}


def register_policy(name: str, target: str) -> None:
    """Register ``"module:Class"`` under ``name`` for :func:`make_policy` and ``vseek eval --policy``."""
    _POLICIES[name] = target


def available_policies() -> list[str]:
    return sorted(_POLICIES)


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Instantiate the policy registered as ``name``, or any ``"module:Class"``, with ``kwargs``."""
    target = _POLICIES.get(name) or (name if ":" in name else None)
    if target is None:
        raise KeyError(f"unknown policy {name!r}; available: {available_policies()} or 'module:Class'")
    module, _, cls = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError, ValueError) as exc:
        raise KeyError(f"cannot load policy {name!r} ({exc}); available: {available_policies()} or 'module:Class'") from None
    return factory(**kwargs)


__all__ = ["Policy", "available_policies", "make_policy", "register_policy"]
