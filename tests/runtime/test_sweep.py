"""`w4s sweep`: input checks before any work, the aggregate report, and real sweeps on Ray.

The slow tests run the real pipeline (Ray tasks, the shared evaluator pool, the simulated
executor, the scripted `seed-variants` meta-agent) with few items and one turn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from w4s_ray.benchmarks import list_benchmarks
from w4s_ray.config import SimConfig, load_config
from w4s_ray.errors import BudgetExceeded, ConfigError, DataError
from w4s_ray.runtime.sweep import check_cluster_address, parse_address, run_sweep
from w4s_ray.sweep.report import write_sweep_report

ALL = list_benchmarks()  # every registered benchmark (the eleven of W4S today)
REPO = Path(__file__).resolve().parents[2]


def _cfg(tmp_path: Path, *extra: str, api_base: str = "http://127.0.0.1:9/v1"):
    return load_config(None, [
        f"run_dir={tmp_path / 'sweep'}", "name=t-sweep", f"executor.api_base={api_base}",
        "executor.cache.enabled=false", "eval.limit=2", "rlao.test_limit=2", "rlao.turns=1",
        "rlao.candidates=2", "rlao.max_repairs=1", "meta_agent.backend=scripted",
        "meta_agent.model=seed-variants", *extra,
    ])


# -- before any work ----------------------------------------------------------------------------
@pytest.mark.parametrize("address,expected", [
    ("10.255.255.1:6379", ("10.255.255.1", 6379)),
    ("http://127.0.0.1:8265", ("127.0.0.1", 8265)),
    ("ray://head.example:10001", ("head.example", 10001)),
    ("ray://head.example", ("head.example", 10001)),
    ("[::1]:6380", ("::1", 6380)),
    ("auto", None),
])
def test_parse_address(address, expected):
    assert parse_address(address) == expected


def test_unreachable_address_is_one_clear_error():
    with pytest.raises(ConfigError) as exc:
        check_cluster_address("http://127.0.0.1:1", timeout_s=1.0)
    msg = str(exc.value)
    assert "ray.address http://127.0.0.1:1" in msg and "cannot reach 127.0.0.1:1" in msg
    assert "\n" not in msg


def test_unreachable_cluster_stops_the_sweep_before_any_work(tmp_path):
    import ray

    was_up = ray.is_initialized()
    cfg = _cfg(tmp_path, "ray.address=127.0.0.1:1", "sweep.connect_timeout_s=1")
    with pytest.raises(ConfigError, match="cannot reach 127.0.0.1:1"):
        run_sweep(cfg, ["gsm8k", "svamp"], progress=False)
    assert not (tmp_path / "sweep").exists()
    assert ray.is_initialized() == was_up


def test_pool_in_a_host_that_does_not_exist_is_refused_before_any_work(tmp_path):
    import ray

    was_up = ray.is_initialized()
    cfg = _cfg(tmp_path, "sweep.task_host=per_benchmark", "sweep.pool_host=task_host")
    with pytest.raises(ConfigError, match="pool_host=task_host needs sweep.task_host=shared"):
        run_sweep(cfg, ["gsm8k", "svamp"], progress=False)
    assert not (tmp_path / "sweep").exists()
    assert ray.is_initialized() == was_up


def test_where_the_pool_lives():
    from w4s_ray.runtime.sweep import pool_in_task_host

    def where(*extra: str) -> bool:
        return pool_in_task_host(load_config(None, list(extra)))

    assert where() is True  # default: the shared host holds it, one Ray worker fewer
    assert where("sweep.task_host=per_benchmark") is False
    assert where("sweep.pool_host=own_actor") is False
    assert where("sweep.pool_host=task_host") is True


def test_unknown_benchmark_is_rejected_before_any_work(tmp_path):
    cfg = _cfg(tmp_path, "benchmarks=[gsm8k, nosuchbench]")
    with pytest.raises(ConfigError, match="nosuchbench"):
        run_sweep(cfg, progress=False)
    assert not (tmp_path / "sweep").exists()


def test_cli_unreachable_address_exits_2_with_one_line(tmp_path):
    env = dict(os.environ, W4S_DATA_DIR=os.environ["W4S_DATA_DIR"])
    out = subprocess.run(
        [sys.executable, "-m", "w4s_ray", "sweep", "experiments/sweep_11.yaml",
         "--set", "ray.address=http://127.0.0.1:1", "--set", f"run_dir={tmp_path / 'r'}",
         "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("w4s: error: ray.address")
    assert not (tmp_path / "r").exists()


def test_cli_unknown_benchmark_flag(tmp_path):
    from w4s_ray.cli import main

    rc = main(["sweep", "--set", f"run_dir={tmp_path / 'r'}", "--benchmarks", "gsm8k,bogus"])
    assert rc == 2
    assert not (tmp_path / "r").exists()


def test_existing_sweep_needs_resume(tmp_path):
    (tmp_path / "sweep" / "gsm8k").mkdir(parents=True)
    (tmp_path / "sweep" / "gsm8k" / "baselines.json").write_text("{}")
    with pytest.raises(ConfigError, match="--resume"):
        run_sweep(_cfg(tmp_path), ["gsm8k"], progress=False)


# -- the report, from files ---------------------------------------------------------------------
def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_report_table_shape_and_failures(tmp_path):
    root = tmp_path / "sweep"
    _write(root / "gsm8k" / "baselines.json", {
        "baselines": {"cot": {"test_accuracy": 0.5}, "cot_sc": {"test_accuracy": 0.75},
                      "code_generation": {"test_accuracy": 0.25}},
        "cost_usd": 0.01, "wall_s": 3.0})
    _write(root / "gsm8k" / "final.json", {
        "benchmark": "gsm8k", "best": "turn_00_cand_1", "valid_accuracy": 0.9,
        "test_accuracy": 0.8, "test_n": 4, "turns": 2, "wall_s": 7.0, "dollars": 0.02})
    _write(root / "gsm8k" / "cost.json", {"total_usd": 0.02})
    _write(root / "humaneval" / "baselines.json", {
        "baselines": {"cot": {"test_accuracy": 1.0}, "test_repair": {"test_accuracy": 0.5}},
        "cost_usd": 0.03, "wall_s": 2.0})
    _write(root / "sweep.json", {"meta": {"name": "unit", "wall_s": 9.5}, "benchmarks": {
        "gsm8k": {"status": "done", "error": None, "wall_s": 10.0},
        "humaneval": {"status": "failed", "error": "DataError: a | b", "wall_s": 2.5}}})
    report = write_sweep_report(root, ["gsm8k", "humaneval"])
    text = report.read_text()
    assert "| method | gsm8k | humaneval | total |" in text
    assert "| CoT | 50.0 | 100.0 |  |" in text
    assert "| CoT-SC | 75.0 | - |  |" in text
    assert "| Test-driven repair | - | 50.0 |  |" in text
    assert "| **W4S (optimized)** | **80.0** | FAILED |  |" in text
    assert "| dollars: total | 0.0300 | 0.0300 | 0.0600 |" in text
    assert "| wall time (s) | 10.0 | 2.5 | 12.5 |" in text
    assert "- humaneval: FAILED: DataError: a \\| b" in text
    assert "1 of 2 benchmarks completed" in text
    assert "scoring: lenient (sweep predates eval.scoring)" in text  # no scoring in its meta
    _write(root / "sweep.json", {"meta": {"name": "unit", "scoring": "official"}, "benchmarks": {}})
    assert "scoring: official." in write_sweep_report(root, ["gsm8k"]).read_text()
    for png in ("sweep_test.png", "sweep_valid.png", "sweep_cost.png"):
        assert (root / png).read_bytes()[:4] == b"\x89PNG"


def test_report_names_a_corrupt_file(tmp_path):
    root = tmp_path / "sweep"
    (root / "gsm8k").mkdir(parents=True)
    (root / "gsm8k" / "final.json").write_text("{not json")
    with pytest.raises(DataError, match="final.json"):
        write_sweep_report(root, ["gsm8k"])


# -- real sweeps on Ray + the simulator ---------------------------------------------------------
@pytest.fixture(scope="module")
def sim(data_dir):
    from w4s_ray.executor.sim.launch import start_sim

    handle = start_sim(SimConfig(latency="fixed", latency_ms=5), data_dir)
    yield handle
    handle.stop()


def _partial_data_dir(tmp_path: Path, data_dir: Path, missing: str) -> Path:
    """A data dir with every benchmark but `missing` (symlinks; nothing is copied)."""
    d = tmp_path / "data"
    d.mkdir()
    for entry in data_dir.iterdir():
        if entry.name != missing:
            (d / entry.name).symlink_to(entry)
    return d


def _table_row(text: str, label: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


# In `make test` on purpose (issue 8): the reduced sweep over every benchmark, ~35 s here.
@pytest.mark.timeout(1500)
def test_all_benchmarks_with_one_failing_then_resume(tmp_path, ray_session, sim, data_dir):
    broken = _partial_data_dir(tmp_path, data_dir, missing="drop")
    cfg = _cfg(tmp_path, f"data.dir={broken}", "eval.num_evaluators=3", api_base=sim.url)
    out = run_sweep(cfg, ALL, progress=False)

    assert out["failed"] == ["drop"]
    assert out["status"]["drop"]["status"] == "failed" and out["status"]["drop"]["error"]
    text = Path(out["report"]).read_text()
    header = next(ln for ln in text.splitlines() if ln.startswith("| method |"))
    assert header == "| method | " + " | ".join(ALL) + " | total |"
    for label in ("CoT", "CoT-SC", "Code generation (PoT)", "Test-driven repair",
                  "**W4S (optimized)**", "dollars: total", "wall time (s)", "status"):
        assert len(_table_row(text, label)) == len(ALL) + 1, label
    w4s = _table_row(text, "**W4S (optimized)**")
    assert w4s[ALL.index("drop")] == "FAILED"
    for b in ALL:
        if b != "drop":
            assert w4s[ALL.index(b)].strip("*").replace(".", "").isdigit(), (b, w4s)
            final = json.loads((tmp_path / "sweep" / b / "final.json").read_text())
            assert final["turns"] == 1 and final["test_n"] == 2
            assert set(final["seed_baselines"]) == set(
                json.loads((tmp_path / "sweep" / b / "baselines.json").read_text())["baselines"])
    assert f"- drop: FAILED: {out['status']['drop']['error']}" in text
    # The simulator answered every call: the report says so, and shows would-have-cost.
    assert text.startswith("# Sweep report: t-sweep (simulated executor)")
    assert "**Simulated executor**" in text
    assert len(_table_row(text, "cache hits would have cost")) == len(ALL) + 1
    assert "drop" in (tmp_path / "sweep" / "drop" / "error.log").read_text()
    # CoT-SC exists on every benchmark: no cell may be missing or failed except drop's.
    cot_sc = _table_row(text, "CoT-SC")
    assert [c for i, c in enumerate(cot_sc[:-1]) if ALL[i] != "drop"] and all(
        c.replace(".", "").isdigit() for i, c in enumerate(cot_sc[:-1]) if ALL[i] != "drop")

    # Resume with the data back: only drop runs; completed benchmarks are not touched.
    stamps = {b: (tmp_path / "sweep" / b / "final.json").stat().st_mtime_ns
              for b in ALL if b != "drop"}
    fixed = cfg.model_copy(deep=True)
    fixed.data.dir = str(data_dir)
    out2 = run_sweep(fixed, ALL, resume=True, progress=False)
    assert out2["failed"] == []
    assert all(s["status"] == "done" for s in out2["status"].values())
    for b, ns in stamps.items():
        assert (tmp_path / "sweep" / b / "final.json").stat().st_mtime_ns == ns, b
    assert not (tmp_path / "sweep" / "drop" / "error.log").exists()
    text2 = Path(out2["report"]).read_text()
    assert "FAILED" not in text2 and f"{len(ALL)} of {len(ALL)} benchmarks completed" in text2


@pytest.mark.timeout(900)
def test_shared_budget_stops_every_benchmark_and_keeps_the_report(tmp_path, ray_session, sim):
    cfg = _cfg(tmp_path, "executor.budget_usd=0.0005", "sweep.max_parallel=2",
               api_base=sim.url)
    with pytest.raises(BudgetExceeded, match="budget"):
        run_sweep(cfg, ["gsm8k", "svamp", "mgsm"], progress=False)
    status = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["benchmarks"]
    assert {s["status"] for s in status.values()} == {"budget"}
    # The third benchmark never starts: the budget every benchmark shares is already spent.
    assert status["mgsm"]["error"].startswith("not started")
    assert not (tmp_path / "sweep" / "mgsm").exists()
    text = (tmp_path / "sweep" / "sweep_report.md").read_text()
    for b in ("gsm8k", "svamp", "mgsm"):
        assert f"- {b}: FAILED: " in text


@pytest.mark.timeout(900)
def test_an_endpoint_failing_mid_sweep_stops_every_benchmark(tmp_path, ray_session,
                                                             fake_provider, monkeypatch):
    """After the preflight, the key is revoked (401): every benchmark stops at once (they share
    the endpoint), the report is written, the one-line error is raised, and `--resume`
    finishes the sweep once the key works again."""
    from tests.fixtures.providers import KEY
    from w4s_ray.errors import ExecutorFatal

    key_file = tmp_path / "key"  # actors of the session Ray do not see env vars set now
    key_file.write_text(KEY)
    ex = fake_provider("openai", served=("gpt-4o-mini",), fail_after=12)
    cfg = _cfg(tmp_path, "executor.model=gpt-4o-mini", "sweep.max_parallel=2",
               "executor.max_retries=1", "executor.pricing_model=gpt-4o-mini",
               f"executor.api_key_file={key_file}",
               # The fake provider answers gsm8k items only: under the w4s protocol a turn whose
               # candidates all score 0 stops the benchmark, which is not what this tests.
               "rlao.protocol=w4s-ray", api_base=ex.url)
    t0 = time.monotonic()
    with pytest.raises(ExecutorFatal, match="401"):
        run_sweep(cfg, ["gsm8k", "svamp", "mgsm"], progress=False)
    assert time.monotonic() - t0 < 300
    status = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert {s["status"] for s in status["benchmarks"].values()} == {"failed"}
    assert status["meta"]["simulated"] is False
    assert status["benchmarks"]["mgsm"]["error"].startswith("not started")
    text = (tmp_path / "sweep" / "sweep_report.md").read_text()
    assert "(simulated executor)" not in text and "- gsm8k: FAILED: " in text
    ex.mode, ex.fail_after = "gold", None
    out = run_sweep(cfg, ["gsm8k", "svamp", "mgsm"], resume=True, progress=False)
    assert out["failed"] == [], {b: out["status"][b].get("error") for b in out["failed"]}
