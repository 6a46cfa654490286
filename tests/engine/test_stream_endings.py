"""How streams end when the engine misbehaves: cut frames, cut chunks, dropped connections.

No real engine cuts a stream on demand, so a stub server on a Unix socket plays the
engine here; test_streams.py is the real-engine twin for every clean ending.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import anyio
import pytest

from ccdaemon.engine import (
    Engine,
    EngineError,
    EngineTimeouts,
    EngineUnavailable,
    StreamBroken,
    containers,
    streams,
    system,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

VERSION = b'{"ApiVersion":"1.41","MinAPIVersion":"1.12","Version":"stub"}'


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def head(status: str = "200 OK", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@contextlib.asynccontextmanager
async def stub(tmp_path: Path, body_for: Callable[[bytes], bytes]) -> AsyncIterator[Engine]:
    """An engine stub: answers /version, and every other request with ``body_for(line)``."""
    socket = str(tmp_path / "stub.sock")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                line = request.split(b"\r\n", 1)[0]
                if b" /version " in line:
                    writer.write(head(content_length=str(len(VERSION))) + VERSION)
                    continue
                writer.write(body_for(line))
                await writer.drain()
                break  # then close: that is how each case ends its stream
        writer.close()

    server = await asyncio.start_unix_server(serve, socket)
    try:
        async with Engine(f"unix://{socket}") as engine:
            yield engine
    finally:
        server.close()


async def read_logs(engine: Engine) -> list[streams.Frame]:
    async with containers.logs(engine, "x", tty=False) as frames:
        return [f async for f in frames]


async def test_clean_end_at_frame_boundary_ends_iteration(tmp_path: Path) -> None:
    """A body that ends after a whole frame ends the iteration without error."""
    body = frame(1, b"out\n") + frame(2, b"err\n")
    async with stub(tmp_path, lambda _: head(content_length=str(len(body))) + body) as engine:
        got = await read_logs(engine)
    assert [(f.stream, f.data) for f in got] == [
        (streams.StdStream.STDOUT, b"out\n"),
        (streams.StdStream.STDERR, b"err\n"),
    ]


async def test_body_cut_inside_a_frame_raises_stream_broken(tmp_path: Path) -> None:
    """A connection that closes inside a frame's payload raises StreamBroken, not a clean end."""
    body = frame(1, b"complete\n") + frame(1, b"cut short")[:12]
    async with stub(tmp_path, lambda _: head(content_length="100") + body) as engine:
        with pytest.raises(StreamBroken):
            await read_logs(engine)


async def test_chunked_body_cut_raises_stream_broken(tmp_path: Path) -> None:
    """A chunked body whose connection drops before the last chunk raises StreamBroken."""
    data = frame(1, b"line\n")
    body = b"%x\r\n%b\r\n" % (len(data), data)  # no terminating zero-size chunk
    async with stub(tmp_path, lambda _: head(transfer_encoding="chunked") + body) as engine:
        with pytest.raises(StreamBroken):
            await read_logs(engine)


async def test_attach_stream_ending_at_eof_is_clean(tmp_path: Path) -> None:
    """A hijacked stream (no length, no chunks) ends cleanly at EOF on a frame boundary."""
    body = frame(1, b"a\n") + frame(1, b"b")
    async with (
        stub(tmp_path, lambda _: head() + body) as engine,
        containers.attach(engine, "x", tty=False) as frames,
    ):
        lines = [line.text async for line in streams.lines(frames)]
    assert lines == ["a", "b"]


async def test_systemerr_frame_raises_engine_error(tmp_path: Path) -> None:
    """A Systemerr frame (the engine's own error inside the stream) raises EngineError."""
    body = frame(3, b"log driver failed")
    async with stub(tmp_path, lambda _: head(content_length=str(len(body))) + body) as engine:
        with pytest.raises(EngineError, match="log driver failed"):
            await read_logs(engine)


async def test_events_cut_inside_a_json_value_raises_stream_broken(tmp_path: Path) -> None:
    """An events stream that stops in the middle of a JSON value raises StreamBroken."""
    body = b'{"Type":"container","Action":"start"}\n{"Type":"cont'
    async with (
        stub(tmp_path, lambda _: head() + body) as engine,
        system.events(engine) as events,
    ):
        with pytest.raises(StreamBroken):
            async for _ in events:
                pass


async def test_connection_closed_without_answer_raises_engine_unavailable(tmp_path: Path) -> None:
    """An engine that closes the connection without answering raises EngineUnavailable."""
    async with stub(tmp_path, lambda _: b"") as engine:
        with pytest.raises(EngineUnavailable, match="broke"):
            await containers.inspect(engine, "x")


async def test_garbage_answer_raises_engine_unavailable(tmp_path: Path) -> None:
    """Something that is not HTTP/1.x on the socket raises EngineUnavailable naming it."""
    async with stub(tmp_path, lambda _: b"SSH-2.0-OpenSSH\r\n\r\n") as engine:
        with pytest.raises(EngineUnavailable, match=r"SSH-2\.0"):
            await containers.inspect(engine, "x")


@contextlib.asynccontextmanager
async def hung(tmp_path: Path, timeouts: EngineTimeouts) -> AsyncIterator[Engine]:
    """An engine stub that answers /version, then takes requests and never answers them."""
    socket = str(tmp_path / "hung.sock")
    held: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while b" /version " in (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0]:
                writer.write(head(content_length=str(len(VERSION))) + VERSION)
            await reader.read()  # hold the connection open, answer nothing
        writer.close()

    server = await asyncio.start_unix_server(serve, socket)
    try:
        async with Engine(f"unix://{socket}", timeouts=timeouts) as engine:
            yield engine
    finally:
        server.close()
        for writer in held:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def test_control_call_to_hung_engine_times_out(tmp_path: Path) -> None:
    """A control call the engine never answers fails with EngineUnavailable after its timeout."""
    async with hung(tmp_path, EngineTimeouts(connect=1, control=0.3)) as engine:
        with pytest.raises(EngineUnavailable, match=r"did not answer GET /containers/x/json"):
            await containers.inspect(engine, "x")


async def test_streams_have_no_timeout_and_callers_keep_their_own(tmp_path: Path) -> None:
    """A stream outlives the control timeout; the caller's own timeout stays a TimeoutError."""
    async with hung(tmp_path, EngineTimeouts(connect=1, control=0.1)) as engine:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.6):
                await containers.wait(engine, "x")


async def test_outer_cancellation_is_not_taken_for_a_timeout(tmp_path: Path) -> None:
    """Cancelling a control call from outside cancels it; it is not reported as a timeout."""
    async with hung(tmp_path, EngineTimeouts(connect=1, control=30)) as engine:
        with anyio.move_on_after(0.2) as scope:
            await containers.inspect(engine, "x")
        assert scope.cancelled_caught
        with pytest.raises(EngineUnavailable, match="did not answer"):
            await engine.call("GET", "/containers/x/json", extra_time=-29.7)
