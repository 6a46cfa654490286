"""HTTP/1.1 for the engine's API: kept-alive connections over a Unix or TCP/TLS socket.

The engine speaks a small, well-behaved subset of HTTP/1.1 (JSON and tar bodies, chunked
streams, hijacked attach connections that end at EOF), so this is written by hand: a
general HTTP client costs two to three times the CPU per call (scripts/bench/client.py
shows it), and each of its upgrades has broken somebody's Unix-socket transport.

A body is read through ``Body``, which tells a clean end from a cut one. A connection
goes back to the pool only when its response was read to the end; anything else
(cancellation, an error, a hijacked stream) closes it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterable, AsyncIterator, Mapping

_CRLF = b"\r\n"
_MAX_IDLE = 32
_CHUNK = 64 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not the HTTP this module reads."""


class BodyCut(Exception):
    """The body ended, or the connection broke, before the body's own end."""


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
        self._drained = asyncio.get_running_loop().create_future()

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

    async def read_exactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes.

        Raises:
            asyncio.IncompleteReadError: the connection ended first.
            OSError: the connection broke.
        """
        while len(self._buffer) < n:
            await self._more()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
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
        self._waiter = asyncio.get_running_loop().create_future()
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


def _head(method: str, target: str, host: str, headers: Mapping[str, str] | None) -> list[str]:
    head = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    if headers:
        head.extend(f"{key}: {value}\r\n" for key, value in headers.items())
    return head


def write(  # noqa: PLR0913 -- the parts of one request
    conn: Connection,
    method: str,
    target: str,
    *,
    host: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
) -> bool:
    """Write one request with a whole body (or none) to the socket's buffer.

    Returns:
        Whether the body is large enough that the caller should wait for the buffer to
        drain (``conn.drain()``); small requests go out at once.
    """
    head = _head(method, target, host, headers)
    if body or method in {"POST", "PUT"}:
        head.append(f"Content-Length: {len(body or b'')}\r\n")
    conn.write("".join(head).encode() + _CRLF + (body or b""))
    return body is not None and len(body) >= _CHUNK


async def send_chunked(  # noqa: PLR0913 -- the parts of one request
    conn: Connection,
    method: str,
    target: str,
    *,
    host: str,
    headers: Mapping[str, str] | None,
    body: AsyncIterable[bytes],
) -> None:
    """Write one request whose body arrives in pieces, with chunked transfer coding."""
    head = _head(method, target, host, headers)
    head.append("Transfer-Encoding: chunked\r\n\r\n")
    conn.write("".join(head).encode())
    async for chunk in body:
        if chunk:
            conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await conn.drain()
    conn.write(b"0\r\n\r\n")
    await conn.drain()


class Body:
    """A response's status, headers and body, read from its connection.

    ``done`` turns true once the body was read to its end, which lets the connection be
    reused. Reading raises ``BodyCut`` when the body stops before its end. Only the
    framing headers are looked up on the hot path; ``headers`` parses the rest on demand.
    """

    __slots__ = (
        "_chunk_left",
        "_close",
        "_conn",
        "_head",
        "_left",
        "_mode",
        "_raw",
        "done",
        "reason",
        "status",
    )

    def __init__(self, conn: Connection, status: int, reason: str, head: bytes) -> None:
        self._conn = conn
        self.status = status
        self.reason = reason
        self._raw = head  # header values as sent: some are case-sensitive (base64)
        self._head = lowered = head.lower()
        self.done = False
        self._left = 0
        self._chunk_left = 0
        # Substring tests first: they are cheap, and most heads lack most fields.
        self._close = b"\r\nconnection: close" in lowered
        chunked = b"\r\ntransfer-encoding:" in lowered and b"chunked" in (
            _field(lowered, b"\r\ntransfer-encoding:") or b""
        )
        length = None if chunked else _field(lowered, b"\r\ncontent-length:")
        if status in {204, 304} or 100 <= status < 200:  # noqa: PLR2004 -- statuses without a body
            self._mode = "none"
            self.done = True
        elif chunked:
            self._mode = "chunked"  # it overrides any Content-Length, as HTTP/1.1 says
        elif length is not None:
            self._mode = "length"
            self._left = int(length)
            self.done = self._left == 0
        else:
            self._mode = "eof"  # a hijacked attach stream, or Connection: close

    @property
    def headers(self) -> dict[str, str]:
        """Every header, names in lower case, values as sent."""
        lines = self._raw.decode("latin-1").split("\r\n")[1:]
        return {
            key.strip().lower(): value.strip()
            for key, _, value in (line.partition(":") for line in lines)
            if key
        }

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request once the body is read."""
        return self._mode != "eof" and not self._close

    async def read_exactly(self, n: int) -> bytes | None:
        """Read exactly ``n`` bytes of body; None when the body ended before the first one.

        Raises:
            BodyCut: the body ended after some but not all of the ``n`` bytes.
        """
        parts: list[bytes] = []
        wanted = n
        while wanted:
            piece = await self._read_some(wanted)
            if not piece:
                if not parts:
                    return None
                got = n - wanted
                raise BodyCut(f"stream cut after {got} of {n} bytes")
            parts.append(piece)
            wanted -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def read(self) -> bytes:
        """Read the rest of the body."""
        if self.done:
            return b""
        if self._mode == "length":
            data = await self._exactly(self._left)
            self._left = 0
            self.done = True
            return data
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the rest of the body as it arrives."""
        while piece := await self._read_some(_CHUNK):
            yield piece

    async def _read_some(self, limit: int) -> bytes:
        """Return up to ``limit`` bytes of body; ``b""`` only at the body's clean end."""
        if self.done:
            return b""
        conn = self._conn
        try:
            if self._mode == "length":
                data = await conn.read_some(min(limit, self._left))
                if not data:
                    raise BodyCut(f"body cut with {self._left} bytes still to come")
                self._left -= len(data)
                self.done = self._left == 0
                return data
            if self._mode == "eof":
                data = await conn.read_some(limit)
                self.done = not data
                return data
            return await self._read_chunked(limit)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise BodyCut(f"malformed or cut chunked body: {exc}") from exc
        except OSError as exc:
            raise BodyCut(f"connection broke mid-body: {exc}") from exc

    async def _read_chunked(self, limit: int) -> bytes:
        conn = self._conn
        if not self._chunk_left:
            size_line = await conn.read_until(_CRLF)
            self._chunk_left = int(size_line.split(b";", 1)[0], 16)
            if not self._chunk_left:
                while await conn.read_until(_CRLF) != _CRLF:  # trailers, then the end
                    pass
                self.done = True
                return b""
        data = await conn.read_some(min(limit, self._chunk_left))
        if not data:
            raise BodyCut("chunked body cut inside a chunk")
        self._chunk_left -= len(data)
        if not self._chunk_left:
            await conn.read_exactly(2)
        return data

    async def _exactly(self, n: int) -> bytes:
        try:
            return await self._conn.read_exactly(n)
        except asyncio.IncompleteReadError as exc:
            raise BodyCut(f"body cut after {len(exc.partial)} of {n} bytes") from exc
        except OSError as exc:
            raise BodyCut(f"connection broke mid-body: {exc}") from exc


async def receive(conn: Connection) -> Body:
    """Read a response's status line and headers.

    Raises:
        asyncio.IncompleteReadError: the connection closed before a whole head arrived.
        ProtocolError: the head is not HTTP/1.x.
    """
    try:
        head = await conn.read_until(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ProtocolError("response head larger than 1 MiB") from exc
    status_line = head[: head.find(b"\r\n")]
    version, _, rest = status_line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    return Body(conn, int(code), reason.decode("latin-1"), head[:-4])


def _field(lowered_head: bytes, needle: bytes) -> bytes | None:
    """The value of the header whose line starts with ``needle`` (CRLF, name, colon)."""
    at = lowered_head.find(needle)
    if at == -1:
        return None
    start = at + len(needle)
    end = lowered_head.find(b"\r\n", start)
    return lowered_head[start : end if end != -1 else None].strip()
