"""Small helpers shared by the top-level tests: a free port, and `w4s demo` in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (never a fixed one: suites run side by side)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(args: list[str], run_dir: Path, timeout: float) -> tuple[str, Path]:
    """`w4s demo <args>` from the repo root with a private local Ray; asserts it exited 0 and
    printed its report's path. Returns (stdout, report path)."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-m", "w4s_ray", "demo", "--no-progress", *args,
                          "--set", f"run_dir={run_dir}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    report = run_dir / "demo_report.md"
    assert f"demo report: {report}" in out.stdout
    return out.stdout, report
