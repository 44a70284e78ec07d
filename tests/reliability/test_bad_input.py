"""Bad input through the real CLI (subprocesses): every case exits non-zero with exactly one
`w4s: error: ...` line that names the problem, and a run directory that already existed is
byte-for-byte unchanged. All cases start together (module fixture) and fail before Ray or any
evaluation starts, so the matrix costs about one CLI start-up of wall time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.helpers import REPO, one_error_line, tree_digest

SCRIPTED = ["--set", "meta_agent.backend=scripted", "--set", "meta_agent.model=seed-variants"]


def _previous_run(root: Path) -> Path:
    """A run dir holding an earlier run's files (what an error must not damage)."""
    d = root / "prev"
    (d / "trajectories").mkdir(parents=True)
    from w4s_ray.config import dump_config, load_config

    dump_config(load_config(None, [SCRIPTED[1], SCRIPTED[3]]), d / "config.yaml")
    (d / "metrics.jsonl").write_text(json.dumps({"episode_id": "gsm8k-e00", "turn": 0}) + "\n")
    (d / "trajectories" / "part-gsm8k-e00-0000.parquet").write_bytes(b"PAR1 not really" * 10)
    (d / "final.json").write_text('{"best": "CoT"}\n')
    return d


def _cases(tmp: Path, data_dir: Path, busy_port: int, model_dir: Path) -> dict:
    """name -> (argv, substrings the error line must contain, dir that must stay unchanged)."""
    (tmp / "malformed.yaml").write_text("executor:\n  model: [unclosed\n")
    (tmp / "unknown.yaml").write_text("executor:\n  modle: gpt-4o\n")
    (tmp / "wrongtype.yaml").write_text("rlao:\n  turns: many\n")
    (tmp / "notmapping.yaml").write_text("- just\n- a list\n")
    empty_model = tmp / "empty_model"
    empty_model.mkdir()
    (empty_model / "README.md").write_text("no weights here")
    empty_traj = tmp / "empty_traj"
    empty_traj.mkdir()
    bad_pq = tmp / "bad.parquet"
    bad_pq.write_bytes(b"garbage, not parquet")
    wf = tmp / "wf.py"
    wf.write_text("def solver(agent, task):\n    return {'answer': '1'}\n")
    no_solver = tmp / "no_solver.py"
    no_solver.write_text("def helper(x):\n    return x\n")
    empty_data = tmp / "empty_data"
    empty_data.mkdir()
    prev = _previous_run(tmp)
    dead = "http://127.0.0.1:9/v1"
    return {
        "malformed_yaml": (["optimize", "-c", str(tmp / "malformed.yaml"), "--run-dir", str(prev),
                            "--resume"], ["malformed YAML", "line"], prev),
        "unknown_key": (["collect", "-c", str(tmp / "unknown.yaml"), "--out", str(prev),
                         "--resume"], ["unknown key 'executor.modle'"], prev),
        "unknown_set_key": (["optimize", "--set", "rlao.turnz=3", "--run-dir", str(prev)],
                            ["unknown key", "rlao.turnz"], prev),
        "wrong_type": (["optimize", "-c", str(tmp / "wrongtype.yaml"), "--run-dir", str(prev)],
                       ["rlao.turns", "many"], prev),
        "wrong_type_set": (["collect", "--set", "eval.num_evaluators=two", "--out", str(prev)],
                           ["eval.num_evaluators"], prev),
        "top_level_not_mapping": (["optimize", "-c", str(tmp / "notmapping.yaml")],
                                  ["top level must be a mapping"], None),
        "missing_config_file": (["optimize", "-c", str(tmp / "nope.yaml")],
                                ["config file not found", "nope.yaml"], None),
        "unknown_benchmark": (["optimize", "-b", "nosuch", "--run-dir", str(prev), "--resume"],
                              ["unknown benchmark(s) nosuch"], prev),
        "unknown_benchmark_eval": (["eval", "-w", str(wf), "-b", "nosuch"], ["nosuch"], None),
        "missing_data_dir": (["optimize", "-b", "gsm8k", "--set",
                              f"data.dir={tmp / 'no_such_data'}", "--run-dir",
                              str(tmp / "r_nodata")], ["no_such_data", "does not exist"], None),
        "missing_data_files": (["collect", "--benchmarks", "gsm8k", "--set",
                                f"data.dir={empty_data}", "--out", str(tmp / "r_nofiles")],
                               ["missing data file", "gsm8k"], None),
        "corrupt_parquet_resume": (["collect", "--benchmarks", "gsm8k", "--out", str(prev),
                                    "--resume", *SCRIPTED],
                                   ["corrupt trajectory file", "part-gsm8k-e00-0000.parquet"],
                                   prev),
        "corrupt_parquet_train": (["train", "--data", str(bad_pq), "--base-model",
                                   str(model_dir), "--out", str(tmp / "t_bad")],
                                  ["bad.parquet"], None),
        "empty_trajectories": (["train", "--data", str(empty_traj), "--base-model",
                                str(model_dir), "--out", str(tmp / "t_empty")],
                               ["empty_traj"], None),
        "unreachable_executor_optimize": (["optimize", "-b", "gsm8k", "--set",
                                           f"executor.api_base={dead}", *SCRIPTED,
                                           "--run-dir", str(tmp / "r_dead")],
                                          ["cannot reach executor at", "127.0.0.1:9"], None),
        "unreachable_executor_collect": (["collect", "--benchmarks", "gsm8k,svamp", "--set",
                                          f"executor.api_base={dead}", *SCRIPTED, "--out",
                                          str(tmp / "r_dead2")],
                                         ["cannot reach executor at", "127.0.0.1:9"], None),
        "unreachable_executor_eval": (["eval", "-w", str(wf), "-b", "gsm8k", "--set",
                                       f"executor.api_base={dead}"],
                                      ["cannot reach executor at", "127.0.0.1:9"], None),
        "workflow_without_solver": (["eval", "-w", str(no_solver), "-b", "gsm8k"],
                                    ["no_solver.py", "solver"], None),
        "checkpoint_without_model_train": (["train", "--data", str(empty_traj), "--base-model",
                                            str(empty_model), "--out", str(tmp / "t_nomodel")],
                                           ["empty_model", "config.json"], None),
        "checkpoint_without_model_serve": (["serve", "--model", str(empty_model), "--port",
                                            "18999"], ["empty_model", "config.json"], None),
        "port_in_use_sim": (["sim", "serve", "--port", str(busy_port)],
                            [str(busy_port), "in use"], None),
        "port_in_use_serve": (["serve", "--model", str(model_dir), "--port", str(busy_port)],
                              [str(busy_port), "in use"], None),
        "existing_run_without_resume": (["optimize", "-b", "gsm8k", "--run-dir", str(prev)],
                                        ["already holds a run", "--resume"], prev),
    }


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, data_dir, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("badinput")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    cases = _cases(tmp, data_dir, port, Path(tiny_model_dir))
    before = {name: tree_digest(d) for name, (_, _, d) in cases.items() if d is not None}
    env = dict(os.environ, W4S_DATA_DIR=str(data_dir))
    procs = {}
    # at most 6 at once: each is a Python start-up with heavy imports on a 2-core box
    names = sorted(cases)
    results: dict[str, tuple[subprocess.CompletedProcess, dict | None]] = {}
    for k in range(0, len(names), 6):
        for name in names[k:k + 6]:
            procs[name] = subprocess.Popen([sys.executable, "-m", "w4s_ray", *cases[name][0]],
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True, cwd=tmp, env=env)
        for name in names[k:k + 6]:
            out, err = procs[name].communicate(timeout=600)
            cp = subprocess.CompletedProcess(cases[name][0], procs[name].returncode, out, err)
            d = cases[name][2]
            results[name] = (cp, tree_digest(d) if d is not None else None)
    busy.close()
    yield cases, results, before


CASE_NAMES = sorted([
    "malformed_yaml", "unknown_key", "unknown_set_key", "wrong_type", "wrong_type_set",
    "top_level_not_mapping", "missing_config_file", "unknown_benchmark",
    "unknown_benchmark_eval", "missing_data_dir", "missing_data_files",
    "corrupt_parquet_resume", "corrupt_parquet_train", "empty_trajectories",
    "unreachable_executor_optimize", "unreachable_executor_collect",
    "unreachable_executor_eval", "workflow_without_solver", "checkpoint_without_model_train",
    "checkpoint_without_model_serve", "port_in_use_sim", "port_in_use_serve",
    "existing_run_without_resume",
])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_gives_one_clear_line_and_damages_nothing(name, matrix):
    cases, results, before = matrix
    assert set(cases) == set(CASE_NAMES)
    proc, after = results[name]
    line = one_error_line(proc)
    for part in cases[name][1]:
        assert part in line, line
    assert "Traceback" not in proc.stderr
    if after is not None:
        assert after == before[name], f"{name} changed {cases[name][2]}"


def test_unknown_split_is_refused_by_the_parser(tmp_path):
    """`--split` is a closed choice: argparse's usage + one error line, exit 2, no traceback."""
    wf = tmp_path / "wf.py"
    wf.write_text("def solver(agent, task):\n    return {'answer': '1'}\n")
    proc = subprocess.run([sys.executable, "-m", "w4s_ray", "eval", "-w", str(wf), "-b", "gsm8k",
                           "--split", "train"], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and "'train'" in errors[0]


def test_unknown_split_in_the_api_is_a_data_error(gsm8k):
    from w4s_ray.errors import DataError

    with pytest.raises(DataError, match="unknown split 'training'"):
        gsm8k.load("training")


@pytest.mark.slow
def test_meta_agent_that_never_returns_code_keeps_the_seed(data_dir, tmp_path):
    """Under the earlier process (`rlao.protocol=w4s-ray`) not an error: every candidate is an
    invalid row (`no code: ...`), the state never advances, the best workflow stays a seed, and
    the run completes with its report. (Under the default w4s protocol such a turn is re-sampled,
    then the run stops with one line, as upstream's: tests/rlao/test_loop_w4s.py.)"""
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim
    from w4s_ray.rlao.trajectories import read_rows

    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["I would rather not write code.", "Here: solver(agent, task)"]))
    run = tmp_path / "run"
    with start_sim(SimConfig(latency="none"), data_dir, port=0) as sim:
        proc = subprocess.run(
            [sys.executable, "-m", "w4s_ray", "optimize", "-b", "gsm8k", "--turns", "2",
             "--run-dir", str(run), "--no-progress",
             "--set", f"executor.api_base={sim.url}",
             "--set", f"executor.cache.path={tmp_path / 'c.sqlite'}",
             "--set", "meta_agent.backend=scripted", "--set", f"meta_agent.model={replies}",
             "--set", "eval.limit=4", "--set", "rlao.test_limit=4", "--set",
             "rlao.candidates=2", "--set", "eval.num_evaluators=1",
             "--set", "rlao.protocol=w4s-ray"],
            capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(run / "trajectories")
    assert len(rows) == 4 and all(not r["valid"] and r["error"].startswith("no code")
                                  for r in rows)
    final = json.loads((run / "final.json").read_text())
    assert final["best_turn"] is None or final["best"] in final["seed_baselines"]
    assert (run / "report.md").exists()


@pytest.mark.slow
def test_executor_lost_mid_run_keeps_completed_turns(data_dir, tmp_path):
    """The simulator dies after the first committed turn: one error line naming the executor,
    a non-zero exit, the committed Parquet part unchanged, report and cost rewritten."""
    import time

    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    run = tmp_path / "run"
    sim = start_sim(SimConfig(latency="fixed", latency_ms=50), data_dir, port=0)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "w4s_ray", "optimize", "-b", "gsm8k", "--turns", "6",
             "--run-dir", str(run), "--no-progress", "--set", f"executor.api_base={sim.url}",
             "--set", "executor.cache.enabled=false", "--set", "executor.max_retries=2",
             "--set", "executor.retry_base_delay_s=0.05", "--set", "meta_agent.backend=scripted",
             "--set", "meta_agent.model=seed-variants", "--set", "eval.limit=4", "--set",
             "rlao.candidates=2", "--set", "eval.num_evaluators=1",
             "--set", "rlao.protocol=w4s-ray"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None and \
                not list((run / "trajectories").glob("part-*.parquet")):
            time.sleep(0.2)
        first = sorted((run / "trajectories").glob("part-*.parquet"))
        assert first, "no turn was committed"
        digest = {p.name: p.read_bytes() for p in first}
    finally:
        sim.stop()
    out, err = proc.communicate(timeout=600)
    line = one_error_line(subprocess.CompletedProcess([], proc.returncode, out, err))
    assert "executor" in line and sim.url.split("/v1")[0].split("//")[1] in line, line
    for name, data in digest.items():
        assert (run / "trajectories" / name).read_bytes() == data
    assert (run / "report.md").exists() and (run / "cost.json").exists()
    assert not (run / "final.json").exists()
