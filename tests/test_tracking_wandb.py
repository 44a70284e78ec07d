"""W&B tracking (`tracking.backend: wandb`), offline, read back from the offline run files:
per-turn metrics against the turn (0 = the seeds) with cumulative dollars, the final numbers
in the summary, the chosen workflow as an artifact, the final table; a failed stage ends its
run with a non-zero exit code; offline never reaches the network (every variable wandb
documents for it is set, and the run is written under the run root)."""

from __future__ import annotations

import json
import sys

import pytest

import w4s_ray as w4s
from w4s_ray import tracking
from w4s_ray.errors import ConfigError

pytest.importorskip("wandb")

from tests.fixtures.wandb_offline import offline_run  # noqa: E402


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """wandb's own switches for a machine without network (docs.wandb.ai: WANDB_MODE=offline,
    WANDB_SILENT; plus its data/cache/config dirs kept out of $HOME, no crash reports, no git
    or code capture), on top of the config's tracking.mode=offline."""
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true",
                       "WANDB_ERROR_REPORTING": "false", "WANDB_DISABLE_GIT": "true",
                       "WANDB_DISABLE_CODE": "true", "WANDB_DATA_DIR": str(tmp_path / "wb-data"),
                       "WANDB_CACHE_DIR": str(tmp_path / "wb-cache"),
                       "WANDB_CONFIG_DIR": str(tmp_path / "wb-config"),
                       "WANDB_ARTIFACT_DIR": str(tmp_path / "wb-artifacts")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)


def _cfg(tmp_path, **over):
    return w4s.config(overrides={"tracking.backend": "wandb", "run_dir": str(tmp_path / "runs"),
                                 "name": "exp1", **over})


def test_wandb_missing_or_misconfigured_is_a_config_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="set tracking.mode=online"):
        tracking.check(_cfg(tmp_path, **{"tracking.uri": "http://wandb.example:8080"}))
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=r"needs wandb: pip install -e '\.\[tracking\]'"):
        tracking.check(_cfg(tmp_path))


def test_turns_summary_table_artifact_and_failure_offline(tmp_path, offline_env):
    cfg = _cfg(tmp_path)
    turns = [{"episode_id": "gsm8k-e00", "turn": t, "best_so_far": 0.5 + 0.1 * t,
              "best_val_accuracy": 0.5 + 0.1 * t, "mean_val_accuracy": None,
              "cost_usd": 0.25, "cached_usd": 0.0, "calls": 10} for t in range(3)]
    wf = tmp_path / "final_workflow.py"
    wf.write_text("def solver(agent, task):\n    return {'answer': '42'}\n")
    with pytest.raises(RuntimeError, match="stopped"):
        with tracking.run(cfg, "optimize", "gsm8k") as tr:
            tracking.log_turns(tr, turns)
            tr.metrics({"test_accuracy": 0.75, "note": "text is no metric"})
            tr.artifacts([wf])
            tr.table("final", ["workflow", "valid_accuracy"], [["optimized", 0.7]])
            raise RuntimeError("stopped")
    run = offline_run(tmp_path / "runs")
    assert run["runs"] == 1 and run["name"] == "optimize:gsm8k" and run["exit_code"] == 1
    per_turn = [h for h in run["history"] if "best_so_far" in h]
    assert [(h["step"], round(h["best_so_far"], 6)) for h in per_turn] == \
        [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert [h["cumulative_usd"] for h in per_turn] == [0.25, 0.5, 0.75]
    assert all("mean_val_accuracy" not in h for h in per_turn)  # None is not logged
    assert run["summary"]["test_accuracy"] == 0.75 and "note" not in run["summary"]
    (art,) = [a for a in run["artifacts"] if a["type"] == "workflow"]
    assert art["files"] == ["final_workflow.py"]
    assert any(a["type"] == "run_table" for a in run["artifacts"])
    table = json.loads((run["dir"] / "files" / next(
        h["final/path"] for h in run["history"] if "final/path" in h)).read_text())
    assert table["columns"] == ["workflow", "valid_accuracy"]
    assert table["data"] == [["optimized", 0.7]]
    assert (run["dir"]).is_relative_to(tmp_path / "runs" / "wandb")


@pytest.mark.slow
def test_optimize_through_ray_logs_to_wandb_offline(sim_server, tmp_path, offline_env):
    cfg = _cfg(tmp_path, **{
        "executor.api_base": sim_server.url, "executor.cache.path": str(tmp_path / "c.sqlite"),
        "meta_agent.backend": "scripted", "meta_agent.model": "seed-variants",
        "eval": {"limit": 4, "num_evaluators": 1},
        "rlao": {"turns": 2, "candidates": 2, "test_limit": 4, "report_seed_test": False}})
    res = w4s.optimize(cfg, benchmark="gsm8k", progress=False)
    run = offline_run(tmp_path / "runs")
    assert run["exit_code"] == 0
    seeds = json.loads((res.run_dir / "seeds" / "gsm8k.json").read_text())
    per_turn = [h for h in run["history"] if "best_so_far" in h]
    assert [h["step"] for h in per_turn] == [0, 1, 2]  # turn 0: the seed workflows
    assert [h["best_so_far"] for h in per_turn] == pytest.approx(
        [max(s["val_accuracy"] for s in seeds)] + [m["best_so_far"] for m in res.metrics])
    assert per_turn[-1]["cumulative_usd"] == pytest.approx(
        sum(s["cost_usd"] for s in seeds) + sum(m["cost_usd"] for m in res.metrics))
    assert run["summary"]["valid_accuracy"] == pytest.approx(res.valid_accuracy)
    assert run["summary"]["dollars"] == pytest.approx(res.dollars)
    (art,) = [a for a in run["artifacts"] if a["type"] == "workflow"]
    assert {"final_workflow.py", "final.json", "report.md"} <= set(art["files"])
    staged = dict(zip(art["files"], art["local"], strict=True))["final_workflow.py"]
    assert open(staged, encoding="utf-8").read() == res.workflow
    final_rows = next(h for h in run["history"] if "final/path" in h)
    table = json.loads((run["dir"] / "files" / final_rows["final/path"]).read_text())
    assert table["data"][0][0].startswith("optimized") and table["data"][0][1] == \
        pytest.approx(res.valid_accuracy)
