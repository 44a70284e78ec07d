"""Values between the judge and the runner (both children of `sandbox/judge.py`): tagged JSON
frames over pipes, rebuilt from the receiver's own builtins, plus the trusted prelude both run
before anything untrusted (rlimits).

Plain Python with no w4s_ray imports: the judge runs as `python -I -S` (no site-packages) and
loads this file by path; the runner imports it as `w4s_ray.sandbox.children.codec`.
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from fractions import Fraction

MAX_MSG = 64 << 20
MAX_ITEMS = 100_000


class Opaque:
    """A value that could not cross as data: equal only to itself."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


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
        if len(items) > MAX_ITEMS:
            raise ValueError("dict too large")
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in items]}
    if isinstance(x, (list, tuple, set, frozenset, range)):
        tag = (
            "l"
            if isinstance(x, list)
            else "t"
            if isinstance(x, tuple)
            else "fs"
            if isinstance(x, frozenset)
            else "s"
            if isinstance(x, set)
            else "r"
        )
        if tag == "r":
            return {"r": [x.start, x.stop, x.step]}
        seq = list(list.__iter__(x) if tag == "l" else tuple.__iter__(x) if tag == "t" else iter(x))
        if len(seq) > MAX_ITEMS:
            raise ValueError("sequence too large")
        return {tag: [encode(v, depth + 1) for v in seq]}
    if hasattr(x, "tolist") and callable(x.tolist):  # numpy arrays and scalars
        return encode(x.tolist(), depth + 1)
    if hasattr(x, "__next__"):  # generators and iterators: the tests see an iterator again
        out = []
        for v in x:
            out.append(encode(v, depth + 1))
            if len(out) > MAX_ITEMS:
                raise ValueError("iterator too long")
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
    ((tag, p),) = v.items()
    d = depth + 1
    if tag == "i":
        return int(p)
    if tag == "f":
        return float(p)
    if tag == "b":
        return p.encode("latin-1")
    if tag == "ba":
        return bytearray(p.encode("latin-1"))
    if tag == "c":
        return complex(float(p[0]), float(p[1]))
    if tag == "fr":
        return Fraction(int(p[0]), int(p[1]))
    if tag == "dec":
        return Decimal(p)
    if tag == "l":
        return [decode(e, d) for e in p]
    if tag == "t":
        return tuple(decode(e, d) for e in p)
    if tag == "s":
        return {decode(e, d) for e in p}
    if tag == "fs":
        return frozenset(decode(e, d) for e in p)
    if tag == "r":
        return range(int(p[0]), int(p[1]), int(p[2]))
    if tag == "d":
        return {decode(k, d): decode(e, d) for k, e in p}
    if tag == "it":
        return iter([decode(e, d) for e in p])
    if tag == "o":
        return Opaque(str(p)[:200])
    raise ValueError("malformed value")


class Channel:
    def __init__(self, rfd, wfd):
        self.rfd, self.wfd = rfd, wfd

    def send(self, obj):
        data = json.dumps(obj).encode("utf-8", "surrogatepass")
        if len(data) > MAX_MSG:
            raise MemoryError("value too large to pass between test and candidate")
        data = len(data).to_bytes(8, "big") + data
        while data:
            data = data[os.write(self.wfd, data) :]

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
    for lim, val in (
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_AS, mem_mb << 20),
        (resource.RLIMIT_FSIZE, file_mb << 20),
        (resource.RLIMIT_NOFILE, 64),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(lim, (val, val))
    sys.set_int_max_str_digits(0)


def describe(exc):
    try:
        return f"{type(exc).__name__}: {exc}"[:2000]
    except BaseException:
        return type(exc).__name__
