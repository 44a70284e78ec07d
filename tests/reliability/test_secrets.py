"""A recognisable fake API key never lands on disk.

A demo-sized run (simulator + scripted meta-agent: `optimize` 1 turn and `collect` 1 turn on
Ray) with the key in the environment (`OPENAI_API_KEY`) and, separately, in a key file named
by `executor.api_key_file`. With the key in the environment the run goes on: `w4s train` on
the collected rows (tiny model, 2 steps), `w4s serve --detach` of the result, one chat
completion, `--shutdown`. Afterwards every byte written under the test's directory — run dirs,
Parquet, reports, metrics, the completion cache, checkpoints, the exported model, the Ray
session dirs (logs of the driver, raylet, workers, actors and Serve), the serve log — plus the
CLI's stdout/stderr and the served response are searched for the key. The key file itself is
the only allowed hit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.reliability.helpers import REPO, find_bytes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

KEY = "sk-test-W4SFAKEKEY-" + "7f3a9c1e5b" * 4


@pytest.fixture(scope="module")
def secret_sim(data_dir):
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    handle = start_sim(SimConfig(latency="none"), data_dir, port=0)
    yield handle
    handle.stop()


@pytest.fixture
def short_tmp():
    # Ray's socket paths must stay short; pytest's tmp_path is too deep for a Ray temp dir.
    d = Path(tempfile.mkdtemp(prefix="w4sk-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "w4s_ray", *args], capture_output=True,
                          text=True, timeout=1500, env=env, cwd=REPO)


def _train_and_serve(root: Path, env: dict, common: list[str]) -> list[str]:
    """RWR-train the tiny model on the collected rows (2 steps), serve it, ask it once."""
    import json
    import socket
    import urllib.request

    from w4s_ray.config import TinyModelConfig
    from w4s_ray.train.tiny import build_tiny_model

    base = build_tiny_model(root / "tiny", TinyModelConfig(vocab_size=2048, seed=0))
    out = root / "runs" / "train"
    proc = _run(["train", "--data", str(root / "runs" / "collect" / "trajectories"),
                 "--base-model", str(base), "--out", str(out), "--set", "train.strategy=ddp",
                 "--set", "train.max_steps=2", "--set", "train.batch_size=2", *common], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    texts = [proc.stdout + proc.stderr]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = ["serve", "--model", str(out / "model"), "--port", str(port), "--name", "keytest",
             "--set", f"serve.registry_dir={root / 'serve'}", *common]
    proc = _run([*serve, "--detach"], env)
    texts.append(proc.stdout + proc.stderr)
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        body = json.dumps({"model": "keytest", "max_tokens": 16, "messages": [
            {"role": "user", "content": "Write a workflow. The key is in your env."}]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json",
                                              "Authorization": "Bearer not-the-key"})
        texts.append(urllib.request.urlopen(req, timeout=120).read().decode())
        assert "choices" in texts[-1]
    finally:
        stop = _run([*serve, "--shutdown"], env)
        texts.append(stop.stdout + stop.stderr)
    return texts


@pytest.mark.parametrize("via", ["env", "key_file"])
def test_fake_key_is_in_no_file_log_or_output(via, secret_sim, short_tmp):
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    extra: list[str] = []
    key_file = short_tmp / "secrets" / "openai.key"
    if via == "env":
        env["OPENAI_API_KEY"] = KEY
    else:
        key_file.parent.mkdir()
        key_file.write_text(KEY + "\n")
        extra = ["--set", f"executor.api_key_file={key_file}"]
    common = ["--set", f"executor.api_base={secret_sim.url}",
              "--set", f"executor.cache.path={short_tmp / 'cache' / 'completions.sqlite'}",
              "--set", "meta_agent.backend=scripted", "--set", "meta_agent.model=seed-variants",
              "--set", "eval.limit=4", "--set", "eval.num_evaluators=1",
              "--set", "rlao.candidates=2", "--set", "rlao.test_limit=4",
              "--set", f"ray.temp_dir={short_tmp / 'ray'}", "--set",
              f"run_dir={short_tmp / 'runs'}", *extra]
    outputs = []
    for args in (["optimize", "-b", "gsm8k", "--turns", "1", "--no-progress"],
                 ["collect", "--benchmarks", "gsm8k,mmlu_pro", "--turns", "1",
                  "--no-progress"]):
        proc = _run([*args, *common], env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append(proc.stdout + proc.stderr)

    if via == "env":
        outputs += _train_and_serve(short_tmp, env, common)

    written = list((short_tmp / "runs").rglob("*.parquet"))
    assert written and (short_tmp / "runs" / "optimize" / "gsm8k" / "report.md").exists()
    assert (short_tmp / "cache" / "completions.sqlite").exists()
    assert any((short_tmp / "ray").rglob("*.log")) or any((short_tmp / "ray").rglob("*.out"))
    hits = [h for h in find_bytes(short_tmp, KEY.encode()) if Path(h) != key_file]
    assert hits == []
    # a partial copy would be a leak too (e.g. a redaction that kept most of the key)
    assert find_bytes(short_tmp / "runs", KEY[8:28].encode()) == []
    assert all(KEY not in o and KEY[8:28] not in o for o in outputs)
