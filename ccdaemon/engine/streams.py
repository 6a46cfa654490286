"""Readers for the engine's streaming bodies: stdcopy frames, raw TTY output, JSON lines.

Each reader tells three endings apart: the body ended cleanly at a boundary (iteration
stops), the body was cut inside a frame (``StreamBroken``), and the connection broke
(``StreamBroken``, raised by the transport). The stream a frame came from is kept.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.engine.errors import EngineError, StreamBroken

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator

    from ccdaemon.engine.transport import Response

_HEADER_LEN = 8


class StdStream(enum.IntEnum):
    """The stream a frame belongs to, as numbered in the stdcopy header."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    SYSTEMERR = 3


@dataclass(frozen=True, slots=True)
class Frame:
    """A piece of a container's output and the stream it was written to."""

    stream: StdStream
    data: bytes


async def demux(body: Response) -> AsyncIterator[Frame]:
    """Yield the frames of a multiplexed (non-TTY) attach or logs body.

    Raises:
        StreamBroken: the body ended inside a frame, or the connection broke.
        EngineError: the engine reported an error in the stream (a ``Systemerr`` frame),
            or sent a header this reader does not know.
    """
    while True:
        header = await body.read_exactly(_HEADER_LEN)
        if header is None:
            return
        kind, size = header[0], int.from_bytes(header[4:8], "big")
        if kind > StdStream.SYSTEMERR:
            raise EngineError(200, f"unrecognised stream header {header.hex()}")
        data = await body.read_exactly(size) if size else b""
        if data is None:
            raise StreamBroken(f"stream ended after a header announcing {size} bytes")
        if kind == StdStream.SYSTEMERR:
            raise EngineError(
                200, f"error from the engine in stream: {data.decode(errors='replace')}"
            )
        # stdin frames only appear when the container echoes its input; they belong to stdout.
        yield Frame(StdStream.STDOUT if kind == StdStream.STDIN else StdStream(kind), data)


async def raw(body: Response) -> AsyncIterator[Frame]:
    """Yield a TTY container's output, which has no frames: everything is stdout."""
    async for chunk in body.chunks():
        yield Frame(StdStream.STDOUT, chunk)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a container's output, without its line ending."""

    stream: StdStream
    text: str


async def lines(frames: AsyncIterable[Frame]) -> AsyncIterator[Line]:
    """Split frames into lines, per stream; a last line without a newline is kept too."""
    pending: dict[StdStream, bytes] = {}
    async for frame in frames:
        buffered = pending.pop(frame.stream, b"") + frame.data
        *complete, rest = buffered.split(b"\n")
        for line in complete:
            yield Line(frame.stream, line.removesuffix(b"\r").decode(errors="replace"))
        if rest:
            pending[frame.stream] = rest
    for stream, rest in pending.items():
        yield Line(stream, rest.decode(errors="replace"))


async def json_lines(body: Response) -> AsyncIterator[Any]:
    """Yield each JSON value of a newline-delimited JSON body (events, build progress).

    Raises:
        StreamBroken: the body ended in the middle of a JSON value.
    """
    buffered = b""
    async for chunk in body.chunks():
        buffered += chunk
        *complete, buffered = buffered.split(b"\n")
        for line in complete:
            if line.strip():
                yield orjson.loads(line)
    if buffered.strip():
        # Some engines (Podman) may send a last value without a newline; a cut value is not valid.
        try:
            value = orjson.loads(buffered)
        except orjson.JSONDecodeError as exc:
            raise StreamBroken(f"stream ended inside a JSON value: {buffered[:80]!r}") from exc
        yield value
