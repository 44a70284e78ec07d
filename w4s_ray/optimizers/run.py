"""`w4s optimize --method adas|aflow`: one search on one benchmark, persisted, resumable, then
the chosen workflow once on test (plain code, no Ray: the evaluator and meta model are passed in).

Run directory (shares `config.yaml`, `executor.json`, `final.json`, `final_workflow.py`,
`cost.json`, `report.md`, `curve.png` with W4S runs, `rlao.runs.RunDir` checks reuse):

    records.jsonl        one JSON record per completed step (ADAS: initial entry, generation;
                         AFlow: round, skipped round), appended and fsynced before the next step
    workflows/           every evaluated workflow (<step>.py)
    status.json          "running" | "budget" | "failed" | "done", with the one-line reason

Resume (`--resume`): the records are the truth. A kill -9 can leave a torn last line; it is
dropped (that step is redone), a corrupt line elsewhere is a DataError naming the file. The
loops rebuild their state from the records and re-ask the same seeded questions; the executor
cache replays the same samples. A budget stop (`BudgetExceeded` from the pool) or an endpoint
failure leaves records, cost.json, status.json and report.md consistent, then re-raises.

Selection is by validation only (ADAS `best_entry`, AFlow `best_round`); the chosen workflow
is evaluated once on the test items (`rlao.test_limit`), nothing else touches test.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import EllipsisType

from tqdm.auto import tqdm

from w4s_ray.config import ExperimentConfig
from w4s_ray.errors import BudgetExceeded, ConfigError, DataError, W4SError
from w4s_ray.optimizers import adas, aflow
from w4s_ray.optimizers.base import usage_snapshot
from w4s_ray.optimizers.fitness import bootstrap_fitness
from w4s_ray.optimizers.pool import SeamEvaluate
from w4s_ray.rlao.evaluation import EvalRequest, Evaluator
from w4s_ray.rlao.optimize import final_test_ids
from w4s_ray.rlao.runs import RunDir, read_json
from w4s_ray.utils.io import atomic_write_json, atomic_write_text

METHODS = ("adas", "aflow")


class SearchDir(RunDir):
    """A run directory of an ADAS/AFlow search (module docstring)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, single_episode=True)
        self.records = self.path / "records.jsonl"
        self.status = self.path / "status.json"

    def has_run(self) -> bool:
        return super().has_run() or self.records.exists()

    def clear(self) -> None:
        super().clear()
        self.records.unlink(missing_ok=True)
        self.status.unlink(missing_ok=True)

    def read_records(self) -> list[dict]:
        if not self.records.exists():
            return []
        raw = self.records.read_bytes()
        lines = raw.split(b"\n")
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if i == len(lines) - 1:  # the torn tail of a killed append: redo that step
                    break
                raise DataError(f"{self.records}: line {i + 1} is not JSON (the run's records "
                                "are corrupt; start a new run directory)") from None
            if not isinstance(rec, dict):
                raise DataError(f"{self.records}: line {i + 1} is not a record")
            out.append(rec)
        return out

    def rewrite_records(self, records: list[dict]) -> None:
        """After dropping a torn tail: the file holds exactly the records kept."""
        atomic_write_text(self.records, "".join(json.dumps(r) + "\n" for r in records))

    def append_record(self, record: dict, index: int) -> None:
        code = _record_code(record)
        if code:
            atomic_write_text(self.workflows / f"{index:03d}_{_step_name(record)}.py", code)
        with open(self.records, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def set_status(self, state: str, error: str | None = None) -> None:
        atomic_write_json(self.status, {"status": state, "error": error})

    def load_status(self) -> dict:
        return read_json(self.status, torn_ok=True) or {}


def _step_name(r: dict) -> str:
    if r["type"] == "initial":
        return f"initial_{r['index']}"
    if r["type"] == "generation":
        return f"generation_{r['generation']}"
    return f"round_{r['round']}"


def _record_code(r: dict) -> str:
    if r["type"] == "generation":
        return (r.get("solution") or {}).get("code") or ""
    return r.get("code") or ""


# -- settings from the config ---------------------------------------------------------------------

def adas_settings(cfg: ExperimentConfig, generations: int | None = None) -> adas.AdasSettings:
    a = cfg.optimizers.adas
    return adas.AdasSettings(
        generations=a.generations if generations is None else generations,
        debug_max=a.debug_max, min_accuracy=a.min_accuracy,
        reflexion_rounds=a.reflexion_rounds, bootstrap_samples=a.bootstrap_samples,
        base_seed=cfg.seed, run_id=cfg.rlao.run_id or cfg.name)


def aflow_settings(cfg: ExperimentConfig, rounds: int | None = None) -> aflow.AflowSettings:
    a = cfg.optimizers.aflow
    return aflow.AflowSettings(
        max_rounds=a.max_rounds if rounds is None else rounds,
        validation_rounds=a.validation_rounds, sample=a.sample, alpha=a.alpha,
        lambda_=a.lambda_, check_convergence=a.check_convergence,
        convergence_top_k=a.convergence_top_k, convergence_z=a.convergence_z,
        convergence_rounds=a.convergence_rounds,
        max_generation_retries=a.max_generation_retries, dry_run_items=a.dry_run_items,
        base_seed=cfg.seed, run_id=cfg.rlao.run_id or cfg.name)


def meta_agent_config(cfg: ExperimentConfig):
    """The meta model section ADAS/AFlow use: `optimizers.meta_agent`, else `meta_agent`."""
    return cfg.optimizers.meta_agent or cfg.meta_agent


def for_meta_agent(cfg: ExperimentConfig) -> ExperimentConfig:
    """`cfg` with `meta_agent` replaced by the optimizers' one (what factories build)."""
    return cfg.model_copy(update={"meta_agent": meta_agent_config(cfg)})


def check_search_meta_agent(cfg: ExperimentConfig) -> None:
    """`check_meta_agent` for the ADAS/AFlow meta model; its errors name the section in use."""
    from w4s_ray.meta_agent import check_meta_agent

    try:
        check_meta_agent(for_meta_agent(cfg))
    except W4SError as exc:
        if cfg.optimizers.meta_agent is None:
            raise
        raise type(exc)(str(exc).replace("meta_agent.", "optimizers.meta_agent.")
                        .replace("meta-agent", "ADAS/AFlow meta model")) from None


class _Search:
    """One method's loop behind one interface: run, best, iterations, finished."""

    def __init__(self, method: str, cfg: ExperimentConfig, bm, meta, evaluate,
                 iterations: int | None) -> None:
        self.method = method
        if method == "adas":
            names = cfg.optimizers.adas.initial
            self.task = adas.AdasTask.from_benchmark(bm, names)
            self.settings = adas_settings(cfg, iterations)
            self.loop = adas.AdasSearch(self.task, self.settings, meta, evaluate)
            self.total = self.settings.generations
        elif method == "aflow":
            self.task = aflow.AflowTask.from_benchmark(bm)
            self.settings = aflow_settings(cfg, iterations)
            self.loop = aflow.AflowSearch(self.task, self.settings, meta, evaluate)
            self.total = self.settings.max_rounds + 1
        else:
            raise ConfigError(f"unknown optimizer method {method!r}; known: w4s, "
                              + ", ".join(METHODS))

    def state(self, records):
        if self.method == "adas":
            return adas.state_after(self.task, records)
        return aflow.state_after(records, self.settings)

    def done_steps(self, records) -> int:
        if self.method == "adas":
            return sum(r["type"] == "generation" for r in records)
        return len(records)

    def finished(self, records) -> bool:
        st = self.state(records)
        if self.method == "adas":
            return st.initialized and st.next_generation > self.settings.generations
        return self.loop.finished(st)

    def best(self, records) -> dict:
        st = self.state(records)
        if self.method == "adas":
            e = adas.best_entry(st)
            return {"name": e["name"], "code": e["code"], "valid_accuracy": e["accuracy"],
                    "iteration": e["generation"], "fitness": e["fitness"]}
        r = aflow.best_round(st)
        return {"name": f"round {r['round']}", "code": r["code"], "valid_accuracy": r["score"],
                "iteration": r["round"], "fitness": None}


def run_search(cfg: ExperimentConfig, method: str, bm, run_dir: str | Path,
               evaluator: Evaluator, meta_agent, *, resume: bool = False,
               progress: bool = True, iterations: int | None = None,
               executor: dict | None = None,
               test_ids: list[str] | None | EllipsisType = ...) -> dict:
    """Run or resume `method` on `bm` in `run_dir`; returns final.json's content."""
    t_start = time.monotonic()
    rd = SearchDir(run_dir)
    rd.prepare(cfg, resume)
    rd.record_executor(executor)
    records = rd.read_records()
    rd.rewrite_records(records)  # drop a torn tail now, so appends continue a clean file
    evaluate = SeamEvaluate(evaluator, tag=method)
    search = _Search(method, cfg, bm, meta_agent, evaluate, iterations)
    search.state(records)  # records from another task or with a gap: DataError before work
    done = read_json(rd.final, torn_ok=True)
    if isinstance(done, dict) and "test_accuracy" in done and search.finished(records):
        write_search_report(rd.path)
        return done
    rd.final.unlink(missing_ok=True)

    sim = " (simulated executor)" if (executor or {}).get("simulated") else ""
    bar = tqdm(total=search.total, initial=min(search.done_steps(records), search.total),
               desc=f"{method} {bm.name}{sim}", unit="step", disable=not progress)

    last = [time.monotonic()]

    def on_record(rec: dict) -> None:
        # ADAS's initial entries are evaluated in one call and carry no wall time: the batch's
        # time goes to the first of them, so summed step times are the search's wall time.
        now = time.monotonic()
        rec.setdefault("wall_s", round(now - last[0], 3))
        last[0] = now
        records.append(rec)
        rd.append_record(rec, len(records))
        if rec["type"] != "initial":
            bar.update(1)

    rd.set_status("running")
    usage0 = usage_snapshot(meta_agent)
    try:
        search.loop.run(list(records), on_record)
    except W4SError as exc:
        state = "budget" if isinstance(exc, BudgetExceeded) else "failed"
        rd.set_status(state, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        atomic_write_json(rd.cost, search_cost(records, evaluate.cached_usd))
        write_search_report(rd.path)
        raise
    finally:
        bar.close()

    best = search.best(records)
    if test_ids is ...:
        test_ids = final_test_ids(cfg, evaluator, bm.name)
    t_test = time.monotonic()
    try:
        out = evaluator.evaluate([EvalRequest(best["code"], bm.name, "test", item_ids=test_ids,
                                              tag=f"{method}-final")])[0]
    except W4SError as exc:
        rd.set_status("budget" if isinstance(exc, BudgetExceeded) else "failed",
                      str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        atomic_write_json(rd.cost, search_cost(records, evaluate.cached_usd))
        write_search_report(rd.path)
        raise
    test_wall = time.monotonic() - t_test
    cost = search_cost(records, evaluate.cached_usd + out.cached_usd, out.cost_usd, out.calls)
    atomic_write_json(rd.cost, cost)
    final = {
        "benchmark": bm.name, "method": method, "scoring": cfg.eval.scoring,
        "best": best["name"], "best_iteration": best["iteration"],
        "valid_accuracy": best["valid_accuracy"], "valid_fitness": best["fitness"],
        "test_accuracy": out.accuracy_or_none, "test_n": out.n,
        "test_scores": list(out.scores), "test_error": out.error,
        "test_ci": ci(out.scores, cfg.seed) if out.error is None else None,
        "dollars": cost["total_usd"], "search_usd": cost["search_usd"],
        "test_usd": cost["test_usd"], "cached_dollars": cost["cached_usd"],
        "executor_calls": cost["calls"], "meta_usd": cost["meta_usd"],
        "iterations": search.done_steps(records),
        "converged": bool(getattr(search.state(records), "converged", False)),
        # Measured per step when it ran (so a resumed run adds, not restarts) + the test run.
        "wall_s": round(sum(r.get("wall_s") or 0.0 for r in records) + test_wall, 2),
        "this_invocation_wall_s": round(time.monotonic() - t_start, 2),
        "meta_agent_this_process": {**usage_snapshot(meta_agent),
                                    "since_start": _delta(usage0, meta_agent)},
        "simulated": bool(executor["simulated"]) if executor else None,
    }
    atomic_write_text(rd.final_workflow, best["code"])
    atomic_write_json(rd.final, final)
    rd.set_status("done")
    write_search_report(rd.path)
    return final


def _delta(before: dict, meta) -> dict:
    after = usage_snapshot(meta)
    return {k: round(after[k] - before[k], 9) for k in before}


def ci(scores, seed: int, samples: int = 10_000) -> list[float]:
    """95% bootstrap interval of the mean item score, [low, high] in [0, 1]."""
    fit = bootstrap_fitness(list(scores), seed, samples=samples)
    return [fit.low, fit.high]


def _step_cost(r: dict) -> tuple[float, int]:
    if r["type"] == "initial":
        o = r.get("outcome") or {}
        return float(o.get("cost_usd") or 0.0), int(o.get("calls") or 0)
    if r["type"] == "generation":
        return float(r.get("eval_cost_usd") or 0.0), int(r.get("eval_calls") or 0)
    calls = sum(int(x.get("calls") or 0) for x in r.get("runs") or [])
    return float(r.get("eval_cost_usd") or 0.0), calls


def search_cost(records: list[dict], cached_usd: float = 0.0, test_usd: float = 0.0,
                test_calls: int = 0) -> dict:
    """Executor dollars of the search (from the records) and the test run; meta dollars."""
    search_usd = sum(_step_cost(r)[0] for r in records)
    calls = sum(_step_cost(r)[1] for r in records) + test_calls
    meta = sum(float((r.get("meta_usage") or {}).get("cost_usd") or 0.0) for r in records)
    return {"search_usd": search_usd, "test_usd": test_usd, "total_usd": search_usd + test_usd,
            "cached_usd": cached_usd, "calls": calls, "meta_usd": meta,
            "meta_calls": sum(int((r.get("meta_usage") or {}).get("calls") or 0)
                              for r in records)}


def write_search_report(path: str | Path) -> Path:
    from w4s_ray.optimizers.report import write_report

    return write_report(SearchDir(path))
