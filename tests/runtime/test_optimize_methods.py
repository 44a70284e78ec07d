"""ADAS, AFlow and the paper-shaped sweep on the real runtime (Ray evaluator pool, sandbox, the
simulator as executor, the `seed-variants` simulator meta model), reduced to a few items.

- `w4s optimize --method adas`: a budget stop (exit 3, status and report written, no test
  evaluation), then `--resume` with more budget killed with SIGKILL mid-search, then
  `--resume` to the end: the records continue without a gap and the chosen workflow is tested.
- `w4s optimize --method aflow`: SIGKILL mid-search, `--resume` to the end.
- `w4s sweep --methods <all ten>` on gsm8k, drop, mmlu_pro: sweep_table.md/.png/.json with a
  cell per method and benchmark; `--resume` of the complete sweep re-evaluates nothing.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.reliability.helpers import kill9_when, partial_files, w4s
from w4s_ray.baselines import BASELINES
from w4s_ray.config import load_config
from w4s_ray.optimizers.run import SearchDir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

METHODS = [*BASELINES, "adas", "aflow", "w4s"]


@pytest.fixture(scope="module")
def msim(data_dir):
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    handle = start_sim(SimConfig(latency="fixed", latency_ms=20), data_dir, port=0)
    yield handle
    handle.stop()


def _sets(url: str, cache: Path, **over) -> list[str]:
    kv = {"executor.api_base": url, "executor.cache.path": str(cache),
          "meta_agent.backend": "scripted", "meta_agent.model": "seed-variants",
          "eval.limit": 3, "eval.num_evaluators": 1, "rlao.test_limit": 3,
          "optimizers.adas.initial": "[cot, step_back]",
          "optimizers.adas.bootstrap_samples": 500, "optimizers.aflow.validation_rounds": 2,
          **over}
    out: list[str] = []
    for k, v in kv.items():
        out += ["--set", f"{k}={v}"]
    return out


def _records(run: Path) -> list[dict]:
    return SearchDir(run).read_records() if (run / "records.jsonl").exists() else []


def _finished(run: Path, proc, method: str, steps: int) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = json.loads((run / "final.json").read_text())
    assert final["method"] == method and final["iterations"] == steps
    assert final["test_n"] == 3 and final["test_accuracy"] is not None
    assert (run / "final_workflow.py").read_text().strip()
    assert json.loads((run / "status.json").read_text())["status"] == "done"
    assert partial_files(run) == []
    text = (run / "report.md").read_text()
    assert "(simulated executor)" in text and "evaluated once on test" in text
    assert (run / "curve.png").stat().st_size > 1000
    return final


def test_adas_budget_stop_then_kill9_then_resume(msim, tmp_path):
    run = tmp_path / "adas"
    base = ["optimize", "--method", "adas", "-b", "gsm8k", "--turns", "3", "--no-progress",
            "--run-dir", str(run)]
    cache = tmp_path / "cache.sqlite"
    proc = w4s([*base, *_sets(msim.url, cache, **{"executor.budget_usd": 0.0008})])
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert proc.stderr.strip().startswith("w4s: error:") and "budget" in proc.stderr
    assert json.loads((run / "status.json").read_text())["status"] == "budget"
    assert "Stopped (budget)" in (run / "report.md").read_text()
    assert not (run / "final.json").exists()
    stopped_at = len(_records(run))

    more = _sets(msim.url, cache, **{"executor.budget_usd": 5.0})
    kill9_when([*base, "--resume", *more],
               lambda: sum(r["type"] == "generation" for r in _records(run)) >= 1,
               delay_max=1.0, rng=random.Random(7))
    assert partial_files(run) == []
    killed_at = len(_records(run))
    assert killed_at >= stopped_at
    proc = w4s([*base, "--resume", *more])
    final = _finished(run, proc, "adas", 3)
    recs = _records(run)
    assert [r["type"] for r in recs] == ["initial"] * 2 + ["generation"] * 3
    assert [r["generation"] for r in recs[2:]] == [1, 2, 3]
    # Selection by validation only: the tested workflow is the best archive entry.
    best = max((r for r in recs if r.get("accuracy") is not None),
               key=lambda r: r["accuracy"])
    assert final["valid_accuracy"] == best["accuracy"]


def test_aflow_kill9_then_resume(msim, tmp_path):
    run = tmp_path / "aflow"
    base = ["optimize", "--method", "aflow", "-b", "drop", "--turns", "2", "--no-progress",
            "--run-dir", str(run)]
    sets = _sets(msim.url, tmp_path / "cache.sqlite")
    kill9_when([*base, *sets], lambda: len(_records(run)) >= 1, delay_max=1.0,
               rng=random.Random(3))
    assert partial_files(run) == []
    assert (run / "config.yaml").exists()
    proc = w4s([*base, "--resume", *sets])
    _finished(run, proc, "aflow", 3)
    recs = _records(run)
    assert [r["round"] for r in recs] == [1, 2, 3]
    assert recs[0]["parent"] is None and all(r["parent"] in (1, 2) for r in recs[1:])


@pytest.mark.timeout(1800)
def test_sweep_all_methods_on_three_families_writes_the_table(msim, tmp_path, ray_session):
    from w4s_ray.runtime.sweep import run_sweep

    benches = ["gsm8k", "drop", "mmlu_pro"]
    cfg = load_config(None, [
        f"run_dir={tmp_path / 'sweep'}", "name=t-table", f"executor.api_base={msim.url}",
        f"executor.cache.path={tmp_path / 'cache.sqlite'}", "eval.limit=2",
        "rlao.test_limit=2", "rlao.turns=1", "rlao.candidates=2", "rlao.max_repairs=1",
        "meta_agent.backend=scripted", "meta_agent.model=seed-variants",
        "eval.num_evaluators=2", "optimizers.adas.generations=1",
        "optimizers.adas.initial=[cot]", "optimizers.adas.bootstrap_samples=500",
        "optimizers.aflow.max_rounds=1", "optimizers.aflow.validation_rounds=1",
        f"sweep.methods=[{', '.join(METHODS)}]",
    ])
    out = run_sweep(cfg, benches, progress=False)
    assert out["failed"] == [], out["status"]
    root = tmp_path / "sweep"
    assert out["report"] == str(root / "sweep_table.md")
    data = json.loads((root / "sweep_table.json").read_text())
    assert data["benchmarks"] == benches and data["methods"] == METHODS
    for m in METHODS:
        for b in benches:
            c = data["cells"][m][b]
            assert c["status"] == "done" and 0 <= c["test"] <= 1, (m, b, c)
            assert c["ci"][0] <= c["test"] <= c["ci"][1] and c["test_n"] == 2
            assert c["usd"] is not None and c["wall_s"] is not None
    for b in benches:
        best = data["best_baseline"][b]
        assert best != "w4s" and data["cells"][best][b]["test"] == max(
            data["cells"][m][b]["test"] for m in METHODS if m != "w4s")
        assert data["w4s_gain"][b] == pytest.approx(
            data["cells"]["w4s"][b]["test"] - data["cells"][best][b]["test"])
    text = (root / "sweep_table.md").read_text()
    assert text.startswith("# Method comparison: t-table (simulated executor)")
    assert "| method | gsm8k | drop | mmlu_pro |" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert len(rows) == 1 + len(METHODS) + 1  # header, methods, W4S gain
    assert text.count("†") >= 3 and "W4S gain over †" in text
    assert (root / "sweep_table.png").stat().st_size > 5000
    # Resume of a complete sweep: nothing is evaluated again.
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("final.json")}
    out2 = run_sweep(cfg, benches, resume=True, progress=False)
    assert out2["failed"] == []
    assert {p: p.stat().st_mtime_ns for p in root.rglob("final.json")} == stamps
