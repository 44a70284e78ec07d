"""The child <-> parent protocol: length-prefixed JSON frames over two dedicated pipes.

Why pipes and not stdout: the workflow may print anything; its stdout/stderr are only captured
for diagnostics. The child gets two inherited fds (`pass_fds`): it writes requests and results
to one and reads replies from the other. A frame is a 4-byte big-endian length then UTF-8 JSON.

Frames child -> parent (every frame is untrusted; the parent validates types and sizes):
  {"t": "ready"}                                    code loaded, `solver` found
  {"t": "load_error", "error": str, "tb": str, "line": int|None}
  {"t": "start", "i": idx}                          item idx began
  {"t": "done", "i": idx, "answer": str}            item idx returned an answer
  {"t": "fail", "i": idx, "kind": str, "error": str, "tb": str, "line": int|None}
  {"t": "call", "id": n, "i": idx, "m": method, "p": params}   an agent RPC
  {"t": "bye"}                                      all items handled
Frames parent -> child:
  {"t": "init", "code": str, "items": [[idx, question, public_meta], ...], "threads": n, ...}
  {"t": "reply", "id": n, "ok": bool, "v": value, "err": str}
  {"t": "cancel", "i": idx}                         item idx timed out; interrupt its thread
"""

from __future__ import annotations

import json
import os
import struct
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the child never imports asyncio just to speak this protocol
    import asyncio

HEADER = struct.Struct(">I")
# A frame bigger than this means a broken or hostile child; the parent kills it.
MAX_FRAME = 32 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame."""


def encode(obj: Any) -> bytes:
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    return HEADER.pack(len(data)) + data


def decode(data: bytes) -> dict:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise ProtocolError("frame is not an object with a type")
    return obj


class FdWriter:
    """Thread-safe blocking frame writer on a raw fd (the child side)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def send(self, obj: Any) -> None:
        buf = memoryview(encode(obj))
        with self._lock:
            while buf:
                n = os.write(self.fd, buf)
                buf = buf[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame_blocking(fd: int) -> dict | None:
    """Next frame from fd, or None at EOF (the child side)."""
    head = _read_exact(fd, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes exceeds {MAX_FRAME}")
    body = _read_exact(fd, size)
    if body is None:
        return None
    return decode(body)


async def read_frame(reader: asyncio.StreamReader) -> dict | None:
    """Next frame from an asyncio stream, or None at EOF (the parent side)."""
    import asyncio

    try:
        head = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes exceeds {MAX_FRAME}")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    return decode(body)
