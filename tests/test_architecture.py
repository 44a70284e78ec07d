"""The architecture contracts of pyproject.toml ([tool.importlinter], run by `make lint` and CI):
they hold for the package, and they catch a violating import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(root / "pyproject.toml"),
                           "--no-cache"], cwd=root, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def copy(tmp_path) -> Path:
    shutil.copytree(REPO / "w4s_ray", tmp_path / "w4s_ray",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_its_contracts():
    res = _lint(REPO)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Contracts: 2 kept, 0 broken." in res.stdout


@pytest.mark.parametrize("module, line, contract", [
    # Algorithm code importing Ray, even inside a function.
    ("rlao/mdp.py", "def _x():\n    import ray\n", "imports no Ray"),
    ("sandbox/judge.py", "from w4s_ray.runtime import ray_init\n", "imports no Ray"),
    # A lower layer importing a higher one.
    ("benchmarks/base.py", "from w4s_ray.rlao import prompts\n", "Layers"),
    ("config.py", "import w4s_ray.benchmarks\n", "Layers"),
    # The model library sits below every stage that loads a model.
    ("models/loading.py", "from w4s_ray.meta_agent import base\n", "Layers"),
    ("models/engine.py", "def _x():\n    import ray\n", "imports no Ray"),
])
def test_a_violating_import_is_caught(copy, module, line, contract):
    target = copy / "w4s_ray" / module
    target.write_text(target.read_text() + "\n" + line)
    res = _lint(copy)
    assert res.returncode != 0, res.stdout[-2000:]
    broken = res.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and module.replace("/", ".").removesuffix(".py") in broken
