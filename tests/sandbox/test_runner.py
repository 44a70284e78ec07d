"""Hostile workflows: each evaluation finishes, every item fails with its reason (or is scored
by what it really answered), the host is untouched, secrets never reach the child, the score
cannot be raised, and the next evaluation works."""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest

from tests.workflow.helpers import FAKE_KEY, GOOD, children_of, gold_lm, run_eval, sandbox_temp_dirs
from w4s_ray.sandbox.process import isolation_status

OUTSIDE = f"/tmp/w4s-hostile-{uuid.uuid4().hex}"

HOSTILE = {
    # name: (code, allowed error kinds for every item)
    "loop_forever": ("def solver(agent, task):\n    while True:\n        pass\n", {"timeout"}),
    "sleep_forever": ("import time\ndef solver(agent, task):\n    time.sleep(10**6)\n",
                      {"timeout"}),
    "swallow_cancel": ("def solver(agent, task):\n    while True:\n        try:\n"
                       "            while True: pass\n        except BaseException:\n"
                       "            pass\n", {"timeout"}),
    "memory_bomb": ("def solver(agent, task):\n    x = []\n    while True:\n"
                    "        x.append(bytearray(50 * 2**20))\n", {"memory", "crashed", "timeout"}),
    "fork_bomb": ("import os\ndef solver(agent, task):\n    while True:\n        os.fork()\n",
                  {"exception"}),
    "multiprocessing": ("import multiprocessing as mp\ndef solver(agent, task):\n"
                        "    p = mp.Process(target=print)\n    p.start()\n    p.join()\n"
                        "    return {'answer': 'x'}\n", {"exception"}),
    "subprocess": ("import subprocess\ndef solver(agent, task):\n"
                   f"    subprocess.run(['touch', '{OUTSIDE}'])\n    return {{'answer': 'x'}}\n",
                   {"exception"}),
    "os_system": (f"import os\ndef solver(agent, task):\n    os.system('touch {OUTSIDE}')\n"
                  "    return {'answer': 'x'}\n", {"exception"}),
    "write_outside": (f"def solver(agent, task):\n    open('{OUTSIDE}', 'w').write('x')\n"
                      "    return {'answer': 'x'}\n", {"exception"}),
    "read_gold_file": ("import os\ndef solver(agent, task):\n"
                       "    d = os.environ.get('W4S_DATA_DIR', '/work/shared/datasets')\n"
                       "    return {'answer': open(d + '/gsm8k/aflow/gsm8k_validate.jsonl')"
                       ".read()}\n", {"exception"}),
    "list_data_dir": ("import os\ndef solver(agent, task):\n"
                      "    return {'answer': str(os.listdir('DATA'))}\n", {"exception"}),
    "read_parent_env": ("import os\ndef solver(agent, task):\n"
                        "    return {'answer': open(f'/proc/{os.getppid()}/environ').read()}\n",
                        {"exception"}),
    "read_cache": ("import os\ndef solver(agent, task):\n"
                   "    p = os.path.expanduser('~root/.cache/w4s/completions.sqlite')\n"
                   "    return {'answer': open(p, 'rb').read(100)}\n", {"exception"}),
    "sys_exit": ("import sys\ndef solver(agent, task):\n    sys.exit(0)\n", {"exit"}),
    "os_exit": ("import os\ndef solver(agent, task):\n    os._exit(0)\n", {"crashed"}),
    "kill_self": ("import signal, os\ndef solver(agent, task):\n"
                  "    signal.raise_signal(signal.SIGKILL)\n", {"crashed"}),
    "kill_parent": ("import os, signal\ndef solver(agent, task):\n"
                    "    os.kill(os.getppid(), signal.SIGKILL)\n", {"exception"}),
    "recurse": ("def f(n):\n    return f(n + 1)\ndef solver(agent, task):\n    return f(0)\n",
                {"exception"}),
    "raise": ("def solver(agent, task):\n    raise ValueError('boom')\n", {"exception"}),
    "socket": ("import socket\ndef solver(agent, task):\n"
               "    s = socket.socket()\n    s.connect(('127.0.0.1', 8765))\n"
               "    return {'answer': 'x'}\n", {"exception"}),
    "ctypes": ("import ctypes\ndef solver(agent, task):\n"
               f"    ctypes.CDLL(None).system(b'touch {OUTSIDE}')\n    return {{'answer': 'x'}}\n",
               {"exception"}),
    "not_a_dict": ("def solver(agent, task):\n    return 18\n", {"bad_return"}),
    "no_answer_key": ("def solver(agent, task):\n    return {'result': 18}\n", {"bad_return"}),
    "str_raises": ("class A:\n    def __str__(self):\n        raise RuntimeError('no')\n"
                   "def solver(agent, task):\n    return {'answer': A()}\n", {"bad_return"}),
    "str_not_str": ("class A:\n    def __str__(self):\n        return 5\n"
                    "def solver(agent, task):\n    return {'answer': A()}\n", {"bad_return"}),
}


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("W4S_TEST_SECRET", FAKE_KEY)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_workflow_is_contained(name, gsm8k, sandbox_cfg, eval_cfg, secret_env, data_dir):
    code, kinds = HOSTILE[name]
    code = code.replace("DATA", str(data_dir))
    before = sandbox_temp_dirs()
    # Other fixtures of the session (simulator, Ray) may own children; only new ones count.
    children_before = set(children_of(os.getpid()))
    lm = gold_lm(gsm8k)
    res = run_eval(code, gsm8k, lm, sandbox_cfg, eval_cfg)

    assert res.n == 2 and len(res.scores) == 2 and len(res.item_errors) == 2
    assert res.scores == [0.0, 0.0] and res.accuracy == 0.0
    for err in res.item_errors:
        assert err is not None and err.split(":")[0] in kinds, res.item_errors
    assert sum(res.errors.values()) == 2
    # the host is untouched and nothing is left behind
    assert not os.path.exists(OUTSIDE)
    assert sandbox_temp_dirs() <= before
    assert set(children_of(os.getpid())) <= children_before
    blob = repr(res.to_dict())
    assert FAKE_KEY not in blob
    # the next evaluation in the same process works
    ok = run_eval(GOOD, gsm8k, lm, sandbox_cfg, eval_cfg)
    assert ok.accuracy == 1.0 and ok.errors == {}


def test_secrets_never_reach_the_child(gsm8k, sandbox_cfg, eval_cfg, secret_env):
    code = ("import os\ndef solver(agent, task):\n"
            "    env = dict(os.environ)\n    print(env)\n"
            "    agent.call_llm(messages=[{'role': 'user', 'content': repr(env)}])\n"
            "    return {'answer': repr(env)}\n")
    lm = gold_lm(gsm8k)
    res = run_eval(code, gsm8k, lm, sandbox_cfg, eval_cfg)
    assert res.errors == {}
    assert all(FAKE_KEY not in a and "OPENAI_API_KEY" not in a for a in res.answers)
    assert FAKE_KEY not in res.stdout and FAKE_KEY not in res.stderr
    assert all(FAKE_KEY not in str(r["messages"]) for r in lm.requests)
    assert "W4S_DATA_DIR" not in res.answers[0]


def test_printing_megabytes_is_capped_and_items_still_score(gsm8k, sandbox_cfg, eval_cfg):
    code = ("import sys, os\ndef solver(agent, task):\n    print('x' * 5_000_000)\n"
            "    os.write(2, b'y' * 3_000_000)\n" + GOOD.split("def solver(agent, task):\n")[1])
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg)
    assert res.accuracy == 1.0
    assert len(res.stdout) <= sandbox_cfg.max_output_bytes
    assert len(res.stderr) <= sandbox_cfg.max_output_bytes


def test_lying_answers_are_scored_by_what_they_really_say(gsm8k, sandbox_cfg, eval_cfg):
    # __eq__ says equal to everything, __str__ lies about its content: it is scored as the
    # string data it really holds ("wrong"), never as the lie.
    code = '''
class Liar(str):
    def __eq__(self, other):
        return True
    def __hash__(self):
        return 0
    def __str__(self):
        return "GOLD"
def solver(agent, task):
    return {"answer": Liar("wrong")}
'''
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg)
    assert res.answers == ["wrong", "wrong"] and res.scores == [0.0, 0.0]
    assert res.errors == {}


def test_object_answer_is_coerced_with_str(gsm8k, sandbox_cfg, eval_cfg):
    gold = gsm8k.load("valid")[0].answer
    code = f'''
class Num:
    def __eq__(self, other):
        return True
    def __str__(self):
        return "{gold}"
def solver(agent, task):
    return {{"answer": Num()}}
'''
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg)
    # str() really returns the gold for item 0 (so it scores), not for item 1
    assert res.answers == [gold, gold]
    assert res.scores[0] == 1.0
    assert res.scores[1] == gsm8k.score(gsm8k.load("valid")[1], gold)


def test_monkeypatching_the_agent_cannot_raise_the_score(gsm8k, sandbox_cfg, eval_cfg):
    code = '''
import w4s_ray.sandbox.agent as api
api.Agent.call_llm = lambda self, **kw: [{"answer": "1"}]
def solver(agent, task):
    agent._rpc = lambda m, p: {"texts": ['{"answer": "2"}']}
    r = agent.call_json_format_llm(messages=[{"role": "user", "content": task}],
                                   return_dict_keys=["answer"])
    return {"answer": r[0]["answer"], "score": 1.0, "accuracy": 1.0}
'''
    lm = gold_lm(gsm8k)
    res = run_eval(code, gsm8k, lm, sandbox_cfg, eval_cfg)
    items = gsm8k.load("valid")[:2]
    assert res.answers == ["1", "1"]
    assert res.scores == [gsm8k.score(it, "1") for it in items]
    assert res.calls == 0 and lm.requests == []  # counts are the parent's, not the child's


def test_workflow_forging_rpc_frames_is_validated(gsm8k, sandbox_cfg, eval_cfg):
    # Bypasses the Agent's checks and sends a malformed request straight to the parent.
    code = '''
def solver(agent, task):
    try:
        agent._rpc("llm", {"messages": "x", "temperature": 99, "n": 10**9})
    except ValueError as exc:
        return {"answer": "refused: " + str(exc)}
    return {"answer": "accepted"}
'''
    lm = gold_lm(gsm8k)
    res = run_eval(code, gsm8k, lm, sandbox_cfg, eval_cfg)
    assert all(a.startswith("refused") for a in res.answers)
    assert lm.requests == []


def test_load_error_fails_every_item_with_the_message(gsm8k, sandbox_cfg, eval_cfg):
    code = "import json\nraise RuntimeError('bad import time')\ndef solver(agent, task):\n    pass\n"
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg)
    assert res.error == "RuntimeError: bad import time"
    assert res.errors == {"load_error": 2}
    assert res.first_failure["line"] == 2


def test_crashing_item_does_not_lose_finished_items(gsm8k, sandbox_cfg, eval_cfg):
    items = gsm8k.load("valid")[:4]
    code = f'''
import os, time
def solver(agent, task):
    if task == {items[3].question!r}:
        time.sleep(0.5)
        os._exit(1)
    r = agent.call_json_format_llm(messages=[{{"role": "user", "content": task}}],
                                   return_dict_keys=["answer"])
    return {{"answer": r[0]["answer"]}}
'''
    res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg, limit=4)
    assert res.scores[:3] == [1.0, 1.0, 1.0]
    assert res.item_errors[3] == "crashed: crashed: exit code 1" or \
        res.item_errors[3].startswith("crashed:")


def test_isolation_layers_are_probed():
    status = isolation_status()
    assert set(status) == {"namespaces", "reason"}
    if os.geteuid() == 0 and os.path.exists("/usr/bin/unshare"):
        assert status["namespaces"] is True, status


def test_temp_dirs_of_dead_evaluators_are_swept(monkeypatch, tmp_path):
    import tempfile

    from w4s_ray.sandbox import process as sandbox

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sandbox, "_swept", False)
    dead = tmp_path / "w4s-wf-999999999-abc"  # no such pid
    alive = tmp_path / f"w4s-wf-{os.getpid()}-xyz"
    other = tmp_path / "unrelated-999999999-x"
    for d in (dead, alive, other):
        d.mkdir()
    fresh = sandbox.make_temp_dir("w4s-wf")
    assert not dead.exists() and alive.exists() and other.exists()
    assert os.path.basename(fresh).startswith(f"w4s-wf-{os.getpid()}-")


POISON = '''
import builtins, json, os, sys, threading, time
import w4s_ray.sandbox.agent as api
builtins.W4S_POISON = "set by an earlier candidate"
sys.modules["json"].loads = lambda *a, **k: {"answer": "666"}
api.Agent.call_json_format_llm = lambda self, **kw: [{"answer": "666"}]
open("answer.txt", "w").write("666")
try:
    open("/tmp/w4s-left-by-a-candidate", "w").write("666")
except Exception:
    pass
def _linger():
    while True:
        time.sleep(0.05)
        builtins.W4S_POISON = "set by a lingering thread"
threading.Thread(target=_linger, daemon=False).start()
def solver(agent, task):
    return {"answer": "666"}
'''

VICTIM = '''
import builtins, os, threading
def solver(agent, task):
    seen = [n for n in ("answer.txt", "/tmp/w4s-left-by-a-candidate") if os.path.exists(n)]
    if hasattr(builtins, "W4S_POISON") or seen or threading.active_count() > 8:
        return {"answer": "leak: " + str((getattr(builtins, "W4S_POISON", None), seen))}
    r = agent.call_json_format_llm(messages=[{"role": "user", "content": task}],
                                   return_dict_keys=["answer"])
    return {"answer": r[0]["answer"]}
'''


def test_a_candidate_that_mutates_its_process_cannot_change_the_next_ones_score(
        gsm8k, sandbox_cfg, eval_cfg):
    """Candidates share the evaluator (one sandbox object) but never a process: monkeypatched
    modules, globals, a lingering thread and files left in its working directory die with the
    first candidate's child, so the next candidate scores exactly what it earns."""
    from w4s_ray.sandbox.base import make_sandbox

    sandbox = make_sandbox(sandbox_cfg)
    lm = gold_lm(gsm8k)
    first = run_eval(POISON, gsm8k, lm, sandbox, eval_cfg)
    assert first.answers == ["666", "666"]
    second = run_eval(VICTIM, gsm8k, lm, sandbox, eval_cfg)
    gold = [it.answer for it in gsm8k.load("valid")[:2]]
    assert not any(str(a).startswith("leak") for a in second.answers), second.answers
    assert second.scores == [1.0, 1.0]
    assert [gsm8k.score(it, a) for it, a in zip(gsm8k.load("valid")[:2], second.answers,
                                                strict=True)] == [1.0, 1.0] and len(gold) == 2


def test_the_machines_benchmark_cache_is_hidden_from_workflows(gsm8k, sandbox_cfg, eval_cfg):
    """`data.node_cache` pickles built splits (gold answers) under ~/.cache/w4s: a workflow
    can neither list nor read them."""
    from w4s_ray.benchmarks import node_cache

    node_cache.configure(True)  # creates the directory, as an evaluator actor does
    try:
        root = str(node_cache._dir)
        with open(os.path.join(root, "w4s-test-gold.pkl"), "wb") as fh:
            fh.write(b"gold")
        code = ("import os\ndef solver(agent, task):\n"
                f"    names = os.listdir({root!r})\n"
                f"    return {{'answer': open({root!r} + '/w4s-test-gold.pkl').read()}}\n")
        res = run_eval(code, gsm8k, gold_lm(gsm8k), sandbox_cfg, eval_cfg)
        assert res.scores == [0.0, 0.0]
        assert all(e is not None and e.split(":")[0] == "exception" for e in res.item_errors), \
            res.item_errors
        assert "gold" not in repr(res.answers)
    finally:
        node_cache.configure(False)
        with contextlib.suppress(OSError):
            os.remove(os.path.join(root, "w4s-test-gold.pkl"))
