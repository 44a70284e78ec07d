"""The Python API: every pipeline stage as a function of the typed config (docs/API.md).

    import w4s_ray as w4s
    cfg = w4s.config("experiments/quick.yaml", {"eval.limit": 8})
    res = w4s.optimize(cfg, benchmark="gsm8k")
    res.workflow, res.valid_accuracy, res.test_accuracy, res.dollars, res.report

Every stage takes `cfg` (an `ExperimentConfig`, a YAML path or experiment name, a nested dict,
or None for the embedded defaults) and `overrides` ({"eval.limit": 8} or ["eval.limit=8"]),
makes the same checks as the CLI before Ray starts (data, meta-agent, one executor preflight
call), runs, and returns a result object; the `w4s` verbs call these functions and print.
Errors are the package's `W4SError` subclasses (the CLI's one `w4s: error:` line).

Ray: a stage joins the Ray already initialised in this process (and leaves it running), else
`ray.address` / $RAY_ADDRESS, else starts a private local Ray that it stops at the end.

Not here: argument parsing and printing (`w4s_ray.commands`), the stages themselves
(`rlao`, `runtime`, `train`, `sweep`).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from w4s_ray import console, storage, tracking
from w4s_ray.config import ExperimentConfig, apply_overrides, load_config
from w4s_ray.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from w4s_ray.train.trainer import TrainResult
    from w4s_ray.workflow.evaluate import EvalResult

Overrides = dict[str, Any] | list[str] | None
ConfigLike = ExperimentConfig | str | os.PathLike | dict | None


def config(cfg: ConfigLike = None, overrides: Overrides = None) -> ExperimentConfig:
    """The typed config: `cfg` as given (see the module doc) with `overrides` applied, and its
    `include` directories/modules loaded (their benchmarks and seeds registered)."""
    if isinstance(cfg, ExperimentConfig):
        out = apply_overrides(cfg, overrides)
    elif cfg is None or isinstance(cfg, str | os.PathLike):
        if isinstance(overrides, dict) or cfg is None:
            out = apply_overrides(load_config(cfg), overrides)
        else:
            out = load_config(cfg, list(overrides or []))
    elif isinstance(cfg, dict):
        from pydantic import ValidationError

        from w4s_ray.config import _format_validation_error

        try:
            out = apply_overrides(ExperimentConfig.model_validate(cfg), overrides)
        except ValidationError as err:
            raise ConfigError(_format_validation_error(err, "config dict")) from None
    else:
        raise ConfigError(f"config: expected an ExperimentConfig, a path or a dict, got "
                          f"{type(cfg).__name__}")
    if out.include:
        from w4s_ray.benchmarks.plugins import load_includes

        load_includes(out.include)
    return out


def _outside_event_loop(fn: Callable) -> Callable:
    """Run the stage on a thread of its own when called inside a running event loop (a
    Jupyter cell): the stages call `asyncio.run` (executor preflight, evaluation)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        with ThreadPoolExecutor(1, thread_name_prefix=f"w4s-{fn.__name__}") as pool:
            return pool.submit(fn, *args, **kwargs).result()
    return wrapper


def _check_restart(resume: bool, fresh: bool) -> None:
    if resume and fresh:
        raise ConfigError("--resume and --fresh exclude each other (continue, or start over)")


def _progress(progress: bool | None) -> bool:
    return console.progress_enabled() if progress is None else bool(progress)


# -- optimize -----------------------------------------------------------------------------------


@dataclass
class OptimizeResult:
    """One W4S optimization: the workflow chosen on validation and its single test run."""

    benchmark: str
    run_dir: Path
    best: str                     # the chosen workflow's name (a seed, or turn/candidate)
    workflow: str                 # its Python source (`final_workflow.py`)
    valid_accuracy: float | None
    test_accuracy: float | None
    test_n: int | None
    dollars: float
    cached_dollars: float | None  # what the cache hits would have cost
    seed_baselines: dict[str, dict]
    metrics: list[dict]           # metrics.jsonl: one dict per turn
    final: dict                   # final.json as written
    executor: dict | None = None  # what the executor preflight found (`simulated`, model, ...)

    @property
    def report(self) -> Path:
        return self.run_dir / "report.md"

    @property
    def workflow_path(self) -> Path:
        return self.run_dir / "final_workflow.py"

    @property
    def trajectories(self) -> Path:
        return self.run_dir / "trajectories"


@_outside_event_loop
def optimize(cfg: ConfigLike = None, *, benchmark: str | None = None, turns: int | None = None,
             run_dir: str | os.PathLike | None = None, resume: bool = False,
             fresh: bool = False, progress: bool | None = None,
             overrides: Overrides = None) -> OptimizeResult:
    """W4S on one benchmark (default: the config's `benchmark`): `turns` turns (default
    `rlao.turns`) in `run_dir` (default <run_dir>/optimize/<benchmark>), then the best
    workflow by validation once on test. `resume` continues a stopped run; `fresh` discards
    one and starts over."""
    from w4s_ray.benchmarks import check_benchmarks

    cfg = config(cfg, overrides)
    if cfg.optimizers.method != "w4s":  # never run W4S silently in place of the asked search
        raise ConfigError(f"optimizers.method={cfg.optimizers.method}: the Python API runs W4S "
                          f"only; run ADAS/AFlow with `w4s optimize --method "
                          f"{cfg.optimizers.method}`")
    name = check_benchmarks([benchmark or cfg.benchmark])[0]
    if turns is not None and turns < 0:
        raise ConfigError(f"--turns must be >= 0, got {turns}")
    _check_restart(resume, fresh)
    where = str(run_dir) if run_dir else storage.join(cfg.run_dir, "optimize", name)
    with storage.staged(where, cfg.storage, what="--run-dir" if run_dir else "run_dir") as st:
        return _optimize(cfg, name, st, turns=turns, resume=resume, fresh=fresh,
                         progress=progress)


def _optimize(cfg: ExperimentConfig, name: str, st: storage.Stage, *, turns: int | None,
              resume: bool, fresh: bool, progress: bool | None) -> OptimizeResult:
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.executor.preflight import check_executor
    from w4s_ray.meta_agent import check_meta_agent, preflight_meta_agent
    from w4s_ray.rlao.loop import TaskSpec
    from w4s_ray.rlao.optimize import optimize as run_optimize
    from w4s_ray.rlao.runs import RunDir, preflight
    from w4s_ray.runtime.evaluators import EvaluatorPool
    from w4s_ray.runtime.meta_agent_actor import make_hosted_meta_agent, stop
    from w4s_ray.runtime.ray_init import ray_session

    out = st.path  # a URI run_dir: the local staging copy, synced after every turn
    if not fresh:
        preflight(out, cfg, resume)  # bad dir / corrupt rows: fail before starting Ray
    bm = get_benchmark(name, data_dir=cfg.data_dir())
    bm.check_files()  # missing data, meta-agent or a failing executor: one line, before Ray
    check_meta_agent(cfg)
    tracking.check(cfg)
    info = check_executor(cfg.executor)
    preflight_meta_agent(cfg)
    spec = TaskSpec.from_benchmark(bm, cfg.rlao.protocol)
    rd = RunDir(out, single_episode=True)
    if fresh:  # every check passed: only now is the earlier run discarded
        rd.clear()
    with tracking.run(cfg, "optimize", name) as tr, ray_session(cfg.ray):
        tr.params({"benchmark": name, "run_dir": out.resolve()})
        logged: set[int] = set()

        def log_new_turns(_res: Any = None) -> None:  # live: each turn as it is written
            spent: dict[str, float] = {}
            seeds = rd.load_seeds(name)
            if seeds:  # turn 0: the seed workflows (their dollars start the cumulative sum)
                from w4s_ray.rlao.report import seed_turn
                from w4s_ray.rlao.runs import episode_id

                tracking.log_turn(tr if 0 not in logged else tracking.Tracker(),
                                  seed_turn(episode_id(name, 0), name, seeds), spent)
                logged.add(0)
            for m in rd.load_metrics():
                tracking.log_turn(tr if m["turn"] not in logged else tracking.Tracker(), m,
                                  spent)
                logged.add(m["turn"])
            st.sync()  # a turn is complete: a durable point

        evaluator = agent = None
        try:
            evaluator = EvaluatorPool(cfg)
            agent = make_hosted_meta_agent(cfg)
            final = run_optimize(cfg, spec, out, evaluator, agent, turns=turns, resume=resume,
                                 progress=_progress(progress), executor=info,
                                 on_turn=log_new_turns)
        finally:
            if agent is not None:
                stop(agent)
            if evaluator is not None:
                evaluator.close()
            log_new_turns()  # turns of an earlier (resumed) run, or all there are on an error
            tr.artifacts(tracking.run_files(out))
        tr.metrics({"valid_accuracy": final.get("valid_accuracy"),
                    "test_accuracy": final.get("test_accuracy"), "dollars": final.get("dollars"),
                    "cached_dollars": final.get("cached_dollars"),
                    "executor_calls": final.get("executor_calls")})
        tr.table("final", ["workflow", "valid_accuracy", "test_accuracy"],
                 [[f"optimized ({final.get('best')})", final.get("valid_accuracy"),
                   final.get("test_accuracy")]]
                 + [[f"seed: {s}", b.get("valid_accuracy"), b.get("test_accuracy")]
                    for s, b in (final.get("seed_baselines") or {}).items()])
    return OptimizeResult(
        benchmark=name, run_dir=out, best=final["best"],
        workflow=rd.final_workflow.read_text(encoding="utf-8"),
        valid_accuracy=final.get("valid_accuracy"), test_accuracy=final.get("test_accuracy"),
        test_n=final.get("test_n"), dollars=final.get("dollars") or 0.0,
        cached_dollars=final.get("cached_dollars"),
        seed_baselines=final.get("seed_baselines") or {}, metrics=rd.load_metrics(),
        final=final, executor=info)


# -- collect ------------------------------------------------------------------------------------


@dataclass
class CollectResult:
    """RLAO trajectories: one Parquet row per candidate workflow (docs/TRAJECTORIES.md)."""

    out_dir: Path
    rows: int
    episodes: int
    turns: dict[str, int]
    wall_s: float
    executor: dict | None = None

    @property
    def trajectories(self) -> Path:
        return self.out_dir / "trajectories"

    @property
    def report(self) -> Path:
        return self.out_dir / "report.md"

    def table(self) -> pyarrow.Table:
        """Every row as one Arrow table."""
        from w4s_ray.rlao.trajectories import read_table

        return read_table(self.trajectories)


@_outside_event_loop
def collect(cfg: ConfigLike = None, *, benchmarks: list[str] | str | None = None,
            episodes: int | None = None, turns: int | None = None,
            out: str | os.PathLike | None = None, resume: bool = False, fresh: bool = False,
            progress: bool | None = None, overrides: Overrides = None) -> CollectResult:
    """RLAO collection over `benchmarks` (a list or "a,b"; default: the config's) into `out`
    (default <run_dir>/collect), episodes in parallel on Ray. `resume` continues a stopped
    collection; `fresh` discards one and starts over."""
    from w4s_ray.benchmarks import check_benchmarks

    cfg = config(cfg, overrides)
    if isinstance(benchmarks, str):
        benchmarks = benchmarks.split(",")
    names = check_benchmarks(benchmarks if benchmarks is not None else cfg.benchmarks)
    for flag, val in (("episodes", episodes), ("turns", turns)):
        if val is not None and val < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {val}")
    _check_restart(resume, fresh)
    where = str(out) if out else storage.join(cfg.run_dir, "collect")
    with storage.staged(where, cfg.storage, what="--out" if out else "run_dir") as st:
        return _collect(cfg, names, st, episodes=episodes, turns=turns, resume=resume,
                        fresh=fresh, progress=progress)


def _collect(cfg: ExperimentConfig, names: list[str], st: storage.Stage, *,
             episodes: int | None, turns: int | None, resume: bool, fresh: bool,
             progress: bool | None) -> CollectResult:
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.executor.preflight import check_executor
    from w4s_ray.meta_agent import check_meta_agent, preflight_meta_agent
    from w4s_ray.rlao.runs import preflight
    from w4s_ray.runtime.collect import collect as run_collect
    from w4s_ray.runtime.ray_init import ray_session

    out_dir = st.path  # a URI out: the local staging copy, synced after every turn
    if not fresh:
        preflight(out_dir, cfg, resume)
    for name in names:  # missing data, meta-agent or a failing executor: one line, before Ray
        get_benchmark(name, data_dir=cfg.data_dir()).check_files()
    check_meta_agent(cfg)
    tracking.check(cfg)
    info = check_executor(cfg.executor)
    preflight_meta_agent(cfg)
    if fresh:
        from w4s_ray.rlao.runs import RunDir

        RunDir(out_dir).clear()
    with tracking.run(cfg, "collect", ",".join(names)) as tr, ray_session(cfg.ray):
        tr.params({"benchmarks": ",".join(names), "out": out_dir.resolve()})
        try:
            summary = run_collect(cfg, names, out_dir, episodes=episodes, turns=turns,
                                  resume=resume, progress=_progress(progress), executor=info,
                                  on_turn=st.sync)
            tr.metrics({"rows": summary["rows"], "episodes": summary["episodes"]})
        finally:
            from w4s_ray.rlao.runs import RunDir

            metrics = RunDir(out_dir).load_metrics()
            for eid in sorted({m["episode_id"] for m in metrics}):
                tracking.log_turns(tr, [m for m in metrics if m["episode_id"] == eid],
                                   prefix=f"{eid}/")
            tr.artifacts([out_dir / "report.md", out_dir / "cost.json",
                          *sorted(out_dir.glob("*.png"))])
    return CollectResult(out_dir, summary["rows"], summary["episodes"], summary["turns"],
                         summary["wall_s"], info)


# -- train --------------------------------------------------------------------------------------


@_outside_event_loop
def train(cfg: ConfigLike = None, *, data: str | os.PathLike | None = None,
          base_model: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
          resume: bool = False, fresh: bool = False, overwrite: bool = False,
          overrides: Overrides = None) -> TrainResult:
    """RWR on trajectory Parquet as a Ray Train job. `data`, `base_model`, `out` override
    `train.data`, `train.base_model`, `train.out_dir`; `resume` continues from the latest
    checkpoint, `fresh` (`overwrite` is its older name) discards an earlier run there. The result's `model_dir` is the trained
    checkpoint (a Hugging Face directory: `meta_agent.model` / `serve.model`)."""

    cfg = config(cfg, overrides)
    for key, value in (("data", data), ("base_model", base_model), ("out_dir", out)):
        if value:
            cfg = apply_overrides(cfg, {f"train.{key}": str(value)})
    _check_restart(resume, fresh or overwrite)
    if storage.scheme(cfg.train.data):  # trajectories on a bucket: read a local copy
        cfg = apply_overrides(cfg, {"train.data": str(storage.fetch(
            cfg.train.data, cfg.storage, what="train.data"))})
    where = cfg.train.out_dir
    # A URI: Ray Train checkpoints go there directly (its storage_path); the rest of out_dir
    # (examples, model, log, plots) is written to a local copy and synced.
    with storage.staged(where, cfg.storage, what="train.out_dir", exclude=("ray",)) as st:
        local = cfg.model_copy(update={"train": cfg.train.model_copy(
            update={"out_dir": str(st.path)})})
        return _train(local, resume=resume, overwrite=fresh or overwrite,
                      ray_storage=storage.join(where, "ray") if st.remote else None)


def _train(cfg: ExperimentConfig, *, resume: bool, overwrite: bool,
           ray_storage: str | None = None) -> TrainResult:
    from w4s_ray.runtime.ray_init import ray_session
    from w4s_ray.runtime.train_job import run_training

    tracking.check(cfg)
    with tracking.run(cfg, "train", Path(cfg.train.out_dir).name) as tr, \
            ray_session(cfg.ray, start=False):  # run_training starts Ray after its checks
        tr.params({f"train.{k}": v for k, v in cfg.train.model_dump(mode="json").items()})
        res = run_training(cfg, resume=resume, overwrite=overwrite, ray_storage=ray_storage)
        for rec in res.history:
            tr.metrics({k: rec.get(k) for k in ("loss", "ce", "lr", "action_tokens")},
                       step=int(rec["step"]))
        tr.artifacts([res.out_dir / "train_summary.md", res.out_dir / "train_log.jsonl",
                      *sorted(res.out_dir.glob("*.png"))])
        return res


# -- sweep --------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """Seed baselines + W4S on many benchmarks; `table` is the report's numbers."""

    run_dir: Path
    report: Path
    status: dict[str, dict]
    failed: list[str]
    wall_s: float
    table: pandas.DataFrame = field(repr=False)
    executor: dict | None = None


def sweep_table(run_dir: str | os.PathLike, benchmarks: list[str]) -> pandas.DataFrame:
    """One row per benchmark: status, W4S test/valid, one `baseline:<method>` column per seed
    baseline (test), dollars, wall time; metrics as fractions in [0, 1]."""
    import pandas as pd

    from w4s_ray.sweep.layout import SweepLayout
    from w4s_ray.sweep.report import collect_results

    results = collect_results(SweepLayout(Path(run_dir)), benchmarks)
    rows = []
    for b, r in results.items():
        row = {"benchmark": b, "status": r["status"], "w4s_test": r["w4s_test"],
               "w4s_valid": r["w4s_valid"], "w4s_best": r["w4s_best"], "turns": r["turns"],
               "test_n": r["test_n"]}
        row.update({f"baseline:{m}": v for m, v in r["baselines"].items()})
        row.update(usd=r["usd"], baseline_usd=r["baseline_usd"], w4s_usd=r["w4s_usd"],
                   cached_usd=r["cached_usd"], wall_s=r["wall_s"], error=r["error"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("benchmark") if rows else pd.DataFrame()


@_outside_event_loop
def sweep(cfg: ConfigLike = None, *, benchmarks: list[str] | str | None = None,
          resume: bool = False, fresh: bool = False, progress: bool | None = None,
          overrides: Overrides = None) -> SweepResult:
    """Baselines + W4S on `benchmarks` (default: the config's) in parallel under <run_dir>
    (`resume` continues a stopped sweep; `fresh` discards one and starts over).
    A benchmark that fails is in `failed` (the others complete); a spent budget or an endpoint
    that cannot serve the run raises after the report is written."""

    cfg = config(cfg, overrides)
    if isinstance(benchmarks, str):
        benchmarks = benchmarks.split(",")
    if benchmarks is not None:
        benchmarks = [b.strip() for b in benchmarks if b.strip()]
        if not benchmarks:
            raise ConfigError("--benchmarks: no benchmark names given")
    _check_restart(resume, fresh)
    with storage.staged(cfg.run_dir, cfg.storage) as st:
        # A URI: the sweep runs in the local staging copy (its tasks run on this node).
        cfg = cfg.model_copy(update={"run_dir": str(st.path)})
        return _sweep(cfg, benchmarks, resume=resume, fresh=fresh, progress=progress)


def _sweep(cfg: ExperimentConfig, benchmarks: list[str] | None, *, resume: bool, fresh: bool,
           progress: bool | None) -> SweepResult:
    from w4s_ray.runtime.sweep import run_sweep

    tracking.check(cfg)
    with tracking.run(cfg, "sweep", cfg.name) as tr:
        out = run_sweep(cfg, benchmarks, resume=resume, fresh=fresh,
                        progress=_progress(progress))
        table = sweep_table(out["run_dir"], list(out["status"]))
        root = Path(out["run_dir"])
        for b, row in table.iterrows():
            tr.metrics({f"{b}/{k}": v for k, v in row.items()})
        tr.metrics({"failed": len(out["failed"]), "wall_s": out["wall_s"]})
        table.to_csv(root / "sweep_table.csv")
        flat = table.reset_index()
        tr.table("sweep", [str(c) for c in flat.columns],
                 flat.astype(object).where(flat.notna(), None).values.tolist())
        tr.artifacts([root / "sweep_report.md", root / "sweep_table.csv",
                      *sorted(root.glob("*.png"))])
    return SweepResult(root, Path(out["report"]), out["status"], out["failed"],
                       out["wall_s"], table, out.get("executor"))


# -- report -------------------------------------------------------------------------------------


def report(path: str | os.PathLike) -> tuple[str, Path]:
    """The report of any run directory (optimize, collect, sweep, train, compare, ADAS/AFlow)
    written again from its files: (kind, the report's path). `w4s report DIR`."""
    from w4s_ray.reports import write_report

    return write_report(path)


# -- evaluate -----------------------------------------------------------------------------------


def read_workflow(path: str | os.PathLike) -> str:
    """The workflow code in a file (plain Python, or the last fenced block defining solver)."""
    from w4s_ray.workflow.errors import WorkflowError
    from w4s_ray.workflow.extract import check_workflow

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"workflow file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot read workflow file {path}: {exc}") from None
    try:
        # A .py file is Python whatever its strings hold (a prompt may show a ``` fence).
        return check_workflow(text) if p.suffix == ".py" else workflow_code(text)
    except WorkflowError as exc:
        raise WorkflowError(f"{path}: {exc}") from None


def workflow_code(text: str) -> str:
    """Workflow source from plain Python or a reply holding it in a fenced block: text that is
    itself a Python module defining `solver` is the workflow, even when its strings hold ```
    fences; anything else is read as a chat reply."""
    from w4s_ray.workflow.errors import WorkflowError
    from w4s_ray.workflow.extract import check_workflow, extract_workflow

    if "```" not in text:
        return check_workflow(text)
    try:
        return check_workflow(text)
    except WorkflowError:
        return extract_workflow(text)


@_outside_event_loop
def evaluate(workflow: str | os.PathLike, cfg: ConfigLike = None, *,
             benchmark: str | None = None, split: str = "valid", limit: int | None = None,
             seed: int = 0, ray: bool = False, progress: bool | None = None,
             overrides: Overrides = None, executor_info: dict | None = None) -> EvalResult:
    """One workflow on a benchmark split: an `EvalResult` with per-item `item_ids`, `scores`,
    `answers`, `item_errors`, and accuracy, cost, calls. `workflow` is source text defining
    solver(agent, task) or a file path. Without `ray` it runs in this process (the workflow
    still in its sandbox child); with `ray` on an evaluator actor."""
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.executor.preflight import check_executor
    from w4s_ray.workflow.evaluate import EvalRequest

    cfg = config(cfg, overrides)
    if isinstance(workflow, os.PathLike) or ("\n" not in str(workflow)
                                             and str(workflow).endswith((".py", ".md", ".txt"))):
        code = read_workflow(workflow)
    else:
        code = workflow_code(str(workflow))
    if split not in ("valid", "test"):
        raise DataError(f"split must be valid or test, got {split!r}")
    bm = get_benchmark(benchmark or cfg.benchmark, cfg.data_dir())
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be >= 1, got {limit}")
    limit = limit if limit is not None else cfg.eval.limit
    bm.load(split)  # a missing/corrupt data file is reported before anything starts
    info = executor_info or check_executor(cfg.executor)  # a fatal endpoint stops us here
    req = EvalRequest(code=code, benchmark=bm.name, split=split, limit=limit, seed=seed,
                      tag="api")
    if ray:
        from w4s_ray.runtime.evaluators import EvaluatorPool
        from w4s_ray.runtime.ray_init import ray_session

        with ray_session(cfg.ray):
            pool = EvaluatorPool(cfg, num_evaluators=1)
            try:  # a user error in the actor (e.g. ExecutorFatal) comes back as the plain error
                return pool.evaluate([req])[0]
            finally:
                pool.shutdown()
    return asyncio.run(_evaluate_here(req, bm, cfg, quiet=not _progress(progress), info=info))


async def _evaluate_here(req, bm, cfg, *, quiet: bool, info: dict | None = None):
    import sys

    from tqdm import tqdm

    from w4s_ray.executor.client import ExecutorClient
    from w4s_ray.executor.preflight import simulated_note
    from w4s_ray.workflow.evaluate import evaluate, select_items

    total = len(select_items(bm, req))
    with ExecutorClient(cfg.executor) as client, tqdm(
        total=total, desc=f"{bm.name}/{req.split}{simulated_note(info)}",
        unit="item", disable=quiet or None, file=sys.stderr,
    ) as bar:
        return await evaluate(req, bm, client, cfg.sandbox, cfg.eval, progress=bar.update)
