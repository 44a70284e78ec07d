"""The code sandbox: separate process, timeout, limits, and a verdict the candidate cannot fake."""

from __future__ import annotations

import os
import subprocess

import pytest

from w4s_ray.benchmarks import get_benchmark
from w4s_ray.sandbox.judge import run_tests

CHECK = "def check(candidate):\n    assert candidate(2) == 3\n"
GOOD = "def inc(x):\n    return x + 1\n"


def test_pass_and_fail():
    assert run_tests(GOOD, CHECK, entry_point="inc").passed
    res = run_tests("def inc(x):\n    return x\n", CHECK, entry_point="inc")
    assert (res.passed, res.status) == (False, "failed") and "AssertionError" in res.detail


def test_missing_entry_point_and_syntax_error_fail():
    assert run_tests("def other(x):\n    return x + 1\n", CHECK, entry_point="inc").status == "failed"
    res = run_tests("def inc(x:\n", CHECK, entry_point="inc")
    assert not res.passed and "SyntaxError" in res.detail


def test_hang_times_out_quickly():
    res = run_tests("def inc(x):\n    while True:\n        pass\n", CHECK, entry_point="inc",
                    timeout_s=1.0)
    assert res.status == "timeout" and not res.passed


def test_sleeping_candidate_times_out():
    res = run_tests("import time\ntime.sleep(60)\n" + GOOD, CHECK, entry_point="inc",
                    timeout_s=1.0)
    assert res.status == "timeout"


@pytest.mark.parametrize("cheat", [
    "import sys\nsys.exit(0)\n",
    "import os\nos._exit(0)\n",
    "import sys\nprint('PASS')\nsys.stdout.flush()\nimport os\nos._exit(0)\n",
    "raise SystemExit(0)\n",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
])
def test_candidate_cannot_fake_a_pass(cheat):
    assert not run_tests(cheat + GOOD, CHECK, entry_point="inc").passed


def test_megabytes_of_output_do_not_break_scoring():
    noisy = "print('x' * 5_000_000)\n" + GOOD
    assert run_tests(noisy, CHECK, entry_point="inc").passed


def test_memory_bomb_fails_cleanly():
    res = run_tests("x = bytearray(4 * 1024 ** 3)\n" + GOOD, CHECK, entry_point="inc",
                    memory_mb=512)
    assert not res.passed


def test_no_secrets_in_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    probe = "import os\nassert 'OPENAI_API_KEY' not in os.environ, 'leak'\n" + GOOD
    assert run_tests(probe, CHECK, entry_point="inc").passed


def test_runs_in_a_temp_cwd_not_the_callers(tmp_path):
    probe = f"import os\nassert os.getcwd() != {str(os.getcwd())!r}\n" + GOOD
    assert run_tests(probe, CHECK, entry_point="inc").passed


def test_children_are_killed_with_the_group():
    marker = "w4s-orphan-probe-4711"
    spawn = (f"import subprocess\nsubprocess.Popen(['/bin/sh', '-c', 'exec -a {marker} sleep 300'])\n"
             + GOOD)
    run_tests(spawn, CHECK, entry_point="inc", timeout_s=5)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert marker not in ps


def test_benchmark_score_of_a_hanging_prediction_is_zero(data_dir):
    bm = get_benchmark("humaneval", data_dir)
    bm.exec_timeout_s = 1.0
    item = bm.load("valid")[0]
    ep = item.meta["entry_point"]
    assert bm.score(item, f"def {ep}(*a, **k):\n    while True:\n        pass\n") == 0.0
    assert bm.score(item, f"def {ep}(*a, **k):\n    raise ValueError('crash')\n") == 0.0


def test_prediction_in_markdown_with_prose(data_dir):
    bm = get_benchmark("mbpp", data_dir)
    item = bm.load("valid")[0]
    text = f"Sure! Here it is:\n```python\n{item.meta['reference_solution']}\n```\nHope it helps."
    assert bm.score(item, text) == 1.0


def test_busy_loop_is_stopped_by_the_cpu_limit():
    res = run_tests("while True:\n    pass\n", CHECK, entry_point="inc", timeout_s=60, cpu_s=1)
    assert res.status == "timeout" and "CPU" in res.detail
    assert res.duration_s < 30  # stopped by RLIMIT_CPU, long before the wall clock
