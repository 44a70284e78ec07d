"""The RLAO `Evaluator` protocol over the Ray `EvaluatorPool` and the workflow runtime.

- `evaluate`: one `EvaluatorPool.evaluate` call for all jobs (they run concurrently on the
  shared evaluator actors). Validation jobs without explicit ids use `eval.limit` items; test
  jobs use the whole split unless ids are given. Validation results get W4S feedback from
  `workflow.evaluate.format_feedback` (which refuses test results, so test numbers never
  become prompt text).
- `self_check`: the same pool, `eval.self_check_items` validation item(s) per code; the first
  failing item's kind, traceback and workflow line become the failure text, and
  `repair_messages` hands the structured failure to `workflow.repair.repair_messages`.
- `merge`: slice results of a raced candidate concatenated into one `EvalResult`.

`BudgetExceeded` raised inside an evaluator actor is re-raised here as the plain error.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from w4s_ray.errors import W4SError
from w4s_ray.rlao.evaluation import EvalJob, EvalOutcome

_MAX_REMEMBERED_FAILURES = 512


def unwrap_user_error(exc: BaseException) -> W4SError | None:
    """The W4SError carried by a Ray error (or the error itself), else None."""
    seen = 0
    cur: Any = exc
    while cur is not None and seen < 5:
        cause = getattr(cur, "cause", None)
        if isinstance(cause, W4SError):
            cur = cause
            seen += 1
            continue
        break
    if isinstance(cur, W4SError):
        for klass in type(cur).__mro__:
            if issubclass(klass, W4SError) and klass.__module__.startswith("w4s_ray"):
                return klass(*cur.args) if type(cur) is not klass else cur
    return None


class PoolEvaluator:
    def __init__(self, cfg, pool: Any = None) -> None:
        from w4s_ray.runtime.evaluators import EvaluatorPool

        self.cfg = cfg
        self.pool = pool if pool is not None else EvaluatorPool(cfg)
        self._benchmarks: dict[str, Any] = {}
        self._failures: OrderedDict[str, Any] = OrderedDict()

    # -- helpers -----------------------------------------------------------------------------
    def _bm(self, name: str):
        if name not in self._benchmarks:
            from w4s_ray.benchmarks import get_benchmark

            self._benchmarks[name] = get_benchmark(name, data_dir=self.cfg.data_dir())
        return self._benchmarks[name]

    def _request(self, job: EvalJob, limit: int | None = None):
        from w4s_ray.workflow.evaluate import EvalRequest

        if limit is None and job.item_ids is None and job.split == "valid":
            limit = self.cfg.eval.limit
        return EvalRequest(code=job.code, benchmark=job.benchmark, split=job.split,
                           limit=limit,
                           item_ids=list(job.item_ids) if job.item_ids is not None else None,
                           tag=job.tag)

    def _run(self, requests: list) -> list:
        try:
            return self.pool.evaluate(requests)
        except Exception as exc:
            err = unwrap_user_error(exc)
            if err is not None:
                raise err from None
            raise

    def _outcome(self, res) -> EvalOutcome:
        from w4s_ray.workflow.evaluate import format_feedback

        feedback = ""
        if res.split == "valid":
            feedback = format_feedback(res, self._bm(res.benchmark).load("valid"), None,
                                       self.cfg.eval.failure_samples)
        return EvalOutcome(
            accuracy=None if res.error else float(res.accuracy), n=res.n,
            scores=list(res.scores), item_ids=list(res.item_ids), error=res.error,
            calls=res.calls, prompt_tokens=res.prompt_tokens,
            completion_tokens=res.completion_tokens, cost_usd=res.cost_usd,
            cached_usd=res.cached_usd, feedback=feedback, raw=res,
        )

    # -- the protocol ------------------------------------------------------------------------
    def evaluate(self, jobs: Sequence[EvalJob]) -> list[EvalOutcome]:
        if not jobs:
            return []
        return [self._outcome(r) for r in self._run([self._request(j) for j in jobs])]

    def self_check(self, codes: Sequence[str], benchmark: str) -> list[EvalOutcome]:
        from w4s_ray.workflow.evaluate import SelfCheck
        from w4s_ray.workflow.repair import describe_failure

        if not codes:
            return []
        n = max(1, self.cfg.eval.self_check_items)
        reqs = [self._request(EvalJob(c, benchmark, "valid", tag="self-check"), limit=n)
                for c in codes]
        outs = []
        for code, res in zip(codes, self._run(reqs), strict=True):
            f = res.first_failure
            error = None
            if f is not None:
                check = SelfCheck(ok=False, kind=f["kind"], error=f["error"],
                                  traceback=f["traceback"], line=f["line"],
                                  line_text=f["line_text"], result=res)
                error = describe_failure(check)
                self._failures[code] = check
                while len(self._failures) > _MAX_REMEMBERED_FAILURES:
                    self._failures.popitem(last=False)
            outs.append(EvalOutcome(
                accuracy=None if error else float(res.accuracy), n=res.n,
                scores=list(res.scores), item_ids=list(res.item_ids), error=error,
                calls=res.calls, prompt_tokens=res.prompt_tokens,
                completion_tokens=res.completion_tokens, cost_usd=res.cost_usd,
                cached_usd=res.cached_usd,
            ))
        return outs

    def item_ids(self, benchmark: str, split: str) -> list[str]:
        ids = [it.id for it in self._bm(benchmark).load(split)]
        if split == "valid" and self.cfg.eval.limit is not None:
            ids = ids[: self.cfg.eval.limit]
        return ids

    def merge(self, parts: Sequence[EvalOutcome]) -> EvalOutcome:
        from w4s_ray.workflow.evaluate import EvalResult

        raws = [p.raw for p in parts]
        if len(raws) == 1:
            return parts[0]
        first = raws[0]
        merged = EvalResult(benchmark=first.benchmark, split=first.split, tag=first.tag,
                            scoring=first.scoring)
        for r in raws:
            merged.format_hints += r.format_hints or [None] * len(r.scores)
            merged.scores += r.scores
            merged.answers += r.answers
            merged.item_ids += r.item_ids
            merged.item_errors += r.item_errors
            for k, v in r.errors.items():
                merged.errors[k] = merged.errors.get(k, 0) + v
            merged.error = merged.error or r.error
            merged.first_failure = merged.first_failure or r.first_failure
            for attr in ("prompt_tokens", "completion_tokens", "cost_usd", "cached_usd", "calls",
                         "cache_hits", "cache_misses", "code_runs", "wall_s"):
                setattr(merged, attr, getattr(merged, attr) + getattr(r, attr))
        merged.n = len(merged.scores)
        merged.accuracy = sum(merged.scores) / merged.n if merged.n else 0.0
        return self._outcome(merged)

    def repair_messages(self, code: str, failure: str) -> list[dict[str, str]]:
        from w4s_ray.workflow.repair import repair_messages

        return repair_messages(code, self._failures.get(code, failure))

    def stats(self) -> list[dict]:
        return self.pool.stats()

    def close(self) -> None:
        self.pool.shutdown()


def make_pool_evaluator(cfg) -> PoolEvaluator:
    return PoolEvaluator(cfg)
