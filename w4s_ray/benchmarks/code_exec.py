"""Run untrusted candidate code against tests in a separate, limited process.

Used by the code benchmarks to score a prediction (the hidden tests) and by the workflow runtime
for public tests. The candidate never runs in the caller: each call starts
`python -I` (isolated: no user site, no PYTHON* env vars) in a fresh temporary directory with a
minimal environment (no API keys), rlimits on CPU time, address space, file size and open files,
its own session (process group), stdin closed and stdout discarded. On timeout the whole process
group is killed with SIGKILL; the group is also killed after a normal exit, so stray children die.

Pass/fail is not read from the exit code or stdout (a candidate can `sys.exit(0)` or print
anything): the harness writes `PASS <nonce>` to a private pipe only after every test ran, where
the nonce reached the child on a pipe the harness read and closed before the candidate ran.
What this does not defend against: a candidate that introspects the harness's own frames to
find the nonce, or that uses CPU on other cores through threads within its CPU-time budget. It
is a scoring sandbox, not a security boundary against a determined attacker; the workflow
sandbox (w4s_ray/workflow) adds the OS-level isolation for whole workflows.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
MAX_DETAIL_CHARS = 2000
# Reading the candidate's stderr is capped: a test that prints megabytes must not cost megabytes.
MAX_STDERR_BYTES = 1 << 20

_HARNESS = r'''
import os, sys
def _w4s_main():
    import resource
    fd, cpu, mem_mb, file_mb = (int(x) for x in sys.argv[1:5])
    # Limits are set here, by trusted code, before the candidate runs (soft == hard, so the
    # candidate cannot raise them); doing it in preexec_fn is unsafe in a threaded parent.
    for lim, val in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, mem_mb << 20),
                     (resource.RLIMIT_FSIZE, file_mb << 20), (resource.RLIMIT_NOFILE, 64),
                     (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(lim, (val, val))
    nonce = sys.stdin.readline().strip()
    sys.stdin.close()
    os.close(0)
    sol = open("solution.py", encoding="utf-8").read()
    tests = open("tests.py", encoding="utf-8").read()
    entry = sys.argv[5] if len(sys.argv) > 5 else ""
    ns = {"__name__": "__w4s_candidate__", "__builtins__": __builtins__}
    msg = ""
    try:
        exec(compile(sol, "solution.py", "exec"), ns)
        exec(compile(tests, "tests.py", "exec"), ns)
        if entry:
            if entry not in ns:
                raise NameError(f"entry point {entry!r} is not defined by the solution")
            check = ns.get("check")
            if callable(check):
                import inspect
                try:
                    nparams = len(inspect.signature(check).parameters)
                except (TypeError, ValueError):
                    nparams = 1
                check(ns[entry]) if nparams else check()
    except BaseException as exc:  # noqa: BLE001 - any failure of untrusted code is a fail
        try:
            text = f"{type(exc).__name__}: {exc}"
        except BaseException:
            text = type(exc).__name__
        msg = "FAIL " + text[:2000]
    else:
        msg = "PASS " + nonce
    os.write(fd, msg.encode("utf-8", "replace"))
    os.close(fd)
    os._exit(0)
_w4s_main()
'''


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    status: str          # "passed" | "failed" | "error" | "timeout"
    detail: str          # first failure, truncated; "" when passed
    duration_s: float


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_tests(solution: str, tests: str, *, entry_point: str | None = None,
              timeout_s: float = DEFAULT_TIMEOUT_S, cpu_s: float | None = None,
              memory_mb: int = DEFAULT_MEMORY_MB, file_mb: int = 16,
              python: str | None = None) -> ExecResult:
    """Run `solution` then `tests` (then `check(entry_point)` if the tests define `check`).

    `tests` is Python source: plain asserts, or a `check(candidate)` / `check()` function as in
    HumanEval / MBPP. `timeout_s` is wall-clock; `cpu_s` (default: `timeout_s`) is the
    CPU-time rlimit, which is what bounds a busy loop independently of machine load.
    Returns an `ExecResult`; never raises for anything the candidate does.
    """
    start = time.monotonic()
    nonce = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="w4s-exec-") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "solution.py").write_text(solution, encoding="utf-8", errors="replace")
        (tmpdir / "tests.py").write_text(tests, encoding="utf-8", errors="replace")
        (tmpdir / "harness.py").write_text(_HARNESS, encoding="utf-8")
        stderr_path = tmpdir / "stderr.txt"
        read_fd, write_fd = os.pipe()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "HOME": str(tmpdir), "TMPDIR": str(tmpdir), "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
        cpu_limit = max(1, math.ceil(cpu_s if cpu_s is not None else timeout_s))
        argv = [python or sys.executable, "-I", "harness.py", str(write_fd), str(cpu_limit),
                str(memory_mb), str(file_mb)] + ([entry_point] if entry_point else [])
        try:
            with open(stderr_path, "wb") as err:
                proc = subprocess.Popen(
                    argv, cwd=tmpdir, env=env, stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, stderr=err, pass_fds=(write_fd,),
                    start_new_session=True,
                )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            return ExecResult(False, "error", f"cannot start python: {exc}",
                              time.monotonic() - start)
        os.close(write_fd)
        try:
            assert proc.stdin is not None
            proc.stdin.write((nonce + "\n").encode())
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc)
            proc.wait()
        os.set_blocking(read_fd, False)
        chunks = []
        try:
            while True:
                block = os.read(read_fd, 65536)
                if not block:
                    break
                chunks.append(block)
                if sum(map(len, chunks)) > 8192:
                    break
        except BlockingIOError:
            pass
        finally:
            os.close(read_fd)
        report = b"".join(chunks).decode("utf-8", "replace")
        duration = time.monotonic() - start
        if timed_out:
            return ExecResult(False, "timeout", f"timed out after {timeout_s:g}s", duration)
        if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL) and not report:
            return ExecResult(False, "timeout", f"CPU time limit ({cpu_limit}s) exceeded",
                              duration)
        if report == f"PASS {nonce}":
            return ExecResult(True, "passed", "", duration)
        if report.startswith("FAIL "):
            return ExecResult(False, "failed", report[5:][:MAX_DETAIL_CHARS], duration)
        with open(stderr_path, "rb") as fh:
            fh.seek(max(0, stderr_path.stat().st_size - MAX_STDERR_BYTES))
            tail = fh.read().decode("utf-8", "replace").strip().splitlines()
        last = tail[-1] if tail else f"exit code {proc.returncode}"
        if proc.returncode is not None and proc.returncode < 0:
            last = f"killed by signal {-proc.returncode}" + (f" ({last})" if tail else "")
        return ExecResult(False, "error", last[:MAX_DETAIL_CHARS], duration)
