"""The nested child behind `agent.execute_code` (see `sandbox/nested.py`).

`python -I -B .../sandbox/children/execute.py REQ_FD REP_FD` (run by path): reads {"t": "init", "code"},
installs the same audit hook as the workflow child, runs the code and writes one frame
{"t": "result", "ok": bool, "value": ..., "error": str}. W4S semantics: the value of
`solution()` if the code defines a callable `solution`, else the value of the last line (an
expression, or the variable a final assignment sets), else None. The value is returned as-is
when it is JSON data (numbers, strings, lists, dicts), otherwise as `str(value)`.
"""

from __future__ import annotations

import ast
import io
import json
import math
import os
import sys
import traceback
from typing import Any

from w4s_ray.sandbox import audit
from w4s_ray.sandbox.rpc import FdWriter, read_frame_blocking


def _jsonable(value: Any, limit: int) -> Any:
    try:
        text = json.dumps(value, allow_nan=False)
        if len(text) <= limit and json.loads(text) == value:
            return value
    except (TypeError, ValueError, RecursionError, OverflowError):
        pass
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    s = str(value)
    return (s if type(s) is str else str.__str__(s))[:limit]


def _run(code: str) -> Any:
    tree = ast.parse(code, filename="<code>", mode="exec")
    last = tree.body[-1] if tree.body else None
    ns: dict[str, Any] = {"__name__": "__main__"}
    if isinstance(last, ast.Expr):
        body = ast.Module(body=tree.body[:-1], type_ignores=[])
        exec(compile(body, "<code>", "exec"), ns)
        if callable(ns.get("solution")):
            return ns["solution"]()
        return eval(compile(ast.Expression(last.value), "<code>", "eval"), ns)
    exec(compile(tree, "<code>", "exec"), ns)
    if callable(ns.get("solution")):
        return ns["solution"]()
    if isinstance(last, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = last.targets if isinstance(last, ast.Assign) else [last.target]
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            return ns.get(targets[0].id)
    return None


def main() -> None:
    req_fd, rep_fd = int(sys.argv[1]), int(sys.argv[2])
    writer = FdWriter(req_fd)
    init = read_frame_blocking(rep_fd)
    if init is None or init.get("t") != "init":
        os._exit(71)
    limit = int(init.get("max_value_chars", 100_000))
    sys.stdout = io.StringIO()  # the program's prints are not part of its value
    audit.disarm_fork_exec()
    audit.install(os.getcwd())
    try:
        value = _run(str(init.get("code", "")))
        frame = {"t": "result", "ok": True, "value": _jsonable(value, limit)}
    except BaseException as exc:  # noqa: BLE001 - reported to the workflow as an error
        try:
            msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        except BaseException:  # noqa: BLE001
            msg = type(exc).__name__
        frame = {"t": "result", "ok": False, "error": msg[-2000:]}
    try:
        writer.send(frame)
    except BaseException:  # noqa: BLE001
        writer.send({"t": "result", "ok": False, "error": "unserialisable result"})
    os._exit(0)


if __name__ == "__main__":
    main()
