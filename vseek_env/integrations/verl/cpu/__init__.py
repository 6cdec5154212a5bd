"""Run verl's own trainer on a CPU-only machine: a platform and a rollout backend, for tests.

* :mod:`.platform`: the ``cpu`` platform for verl's platform registry (``VERL_PLATFORM=cpu``);
* :mod:`.rollout`: ``vseek_hf``, a Hugging Face ``generate`` server behind verl's rollout-server
  interface (``actor_rollout_ref.rollout.name=vseek_hf``);
* :mod:`.tiny_model`: a random tiny Qwen2.5-VL / Qwen3-VL saved like a checkpoint (no download);
* :mod:`.smoke`: ``main_ppo`` end to end with all of the above (``examples/verl/run_cpu_smoke.sh``).

verl finds the platform and the rollout through :mod:`vseek_env.integrations.verl.plugin`. These
are test and debugging backends, so that verl's default trainer path runs in CI without a GPU;
they are not a way to train.
"""

ROLLOUT_NAME = "vseek_hf"  # actor_rollout_ref.rollout.name
PLATFORM_NAME = "cpu"  # VERL_PLATFORM
