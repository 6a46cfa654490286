"""Slow and stalled clients on the API socket: dropped after a bound, others served meanwhile.

aiohttp's server has no read timeout and keeps a connection that has not finished its
request for an hour (its keep-alive default), so the daemon bounds both: headers must be
whole within serve.IDLE_TIMEOUT of connecting, a body must arrive within api.BODY_TIMEOUT
(408 ``request_timeout``, connection closed). Here both are 2 s so the tests run fast.
The same holds for a package whose checks take seconds (a gzip bomb): they run off the
event loop, so health keeps answering.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import pytest

from ccdaemon.daemon import api, serve
from tests.hostile import packages as pk
from tests.hostile.conftest import hostile_daemon, record

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import SocketStream

    from ccdaemon.engine import Engine
    from tests.hostile.conftest import Hostile

#: The idle and body bounds of this module's daemons, in seconds.
BOUND = 2.0
#: What is left of a body is read and dropped this long after a 408 (serve.LINGER_TIME).
LINGER = 0.5
#: How much later than the bound a slow connection may still be open (scheduling slack).
SLACK = 1.5
#: Longest a health check may take while slow clients hang on (it takes ~10 ms alone).
SERVED_WITHIN = 0.5

HEADERS = b"POST /v1/chaincodes HTTP/1.1\r\nHost: ccdaemon\r\nContent-Type: application/json\r\n"


@pytest.fixture
async def slow(
    engine: Engine, engine_socket: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hostile]:
    """A daemon whose idle and body bounds are BOUND seconds."""
    # Module constants, read when the daemon starts (idle) and per request (body).
    monkeypatch.setattr(serve, "IDLE_TIMEOUT", BOUND)
    monkeypatch.setattr(api, "BODY_TIMEOUT", BOUND)
    monkeypatch.setattr(serve, "LINGER_TIME", LINGER)
    async with hostile_daemon(engine, engine_socket) as handle:
        yield handle


async def hang_on(
    socket: str, data: bytes, *, every: float, head: bytes = b""
) -> tuple[bytes, float]:
    """Send ``head`` at once, then ``data`` one byte per ``every`` seconds (0: at once).

    Returns what the daemon answered and the seconds until it closed the connection.
    """
    began = time.monotonic()
    stream: SocketStream = await anyio.connect_unix(socket)
    got = bytearray()
    async with stream, anyio.create_task_group() as group:

        async def send() -> None:
            # The daemon may close while bytes are still being sent: that is the point.
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stream.send(head)
                if every == 0:
                    await stream.send(data)
                    return
                for byte in data:
                    await stream.send(bytes([byte]))
                    await anyio.sleep(every)

        group.start_soon(send)
        with anyio.fail_after(BOUND + 10):
            while True:
                try:
                    got += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
        group.cancel_scope.cancel()
    return bytes(got), time.monotonic() - began


async def served_meanwhile(handle: Hostile, done: anyio.Event) -> list[float]:
    """Health checks every 0.1 s until ``done``: their latencies, each one answered 200."""
    latencies: list[float] = []
    while not done.is_set():
        began = time.monotonic()
        status, _ = await handle.daemon.call("GET", "/v1/health")
        latencies.append(time.monotonic() - began)
        assert status == 200
        await anyio.sleep(0.1)
    return latencies


async def while_serving(
    handle: Hostile, clients: list[tuple[bytes, float]], *, head: bytes = b""
) -> tuple[list[tuple[bytes, float]], list[float]]:
    """Run slow ``clients`` (data, seconds per byte) at once, checking health meanwhile.

    Each sends ``head`` first, at once.
    """
    results: list[tuple[bytes, float]] = [(b"", 0.0)] * len(clients)
    latencies: list[float] = []
    done = anyio.Event()

    async def client(index: int, data: bytes, every: float) -> None:
        results[index] = await hang_on(str(handle.daemon.socket), data, every=every, head=head)

    async def health() -> None:
        latencies.extend(await served_meanwhile(handle, done))

    async with anyio.create_task_group() as outer:
        outer.start_soon(health)
        async with anyio.create_task_group() as group:
            for index, (data, every) in enumerate(clients):
                group.start_soon(client, index, data, every)
        done.set()
    return results, latencies


@pytest.mark.parametrize(
    ("case", "data", "every"),
    [
        ("connects, sends nothing", b"", 0.0),
        ("headers one byte per second", HEADERS + b"Content-Length: 2\r\n\r\n{}", 1.0),
        ("headers never finished", HEADERS, 0.0),
    ],
)
async def test_a_client_slow_with_its_headers_is_dropped_after_the_bound(
    slow: Hostile, case: str, data: bytes, every: float
) -> None:
    """The connection closes after about IDLE_TIMEOUT, unanswered; health is served meanwhile."""
    since = time.time() - 0.05
    [(answer, lasted)], latencies = await while_serving(slow, [(data, every)])
    made = await slow.made(since)
    record("slow clients", case, "socket", "closed, no answer", len(made))
    assert answer == b""
    assert BOUND - 0.2 <= lasted <= BOUND + SLACK, lasted
    assert max(latencies) < SERVED_WITHIN, latencies
    assert made == []


@pytest.mark.parametrize(
    ("case", "body", "every"),
    [
        ("body one byte per second", b'{"ccid": "a:b"}', 1.0),
        ("body never finished", b'{"ccid"', 0.0),
    ],
)
async def test_a_client_slow_with_its_body_gets_408_and_is_dropped(
    slow: Hostile, case: str, body: bytes, every: float
) -> None:
    """Headers whole, body late: 408 request_timeout after BODY_TIMEOUT, then the close.

    The close comes LINGER_TIME after the answer: what is left of the body is read and
    dropped that long (aiohttp's lingering close), so the client can read the answer.
    """
    since = time.time() - 0.05
    # The headers go at once, promising 1000 bytes of body; fewer ever come.
    head = HEADERS + b"Content-Length: 1000\r\n\r\n"
    [(answer, lasted)], latencies = await while_serving(slow, [(body, every)], head=head)
    made = await slow.made(since)
    status_line, _, rest_of_answer = answer.partition(b"\r\n")
    payload = orjson.loads(rest_of_answer.partition(b"\r\n\r\n")[2])
    record(
        "slow clients",
        case,
        "POST /v1/chaincodes",
        (int(status_line.split()[1]), payload),
        len(made),
    )
    assert status_line.startswith(b"HTTP/1.1 408"), answer
    assert payload["error"]["code"] == "request_timeout"
    assert BOUND - 0.2 <= lasted <= BOUND + LINGER + SLACK, lasted
    assert max(latencies) < SERVED_WITHIN, latencies
    assert made == []


async def test_a_hundred_stalled_connections_do_not_stop_the_daemon(slow: Hostile) -> None:
    """100 connections that never finish their headers: health is served, all are dropped."""
    since = time.time() - 0.05
    clients = [(HEADERS, 0.0)] * 100
    results, latencies = await while_serving(slow, clients)
    made = await slow.made(since)
    record("slow clients", "100 stalled connections at once", "socket", "all closed", len(made))
    assert all(answer == b"" for answer, _ in results)
    assert max(lasted for _, lasted in results) <= BOUND + SLACK
    assert max(latencies) < SERVED_WITHIN, latencies
    assert made == []


async def test_a_gzip_bomb_does_not_stall_other_clients(slow: Hostile) -> None:
    """While a bomb's 512 MiB are being expanded (a second or two), health answers at once."""
    since = time.time() - 0.05
    body = orjson.dumps(
        {
            "ccid": "bomb_1.0:" + "b" * 64,
            "type": "golang",
            "peer_address": "peer0:7052",
            "mspid": "Org1MSP",
            "package": pk.b64(pk.zeros_gzip()),
        }
    )
    answers: list[tuple[int, Any]] = []
    done = anyio.Event()
    latencies: list[float] = []

    async def bomb() -> None:
        answers.append(await slow.daemon.call("POST", "/v1/chaincodes", body))

    async def health() -> None:
        latencies.extend(await served_meanwhile(slow, done))

    began = time.monotonic()
    async with anyio.create_task_group() as outer:
        outer.start_soon(health)
        async with anyio.create_task_group() as group:
            group.start_soon(bomb)
        done.set()
    lasted = time.monotonic() - began
    made = await slow.made(since)
    record(
        "slow clients",
        "gzip bomb, health checked meanwhile",
        "POST /v1/chaincodes",
        answers[0],
        len(made),
    )
    assert [status for status, _ in answers] == [413], answers
    assert lasted > 0.3, "the bombs were refused too fast to show anything"
    assert len(latencies) >= 2, latencies
    assert max(latencies) < SERVED_WITHIN, latencies
    assert made == []


def test_the_bounds_are_finite_and_short() -> None:
    """The shipped bounds: idle (headers) 30 s, body 60 s then 2 s of lingering.

    aiohttp's own defaults are 3630 s idle, no body bound and 10 s of lingering.
    """
    assert serve.IDLE_TIMEOUT == 30.0
    assert api.BODY_TIMEOUT == 60.0
    assert serve.LINGER_TIME == 2.0
