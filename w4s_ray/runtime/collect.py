"""`w4s collect` on Ray: RLAO episodes over several benchmarks in parallel.

One `EpisodeActor` per episode runs the plain `rlao.loop.Episode`, one turn per call. All
episodes share ONE evaluator (an `EvaluatorPool` hosted in one actor behind an
`runtime.proxy.ActorProxy`, so its Ray actors are created once and every episode's candidates
queue on the same evaluators) and, for the local backend, one `MetaAgentActor`. The driver alone
writes: each finished turn comes back to it as rows, which it commits as one Parquet part
(`part-<episode>-<turn>.parquet`), so a killed driver loses at most the turns in flight and
`--resume` continues from the rows.

Budget: when the executor raises `BudgetExceeded` in any episode, no new turns start; turns
already running finish and are written; then the error is re-raised (exit code 3). Any other
user-facing error of a turn (an `ExecutorFatal`: bad key, unknown model, nothing listening;
every episode shares the endpoint) stops the collection at once: turns in flight are
abandoned, the completed ones stay on disk (`--resume` continues), cost.json and the report
are rewritten from them, and the error is raised as one line.

A w4s turn whose candidates were all dropped in every attempt (`rlao.w4s.TurnFailed`) ends that
episode, as upstream's run ends; the other episodes go on, and when they are done collect
stops with an error naming the episodes that ended early (their completed turns are kept;
`--resume` tries the failed turn again).

Not here: the turn logic (rlao.loop), the evaluation itself (runtime.evaluators), placement
across nodes beyond what Ray's scheduler does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import ray
from tqdm.auto import tqdm

from w4s_ray.benchmarks import get_benchmark
from w4s_ray.console import activity
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import BudgetExceeded, ConfigError, W4SError
from w4s_ray.meta_agent import make_meta_agent
from w4s_ray.rlao.evaluation import EvalRequest
from w4s_ray.rlao.loop import Episode, TaskSpec, run_identity, seed_record
from w4s_ray.rlao.report import write_report
from w4s_ray.rlao.runs import RunDir, cost_summary, episode_id, replay_episode
from w4s_ray.rlao.w4s import TurnFailed
from w4s_ray.runtime.evaluators import EvaluatorPool
from w4s_ray.runtime.meta_agent_actor import make_hosted_meta_agent, stop
from w4s_ray.runtime.placement import check_roles, driver_node
from w4s_ray.runtime.proxy import ActorProxy, host
from w4s_ray.runtime.ray_init import user_error
from w4s_ray.utils.io import atomic_write_json

log = logging.getLogger(__name__)


@ray.remote(num_cpus=0)
class EpisodeActor:
    def __init__(self, cfg, spec: TaskSpec, eid: str, evaluator: ActorProxy, meta_agent,
                 seed_records: list[dict], rows: list[dict]) -> None:
        apply_offline_defaults()
        agent = meta_agent if meta_agent is not None else make_meta_agent(cfg)
        self.ep = Episode.for_run(cfg, spec, eid, evaluator, agent, collecting=True)
        self.ep.start(seed_records)
        self.ep.replay(rows)

    def run_turn(self):
        return self.ep.run_turn()


def default_spec_loader(cfg) -> Callable[[str], TaskSpec]:
    def load(name: str) -> TaskSpec:
        return TaskSpec.from_benchmark(get_benchmark(name, data_dir=cfg.data_dir()),
                                      cfg.rlao.protocol)

    return load


def collect(
    cfg,
    benchmarks: Sequence[str],
    out_dir: str | Path,
    *,
    episodes: int | None = None,
    turns: int | None = None,
    resume: bool = False,
    evaluator_factory: Callable | None = None,
    spec_loader: Callable[[str], TaskSpec] | None = None,
    progress: bool = True,
    executor: dict | None = None,
    on_turn: Callable[[], object] | None = None,
) -> dict:
    """Run (or resume) collection; returns a summary dict. Ray must be initialised.

    `evaluator_factory(cfg)` builds the shared evaluator inside its host actor (default: an
    `EvaluatorPool`; tests pass a fake). `executor`: the executor preflight's description,
    recorded in the run dir (`RunDir.record_executor`). `on_turn()` runs after each turn is
    written (a durable point: `api.collect` syncs a URI run dir there)."""
    t0 = time.monotonic()
    episodes = cfg.rlao.episodes_per_benchmark if episodes is None else episodes
    turns = cfg.rlao.turns if turns is None else turns
    spec_loader = spec_loader or default_spec_loader(cfg)
    specs = {b: spec_loader(b) for b in benchmarks}

    if evaluator_factory is None:  # a role that cannot be placed: one line, before any work
        check_roles(cfg.ray, ["evaluator"] + (["meta_agent"] if cfg.meta_agent.backend == "local"
                                               else []))
    rd = RunDir(out_dir)
    rd.prepare(cfg, resume)
    rd.record_executor(executor)
    rows = rd.read_rows()  # a corrupt part file stops us here, before any work
    evaluator = host(evaluator_factory or EvaluatorPool, cfg)
    actors: dict[str, object] = {}
    shared_agent = None
    try:
        ident = run_identity(cfg, collecting=True)
        if ident["split"] == "train":
            empty = [b for b in benchmarks if not evaluator.item_ids(b, "train")]
            if empty:
                raise ConfigError(
                    f"rlao.collect_split=train: {', '.join(empty)} has no collection split "
                    "(its data has no items beyond valid/test; docs/BENCHMARKS.md); use "
                    "rlao.collect_split=valid or other benchmarks")
        with activity(f"seed workflows of {len(specs)} benchmark(s) on {ident['split']}",
                      enabled=progress):
            seeds = _seed_records(rd, specs, evaluator, ident["split"], ident["extra_items"])
        plan = []  # (episode id, benchmark, turns done)
        best_by_turn: dict = {}
        for b in benchmarks:
            for k in range(episodes):
                eid = episode_id(b, k)
                check = Episode.for_run(cfg, specs[b], eid, evaluator, None, collecting=True)
                check.start(seeds[b])
                best_by_turn.update(replay_episode(check, rows))  # DataError on gaps/mismatch
                plan.append((eid, b, check.state.turn))
        if rows:
            rd.rebuild_metrics(rows, best_by_turn)
        todo = [(eid, b, done) for eid, b, done in plan if done < turns]
        if todo and cfg.meta_agent.backend == "local":
            shared_agent = make_hosted_meta_agent(cfg)
        for eid, b, _ in todo:
            mine = [r for r in rows if r["episode_id"] == eid]
            # Episodes hold the run's state: on the driver's node, never on a node that may go.
            actors[eid] = EpisodeActor.options(scheduling_strategy=driver_node()).remote(
                cfg, specs[b], eid, evaluator, shared_agent, seeds[b], mine)
        done_turns = {eid: done for eid, _, done in plan}
        sim = " (simulated executor)" if (executor or {}).get("simulated") else ""
        bar = tqdm(total=len(plan) * turns, initial=sum(min(d, turns) for d in done_turns.values()),
                   desc=f"collect{sim}", unit="turn", disable=not progress)
        inflight = {actors[eid].run_turn.remote(): eid for eid, _, _ in todo}
        budget_error: BaseException | None = None
        failed: dict[str, TurnFailed] = {}
        stop_error: BaseException | None = None
        try:
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1)
                eid = inflight.pop(ready[0])
                try:
                    res = ray.get(ready[0])
                except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
                    err = user_error(exc)
                    if isinstance(err, BudgetExceeded):
                        budget_error = budget_error or err
                        continue
                    if isinstance(err, TurnFailed):  # ends this episode only, as upstream
                        failed[eid] = err
                        continue
                    if isinstance(err, W4SError):  # e.g. ExecutorFatal: shared by every episode
                        stop_error = err
                        break
                    raise exc from None
                rd.write_turn(eid, res)
                if on_turn is not None:
                    on_turn()
                rows += res.rows
                done_turns[eid] = res.turn  # turns are numbered from 1 (seeds: 0)
                bar.update(1)
                if done_turns[eid] < turns and budget_error is None:
                    inflight[actors[eid].run_turn.remote()] = eid
        finally:
            bar.close()
        atomic_write_json(rd.cost, cost_summary(rows, [s for v in seeds.values() for s in v]))
        write_report(rd.path)
        if stop_error is not None:
            raise stop_error
        if budget_error is not None:
            raise budget_error
        if failed:
            first = next(iter(failed.values()))
            raise W4SError(f"collect: {len(failed)} episode(s) ended early ("
                           f"{', '.join(sorted(failed))}); the others completed. {first}")
    finally:
        for a in actors.values():
            ray.kill(a, no_restart=True)
        if shared_agent is not None:
            stop(shared_agent)
        evaluator.close()
    return {
        "out_dir": str(rd.path), "episodes": len(plan), "rows": len(rows),
        "turns": done_turns, "wall_s": round(time.monotonic() - t0, 2),
    }


def _seed_records(rd: RunDir, specs: dict[str, TaskSpec], evaluator, split: str = "valid",
                  extra_items: int = 0) -> dict[str, list[dict]]:
    """Seed results per benchmark, evaluated where the candidates are: stored ones, else ONE
    evaluator call for all missing."""
    out: dict[str, list[dict]] = {}
    jobs, owners = [], []
    for b, spec in specs.items():
        stored = rd.load_seeds(b)
        if stored is not None:
            out[b] = stored
            continue
        for name, code in spec.seed_workflows.items():
            jobs.append(EvalRequest(code, b, split, tag=f"seed:{name}",
                                    extra_items=extra_items))
            owners.append((b, name, code))
    if jobs:
        results = evaluator.evaluate(jobs)
        for (b, name, code), res in zip(owners, results, strict=True):
            out.setdefault(b, []).append(seed_record(name, code, res))
        for b in {o[0] for o in owners}:
            rd.save_seeds(b, out[b])
    return out
