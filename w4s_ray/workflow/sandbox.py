"""Run untrusted workflow code in a separate, limited OS process and serve its `agent` calls.

What it protects against:
- the workflow reading gold answers, the scorer, API keys or the completion cache: none of them
  exist in the child (it gets item indices, questions and, for code items, the entry point);
  its environment is emptied; where the platform allows, it runs in a private mount namespace
  where the data directory, the completion cache and /proc are covered by empty tmpfs mounts;
- the workflow changing its own score: answers are coerced to plain `str` in the child and
  scored in the parent; all counts (calls, tokens, cost) are kept by the parent;
- network access: a fresh network namespace (only a down loopback) where available, and the
  audit hook refuses sockets regardless;
- runaway resource use: rlimits (CPU seconds, address space, open files, file size, no core
  dumps; processes too, which the kernel does not enforce for root), per-item and per-workflow
  wall-clock timeouts enforced by the parent, output capped at `max_output_bytes`, its own
  session/process group killed as a whole, its temp dir removed afterwards;
- crashes (os._exit, sys.exit, signals, memory bombs): unfinished items are re-run once in a
  fresh child, then fail with the reason; finished items are kept.

What it does not protect against: kernel exploits; native code (a C extension, or ctypes if a
workflow gets past the audit hook) doing syscalls the hook cannot see — for those, only the
namespaces and rlimits remain, and without namespaces (non-root, no user namespaces) a
native-code escape could read files the parent user can read. As root, RLIMIT_NPROC is not
enforced, so a native fork bomb would be bounded only by the address-space limit per process.
Side channels (timing, CPU contention) are not addressed. `isolation_status()` reports which
layers this machine provides.
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
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from w4s_ray.config import SandboxConfig
from w4s_ray.workflow import rpc

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
PR_SET_PDEATHSIG = 1

RpcHandler = Callable[[str, dict, int], Awaitable[Any]]


class Abort(Exception):
    """Raised by an RPC handler to stop the whole evaluation (e.g. the budget is spent);
    `WorkflowRunner.run` kills the child and re-raises `cause`."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class RpcFailure(Exception):
    """Raised by an RPC handler: the workflow's call fails with this message (and `kind`)."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class ItemOutcome:
    answer: str | None = None
    kind: str | None = None  # None: answered; else the error kind
    error: str | None = None
    tb: str | None = None
    line: int | None = None


@dataclass
class SandboxRun:
    outcomes: dict[int, ItemOutcome] = field(default_factory=dict)
    load_error: ItemOutcome | None = None
    stdout: str = ""
    stderr: str = ""
    children: int = 0
    crashes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- platform isolation layers

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
        sys.prefix, sys.base_prefix, tempfile.gettempdir(), os.path.dirname(__file__))]
    out: list[str] = []
    for c in cands:
        p = os.path.realpath(c)
        covers_needed = any(n == p or n.startswith(p.rstrip("/") + "/") for n in needed)
        if os.path.isdir(p) and not covers_needed and p not in out:
            out.append(p)
    return tuple(p.encode() for p in out)


def _preexec(cfg: SandboxConfig, hide: tuple[bytes, ...], use_ns: bool) -> None:
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


async def spawn(
    module: str, cfg: SandboxConfig, hide: tuple[bytes, ...], tmp_dir: str,
) -> tuple[asyncio.subprocess.Process, int, int]:
    """Start `python -I -B -m module REQ_FD REP_FD` sandboxed; returns (proc, req_r, rep_w)."""
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    use_ns = (await asyncio.to_thread(isolation_status))["namespaces"]  # probed once
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            _load_libc()  # before fork: the preexec hook may only make calls
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-B", "-m", module, str(req_w), str(rep_r),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=tmp_dir, env=child_env(tmp_dir), pass_fds=(req_w, rep_r),
            start_new_session=True, preexec_fn=functools.partial(_preexec, cfg, hide, use_ns),
        )
    except BaseException:
        for fd in (req_r, rep_w):
            os.close(fd)
        raise
    finally:
        os.close(req_w)
        os.close(rep_r)
    return proc, req_r, rep_w


async def _drain(stream: asyncio.StreamReader | None, cap: int, sink: list[bytes]) -> None:
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


def kill_group(proc: asyncio.subprocess.Process) -> None:
    # The child leads its own session, so its pid is the group id. Not `proc.kill()`: Popen
    # polls (reaps) first, racing asyncio's child watcher, which then reports exit code 255.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class Channel:
    """The parent's end of the two pipes: a frame queue (reader task) and a frame writer."""

    def __init__(self, req_r: int, rep_w: int) -> None:
        self._req_r, self._rep_w = req_r, rep_w
        self.frames: asyncio.Queue = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        self._rtransport: asyncio.BaseTransport | None = None
        self._tasks: list[asyncio.Task] = []
        self._out: list[bytes] = []
        self._flush_scheduled = False

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        # uvloop (Ray's async actors run on it) hands the fd to libuv, which closes it, and then
        # closes the file object too: a double close that can hit another evaluation's freshly
        # opened pipe (MagicStack/uvloop#763; seen under load as `FileExistsError: [Errno 17]`
        # in connect_read_pipe). There the file objects must not own the fds.
        owns = not type(loop).__module__.startswith("uvloop")
        reader = asyncio.StreamReader(limit=rpc.MAX_FRAME + 8, loop=loop)
        self._rtransport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
            os.fdopen(self._req_r, "rb", 0, closefd=owns))
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop),
            os.fdopen(self._rep_w, "wb", 0, closefd=owns))
        self._writer = asyncio.StreamWriter(transport, protocol, None, loop)
        self._tasks.append(asyncio.create_task(self._pump(reader)))

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                frame = await rpc.read_frame(reader)
                await self.frames.put(frame)
                if frame is None:
                    return
        except (rpc.ProtocolError, OSError, ValueError) as exc:
            await self.frames.put({"t": "protocol_error", "error": str(exc)})
            await self.frames.put(None)

    async def send(self, obj: Any) -> None:
        """Queue a frame; frames queued in one loop iteration go out in one write (fewer
        syscalls and child wake-ups when many replies complete together)."""
        if self._writer is None or self._writer.is_closing():
            return
        self._out.append(rpc.encode(obj))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        transport = self._writer.transport
        if transport.get_write_buffer_size() > 1 << 20:  # a child that stopped reading
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                await self._writer.drain()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._out or self._writer is None or self._writer.is_closing():
            self._out.clear()
            return
        data = b"".join(self._out)
        self._out.clear()
        try:
            self._writer.write(data)
        except (ConnectionError, OSError, RuntimeError):
            pass  # the child is gone; its loss is noticed on the reader side

    def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if self._rtransport is not None:  # not left to EOF or GC: close the fd now, once
            with contextlib.suppress(Exception):
                self._rtransport.close()


@dataclass
class _Session:
    """Outcome of one child process over a subset of items."""

    status: str = "ok"  # ok | load_error | crash | timeout | zombies | strict_stop
    reason: str = ""
    started: set[int] = field(default_factory=set)
    finished: dict[int, ItemOutcome] = field(default_factory=dict)
    load_error: ItemOutcome | None = None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any, limit: int) -> str:
    return v[:limit] if isinstance(v, str) else ""


class WorkflowRunner:
    """Runs one workflow over items in sandbox children (module docstring)."""

    def __init__(
        self, cfg: SandboxConfig, *, threads: int, handler: RpcHandler,
        hide: tuple[bytes, ...] = (), strict: bool = False,
        on_item: Callable[[int], Any] | None = None,
    ) -> None:
        self.cfg, self.threads, self.handler, self.hide = cfg, max(1, threads), handler, hide
        self.strict = strict
        self.on_item = on_item  # called with 1 for each item that finishes (progress bars)
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self._abort: BaseException | None = None

    async def run(self, code: str, items: list[tuple[int, str, dict]]) -> SandboxRun:
        out = SandboxRun()
        deadline = time.monotonic() + self.cfg.workflow_timeout_s
        crashes: dict[int, int] = {}
        remaining = list(items)
        while remaining:
            sess = await self._session(code, remaining, deadline)
            out.children += 1
            out.outcomes.update(sess.finished)
            remaining = [it for it in remaining if it[0] not in sess.finished]
            if sess.status == "abort" and self._abort is not None:
                raise self._abort
            if sess.status == "load_error":
                out.load_error = sess.load_error
                for idx, _, _ in remaining:
                    out.outcomes[idx] = ItemOutcome(kind="load_error", error=sess.reason)
                    self._tick()
                break
            if sess.status == "strict_stop":
                break
            if sess.status == "timeout":
                for idx, _, _ in remaining:
                    out.outcomes[idx] = ItemOutcome(
                        kind="timeout", error=f"workflow time limit ({self.cfg.workflow_timeout_s:g} s)")
                    self._tick()
                break
            if sess.status == "crash":
                out.crashes.append(sess.reason)
                # Items in flight when the child died are suspects; a suspect that was already
                # in a crashed child fails. Items that never started are re-run for free.
                suspects = sess.started or {it[0] for it in remaining}
                for idx in suspects:
                    crashes[idx] = crashes.get(idx, 0) + 1
                    if crashes[idx] >= 2 and idx not in sess.finished:
                        out.outcomes[idx] = ItemOutcome(kind="crashed", error=sess.reason)
                        self._tick()
                remaining = [it for it in remaining if it[0] not in out.outcomes]
            # "zombies": timed-out threads used up the child; a fresh one takes the rest.
        out.stdout = b"".join(self._stdout).decode("utf-8", "replace")
        out.stderr = b"".join(self._stderr).decode("utf-8", "replace")
        return out

    async def _session(self, code: str, items: list[tuple[int, str, dict]],
                       deadline: float) -> _Session:
        cfg = self.cfg
        sess = _Session()
        tmp_dir = make_temp_dir("w4s-wf")
        proc, req_r, rep_w = await spawn("w4s_ray.workflow._child", cfg, self.hide, tmp_dir)
        chan = Channel(req_r, rep_w)
        err_sink: list[bytes] = []
        drains = [
            asyncio.create_task(_drain(proc.stdout, self._left(self._stdout), self._stdout)),
            asyncio.create_task(_drain(proc.stderr, cfg.max_output_bytes, err_sink)),
        ]
        calls: set[asyncio.Task] = set()
        try:
            await chan.open()
            await chan.send({
                "t": "init", "code": code, "items": [list(it) for it in items],
                "threads": self.threads, "strict": self.strict,
                "max_answer_chars": cfg.max_answer_chars, "max_output_bytes": cfg.max_output_bytes,
                "thread_stack_bytes": cfg.thread_stack_kb * 1024,
            })
            await self._serve(chan, sess, items, deadline, calls)
        finally:
            kill_group(proc)
            for t in calls:
                t.cancel()
            chan.close()
            shutil.rmtree(tmp_dir, ignore_errors=True)  # before any await: a cancel may follow
            rc: int | None = None
            with contextlib.suppress(asyncio.TimeoutError):
                rc = await asyncio.wait_for(proc.wait(), 10)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*drains, return_exceptions=True), 5)
            for t in drains:
                t.cancel()
            stderr = b"".join(err_sink).decode("utf-8", "replace")
            self._keep_stderr(err_sink)
        if sess.status == "crash":
            sess.reason = sess.reason or crash_reason(rc, stderr)
            if sess.reason.startswith("crashed: exit code") and rc == 0:
                sess.reason = "crashed: exited before finishing"
        if sess.status == "load_error" and sess.load_error and not sess.load_error.error:
            sess.load_error.error = crash_reason(rc, stderr)
        return sess

    def _tick(self) -> None:
        if self.on_item is not None:
            try:
                self.on_item(1)
            except Exception:  # a progress bar must never break an evaluation
                self.on_item = None

    def _left(self, sink: list[bytes]) -> int:
        return max(0, self.cfg.max_output_bytes - sum(len(c) for c in sink))

    def _keep_stderr(self, chunks: list[bytes]) -> None:
        left = self._left(self._stderr)
        data = b"".join(chunks)[:left]
        if data:
            self._stderr.append(data)

    async def _serve(self, chan: Channel, sess: _Session, items: list, deadline: float,
                     calls: set[asyncio.Task]) -> None:
        cfg = self.cfg
        wanted = {it[0] for it in items}
        started_at: dict[int, float] = {}
        ready = False
        # Loading (imports, top-level code) gets the item timeout plus interpreter start-up.
        load_deadline = time.monotonic() + cfg.item_timeout_s + cfg.startup_timeout_s
        cancelled: dict[int, float] = {}  # timed-out items whose thread has not come back
        grace = 1.0  # an interrupted pure-Python thread comes back well within this
        while len(sess.finished) < len(wanted):
            now = time.monotonic()
            running = [started_at[i] + cfg.item_timeout_s for i in started_at
                       if i not in sess.finished]
            unstarted = len(wanted) - len(started_at)
            zombie_checks = [t + grace for t in cancelled.values() if now < t + grace] \
                if unstarted else []
            next_deadline = min([deadline] + running + zombie_checks
                                + ([] if ready else [load_deadline]))
            try:
                frame = await asyncio.wait_for(chan.frames.get(), max(0.0, next_deadline - now))
            except TimeoutError:
                now = time.monotonic()
                if now >= deadline:
                    sess.status = "timeout"
                    return
                if not ready and now >= load_deadline:
                    sess.status, sess.reason = "load_error", "timeout while loading the workflow"
                    sess.load_error = ItemOutcome(kind="load_error", error=sess.reason)
                    return
                for i, t0 in list(started_at.items()):
                    if i not in sess.finished and now >= t0 + cfg.item_timeout_s:
                        sess.finished[i] = ItemOutcome(
                            kind="timeout", error=f"item time limit ({cfg.item_timeout_s:g} s)")
                        self._tick()
                        cancelled[i] = now
                        await chan.send({"t": "cancel", "i": i})
                        if self.strict:
                            sess.status = "strict_stop"
                            return
                # Threads stuck in timed-out items (e.g. blocked in C) starve queued items:
                # past a point, a fresh child for the items not yet started is cheaper.
                zombies = sum(1 for t in cancelled.values() if now >= t + grace)
                if zombies >= max(1, self.threads // 2) and len(wanted) > len(started_at):
                    sess.status = "zombies"
                    return
                continue
            if frame is None:
                sess.status = "crash"
                return
            kind = frame.get("t")
            idx = _int(frame.get("i"))
            if kind == "call":
                call_id = _int(frame.get("id"))
                if call_id is None or idx not in wanted or idx in sess.finished:
                    continue
                task = asyncio.create_task(self._answer_call(chan, call_id, idx, frame))
                calls.add(task)
                task.add_done_callback(calls.discard)
            elif kind == "start" and idx in wanted and idx not in started_at:
                started_at[idx] = time.monotonic()
                sess.started.add(idx)
            elif kind in ("done", "fail") and idx in wanted and idx not in sess.finished:
                if kind == "done" and isinstance(frame.get("answer"), str):
                    sess.finished[idx] = ItemOutcome(answer=frame["answer"][: cfg.max_answer_chars])
                else:
                    sess.finished[idx] = ItemOutcome(
                        kind=_str(frame.get("kind"), 40) or "exception",
                        error=_str(frame.get("error"), 2000) or "failed",
                        tb=_str(frame.get("tb"), 8000), line=_int(frame.get("line")))
                    if self.strict:
                        sess.status = "strict_stop"
                        return
                sess.started.discard(idx)
                self._tick()
            elif kind == "freed" and idx is not None:
                cancelled.pop(idx, None)
            elif kind == "ready":
                ready = True
            elif kind == "load_error" and not ready:
                sess.status = "load_error"
                sess.reason = _str(frame.get("error"), 2000) or "workflow failed to load"
                sess.load_error = ItemOutcome(
                    kind="load_error", error=sess.reason, tb=_str(frame.get("tb"), 8000),
                    line=_int(frame.get("line")))
                return
            elif kind == "abort":
                sess.status = "abort"
                return
            elif kind == "protocol_error":
                sess.status, sess.reason = "crash", "crashed: " + _str(frame.get("error"), 200)
                return
            elif kind == "bye":
                if len(sess.finished) < len(wanted):
                    sess.status, sess.reason = "crash", "crashed: exited before finishing"
                return

    async def _answer_call(self, chan: Channel, call_id: int, idx: int, frame: dict) -> None:
        method, params = frame.get("m"), frame.get("p")
        reply: dict[str, Any] = {"t": "reply", "id": call_id}
        try:
            if not isinstance(method, str) or not isinstance(params, dict):
                raise RpcFailure("malformed call", "value")
            reply.update(ok=True, v=await self.handler(method, params, idx))
        except RpcFailure as exc:
            reply.update(ok=False, err=str(exc)[:4000], kind=exc.kind)
        except Abort as exc:
            self._abort = exc.cause
            await chan.frames.put({"t": "abort"})
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug on our side must not hang the item until its timeout
            reply.update(ok=False, err=f"internal error: {type(exc).__name__}: {exc}"[:4000],
                         kind="error")
        await chan.send(reply)
