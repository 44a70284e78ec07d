"""Stages whose run directory is an `s3://` URI (a local moto server), through Ray (slow).

- `optimize` into the bucket: every file of the run is there when it ends; a `--resume` with a
  fresh staging directory (another machine) pulls the stored turn back instead of recomputing
  it and adds the next; `w4s report` regenerates a report in the bucket.
- `collect` into the bucket: each turn's Parquet part is there before the next turn runs.
- `train` from trajectories in the bucket into the bucket: Ray Train writes its checkpoints to
  `<out>/ray` itself; the model, log and summary are synced; a second fresh start is refused
  naming the URI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.rlao.conftest import rlao_sim  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(900)]


def _cfg(sim_url: str, tmp_path, staging: str):
    from w4s_ray import api

    return api.config(None, {
        "executor.api_base": sim_url, "executor.cache.path": str(tmp_path / "cache.sqlite"),
        "meta_agent.backend": "scripted", "meta_agent.model": "seed-variants",
        "eval.limit": 4, "eval.num_evaluators": 1, "rlao.candidates": 2, "rlao.test_limit": 4,
        "storage.staging_dir": str(tmp_path / staging), "storage.sync_interval_s": 0,
    })


def _rows(s3, *parts) -> list[dict]:
    import io

    rows = []
    for name in s3.files(*parts):
        if name.endswith(".parquet"):
            rows += pq.read_table(io.BytesIO(s3.read(*parts, name))).to_pylist()
    return sorted(rows, key=lambda r: (r["turn"], r["candidate"]))


def test_optimize_into_s3_resume_from_it_and_report(ray_session, rlao_sim, s3, tmp_path):  # noqa: F811
    from w4s_ray import api

    uri = s3.uri("runs", "opt")
    first = api.optimize(_cfg(rlao_sim.url, tmp_path, "a"), benchmark="gsm8k", turns=1,
                         run_dir=uri, progress=False)
    stored = s3.files("runs", "opt")
    for name in ("config.yaml", "metrics.jsonl", "cost.json", "final.json", "final_workflow.py",
                 "report.md", "curve.png", "seeds/gsm8k.json",
                 "trajectories/part-gsm8k-e00-0001.parquet"):  # turn 1 (seeds are turn 0)
        assert name in stored, (name, stored)
    assert not any(n.startswith(".") or "/." in n for n in stored)  # no temp files
    assert first.run_dir.is_relative_to(tmp_path / "a")  # the local copy, kept
    assert json.loads(s3.read("runs", "opt", "final.json"))["best"] == first.best
    turn1 = _rows(s3, "runs", "opt", "trajectories")
    assert len(turn1) == 2

    second = api.optimize(_cfg(rlao_sim.url, tmp_path, "b"), benchmark="gsm8k", turns=2,
                          run_dir=uri, resume=True, progress=False)
    assert second.run_dir.is_relative_to(tmp_path / "b")
    rows = _rows(s3, "runs", "opt", "trajectories")
    assert [r["turn"] for r in rows] == [1, 1, 2, 2]
    assert rows[:2] == turn1  # pulled from the bucket, not recomputed (same created_at)
    assert json.loads(s3.read("runs", "opt", "final.json"))["turns"] == 2
    assert len(s3.read("runs", "opt", "metrics.jsonl").decode().splitlines()) == 2

    # `w4s report URI`: pulled, regenerated, pushed (no Ray)
    before = s3.read("runs", "opt", "report.md")
    s3.write(b"stale", "runs", "opt", "report.md")
    # `report` takes no config: its staging copy goes to ~/.cache (here: a temp HOME).
    proc = subprocess.run([sys.executable, "-m", "w4s_ray", "report", uri],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"optimize report: {uri}/report.md"
    assert list((tmp_path / "home").glob(".cache/w4s-ray/staging/*/opt/report.md"))
    again = s3.read("runs", "opt", "report.md").decode()
    assert again.splitlines()[0] == before.decode().splitlines()[0]
    assert "gsm8k-e00" in again and "| seed: " in again


def test_collect_into_s3_syncs_each_turn(ray_session, rlao_sim, s3, tmp_path,  # noqa: F811
                                         monkeypatch):
    from w4s_ray import api, storage

    synced: list[list[str]] = []
    real = storage.Stage.sync

    def spy(self):  # what the bucket holds after each sync (a turn, or the stage's end)
        ok = real(self)
        synced.append(s3.files("runs", "col"))
        return ok

    monkeypatch.setattr(storage.Stage, "sync", spy)
    res = api.collect(_cfg(rlao_sim.url, tmp_path, "c"), benchmarks=["gsm8k"], episodes=1,
                      turns=2, out=s3.uri("runs", "col"), progress=False)
    assert res.rows == 4
    parts = [[n for n in files if n.startswith("trajectories/")] for files in synced]
    # the first turn's part reached the bucket before the second turn ran
    assert ["trajectories/part-gsm8k-e00-0001.parquet"] in parts
    assert {"report.md", "cost.json", "trajectories/part-gsm8k-e00-0002.parquet"} <= \
        set(s3.files("runs", "col"))


def test_train_reads_and_writes_s3_with_ray_train_storage_there(s3, tmp_path, tiny_model_dir):
    from tests.train.synth import make_rows, write_trajectories

    local = write_trajectories(tmp_path / "traj" / "part-0.parquet", make_rows(n_episodes=2))
    buf = pa.BufferOutputStream()
    pq.write_table(pq.read_table(local), buf)
    s3.write(buf.getvalue().to_pybytes(), "data", "trajectories", "part-0.parquet")
    out = s3.uri("runs", "train")
    args = [sys.executable, "-m", "w4s_ray", "--quiet", "train", "--data",
            s3.uri("data", "trajectories"), "--base-model", str(tiny_model_dir), "--out", out,
            "--set", "train.batch_size=2", "--set", "train.epochs=1", "--set",
            "train.num_workers=1", "--set", "train.strategy=ddp", "--set",
            "train.checkpoint_every=1", "--set", f"storage.staging_dir={tmp_path / 'stage'}",
            "--set", "ray.num_cpus=2"]
    # The CLI's own local Ray inherits the AWS_* variables: Ray Train's workers write there.
    proc = subprocess.run(args, capture_output=True, text=True, timeout=800,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    stored = s3.files("runs", "train")
    assert "train_summary.md" in stored and "train_log.jsonl" in stored
    assert "model/config.json" in stored and any(n.startswith("model/") and
                                                 n.endswith(".safetensors") for n in stored)
    ckpts = [n for n in stored if n.startswith("ray/rwr/checkpoint_")]
    assert any(n.endswith("/train_state.json") for n in ckpts), stored
    # nothing of Ray Train's storage went through the staging copy
    assert not list((tmp_path / "stage").glob("*/ray"))
    again = subprocess.run(args, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ))
    assert again.returncode == 2
    assert f"{out} already holds a training run; pass --resume" in again.stderr
