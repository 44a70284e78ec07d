"""A deterministic in-memory Evaluator for loop tests (no Ray, no executor).

A workflow's behaviour is written in its code as comments:
  `# acc=0.7`       its per-item scores: item k scores 1 when frac(k * phi) < 0.7
  `# calls=3`       executor calls per item
  `# crash`         self-check fails (until a repair drops the marker)
  `# evalfail`      the validation evaluation fails as a whole
Every call is counted so tests can assert on what the loop asked for.
"""

from __future__ import annotations

import re

from w4s_ray.errors import BudgetExceeded
from w4s_ray.rlao.evaluation import EvalOutcome, merge_outcomes

PHI = 0.6180339887498949


def _marker(code: str, name: str, default: float) -> float:
    m = re.search(rf"#\s*{name}=([\d.]+)", code)
    return float(m.group(1)) if m else default


def workflow(acc: float, *extra: str, calls: int = 1) -> str:
    lines = ["def solver(agent, task):", f"    # acc={acc}", f"    # calls={calls}"]
    lines += [f"    # {e}" for e in extra]
    lines.append('    return {"answer": "x"}')
    return "\n".join(lines) + "\n"


def reply(acc: float, *extra: str, calls: int = 1, analysis: str = "Analysis: try.") -> str:
    return f"{analysis}\n```python\n{workflow(acc, *extra, calls=calls)}```"


class FakeEvaluator:
    def __init__(self, n_items: int = 40, budget_calls: int | None = None) -> None:
        self.ids = [f"v{k}" for k in range(n_items)]
        self.evaluate_calls: list[list] = []
        self.self_check_calls: list[list[str]] = []
        self.repairs: list[tuple[str, str]] = []
        self.executor_calls = 0
        self.budget_calls = budget_calls

    def _score(self, code: str, item: str) -> float:
        k = int(item[1:])
        return 1.0 if (k * PHI) % 1.0 < _marker(code, "acc", 0.0) else 0.0

    def _spend(self, n: int) -> None:
        if self.budget_calls is not None and self.executor_calls + n > self.budget_calls:
            raise BudgetExceeded("budget of the fake executor spent")
        self.executor_calls += n

    def evaluate(self, jobs):
        self.evaluate_calls.append(list(jobs))
        outs = []
        for job in jobs:
            ids = list(job.item_ids) if job.item_ids is not None else list(self.ids)
            per = int(_marker(job.code, "calls", 1))
            self._spend(per * len(ids))
            if "# evalfail" in job.code:
                outs.append(EvalOutcome(None, len(ids), [], ids, "RuntimeError: boom",
                                        calls=per * len(ids)))
                continue
            scores = [self._score(job.code, i) for i in ids]
            acc = sum(scores) / len(scores)
            outs.append(EvalOutcome(
                acc, len(ids), scores, ids, None, calls=per * len(ids),
                prompt_tokens=10 * len(ids), completion_tokens=5 * len(ids),
                cost_usd=0.001 * per * len(ids), feedback=f"{job.split} accuracy {acc:.3f}",
            ))
        return outs

    def self_check(self, codes, benchmark):
        self.self_check_calls.append(list(codes))
        outs = []
        for code in codes:
            self._spend(1)
            err = "Traceback: line 3: ZeroDivisionError" if "# crash" in code else None
            outs.append(EvalOutcome(None if err else 1.0, 1, [], [], err, calls=1,
                                    cost_usd=0.001))
        return outs

    def item_ids(self, benchmark, split):
        return list(self.ids)

    def merge(self, parts):
        out = merge_outcomes(parts)
        if out.accuracy is not None:
            out.feedback = f"valid accuracy {out.accuracy:.3f}"
        return out

    def repair_messages(self, code, failure):
        self.repairs.append((code, failure))
        return [{"role": "user", "content": f"Fix this workflow.\n{code}\nError: {failure}"}]


def fake_factory(cfg) -> FakeEvaluator:
    """Evaluator factory for the Ray collect driver (runs inside the gateway actor)."""
    return FakeEvaluator()


def fake_specs(names):
    from w4s_ray.rlao.loop import TaskSpec

    return {n: TaskSpec(n, "math", f"Task {n}.", "a number",
                        {"CoT": workflow(0.3 + 0.1 * i), "SC": workflow(0.35 + 0.1 * i, calls=3)})
            for i, n in enumerate(names)}
