"""`agent.execute_code`, served by the parent in a nested sandboxed process.

The workflow child may not start processes (its audit hook refuses it), so the parent does it
on the child's behalf: `execute_code` runs the snippet in a nested child (`children/execute.py`)
with the same sandbox as the workflow child (rlimits, no environment, the isolation backend,
the audit hook), for at most `min(timeout, sandbox.code_exec_timeout_s)` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
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

MAX_CODE_CHARS = 200_000


async def execute_code(code: str, timeout: float, cfg: SandboxConfig, isolation: Any,
                       hide: tuple[bytes, ...] = ()) -> dict[str, Any]:
    """Run `code` nested; {"ok": True, "value": v} or {"ok": False, "error": text}."""
    if len(code) > MAX_CODE_CHARS:
        return {"ok": False, "error": f"code longer than {MAX_CODE_CHARS} characters"}
    timeout = max(0.1, min(float(timeout), cfg.code_exec_timeout_s))
    limits = cfg.model_copy(update={"cpu_seconds": max(1, int(timeout) + 1),
                                    "memory_mb": min(cfg.memory_mb, 1024)})
    tmp_dir = make_temp_dir("w4s-code")
    proc, req_r, rep_w = await spawn("execute", limits, hide, tmp_dir, isolation)
    chan = Channel(req_r, rep_w)
    sinks: list[bytes] = []
    drains = [asyncio.create_task(drain(s, 4096, sinks))
              for s in (proc.stdout, proc.stderr)]
    try:
        await chan.open()
        await chan.send({"t": "init", "code": code, "max_value_chars": cfg.max_answer_chars})
        try:
            frame = await asyncio.wait_for(chan.frames.get(), timeout + 5.0)
        except TimeoutError:
            return {"ok": False, "error": f"TimeoutError: execution exceeded {timeout:g} s"}
        if frame is None:
            await let_exit(proc)
    finally:
        kill_group(proc)
        chan.close()
        shutil.rmtree(tmp_dir, ignore_errors=True)  # before any await: a cancel may follow
        rc = None
        with contextlib.suppress(asyncio.TimeoutError):
            rc = isolation.exit_status(await asyncio.wait_for(proc.wait(), 10))
        with contextlib.suppress(asyncio.TimeoutError):  # pipes reach EOF once the group is dead
            await asyncio.wait_for(asyncio.gather(*drains, return_exceptions=True), 5)
        for t in drains:
            t.cancel()
    if frame is None or frame.get("t") != "result":
        stderr = b"".join(sinks).decode("utf-8", "replace")
        reason = crash_reason(rc, stderr)
        if reason == "cpu limit":
            reason = f"TimeoutError: execution exceeded {timeout:g} s"
        return {"ok": False, "error": reason}
    if frame.get("ok"):
        return {"ok": True, "value": frame.get("value")}
    err = frame.get("error")
    return {"ok": False, "error": err if isinstance(err, str) else "error"}
