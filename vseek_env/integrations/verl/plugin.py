"""vseek_env's verl plugin: what verl loads in every process (entry-point group ``verl.plugins``).

It registers, without importing anything heavy at ``import verl`` time:

* the ``cpu`` platform (:mod:`.cpu.platform`), used only when ``VERL_PLATFORM=cpu``;
* the ``vseek_hf`` CPU rollout (:mod:`.cpu.rollout`), selected by
  ``actor_rollout_ref.rollout.name=vseek_hf``, once verl's rollout registries are imported;
* the ``vseek_sync`` trainer (:mod:`.trainer`), selected by ``trainer.v1.trainer_mode=vseek_sync``:
  verl's sync trainer plus the env's reward components in every step's metrics, once verl's V1
  trainer package is imported.

Registrations run in post-import hooks, so processes that never import those verl modules pay
nothing, and a run that selects none of these names behaves exactly as without the plugin.

Example:
    >>> import verl                                   # doctest: +SKIP
    >>> from verl.trainer.ppo.v1 import get_trainer_cls
    >>> get_trainer_cls("vseek_sync").__name__        # doctest: +SKIP
    'VSeekPPOTrainer'
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
from typing import Callable

from vseek_env.integrations.verl.cpu import PLATFORM_NAME, ROLLOUT_NAME
from vseek_env.integrations.verl.trainer import TRAINER_NAME

logger = logging.getLogger(__name__)

_ADAPTER = "vseek_env.integrations.verl.cpu.rollout.HFServerAdapter"


def _load_replica():
    from vseek_env.integrations.verl.cpu.rollout import HFRolloutReplica

    return HFRolloutReplica


def register_rollout(_module=None) -> None:
    """Register ``vseek_hf`` in verl's rollout-adapter and replica registries."""
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    _ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = _ADAPTER
    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_replica)


def register_trainer(_module=None) -> None:
    """Register the ``vseek_sync`` V1 trainer (verl's sync trainer + reward-component metrics)."""
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

    from vseek_env.integrations.verl.trainer import trainer_class

    if TRAINER_NAME not in TRAINER_REGISTRY:
        TRAINER_REGISTRY[TRAINER_NAME] = trainer_class()


def register_platform() -> None:
    """Register the ``cpu`` platform; on it, make verl's process-group setup valid."""
    from verl.plugin.platform.platform_manager import PlatformRegistry

    from vseek_env.integrations.verl.cpu.platform import PlatformCPU, cpu_platform_selected, use_gloo_only

    if PlatformRegistry.get(PLATFORM_NAME) is None:
        PlatformRegistry.register(PLATFORM_NAME)(PlatformCPU)
    if cpu_platform_selected():
        use_gloo_only()


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback(module)`` right after ``name`` is first imported (a one-shot hook)."""

    def __init__(self, name: str, callback: Callable) -> None:
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            _safely(self.callback, module)

        spec.loader.exec_module = exec_module
        return spec


def _safely(callback: Callable, *args) -> None:
    # verl swallows plugin errors at debug level; a missing backend must say why instead.
    try:
        callback(*args)
    except Exception as exc:  # noqa: BLE001 - visible, never fatal to verl
        logger.warning("vseek_env verl plugin: %s failed: %s: %s", callback.__name__, type(exc).__name__, exc)


def after_import(name: str, callback: Callable) -> None:
    """Call ``callback(module)`` once ``name`` is imported (now, if it already is)."""
    if name in sys.modules:
        _safely(callback, sys.modules[name])
    else:
        sys.meta_path.insert(0, _AfterImport(name, callback))


def install() -> None:
    """Everything this plugin registers (verl calls it by importing this module)."""
    _safely(register_platform)
    after_import("verl.workers.rollout.replica", register_rollout)
    after_import("verl.trainer.ppo.v1.trainer_sync", register_trainer)


install()
