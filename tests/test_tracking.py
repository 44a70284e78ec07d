"""Experiment tracking (`tracking.backend: mlflow`) read back with MLflow's own client: per-turn
metrics with cumulative dollars, a failed stage ends its run FAILED, a missing MLflow is one
error before anything starts; optimize through Ray logs the chosen workflow (slow). And the
Ray dashboard switch (`ray.dashboard`, slow)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import pytest

import w4s_ray as w4s
from w4s_ray import tracking
from w4s_ray.errors import ConfigError


def _client(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    return mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")


def _runs(client, name="w4s"):
    exp = client.get_experiment_by_name(name)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_tracking_off_by_default_touches_nothing(tmp_path):
    cfg = w4s.config(overrides={"run_dir": str(tmp_path / "runs")})
    assert cfg.tracking.backend == "none"
    with tracking.run(cfg, "optimize", "gsm8k") as tr:
        tr.metrics({"x": 1.0}, step=0)
    assert not (tmp_path / "runs").exists()


def test_mlflow_missing_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    cfg = w4s.config(overrides={"tracking.backend": "mlflow", "run_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"needs MLflow: pip install -e '\.\[tracking\]'"):
        tracking.check(cfg)


def test_turns_and_failure_are_logged(tmp_path):
    client = _client(tmp_path)
    cfg = w4s.config(overrides={"tracking.backend": "mlflow", "run_dir": str(tmp_path / "runs"),
                                "name": "exp1"})
    turns = [{"episode_id": "gsm8k-e00", "turn": t, "best_so_far": 0.5 + 0.1 * t,
              "best_val_accuracy": 0.5 + 0.1 * t, "mean_val_accuracy": None,
              "cost_usd": 0.25, "cached_usd": 0.0, "calls": 10} for t in range(3)]
    with pytest.raises(RuntimeError, match="stopped"):
        with tracking.run(cfg, "optimize", "gsm8k") as tr:
            tracking.log_turns(tr, turns)
            raise RuntimeError("stopped")
    (run,) = _runs(client, "exp1")
    assert run.info.status == "FAILED" and run.info.run_name == "optimize:gsm8k"
    assert run.data.params["executor.model"] == cfg.executor.model
    hist = client.get_metric_history(run.info.run_id, "best_so_far")
    assert [(m.step, round(m.value, 6)) for m in hist] == [(0, 0.5), (1, 0.6), (2, 0.7)]
    cum = client.get_metric_history(run.info.run_id, "cumulative_usd")
    assert [m.value for m in cum] == [0.25, 0.5, 0.75]
    assert "mean_val_accuracy" not in run.data.metrics  # None is not logged as a number
    # artifacts go under the run root, not into the working directory
    exp = client.get_experiment_by_name("exp1")
    assert exp.artifact_location == (tmp_path / "runs" / "mlartifacts").as_uri()


@pytest.mark.slow
def test_optimize_through_ray_logs_metrics_and_the_workflow(sim_server, tmp_path):
    client = _client(tmp_path)
    cfg = w4s.config(overrides={
        "tracking.backend": "mlflow", "run_dir": str(tmp_path / "runs"),
        "executor.api_base": sim_server.url, "executor.cache.path": str(tmp_path / "c.sqlite"),
        "meta_agent.backend": "scripted", "meta_agent.model": "seed-variants",
        "eval": {"limit": 4, "num_evaluators": 1},
        "rlao": {"turns": 2, "candidates": 2, "test_limit": 4, "report_seed_test": False}})
    res = w4s.optimize(cfg, benchmark="gsm8k", progress=False)
    (run,) = _runs(client)
    assert run.info.status == "FINISHED" and run.data.tags["w4s.stage"] == "optimize"
    rid = run.info.run_id
    hist = client.get_metric_history(rid, "best_so_far")
    seeds = json.loads((res.run_dir / "seeds" / "gsm8k.json").read_text())
    assert [m.step for m in hist] == [0, 1, 2]  # turn 0: the seed workflows
    assert [m.value for m in hist] == [max(s["val_accuracy"] for s in seeds)] + [
        m["best_so_far"] for m in res.metrics]
    cum = [m.value for m in client.get_metric_history(rid, "cumulative_usd")]
    assert cum == sorted(cum) and cum[-1] == pytest.approx(
        sum(s["cost_usd"] for s in seeds) + sum(m["cost_usd"] for m in res.metrics))
    assert run.data.metrics["valid_accuracy"] == pytest.approx(res.valid_accuracy)
    assert run.data.metrics["dollars"] == pytest.approx(res.dollars)
    names = {a.path for a in client.list_artifacts(rid)}
    assert {"final_workflow.py", "final.json", "report.md"} <= names
    local = client.download_artifacts(rid, "final_workflow.py", str(tmp_path))
    assert open(local, encoding="utf-8").read() == res.workflow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_dashboard_on_by_config(tmp_path):
    port = _free_port()
    code = (
        "import urllib.request\n"
        "from w4s_ray.config import load_config\n"
        "from w4s_ray.runtime.ray_init import ray_session\n"
        f"cfg = load_config(None, ['ray.dashboard=true', 'ray.dashboard_port={port}'])\n"
        "with ray_session(cfg.ray):\n"
        f"    print(urllib.request.urlopen('http://127.0.0.1:{port}/api/version', timeout=30)"
        ".status)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "200"
    assert f"w4s: Ray dashboard at http://127.0.0.1:{port}" in proc.stderr
    with pytest.raises(OSError):  # and it is gone with the stage
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=5)
