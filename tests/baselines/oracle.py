"""An executor fake that answers benchmark items correctly, in whatever format is asked.

`OracleLM(benches)` finds the item whose question appears in the request, then replies:
JSON requests (the agent API's system message names the keys) get every key filled — answer
keys with the gold answer, verdict keys with `verdict`, `solution_letter` with "A", `choice`
with `choice` — and text requests get "The answer is GOLD.", a python block with the
reference solution (code items) or `def solve(): return GOLD` (when a solve() is asked for).
It records every request (see `FakeLM`), so tests can check calls, temperatures and roles.
"""

from __future__ import annotations

import ast
import json
import re

from tests.workflow.fake_lm import FakeLM

ANSWER_KEYS = {"answer", "code", "solution", "response"}
_KEYS = re.compile(r"ONLY using the keys (\[.*?\])")


class OracleLM(FakeLM):
    def __init__(self, benches, split: str = "valid", verdict: str = "True",
                 choice: str = "none of them") -> None:
        self.items = [(bm, it) for bm in benches for it in bm.load(split)]
        self.verdict = verdict
        self.choice = choice
        super().__init__(self._reply)

    def _find(self, text: str):
        hits = [(bm, it) for bm, it in self.items if it.question.strip() in text]
        return max(hits, key=lambda p: len(p[1].question)) if hits else (None, None)

    def _gold(self, bm, item) -> str:
        if bm is None:
            return "unknown"
        if bm.kind == "code":
            return item.meta["reference_solution"]
        return bm.gold_prediction(item)

    def _reply(self, messages, temperature, j, occurrence) -> str:
        text = "\n".join(m["content"] for m in messages)
        bm, item = self._find(text)
        gold = self._gold(bm, item)
        keys = _KEYS.search(messages[0]["content"]) if messages[0]["role"] == "system" else None
        if keys:
            out = {}
            for k in ast.literal_eval(keys.group(1)):
                if k in ANSWER_KEYS:
                    out[k] = gold
                elif k in ("correct", "review_result"):
                    out[k] = self.verdict
                elif k == "solution_letter":
                    out[k] = "A"
                elif k == "choice":
                    out[k] = self.choice
                else:
                    out[k] = f"{k} about the task"
            return json.dumps(out)
        if "solve()" in text and bm is not None and bm.kind == "math":
            return f"```python\ndef solve():\n    return {item.meta['gold_value']!r}\n```"
        if bm is not None and bm.kind == "code":
            return f"```python\n{gold}\n```"
        return f"The answer is {gold}."
