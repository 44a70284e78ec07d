"""The scoring judge: run untrusted candidate code against tests, with a verdict the candidate
cannot reach.

Used by the code benchmarks to score a prediction (the hidden tests) and by the workflow runtime
for public tests. Each call starts two fresh processes from real files under `children/`
(`runner.py`, `judge.py`, sharing `codec.py`), both `python -I` in their own temporary
directories with a minimal environment (no API keys), rlimits on CPU time, address space, file
size and open files, their own sessions (process groups), stdout discarded, each wrapped by the
isolation backend (`isolation.py`; under bubblewrap each sees only its own directory):

- the **runner** executes the candidate source (plus the tests' import lines, so a solution may
  rely on them as it could when both shared one namespace) and then serves calls: "call function
  `name` with these arguments". It never sees the tests or the nonce.
- the **judge** (`python -I -S`: no site-packages, no .pth files) executes the tests. Every name
  the solution defines is a proxy in the tests' namespace: calling it sends the arguments to the
  runner and returns the result. Values cross the process boundary as tagged JSON (None, bool,
  int, float, complex, str, bytes, list, tuple, dict, set, frozenset, Fraction, Decimal,
  iterators as lists); the judge rebuilds them from its own builtins, so a returned object with
  a lying `__eq__`/`__hash__` arrives as plain data (or as an opaque value equal only to
  itself). Exceptions raised by the candidate reach the tests as the builtin exception type.
  In-place mutation of list/dict/set arguments is copied back.

The judge writes `PASS <nonce>` on a private pipe only after every test ran; the nonce reached it
on stdin, and the runner has neither the nonce, the tests, nor the judge's pipes. So exit codes,
`sys.exit(0)`/`os._exit(0)`, printed markers, patched builtins or `assert`, frame inspection,
`gc`, and `sys.settrace` in the candidate cannot produce a pass: none of them touch the judge.
On timeout both process groups are killed with SIGKILL (they are also killed after a normal
exit, so stray children die).

Defence in depth inside the runner (the one deny-list of `audit.py`, installed before the
candidate runs): no fork/exec/spawn/subprocess/kill, no ctypes, no sockets, no reading outside
its own directory and the Python installation (so not /proc/<judge>/mem, the judge's directory
or the data files), no writing or renaming outside its own directory (so no .pth file planted
in site-packages).

What this does not defend against: a candidate that computes the right answers (the point of
the benchmark), CPU use on other cores by threads within its CPU-time budget, or a kernel-level
escape. Audit hooks are not a security boundary against native code; that is why the verdict
lives in another process. The workflow runner (`runner.py`) applies the same isolation to
whole workflows. Values that are not plain data (class instances defined by the solution) cannot
be used by the tests beyond identity; HumanEval and MBPP tests only exchange plain data.
"""

from __future__ import annotations

import ast
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
from typing import Any

from w4s_ray.sandbox.isolation import select_isolation
from w4s_ray.sandbox.process import child_program, kill_group

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
MAX_DETAIL_CHARS = 2000
# Reading the candidate's stderr is capped: a test that prints megabytes must not cost megabytes.
MAX_STDERR_BYTES = 1 << 20

@dataclass(frozen=True)
class ExecResult:
    passed: bool
    status: str          # "passed" | "failed" | "error" | "timeout"
    detail: str          # first failure, truncated; "" when passed
    duration_s: float


def _import_lines(tests: str) -> str:
    """The tests' top-level import statements (the runner executes them after the solution)."""
    try:
        tree = ast.parse(tests)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ""
    nodes = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    # check() bodies of MBPP start with its test_imports: those count too.
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == "check":
            nodes += [n for n in fn.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return "\n".join(ast.unparse(n) for n in nodes) + "\n"


def _read_all(fd: int, cap: int = 8192) -> bytes:
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    try:
        while sum(map(len, chunks)) <= cap:
            block = os.read(fd, 65536)
            if not block:
                break
            chunks.append(block)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return b"".join(chunks)


def _stderr_tail(path: Path) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - MAX_STDERR_BYTES))
            return fh.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return []


def run_tests(solution: str, tests: str, *, entry_point: str | None = None,
              timeout_s: float = DEFAULT_TIMEOUT_S, cpu_s: float | None = None,
              memory_mb: int = DEFAULT_MEMORY_MB, file_mb: int = 16,
              python: str | None = None, isolation: Any = None) -> ExecResult:
    """Run `solution` and the `tests` against it (then `check(entry_point)` if defined).

    `tests` is Python source: plain asserts, or a `check(candidate)` / `check()` function as in
    HumanEval / MBPP. `timeout_s` is wall-clock; `cpu_s` (default: `timeout_s`) is the
    CPU-time rlimit of each process, which bounds a busy loop independently of machine load.
    `isolation` wraps both processes (default: the best this machine has, see
    `isolation.select_isolation`). Returns an `ExecResult`; never raises for anything the
    candidate does.
    """
    isolation = isolation or select_isolation("auto")
    start = time.monotonic()
    nonce = secrets.token_hex(16)
    exe = python or sys.executable
    cpu_limit = max(1, math.ceil(cpu_s if cpu_s is not None else timeout_s))
    with tempfile.TemporaryDirectory(prefix="w4s-run-") as rdir, \
            tempfile.TemporaryDirectory(prefix="w4s-judge-") as jdir:
        rpath, jpath = Path(rdir), Path(jdir)
        (rpath / "solution.py").write_text(solution, encoding="utf-8", errors="replace")
        (rpath / "imports.py").write_text(_import_lines(tests), encoding="utf-8")
        (jpath / "tests.py").write_text(tests, encoding="utf-8", errors="replace")
        stderr_path = rpath / "stderr.txt"
        to_runner_r, to_runner_w = os.pipe()
        to_judge_r, to_judge_w = os.pipe()
        verdict_r, verdict_w = os.pipe()

        def env(home: Path) -> dict[str, str]:
            return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                    "HOME": str(home), "TMPDIR": str(home), "PYTHONHASHSEED": "0",
                    "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}

        limits = [str(cpu_limit), str(memory_mb), str(file_mb)]
        procs: list[subprocess.Popen] = []
        try:
            with open(stderr_path, "wb") as err:
                procs.append(subprocess.Popen(
                    isolation.command([exe, "-I", "-B", child_program("runner"),
                                       str(to_runner_r), str(to_judge_w), *limits],
                                      workdir=str(rpath)),
                    cwd=rpath, env=env(rpath), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=err, pass_fds=(to_runner_r, to_judge_w),
                    start_new_session=True))
                procs.append(subprocess.Popen(
                    isolation.command([exe, "-I", "-S", "-B", child_program("judge"),
                                       str(to_runner_w), str(to_judge_r), str(verdict_w),
                                       *limits] + ([entry_point] if entry_point else []),
                                      workdir=str(jpath)),
                    cwd=jpath, env=env(jpath), stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    pass_fds=(to_runner_w, to_judge_r, verdict_w), start_new_session=True))
        except OSError as exc:
            for p in procs:
                kill_group(p)
                p.wait()
            for fd in (to_runner_r, to_runner_w, to_judge_r, to_judge_w, verdict_r, verdict_w):
                os.close(fd)
            return ExecResult(False, "error", f"cannot start python: {exc}",
                              time.monotonic() - start)
        for fd in (to_runner_r, to_runner_w, to_judge_r, to_judge_w, verdict_w):
            os.close(fd)
        runner, judge = procs
        try:
            assert judge.stdin is not None
            judge.stdin.write((nonce + "\n").encode())
            judge.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        timed_out = False
        try:
            judge.wait(timeout=max(0.0, timeout_s - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            timed_out = True
        runner_rc = isolation.exit_status(runner.poll())
        for p in procs:
            kill_group(p)
            p.wait()
        judge_rc = isolation.exit_status(judge.returncode)
        report = _read_all(verdict_r).decode("utf-8", "replace")
        duration = time.monotonic() - start
        if report == f"PASS {nonce}":
            return ExecResult(True, "passed", "", duration)
        if timed_out:
            return ExecResult(False, "timeout", f"timed out after {timeout_s:g}s", duration)
        if runner_rc in (-signal.SIGXCPU, -signal.SIGKILL) or judge_rc in (
                -signal.SIGXCPU, -signal.SIGKILL):
            return ExecResult(False, "timeout", f"CPU time limit ({cpu_limit}s) exceeded",
                              duration)
        if report.startswith("FAIL "):
            detail = report[5:]
            if detail.startswith("EOFError") and runner_rc:
                lines = _stderr_tail(stderr_path)
                detail = lines[-1] if lines else f"candidate exit code {runner_rc}"
            return ExecResult(False, "failed", detail[:MAX_DETAIL_CHARS], duration)
        last = f"judge exit code {judge_rc}"
        if judge_rc is not None and judge_rc < 0:
            last = f"killed by signal {-judge_rc}"
        return ExecResult(False, "error", last[:MAX_DETAIL_CHARS], duration)
