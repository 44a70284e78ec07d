"""The optimizers' `Evaluate` on the platform's evaluation seam (no Ray here).

`SeamEvaluate(evaluator)` turns the loops' `evaluate(codes, benchmark, split, seeds=, limit=)`
into ONE `Evaluator.evaluate([EvalRequest, ...])` call (all codes concurrently, same order) and
each `EvalResult` into an `Outcome`: accuracy None on a workflow-level error, the first item
failure as "kind: error" plus its traceback, and the W4S feedback the evaluator already wrote
for validation results (the driver never loads gold answers). With `EvaluatorPool` as the
evaluator, ADAS and AFlow run on the same actors, sandbox, cache, rate limit and dollar budget
as W4S; `BudgetExceeded` / `ExecutorFatal` raised by the pool propagate unchanged.

It also keeps what the records do not: dollars that cache hits would have cost (`cached_usd`).
"""

from __future__ import annotations

from collections.abc import Sequence

from w4s_ray.optimizers.base import Outcome
from w4s_ray.rlao.evaluation import EvalRequest, EvalResult, Evaluator


def to_outcome(res: EvalResult) -> Outcome:
    ff = res.first_failure
    first = (f"{ff.get('kind')}: {ff.get('error')}\n{ff.get('traceback') or ''}".strip()
             if ff else None)
    return Outcome(accuracy=None if res.error else res.accuracy, scores=list(res.scores),
                   error=res.error, first_failure=first,
                   feedback=res.feedback if res.split == "valid" else "",
                   cost_usd=res.cost_usd, calls=res.calls)


class SeamEvaluate:
    """`optimizers.base.Evaluate` over any `rlao.evaluation.Evaluator` (module docstring)."""

    def __init__(self, evaluator: Evaluator, tag: str = "") -> None:
        self.evaluator = evaluator
        self.tag = tag
        self.cached_usd = 0.0
        self.requests = 0

    def __call__(self, codes: Sequence[str], benchmark: str, split: str = "valid", *,
                 seeds: Sequence[int] | None = None,
                 limit: int | None = None) -> list[Outcome]:
        if split != "valid":
            # The loops search on validation only; the caller tests the final choice itself.
            raise ValueError(f"optimizer evaluations are validation-only, got split {split!r}")
        codes = list(codes)
        seeds = list(seeds) if seeds is not None else [0] * len(codes)
        reqs = [EvalRequest(code=c, benchmark=benchmark, split="valid", limit=limit, seed=s,
                            tag=self.tag) for c, s in zip(codes, seeds, strict=True)]
        results = self.evaluator.evaluate(reqs) if reqs else []
        self.requests += len(reqs)
        self.cached_usd += sum(r.cached_usd for r in results)
        return [to_outcome(r) for r in results]
