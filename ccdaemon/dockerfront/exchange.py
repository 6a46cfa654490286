"""One HTTP/1.1 connection of the Docker-API front, on h11.

h11 parses and frames (a hostile client gets 400, not a parser of ours); this module
moves bytes: it reads a request's head within ``HEAD_TIMEOUT``, hands its body out as
it arrives (bounded reads for small bodies, a stream for builds and archives), writes
answers whole or as chunked streams, and switches to a raw byte stream after a
``101`` (the hijacked attach). A request whose body the handler left unread ends
the connection, so nothing of it is taken for the next request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import h11
import orjson

from ccdaemon.dockerfront.policy import Refused

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Sequence

    from anyio.abc import ByteStream

#: Seconds a client has to send a request's head (slow clients hold no slot for long).
HEAD_TIMEOUT = 30.0
#: Seconds a small body (create, start) may take to arrive whole.
BODY_TIMEOUT = 30.0
#: The largest request head, and the largest body read whole (a create's JSON).
MAX_HEAD = 64 * 1024
MAX_SMALL_BODY = 1024 * 1024
_READ = 64 * 1024
_Headers = list[tuple[str, str]]


class ClientGone(Exception):
    """The client closed its connection (or broke HTTP) in the middle of a request."""


class NotHTTP(ClientGone):
    """The client sent what h11 refuses as HTTP; ``status`` is the answer h11 suggests."""

    def __init__(self, exc: h11.RemoteProtocolError) -> None:
        super().__init__(f"not HTTP: {exc}")
        self.status = exc.error_status_hint
        self.reason = str(exc)


async def refuse_malformed(stream: ByteStream, conn: h11.Connection, exc: NotHTTP) -> None:
    """Answer what h11 could not read with its status, in Docker's error form, then leave.

    h11 lets a server answer a request it could not parse; nothing is sent when an
    answer has begun already.
    """
    if conn.our_state not in {h11.IDLE, h11.SEND_RESPONSE}:
        return
    body = orjson.dumps({"message": f"malformed HTTP request ({exc.reason[:160]}); refused"})
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]
    try:
        data = conn.send(h11.Response(status_code=exc.status, headers=headers)) or b""
        data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        await stream.send(data)
    except (h11.LocalProtocolError, anyio.BrokenResourceError, OSError):
        pass


class Exchange:
    """A request and its answer on one connection."""

    def __init__(self, stream: ByteStream, conn: h11.Connection, request: h11.Request) -> None:
        self.stream = stream
        self.conn = conn
        self.method = request.method.decode("ascii", "replace")
        self.target = request.target.decode("latin-1")
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers
        }
        self.answered = 0

    @property
    def wants_upgrade(self) -> bool:
        """Whether the client asked to hijack the connection (``Upgrade: tcp``)."""
        return self.headers.get("upgrade", "").lower() == "tcp"

    async def body(self, *, limit: int | None = None) -> AsyncIterator[bytes]:
        """Yield the request body as it arrives; at most ``limit`` bytes (413 beyond).

        Each piece is all the body that one read from the client brought: a Go client
        streaming a gzip context sends chunks of about 240 bytes (flate's flush size),
        and forwarding each alone cost a Fabric 1.4 first launch 34,000 sends to the
        engine (0.7 s of the daemon's CPU).
        """
        seen = 0
        pending: list[bytes] = []
        while True:
            event = ready_event(self.conn)
            if event is None:
                if pending:
                    yield b"".join(pending)
                    pending.clear()
                event = await next_event(self.stream, self.conn)
            if isinstance(event, h11.EndOfMessage):
                if pending:
                    yield b"".join(pending)
                return
            if not isinstance(event, h11.Data):
                raise ClientGone(f"body ended by {type(event).__name__}")
            seen += len(event.data)
            if limit is not None and seen > limit:
                raise Refused(f"request body larger than {limit} bytes", status=413)
            pending.append(bytes(event.data))

    async def read_body(self, limit: int = MAX_SMALL_BODY) -> bytes:
        """The whole (small) request body, within ``BODY_TIMEOUT`` (408 beyond)."""
        try:
            with anyio.fail_after(BODY_TIMEOUT):
                return b"".join([piece async for piece in self.body(limit=limit)])
        except TimeoutError:
            raise Refused(
                f"the request body did not arrive whole within {BODY_TIMEOUT:g} s", status=408
            ) from None

    async def answer(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "",
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Send a whole answer."""
        headers: _Headers = [*extra]
        if content_type:
            headers.append(("Content-Type", content_type))
        headers.append(("Content-Length", str(len(body))))
        await self._send(h11.Response(status_code=status, headers=headers))
        if body and self.method != "HEAD":
            await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())
        self.answered = status

    async def json(self, status: int, value: object) -> None:
        """Send a JSON answer."""
        await self.answer(status, orjson.dumps(value), "application/json")

    async def error(self, status: int, message: str) -> None:
        """Send Docker's error form, ``{"message": ...}``, unless an answer has begun."""
        if self.conn.our_state is h11.SEND_RESPONSE:
            await self.json(status, {"message": message})

    async def stream_answer(
        self,
        status: int,
        content_type: str,
        chunks: AsyncIterable[bytes],
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Send an answer whose body is relayed as it comes (chunked)."""
        headers: _Headers = [*extra]
        if content_type:
            headers.append(("Content-Type", content_type))
        await self._send(h11.Response(status_code=status, headers=headers))
        self.answered = status
        async for chunk in chunks:
            await self._send(h11.Data(data=chunk))
        await self._send(h11.EndOfMessage())

    async def switch(self, headers: Sequence[tuple[str, str]]) -> bytes:
        """Answer ``101`` and leave HTTP: the connection is now a raw stream.

        Returns what the client had already sent past the request.
        """
        await self._send(h11.InformationalResponse(status_code=101, headers=list(headers)))
        self.answered = 101
        return bytes(self.conn.trailing_data[0])

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send(data)


def ready_event(conn: h11.Connection) -> h11.Event | type[h11.PAUSED] | None:
    """The connection's next event from what was read already; None when it needs more.

    Raises:
        ClientGone: the client closed the connection.
        NotHTTP: the client sent what is not HTTP.
    """
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise NotHTTP(exc) from exc
    if isinstance(event, h11.ConnectionClosed):
        raise ClientGone("connection closed")
    if event is h11.PAUSED or isinstance(event, h11.Event):
        return event
    return None


async def next_event(stream: ByteStream, conn: h11.Connection) -> h11.Event | type[h11.PAUSED]:
    """The connection's next event, reading from ``stream`` as needed.

    Raises:
        ClientGone: the client closed the connection.
        NotHTTP: the client sent what is not HTTP.
    """
    while (event := ready_event(conn)) is None:
        try:
            data = await stream.receive(_READ)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            data = b""
        conn.receive_data(data)
    return event
