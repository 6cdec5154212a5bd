"""Run verl's own trainer on a CPU-only machine: a platform and a rollout backend, for tests.

verl loads this package in every process that imports verl (entry-point group ``verl.plugins``,
declared in ``pyproject.toml``). Loading it registers:

* the ``cpu`` platform (:mod:`.platform`), used only when ``VERL_PLATFORM=cpu``;
* the ``vseek_hf`` rollout (:mod:`.rollout`): a Hugging Face ``generate`` server behind verl's
  rollout-server interface, selected with ``actor_rollout_ref.rollout.name=vseek_hf``.

Neither changes anything for a run that does not select it. Both exist so that
``examples/verl/run_cpu_smoke.sh`` (and the test that calls it) can run ``verl.trainer.main_ppo``
end to end without a GPU; they are test and debugging backends, not a way to train.

Example:
    >>> from vseek_env.integrations.verl import cpu      # doctest: +SKIP
    >>> cpu.register()                                   # what verl's plugin loader does
"""

from __future__ import annotations

import logging
import os

ROLLOUT_NAME = "vseek_hf"
PLATFORM_NAME = "cpu"
_ADAPTER = "vseek_env.integrations.verl.cpu.rollout.HFServerAdapter"

logger = logging.getLogger(__name__)


def _load_replica():
    from vseek_env.integrations.verl.cpu.rollout import HFRolloutReplica

    return HFRolloutReplica


def register() -> None:
    """Register the ``cpu`` platform and the ``vseek_hf`` rollout with verl (idempotent)."""
    from verl.plugin.platform.platform_manager import PlatformRegistry
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    from vseek_env.integrations.verl.cpu.platform import PlatformCPU

    if PlatformRegistry.get(PLATFORM_NAME) is None:
        PlatformRegistry.register(PLATFORM_NAME)(PlatformCPU)
    _ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = _ADAPTER
    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_replica)
    if os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME:
        _use_gloo_only()


def _use_gloo_only() -> None:
    """Make verl's process-group setup valid on CPU.

    ``verl.utils.distributed.initialize_global_process_group_ray`` builds the backend string
    ``f"cpu:gloo,{device}:{backend}"`` itself instead of asking the platform; with the device
    ``cpu`` that names ``cpu`` twice, which torch rejects. On the CPU platform the one backend is
    gloo, so the default becomes ``"cpu:gloo"``. verl imports this module while ``import verl``
    runs, before any worker module binds the function, so the wrapped one is what they get.
    """
    import verl.utils.distributed as distributed

    original = distributed.initialize_global_process_group_ray
    if getattr(original, "_vseek_gloo_only", False):
        return

    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "cpu:gloo")

    initialize_global_process_group_ray._vseek_gloo_only = True
    distributed.initialize_global_process_group_ray = initialize_global_process_group_ray


def _register_as_plugin() -> None:
    # verl swallows plugin errors at debug level; say why the backend is missing instead.
    try:
        register()
    except Exception as exc:  # noqa: BLE001 - any failure must be visible, not fatal
        logger.warning("vseek_env's verl CPU backend is unavailable: %s: %s", type(exc).__name__, exc)


_register_as_plugin()
