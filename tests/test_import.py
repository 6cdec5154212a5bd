"""The core stays light and the layout installs as designed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_does_not_pull_heavy_dependencies():
    code = (
        "import sys; import vseek_env; "
        "print([m for m in ('torch', 'ray', 'verl', 'transformers', 'decord', 'av') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"import vseek_env imported {out}"


def test_importing_the_env_module_does_not_pull_torch_ray_or_verl():
    code = "import sys, vseek_env.env, vseek_env.rewards, vseek_env.policies, vseek_env.cli; " \
           "print([m for m in ('torch', 'ray', 'verl') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
    )
    return next(out.glob("vseek_env-*.whl"))


def test_wheel_installs_policies_and_rewards_under_vseek_env(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "vseek_env/policies/base.py" in names and "vseek_env/rewards/registry.py" in names
    top_level = {n.split("/")[0] for n in names}
    assert "policies" not in top_level and "rewards" not in top_level


def test_wheel_works_in_a_clean_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=600)
    code = (
        "import vseek_env.policies, vseek_env.rewards, importlib.util as u; "
        "assert u.find_spec('policies') is None and u.find_spec('rewards') is None; "
        "from vseek_env.rewards import make_reward; print(make_reward('paper').names)"
    )
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "accuracy" in out.stdout


def test_every_subpackage_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (ROOT / "vseek_env").rglob("__init__.py"):
        rel = init.relative_to(ROOT).as_posix()
        assert rel in names, f"{rel} is missing from the wheel: add its package to pyproject.toml"
