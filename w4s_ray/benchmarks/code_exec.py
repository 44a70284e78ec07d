"""Run untrusted candidate code against tests, with a verdict the candidate cannot reach.

Used by the code benchmarks to score a prediction (the hidden tests) and by the workflow runtime
for public tests. Each call starts two fresh processes, both `python -I` in their own temporary
directories with a minimal environment (no API keys), rlimits on CPU time, address space, file
size and open files, their own sessions (process groups), stdout discarded:

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

Defence in depth inside the runner (an audit hook installed before the candidate runs): no
fork/exec/spawn/subprocess/kill, no ctypes, no reading outside its own directory and the Python
installation (so not /proc/<judge>/mem, the judge's directory or the data files), no writing or
renaming outside its own directory (so no .pth file planted in site-packages).

What this does not defend against: a candidate that computes the right answers (the point of
the benchmark), CPU use on other cores by threads within its CPU-time budget, or a kernel-level
escape. Audit hooks are not a security boundary against native code; that is why the verdict
lives in another process. The workflow sandbox (w4s_ray/workflow) adds OS-level isolation for
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

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
MAX_DETAIL_CHARS = 2000
# Reading the candidate's stderr is capped: a test that prints megabytes must not cost megabytes.
MAX_STDERR_BYTES = 1 << 20

# Shared by both processes (each is a standalone script: `-I` keeps w4s_ray off their path).
_CODEC = r'''
import os, sys, json, builtins
from fractions import Fraction
from decimal import Decimal
MAX_MSG = 64 << 20
MAX_ITEMS = 100_000

class Opaque:
    """A value that could not cross as data: equal only to itself."""
    __slots__ = ("text",)
    def __init__(self, text): self.text = text
    def __repr__(self): return self.text

def encode(x, depth=0):
    if depth > 200:
        raise ValueError("value nested too deeply")
    t = type(x)
    if x is None or t is bool:
        return x
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return {"i": int.__repr__(x)}
    if isinstance(x, float):
        return {"f": float.__repr__(x)}
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, (bytes, bytearray)):
        return {"b" if isinstance(x, bytes) else "ba": bytes(x).decode("latin-1")}
    if isinstance(x, complex):
        return {"c": [float.__repr__(x.real), float.__repr__(x.imag)]}
    if isinstance(x, Fraction):
        return {"fr": [int.__repr__(x.numerator), int.__repr__(x.denominator)]}
    if isinstance(x, Decimal):
        return {"dec": Decimal.__str__(x)}
    if isinstance(x, dict):
        items = list(dict.items(x))
        if len(items) > MAX_ITEMS: raise ValueError("dict too large")
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in items]}
    if isinstance(x, (list, tuple, set, frozenset, range)):
        tag = ("l" if isinstance(x, list) else "t" if isinstance(x, tuple) else
               "fs" if isinstance(x, frozenset) else "s" if isinstance(x, set) else "r")
        if tag == "r":
            return {"r": [x.start, x.stop, x.step]}
        seq = list(list.__iter__(x) if tag == "l" else tuple.__iter__(x) if tag == "t" else
                   iter(x))
        if len(seq) > MAX_ITEMS: raise ValueError("sequence too large")
        return {tag: [encode(v, depth + 1) for v in seq]}
    if hasattr(x, "tolist") and callable(x.tolist):  # numpy arrays and scalars
        return encode(x.tolist(), depth + 1)
    if hasattr(x, "__next__"):  # generators and iterators: the tests see an iterator again
        out = []
        for v in x:
            out.append(encode(v, depth + 1))
            if len(out) > MAX_ITEMS: raise ValueError("iterator too long")
        return {"it": out}
    try:
        text = repr(x)[:200]
        text = str.__str__(text) if isinstance(text, str) else "<object>"
    except BaseException:
        text = "<object>"
    return {"o": text}

def decode(v, depth=0):
    if depth > 200:
        raise ValueError("value nested too deeply")
    if v is None or type(v) in (bool, str):
        return v
    if type(v) is not dict or len(v) != 1:
        raise ValueError("malformed value")
    (tag, p), = v.items()
    d = depth + 1
    if tag == "i": return int(p)
    if tag == "f": return float(p)
    if tag == "b": return p.encode("latin-1")
    if tag == "ba": return bytearray(p.encode("latin-1"))
    if tag == "c": return complex(float(p[0]), float(p[1]))
    if tag == "fr": return Fraction(int(p[0]), int(p[1]))
    if tag == "dec": return Decimal(p)
    if tag == "l": return [decode(e, d) for e in p]
    if tag == "t": return tuple(decode(e, d) for e in p)
    if tag == "s": return {decode(e, d) for e in p}
    if tag == "fs": return frozenset(decode(e, d) for e in p)
    if tag == "r": return range(int(p[0]), int(p[1]), int(p[2]))
    if tag == "d": return {decode(k, d): decode(e, d) for k, e in p}
    if tag == "it": return iter([decode(e, d) for e in p])
    if tag == "o": return Opaque(str(p)[:200])
    raise ValueError("malformed value")

class Channel:
    def __init__(self, rfd, wfd): self.rfd, self.wfd = rfd, wfd
    def send(self, obj):
        data = json.dumps(obj).encode("utf-8", "surrogatepass")
        if len(data) > MAX_MSG:
            raise MemoryError("value too large to pass between test and candidate")
        data = len(data).to_bytes(8, "big") + data
        while data:
            data = data[os.write(self.wfd, data):]
    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = os.read(self.rfd, min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError("the candidate process exited")
            buf += chunk
        return buf
    def recv(self):
        n = int.from_bytes(self._read(8), "big")
        if n > MAX_MSG:
            raise MemoryError("message too large")
        return json.loads(self._read(n).decode("utf-8", "surrogatepass"))

def limits(cpu, mem_mb, file_mb):
    import resource
    # Set by trusted code before untrusted code runs (soft == hard: they cannot be raised).
    for lim, val in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, mem_mb << 20),
                     (resource.RLIMIT_FSIZE, file_mb << 20), (resource.RLIMIT_NOFILE, 64),
                     (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(lim, (val, val))
    sys.set_int_max_str_digits(0)

def describe(exc):
    try:
        return f"{type(exc).__name__}: {exc}"[:2000]
    except BaseException:
        return type(exc).__name__
'''

_RUNNER = _CODEC + r'''
def _guard(workdir):
    """Audit hook: no processes, no ctypes, no files outside workdir (read: + Python itself)."""
    real = os.path.realpath
    work = real(workdir) + os.sep
    readable = tuple({real(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                      sys.base_exec_prefix)} | {"/usr/", "/lib/", "/lib64/", "/etc/"})
    devices = {"/dev/null", "/dev/urandom", "/dev/random", "/dev/zero"}
    denied = {"os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system",
              "os.kill", "os.killpg", "subprocess.Popen", "pty.spawn", "os.symlink", "os.link",
              "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function",
              "sys.addaudithook", "os.startfile"}
    no_import = {"ctypes", "_ctypes", "_posixsubprocess", "_xxsubinterpreters"}
    mutating = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
                "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
    wflags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def where(path):
        if isinstance(path, int):
            return None
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return real(os.fspath(path))

    def hook(event, args):
        if event in denied:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args and args[0] in no_import:
            raise ImportError(f"sandbox: module {args[0]} is not allowed")
        if event in mutating:
            # Both ends of a rename/copy must stay inside workdir.
            for a in args[:2]:
                p = where(a) if isinstance(a, (str, bytes, os.PathLike)) else None
                if p is not None and p != work[:-1] and not p.startswith(work):
                    raise PermissionError(f"sandbox: writing {p} is not allowed")
            return
        if event in ("open", "os.listdir", "os.scandir"):
            p = where(args[0]) if args and args[0] is not None else None
            if p is None or p == work[:-1] or p.startswith(work):
                return
            writes = False
            if event == "open" and len(args) >= 3:
                mode, flags = args[1], args[2]
                writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and bool(flags & wflags))
            if not writes and (p in devices or (p + os.sep).startswith(readable)):
                return
            raise PermissionError(f"sandbox: access to {p} is not allowed")
    sys.addaudithook(hook)

def _w4s_runner():
    rfd, wfd, cpu, mem_mb, file_mb = (int(x) for x in sys.argv[1:6])
    limits(cpu, mem_mb, file_mb)
    ch = Channel(rfd, wfd)
    sol = open("solution.py", encoding="utf-8").read()
    imports = open("imports.py", encoding="utf-8").read()
    ns = {"__name__": "__w4s_candidate__", "__builtins__": builtins}
    _guard(os.getcwd())
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
            reply = {"ret": encode(ret), "args": {
                str(i): encode(a) for i, a in enumerate(args)
                if type(a) in (list, dict, set, bytearray)}}
        except BaseException as exc:
            base = next((c for c in type(exc).__mro__ if c.__module__ == "builtins"),
                        Exception)
            try:
                msg = str(exc)[:2000]
            except BaseException:
                msg = ""
            reply = {"exc": [base.__name__, str.__str__(msg) if isinstance(msg, str) else ""]}
        try:
            ch.send(reply)
        except MemoryError as exc:
            ch.send({"exc": ["MemoryError", str(exc)]})
_w4s_runner()
'''

_JUDGE = _CODEC + r'''
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
    if type(orig) is list and type(new) is list: orig[:] = new
    elif type(orig) is dict and type(new) is dict: orig.clear(); orig.update(new)
    elif type(orig) is set and type(new) is set: orig.clear(); orig.update(new)
    elif type(orig) is bytearray and type(new) is bytearray: orig[:] = new

class Proxy:
    __slots__ = ("_ch", "__name__")
    def __init__(self, ch, name): self._ch, self.__name__ = ch, name
    def __repr__(self): return f"<candidate function {self.__name__}>"
    def __call__(self, *args, **kwargs):
        self._ch.send({"call": self.__name__, "args": [encode(a) for a in args],
                       "kwargs": {k: encode(v) for k, v in kwargs.items()}})
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

_NO_IMPORT = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo",
              "webbrowser", "pydoc", "ensurepip", "venv", "subprocess", "ctypes"}

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
            raise CandidateError(str(dict(ready).get("error", "no reply"))[:2000]
                                 if type(ready) is dict else "no reply")
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
_w4s_judge()
'''


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    status: str          # "passed" | "failed" | "error" | "timeout"
    detail: str          # first failure, truncated; "" when passed
    duration_s: float


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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
              python: str | None = None) -> ExecResult:
    """Run `solution` and the `tests` against it (then `check(entry_point)` if defined).

    `tests` is Python source: plain asserts, or a `check(candidate)` / `check()` function as in
    HumanEval / MBPP. `timeout_s` is wall-clock; `cpu_s` (default: `timeout_s`) is the
    CPU-time rlimit of each process, which bounds a busy loop independently of machine load.
    Returns an `ExecResult`; never raises for anything the candidate does.
    """
    start = time.monotonic()
    nonce = secrets.token_hex(16)
    exe = python or sys.executable
    cpu_limit = max(1, math.ceil(cpu_s if cpu_s is not None else timeout_s))
    with tempfile.TemporaryDirectory(prefix="w4s-run-") as rdir, \
            tempfile.TemporaryDirectory(prefix="w4s-judge-") as jdir:
        rpath, jpath = Path(rdir), Path(jdir)
        (rpath / "solution.py").write_text(solution, encoding="utf-8", errors="replace")
        (rpath / "imports.py").write_text(_import_lines(tests), encoding="utf-8")
        (rpath / "runner.py").write_text(_RUNNER, encoding="utf-8")
        (jpath / "tests.py").write_text(tests, encoding="utf-8", errors="replace")
        (jpath / "judge.py").write_text(_JUDGE, encoding="utf-8")
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
                    [exe, "-I", "runner.py", str(to_runner_r), str(to_judge_w), *limits],
                    cwd=rpath, env=env(rpath), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=err, pass_fds=(to_runner_r, to_judge_w),
                    start_new_session=True))
                procs.append(subprocess.Popen(
                    [exe, "-I", "-S", "judge.py", str(to_runner_w), str(to_judge_r),
                     str(verdict_w), *limits] + ([entry_point] if entry_point else []),
                    cwd=jpath, env=env(jpath), stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    pass_fds=(to_runner_w, to_judge_r, verdict_w), start_new_session=True))
        except OSError as exc:
            for p in procs:
                _kill_group(p)
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
        runner_rc = runner.poll()
        for p in procs:
            _kill_group(p)
            p.wait()
        report = _read_all(verdict_r).decode("utf-8", "replace")
        duration = time.monotonic() - start
        if report == f"PASS {nonce}":
            return ExecResult(True, "passed", "", duration)
        if timed_out:
            return ExecResult(False, "timeout", f"timed out after {timeout_s:g}s", duration)
        if runner_rc in (-signal.SIGXCPU, -signal.SIGKILL) or judge.returncode in (
                -signal.SIGXCPU, -signal.SIGKILL):
            return ExecResult(False, "timeout", f"CPU time limit ({cpu_limit}s) exceeded",
                              duration)
        if report.startswith("FAIL "):
            detail = report[5:]
            if detail.startswith("EOFError") and runner_rc:
                lines = _stderr_tail(stderr_path)
                detail = lines[-1] if lines else f"candidate exit code {runner_rc}"
            return ExecResult(False, "failed", detail[:MAX_DETAIL_CHARS], duration)
        last = f"judge exit code {judge.returncode}"
        if judge.returncode is not None and judge.returncode < 0:
            last = f"killed by signal {-judge.returncode}"
        return ExecResult(False, "error", last[:MAX_DETAIL_CHARS], duration)
