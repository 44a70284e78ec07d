"""The judge: runs the tests against proxies of the candidate's functions and writes the verdict
(`sandbox/judge.py` explains the design).

`python -I -S -B .../sandbox/children/judge.py WFD RFD VFD CPU MEM_MB FILE_MB [ENTRY]`, cwd =
its own temp dir holding `tests.py`; the nonce arrives on stdin. No site-packages (`-S`): the
codec is loaded from this file's directory by path. The judge never runs candidate code; it
writes `PASS <nonce>` on the verdict pipe only after every test ran.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import sys

_spec = importlib.util.spec_from_file_location(
    "w4s_codec", os.path.join(os.path.dirname(os.path.abspath(__file__)), "codec.py")
)
_codec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_codec)
Channel, decode, describe, encode, limits = (
    _codec.Channel,
    _codec.decode,
    _codec.describe,
    _codec.encode,
    _codec.limits,
)


class CandidateError(Exception):
    """The candidate raised something that is not an ordinary exception (e.g. SystemExit)."""


def _rebuild(name, msg):
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(msg)
        except BaseException:
            pass
    return CandidateError(f"{name}: {msg}")


def _apply(orig, new):
    # The candidate mutated an argument in place: mirror that on the test's object.
    if type(orig) is list and type(new) is list:
        orig[:] = new
    elif type(orig) is dict and type(new) is dict:
        orig.clear()
        orig.update(new)
    elif type(orig) is set and type(new) is set:
        orig.clear()
        orig.update(new)
    elif type(orig) is bytearray and type(new) is bytearray:
        orig[:] = new


class Proxy:
    __slots__ = ("_ch", "__name__")

    def __init__(self, ch, name):
        self._ch, self.__name__ = ch, name

    def __repr__(self):
        return f"<candidate function {self.__name__}>"

    def __call__(self, *args, **kwargs):
        self._ch.send(
            {
                "call": self.__name__,
                "args": [encode(a) for a in args],
                "kwargs": {k: encode(v) for k, v in kwargs.items()},
            }
        )
        reply = self._ch.recv()
        if type(reply) is not dict:
            raise ValueError("malformed reply from the candidate")
        if "exc" in reply:
            name, msg = reply["exc"]
            raise _rebuild(str(name), str(msg))
        for i, new in dict(reply.get("args") or {}).items():
            i = int(i)
            if 0 <= i < len(args):
                _apply(args[i], decode(new))
        return decode(reply["ret"])


_NO_IMPORT = {
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "webbrowser",
    "pydoc",
    "ensurepip",
    "venv",
    "subprocess",
    "ctypes",
}


def _stdlib_module(name):
    # Only the judge's own standard library, by name: never code from the candidate.
    name = str(name)
    top = name.split(".")[0]
    if top not in sys.stdlib_module_names or top in _NO_IMPORT or top.startswith("_"):
        return None
    try:
        __import__(name)
        return sys.modules[name]
    except BaseException:
        return None


def _w4s_judge():
    wfd, rfd, vfd, cpu, mem_mb, file_mb = (int(x) for x in sys.argv[1:7])
    entry = sys.argv[7] if len(sys.argv) > 7 else ""
    limits(cpu, mem_mb, file_mb)
    nonce = sys.stdin.readline().strip()
    sys.stdin.close()
    os.close(0)
    tests = open("tests.py", encoding="utf-8").read()
    ch = Channel(rfd, wfd)
    try:
        ready = ch.recv()
        if type(ready) is not dict or "names" not in ready:
            raise CandidateError(
                str(dict(ready).get("error", "no reply"))[:2000]
                if type(ready) is dict
                else "no reply"
            )
        ns = {"__name__": "__w4s_tests__", "__builtins__": builtins}
        for name, spec in dict(ready["names"]).items():
            name = str(name)
            if type(spec) is dict and "mod" in spec:
                mod = _stdlib_module(spec["mod"])
                if mod is not None:
                    ns[name] = mod
                continue
            ns[name] = Proxy(ch, name) if spec == {"fn": 1} else decode(spec)
        exec(compile(tests, "tests.py", "exec"), ns)
        if entry:
            if entry not in ns or not isinstance(ns[entry], Proxy):
                raise NameError(f"entry point {entry!r} is not defined by the solution")
            check = ns.get("check")
            if callable(check):
                import inspect

                try:
                    nparams = len(inspect.signature(check).parameters)
                except (TypeError, ValueError):
                    nparams = 1
                check(ns[entry]) if nparams else check()
    except CandidateError as exc:
        msg = "FAIL " + str(exc)[:2000]
    except BaseException as exc:  # noqa: BLE001 - any failure is a fail
        msg = "FAIL " + describe(exc)
    else:
        msg = "PASS " + nonce
    os.write(vfd, msg.encode("utf-8", "replace"))
    os.close(vfd)
    os._exit(0)


if __name__ == "__main__":
    _w4s_judge()
