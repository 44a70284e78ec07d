"""The workflow child: `python -I -B .../sandbox/children/workflow.py REQ_FD REP_FD`.

Started by `sandbox.runner` (run by path, never as a module) with rlimits, a fresh temp cwd, an
empty environment and the isolation backend's namespaces (see `sandbox/isolation.py`). Order matters: everything the runtime
itself needs (pipes, threads, the ctypes pointer used to interrupt timed-out items) is set up
first, then the audit hook is installed, and only then is the untrusted workflow code compiled
and run. Items run on a thread pool; each gets its own `Agent` whose calls go to the parent.

Everything in this process is untrusted once the workflow has loaded: the parent validates every
frame, keeps all counts itself and scores answers against gold it never sends here.
"""

from __future__ import annotations

import builtins
import ctypes
import io
import linecache
import os
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from w4s_ray.sandbox import audit
from w4s_ray.sandbox.agent import Agent, BudgetStop, ExecutorCallError
from w4s_ray.sandbox.rpc import FdWriter, read_frame_blocking

WORKFLOW_FILE = "<workflow>"


class ItemCancelled(BaseException):
    """Raised asynchronously in an item's thread after the parent timed the item out."""


class _CappedStream(io.TextIOBase):
    """stdout/stderr for the workflow: forwards to the fd until `cap` bytes, then drops."""

    def __init__(self, fd: int, cap: int) -> None:
        self._fd, self._left, self._lock = fd, cap, threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        s = str(s)
        with self._lock:
            if self._left > 0:
                data = s.encode("utf-8", "replace")[: self._left]
                self._left -= len(data)
                try:
                    os.write(self._fd, data)
                except OSError:
                    self._left = 0
        return len(s)


def _workflow_line(tb: Any) -> int | None:
    line = None
    for frame in traceback.extract_tb(tb):
        if frame.filename == WORKFLOW_FILE:
            line = frame.lineno
    return line


def _format_tb(exc: BaseException) -> str:
    """The traceback from the first workflow frame on (runtime frames above it are noise)."""
    frames = traceback.extract_tb(exc.__traceback__)
    start = next((k for k, f in enumerate(frames) if f.filename == WORKFLOW_FILE), 0)
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(frames[start:])
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)[-8000:]


def _safe_str(value: Any, limit: int) -> str:
    """str(value) as str() really returns it; subclasses are flattened to plain str data."""
    if isinstance(value, str):
        s = str.__str__(value)
    else:
        s = str(value)
        if type(s) is not str:
            s = str.__str__(s)
    return s[:limit]


def _answer_of(ret: Any, limit: int) -> str:
    if not isinstance(ret, dict):
        raise TypeError(f"solver must return a dict with key 'answer', got {type(ret).__name__}")
    if not dict.__contains__(ret, "answer"):
        raise KeyError("solver returned a dict without key 'answer'")
    return _safe_str(dict.__getitem__(ret, "answer"), limit)


class _Rpc:
    """Blocking calls to the parent from any thread; a reader thread dispatches replies."""

    def __init__(self, writer: FdWriter, rep_fd: int, set_async_exc: Any) -> None:
        self._writer, self._rep_fd = writer, rep_fd
        self._pending: dict[int, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        self._next = 0
        self._set_async_exc = set_async_exc
        self.item_threads: dict[int, int] = {}

    def start_reader(self) -> None:
        threading.Thread(target=self._read_loop, name="w4s-rpc-reader", daemon=True).start()

    def _read_loop(self) -> None:
        while True:
            try:
                frame = read_frame_blocking(self._rep_fd)
            except Exception:
                frame = None
            if frame is None:  # the parent is gone: nothing left to do
                os._exit(70)
            if frame["t"] == "reply":
                with self._lock:
                    slot = self._pending.pop(frame.get("id"), None)
                if slot is not None:
                    slot[1].append(frame)
                    slot[0].set()
            elif frame["t"] == "cancel":
                ident = self.item_threads.get(frame.get("i"))
                if ident is not None and self._set_async_exc is not None:
                    self._set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(ItemCancelled))

    def call(self, idx: int, method: str, params: dict) -> Any:
        event, box = threading.Event(), []
        with self._lock:
            self._next += 1
            call_id = self._next
            self._pending[call_id] = (event, box)
        self._writer.send({"t": "call", "id": call_id, "i": idx, "m": method, "p": params})
        while not event.wait(0.25):  # wake up now and then so a cancel can be delivered
            pass
        reply = box[0]
        if reply.get("ok"):
            return reply.get("v")
        kind, err = reply.get("kind"), str(reply.get("err", "error"))
        if kind == "executor":
            raise ExecutorCallError(err)
        if kind == "budget":
            raise BudgetStop(err)
        if kind == "value":
            raise ValueError(err)
        raise RuntimeError(err)


def _kind_of(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, ExecutorCallError):
        return "executor"
    if isinstance(exc, BudgetStop):
        return "budget"
    if isinstance(exc, SystemExit):
        return "exit"
    return "exception"


def _set_async_exc_fn() -> tuple[Any, int]:
    try:
        fn = ctypes.pythonapi.PyThreadState_SetAsyncExc
        fn.argtypes = [ctypes.c_ulong, ctypes.py_object]
        fn.restype = ctypes.c_int
        return fn, ctypes.cast(fn, ctypes.c_void_p).value or 0
    except Exception:
        return None, 0


def main() -> None:
    req_fd, rep_fd = int(sys.argv[1]), int(sys.argv[2])
    writer = FdWriter(req_fd)
    init = read_frame_blocking(rep_fd)
    if init is None or init.get("t") != "init":
        os._exit(71)
    code: str = init["code"]
    items: list = init["items"]
    threads = max(1, int(init.get("threads", 1)))
    answer_limit = int(init.get("max_answer_chars", 100_000))
    out_cap = int(init.get("max_output_bytes", 65536))
    strict = bool(init.get("strict", False))
    tmp_dir = os.getcwd()

    sys.stdout = _CappedStream(1, out_cap)  # type: ignore[assignment]
    sys.stderr = _CappedStream(2, out_cap)  # type: ignore[assignment]
    threading.stack_size(int(init.get("thread_stack_bytes", 4 << 20)))
    set_async_exc, allowed_ptr = _set_async_exc_fn()
    rpc = _Rpc(writer, rep_fd, set_async_exc)
    rpc.start_reader()
    audit.disarm_fork_exec()
    audit.install(tmp_dir, allow_call=allowed_ptr)

    # From here on, untrusted code runs.
    linecache.cache[WORKFLOW_FILE] = (len(code), None, code.splitlines(True), WORKFLOW_FILE)
    namespace: dict[str, Any] = {"__name__": "workflow", "__builtins__": builtins}
    try:
        exec(compile(code, WORKFLOW_FILE, "exec"), namespace)
        solver = namespace.get("solver")
        if not callable(solver):
            raise NameError("no function named solver")
    except BaseException as exc:  # noqa: BLE001 - any failure to load is reported, not raised
        frame = _fail_frame(-1, exc, None)
        writer.send({**frame, "t": "load_error"})
        os._exit(0)
    writer.send({"t": "ready"})
    stop = threading.Event()

    def run_item(entry: list) -> None:
        idx, question, meta = entry[0], entry[1], entry[2] if len(entry) > 2 else {}
        if stop.is_set():
            return
        rpc.item_threads[idx] = threading.get_ident()
        writer.send({"t": "start", "i": idx})
        agent = Agent(lambda m, p: rpc.call(idx, m, p), entry_point=(meta or {}).get("entry_point"))
        try:
            ret = solver(agent, question)
            if hasattr(type(ret), "__await__"):
                import asyncio

                ret = asyncio.run(ret)
        except ItemCancelled:
            writer.send({"t": "freed", "i": idx})
            return
        except BaseException as exc:  # noqa: BLE001 - the item fails; the process carries on
            frame: dict = _fail_frame(idx, exc, None)
        else:
            try:
                frame = {"t": "done", "i": idx, "answer": _answer_of(ret, answer_limit)}
            except ItemCancelled:
                writer.send({"t": "freed", "i": idx})
                return
            except BaseException as exc:  # noqa: BLE001 - lying __str__, wrong type, ...
                frame = _fail_frame(idx, exc, "bad_return")
        finally:
            rpc.item_threads.pop(idx, None)
        try:
            writer.send(frame)
        except Exception as exc:  # an unserialisable frame must still report the item
            writer.send({"t": "fail", "i": idx, "kind": "exception", "error": repr(exc)[:500],
                         "tb": "", "line": None})
        if strict and frame["t"] == "fail":
            stop.set()

    with ThreadPoolExecutor(max_workers=min(threads, max(1, len(items)))) as pool:
        for _ in pool.map(run_item, items):
            pass
    writer.send({"t": "bye"})
    os._exit(0)  # do not wait for threads the workflow left running


def _fail_frame(idx: int, exc: BaseException, kind: str | None) -> dict:
    try:
        msg = _safe_str(f"{type(exc).__name__}: {exc}", 2000)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        msg = type(exc).__name__
    try:
        tb = _format_tb(exc)
    except BaseException:  # noqa: BLE001
        tb = msg
    return {"t": "fail", "i": idx, "kind": kind or _kind_of(exc), "error": msg,
            "tb": tb, "line": _workflow_line(exc.__traceback__)}


if __name__ == "__main__":
    main()
