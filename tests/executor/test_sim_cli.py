"""`w4s sim serve` on the command line."""

from __future__ import annotations

import socket
import subprocess
import sys

from w4s_ray.cli import main


def test_sim_serve_help(capsys):
    try:
        main(["sim", "serve", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for flag in ("--port", "--profile", "--latency-ms", "--fault-429", "--fault-malformed", "--seed"):
        assert flag in out


def test_port_in_use_is_one_clear_error(sim_items_file):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "w4s_ray.cli", "sim", "serve", "--port", str(port),
                            "--items-file", str(sim_items_file)],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == f"w4s: error: cannot serve the simulator on 127.0.0.1:{port}: address already in use"


def test_unknown_profile_is_one_clear_error(sim_items_file):
    r = subprocess.run([sys.executable, "-m", "w4s_ray.cli", "sim", "serve", "--port", "0",
                        "--profile", "sim-gpt-9", "--items-file", str(sim_items_file)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("w4s: error: unknown sim profile 'sim-gpt-9'")


def test_a_launched_simulator_stops_when_its_launcher_is_killed(sim_items_file):
    import os
    import signal
    import time

    # A launcher that starts the simulator, reports its pid and port, then hangs until killed
    # (as a demo or test killed on a timeout would, never reaching its cleanup).
    code = ("import sys, time\n"
            "from w4s_ray.executor.sim.launch import start_sim\n"
            f"h = start_sim(items_file={str(sim_items_file)!r})\n"
            "print(h.proc.pid, h.url.rsplit(':', 1)[1].split('/')[0], flush=True)\n"
            "time.sleep(600)\n")
    launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid, port = (int(x) for x in launcher.stdout.readline().split())
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # serving
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.2)
    if _running(pid):
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the simulator outlived its killed launcher")


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited orphan waits as a zombie where pid 1 does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
