"""A deterministic in-memory Evaluator for loop tests (no Ray, no executor).

A workflow's behaviour is written in its code as comments:
  `# acc=0.7`       its per-item scores: item k scores 1 when frac(k * phi) < 0.7
  `# calls=3`       executor calls per item
  `# crash`         self-check fails, and an item raises in a validation evaluation
                    (`first_exception`, the w4s repair trigger), until a repair drops it
  `# evalfail`      the validation evaluation fails as a whole
Every call is counted so tests can assert on what the loop asked for.
"""

from __future__ import annotations

import re

from w4s_ray.errors import BudgetExceeded
from w4s_ray.rlao.evaluation import EvalResult, merge_results

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


def _result(job, ids, scores, *, error=None, calls=0, cost_usd=0.0, **kw) -> EvalResult:
    acc = sum(scores) / len(scores) if scores else 0.0
    return EvalResult(benchmark=job.benchmark, split=job.split, accuracy=acc, n=len(ids),
                      scores=scores, answers=["x"] * len(scores), item_ids=list(ids),
                      item_errors=[None] * len(scores), error=error, calls=calls,
                      cost_usd=cost_usd, tag=job.tag, **kw)


class FakeEvaluator:
    """The RLAO `Evaluator` protocol without Ray or an executor (module docstring)."""

    def __init__(self, n_items: int = 40, budget_calls: int | None = None) -> None:
        self.ids = [f"v{k}" for k in range(n_items)]
        self.evaluate_calls: list[list] = []
        self.self_check_calls: list[list[str]] = []
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
        jobs = list(jobs)
        checks = [j for j in jobs if j.self_check]
        if checks:
            self.self_check_calls.append([j.code for j in checks])
        if len(checks) < len(jobs):
            self.evaluate_calls.append([j for j in jobs if not j.self_check])
        return [self._self_check(j) if j.self_check else self._evaluate(j) for j in jobs]

    def _crash(self, code):
        if "# crash" not in code:
            return None
        return {"index": 0, "item_id": self.ids[0], "kind": "exception",
                "error": "ZeroDivisionError: division by zero",
                "traceback": "Traceback: line 3: ZeroDivisionError", "line": 3,
                "line_text": "x = 1 / 0"}

    def _self_check(self, job):
        self._spend(1)
        failure = self._crash(job.code)
        return _result(job, self.ids[:1], [0.0 if failure else 1.0], calls=1, cost_usd=0.001,
                       first_failure=failure)

    def _evaluate(self, job):
        ids = list(job.item_ids) if job.item_ids is not None else list(self.ids)
        per = int(_marker(job.code, "calls", 1))
        self._spend(per * len(ids))
        if "# evalfail" in job.code:
            return _result(job, ids, [0.0] * len(ids), error="RuntimeError: boom",
                           calls=per * len(ids))
        scores = [self._score(job.code, i) for i in ids]
        crash = self._crash(job.code)
        if crash is not None:
            scores[0] = 0.0
        acc = sum(scores) / len(scores)
        return _result(job, ids, scores, calls=per * len(ids), prompt_tokens=10 * len(ids),
                       first_failure=crash, first_exception=crash,
                       completion_tokens=5 * len(ids), cost_usd=0.001 * per * len(ids),
                       feedback=f"{job.split} accuracy {acc:.3f}" if job.split == "valid"
                       else "")

    def item_ids(self, benchmark, split):
        return list(self.ids)

    def merge(self, parts):
        return merge_results(parts, failure_samples=5)


def fake_factory(cfg) -> FakeEvaluator:
    """Evaluator factory for the Ray collect driver (built inside its host actor)."""
    return FakeEvaluator()


def fake_specs(names):
    from w4s_ray.rlao.loop import TaskSpec

    return {n: TaskSpec(n, "math", f"Task {n}.", "a number",
                        {"CoT": workflow(0.3 + 0.1 * i), "SC": workflow(0.35 + 0.1 * i, calls=3)})
            for i, n in enumerate(names)}


class PooledEvaluator(FakeEvaluator):
    """A FakeEvaluator whose benchmarks have a collection split ("train") except `no_train`,
    and whose feedback names the split a result came from."""

    def __init__(self, no_train: tuple[str, ...] = ("gamma",)) -> None:
        super().__init__()
        self.no_train = no_train

    def _evaluate(self, job):
        res = super()._evaluate(job)
        res.feedback = f"{job.split} accuracy {res.accuracy}" if job.split != "test" else ""
        return res

    def item_ids(self, benchmark, split):
        return [] if split == "train" and benchmark in self.no_train else list(self.ids)


def pooled_factory(cfg) -> PooledEvaluator:
    return PooledEvaluator()
