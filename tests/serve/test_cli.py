"""`w4s serve` on the command line: fast refusals before Ray, then --detach/--status/--shutdown
and a foreground Ctrl-C in real subprocesses (slow)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from w4s_ray.cli import main

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["serve", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _reg(tmp_path: Path) -> list[str]:
    return ["--set", f"serve.registry_dir={tmp_path / 'reg'}"]


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if anything tries to start or join Ray."""
    import w4s_ray.runtime.ray_init as ray_init

    def refuse(*_a, **_k):
        raise AssertionError("Ray was started before the bad input was reported")

    monkeypatch.setattr(ray_init, "init_ray", refuse)


def test_missing_checkpoint_is_one_line_error_before_ray(capsys, tmp_path, no_ray):
    rc, _, err = _run(capsys, "--model", str(tmp_path / "missing"), *_reg(tmp_path))
    assert rc == 2
    assert err.strip().splitlines() == [
        f"w4s: error: model '{tmp_path / 'missing'}' does not exist (no such directory or file)"
    ]


def test_dir_without_model_is_refused(capsys, tmp_path, no_ray):
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, "--model", str(tmp_path / "empty"), *_reg(tmp_path))
    assert rc == 2 and "is not a model directory: config.json is missing" in err


def test_port_in_use_is_refused(capsys, tmp_path, tiny_model_dir, no_ray):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        rc, _, err = _run(capsys, "--model", str(tiny_model_dir), "--port", str(port),
                          *_reg(tmp_path))
    finally:
        holder.close()
    assert rc == 2
    assert err.strip() == (
        f"w4s: error: port {port} on 127.0.0.1 is already in use; pick another with --port"
    )


def test_vllm_backend_without_vllm(capsys, tmp_path, tiny_model_dir, no_ray):
    rc, _, err = _run(capsys, "--model", str(tiny_model_dir), "--set", "serve.backend=vllm",
                      "--set", "serve.num_gpus=1", *_reg(tmp_path))
    assert rc == 2 and "needs vLLM" in err


def test_bad_flag_value_names_the_key(capsys, tmp_path):
    rc, _, err = _run(capsys, "--port", "0", "--status", *_reg(tmp_path))
    assert rc == 2 and "serve.port" in err


def test_status_and_shutdown_of_unknown_app(capsys, tmp_path):
    rc, _, err = _run(capsys, "--status", "--name", "ghost", *_reg(tmp_path))
    assert rc == 2 and "no serve app 'ghost' is recorded" in err
    rc, _, err = _run(capsys, "--shutdown", "--name", "ghost", *_reg(tmp_path))
    assert rc == 2 and "no serve app 'ghost'" in err


def test_stale_record_is_reported_and_cleared(capsys, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "old.json").write_text(json.dumps({
        "name": "old", "mode": "detached", "state": "running", "url": "http://127.0.0.1:9",
        "pid": proc.pid, "pid_start": "1",
    }))
    rc, out, _ = _run(capsys, "--status", "--name", "old", *_reg(tmp_path))
    assert rc == 1 and "stale" in out
    rc, out, _ = _run(capsys, "--shutdown", "--name", "old", *_reg(tmp_path))
    assert rc == 0 and "stale record removed" in out
    assert not (reg / "old.json").exists()


# --- real processes ---------------------------------------------------------------------------

def _w4s(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "w4s_ray.cli", *argv], cwd=REPO,
                          capture_output=True, text=True, **kw)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # Zombies still count for killpg; a group of only zombies is gone for our purpose.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_detach_status_shutdown_roundtrip(tmp_path, tiny_model_dir):
    port = _free_port()
    common = ["--name", "tiny-detached", "--port", str(port), *_reg(tmp_path),
              "--set", "serve.num_cpus=0.25"]
    started = _w4s("serve", "--model", str(tiny_model_dir), "--detach", *common, timeout=420)
    entry_file = tmp_path / "reg" / "tiny-detached.json"
    entry = json.loads(entry_file.read_text()) if entry_file.exists() else {}
    pid = entry.get("pid")
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        assert f"http://127.0.0.1:{port}/v1" in started.stdout
        assert entry["state"] == "running" and entry["mode"] == "detached"

        status = _w4s("serve", "--status", *common, timeout=60)
        assert status.returncode == 0, status.stderr
        assert f"http://127.0.0.1:{port}" in status.stdout and "health: ok" in status.stdout

        # The detached server answers on its own: the CLI that started it has exited.
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60, json={
            "model": "tiny-detached", "messages": [{"role": "user", "content": "hi"}],
            "n": 2, "max_tokens": 5})
        assert r.status_code == 200 and len(r.json()["choices"]) == 2

        again = _w4s("serve", "--model", str(tiny_model_dir), "--detach", *common, timeout=60)
        assert again.returncode == 2 and "already running" in again.stderr

        stopped = _w4s("serve", "--shutdown", *common, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped" in stopped.stdout
        assert not entry_file.exists()
        deadline = time.monotonic() + 30
        while _group_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _group_alive(pid), "the supervisor or its Ray outlived --shutdown"
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # the port is free again
    finally:
        if pid and _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_foreground_ctrl_c_shuts_down_cleanly(tmp_path, tiny_model_dir):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "w4s_ray.cli", "serve", "--model", str(tiny_model_dir),
         "--name", "tiny-fg", "--port", str(port), *_reg(tmp_path),
         "--set", "serve.num_cpus=0.25"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 400
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(1)
        assert ready, "foreground server never became healthy"
        # /health answers while start-up still waits for the app to be RUNNING; a Ctrl-C
        # then is an interrupted start (exit 130). Stop a server that says it is running.
        deadline = time.monotonic() + 120
        while True:
            status = _w4s("serve", "--status", "--name", "tiny-fg", *_reg(tmp_path), timeout=60)
            if "state: running" in status.stdout or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert status.returncode == 0 and "mode: foreground" in status.stdout
        assert "state: running" in status.stdout, status.stdout
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-2000:]
        assert "shutting down" in out
        # Serve's INFO lines and its per-request access log (the /health polls above) stay in
        # Serve's log files unless --verbose: the terminal is the user's.
        assert "GET /health" not in out and not re.search(r"\bINFO \d{4}-", out), out[-2000:]
        assert not (tmp_path / "reg" / "tiny-fg.json").exists()
        deadline = time.monotonic() + 90  # Ray's own processes: slow to exit under load
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _group_alive(proc.pid), "Ray processes outlived the foreground server"
    finally:
        if proc.poll() is None or _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
