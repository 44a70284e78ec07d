"""The judge's runner: executes the candidate solution and answers "call function `name` with
these arguments" frames from the judge (`sandbox/judge.py` explains the design).

`python -I -B .../sandbox/children/runner.py RFD WFD CPU MEM_MB FILE_MB`, cwd = its own temp
dir holding `solution.py` and `imports.py` (the tests' import lines). It never sees the tests
or the nonce. Trusted prelude first (rlimits, `audit.disarm_fork_exec`), then the one deny-list
(`sandbox/audit.py`), then the candidate.
"""

from __future__ import annotations

import builtins
import os
import sys

from w4s_ray.sandbox import audit
from w4s_ray.sandbox.children.codec import Channel, decode, describe, encode, limits


def _w4s_runner():
    rfd, wfd, cpu, mem_mb, file_mb = (int(x) for x in sys.argv[1:6])
    limits(cpu, mem_mb, file_mb)
    ch = Channel(rfd, wfd)
    sol = open("solution.py", encoding="utf-8").read()
    imports = open("imports.py", encoding="utf-8").read()
    ns = {"__name__": "__w4s_candidate__", "__builtins__": builtins}
    audit.disarm_fork_exec()
    audit.install(os.getcwd())
    try:
        exec(compile(sol, "solution.py", "exec"), ns)
        exec(compile(imports, "tests.py", "exec"), ns)
        names = {}
        for k, v in list(ns.items()):
            if k.startswith("__"):
                continue
            if isinstance(v, type(sys)):
                # Tests may use a module the solution imported (MBPP 596 uses its `sys`).
                names[k] = {"mod": str(getattr(v, "__name__", ""))}
                continue
            if callable(v):
                names[k] = {"fn": 1}
            else:
                try:
                    names[k] = encode(v)
                except BaseException:
                    pass
        ready = {"names": names}
    except BaseException as exc:
        ready = {"error": describe(exc)}
    ch.send(ready)
    while True:
        try:
            req = ch.recv()
        except BaseException:
            os._exit(0)
        if "call" not in req:
            os._exit(0)
        try:
            args = [decode(a) for a in req["args"]]
            kwargs = {str(k): decode(v) for k, v in req["kwargs"].items()}
            ret = ns[req["call"]](*args, **kwargs)
            reply = {
                "ret": encode(ret),
                "args": {
                    str(i): encode(a)
                    for i, a in enumerate(args)
                    if type(a) in (list, dict, set, bytearray)
                },
            }
        except BaseException as exc:
            base = next((c for c in type(exc).__mro__ if c.__module__ == "builtins"), Exception)
            try:
                msg = str(exc)[:2000]
            except BaseException:
                msg = ""
            reply = {"exc": [base.__name__, str.__str__(msg) if isinstance(msg, str) else ""]}
        try:
            ch.send(reply)
        except MemoryError as exc:
            ch.send({"exc": ["MemoryError", str(exc)]})


if __name__ == "__main__":
    _w4s_runner()
