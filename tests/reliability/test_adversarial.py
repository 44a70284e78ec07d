"""Hostile workflows beyond tests/sandbox/test_runner.py (which holds 25 more: loops, memory
and fork bombs, os.system/subprocess, sys.exit/os._exit, reading the data dir, the parent's
environ and the cache, ...). Each one here is contained: the evaluation finishes, every item
is scored only by what the workflow really answered (or fails with its reason), nothing
appears outside the sandbox, no process is left, and the next evaluation works.

Several of these were real escapes when this suite was written (writes through a directory
fd, sqlite3 ATTACH, readline history files, os.chdir); the audit hook now refuses them."""

from __future__ import annotations

import os
import site
import sys
import uuid
from pathlib import Path

import pytest

from tests.workflow.helpers import FAKE_KEY, GOOD, children_of, gold_lm, run_eval, sandbox_temp_dirs
from w4s_ray.sandbox.process import isolation_status

TAG = uuid.uuid4().hex[:12]
OUTSIDE = f"/tmp/w4s-adv-{TAG}"
SITE = site.getsitepackages()[0]
CWD = os.getcwd()

ANSWERED = "answered"  # items answer normally; their scores must equal bm.score(item, answer)

# name: (code, expected kinds for every item, or ANSWERED)
HOSTILE: dict[str, tuple[str, object]] = {
    # -- reading gold answers, data and keys ------------------------------------------------
    "gold_via_benchmark_api": (
        "def solver(agent, task):\n    from w4s_ray.benchmarks import get_benchmark\n"
        "    items = get_benchmark('gsm8k', 'DATA').load('valid')\n"
        "    return {'answer': [i.answer for i in items if i.question == task][0]}\n",
        {"exception"}),
    "gold_by_pathlib": (
        "from pathlib import Path\ndef solver(agent, task):\n"
        "    return {'answer': Path('DATA/gsm8k/aflow/gsm8k_validate.jsonl').read_text()[:99]}\n",
        {"exception"}),
    "gold_by_os_open": (
        "import os\ndef solver(agent, task):\n"
        "    fd = os.open('DATA/gsm8k/aflow/gsm8k_validate.jsonl', os.O_RDONLY)\n"
        "    return {'answer': os.read(fd, 99).decode()}\n", {"exception"}),
    "api_key_file": (
        "def solver(agent, task):\n    return {'answer': open('KEYFILE').read()}\n",
        {"exception"}),
    "home_config_dir": (
        "import os\ndef solver(agent, task):\n"
        "    return {'answer': str(os.listdir('/root/.config')) + open('/root/.bashrc').read()}\n",
        {"exception"}),
    "readline_reads_key": (
        "def solver(agent, task):\n    import readline\n"
        "    readline.read_history_file('KEYFILE')\n"
        "    return {'answer': readline.get_history_item(1)}\n", {"exception"}),
    "readline_by_path_alias": (
        "import glob, importlib.util as u, sys\ndef solver(agent, task):\n"
        "    p = [x for x in sys.path if 'lib-dynload' in x][0] + '/readline.cpython-311-x86_64-linux-gnu.so'\n"
        "    m = u.module_from_spec(u.spec_from_file_location('x.readline', p))\n"
        "    m.read_history_file('KEYFILE')\n    return {'answer': m.get_history_item(1)}\n",
        {"exception"}),
    # -- calling the executor directly (the simulator listens on 127.0.0.1) ------------------
    "socket_to_simulator": (
        "import socket\ndef solver(agent, task):\n"
        "    s = socket.create_connection(('127.0.0.1', SIMPORT), timeout=2)\n"
        "    s.sendall(b'GET /v1/models HTTP/1.0\\r\\n\\r\\n')\n"
        "    return {'answer': s.recv(100).decode()}\n", {"exception"}),
    "urllib_to_simulator": (
        "import json, urllib.request\ndef solver(agent, task):\n"
        "    body = json.dumps({'model': 'sim-gpt-4o-mini', 'messages': [\n"
        "        {'role': 'user', 'content': task}]}).encode()\n"
        "    req = urllib.request.Request('SIMURL/chat/completions', data=body,\n"
        "                                 headers={'Content-Type': 'application/json'})\n"
        "    return {'answer': urllib.request.urlopen(req, timeout=2).read()[:50]}\n",
        {"exception"}),
    "asyncio_to_simulator": (
        "import asyncio\nasync def probe():\n"
        "    r, w = await asyncio.open_connection('127.0.0.1', SIMPORT)\n    return 'connected'\n"
        "def solver(agent, task):\n    return {'answer': asyncio.run(probe())}\n",
        {"exception"}),
    # -- changing the score ---------------------------------------------------------------
    "monkeypatch_scorer": (
        "def solver(agent, task):\n"
        "    try:\n        import w4s_ray.benchmarks.base as b\n"
        "        b.Benchmark.score = lambda self, item, pred: 1.0\n"
        "        import w4s_ray.workflow.evaluate as e\n"
        "        e.EvalResult.accuracy = 1.0\n    except Exception:\n        pass\n"
        "    return {'answer': '-424242'}\n", ANSWERED),
    "dict_subclass_lies": (
        "class D(dict):\n    def __getitem__(self, k):\n        return 'GOLD'\n"
        "    def __contains__(self, k):\n        return True\n"
        "def solver(agent, task):\n    return D(answer='-424242')\n", ANSWERED),
    "eq_and_str_lie": (
        "class Liar:\n    def __eq__(self, o):\n        return True\n"
        "    def __ne__(self, o):\n        return False\n    def __hash__(self):\n        return 0\n"
        "    def __str__(self):\n        return '-424242'\n    def __float__(self):\n        return 1e9\n"
        "def solver(agent, task):\n    return {'answer': Liar()}\n", ANSWERED),
    "pickle_reduce_runs_code": (
        "import os\nclass Evil:\n"
        "    def __reduce__(self):\n        return (os.system, ('touch OUTSIDE',))\n"
        "    def __str__(self):\n        return '-424242'\n"
        "def solver(agent, task):\n    return {'answer': Evil(), 'extra': Evil()}\n", ANSWERED),
    "str_returns_str_subclass": (
        "class S(str):\n    def __str__(self):\n        return 'GOLD'\n"
        "class A:\n    def __str__(self):\n        return S('-424242')\n"
        "def solver(agent, task):\n    return {'answer': A()}\n", ANSWERED),
    # -- signals ---------------------------------------------------------------------------
    "killpg_own_group": (
        "import os, signal\ndef solver(agent, task):\n    os.killpg(0, signal.SIGKILL)\n",
        {"exception"}),
    "kill_parent_group": (
        "import os, signal\ndef solver(agent, task):\n"
        "    os.killpg(os.getpgid(os.getppid()), signal.SIGTERM)\n", {"exception"}),
    "pthread_kill_main": (
        "import signal, threading\ndef solver(agent, task):\n"
        "    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)\n",
        {"exception"}),
    "sigstop_self": (
        "import signal\ndef solver(agent, task):\n    signal.raise_signal(signal.SIGSTOP)\n"
        "    return {'answer': '1'}\n", {"timeout", "crashed"}),
    "alarm_kills_child": (
        "import signal, time\ndef solver(agent, task):\n    signal.alarm(1)\n"
        "    time.sleep(3)\n    return {'answer': '1'}\n", {"crashed"}),
    # -- output, recursion, resources ----------------------------------------------------------
    "enormous_answer": (
        "def solver(agent, task):\n    return {'answer': '7' * 30_000_000}\n", ANSWERED),
    "enormous_llm_request": (
        "def solver(agent, task):\n"
        "    agent.call_llm(messages=[{'role': 'user', 'content': 'x' * 20_000_000}])\n"
        "    return {'answer': '1'}\n", {"exception"}),
    "c_stack_overflow": (
        "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1) + 1\n"
        "def solver(agent, task):\n    return {'answer': f(0)}\n",
        {"crashed", "exception", "memory", "timeout"}),
    "fd_exhaustion": (
        "def solver(agent, task):\n    fs = [open('/dev/null') for _ in range(100000)]\n"
        "    return {'answer': len(fs)}\n", {"exception"}),
    "file_size_bomb": (
        "def solver(agent, task):\n    with open('big.bin', 'wb') as fh:\n"
        "        for _ in range(64):\n            fh.write(b'0' * (1 << 20))\n"
        "    return {'answer': '1'}\n", {"exception", "crashed"}),
    "thread_outlives_item": (
        "import threading, time\ndef spin(agent):\n    while True:\n        try:\n"
        "            agent.call_llm(messages=[{'role': 'user', 'content': 'again'}])\n"
        "            open('OUTSIDE', 'w').write('late')\n        except Exception:\n"
        "            time.sleep(0.01)\n"
        "def solver(agent, task):\n"
        "    threading.Thread(target=spin, args=(agent,), daemon=False).start()\n"
        "    return {'answer': '-424242'}\n", ANSWERED),
    # -- writing outside the sandbox dir --------------------------------------------------
    "write_evaluator_cwd": (
        "def solver(agent, task):\n    open('CWD/w4s-adv-TAG', 'w').write('x')\n"
        "    return {'answer': '1'}\n", {"exception"}),
    "write_relative_parent": (
        "def solver(agent, task):\n    open('../w4s-adv-TAG', 'w').write('x')\n"
        "    return {'answer': '1'}\n", {"exception"}),
    "dirfd_write_site_packages": (
        "import os\ndef solver(agent, task):\n    fd = os.open('SITE', os.O_RDONLY)\n"
        "    w = os.open('w4s-adv-TAG.pth', os.O_WRONLY | os.O_CREAT, dir_fd=fd)\n"
        "    os.write(w, b'import os')\n    return {'answer': '1'}\n", {"exception"}),
    "chdir_then_write": (
        "import os\ndef solver(agent, task):\n    os.chdir('/tmp')\n"
        "    open('w4s-adv-TAG', 'w').write('x')\n    return {'answer': '1'}\n", {"exception"}),
    "sqlite_attach_outside": (
        "def solver(agent, task):\n    import sqlite3\n    c = sqlite3.connect(':memory:')\n"
        "    c.execute(\"attach database 'OUTSIDE' as x\")\n    c.execute('create table x.t(a)')\n"
        "    return {'answer': '1'}\n", {"exception"}),
    "readline_writes_outside": (
        "def solver(agent, task):\n    import readline\n    readline.add_history('x')\n"
        "    readline.write_history_file('OUTSIDE')\n    return {'answer': '1'}\n",
        {"exception"}),
    # -- native code -------------------------------------------------------------------------
    "ctypes_raw_import": (
        "def solver(agent, task):\n    import _ctypes\n    h = _ctypes.dlopen(None)\n"
        "    return {'answer': str(h)}\n", {"exception"}),
    "gc_walk_for_secrets": (
        "import gc\ndef solver(agent, task):\n"
        "    return {'answer': str(len(gc.get_objects()))}\n", {"exception"}),
}


@pytest.fixture(scope="module")
def adv_sim(data_dir):
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    handle = start_sim(SimConfig(latency="none"), data_dir, port=0)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("keys") / "openai.key"
    p.write_text(FAKE_KEY + "\n")
    return p


def _fill(code: str, data_dir, key_file, sim) -> str:
    return (code.replace("DATA", str(data_dir)).replace("KEYFILE", str(key_file))
            .replace("SIMPORT", str(sim.port)).replace("SIMURL", sim.url)
            .replace("OUTSIDE", OUTSIDE).replace("SITE", SITE).replace("CWD", CWD)
            .replace("TAG", TAG))


def _escapes() -> list[str]:
    cands = [Path(OUTSIDE), Path(CWD) / f"w4s-adv-{TAG}", Path("/tmp") / f"w4s-adv-{TAG}",
             Path(SITE) / f"w4s-adv-{TAG}.pth"]
    return [str(p) for p in cands if p.exists()]


def _sim_requests(sim) -> int:
    return int(sim.stats().get("requests", 0))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_workflow_is_contained(name, gsm8k, sandbox_cfg, eval_cfg, data_dir, key_file,
                                       adv_sim, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    code, expect = HOSTILE[name]
    code = _fill(code, data_dir, key_file, adv_sim)
    before_dirs = sandbox_temp_dirs()
    sim_before = _sim_requests(adv_sim)
    lm = gold_lm(gsm8k)

    # Session fixtures (simulators, Ray) may own children already; only new ones count.
    children_before = set(children_of(os.getpid()))
    res = run_eval(code, gsm8k, lm, sandbox_cfg, eval_cfg, limit=2)

    items = gsm8k.load("valid")[:2]
    assert res.n == 2 and len(res.scores) == 2
    if expect == ANSWERED:
        assert res.errors == {}, res.item_errors
        assert res.scores == [gsm8k.score(it, a) for it, a in zip(items, res.answers, strict=True)]
        assert all(len(a) <= sandbox_cfg.max_answer_chars for a in res.answers)
        assert res.scores == [0.0, 0.0], res.answers  # no lie turned into a right answer
    else:
        assert res.scores == [0.0, 0.0] and res.accuracy == 0.0
        for err in res.item_errors:
            assert err is not None and err.split(":")[0] in expect, res.item_errors
    # nothing escaped, nothing reached the executor behind the runtime's back, no leftovers
    assert _escapes() == []
    assert _sim_requests(adv_sim) == sim_before
    assert FAKE_KEY not in repr(res.to_dict())
    assert sandbox_temp_dirs() <= before_dirs
    assert set(children_of(os.getpid())) <= children_before
    # the next evaluation in the same process works
    ok = run_eval(GOOD, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg, limit=1)
    assert ok.accuracy == 1.0 and ok.errors == {}


def test_refusals_name_the_sandbox_not_a_missing_file(gsm8k, sandbox_cfg, eval_cfg, key_file,
                                                       data_dir, adv_sim):
    """Reading a key file fails because the sandbox refuses it (not because it is absent)."""
    code = _fill(HOSTILE["api_key_file"][0], data_dir, key_file, adv_sim)
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg, limit=1)
    assert "sandbox: reading" in res.item_errors[0], res.item_errors


def test_thread_calls_after_the_item_are_the_workflows_own(gsm8k, sandbox_cfg, eval_cfg,
                                                           adv_sim):
    """A thread left running keeps calling the executor until the child is killed at the end of
    the evaluation: those calls are counted (they are the workflow's), the evaluation ends."""
    code = _fill(HOSTILE["thread_outlives_item"][0], "", "", type("S", (), {"port": 1, "url": ""}))
    lm = gold_lm(gsm8k)
    # Session fixtures (simulators, Ray) may own children already; only new ones count.
    children_before = set(children_of(os.getpid()))
    res = run_eval(code, gsm8k, lm, sandbox_cfg, eval_cfg, limit=2)
    assert res.errors == {} and res.calls == len(lm.requests)
    assert set(children_of(os.getpid())) <= children_before


@pytest.mark.skipif(not isolation_status()["namespaces"], reason="needs mount namespaces")
def test_data_dir_is_empty_inside_the_sandbox(gsm8k, sandbox_cfg, eval_cfg, data_dir):
    """Under namespaces the data dir is an empty tmpfs (process backend) or absent (bubblewrap)
    even for code that gets past the hook: `os.stat` (no audit event) never sees its files."""
    code = ("import os\ndef solver(agent, task):\n"
            "    try:\n"
            f"        st = os.stat({str(data_dir)!r})\n"
            "    except FileNotFoundError:\n"
            "        return {'answer': 'absent'}\n"
            f"    g = os.path.exists({str(data_dir / 'gsm8k')!r})\n"
            "    return {'answer': f'{st.st_size}-{g}'}\n")
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg, limit=1)
    assert res.answers[0] == "absent" or res.answers[0].endswith("-False"), res.answers


def test_fresh_posix_module_can_still_mkfifo_documented_gap(gsm8k, sandbox_cfg, eval_cfg):
    """Documented gap (docs/RELIABILITY.md): mkfifo/mknod raise no audit event. The runtime
    removes them from `os`/`posix`, but a fresh `posix` module object brings them back; the
    workflow can then create an EMPTY fifo where the evaluating user may write. It cannot put
    content in it (opening it for writing is refused) and its items are still scored only by
    their answers."""
    target = f"/tmp/w4s-adv-fifo-{TAG}"
    code = (
        "import importlib.machinery as m, importlib.util as u\n"
        "def solver(agent, task):\n"
        "    p = u.module_from_spec(m.BuiltinImporter.find_spec('posix'))\n"
        "    try:\n"
        f"        p.mkfifo({target!r})\n"
        "    except FileExistsError:\n        pass\n"
        "    try:\n"
        f"        open({target!r}, 'w').write('data')\n        wrote = 'yes'\n"
        "    except PermissionError:\n        wrote = 'no'\n"
        "    return {'answer': wrote}\n")
    try:
        res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg, limit=1)
        assert res.answers == ["no"] and res.scores == [0.0]
        if os.path.exists(target):
            import stat

            assert stat.S_ISFIFO(os.stat(target).st_mode)
    finally:
        if os.path.lexists(target):
            os.unlink(target)


def test_suite_covers_at_least_twenty_new_kinds():
    assert len(HOSTILE) >= 20
    # and the 25 of tests/sandbox/test_runner.py are a different set
    from tests.sandbox.test_runner import HOSTILE as BASE

    assert not set(HOSTILE) & set(BASE) and len(BASE) + len(HOSTILE) >= 45


if sys.platform != "linux":  # pragma: no cover - the sandbox's layers are Linux-specific
    pytestmark = pytest.mark.skip(reason="Linux only")
