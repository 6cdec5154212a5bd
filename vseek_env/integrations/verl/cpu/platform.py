"""A CPU platform for verl's platform registry: runs verl's trainer with no accelerator.

verl 0.9 resolves the device through ``verl.plugin.platform``: with no GPU it falls back to
``nvidia`` and every ``.to(get_device_id())`` fails. :class:`PlatformCPU` answers ``"cpu"``
everywhere, uses gloo for collectives and reports empty memory statistics. It is selected only
when ``VERL_PLATFORM=cpu`` is set (auto-detection never picks it, so GPU machines are unaffected).

This is a test and debugging backend: it exists so that verl's default trainer path can run end to
end in CI on a laptop-class machine. It is not a way to train real models.

Example:
    >>> PlatformCPU().device_name
    'cpu'
"""

from __future__ import annotations

import contextlib
import os
from types import ModuleType
from typing import Any, Optional

import torch

from verl.plugin.platform.platform_base import PlatformBase

from vseek_env.integrations.verl.cpu import PLATFORM_NAME



def cpu_platform_selected() -> bool:
    """Whether this process runs on the CPU platform (``VERL_PLATFORM=cpu``)."""
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME


class _CPUStream:
    """What verl asks of a device stream: a context manager that can be waited on."""

    def __enter__(self) -> "_CPUStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def wait_stream(self, other: Any) -> None:
        return None

    def wait_event(self, event: Any) -> None:
        return None

    def record_event(self, event: Any = None) -> "_CPUEvent":
        return _CPUEvent()


class _CPUEvent:
    def record(self, stream: Any = None) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def wait(self, stream: Any = None) -> None:
        return None

    def query(self) -> bool:
        return True


class CPUDeviceModule(ModuleType):
    """Stands in for ``torch.cuda`` in the calls verl makes through ``get_torch_device()``."""

    def __init__(self) -> None:
        super().__init__("vseek_verl_cpu_device")

    Stream = _CPUStream
    Event = _CPUEvent

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def current_device() -> str:
        return "cpu"

    @staticmethod
    def set_device(device: Any) -> None:
        return None

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return "cpu"

    @staticmethod
    def synchronize(device: Any = None) -> None:
        return None

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def current_stream(device: Any = None) -> _CPUStream:
        return _CPUStream()

    @staticmethod
    def stream(stream: Any = None) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    @staticmethod
    def manual_seed_all(seed: int) -> None:
        torch.manual_seed(seed)

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        return (0, 0)

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        return None

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated


class PlatformCPU(PlatformBase):
    """verl platform for CPU-only processes (see the module docstring)."""

    _device_module = CPUDeviceModule()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return self._device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Only by explicit choice: auto-detection must keep choosing the real accelerator.
        return cpu_platform_selected()

    def current_device(self) -> str:
        # verl passes get_device_id() to .to(); "cpu" is the only valid target here.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        # verl's resource pools always ask Ray for "GPU"; the CPU run gives Ray logical GPUs
        # (ray_init.num_gpus) that stand for worker slots, not devices.
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def use_gloo_only() -> None:
    """Make verl's process-group setup valid on CPU.

    ``verl.utils.distributed.initialize_global_process_group_ray`` builds the backend string
    ``f"cpu:gloo,{device}:{backend}"`` itself instead of asking the platform; with the device
    ``cpu`` that names ``cpu`` twice, which torch rejects. On the CPU platform the one backend is
    gloo, so the default becomes ``"cpu:gloo"``. The plugin runs while ``import verl`` runs, before
    any worker module binds the function by name, so the wrapped one is what they get.
    """
    import verl.utils.distributed as distributed

    original = distributed.initialize_global_process_group_ray
    if getattr(original, "_vseek_gloo_only", False):
        return

    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "cpu:gloo")

    initialize_global_process_group_ray._vseek_gloo_only = True
    distributed.initialize_global_process_group_ray = initialize_global_process_group_ray
