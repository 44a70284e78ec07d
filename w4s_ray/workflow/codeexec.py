"""`agent.execute_code` and `agent.test_on_public_test`, served by the parent.

The workflow child may not start processes (its audit hook refuses it), so the parent does it
on the child's behalf: `execute_code` runs the snippet in a nested process with the same
sandbox as the workflow child (rlimits, no environment, namespaces, audit hook), for at most
`min(timeout, sandbox.code_exec_timeout_s)` seconds. Public tests are run with
`w4s_ray.benchmarks.code_exec.run_tests` on the item's public tests only
(`bm.public_tests(item)`); the hidden scoring tests never leave the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import Any

from w4s_ray.config import SandboxConfig
from w4s_ray.workflow import sandbox

MAX_CODE_CHARS = 200_000


async def execute_code(code: str, timeout: float, cfg: SandboxConfig,
                       hide: tuple[bytes, ...] = ()) -> dict[str, Any]:
    """Run `code` nested; {"ok": True, "value": v} or {"ok": False, "error": text}."""
    if len(code) > MAX_CODE_CHARS:
        return {"ok": False, "error": f"code longer than {MAX_CODE_CHARS} characters"}
    timeout = max(0.1, min(float(timeout), cfg.code_exec_timeout_s))
    limits = cfg.model_copy(update={"cpu_seconds": max(1, int(timeout) + 1),
                                    "memory_mb": min(cfg.memory_mb, 1024)})
    tmp_dir = sandbox.make_temp_dir("w4s-code")
    proc, req_r, rep_w = await sandbox.spawn("w4s_ray.workflow._codeexec_child", limits, hide,
                                             tmp_dir)
    chan = sandbox.Channel(req_r, rep_w)
    sinks: list[bytes] = []
    drains = [asyncio.create_task(sandbox._drain(s, 4096, sinks))
              for s in (proc.stdout, proc.stderr)]
    try:
        await chan.open()
        await chan.send({"t": "init", "code": code, "max_value_chars": cfg.max_answer_chars})
        try:
            frame = await asyncio.wait_for(chan.frames.get(), timeout + 5.0)
        except TimeoutError:
            return {"ok": False, "error": f"TimeoutError: execution exceeded {timeout:g} s"}
    finally:
        sandbox.kill_group(proc)
        chan.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)  # before any await: a cancel may follow
        rc = None
        with contextlib.suppress(asyncio.TimeoutError):
            rc = await asyncio.wait_for(proc.wait(), 10)
        with contextlib.suppress(asyncio.TimeoutError):  # pipes reach EOF once the group is dead
            await asyncio.wait_for(asyncio.gather(*drains, return_exceptions=True), 5)
        for t in drains:
            t.cancel()
    if frame is None or frame.get("t") != "result":
        stderr = b"".join(sinks).decode("utf-8", "replace")
        reason = sandbox.crash_reason(rc, stderr)
        if reason == "cpu limit":
            reason = f"TimeoutError: execution exceeded {timeout:g} s"
        return {"ok": False, "error": reason}
    if frame.get("ok"):
        return {"ok": True, "value": frame.get("value")}
    err = frame.get("error")
    return {"ok": False, "error": err if isinstance(err, str) else "error"}


async def run_public_tests(bm: Any, item: Any, solution: str, entry_point: str,
                           cfg: SandboxConfig) -> dict[str, Any]:
    """{"passed": bool|None, "feedback": str, "exec_error": bool}; None: no public tests."""
    tests = bm.public_tests(item)
    if not tests:
        return {"passed": None, "feedback": "no public tests for this task", "exec_error": False}
    from w4s_ray.benchmarks.code_exec import run_tests

    res = await asyncio.to_thread(
        run_tests, solution[:MAX_CODE_CHARS], tests, entry_point=entry_point or None,
        timeout_s=cfg.code_exec_timeout_s, memory_mb=min(cfg.memory_mb, 1024))
    if res.passed:
        return {"passed": True, "feedback": "no error", "exec_error": False}
    # "failed" covers both a failing assert and code that raised; an assertion is a test failure.
    exec_error = res.status != "failed" or not res.detail.startswith("AssertionError")
    detail = res.detail or res.status
    if not exec_error:  # a bare assert says nothing: show the public tests that failed
        detail = f"{detail}\nfailed test cases (public tests):\n{tests.strip()[:4000]}"
    return {"passed": False, "feedback": detail, "exec_error": exec_error}
