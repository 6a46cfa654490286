"""HTTP/1.1 messages on a connection: a request written, a response's head and body read.

``Body`` tells a body's clean end from a cut one, by its framing: a length, chunks, or
the end of the connection (a hijacked attach stream).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Mapping

    from ccdaemon.engine.http.connection import Connection

_CRLF = b"\r\n"
_CHUNK = 64 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not the HTTP this module reads."""


class BodyCut(Exception):
    """The body ended, or the connection broke, before the body's own end."""


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
            # A control call's answer has usually arrived whole with its head.
            data = self._conn.take(self._left) or await self._exactly(self._left)
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
