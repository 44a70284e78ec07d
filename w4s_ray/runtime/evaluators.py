"""Parallel workflow evaluation on Ray: async evaluator actors and `EvaluatorPool`.

The evaluation seam is three `evaluate`s and two types: `EvaluatorPool.evaluate(requests)` (the
RLAO loop's `Evaluator`) -> `EvaluatorActor.evaluate(request)` -> `workflow.evaluate.evaluate`,
carrying `EvalRequest`s out and `EvalResult`s back.

Each `EvaluatorActor` is an async actor with a fractional CPU (`eval.actor_num_cpus`) holding
one `ExecutorClient` (shared by every evaluation it runs: one connection pool, one cache
handle, one concurrency bound), the benchmarks it has loaded and the configured sandbox. It
runs `w4s_ray.workflow.evaluate.evaluate` — the sandbox children are its subprocesses — with a
per-actor semaphore of `eval.max_inflight_per_evaluator` executor calls in flight, and writes
the W4S feedback of validation results there, where the gold answers are (`rlao.prompts_w4s.
feedback_text`: `eval.feedback` style, `eval.failure_samples` cases): the driver never loads a
benchmark's items.

`EvaluatorPool(cfg)` implements the loop's `Evaluator` protocol (`evaluate`, `item_ids`,
`merge`) and starts `eval.num_evaluators` actors (sharing one `RateLimiterActor` when
the executor has a rate limit, or a budget and several actors, so both hold for the pool, not
per actor; a sweep passes its run-wide one instead, and `executor.shared_limiter` names the
cluster's) and spreads requests of any mix of
candidates and benchmarks over them, least-loaded first. Results come back in request order.
If an actor dies (RayActorError / ActorDiedError / ActorUnavailableError), it is replaced and
the evaluations it was running are re-run on the pool; none is lost. A request that kills
`eval.max_request_retries + 1` actors in a row fails with its last error.

Placement (runtime.placement): each actor requests the `evaluator` role resource when the
cluster declares roles and is scheduled with SPREAD; the pool's own rate limiter stays on the
node that built the pool. An evaluator node lost mid-run is an actor death like any other.

Not done here: sharing one sandbox child between requests (each evaluation gets its own, which is what isolates
candidates from each other).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from typing import Any

import ray

from w4s_ray.benchmarks import get_benchmark, node_cache
from w4s_ray.config import ExperimentConfig
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import ConfigError
from w4s_ray.executor.client import ExecutorClient
from w4s_ray.rlao.evaluation import merge_results
from w4s_ray.rlao.prompts_w4s import feedback_text
from w4s_ray.runtime.placement import driver_node, evaluator_options
from w4s_ray.runtime.rate_limiter import SharedRateLimiter, get_rate_limiter
from w4s_ray.runtime.ray_init import init_ray, reraise_user_error, user_error
from w4s_ray.sandbox.base import make_sandbox
from w4s_ray.workflow.evaluate import EvalRequest, EvalResult, evaluate, select_items, with_defaults


@ray.remote
class EvaluatorActor:
    """Runs evaluations concurrently on its event loop (async actor)."""

    def __init__(self, cfg: ExperimentConfig, rate_limiter: Any = None) -> None:
        apply_offline_defaults()
        node_cache.configure(cfg.data.node_cache)
        self.cfg = cfg
        limiter = SharedRateLimiter(rate_limiter, cfg.executor.rate_limit_guard_s) \
            if rate_limiter is not None else None
        self.client = ExecutorClient(cfg.executor, rate_limiter=limiter)
        self.sandbox = make_sandbox(cfg.sandbox)
        self.benchmarks: dict[str, Any] = {}
        self._sem: asyncio.Semaphore | None = None

    def _benchmark(self, name: str) -> Any:
        if name not in self.benchmarks:
            self.benchmarks[name] = get_benchmark(name, self.cfg.data_dir())
        return self.benchmarks[name]

    async def evaluate(self, request: EvalRequest) -> EvalResult:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.cfg.eval.max_inflight_per_evaluator)
        bm = self._benchmark(request.benchmark)
        res = await evaluate(request, bm, self.client, self.sandbox, self.cfg.eval,
                             call_limiter=self._sem)
        if res.split != "test" and not request.self_check:
            ev = self.cfg.eval
            res.feedback = feedback_text(res, ev.feedback, ev.failure_samples, code=request.code)
        return res

    async def item_ids(self, benchmark: str, split: str) -> list[str]:
        req = with_defaults(EvalRequest("", benchmark, split), self.cfg.eval)
        items = await asyncio.to_thread(select_items, self._benchmark(benchmark), req)
        return [it.id for it in items]

    def pid(self) -> int:
        return os.getpid()

    def stats(self) -> dict:
        return self.client.stats()


_ACTOR_DEATH = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)


class EvaluatorPool:
    """A pool of evaluator actors shared by all candidates of a run (module docstring)."""

    def __init__(self, cfg: ExperimentConfig, rate_limiter: Any = None,
                 num_evaluators: int | None = None) -> None:
        init_ray(cfg.ray)
        # Resolve the data dir here: a worker's environment or cwd may differ from ours.
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(
            update={"dir": str(cfg.data_dir())})})
        self.cfg = cfg
        n = num_evaluators if num_evaluators is not None else cfg.eval.num_evaluators
        if n < 1:
            raise ConfigError(f"eval.num_evaluators must be >= 1, got {n}")
        self._own_limiter = None
        ex = cfg.executor
        if rate_limiter is None and ex.shared_limiter:
            rate_limiter = get_rate_limiter(ex)  # the cluster's, named: it outlives this pool
        elif rate_limiter is None and (ex.requests_per_minute or ex.tokens_per_minute or (
                n > 1 and ex.budget_usd is not None)):
            # Each actor's client would otherwise enforce the rate limit and the budget alone,
            # letting the pool spend n times either. One limiter actor makes them pool-wide
            # (also for one actor: it counts the run's preflight call, made before it).
            rate_limiter = self._own_limiter = get_rate_limiter(
                ex, name=f"w4s-pool-limiter-{uuid.uuid4().hex[:8]}",
                scheduling_strategy=driver_node())
        self.rate_limiter = rate_limiter
        self.actors: list[Any] = [self._new_actor() for _ in range(n)]
        self.load = [0] * n  # evaluations in flight per slot
        self.replaced = 0

    def _new_actor(self) -> Any:
        # Role resource and SPREAD (runtime.placement); re-read per actor, so a replacement
        # after a lost node goes to a node that still declares the resource.
        return EvaluatorActor.options(
            num_cpus=self.cfg.eval.actor_num_cpus, max_concurrency=1000,
            **evaluator_options(self.cfg.ray),
        ).remote(self.cfg, self.rate_limiter)

    def _replace(self, slot: int, dead: Any) -> None:
        if self.actors[slot] is dead:  # several requests may notice the same death
            try:
                ray.kill(dead, no_restart=True)
            except Exception:  # noqa: BLE001 - it is already gone
                pass
            self.actors[slot] = self._new_actor()
            self.replaced += 1

    async def _run_one(self, request: EvalRequest) -> EvalResult:
        retries = self.cfg.eval.max_request_retries
        for attempt in range(retries + 1):
            slot = min(range(len(self.actors)), key=lambda s: self.load[s])
            actor = self.actors[slot]
            self.load[slot] += 1
            try:
                return await actor.evaluate.remote(request)
            except _ACTOR_DEATH as exc:
                err = user_error(exc)  # died in __init__ (no API key on that node...): a
                if err is not None:  # replacement would die the same way
                    raise err from None
                self._replace(slot, actor)
                if attempt == retries:
                    raise
            finally:
                self.load[slot] -= 1
        raise AssertionError("unreachable")

    async def gather(self, requests: Sequence[EvalRequest]) -> list[EvalResult]:
        """All requests concurrently, results in request order (the async form of `evaluate`)."""
        return list(await asyncio.gather(*(self._run_one(r) for r in requests)))

    # -- the RLAO `Evaluator` protocol -----------------------------------------------------------
    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]:
        """Evaluate all requests concurrently; same order. A user error raised in an actor
        (e.g. `BudgetExceeded`) is raised here as the plain error. Inside an event loop,
        await `gather` instead."""
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            try:
                return asyncio.run(self.gather(list(requests)))
            except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
                reraise_user_error(exc)
        raise RuntimeError("EvaluatorPool.evaluate called inside an event loop; "
                           "await gather instead")

    def item_ids(self, benchmark: str, split: str) -> list[str]:
        """Asked of an actor: the driver does not load benchmark items."""
        slot = min(range(len(self.actors)), key=lambda s: self.load[s])
        try:
            return ray.get(self.actors[slot].item_ids.remote(benchmark, split), timeout=600)
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
            reraise_user_error(exc)

    def merge(self, parts: Sequence[EvalResult]) -> EvalResult:
        return merge_results(parts, self.cfg.eval.failure_samples)

    def stats(self) -> list[dict]:
        return ray.get([a.stats.remote() for a in self.actors], timeout=60)

    def close(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
        self.actors = []
        self.load = []
        if self._own_limiter is not None:
            try:
                ray.kill(self._own_limiter, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
            self._own_limiter = None

    def __enter__(self) -> EvaluatorPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
