"""Run directories, exact resume, and the `optimize` driver (no Ray: evaluator passed in).

Layout of a run directory (optimize and collect share it):

    config.yaml              the resolved config of the first start (resume checks it)
    seeds/<benchmark>.json   seed workflows' validation results (evaluated once, reused on resume)
    trajectories/            part-<episode>-<turn>.parquet, one per completed turn
    workflows/               turn_XX_cand_Y.py for every candidate with code; seed_<name>.py
    metrics.jsonl            one line per completed turn (rewritten whole, never appended)
    cost.json                executor dollars/calls (seeds, candidates, test), what cache hits
                             would have cost, meta-agent usage
    executor.json            the executor the run talked to (endpoint, price model, simulated?)
    final_workflow.py, final.json   (optimize) the best workflow by validation and its test score
    report.md, curve.png     (see w4s_ray.report)

Resume: the rows in `trajectories/` are the truth. A resumed run reads them (a corrupt file is a
`DataError` naming it; nothing is deleted), replays the decision process to the last completed
turn and continues; turn seeds are derived from (seed, run id, episode, turn), so with a
deterministic meta-agent and the executor cache the rows equal an uninterrupted run's.
Everything but the Parquet parts is derived state and is rewritten from the rows.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from w4s_ray.config import ExperimentConfig, dump_config
from w4s_ray.errors import BudgetExceeded, ConfigError, DataError, W4SError
from w4s_ray.rlao import trajectories as traj
from w4s_ray.rlao.evaluation import EvalJob, Evaluator
from w4s_ray.rlao.loop import Episode, EpisodeSettings, TaskSpec, TurnResult, turn_metrics
from w4s_ray.utils.io import atomic_write_json, atomic_write_text

# Settings that change what a turn means; resuming with a different value would mix runs.
RESUME_KEYS = [
    "seed", "rlao.candidates", "rlao.history_window", "rlao.max_repairs", "rlao.reward",
    "rlao.low_accuracy_threshold", "rlao.low_accuracy_penalty", "rlao.racing.enabled",
    "rlao.run_id", "meta_agent.backend", "meta_agent.model", "meta_agent.seed",
    "meta_agent.temperature", "executor.model", "eval.limit", "eval.scoring", "name",
]


def _get(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def valid_seed_records(records) -> bool:
    """Seed results as `save_seeds` writes them: a list of {name, code, val_accuracy, ...}."""
    return isinstance(records, list) and all(
        isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("code"), str)
        and isinstance(r.get("val_accuracy"), (int, float)) and isinstance(r.get("feedback"), str)
        for r in records)


def episode_id(benchmark: str, index: int) -> str:
    return f"{benchmark}-e{index:02d}"


class RunDir:
    def __init__(self, path: str | Path, *, single_episode: bool = False) -> None:
        self.path = Path(path)
        # optimize keeps workflows/turn_XX_cand_Y.py flat; collect nests them per episode.
        self.single_episode = single_episode
        self.config = self.path / "config.yaml"
        self.seeds = self.path / "seeds"
        self.trajectories = self.path / "trajectories"
        self.workflows = self.path / "workflows"
        self.metrics = self.path / "metrics.jsonl"
        self.cost = self.path / "cost.json"
        self.final = self.path / "final.json"
        self.final_workflow = self.path / "final_workflow.py"
        self.executor = self.path / "executor.json"

    def has_run(self) -> bool:
        return self.config.exists() or bool(traj.part_files(self.trajectories))

    def prepare(self, cfg: ExperimentConfig, resume: bool) -> None:
        """Create or reopen the directory; refuse to mix runs or overwrite results."""
        self.check_reuse(cfg, resume)
        self.path.mkdir(parents=True, exist_ok=True)
        for d in (self.seeds, self.trajectories, self.workflows):
            d.mkdir(exist_ok=True)
        if not self.config.exists():
            tmp = self.path / ".config.yaml.tmp"
            dump_config(cfg, tmp)
            tmp.replace(self.config)

    def record_executor(self, info: dict | None) -> None:
        """What the preflight found (reports say "simulated" from it); None: leave as is."""
        if info is not None:
            atomic_write_json(self.executor, info)

    def check_reuse(self, cfg: ExperimentConfig, resume: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"run dir {self.path} exists and is not a directory")
        if self.has_run():
            if not resume:
                raise ConfigError(
                    f"run dir {self.path} already holds a run; pass --resume to continue it "
                    "or choose another directory"
                )
            self._check_same(cfg)

    def _check_same(self, cfg: ExperimentConfig) -> None:
        if not self.config.exists():
            return
        try:
            old = yaml.safe_load(self.config.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            raise DataError(f"{self.config}: malformed YAML; cannot check the resumed run") from None
        new = cfg.model_dump(mode="json")
        if isinstance(_get(old, "eval"), dict) and _get(old, "eval.scoring") is None:
            old["eval"]["scoring"] = "lenient"  # runs from before eval.scoring scored leniently
        for key in RESUME_KEYS:
            if _get(old, key) != _get(new, key):
                raise ConfigError(
                    f"--resume: {key} is {_get(new, key)!r} but the run in {self.path} used "
                    f"{_get(old, key)!r}"
                )

    # -- seeds ------------------------------------------------------------------------------
    def seed_file(self, benchmark: str) -> Path:
        return self.seeds / f"{benchmark}.json"

    def load_seeds(self, benchmark: str) -> list[dict] | None:
        p = self.seed_file(benchmark)
        if not p.exists():
            return None
        try:
            records = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            records = None
        if not valid_seed_records(records):
            raise DataError(f"{p}: corrupt seed results (delete it to re-evaluate)")
        return records

    def save_seeds(self, benchmark: str, records: list[dict]) -> None:
        atomic_write_json(self.seed_file(benchmark), records)
        for r in records:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", r["name"]).strip("_") or "seed"
            atomic_write_text(self.workflows / f"seed_{benchmark}_{safe}.py", r["code"])

    # -- turns ------------------------------------------------------------------------------
    def read_rows(self) -> list[dict]:
        return traj.read_rows(self.trajectories)

    def write_turn(self, episode: str, result: TurnResult) -> None:
        """Workflows first, then the Parquet part (the commit point), then derived metrics."""
        for r in result.rows:
            if r["code"]:
                name = f"turn_{result.turn:02d}_cand_{r['candidate']}.py"
                sub = self.workflows if self.single_episode else self.workflows / episode
                atomic_write_text(sub / name, r["code"])
        traj.write_turn(self.trajectories, episode, result.turn, result.rows)
        self.append_metrics(result.metrics)

    def load_metrics(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        out = []
        for line in self.metrics.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # metrics are derived; a torn line is rebuilt from the rows
        return out

    def append_metrics(self, metrics: dict) -> None:
        keep = [m for m in self.load_metrics()
                if (m["episode_id"], m["turn"]) != (metrics["episode_id"], metrics["turn"])]
        keep.append(metrics)
        self.write_metrics(keep)

    def write_metrics(self, metrics: list[dict]) -> None:
        metrics = sorted(metrics, key=lambda m: (m["episode_id"], m["turn"]))
        atomic_write_text(self.metrics, "".join(json.dumps(m, sort_keys=True) + "\n"
                                                 for m in metrics))

    def rebuild_metrics(self, rows: list[dict], best_by_turn: dict[tuple[str, int], float]) -> None:
        """After a resume: metrics from the rows, keeping wall times already measured."""
        old = {(m["episode_id"], m["turn"]): m for m in self.load_metrics()}
        groups: dict[tuple[str, int], list[dict]] = {}
        for r in rows:
            groups.setdefault((r["episode_id"], r["turn"]), []).append(r)
        out = []
        for key, grp in groups.items():
            m = turn_metrics(grp, best_by_turn.get(key, 0.0))
            prev = old.get(key, {})
            m["wall_s"] = prev.get("wall_s")
            m["racing_calls_saved"] = prev.get("racing_calls_saved", 0.0)
            out.append(m)
        self.write_metrics(out)


def preflight(run_dir: str | Path, cfg: ExperimentConfig, resume: bool, *,
              require_run: bool | None = None) -> None:
    """The checks of `RunDir.prepare` plus reading every row, without writing anything.

    `require_run` (default: `resume`): the directory must hold a run, so `--resume` with a
    mistyped directory is an error instead of a silent fresh start."""
    rd = RunDir(run_dir)
    rd.check_reuse(cfg, resume)
    if (resume if require_run is None else require_run) and not rd.has_run():
        raise ConfigError(f"--resume: {rd.path} holds no run to resume (no config.yaml, no "
                          f"trajectories); check the directory, or drop --resume to start one")
    rd.read_rows()


def replay_episode(ep: Episode, rows: list[dict]) -> dict[tuple[str, int], float]:
    """Replay an episode's rows turn by turn; returns best-so-far after each turn."""
    best: dict[tuple[str, int], float] = {}
    mine = [r for r in rows if r["episode_id"] == ep.episode_id]
    for turn in sorted({r["turn"] for r in mine}):
        ep.replay([r for r in mine if r["turn"] == turn])
        best[(ep.episode_id, turn)] = ep.state.best_accuracy
    return best


def cost_summary(rows: list[dict], seed_records: list[dict], extra_usd: float = 0.0,
                 extra_calls: int = 0, meta_usage=None, extra_cached_usd: float = 0.0) -> dict:
    """Executor dollars spent per part, and `cached_usd`: what the samples served from the
    completion cache would have cost (spent nothing; rows from older files count 0)."""
    seeds_usd = sum(r.get("cost_usd", 0.0) for r in seed_records)
    cand_usd = sum(r["cost_usd"] for r in rows)
    cached = (sum(r.get("cached_usd") or 0.0 for r in seed_records)
              + sum(r.get("cached_usd") or 0.0 for r in rows) + extra_cached_usd)
    out = {
        "seeds_usd": seeds_usd, "candidates_usd": cand_usd, "test_usd": extra_usd,
        "total_usd": seeds_usd + cand_usd + extra_usd, "cached_usd": cached,
        "calls": sum(r.get("calls", 0) for r in seed_records)
        + sum(r["eval_calls"] for r in rows) + extra_calls,
    }
    if meta_usage is not None:
        out["meta_agent_this_process"] = {
            "calls": meta_usage.calls, "prompt_tokens": meta_usage.prompt_tokens,
            "completion_tokens": meta_usage.completion_tokens, "cost_usd": meta_usage.cost_usd,
        }
    return out


def optimize(
    cfg: ExperimentConfig,
    spec: TaskSpec,
    run_dir: str | Path,
    evaluator: Evaluator,
    meta_agent,
    *,
    turns: int | None = None,
    resume: bool = False,
    progress: bool = True,
    on_turn: Callable[[TurnResult], None] | None = None,
    executor: dict | None = None,
) -> dict:
    """`w4s optimize`: one episode, then the best workflow (by validation) once on test.

    `executor`: what the executor preflight found (`ExecutorClient.describe()`), recorded in
    executor.json so reports and the progress bar can say "simulated"."""
    from tqdm.auto import tqdm

    from w4s_ray.report import write_report

    t_start = time.monotonic()
    rd = RunDir(run_dir, single_episode=True)
    rd.prepare(cfg, resume)
    rd.record_executor(executor)
    turns = cfg.rlao.turns if turns is None else turns
    rows = rd.read_rows()  # before any work: a corrupt file stops us here
    settings = EpisodeSettings.from_config(cfg)
    eid = episode_id(spec.name, 0)
    ep = Episode(spec, settings, eid, evaluator, meta_agent)
    seeds = rd.load_seeds(spec.name)
    if seeds is None:
        seeds = ep.evaluate_seeds()
        rd.save_seeds(spec.name, seeds)
    ep.start(seeds)
    best_by_turn = replay_episode(ep, rows)
    if rows:
        rd.rebuild_metrics(rows, best_by_turn)
    if rd.final.exists() and ep.state.turn >= turns:
        try:
            done = json.loads(rd.final.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            done = None  # derived state: a torn final.json is recomputed below
        if isinstance(done, dict) and "test_accuracy" in done:
            write_report(rd.path)
            return done
    rd.final.unlink(missing_ok=True)  # a longer resumed run supersedes an earlier final

    sim = " (simulated executor)" if (executor or {}).get("simulated") else ""
    bar = tqdm(total=turns, initial=min(ep.state.turn, turns), desc=f"optimize {spec.name}{sim}",
               unit="turn", disable=not progress)
    try:
        while ep.state.turn < turns:
            res = ep.run_turn()
            rd.write_turn(eid, res)
            rows += res.rows
            bar.update(1)
            bar.set_postfix(best=f"{ep.state.best_accuracy:.3f}")
            if on_turn is not None:
                on_turn(res)
    except W4SError:
        # Budget spent, executor or meta-agent unreachable: completed turns are on disk; leave
        # the cost and report consistent with them, then let the CLI print the one-line error.
        atomic_write_json(rd.cost, cost_summary(rows, seeds, meta_usage=meta_agent.usage))
        write_report(rd.path)
        raise
    finally:
        bar.close()

    best = ep.state.best
    final = _final_evaluation(cfg, spec, evaluator, best, seeds, rows, rd, meta_agent)
    final["wall_s"] = round(time.monotonic() - t_start, 2)
    final["turns"] = ep.state.turn
    final["simulated"] = bool(executor["simulated"]) if executor else None
    atomic_write_text(rd.final_workflow, best.code if best else "")
    atomic_write_json(rd.final, final)
    write_report(rd.path)
    return final


def _final_evaluation(cfg, spec, evaluator, best, seeds, rows, rd, meta_agent) -> dict:
    """The best workflow by validation, evaluated ONCE on test (+ seed baselines for the report)."""
    if best is None:
        raise DataError(f"{spec.name}: no workflow was evaluated; nothing to test")
    jobs = [EvalJob(best.code, spec.name, "test", _test_ids(cfg, evaluator, spec), tag="final")]
    seed_jobs = seeds if cfg.rlao.report_seed_test else []
    jobs += [EvalJob(s["code"], spec.name, "test", jobs[0].item_ids, tag=f"seed-test:{s['name']}")
             for s in seed_jobs]
    try:
        outs = evaluator.evaluate(jobs)
        seed_test = {s["name"]: o.accuracy for s, o in zip(seed_jobs, outs[1:], strict=True)}
    except BudgetExceeded:
        atomic_write_json(rd.cost, cost_summary(rows, seeds, meta_usage=meta_agent.usage))
        raise
    test_usd = sum(o.cost_usd for o in outs)
    test_calls = sum(o.calls for o in outs)
    cost = cost_summary(rows, seeds, test_usd, test_calls, meta_agent.usage,
                        sum(o.cached_usd for o in outs))
    atomic_write_json(rd.cost, cost)
    final = {
        "benchmark": spec.name,
        "scoring": cfg.eval.scoring,
        "best": best.name,
        "best_turn": best.turn,
        "best_candidate": best.candidate,
        "valid_accuracy": best.val_accuracy,
        "test_accuracy": outs[0].accuracy,
        "test_n": outs[0].n,
        "test_error": outs[0].error,
        "dollars": cost["total_usd"],
        "cached_dollars": cost["cached_usd"],
        "executor_calls": cost["calls"],
        "seed_baselines": {
            s["name"]: {"valid_accuracy": s["val_accuracy"],
                        "test_accuracy": seed_test.get(s["name"])}
            for s in seeds
        },
    }
    return final


def _test_ids(cfg, evaluator, spec) -> tuple[str, ...] | None:
    if cfg.rlao.test_limit is None:
        return None
    return tuple(evaluator.item_ids(spec.name, "test")[: cfg.rlao.test_limit])
