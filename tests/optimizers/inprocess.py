"""A reference `Evaluate` on the in-process workflow runtime (no Ray), for end-to-end tests.

It shows the mapping the integration stage implements on the evaluator pool: one
`EvalRequest` per code (seed = the sample seed, limit = first N items), all concurrent;
`EvalResult` -> `Outcome` with accuracy None on a workflow-level error, the first item failure
as "kind: error" plus its traceback, and W4S feedback for validation results only.
"""

from __future__ import annotations

import asyncio

from w4s_ray.optimizers.base import Outcome


def to_outcome(res, bm, split: str) -> Outcome:
    from w4s_ray.rlao.prompts import format_feedback

    ff = res.first_failure
    first = f"{ff['kind']}: {ff['error']}\n{ff.get('traceback') or ''}".strip() if ff else None
    feedback = format_feedback(res, 3) if split == "valid" else ""
    return Outcome(accuracy=None if res.error else res.accuracy, scores=list(res.scores),
                   error=res.error, first_failure=first, feedback=feedback,
                   cost_usd=res.cost_usd, calls=res.calls)


class InProcessEvaluate:
    def __init__(self, bm, executor_cfg, sandbox_cfg, eval_cfg) -> None:
        self.bm, self.executor_cfg = bm, executor_cfg
        self.sandbox_cfg, self.eval_cfg = sandbox_cfg, eval_cfg
        self.requests: list[tuple[str, int, int | None]] = []

    def __call__(self, codes, benchmark, split="valid", *, seeds=None, limit=None):
        from w4s_ray.executor.client import ExecutorClient
        from w4s_ray.workflow.evaluate import EvalRequest, evaluate

        assert benchmark == self.bm.name
        seeds = list(seeds) if seeds is not None else [0] * len(codes)
        self.requests += [(split, s, limit) for s in seeds]

        async def run_all():
            with ExecutorClient(self.executor_cfg) as client:
                return await asyncio.gather(*(
                    evaluate(EvalRequest(code=c, benchmark=benchmark, split=split, limit=limit,
                                         seed=s), self.bm, client, self.sandbox_cfg,
                             self.eval_cfg) for c, s in zip(codes, seeds, strict=True)))

        return [to_outcome(r, self.bm, split) for r in asyncio.run(run_all())]
