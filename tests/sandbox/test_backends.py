"""Sandbox backends: bubblewrap command construction, automatic selection with fallback, and
the same workflows contained under every backend this machine can run."""

from __future__ import annotations

import os
import sys

import pytest

from tests.workflow.helpers import GOOD, gold_lm, run_eval
from w4s_ray.config import SandboxConfig, load_config
from w4s_ray.errors import ConfigError
from w4s_ray.sandbox import isolation
from w4s_ray.sandbox.base import LocalSandbox, make_sandbox
from w4s_ray.sandbox.isolation import bwrap_command, bwrap_status


def _available() -> list[str]:
    return ["process"] + (["bwrap"] if bwrap_status()["available"] else [])


def test_bwrap_command_binds_only_what_a_child_needs():
    roots = ["/usr", "/opt/py", "/srv/repo/w4s_ray"]
    cmd = bwrap_command(["python", "-I", "x.py", "5", "6"], workdir="/tmp/w4s-wf-1-a",
                        hide=(b"/proc", b"/srv/repo/w4s_ray/data", b"/elsewhere"),
                        bwrap="/usr/bin/bwrap", roots=roots, as_root=True)
    assert cmd[:3] == ["/usr/bin/bwrap", "--die-with-parent", "--unshare-all"]
    assert cmd[cmd.index("--cap-drop") + 1] == "ALL"
    binds = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--ro-bind"]
    assert binds == roots  # read-only: Python, packages, system dirs; nothing else exists
    work = os.path.realpath("/tmp/w4s-wf-1-a")
    assert cmd[cmd.index("--bind") + 1:cmd.index("--bind") + 3] == [work, work]
    tmpfs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--tmpfs"]
    # A private /tmp; a hidden path under a bound root is covered; others are absent anyway.
    assert tmpfs == ["/tmp", "/srv/repo/w4s_ray/data"]
    assert cmd[cmd.index("--proc") + 1] == "/proc" and "--dev" in cmd
    assert cmd[cmd.index("--") + 1:] == ["python", "-I", "x.py", "5", "6"]
    assert "--cap-drop" not in bwrap_command(["x"], workdir="/tmp/w", roots=roots,
                                             as_root=False)


def test_read_roots_cover_the_interpreter_and_the_package():
    roots = isolation.read_roots()
    for need in (sys.prefix, sys.base_prefix, str(isolation.PACKAGE_DIR)):
        real = os.path.realpath(need)
        assert any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots), need
    data = os.environ.get("W4S_DATA_DIR", "")
    if data:
        assert not any(os.path.realpath(data).startswith(r.rstrip("/") + "/") for r in roots)


def test_auto_falls_back_to_the_process_backend(monkeypatch):
    monkeypatch.setattr(isolation, "bwrap_status",
                        lambda: {"available": False, "reason": "not installed", "path": None})
    monkeypatch.setattr("w4s_ray.sandbox.base.bwrap_status", isolation.bwrap_status)
    assert make_sandbox(SandboxConfig(backend="auto")).name == "process"
    with pytest.raises(ConfigError, match="sandbox.backend=bwrap: not installed"):
        make_sandbox(SandboxConfig(backend="bwrap"))


def test_backend_is_a_config_choice():
    assert load_config(None, ["sandbox.backend=process"]).sandbox.backend == "process"
    with pytest.raises(ConfigError, match="sandbox.backend"):
        load_config(None, ["sandbox.backend=docker"])


def test_auto_picks_bubblewrap_where_it_runs():
    sb = make_sandbox(SandboxConfig())
    assert isinstance(sb, LocalSandbox)
    assert sb.name == ("bwrap" if bwrap_status()["available"] else "process")


@pytest.mark.parametrize("backend", _available())
def test_workflows_run_and_are_contained_under_each_backend(backend, gsm8k, data_dir,
                                                            sandbox_cfg, eval_cfg):
    cfg = sandbox_cfg.model_copy(update={"backend": backend})
    ok = run_eval(GOOD, gsm8k, gold_lm(gsm8k), make_sandbox(cfg), eval_cfg)
    assert ok.accuracy == 1.0 and ok.errors == {}
    # os.stat raises no audit event: only the isolation layer keeps the data dir unseen.
    probe = ("import os\ndef solver(agent, task):\n"
             f"    return {{'answer': str(os.path.exists({str(data_dir / 'gsm8k')!r}))}}\n")
    res = run_eval(probe, gsm8k, gold_lm(gsm8k), make_sandbox(cfg), eval_cfg, limit=1)
    namespaces = make_sandbox(cfg).status()["namespaces"]
    if namespaces:
        assert res.answers == ["False"], res.answers
    code = "import os\ndef solver(agent, task):\n    os.system('true')\n    return {'answer': 1}\n"
    bad = run_eval(code, gsm8k, gold_lm(gsm8k), make_sandbox(cfg), eval_cfg, limit=1)
    assert bad.errors == {"exception": 1}


@pytest.mark.parametrize("backend", _available())
def test_execute_code_and_the_judge_under_each_backend(backend):
    import asyncio

    sb = make_sandbox(SandboxConfig(backend=backend, code_exec_timeout_s=5))
    out = asyncio.run(sb.execute_code("def solution():\n    return 6 * 7\n", 5))
    assert out == {"ok": True, "value": 42}
    res = sb.run_tests("def inc(x):\n    return x + 1\n",
                       "def check(candidate):\n    assert candidate(1) == 2\n",
                       entry_point="inc", timeout_s=30)
    assert res.passed, res
    spin = sb.run_tests("while True:\n    pass\n",
                        "def check(candidate):\n    assert candidate(1) == 2\n",
                        entry_point="inc", timeout_s=60, cpu_s=1)
    assert spin.status == "timeout" and "CPU" in spin.detail
