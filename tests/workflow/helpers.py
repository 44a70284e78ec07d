"""Shared helpers for workflow tests: a fake LM that knows gsm8k gold, process checks."""

from __future__ import annotations

import asyncio
import json
import os
import re

from tests.workflow.fake_lm import FakeLM
from w4s_ray.workflow.evaluate import EvalRequest, evaluate

FAKE_KEY = "sk-test-FAKEKEY-0123456789"

GOOD = '''
def solver(agent, task):
    r = agent.call_json_format_llm(messages=[{"role": "user", "content": task}],
                                   return_dict_keys=["answer"])
    return {"answer": r[0]["answer"]}
'''


def gold_lm(bm, split: str = "valid") -> FakeLM:
    """Answers every question of `bm` correctly (JSON {"answer": gold})."""
    gold = {it.question: it.answer for it in bm.load(split)}

    def reply(msgs, t, j, occ):
        q = msgs[-1]["content"]
        q = q.split("# Your Task:\n", 1)[-1]
        return json.dumps({"reasoning": "r", "answer": gold.get(q, "unknown")})

    return FakeLM(reply)


def children_of(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as fh:
                status = fh.read()
        except OSError:
            continue
        m = re.search(r"^PPid:\s+(\d+)", status, re.M)
        st = re.search(r"^State:\s+(\S)", status, re.M)
        if m and int(m.group(1)) == pid and not (st and st.group(1) == "Z"):
            out.append(int(d))
    return out


def sandbox_temp_dirs() -> set[str]:
    import tempfile

    root = tempfile.gettempdir()
    mine = (f"w4s-wf-{os.getpid()}-", f"w4s-code-{os.getpid()}-")  # not other processes' runs
    return {d for d in os.listdir(root) if d.startswith(mine)}


def run_eval(code, bm, lm, sandbox_cfg, eval_cfg, limit=2, **kw):
    req = EvalRequest(code=code, benchmark=bm.name, split="valid", limit=limit)
    return asyncio.run(evaluate(req, bm, lm, sandbox_cfg, eval_cfg, **kw))
