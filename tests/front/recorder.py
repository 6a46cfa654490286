"""A recording relay on a Unix socket: what a Docker client asked, and what it was answered.

``Recorder`` listens on a Unix socket and relays every connection byte for byte to an
upstream socket (an engine, or ccdaemon's front). It changes nothing: it only follows
HTTP/1.1's framing in each direction (request and response heads, Content-Length and
chunked bodies, an answer read to the end of the connection, a 101 that turns the
connection into a raw stream) so that it can log each request line and the status
line that answered it. It runs its own event loop in a thread, so blocking test code
(a peer CLI) can run meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from pathlib import Path

#: The longest request or response head relayed (Docker's own limit is far below).
MAX_HEAD = 1 << 20
_COPY = 1 << 16


@dataclass
class Exchange:
    """One request on one connection, and the status it was answered with.

    Attributes:
        connection: which client connection (numbered in accepting order).
        started: when its request line arrived (monotonic seconds).
        method: the request's method.
        target: the request's path and query, as sent.
        status: the answer's status code; None while none came.
    """

    connection: int
    started: float
    method: str
    target: str
    status: int | None = None


async def _head(reader: asyncio.StreamReader) -> bytes | None:
    """One message head (through the blank line); None at a clean end of stream."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    except asyncio.LimitOverrunError:
        raise ValueError("message head too long") from None


def _headers(head: bytes) -> dict[str, str]:
    fields = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


async def _body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fields: dict[str, str]
) -> None:
    """Relay one body framed by ``fields`` (chunked or Content-Length), as it comes."""
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            writer.write(size_line)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    writer.write(trailer)
                writer.write(b"\r\n")
                await writer.drain()
                return
            await _exactly(reader, writer, size + 2)
    else:
        await _exactly(reader, writer, int(fields.get("content-length", "0")))


async def _exactly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int) -> None:
    while size > 0:
        data = await reader.read(min(size, _COPY))
        if not data:
            raise asyncio.IncompleteReadError(b"", size)
        writer.write(data)
        await writer.drain()
        size -= len(data)


async def _raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(_COPY):
        writer.write(data)
        await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


class Recorder:
    """Relay ``listen`` to ``upstream`` (both Unix sockets), logging every exchange.

    Attributes:
        exchanges: every request seen, in the order its request line arrived.
    """

    def __init__(self, listen: Path, upstream: str) -> None:
        self.listen = listen
        self.upstream = upstream
        self.exchanges: list[Exchange] = []
        self._numbers = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_unix_server(self._serve, str(self.listen), limit=MAX_HEAD), self._loop
        ).result(10)
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            # Each relay closes its sockets as it ends (_serve's finally); one accepted
            # while closing starts first, so that it has a finally to run.
            while tasks := asyncio.all_tasks() - {asyncio.current_task()}:
                await asyncio.sleep(0)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            if self._server is not None:
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self.listen.unlink(missing_ok=True)

    def snapshot(self) -> list[Exchange]:
        """A copy of the exchanges so far."""
        return [Exchange(**vars(e)) for e in list(self.exchanges)]

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        # Only close() cancels a relay; Python 3.11's server logs a handler that ends
        # cancelled as an ERROR ("Exception in callback"), so a cancelled relay just ends.
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay(client_r, client_w)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        number = next(self._numbers)
        try:
            engine_r, engine_w = await asyncio.open_unix_connection(self.upstream, limit=MAX_HEAD)
        except OSError:
            client_w.close()
            return
        except asyncio.CancelledError:  # the recorder closes while this relay begins
            client_w.close()
            raise
        pending: collections.deque[Exchange] = collections.deque()
        upgraded = asyncio.Event()
        try:
            await asyncio.gather(
                self._requests(number, client_r, engine_w, pending, upgraded),
                self._responses(engine_r, client_w, pending, upgraded),
            )
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a side closed mid-message: the relay ends with it
        finally:
            for writer in (client_w, engine_w):
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _requests(
        self,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pending: collections.deque[Exchange],
        upgraded: asyncio.Event,
    ) -> None:
        while (head := await _head(reader)) is not None:
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            exchange = Exchange(number, time.monotonic(), method, target)
            self.exchanges.append(exchange)
            pending.append(exchange)
            fields = _headers(head)
            upgrade = "upgrade" in fields.get("connection", "").lower()
            upgraded.clear()
            writer.write(head)
            await _body(reader, writer, fields)
            if upgrade:
                await upgraded.wait()  # its answer: a raw stream from now on if 101
                if exchange.status == 101:  # Switching Protocols
                    break
        await _raw(reader, writer)

    async def _responses(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pending: collections.deque[Exchange],
        upgraded: asyncio.Event,
    ) -> None:
        while (head := await _head(reader)) is not None:
            status = int(head.split(b" ", 2)[1])
            writer.write(head)
            await writer.drain()
            if status == 100:  # Continue: the real answer follows
                continue
            exchange = pending.popleft() if pending else None
            if exchange is not None:
                exchange.status = status
            upgraded.set()
            if status == 101:  # Switching Protocols
                break
            fields = _headers(head)
            no_body = status in {204, 304} or (exchange is not None and exchange.method == "HEAD")
            framed = "content-length" in fields or "chunked" in fields.get("transfer-encoding", "")
            if no_body:
                continue
            if not framed:
                break  # read to the end of the connection
            await _body(reader, writer, fields)
        await _raw(reader, writer)


_HEX = re.compile(r"[0-9a-f]{64}")


def normalised(exchanges: list[Exchange], network_id: str) -> list[tuple[str, str, int | None]]:
    """(method, target, status) in request order, IDs and the network id replaced."""
    return [
        (e.method, _HEX.sub("<id>", e.target.replace(network_id, "<net>")), e.status)
        for e in sorted(exchanges, key=lambda e: e.started)
    ]
