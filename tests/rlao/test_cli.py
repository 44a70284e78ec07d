"""`w4s optimize` / `collect` / `report` from the command line: bad input fails fast and clearly
(before Ray starts), and real runs on the simulator produce run dirs and Parquet (slow)."""

from __future__ import annotations

import json

import pytest

from tests.rlao.conftest import small_run_sets, w4s
from w4s_ray.rlao.trajectories import COLUMNS, read_rows


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def test_unknown_benchmark_is_a_clear_error(tmp_path):
    line = _one_error_line(w4s(["optimize", "--set", "benchmark=nosuch",
                                "--run-dir", str(tmp_path / "r")], timeout=120))
    assert line.startswith("w4s: error: unknown benchmark(s) nosuch; known: ")
    line = _one_error_line(w4s(["collect", "--benchmarks", "gsm8k,bogus",
                                "--out", str(tmp_path / "c")], timeout=120))
    assert "unknown benchmark(s) bogus" in line
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_corrupt_parquet_in_output_dir_is_named(tmp_path):
    traj = tmp_path / "c" / "trajectories"
    traj.mkdir(parents=True)
    bad = traj / "part-gsm8k-e00-0000.parquet"
    bad.write_bytes(b"not parquet at all")
    line = _one_error_line(w4s(["collect", "--benchmarks", "gsm8k", "--out",
                                str(tmp_path / "c"), "--resume"], timeout=120))
    assert "corrupt trajectory file" in line and str(bad) in line
    assert bad.read_bytes() == b"not parquet at all"


def test_existing_run_without_resume_is_refused(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("name: w4s\n")
    line = _one_error_line(w4s(["optimize", "-b", "gsm8k", "--run-dir", str(tmp_path / "r")],
                               timeout=120))
    assert "already holds a run; pass --resume" in line


def test_report_of_a_non_run_dir(tmp_path):
    line = _one_error_line(w4s(["report", str(tmp_path)], timeout=120))
    assert "is not a w4s run directory" in line


@pytest.mark.slow
def test_optimize_on_the_simulator_writes_run_dir_and_report(rlao_sim, tmp_path):
    d = tmp_path / "opt"
    proc = w4s(["optimize", "-b", "gsm8k", "--out", str(d), "--no-progress",
                *small_run_sets(rlao_sim.url, tmp_path / "cache.sqlite")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.yaml", "metrics.jsonl", "cost.json", "final.json", "final_workflow.py",
                 "report.md", "curve.png", "seeds/gsm8k.json"):
        assert (d / name).exists(), name
    final = json.loads((d / "final.json").read_text())
    assert 0.0 <= final["valid_accuracy"] <= 1.0 and final["test_n"] == 8
    assert final["test_accuracy"] is not None and final["dollars"] > 0
    rows = read_rows(d / "trajectories")
    assert len(rows) == 4 and all(r["executor"] == "openai/sim-gpt-4o-mini" for r in rows)
    assert any(r["valid"] for r in rows)
    assert list((d / "workflows").glob("turn_01_cand_*.py"))
    report = (d / "report.md").read_text()
    assert "gsm8k-e00" in report and "| seed: " in report
    # `w4s report` regenerates the same files
    (d / "report.md").unlink()
    (d / "curve.png").unlink()
    proc = w4s(["report", str(d)], timeout=120)
    assert proc.returncode == 0 and (d / "report.md").read_text() == report
    assert (d / "curve.png").stat().st_size > 1000


@pytest.mark.slow
def test_collect_three_benchmarks_on_the_simulator(rlao_sim, tmp_path):
    out = tmp_path / "col"
    proc = w4s(["collect", "--benchmarks", "gsm8k,svamp,mgsm", "--episodes", "1", "--turns", "1",
                "--out", str(out), "--no-progress",
                *small_run_sets(rlao_sim.url, tmp_path / "cache.sqlite")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    import datasets
    import pandas as pd
    import polars as pl

    files = sorted((out / "trajectories").glob("*.parquet"))
    assert [f.name for f in files] == ["part-gsm8k-e00-0001.parquet", "part-mgsm-e00-0001.parquet",
                                       "part-svamp-e00-0001.parquet"]
    pdf = pd.read_parquet(out / "trajectories")
    assert list(pdf.columns) == COLUMNS and len(pdf) == 6
    assert set(pdf["benchmark"]) == {"gsm8k", "svamp", "mgsm"}
    assert pl.read_parquet(str(out / "trajectories" / "*.parquet")).height == 6
    hf = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    assert hf.num_rows == 6
    msgs = json.loads(pdf.iloc[0]["prompt_messages"])
    assert msgs[0]["role"] == "system" and "solver(agent, task: str)" in msgs[1]["content"]


@pytest.mark.slow
def test_fresh_starts_over_in_the_same_out_dir(rlao_sim, tmp_path):
    """`--fresh` discards the earlier run's files (not the user's) and starts over; without it
    the same directory is refused; `--resume --fresh` is refused by the parser."""
    d = tmp_path / "opt"
    sets = small_run_sets(rlao_sim.url, tmp_path / "cache.sqlite", **{"rlao.turns": 1})
    base = ["optimize", "-b", "gsm8k", "-o", str(d), "--no-progress", *sets]
    assert w4s(base).returncode == 0
    first = read_rows(d / "trajectories")
    (d / "notes.txt").write_text("mine")
    again = w4s(base, timeout=120)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    assert "--fresh to start over" in again.stderr
    proc = w4s([*base, "--fresh"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(d / "trajectories")
    assert len(rows) == len(first) and {r["turn"] for r in rows} == {1}
    assert min(r["created_at"] for r in rows) > max(r["created_at"] for r in first)
    assert (d / "notes.txt").read_text() == "mine"
    both = w4s([*base, "--fresh", "--resume"], timeout=120)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
