"""vseek-env: a Gymnasium environment for agentic, instance-level video QA with visual prompts.

>>> import gymnasium as gym, vseek_env                                   # doctest: +SKIP
>>> env = gym.make("VideoSeeker-v0")          # embedded synthetic data, built on first use

Importing this package is light: no torch, ray or verl.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

ENV_IDS = ("VideoSeeker-v0", "VideoSeeker-tiny-v0", "VideoSeeker-long-v0", "VideoSeeker-zoom-v0", "VideoSeeker-paper-v0")


def _register() -> None:
    entry = "vseek_env.env:VideoSeekerEnv"
    specs = {
        "VideoSeeker-v0": {"dataset": "synth:default"},
        "VideoSeeker-tiny-v0": {"dataset": "synth:tiny"},
        "VideoSeeker-long-v0": {"dataset": "synth:long"},
        "VideoSeeker-zoom-v0": {"dataset": "synth:default", "tools": ("view_visual_prompt", "crop_video", "zoom_in")},
        # The paper's protocol (EnvConfig PROTOCOLS["paper"]); protocol="paper" applies it to any dataset.
        "VideoSeeker-paper-v0": {"dataset": "synth:default", "protocol": "paper"},
    }
    for env_id, kwargs in specs.items():
        if env_id not in registry:
            # The episode length is governed by EnvConfig.max_turns, not by a TimeLimit wrapper.
            register(id=env_id, entry_point=entry, kwargs=kwargs, disable_env_checker=False)


_register()


def make_vec(env_id: str = "VideoSeeker-v0", num_envs: int = 2, *, asynchronous: bool = False, **kwargs):
    """A vector of VideoSeeker envs (``gymnasium.vector``), with autoreset.

    The same as ``gym.make_vec(env_id, num_envs, vectorization_mode="async" or "sync", **kwargs)``:
    asynchronous vectors run each env in its own process and pass text and frames through shared
    memory (``vseek_env.spaces`` registers it for the env's text and frame spaces).

    >>> envs = make_vec("VideoSeeker-tiny-v0", num_envs=2)              # doctest: +SKIP
    """
    import gymnasium as gym

    mode = "async" if asynchronous else "sync"
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **kwargs)


def __getattr__(name: str):
    # Lazy so that `import vseek_env` does not pull in video decoding or PIL.
    if name == "VideoSeekerEnv":
        from vseek_env.env import VideoSeekerEnv

        return VideoSeekerEnv
    if name == "EnvConfig":
        from vseek_env.config import EnvConfig

        return EnvConfig
    if name in ("Sample", "load_dataset"):
        from vseek_env import data

        return getattr(data, name)
    raise AttributeError(f"module 'vseek_env' has no attribute {name!r}")


__all__ = ["ENV_IDS", "make_vec", "EnvConfig", "Sample", "VideoSeekerEnv", "load_dataset"]
