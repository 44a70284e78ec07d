"""`w4s demo` end to end with tiny settings: every stage runs for real, in a subprocess.

Asserts what a user reads: the printed report path, the stage table, the per-turn validation
accuracy and dollars of the optimization that used the SERVED meta-agent, the final test metric
next to the seed baselines; and that the demo leaves no simulator, Serve or Ray behind.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_reduced_demo_end_to_end(tmp_path):
    run_dir = tmp_path / "demo"
    port = _free_port()
    sets = [
        f"run_dir={run_dir}", "benchmarks=[gsm8k]", "benchmark=svamp",
        "tiny.warmstart_steps=30", "tiny.parse_samples=1", "tiny.vocab_size=2048",
        "rlao.turns=1", "rlao.candidates=2", "rlao.max_repairs=1", "rlao.racing.enabled=false",
        "rlao.test_limit=4", "eval.limit=4", "eval.num_evaluators=1",
        "meta_agent.max_tokens=96", "serve.default_max_tokens=96", f"serve.port={port}",
        "train.max_steps=2", "train.batch_size=1", "train.max_seq_len=1024",
        "sim.latency_ms=5", "executor.cache.enabled=false",
    ]
    cmd = [sys.executable, "-m", "w4s_ray", "demo", "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=2300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]

    report = run_dir / "demo_report.md"
    assert f"demo report: {report}" in out.stdout
    for stage in ("simulator", "init-tiny", "collect", "train", "serve", "optimize"):
        assert f"] {stage}: done" in out.stdout, stage
    text = report.read_text()
    assert "held-out benchmark **svamp**" in text
    for stage in ("simulator", "init-tiny", "collect", "train", "serve", "optimize"):
        assert f"| {stage} | done |" in text, stage
    # The optimization used the served model through litellm (the run records its config).
    import yaml

    used = yaml.safe_load((run_dir / "optimize" / "svamp" / "config.yaml").read_text())
    assert used["meta_agent"]["backend"] == "litellm"
    assert used["meta_agent"]["model"] == "openai/w4s-demo"
    assert used["meta_agent"]["api_base"] == f"http://127.0.0.1:{port}/v1"
    # Per-turn validation accuracy and dollars: the seed row plus one row per turn.
    assert "| turn | valid candidates | best valid acc (%) |" in text
    assert "| seeds | 3 |" in text and "\n| 1 | " in text
    final = json.loads((run_dir / "optimize" / "svamp" / "final.json").read_text())
    assert final["test_n"] == 4
    assert "| **W4S (served meta-agent)** |" in text
    for name, b in final["seed_baselines"].items():
        assert b["test_accuracy"] is not None
        assert f"| seed: {name} |" in text
    # Training really happened on the collected trajectories, and produced the served model.
    assert (run_dir / "collect" / "trajectories").is_dir()
    assert (run_dir / "train" / "model" / "config.json").exists()
    # Nothing left listening: neither the Serve proxy nor the simulator.
    sim_port = int(re.search(r"simulator: done in [\d.]+ s - http://127\.0\.0\.1:(\d+)/v1",
                             out.stdout).group(1))
    for p in (port, sim_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", p)) != 0, f"port {p} is still listening"
