"""Connections to the engine: one socket read into a buffer, and the pool of idle ones."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import ssl

_MAX_IDLE = 32


class Connection(asyncio.Protocol):
    """One socket to the engine, read into a buffer; reused while each response is read whole.

    A protocol rather than asyncio's stream pair: the engine client reads small responses
    at a high rate, and this does the same with about a tenth less CPU per request
    (scripts/bench/client.py). Reading pauses while more than ``_HIGH_WATER`` bytes wait.
    """

    _HIGH_WATER = 1 << 20

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        # Kept: asking for the running loop costs a getpid() system call on Python 3.11.
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._eof = False
        self._lost: BaseException | None = None
        self._reading_paused = False
        self.reused = False

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self._transport = cast("asyncio.Transport", transport)  # a stream socket's transport

    def data_received(self, data: bytes) -> None:  # noqa: D102
        self._buffer += data
        if len(self._buffer) > self._HIGH_WATER and self._transport and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:  # noqa: D102
        self._eof = True
        self._wake()
        return False  # close the socket

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self._eof = True
        self._lost = exc
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:  # noqa: D102
        self._drained = self._loop.create_future()

    def resume_writing(self) -> None:  # noqa: D102
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # --- what the HTTP layer uses

    def usable(self) -> bool:
        """False once the peer closed it while it sat idle (an engine restart does that)."""
        transport = self._transport
        return not self._eof and transport is not None and not transport.is_closing()

    def close(self) -> None:
        """Close the socket without waiting."""
        if self._transport is not None:
            self._transport.close()

    def write(self, data: bytes) -> None:
        """Queue ``data`` on the socket."""
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the connection to the engine is closed")
        self._transport.write(data)

    async def drain(self) -> None:
        """Wait until the socket's write buffer is below its high-water mark."""
        if self._drained is not None:
            await self._drained
        if self._lost is not None or (self._transport and self._transport.is_closing()):
            raise ConnectionResetError("the connection to the engine was lost while writing")

    async def read_until(self, separator: bytes, limit: int = _HIGH_WATER) -> bytes:
        """Return the bytes up to and including ``separator``.

        Raises:
            asyncio.IncompleteReadError: the connection ended first.
            asyncio.LimitOverrunError: ``limit`` bytes came without the separator.
            OSError: the connection broke.
        """
        start = 0
        while (at := self._buffer.find(separator, start)) == -1:
            if len(self._buffer) > limit:
                raise asyncio.LimitOverrunError("separator not found within the limit", limit)
            start = max(0, len(self._buffer) - len(separator) + 1)
            await self._more()
        end = at + len(separator)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def take(self, n: int) -> bytes | None:
        """Return exactly ``n`` bytes if they have arrived already, else None (nothing read)."""
        if len(self._buffer) < n:
            return None
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def read_exactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes.

        Raises:
            asyncio.IncompleteReadError: the connection ended first.
            OSError: the connection broke.
        """
        while (data := self.take(n)) is None:
            await self._more()
        return data

    async def read_some(self, limit: int) -> bytes:
        """Return between 1 and ``limit`` bytes, or ``b""`` at the end of the connection.

        Raises:
            OSError: the connection broke.
        """
        if not self._buffer:
            try:
                await self._more()
            except asyncio.IncompleteReadError:
                return b""
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return data

    async def _more(self) -> None:
        """Wait for more bytes; raise at the end of the connection."""
        if self._eof:
            if self._lost is not None:
                raise self._lost
            raise asyncio.IncompleteReadError(bytes(self._buffer), None)
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Pool:
    """Idle connections to one endpoint; opens a new one whenever none is idle.

    There is no limit on connections in use: long-lived streams each hold one, and a
    limit would let them starve control calls. Only idle connections are capped.
    """

    def __init__(
        self,
        *,
        path: str | None = None,
        host: str = "",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._path, self._host, self._port, self._tls = path, host, port, tls
        self._idle: list[Connection] = []

    def idle(self) -> Connection | None:
        """Return an idle connection that is still open, if there is one."""
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                conn.reused = True
                return conn
            conn.close()
        return None

    async def open(self) -> Connection:
        """Open a new connection.

        Raises:
            OSError: the socket could not be opened.
        """
        loop = asyncio.get_running_loop()
        if self._path is not None:
            _, conn = await loop.create_unix_connection(Connection, self._path)
        else:
            _, conn = await loop.create_connection(
                Connection, self._host, self._port, ssl=self._tls
            )
        return conn

    def release(self, conn: Connection) -> None:
        """Keep ``conn`` for reuse (its last response was read to the end)."""
        if len(self._idle) < _MAX_IDLE and conn.usable():
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        for conn in self._idle:
            conn.close()
        self._idle.clear()
