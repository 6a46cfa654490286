"""HTTP/1.1 with the daemon on one blocking socket: a Unix socket, or TCP with TLS.

The client runs in short-lived processes (the builder's steps, the command line), where
importing a general HTTP client costs more than the request: on this module's needs
(socket, select) Python spends about 7 ms, on http.client 28 ms, on asyncio 39 ms and
on aiohttp over 200 ms (``python -IS -X importtime``, idle machine). The daemon's
answers are a small, well-formed subset of HTTP/1.1, which this reads: a Content-Length
or chunked body, kept alive unless it says ``Connection: close``, or a body that ends
with the connection.

Every wait on the socket is bounded by the caller's deadline (``time.monotonic()``), or
unbounded when there is none.
"""

from __future__ import annotations

import select
import socket
import time

#: ``typing.TYPE_CHECKING`` without importing typing (about 10 ms of a step's start-up);
#: mypy and ruff read any ``TYPE_CHECKING`` so.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator, Mapping

_CHUNK = 64 * 1024
#: The most a response head may take; the daemon's are a few hundred bytes.
_HEAD_LIMIT = 64 * 1024


class ProtocolError(Exception):
    """The answer is not the HTTP/1.1 this module reads (a head too large or malformed)."""


class Cut(Exception):
    """The connection ended or broke before the answer's own end."""


class Connection:
    """One socket to the daemon, read into a buffer; reusable once an answer is read whole."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._eof = False

    @classmethod
    def open_unix(cls, path: str, *, deadline: float | None) -> Connection:
        """Connect to the Unix socket at ``path``.

        Raises:
            OSError: the socket could not be connected (TimeoutError past ``deadline``).
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls._connected(sock, path, deadline)

    @classmethod
    def open_tls(
        cls, host: str, port: int, context: ssl.SSLContext, *, deadline: float | None
    ) -> Connection:
        """Connect to ``host:port`` and complete the TLS handshake within ``deadline``.

        Raises:
            OSError: no connection or no handshake (``ssl.SSLError`` is an OSError).
        """
        sock = socket.create_connection((host, port), timeout=_left(deadline))
        try:
            sock.settimeout(_left(deadline))
            tls = context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return cls(tls)

    @classmethod
    def _connected(cls, sock: socket.socket, address: str, deadline: float | None) -> Connection:
        try:
            sock.settimeout(_left(deadline))
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def usable(self) -> bool:
        """False once the daemon closed it (or sent something) while it sat idle."""
        if self._eof or self._buffer or self._sock.fileno() == -1:
            return False
        readable, _, _ = select.select([self._sock], [], [], 0)
        return not readable

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def send(self, head: bytes, body: bytes | None, *, deadline: float | None) -> None:
        """Send a request's head and body.

        Raises:
            OSError: the socket broke or ``deadline`` passed (TimeoutError).
        """
        self._sock.settimeout(_left(deadline))
        self._sock.sendall(head + body if body and len(body) < _CHUNK else head)
        if body and len(body) >= _CHUNK:
            self._sock.sendall(body)

    def response(self, *, deadline: float | None) -> Response:
        """Read the next answer's status line and headers.

        Raises:
            Cut: the connection ended before a whole head came.
            ProtocolError: the head is not HTTP/1.x or too large.
            OSError: the socket broke or ``deadline`` passed (TimeoutError).
        """
        head = self._until(b"\r\n\r\n", deadline)
        status_line, _, fields = head.partition(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code = rest.partition(b" ")[0]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        headers = {}
        for line in fields.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        return Response(self, int(code), headers, deadline)

    def read_some(self, limit: int, deadline: float | None) -> bytes:
        """Between 1 and ``limit`` bytes, or ``b""`` at the end of the connection."""
        if not self._buffer and not self._fill(deadline):
            return b""
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return data

    def read_line(self, deadline: float | None) -> bytes:
        """The bytes up to and including the next CRLF (a chunk's size line, a trailer)."""
        return self._until(b"\r\n", deadline, keep=True)

    def _until(self, separator: bytes, deadline: float | None, *, keep: bool = False) -> bytes:
        start = 0
        while (at := self._buffer.find(separator, start)) == -1:
            if len(self._buffer) > _HEAD_LIMIT:
                raise ProtocolError(f"no {separator!r} within {_HEAD_LIMIT} bytes")
            start = max(0, len(self._buffer) - len(separator) + 1)
            if not self._fill(deadline):
                raise Cut(f"the connection ended after {len(self._buffer)} bytes of a head")
        end = at + len(separator)
        data = bytes(self._buffer[: end if keep else at])
        del self._buffer[:end]
        return data

    def _fill(self, deadline: float | None) -> bool:
        """Read more into the buffer; False at the end of the connection."""
        if self._eof:
            return False
        self._sock.settimeout(_left(deadline))
        data = self._sock.recv(_CHUNK)
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True


class Response:
    """An answer's status, headers (names lower-cased) and body, read from its connection.

    ``done`` turns true once the body was read to its end; ``reusable`` then says whether
    the connection may carry another request.
    """

    def __init__(
        self, conn: Connection, status: int, headers: Mapping[str, str], deadline: float | None
    ) -> None:
        self.status = status
        self.headers = dict(headers)
        self._conn = conn
        self._deadline = deadline
        self._chunk_left = 0
        self._left = 0
        encoding = self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        if status in {204, 304} or 100 <= status < 200:  # noqa: PLR2004 -- no body
            self._mode, self.done = "none", True
        elif "chunked" in encoding:
            self._mode, self.done = "chunked", False
        elif length is not None and length.isdigit():
            self._mode, self._left = "length", int(length)
            self.done = self._left == 0
        else:
            self._mode, self.done = "eof", False

    @property
    def content_type(self) -> str:
        """The media type, without parameters."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    @property
    def reusable(self) -> bool:
        """Whether the connection may carry another request (the body read, kept alive)."""
        closing = self.headers.get("connection", "").lower() == "close"
        return self.done and self._mode != "eof" and not closing

    def read(self) -> bytes:
        """The rest of the body.

        Raises:
            Cut: the body ended before its own end.
            OSError: the socket broke or the deadline passed (TimeoutError).
        """
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """The rest of the body, as it arrives."""
        while piece := self._read_some(_CHUNK):
            yield piece

    def _read_some(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of body; ``b""`` only at the body's clean end."""
        if self.done:
            return b""
        if self._mode == "chunked":
            return self._read_chunked(limit)
        if self._mode == "eof":
            data = self._conn.read_some(limit, self._deadline)
            self.done = not data
            return data
        data = self._conn.read_some(min(limit, self._left), self._deadline)
        if not data:
            raise Cut(f"the body was cut with {self._left} bytes still to come")
        self._left -= len(data)
        self.done = self._left == 0
        return data

    def _read_chunked(self, limit: int) -> bytes:
        conn, deadline = self._conn, self._deadline
        if not self._chunk_left:
            size = conn.read_line(deadline).split(b";", 1)[0].strip()
            try:
                self._chunk_left = int(size, 16)
            except ValueError:
                raise ProtocolError(f"not a chunk size: {size[:40]!r}") from None
            if not self._chunk_left:
                while conn.read_line(deadline) != b"\r\n":  # trailers, then the end
                    pass
                self.done = True
                return b""
        data = conn.read_some(min(limit, self._chunk_left), deadline)
        if not data:
            raise Cut("the chunked body was cut inside a chunk")
        self._chunk_left -= len(data)
        if not self._chunk_left and conn.read_line(deadline) != b"\r\n":
            raise ProtocolError("a chunk does not end with CRLF")
        return data


def request_head(method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """A request's head: the request line, Host, ``headers`` and the body's length."""
    lines = [f"{method} {target} HTTP/1.1", "Host: ccdaemon"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if body is not None or method in {"POST", "PUT"}:
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def deadline_in(seconds: float | None) -> float | None:
    """The deadline ``seconds`` from now (``time.monotonic()``), None for none."""
    return None if seconds is None else time.monotonic() + seconds


def _left(deadline: float | None) -> float | None:
    """The socket timeout that ends at ``deadline``; None blocks without limit."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    return left
