"""32 VideoSeeker envs in one process (``SyncVectorEnv``) stay within a documented memory budget.

Budget, per env, with ``obs_bytes = obs_frames * H * W * 3`` (a full observation's ``frames``)::

    RSS per env <= 2 * obs_bytes + 8 MiB

Two copies: the env's own observation and the vector's batched one (``frames`` is a stacked
``Sequence``, so no space stores full-size bounds). 8 MiB covers the rest (rendered prompt frames,
decoders, transcript). At the defaults (64 frames of 160x160, 4.7 MiB) that is ~18 MiB per env,
~0.6 GiB for 32 envs. Decoded frames and thumbnails live in the process-wide frame cache, shared
by all envs and bounded separately (``VSEEK_FRAME_CACHE_MB``, default 512).

RSS is measured in a fresh interpreter so that memory freed by earlier tests cannot hide growth.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

NUM_ENVS, OBS_FRAMES, SIDE = 32, 16, 160
OBS_BYTES = OBS_FRAMES * SIDE * SIDE * 3
MIB = 2**20

_SCRIPT = textwrap.dedent(
    """
    import gc, json, sys
    sys.path.insert(0, {tests!r})
    import psutil
    from conftest import make_sample
    from vseek_env.data import Dataset, VisualPromptSpec
    import vseek_env
    from vseek_env.env import VideoSeekerEnv

    ds = Dataset("small", [make_sample("s0"), make_sample("s1", answer="A",
                 prompt=VisualPromptSpec(time=4.25, style="ellipse", box=(10.0, 50.0, 60.0, 110.0)))], root={root!r})
    cfg = dict(dataset=ds, obs_frames={frames}, obs_frame_size=({side}, {side}), overview_frames=8)
    warm = VideoSeekerEnv(**cfg); warm.reset(seed=0); warm.close()  # imports, decoder libraries
    proc = psutil.Process()
    gc.collect(); before = proc.memory_info().rss
    envs = vseek_env.make_vec("VideoSeeker-v0", num_envs={n}, **cfg)
    envs.reset(seed=0)
    crop = '<think>t</think><tool_call>{{"name": "crop_video", "arguments": {{"start_time": 0, "end_time": 6}}}}</tool_call>'
    peak = 0
    for i in range(9):  # three episodes per env: tool rounds, answers, autoreset
        envs.step([crop if i % 3 != 2 else "<think>t</think><answer>A</answer>"] * {n})
        gc.collect(); peak = max(peak, proc.memory_info().rss)
    envs.close()
    print(json.dumps({{"per_env": (peak - before) / {n}}}))
    """
)


@pytest.fixture(scope="module")
def per_env_bytes(indexed_video) -> float:
    script = _SCRIPT.format(tests=str(Path(__file__).parent), root=str(indexed_video.parent), frames=OBS_FRAMES,
                            side=SIDE, n=NUM_ENVS)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["per_env"]


def test_32_envs_stay_within_the_documented_budget(per_env_bytes):
    budget = 2 * OBS_BYTES + 8 * MIB
    print(f"{per_env_bytes / MIB:.2f} MiB per env (budget {budget / MIB:.1f})")
    assert per_env_bytes <= budget, f"{per_env_bytes / MIB:.1f} MiB per env > budget {budget / MIB:.1f} MiB"

