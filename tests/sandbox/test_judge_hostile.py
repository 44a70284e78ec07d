"""Hostile candidates against the code scorer: none may forge a pass, honest code still passes.

The verdict is written by a judge process that never runs candidate code (w4s_ray/sandbox/judge.py); these
tests are the attacks that beat the earlier single-process harness (frames, patched builtins,
lying __eq__), plus the plain-data bridge that honest solutions rely on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from w4s_ray.sandbox.judge import run_tests

CHECK = "def check(candidate):\n    assert candidate(2) == 5\n"
WRONG = "def f(x):\n    return 0\n"


def _run(solution: str, tests: str = CHECK, **kw):
    return run_tests(solution, tests, entry_point="f", timeout_s=20, cpu_s=5, **kw)


FORGERIES = {
    "frame": "import sys, os\nfr = sys._getframe(1)\n"
             "os.write(fr.f_locals['fd'], ('PASS ' + fr.f_locals['nonce']).encode())\nos._exit(0)\n",
    "traceback_frame": "import os\ntry:\n    raise ValueError\nexcept ValueError as e:\n"
                       "    fr = e.__traceback__.tb_frame.f_back\n"
                       "    os.write(fr.f_locals['fd'], ('PASS ' + fr.f_locals['nonce']).encode())\n"
                       "    os._exit(0)\n",
    "patched_compile": "import builtins\n_c = builtins.compile\n"
                       "builtins.compile = lambda s, fn, m, *a, **k: _c('pass', fn, m)\n" + WRONG,
    "patched_exec": "import builtins\nbuiltins.exec = lambda *a, **k: None\n" + WRONG,
    "lying_eq": "class Y:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
                "def f(x):\n    return Y()\n",
    "settrace": "import sys, os\ndef tr(frame, ev, arg):\n    l = frame.f_locals\n"
                "    if 'nonce' in l:\n        os.write(l['vfd'], ('PASS ' + l['nonce']).encode())\n"
                "    return tr\nsys.settrace(tr)\n" + WRONG,
    "patched_assert_error": "import builtins\nbuiltins.AssertionError = type('A', (Exception,), {})\n"
                            + WRONG,
    "redefines_check": WRONG + "def check(candidate):\n    pass\n",
    "fake_marker": "import sys\nprint('PASS')\nsys.stderr.write('PASS')\n" + WRONG,
    "exit_before_tests": "import os\nos._exit(0)\n",
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forgeries_do_not_pass(name):
    res = _run(FORGERIES[name])
    assert not res.passed, (name, res)


def test_candidate_cannot_read_the_hidden_tests_or_other_dirs(tmp_path):
    secret = tmp_path / "hidden.txt"
    secret.write_text("42")
    probe = (f"import os\nseen = []\n"
             f"for p in ('tests.py', {str(secret)!r}, '/proc/self/mem', '/tmp'):\n"
             f"    try:\n        open(p).read() if p != '/tmp' else os.listdir(p)\n"
             f"        seen.append(p)\n    except OSError:\n        pass\n"
             f"def f(x):\n    return seen\n")
    res = _run(probe, "def check(candidate):\n    assert candidate(0) == []\n")
    assert res.passed, res


def test_candidate_cannot_plant_files_outside_its_directory():
    target = Path(sys.prefix) / "w4s_probe_planted.pth"
    plant = (f"import os\ntry:\n    open({str(target)!r}, 'w').write('import os')\n"
             f"except OSError:\n    pass\n"
             f"try:\n    open('x.pth', 'w').write('x')\n    os.rename('x.pth', {str(target)!r})\n"
             f"except OSError:\n    pass\n" + "def f(x):\n    return x + 3\n")
    assert _run(plant).passed
    assert not target.exists()


def test_candidate_cannot_fork():
    fork = ("import os\ntry:\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n"
            "    forked = True\nexcept OSError:\n    forked = False\n"
            "def f(x):\n    return forked\n")
    assert _run(fork, "def check(candidate):\n    assert candidate(0) is False\n").passed


def test_plain_data_crosses_faithfully():
    sol = ("from fractions import Fraction\n"
           "def f(kind):\n"
           "    return {'tuple': (1, 'a', None), 'set': {1, 2}, 'dict': {(1, 2): [1.5, True]},\n"
           "            'big': 2 ** 200, 'bytes': b'\\x00\\xff', 'frac': Fraction(1, 3),\n"
           "            'nan': float('nan'), 'complex': 1 + 2j, 'gen': (i for i in range(3)),\n"
           "            'neg0': -0.0}[kind]\n")
    tests = ("import math\nfrom fractions import Fraction\n"
             "def check(candidate):\n"
             "    assert candidate('tuple') == (1, 'a', None) and type(candidate('tuple')) is tuple\n"
             "    assert candidate('set') == {1, 2}\n"
             "    assert candidate('dict') == {(1, 2): [1.5, True]}\n"
             "    assert candidate('dict')[(1, 2)][1] is True\n"
             "    assert candidate('big') == 2 ** 200\n"
             "    assert candidate('bytes') == b'\\x00\\xff'\n"
             "    assert candidate('frac') == Fraction(1, 3)\n"
             "    assert math.isnan(candidate('nan'))\n"
             "    assert candidate('complex') == 1 + 2j\n"
             "    assert list(candidate('gen')) == [0, 1, 2]\n"
             "    assert math.copysign(1, candidate('neg0')) == -1\n")
    assert _run(sol, tests).passed


def test_exceptions_mutation_and_solution_modules_reach_the_tests():
    sol = ("import sys\n"
           "def f(xs):\n    if not xs:\n        raise ValueError('empty')\n"
           "    xs.append(sys.maxsize)\n    xs.sort()\n")
    tests = ("def check(candidate):\n"
             "    try:\n        candidate([])\n        assert False\n"
             "    except ValueError as exc:\n        assert 'empty' in str(exc)\n"
             "    data = [3, 1]\n    assert candidate(data) is None\n"
             "    assert data == [1, 3, sys.maxsize]\n")
    assert _run(sol, tests).passed


def test_candidate_exception_is_reported_as_failure_detail():
    res = _run("def f(x):\n    raise KeyError('boom')\n")
    assert res.status == "failed" and res.detail.startswith("KeyError")
    res = _run("def f(x):\n    return x + 2\n")
    assert res.status == "failed" and res.detail.startswith("AssertionError")
