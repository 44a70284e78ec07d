"""Run one untrusted workflow over items in sandboxed children and serve its `agent` calls.

What it protects against:
- the workflow reading gold answers, the scorer, API keys or the completion cache: none of them
  exist in the child (it gets item indices, questions and, for code items, the entry point);
  its environment is emptied; the isolation backend (`isolation.py`) hides the data directory,
  the completion cache and the parent's /proc (bubblewrap: they are not in its filesystem at
  all; the process backend: empty tmpfs mounts, where the kernel allows namespaces);
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
namespaces and rlimits remain, and without namespaces (the process backend as non-root without
user namespaces) a native-code escape could read files the parent user can read. As root,
RLIMIT_NPROC is not enforced, so a native fork bomb would be bounded only by the address-space
limit per process (and, under bubblewrap, its pid namespace dies with it). Side channels
(timing, CPU contention) are not addressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from w4s_ray.config import SandboxConfig
from w4s_ray.sandbox.channel import Channel
from w4s_ray.sandbox.process import (
    crash_reason,
    drain,
    kill_group,
    let_exit,
    make_temp_dir,
    spawn,
)
from w4s_ray.utils import held as held_calls

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


def _host_paths() -> list[tuple[str, str]]:
    """(host path, placeholder) pairs a child's error text must not show, longest first."""
    import sys
    import tempfile
    from pathlib import Path

    pkg = Path(__file__).resolve().parent.parent  # the w4s_ray package
    pairs = {str(pkg.parent): "<w4s>", str(pkg): "<w4s>/w4s_ray"}
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        if p and len(p) > 1:
            pairs.setdefault(p, "<python>")
            pairs.setdefault(str(Path(p).resolve()), "<python>")
    pairs.pop("", None)
    pairs[str(Path(tempfile.gettempdir()).resolve())] = "<tmp>"
    # A path counts only as a whole path component: "/tmp" is not replaced in "/tmpfs".
    return [(re.compile(re.escape(p) + r"(?![\w.-])"), t)
            for p, t in sorted(pairs.items(), key=lambda kv: -len(kv[0]))]


_HOST_PATHS = _host_paths()


def scrub_host_paths(text: str) -> str:
    """`text` with this host's platform, Python and temp-dir paths replaced by placeholders:
    a workflow's traceback or error message goes to the meta-agent, which has no business
    with where the platform is installed (a defence in depth behind the child's own frame
    filter, which the untrusted child could skip)."""
    for pattern, token in _HOST_PATHS:
        text = pattern.sub(token, text)
    return text


class _HeldClock:
    """Seconds the platform held an item's calls back (utils/held.py: rate-limit grants,
    in-flight caps), which the item's time limit does not count; and the time any call was
    held, which the whole evaluation's limit does not count. Hooks fire on whichever thread
    runs the executor's I/O loop, hence the lock."""

    POLL_S = 1.0  # while held, limits are looked at again this often

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n: dict[int, int] = {}
        self._since: dict[int, float] = {}
        self._credit: dict[int, float] = {}
        self._any = 0
        self._any_since = 0.0
        self._any_credit = 0.0

    def hold(self, idx: int, on: bool) -> None:
        now = time.monotonic()
        with self._lock:
            n = self._n.get(idx, 0)
            if on:
                if n == 0:
                    self._since[idx] = now
                if self._any == 0:
                    self._any_since = now
                self._n[idx], self._any = n + 1, self._any + 1
                return
            self._n[idx], self._any = n - 1, self._any - 1
            if n == 1:
                self._credit[idx] = self._credit.get(idx, 0.0) + now - self._since.pop(idx)
            if self._any == 0:
                self._any_credit += now - self._any_since

    def restart(self, idx: int) -> None:
        """The item starts (again, in a fresh child): its earlier waits are no longer owed."""
        with self._lock:
            self._credit.pop(idx, None)

    def item_deadline(self, idx: int, t0: float, limit: float, now: float) -> float:
        with self._lock:
            if self._n.get(idx):
                return now + self.POLL_S  # held right now: not due
            return t0 + limit + self._credit.get(idx, 0.0)

    def run_deadline(self, deadline: float, now: float) -> float:
        with self._lock:
            if self._any:
                return max(deadline + self._any_credit, now + self.POLL_S)
            return deadline + self._any_credit


class WorkflowRunner:
    """Runs one workflow over items in sandbox children (module docstring)."""

    def __init__(
        self, cfg: SandboxConfig, isolation: Any, *, threads: int, handler: RpcHandler,
        hide: tuple[bytes, ...] = (), strict: bool = False,
        on_item: Callable[[int], Any] | None = None,
    ) -> None:
        self.cfg, self.threads, self.handler, self.hide = cfg, max(1, threads), handler, hide
        self.isolation = isolation
        self.strict = strict
        self.on_item = on_item  # called with 1 for each item that finishes (progress bars)
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self._abort: BaseException | None = None
        self._clock = _HeldClock()

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
        proc, req_r, rep_w = await spawn("workflow", cfg, self.hide, tmp_dir, self.isolation)
        chan = Channel(req_r, rep_w)
        err_sink: list[bytes] = []
        drains = [
            asyncio.create_task(drain(proc.stdout, self._left(self._stdout), self._stdout)),
            asyncio.create_task(drain(proc.stderr, cfg.max_output_bytes, err_sink)),
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
            if sess.status == "crash":
                await let_exit(proc)
        finally:
            kill_group(proc)
            for t in calls:
                t.cancel()
            chan.close()
            shutil.rmtree(tmp_dir, ignore_errors=True)  # before any await: a cancel may follow
            rc: int | None = None
            with contextlib.suppress(asyncio.TimeoutError):
                rc = self.isolation.exit_status(await asyncio.wait_for(proc.wait(), 10))
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
            clock = self._clock
            running = [clock.item_deadline(i, started_at[i], cfg.item_timeout_s, now)
                       for i in started_at if i not in sess.finished]
            unstarted = len(wanted) - len(started_at)
            zombie_checks = [t + grace for t in cancelled.values() if now < t + grace] \
                if unstarted else []
            next_deadline = min([clock.run_deadline(deadline, now)] + running + zombie_checks
                                + ([] if ready else [load_deadline]))
            try:
                frame = await asyncio.wait_for(chan.frames.get(), max(0.0, next_deadline - now))
            except TimeoutError:
                now = time.monotonic()
                if now >= clock.run_deadline(deadline, now):
                    sess.status = "timeout"
                    return
                if not ready and now >= load_deadline:
                    sess.status, sess.reason = "load_error", "timeout while loading the workflow"
                    sess.load_error = ItemOutcome(kind="load_error", error=sess.reason)
                    return
                for i, t0 in list(started_at.items()):
                    if i not in sess.finished \
                            and now >= clock.item_deadline(i, t0, cfg.item_timeout_s, now):
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
                self._clock.restart(idx)
                sess.started.add(idx)
            elif kind in ("done", "fail") and idx in wanted and idx not in sess.finished:
                if kind == "done" and isinstance(frame.get("answer"), str):
                    sess.finished[idx] = ItemOutcome(answer=frame["answer"][: cfg.max_answer_chars])
                else:
                    sess.finished[idx] = ItemOutcome(
                        kind=_str(frame.get("kind"), 40) or "exception",
                        error=scrub_host_paths(_str(frame.get("error"), 2000)) or "failed",
                        tb=scrub_host_paths(_str(frame.get("tb"), 8000)),
                        line=_int(frame.get("line")))
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
                sess.reason = scrub_host_paths(_str(frame.get("error"), 2000)) \
                    or "workflow failed to load"
                sess.load_error = ItemOutcome(
                    kind="load_error", error=sess.reason,
                    tb=scrub_host_paths(_str(frame.get("tb"), 8000)),
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
        # This task's own context: waits the platform imposes on the call pause idx's clock.
        held_calls.bind(lambda on: self._clock.hold(idx, on))
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
