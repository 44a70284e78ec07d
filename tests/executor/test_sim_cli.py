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
