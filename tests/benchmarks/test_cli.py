"""`w4s data list|verify|fetch` through the real console script."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

W4S = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "w4s")


def run(*args: str, data_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "W4S_DATA_DIR"}
    if data_dir is not None:
        env["W4S_DATA_DIR"] = str(data_dir)
    return subprocess.run([W4S, *args], capture_output=True, text=True, env=env, timeout=120)


def test_verify_all_ok(data_dir):
    res = run("data", "verify", data_dir=data_dir)
    assert res.returncode == 0, res.stderr
    assert "89/89 files ok" in res.stdout
    assert "ok       gpqa/dataset.zip" in res.stdout


def test_verify_bad_dir_is_one_line_nonzero():
    res = run("data", "verify", "--set", "data.dir=/nope")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("w4s: error: data directory /nope")
    assert "Traceback" not in res.stderr


def test_verify_mismatch_exits_nonzero(tmp_data_copy):
    root = tmp_data_copy(replace={"svamp/SVAMP.json": b"[]"})
    res = run("data", "verify", "--set", f"data.dir={root}")
    assert res.returncode == 1
    assert "MISMATCH svamp/SVAMP.json" in res.stdout and "88/89 files ok" in res.stdout


def test_list_table(data_dir):
    res = run("data", "list", data_dir=data_dir)
    assert res.returncode == 0
    rows = [line for line in res.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].split("|")[1].strip() == "benchmark"
    assert len(rows) == 12
    gpqa = next(r for r in rows if r.startswith("| gpqa "))
    cells = [c.strip() for c in gpqa.strip("|").split("|")]
    assert cells == ["gpqa", "multiple_choice", "32", "166", "gpqa/dataset.zip", "ok"]


@pytest.mark.parametrize("verb", ["list", "verify", "fetch"])
def test_each_verb_has_help(verb):
    res = run("data", verb, "--help")
    assert res.returncode == 0 and "--set" in res.stdout


def test_fetch_unknown_path_is_an_error(tmp_path):
    res = run("data", "fetch", "--set", f"data.dir={tmp_path}", "--only", "nope.txt")
    assert res.returncode == 2 and "nope.txt" in res.stderr


def test_fetch_out_names_the_directory_it_fills(tmp_path, data_dir):
    """`--out DIR` is where fetch looks and writes (here every asked-for file is already ok,
    so nothing is downloaded and the run is offline-safe)."""
    (tmp_path / "svamp").mkdir()
    (tmp_path / "svamp" / "SVAMP.json").symlink_to(data_dir / "svamp" / "SVAMP.json")
    res = run("data", "fetch", "--out", str(tmp_path), "--only", "svamp/SVAMP.json")
    assert res.returncode == 0, res.stderr
    assert f"0 fetched, 1 already ok in {tmp_path}" in res.stdout
