"""A third-party reward package (examples/reward_plugin) found through the entry-point group."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import gymnasium as gym
import pytest

import vseek_env  # noqa: F401  (registers the env ids)
from vseek_env.rewards import ENTRY_POINT_GROUP, available_rewards, get_reward, make_reward
from vseek_env.rewards import registry

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "reward_plugin"
CROP = '<think>look</think><tool_call>{"name": "crop_video", "arguments": {"start_time": 2, "end_time": 4}}</tool_call>'


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    """The plugin as if pip-installed: its package and a dist-info built from its own pyproject."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    dist = tmp_path / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    entry_points = project["entry-points"][ENTRY_POINT_GROUP]
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n" + "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    )
    before = dict(registry._REGISTRY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGIN))
    yield entry_points
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)
    sys.modules.pop("vseek_reward_example", None)


def test_plugin_is_listed_before_it_is_imported_and_loads_by_name(plugin_on_path):
    assert plugin_on_path == {"brevity": "vseek_reward_example:brevity"}
    assert "brevity" in available_rewards() and "vseek_reward_example" not in sys.modules
    spec = get_reward("brevity")
    assert spec.range == (0.0, 1.0) and spec.options == {"budget": 2000} and "vseek_reward_example" in sys.modules


def test_env_selects_the_plugin_reward_by_name(plugin_on_path, small_dataset):
    env = gym.make("VideoSeeker-v0", dataset=small_dataset,
                   reward={"accuracy": 1.0, "brevity": {"weight": 0.5, "budget": 100}})
    env.reset(seed=0, options={"sample_id": "s0"})
    env.step(CROP)  # 4 think characters
    _, reward, terminated, _, info = env.step("<think>" + "x" * 46 + "</think><answer>B</answer>")
    assert terminated and info["reward_components"] == {"accuracy": 1.0, "brevity": pytest.approx(0.5)}
    assert info["reward_metrics"]["brevity/think_chars"] == 50 and reward == pytest.approx(1.25)
    env.close()


def test_a_broken_plugin_names_itself(plugin_on_path, tmp_path):
    dist = next(tmp_path.glob("*.dist-info"))
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = vseek_no_such_module:fn\n")
    with pytest.raises(ImportError, match="reward plugin 'broken'.*vseek-reward-example"):
        make_reward({"broken": 1.0})
    assert get_reward("accuracy").name == "accuracy"  # other rewards are unaffected


def test_pip_installed_plugin_works_in_a_fresh_interpreter(tmp_path):
    """A real ``pip install`` (isolated build, into a target dir so the shared venv is untouched)."""
    src = shutil.copytree(PLUGIN, tmp_path / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(src)],
                         capture_output=True, text=True)
    if pip.returncode != 0 and "setuptools" in pip.stderr and ("connection" in pip.stderr.lower() or "find" in pip.stderr):
        pytest.skip(f"cannot fetch the build backend for an isolated build: {pip.stderr[-300:]}")
    assert pip.returncode == 0, pip.stderr
    code = ("import vseek_env.rewards as r; from vseek_env.trajectory import trajectory_from_text as t; "
            "from vseek_env.data import Sample; s = Sample(id='q', video='v', question='?', answer='x', answer_kind='open'); "
            "c = r.make_reward({'brevity': {'weight': 1.0, 'budget': 10}}); "
            "print(c(s, t('<think>abcde</think><answer>x</answer>'))[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(target), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(0.5)
