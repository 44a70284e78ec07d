"""The parent's end of a sandbox child's two frame pipes (asyncio; see `rpc.py` for frames).

`Channel.frames` is a queue fed by a reader task (None at EOF, a `protocol_error` frame for a
malformed one); `send` batches the frames queued in one loop iteration into one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from w4s_ray.sandbox import rpc


class Channel:
    """The parent's end of the two pipes: a frame queue (reader task) and a frame writer."""

    def __init__(self, req_r: int, rep_w: int) -> None:
        self._req_r, self._rep_w = req_r, rep_w
        self.frames: asyncio.Queue = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        self._rtransport: asyncio.BaseTransport | None = None
        self._tasks: list[asyncio.Task] = []
        self._out: list[bytes] = []
        self._flush_scheduled = False

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        # uvloop (Ray's async actors run on it) hands the fd to libuv, which closes it, and then
        # closes the file object too: a double close that can hit another evaluation's freshly
        # opened pipe (MagicStack/uvloop#763; seen under load as `FileExistsError: [Errno 17]`
        # in connect_read_pipe). There the file objects must not own the fds.
        owns = not type(loop).__module__.startswith("uvloop")
        reader = asyncio.StreamReader(limit=rpc.MAX_FRAME + 8, loop=loop)
        self._rtransport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
            os.fdopen(self._req_r, "rb", 0, closefd=owns))
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop),
            os.fdopen(self._rep_w, "wb", 0, closefd=owns))
        self._writer = asyncio.StreamWriter(transport, protocol, None, loop)
        self._tasks.append(asyncio.create_task(self._pump(reader)))

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                frame = await rpc.read_frame(reader)
                await self.frames.put(frame)
                if frame is None:
                    return
        except (rpc.ProtocolError, OSError, ValueError) as exc:
            await self.frames.put({"t": "protocol_error", "error": str(exc)})
            await self.frames.put(None)

    async def send(self, obj: Any) -> None:
        """Queue a frame; frames queued in one loop iteration go out in one write (fewer
        syscalls and child wake-ups when many replies complete together)."""
        if self._writer is None or self._writer.is_closing():
            return
        self._out.append(rpc.encode(obj))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        transport = self._writer.transport
        if transport.get_write_buffer_size() > 1 << 20:  # a child that stopped reading
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                await self._writer.drain()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._out or self._writer is None or self._writer.is_closing():
            self._out.clear()
            return
        data = b"".join(self._out)
        self._out.clear()
        try:
            self._writer.write(data)
        except (ConnectionError, OSError, RuntimeError):
            pass  # the child is gone; its loss is noticed on the reader side

    def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        if self._rtransport is not None:  # not left to EOF or GC: close the fd now, once
            with contextlib.suppress(Exception):
                self._rtransport.close()
