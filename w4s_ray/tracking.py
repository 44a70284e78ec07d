"""Experiment tracking: a stage's numbers and files logged to MLflow or W&B (config `tracking`).

Off by default (`tracking.backend: none`); `tracking.backend: mlflow` or `wandb` turns it on
for every stage run through `w4s_ray.api` (so for the CLI too); W&B's side is
`w4s_ray.tracking_wandb` (offline files under the run root by default). Logged per stage:

- optimize: params (benchmark, executor, meta-agent, turns, candidates, limits, scoring), one
  step per completed turn as it completes (best / mean validation accuracy, best so far, mean
  reward, calls, dollars of the turn and cumulative, what cache hits would have cost), then the
  final validation and test metric and dollars, and as artifacts the chosen workflow
  (`final_workflow.py`), `final.json`, `config.yaml`, `report.md` and the plots;
- collect: every episode's turns (`<episode>/best_so_far`, ...), the report and cost;
- train: the loss of every step, the summary and the loss plot;
- sweep: per benchmark W4S and baseline test metrics and dollars, and the table (CSV and
  `sweep_report.md`).

A stage that stops on an error ends its run FAILED with what it had. The URI defaults to a
SQLite file under the run root (`sqlite:///<run_dir>/mlflow.db`, artifacts in
`<run_dir>/mlartifacts`); `tracking.uri` points anywhere MLflow can (a server, Databricks).
MLflow is an optional dependency (`pip install -e .[tracking]`); asking for it without it
installed is a ConfigError before the stage starts. No Ray here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from w4s_ray.config import ExperimentConfig
from w4s_ray.errors import ConfigError
from w4s_ray.storage import local_path


class Tracker:
    """The no-op tracker (tracking off); `MlflowTracker` logs for real."""

    def params(self, params: dict[str, Any]) -> None:
        pass

    def metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        pass

    def artifacts(self, paths: list[Path], folder: str | None = None) -> None:
        pass

    def table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        pass


class MlflowTracker(Tracker):
    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def params(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            self.client.log_param(self.run_id, key, "None" if value is None else str(value)[:500])

    def metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value):
                continue  # None / NaN (not measured) and text are not metrics
            key = re.sub(r"[^\w\-./ ]", ".", key)  # "baseline:cot" -> "baseline.cot"
            self.client.log_metric(self.run_id, key, float(value), step=step or 0)

    def artifacts(self, paths: list[Path], folder: str | None = None) -> None:
        for p in paths:
            if Path(p).is_file():
                self.client.log_artifact(self.run_id, str(p), folder)


def default_uri(cfg: ExperimentConfig) -> str:
    return f"sqlite:///{local_path(cfg.run_dir).resolve() / 'mlflow.db'}"


def check(cfg: ExperimentConfig) -> None:
    """Before a stage starts: the backend asked for is usable."""
    if cfg.tracking.backend == "wandb":
        from w4s_ray import tracking_wandb

        tracking_wandb.check(cfg)
    if cfg.tracking.backend == "mlflow":
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise ConfigError("tracking.backend=mlflow needs MLflow: pip install -e "
                              "'.[tracking]' (or set tracking.backend=none)") from None
        if cfg.tracking.uri is None:  # the default store is a file under run_dir
            from w4s_ray.storage import require_local

            require_local(cfg.run_dir, "run_dir (MLflow's default store; set tracking.uri)")


@contextlib.contextmanager
def run(cfg: ExperimentConfig, stage: str, name: str) -> Iterator[Tracker]:
    """A tracking run around a stage: FINISHED when the block ends, FAILED on an error."""
    check(cfg)
    if cfg.tracking.backend == "none":
        yield Tracker()
        return
    if cfg.tracking.backend == "wandb":
        from w4s_ray import tracking_wandb

        with tracking_wandb.run(cfg, stage, name, base_params(cfg)) as tracker:
            yield tracker
        return
    from mlflow.tracking import MlflowClient

    # MLflow's own INFO lines (creating tables, experiments) are noise on a stage's terminal.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = cfg.tracking.uri or default_uri(cfg)
    if cfg.tracking.uri is None:
        local_path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri)
    exp_name = cfg.tracking.experiment or cfg.name
    exp = client.get_experiment_by_name(exp_name)
    if exp is None:
        where = None
        if cfg.tracking.uri is None:  # else the server decides (a relative ./mlruns would be
            where = (local_path(cfg.run_dir).resolve() / "mlartifacts").as_uri()
        exp_id = client.create_experiment(exp_name, artifact_location=where)
    else:
        exp_id = exp.experiment_id
    mrun = client.create_run(exp_id, run_name=f"{stage}:{name}", tags={"w4s.stage": stage})
    tracker = MlflowTracker(client, mrun.info.run_id)
    tracker.params(base_params(cfg))
    try:
        yield tracker
    except BaseException:
        client.set_terminated(mrun.info.run_id, "FAILED")
        raise
    client.set_terminated(mrun.info.run_id, "FINISHED")


def base_params(cfg: ExperimentConfig) -> dict[str, Any]:
    return {
        "executor.model": cfg.executor.model, "executor.api_base": cfg.executor.api_base,
        "meta_agent.backend": cfg.meta_agent.backend, "meta_agent.model": cfg.meta_agent.model,
        "rlao.turns": cfg.rlao.turns, "rlao.candidates": cfg.rlao.candidates,
        "eval.limit": cfg.eval.limit, "rlao.test_limit": cfg.rlao.test_limit,
        "eval.scoring": cfg.eval.scoring, "seed": cfg.seed,
    }


TURN_KEYS = ("best_val_accuracy", "mean_val_accuracy", "best_so_far", "mean_reward", "calls",
             "cost_usd", "cached_usd", "valid", "repairs")


def log_turns(tracker: Tracker, metrics: list[dict], prefix: str = "") -> None:
    """Per-turn metrics (metrics.jsonl rows), step = turn, with cumulative dollars."""
    spent: dict[str, float] = {}
    for m in sorted(metrics, key=lambda m: (m["episode_id"], m["turn"])):
        log_turn(tracker, m, spent, prefix)


def log_turn(tracker: Tracker, m: dict, spent: dict[str, float], prefix: str = "") -> None:
    spent[m["episode_id"]] = spent.get(m["episode_id"], 0.0) + (m.get("cost_usd") or 0.0)
    values = {f"{prefix}{k}": m.get(k) for k in TURN_KEYS}
    values[f"{prefix}cumulative_usd"] = spent[m["episode_id"]]
    tracker.metrics(values, step=int(m["turn"]))


def run_files(run_dir: Path) -> list[Path]:
    names = ("final_workflow.py", "final.json", "config.yaml", "cost.json", "report.md",
             "metrics.jsonl")
    return [run_dir / n for n in names] + sorted(run_dir.glob("*.png"))


def dump_table(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    return path
