"""`w4s sweep` on Ray: many benchmarks optimized at once on one pool, rate limit and budget.

Every benchmark runs `w4s_ray.sweep.benchmark.run_benchmark` (seed baselines on test, then the
same `optimize` as `w4s optimize`) on a thread of one shared host actor (`sweep.task_host:
shared`, the default: the platform is imported into one worker process, not one per benchmark;
a benchmark that kills that process, e.g. by exhausting memory, stops the others too) or as its
own Ray task (`per_benchmark`). All of them share:

- ONE evaluator: an `EvaluatorPool`, so every benchmark's candidates queue on the same
  evaluator actors; it lives in the shared host process (`sweep.pool_host: auto`, one Ray
  worker fewer) or in an actor of its own (`own_actor`, and always with `per_benchmark`,
  `runtime.proxy.host`);
- ONE executor rate limit and dollar budget: a named `RateLimiterActor` handed to every
  evaluator's `ExecutorClient` (`executor.requests_per_minute`, `tokens_per_minute`,
  `budget_usd` hold for the whole sweep, not per benchmark);
- for the local backend, ONE hosted meta-agent actor (other backends: one client per task).

The tasks, the hosted pool and the limiter are pinned to the driver's node, so every run
directory is written where the driver (and the user) can read it and losing a worker node loses
only evaluations (re-run elsewhere); the evaluations themselves spread over the evaluator nodes
(runtime.placement).

Before any work: unknown benchmark names, an unreachable `ray.address` (TCP connect with
`sweep.connect_timeout_s`), run directories that cannot be started or resumed (`--resume`
with no sweep there included), a missing meta-agent, an executor that fails its preflight
call (bad key, unknown model or provider, nothing listening), then an API meta-agent that
fails its own are each one error line, raised before Ray starts. A benchmark that fails is
recorded (`FAILED: <one line>` in the report, the full error in `<benchmark>/error.log`) and
the others carry on. `BudgetExceeded` stops the benchmark that hit it (every other one hits
the same shared budget); the report is written, then the error is raised (exit 3).
`ExecutorFatal` or `MetaAgentFatal` (the endpoint stopped serving mid-run) stops every
benchmark at once, since they all share the endpoint: running ones are cancelled (their
completed turns stay on disk), the report is written, then the one-line error is raised
(exit 2). `--resume` skips complete benchmarks and stored baselines and
resumes optimization from the last completed turn.

With `sweep.methods` (`--methods cot,...,adas,aflow,w4s`) each benchmark task runs every method
(`sweep.methods.run_methods`: baselines on test, ADAS/AFlow searches, W4S) on the same pool,
limiter and budget, and the report is the paper-shaped `sweep_table.md/.png/.json`
(`sweep.table`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ray
from tqdm.auto import tqdm

from w4s_ray.benchmarks import check_benchmarks, get_benchmark, node_cache
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import BudgetExceeded, ConfigError, ExecutorFatal, W4SError
from w4s_ray.executor.preflight import check_executor
from w4s_ray.meta_agent import check_meta_agent, make_meta_agent, preflight_meta_agent
from w4s_ray.optimizers.run import check_search_meta_agent, for_meta_agent
from w4s_ray.rlao.loop import TaskSpec
from w4s_ray.rlao.runs import preflight
from w4s_ray.runtime.evaluators import EvaluatorPool
from w4s_ray.runtime.meta_agent_actor import make_hosted_meta_agent, stop
from w4s_ray.runtime.placement import check_roles, driver_node
from w4s_ray.runtime.proxy import host
from w4s_ray.runtime.rate_limiter import get_rate_limiter
from w4s_ray.runtime.ray_init import init_ray, ray_session, reraise_user_error, user_error
from w4s_ray.sweep.benchmark import run_benchmark
from w4s_ray.sweep.layout import SweepLayout, is_complete
from w4s_ray.sweep.methods import (
    check_methods,
    clear_methods,
    method_dirs,
    method_done,
    run_methods,
)
from w4s_ray.sweep.report import write_sweep_report
from w4s_ray.sweep.table import write_table
from w4s_ray.utils.io import atomic_write_json

_DEFAULT_PORTS = {"ray": 10001, "http": 8265, "https": 443, "": 6379}


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of a cluster address; None for addresses Ray resolves itself ("auto")."""
    a = address.strip()
    if a in ("", "auto", "local") or a.startswith("local"):
        return None
    scheme = ""
    if "://" in a:
        scheme, a = a.split("://", 1)
    a = a.split("/", 1)[0]
    if a.startswith("["):  # [ipv6]:port
        host, _, rest = a[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = a.rpartition(":") if ":" in a else (a, "", "")
    if not host:
        raise ConfigError(f"ray.address {address!r}: expected host:port")
    try:
        return host, int(port) if port else _DEFAULT_PORTS.get(scheme, 6379)
    except ValueError:
        raise ConfigError(f"ray.address {address!r}: port {port!r} is not a number") from None


def check_cluster_address(address: str | None, timeout_s: float) -> None:
    """A ConfigError naming the address when nothing accepts a TCP connection there."""
    if not address:
        return
    target = parse_address(address)
    if target is None:
        return
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(
            f"ray.address {address}: cannot reach {host}:{port} within {timeout_s:g} s "
            f"({reason}); is the cluster up?"
        ) from None


def benchmark_config(cfg, benchmark: str):
    """The sweep config specialised to one benchmark (what its run dir records)."""
    return cfg.model_copy(update={"benchmark": benchmark}, deep=True)


def prepare_sweep(cfg, benchmarks: Sequence[str] | None, resume: bool, fresh: bool = False):
    """Every check that can fail, before any work: (pinned cfg, names, layout, to-do names)."""
    names = check_benchmarks(list(benchmarks) if benchmarks else cfg.benchmarks)
    if cfg.sweep.methods:
        cfg.sweep.methods = check_methods(cfg.sweep.methods)
        if "adas" in cfg.sweep.methods and cfg.optimizers.adas.initial:
            from w4s_ray.baselines import get_baseline

            for b in cfg.optimizers.adas.initial:
                get_baseline(b)
    pool_in_task_host(cfg)  # refuses pool_host=task_host without a shared host
    check_cluster_address(cfg.ray.address or os.environ.get("RAY_ADDRESS"),
                          cfg.sweep.connect_timeout_s)
    cfg = cfg.model_copy(deep=True)
    # Tasks and actors may start elsewhere (other cwd, other env): pin absolute paths now.
    cfg.data.dir = str(cfg.data_dir())
    cfg.run_dir = str(Path(cfg.run_dir).expanduser().resolve())
    layout = SweepLayout(cfg.run_dir)
    if layout.root.exists() and not layout.root.is_dir():
        raise ConfigError(f"run dir {layout.root} exists and is not a directory")
    if resume and not layout.status.exists() \
            and not any(layout.bench(b).has_work() for b in names):
        raise ConfigError(f"--resume: {layout.root} holds no sweep to resume; check the "
                          "run_dir, or drop --resume to start one")
    if not resume and not fresh:
        used = [b for b in names if layout.bench(b).has_work()
                or any(d.exists() for d in method_dirs(layout, b))]
        if used:
            raise ConfigError(
                f"run dir {layout.root} already holds a sweep ({', '.join(used)}); pass "
                "--resume to continue it, --fresh to start over, or choose another run_dir"
            )
    todo = []
    for b in names:
        if not fresh:  # --fresh: run_sweep discards these once every check has passed
            preflight(layout.bench(b).path, benchmark_config(cfg, b), resume, require_run=False)
        if not (resume and _complete(cfg, layout, b)):
            todo.append(b)
    return cfg, names, layout, todo


def _run_one_benchmark(cfg, name: str, root: str, evaluator, meta_agent,
                      meta_agent_factory: Callable | None, resume: bool,
                      executor: dict | None = None) -> dict:
    apply_offline_defaults()
    node_cache.configure(cfg.data.node_cache)
    spec = TaskSpec.from_benchmark(get_benchmark(name, data_dir=cfg.data_dir()),
                                  cfg.rlao.protocol)
    factory = meta_agent_factory or make_meta_agent
    own = meta_agent is None and (not cfg.sweep.methods or "w4s" in cfg.sweep.methods)
    if own:
        meta_agent = factory(cfg)
    try:
        if cfg.sweep.methods:
            return run_methods(cfg, spec, SweepLayout(root), evaluator, meta_agent,
                               lambda: factory(for_meta_agent(cfg)), resume=resume,
                               executor=executor)
        return run_benchmark(cfg, spec, SweepLayout(root), evaluator, meta_agent, resume=resume,
                             executor=executor)
    finally:
        if own:
            meta_agent.close()


_benchmark_task = ray.remote(num_cpus=0, max_retries=0)(_run_one_benchmark)


@ray.remote(num_cpus=0, max_restarts=0)
class _BenchmarkHost:
    """`sweep.task_host: shared`: every benchmark of the sweep runs on a thread of this one
    worker process. A Ray task per benchmark starts (or takes) its own worker and imports the
    platform into it (about 2 CPU-seconds here, most of a benchmark's own CPU); one host pays
    that once. The threads wait on the pool and the meta-agent almost all the time."""

    def __init__(self) -> None:
        apply_offline_defaults()
        self.pool: EvaluatorPool | None = None

    def start_pool(self, cfg, rate_limiter: Any) -> None:
        """`sweep.pool_host: task_host`: the sweep's evaluator pool lives here, not in an
        actor of its own (one Ray worker fewer). The benchmark threads call it directly, as
        the pool's own host actor's threads would; its evaluator actors are owned by this
        process and die with it."""
        self.pool = EvaluatorPool(cfg, rate_limiter=rate_limiter)

    def close_pool(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def run(self, cfg, name, root, evaluator, *rest: Any) -> dict:
        # evaluator None: the pool hosted here (start_pool).
        return _run_one_benchmark(cfg, name, root,
                                  self.pool if evaluator is None else evaluator, *rest)


class _Launcher:
    """Starts benchmark runs as tasks or on the shared host and stops them again: a host's
    running threads cannot be cancelled, only its whole process killed."""

    def __init__(self, cfg, here: Any, width: int) -> None:
        self.here, self.host, self.hosts_pool = here, None, False
        if cfg.sweep.task_host == "shared":
            self.host = _BenchmarkHost.options(
                scheduling_strategy=here, max_concurrency=max(1, width)).remote()

    def start_pool(self, cfg, rate_limiter: Any) -> Any:
        """The evaluator every benchmark is handed: a proxy to a pool in its own actor, or
        None for the pool in the shared host (`sweep.pool_host`)."""
        if pool_in_task_host(cfg):
            self.hosts_pool = True
            try:
                ray.get(self.host.start_pool.remote(cfg, rate_limiter), timeout=600)
            except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
                reraise_user_error(exc)
            return None
        return host(EvaluatorPool, cfg, rate_limiter=rate_limiter)

    def close_pool(self) -> None:
        if self.hosts_pool and self.host is not None:
            with contextlib.suppress(Exception):
                ray.get(self.host.close_pool.remote(), timeout=60)

    def start(self, *args: Any) -> Any:
        if self.host is not None:
            return self.host.run.remote(*args)
        return _benchmark_task.options(scheduling_strategy=self.here).remote(*args)

    def cancel(self, refs: list, force: bool) -> None:
        if self.host is None:
            for ref in refs:
                ray.cancel(ref, force=force)
        elif force and refs:
            self.kill()

    def kill(self) -> None:
        if self.host is not None:
            with contextlib.suppress(Exception):
                ray.kill(self.host, no_restart=True)
            self.host = None


def pool_in_task_host(cfg) -> bool:
    """Whether the sweep's evaluator pool lives in the shared benchmark host (`sweep.pool_host`)."""
    where = cfg.sweep.pool_host
    if where == "task_host" and cfg.sweep.task_host != "shared":
        raise ConfigError("sweep.pool_host=task_host needs sweep.task_host=shared (with "
                          "per_benchmark there is no shared host to hold the pool)")
    return where == "task_host" or (where == "auto" and cfg.sweep.task_host == "shared")


def _complete(cfg, layout: SweepLayout, b: str) -> bool:
    if cfg.sweep.methods:
        return all(method_done(layout, b, m, cfg) for m in cfg.sweep.methods)
    return is_complete(layout, b, cfg.rlao.turns, cfg.sweep.baselines)


def one_line(exc: BaseException) -> str:
    """The message a user sees for a failed benchmark: the W4SError text, else type + text."""
    err = user_error(exc)
    if err is None and isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        err = cause
    err = err or exc
    text = str(err).strip().splitlines()
    msg = text[0] if text else ""
    if not isinstance(err, W4SError):
        msg = f"{type(err).__name__}: {msg}" if msg else type(err).__name__
    return msg[:300]


def _turns_done(layout: SweepLayout, names: Sequence[str]) -> int:
    return sum(layout.bench(b).turns_done() for b in names)


def _meta(cfg, wall_s: float | None, executor: dict | None = None) -> dict:
    return {
        "name": cfg.name, "executor": cfg.executor.model, "executor_info": executor,
        "simulated": bool(executor["simulated"]) if executor else None,
        "meta_agent": f"{cfg.meta_agent.backend}:{cfg.meta_agent.model}",
        "turns": cfg.rlao.turns, "candidates": cfg.rlao.candidates,
        "valid_limit": cfg.eval.limit, "test_limit": cfg.rlao.test_limit,
        "scoring": cfg.eval.scoring,
        "budget_usd": cfg.executor.budget_usd, "wall_s": wall_s,
        "methods": cfg.sweep.methods,
        "search_meta_agent": f"{for_meta_agent(cfg).meta_agent.backend}:"
                             f"{for_meta_agent(cfg).meta_agent.model}",
    }


def run_sweep(
    cfg,
    benchmarks: Sequence[str] | None = None,
    *,
    resume: bool = False,
    fresh: bool = False,
    progress: bool = True,
    meta_agent_factory: Callable | None = None,
) -> dict:
    """Run (or resume) the sweep; returns {report, status per benchmark, failed, wall_s}.

    `meta_agent_factory(cfg) -> MetaAgent`, when given, builds each task's meta-agent instead
    of the configured backend (it must pickle: a module-level function).
    """
    t0 = time.monotonic()
    cfg, names, layout, todo = prepare_sweep(cfg, benchmarks, resume, fresh)
    executor = None
    if todo:  # a missing meta-agent or a failing executor: one line, before Ray starts
        if meta_agent_factory is None:
            if not cfg.sweep.methods or "w4s" in cfg.sweep.methods:
                check_meta_agent(cfg)
            if set(cfg.sweep.methods or []) & {"adas", "aflow"}:
                check_search_meta_agent(cfg)
        executor = check_executor(cfg.executor)
        if meta_agent_factory is None and (not cfg.sweep.methods or "w4s" in cfg.sweep.methods):
            preflight_meta_agent(cfg)
    if fresh:  # every check passed: only now is what earlier sweeps wrote discarded
        for b in names:
            layout.bench(b).clear()
            clear_methods(layout, b)
        layout.status.unlink(missing_ok=True)
    with ray_session(cfg.ray, start=False):
        if todo:
            try:
                init_ray(cfg.ray)
            except ConnectionError as exc:
                raise ConfigError(f"ray.address {cfg.ray.address}: {str(exc).splitlines()[0]}"
                                  ) from None
            # A role no node can host would leave its actors pending forever: refuse now.
            check_roles(cfg.ray, ["evaluator"] + (["meta_agent"] if meta_agent_factory is None
                                                   and cfg.meta_agent.backend == "local" else []))
        return _run(cfg, names, layout, todo, t0, resume=resume, progress=progress,
                    meta_agent_factory=meta_agent_factory, executor=executor)


def _run(cfg, names, layout, todo, t0, *, resume, progress, meta_agent_factory,
         executor) -> dict:
    previous = layout.load_status().get("benchmarks", {}) if resume else {}
    # Complete on disk means done, whatever a killed driver last recorded for it.
    status = {b: {"wall_s": None, **previous.get(b, {}), "status": "done", "error": None}
              for b in names if b not in todo}
    status.update({b: {"status": "pending", "error": None, "wall_s": None} for b in todo})

    def save(wall: float | None = None) -> None:
        atomic_write_json(layout.status, {"meta": _meta(cfg, wall, executor),
                                          "benchmarks": status})

    limiter = agent = evaluator = here = launcher = None
    pending: dict = {}
    budget_error: BudgetExceeded | None = None
    fatal_error: W4SError | None = None
    try:
        layout.root.mkdir(parents=True, exist_ok=True)
        save()
        if todo:
            here = driver_node()
            limiter = get_rate_limiter(cfg.executor, name=f"w4s-sweep-{uuid.uuid4().hex[:8]}",
                                       scheduling_strategy=here)
        queue = list(todo)
        width = cfg.sweep.max_parallel or len(todo) or 1
        if todo:
            launcher = _Launcher(cfg, here, min(width, len(todo)))
            # One pool for every benchmark; its clients share the sweep's limiter and budget.
            # None: it lives in the shared benchmark host (sweep.pool_host).
            evaluator = launcher.start_pool(cfg, limiter)
            if meta_agent_factory is None and cfg.meta_agent.backend == "local" and (
                    not cfg.sweep.methods or "w4s" in cfg.sweep.methods):
                agent = make_hosted_meta_agent(cfg)
        total_turns = len(names) * cfg.rlao.turns
        sim = " (simulated executor)" if (executor or {}).get("simulated") else ""
        bar = tqdm(total=total_turns, initial=min(_turns_done(layout, names), total_turns),
                   desc=f"sweep {len(names)} benchmarks{sim}", unit="turn", disable=not progress)
        started: dict[str, float] = {}
        try:
            while (queue and budget_error is None and fatal_error is None) or pending:
                while queue and len(pending) < width and budget_error is None \
                        and fatal_error is None:
                    b = queue.pop(0)
                    ref = launcher.start(
                        benchmark_config(cfg, b), b, str(layout.root), evaluator, agent,
                        meta_agent_factory, resume or layout.bench(b).has_work(),
                        executor)
                    pending[ref] = b
                    started[b] = time.monotonic()
                    status[b]["status"] = "running"
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                bar.update(max(0, min(_turns_done(layout, names), total_turns) - bar.n))
                for ref in ready:
                    b = pending.pop(ref)
                    wall = round(time.monotonic() - started[b], 2)
                    try:
                        ray.get(ref)
                        status[b] = {"status": "done", "error": None, "wall_s": wall}
                    except Exception as exc:  # noqa: BLE001 - one benchmark must not stop all
                        msg = one_line(exc)
                        kind = "budget" if _is_budget(exc) else "failed"
                        if kind == "budget" and budget_error is None:
                            budget_error = BudgetExceeded(msg)
                        if _is_fatal(exc) and fatal_error is None:
                            fatal_error = user_error(exc)
                            _stop_all(pending, status, started, f"stopped: {msg}",
                                      launcher)
                        status[b] = {"status": kind, "error": msg, "wall_s": wall}
                        layout.bench(b).path.mkdir(parents=True, exist_ok=True)
                        layout.bench(b).error_log.write_text(str(exc), encoding="utf-8")
                    save()
                    done = sum(s["status"] == "done" for s in status.values())
                    bar.set_postfix(done=f"{done}/{len(names)}",
                                    failed=sum(s["status"] in ("failed", "budget")
                                               for s in status.values()))
            for b in queue:  # never started: the shared budget or the endpoint failed first
                cause = fatal_error or budget_error
                status[b] = {"status": "failed" if fatal_error else "budget",
                             "error": f"not started: {cause}", "wall_s": None}
        finally:
            bar.close()
    finally:
        if launcher is not None:
            launcher.cancel(list(pending), force=True)
            launcher.close_pool()  # a pool in the host: closed before the host goes
            launcher.kill()
        if agent is not None:
            stop(agent)
        if evaluator is not None:
            evaluator.close()
        if limiter is not None:
            ray.kill(limiter, no_restart=True)
    wall_s = round(time.monotonic() - t0, 2)
    save(wall_s)
    report = write_sweep_report(layout.root, names)
    if cfg.sweep.methods:
        report = write_table(layout.root, names, cfg.sweep.methods)
    failed = [b for b, s in status.items() if s["status"] != "done"]
    if fatal_error is not None:
        raise fatal_error
    if budget_error is not None:
        raise BudgetExceeded(f"{budget_error} ({len(failed)} benchmark(s) stopped; report: "
                             f"{report})")
    return {"report": str(report), "run_dir": str(layout.root), "status": status,
            "failed": failed, "wall_s": wall_s, "executor": executor}


def _is_budget(exc: BaseException) -> bool:
    return isinstance(user_error(exc), BudgetExceeded)


def _is_fatal(exc: BaseException) -> bool:
    return isinstance(user_error(exc), ExecutorFatal)


def _stop_all(pending: dict, status: dict, started: dict, why: str, launcher: _Launcher,
              grace_s: float = 20.0) -> None:
    """Cancel every running benchmark task (they share the failed endpoint). A graceful cancel
    first (KeyboardInterrupt in the task; its completed turns are on disk already; on the
    shared host the runs fail by themselves on the same endpoint), then a forced one (the
    host: killed) for tasks still running after `grace_s`."""
    refs = list(pending)
    launcher.cancel(refs, force=False)
    _, still = ray.wait(refs, num_returns=len(refs), timeout=grace_s)
    launcher.cancel(list(still), force=True)
    for ref in refs:
        b = pending.pop(ref)
        status[b] = {"status": "failed", "error": why,
                     "wall_s": round(time.monotonic() - started[b], 2)}
