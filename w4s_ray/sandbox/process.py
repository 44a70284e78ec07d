"""OS-process isolation shared by every sandboxed child: rlimits, an empty environment, a
private temp dir, the namespace layer, and the ONE process-group kill.

Every child (a workflow, `agent.execute_code`, the scoring judge's runner and judge) is a real
Python file under `sandbox/children/`, started as `python -I -B <file> ...` in its own session
(process group) and temp dir, with no environment beyond what Python needs. How it is wrapped
is the isolation backend's business (`isolation.py`): the plain process backend adds network
and mount namespaces from a pre-exec hook where the kernel allows (tmpfs over the data dir,
the completion cache and /proc); bubblewrap builds the whole view of the filesystem itself.

`kill_group` is the only place that kills a child: the child leads its own session, so
SIGKILL to its process group takes every process it started with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from w4s_ray.config import SandboxConfig

CHILDREN_DIR = Path(__file__).resolve().parent / "children"
CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
PR_SET_PDEATHSIG = 1


def child_program(name: str) -> str:
    """The path of a child program (`children/<name>.py`), run by path, never by module."""
    return str(CHILDREN_DIR / f"{name}.py")


_libc: Any = None


def _load_libc() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def _namespaces(hide: tuple[bytes, ...]) -> None:
    """In the forked child, before exec: new net + mount namespaces, tmpfs over `hide`."""
    libc = _libc
    if libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET|CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    for path in hide:
        if libc.mount(b"tmpfs", path, b"tmpfs", 0, b"size=16k,mode=0555") != 0:
            raise OSError(ctypes.get_errno(), f"mount tmpfs on {path!r}")


@functools.lru_cache(maxsize=1)
def isolation_status() -> dict[str, Any]:
    """Probe once which platform layers work here: {"namespaces": bool, "reason": str}."""
    if not sys.platform.startswith("linux"):
        return {"namespaces": False, "reason": "not Linux"}
    try:
        _load_libc()
        probe_dir = tempfile.mkdtemp(prefix="w4s-probe-")
        try:
            res = subprocess.run(
                ["/bin/sh", "-c", f"test ! -e /proc/self && test -z \"$(ls {probe_dir})\""],
                preexec_fn=functools.partial(_namespaces, (b"/proc", probe_dir.encode())),
                timeout=20, capture_output=True,
            )
        finally:
            shutil.rmtree(probe_dir, ignore_errors=True)
        if res.returncode != 0:
            return {"namespaces": False, "reason": "namespace probe did not hide paths"}
        return {"namespaces": True, "reason": "network + mount namespaces"}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"namespaces": False, "reason": f"unavailable: {exc}"}


def hidden_paths(extra: Iterable[str | os.PathLike | None]) -> tuple[bytes, ...]:
    """Existing directories to cover with tmpfs in the child: /proc (the parent's environ and
    memory), the completion cache, and whatever the caller adds (the data directory)."""
    cands = ["/proc", os.path.expanduser("~/.cache/w4s"), *(str(e) for e in extra if e)]
    needed = [os.path.realpath(p) for p in (
        sys.prefix, sys.base_prefix, tempfile.gettempdir(),
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]  # the w4s_ray package
    out: list[str] = []
    for c in cands:
        p = os.path.realpath(c)
        covers_needed = any(n == p or n.startswith(p.rstrip("/") + "/") for n in needed)
        if os.path.isdir(p) and not covers_needed and p not in out:
            out.append(p)
    return tuple(p.encode() for p in out)


def preexec(cfg: SandboxConfig, hide: tuple[bytes, ...], use_ns: bool) -> None:
    # Runs in the forked child before exec: only syscalls, no imports, no locks.
    mem = cfg.memory_mb * 1024 * 1024
    limits = [
        (resource.RLIMIT_CPU, cfg.cpu_seconds, cfg.cpu_seconds + 1),
        (resource.RLIMIT_AS, mem, mem),
        (resource.RLIMIT_NOFILE, cfg.max_open_files, cfg.max_open_files),
        (resource.RLIMIT_FSIZE, cfg.max_file_mb * 1024 * 1024, cfg.max_file_mb * 1024 * 1024),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if os.geteuid() != 0:
        # Counted per user, threads included; the parent's own processes count too.
        limits.append((resource.RLIMIT_NPROC, cfg.max_processes, cfg.max_processes))
    for res, soft, hard in limits:
        resource.setrlimit(res, (soft, hard))
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the evaluator that started us
    if use_ns:
        _namespaces(hide)


def child_env(tmp_dir: str) -> dict[str, str]:
    """No secrets: nothing of the parent's environment except what Python needs to start."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": tmp_dir,
        "TMPDIR": tmp_dir,
        "PYTHONHASHSEED": "0",
        "MALLOC_ARENA_MAX": "2",  # per-thread malloc arenas would eat the address-space limit
        "OMP_NUM_THREADS": "1",
    }


_swept = False


def make_temp_dir(prefix: str) -> str:
    """A fresh temp dir named `<prefix>-<our pid>-*`. The first call in a process also removes
    such dirs left by processes that no longer exist (an evaluator killed with SIGKILL cannot
    clean up after its children)."""
    global _swept
    root = tempfile.gettempdir()
    if not _swept:
        _swept = True
        for name in os.listdir(root):
            parts = name.split("-")
            if name.startswith(("w4s-wf-", "w4s-code-")) and len(parts) >= 4 \
                    and parts[2].isdigit() and not os.path.exists(f"/proc/{parts[2]}"):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=root)


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def crash_reason(rc: int | None, stderr: str) -> str:
    if rc is None:
        return "crashed: no exit status"
    if rc < 0:
        if -rc == signal.SIGXCPU:
            return "cpu limit"
        if -rc == signal.SIGXFSZ:
            return "file size limit"
        return f"crashed: killed by {_signal_name(rc)}"
    if "MemoryError" in stderr[-4000:]:
        return "memory limit"
    return f"crashed: exit code {rc}"


async def drain(stream: asyncio.StreamReader | None, cap: int, sink: list[bytes]) -> None:
    """Keep reading so the child never blocks on a full pipe; keep only the first `cap` bytes."""
    if stream is None:
        return
    kept = 0
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        if kept < cap:
            sink.append(chunk[: cap - kept])
            kept += len(sink[-1])


async def let_exit(proc: asyncio.subprocess.Process, grace_s: float = 1.0) -> None:
    """Give a child whose pipes reached EOF a moment to exit by itself before `kill_group`:
    under a wrapper (bubblewrap) the wrapper outlives the child briefly, and killing it then
    would hide why the child died (e.g. the CPU limit) behind our own SIGKILL."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), grace_s)


def kill_group(proc: Any) -> None:
    """SIGKILL the child's whole process group (it leads its own session, so its pid is the
    group id). Not `proc.kill()`: Popen polls (reaps) first, racing asyncio's child watcher,
    which then reports exit code 255."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def spawn(
    program: str, cfg: SandboxConfig, hide: tuple[bytes, ...], tmp_dir: str, isolation: Any,
) -> tuple[asyncio.subprocess.Process, int, int]:
    """Start `python -I -B children/<program>.py REQ_FD REP_FD` sandboxed (wrapped by
    `isolation`); returns (proc, req_r, rep_w): the parent's ends of the two frame pipes."""
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    use_ns = await asyncio.to_thread(isolation.namespaces)  # probed once
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            _load_libc()  # before fork: the preexec hook may only make calls
    argv = isolation.command(
        [sys.executable, "-I", "-B", child_program(program), str(req_w), str(rep_r)],
        workdir=tmp_dir, hide=hide)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=tmp_dir, env=child_env(tmp_dir), pass_fds=(req_w, rep_r),
            start_new_session=True, preexec_fn=functools.partial(preexec, cfg, hide, use_ns),
        )
    except BaseException:
        for fd in (req_r, rep_w):
            os.close(fd)
        raise
    finally:
        os.close(req_w)
        os.close(rep_r)
    return proc, req_r, rep_w
