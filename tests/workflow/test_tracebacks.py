"""What the meta-agent is shown when a workflow raises, through the real sandbox child: only the
workflow's own frames, no path of the platform, of Python or of the sandbox's temp dirs."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import pytest

import w4s_ray
from tests.workflow.fake_lm import FakeLM
from w4s_ray.rlao.prompts import describe_failure, repair_messages
from w4s_ray.workflow.evaluate import self_check

PLATFORM = str(Path(w4s_ray.__file__).resolve().parent.parent)
FORBIDDEN = [PLATFORM, "w4s_ray", "sandbox/", "children", "agent.py", sys.prefix,
             sys.base_prefix, str(Path(tempfile.gettempdir()).resolve()) + "/", "site-packages"]

CASES = {
    # A bad argument to the agent API: raised deep inside the platform's agent code.
    "agent_api": ('''
def helper(agent, task):
    return agent.call_llm(messages="not a list")

def solver(agent, task):
    out = helper(agent, task)
    return {"answer": out[0]}
''', 3, "ValueError: messages must be a list", ["in helper", "in solver", "in call_llm()"]),
    # The standard library raising for the workflow.
    "stdlib": ('''
import json

def solver(agent, task):
    return {"answer": json.loads("this is not json")}
''', 5, "JSONDecodeError", ["in solver", "in loads()", "frames outside the workflow omitted"]),
    # An error message that itself holds host paths (here: the stdlib's install location).
    "message_paths": ('''
import json

def solver(agent, task):
    raise RuntimeError("from " + json.__file__)
''', 5, "RuntimeError: from <python>/", ["in solver"]),
    # A plain error in the workflow itself: nothing to omit.
    "own": ('''
def solver(agent, task):
    x = {}
    return {"answer": x["missing"]}
''', 4, "KeyError: 'missing'", ["in solver"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_traceback_shows_only_the_workflows_frames(name, gsm8k, sandbox_cfg, eval_cfg):
    code, line, error, must = CASES[name]
    check = asyncio.run(self_check(code, gsm8k, FakeLM(), sandbox_cfg, eval_cfg, items=1))
    assert not check.ok and check.kind == "exception"
    shown = describe_failure(check) + "\n".join(m["content"] for m in
                                                repair_messages(code, check))
    tb = check.traceback
    assert tb.startswith("Traceback (most recent call last):\n")
    func = "helper" if name == "agent_api" else "solver"  # the deepest workflow frame
    assert f'File "<workflow>", line {line}, in {func}' in tb and check.line == line
    assert error in tb and error.split(":")[0] in check.error
    for needle in must:
        assert needle in tb, (needle, tb)
    for bad in FORBIDDEN:
        assert bad not in tb and bad not in check.error, (bad, tb)
        assert bad not in shown.replace(code, ""), (bad, shown)
    # Every frame line that is shown is the workflow's.
    frames = [ln for ln in tb.splitlines() if ln.lstrip().startswith("File ")]
    assert frames and all(ln.strip().startswith('File "<workflow>"') for ln in frames)


def test_a_load_error_shows_no_runtime_frames(gsm8k, sandbox_cfg, eval_cfg):
    code = "import json\nVALUE = json.loads('{bad')\n\ndef solver(agent, task):\n    return {}\n"
    check = asyncio.run(self_check(code, gsm8k, FakeLM(), sandbox_cfg, eval_cfg, items=1))
    assert check.kind == "load_error" and check.line == 2
    assert 'File "<workflow>", line 2, in <module>' in check.traceback
    for bad in FORBIDDEN:
        assert bad not in check.traceback and bad not in (check.error or ""), bad
