"""`ray job submit` of a small sweep to a local head, exactly as on a cluster (docs/CLUSTERS.md).

Starts its own head on 127.0.0.1 (free ports, own --temp-dir, auth off) with `ray start --head
--block` in its own process group, so stopping it touches only what this test started (never
`ray stop`, which would kill every Ray on the machine). The sweep config reaches the job as
`--set` overrides; the data dir as `data.dir` (the runtime env's W4S_DATA_DIR is the cluster's
path). The run directory is a bucket on a local S3 server (moto): the job's results are
read back from it after the job ends, as after a cluster is deleted (docs/CLUSTERS.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from w4s_ray.config import SimConfig

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not up within {timeout_s} s")


def _procs_under(temp_dir: str) -> list[int]:
    """Pids of processes whose command line names our temp dir (the head's daemons)."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmd:
            pids.append(int(p.name))
    return pids


def _stop_head(proc: subprocess.Popen, temp_dir: str) -> None:
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for _ in range(20):  # daemons that left the process group
        left = _procs_under(temp_dir)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)


# In `make test` on purpose (issue 8): `ray job submit` against a local head, ~50 s here.
@pytest.mark.timeout(1500)
def test_ray_job_submit_runs_a_sweep_on_a_local_head(tmp_path, data_dir, s3):
    from w4s_ray.executor.sim.launch import start_sim

    gcs, dash = _free_port(), _free_port()
    temp_dir = tempfile.mkdtemp(prefix="w4sjob-", dir="/tmp")  # short: unix socket paths
    env = _env()  # with the fake S3's AWS_* variables: the job's driver runs on this head
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={gcs}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
         f"--ray-client-server-port={_free_port()}",
         f"--dashboard-agent-listen-port={_free_port()}", "--disable-usage-stats",
         "--num-cpus=4", f"--temp-dir={temp_dir}"],
        env=env, cwd=REPO, start_new_session=True,
        stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT,
    )
    sim = None
    run_dir = s3.uri("runs", "sweep")  # outside the job's working dir, kept after the job
    sid = f"w4s-test-{uuid.uuid4().hex[:8]}"
    address = f"http://127.0.0.1:{dash}"
    try:
        sim = start_sim(SimConfig(latency="fixed", latency_ms=5), data_dir)
        _wait_http(f"{address}/api/version", 180, head)
        sets = [f"run_dir={run_dir}", f"storage.staging_dir={tmp_path / 'staging'}",
                f"data.dir={data_dir}", f"executor.api_base={sim.url}",
                "executor.model=openai/sim-gpt-4o-mini", "executor.pricing_model=gpt-4o-mini",
                "executor.cache.enabled=false", "executor.requests_per_minute=null",
                "eval.num_evaluators=2", "eval.limit=2", "rlao.test_limit=2", "rlao.turns=1",
                "rlao.candidates=2", "meta_agent.backend=scripted",
                "meta_agent.model=seed-variants", "ray.address=null"]
        cmd = [str(BIN / "ray"), "job", "submit", "--address", address,
               "--submission-id", sid, "--working-dir", ".",
               "--runtime-env", "clusters/runtime_env.yaml", "--",
               "python", "-m", "w4s_ray", "sweep", "experiments/sweep_11.yaml",
               "--benchmarks", "gsm8k,svamp", "--no-progress"]
        for s in sets:
            cmd += ["--set", s]
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=1200)
        from ray.job_submission import JobStatus, JobSubmissionClient

        state = JobSubmissionClient(address).get_job_status(sid)
        assert state == JobStatus.SUCCEEDED, f"{state}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        assert out.returncode == 0
        # The results are in the bucket, not in the job's (temporary) working dir.
        stored = s3.files("runs", "sweep")
        for name in ("sweep_report.md", "sweep.json", "gsm8k/final.json", "svamp/final.json"):
            assert name in stored, (name, stored)
        assert any(f.startswith("gsm8k/trajectories/part-") for f in stored)
        text = s3.read("runs", "sweep", "sweep_report.md").decode()
        assert "| method | gsm8k | svamp | total |" in text
        assert "2 of 2 benchmarks completed" in text
        state = json.loads(s3.read("runs", "sweep", "sweep.json"))
        assert {b: s["status"] for b, s in state["benchmarks"].items()} == {
            "gsm8k": "done", "svamp": "done"}
        assert "2/2 benchmarks completed" in out.stdout
        assert f"stored in {run_dir}" in out.stdout + out.stderr
        assert not list(REPO.glob("s3*")) and not (REPO / "runs" / "sweep").exists()
    finally:
        if sim is not None:
            sim.stop()
        _stop_head(head, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not _procs_under(temp_dir)
