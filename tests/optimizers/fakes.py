"""Deterministic fakes for optimizer-loop tests: an evaluator and a function-driven meta model.

A workflow's behaviour is written in its code as comments:
  `# acc=0.7`   its items score 1 when frac(k * phi + 0.1 * seed) < 0.7 (seed: the sample
                seed; without a marker `default_acc` is used)
  `# broken`    the evaluation fails as a whole (the workflow did not load)
  `# itemfail`  every item raises (a dry run fails; accuracy 0)
Every call is recorded so tests can assert on what the loop asked for.
"""

from __future__ import annotations

import re

from w4s_ray.errors import BudgetExceeded
from w4s_ray.meta_agent.base import MetaAgent, check_messages
from w4s_ray.optimizers.base import Outcome

PHI = 0.6180339887498949


def acc_of(code: str, default: float = 0.0) -> float:
    m = re.search(r"#\s*acc=([\d.]+)", code)
    return float(m.group(1)) if m else default


def workflow(acc: float, *extra: str, name: str = "w") -> str:
    lines = ["def solver(agent, task):", f"    # {name}", f"    # acc={acc}"]
    lines += [f"    # {e}" for e in extra]
    lines.append('    return {"answer": "x"}')
    return "\n".join(lines) + "\n"


class FakeEvaluate:
    def __init__(self, n_items: int = 40, budget_calls: int | None = None,
                 default_acc: float = 0.0) -> None:
        self.n_items = n_items
        self.default_acc = default_acc
        self.calls: list[dict] = []
        self.budget_calls = budget_calls
        self.evaluated = 0

    def __call__(self, codes, benchmark, split="valid", *, seeds=None, limit=None):
        codes = list(codes)
        seeds = list(seeds) if seeds is not None else [0] * len(codes)
        self.calls.append({"codes": codes, "benchmark": benchmark, "split": split,
                           "seeds": seeds, "limit": limit})
        if self.budget_calls is not None and self.evaluated + len(codes) > self.budget_calls:
            raise BudgetExceeded("fake budget spent")
        self.evaluated += len(codes)
        n = self.n_items if limit is None else min(limit, self.n_items)
        outs = []
        for code, seed in zip(codes, seeds, strict=True):
            if "# broken" in code:
                outs.append(Outcome(None, [], error="load_error: NameError: name 'x' is not "
                                    "defined", cost_usd=0.001, calls=0))
                continue
            if "# itemfail" in code:
                outs.append(Outcome(0.0, [0.0] * n, first_failure="exception: KeyError 'a'",
                                    feedback="accuracy 0.00", cost_usd=0.01 * n, calls=n))
                continue
            acc = acc_of(code, self.default_acc)
            scores = [1.0 if (k * PHI + 0.1 * seed) % 1.0 < acc else 0.0 for k in range(n)]
            mean = sum(scores) / n
            outs.append(Outcome(mean, scores, feedback=f"Validation accuracy {mean:.2f}; "
                                f"failures: item 3 answered 7, correct 8",
                                cost_usd=0.01 * n, calls=n))
        return outs


class FnMeta(MetaAgent):
    """Replies with `fn(messages, seed)`; records every (messages, seed)."""

    name = "fn-meta"

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.requests: list[tuple[list[dict], int | None]] = []

    def generate(self, messages, n, *, seed=None):
        check_messages(messages)
        self.requests.append(([dict(m) for m in messages], seed))
        self.usage.calls += 1
        self.usage.cost_usd += 0.002
        return [self.fn(messages, None if seed is None else seed + i) for i in range(n)]


def drop_timing(records: list[dict]) -> list[dict]:
    """Records without wall-clock fields (the only part a replay may not reproduce)."""
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]
