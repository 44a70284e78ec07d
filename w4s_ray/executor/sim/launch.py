"""Start the simulator as a subprocess and wait until it answers: `start_sim(...) -> SimHandle`.

The child binds the requested port (0 = a free one chosen by the OS, so parallel tests never
race for a port), prints the port it got, and builds its item index in the background; the
launcher returns once `/health` says the index is ready. `SimHandle.stop()` terminates the
child (SIGTERM, then SIGKILL) and is idempotent; the handle is also a context manager.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from w4s_ray.config import SimConfig
from w4s_ray.errors import ExecutorError
from w4s_ray.executor.sim.options import to_argv

READY_LINE = "W4S_SIM_LISTENING"


@dataclass
class SimHandle:
    url: str  # the OpenAI base URL, e.g. http://127.0.0.1:40123/v1
    port: int
    proc: subprocess.Popen = field(repr=False)
    listen_s: float = 0.0  # seconds from spawn until the port was bound
    _stderr: list[str] = field(default_factory=list, repr=False)

    @property
    def base(self) -> str:
        return self.url[: -len("/v1")]

    def get(self, path: str, timeout: float = 5.0) -> dict:
        with urllib.request.urlopen(self.base + path, timeout=timeout) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict:
        return self.get("/stats")

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _drain(stream, sink: list[str]) -> None:
    for line in stream:
        sink.append(line.rstrip("\n"))
        del sink[:-50]


def start_sim(sim_cfg: SimConfig | None = None, data_dir: str | os.PathLike | None = None,
              port: int = 0, *, items_file: str | os.PathLike | None = None,
              startup_timeout_s: float = 60.0) -> SimHandle:
    """Run `python -m w4s_ray.executor.sim` on `port` (0: any free port) and wait for it."""
    cfg = (sim_cfg or SimConfig()).model_copy(update={"port": port})
    cmd = [sys.executable, "-m", "w4s_ray.executor.sim", *to_argv(cfg),
           "--exit-with-parent", str(os.getpid())]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    if items_file is not None:
        cmd += ["--items-file", str(items_file)]
    env = dict(os.environ)
    repo_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = repo_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    err_lines: list[str] = []
    threading.Thread(target=_drain, args=(proc.stderr, err_lines), daemon=True).start()
    t0 = time.monotonic()
    deadline = t0 + startup_timeout_s
    got_port = None
    line = proc.stdout.readline()  # blocks until the child has bound (or died)
    if line.startswith(READY_LINE):
        got_port = int(line.split("port=")[1])
        threading.Thread(target=_drain, args=(proc.stdout, []), daemon=True).start()
    if got_port is None:
        proc.wait(timeout=10)
        time.sleep(0.1)
        msg = next((x for x in reversed(err_lines) if x.startswith("w4s: error:")), None)
        reason = msg[len("w4s: error: "):] if msg else (err_lines[-1] if err_lines else f"exit code {proc.returncode}")
        raise ExecutorError(f"simulator did not start: {reason}")
    handle = SimHandle(url=f"http://{cfg.host}:{got_port}/v1", port=got_port, proc=proc,
                       listen_s=time.monotonic() - t0, _stderr=err_lines)
    while True:
        try:
            if handle.get("/health", timeout=2).get("index") == "ready":
                return handle
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            handle.stop()
            raise ExecutorError(f"simulator on port {got_port} did not become ready within "
                                f"{startup_timeout_s:.0f} s")
        time.sleep(0.05)
