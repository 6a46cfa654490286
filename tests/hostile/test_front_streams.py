"""Hostile streams on the Docker-API front: build contexts, archive bodies, slow and cut clients.

A build context is walked as it streams (dockerfront/context.py): what it refuses is
never sent whole, so the engine builds nothing. The control at the top is Fabric's own
build, let through, so the "nothing made" checks can fail. The rest are the clients a
front on a socket meets: endless bodies, bodies that lie about their length, bytes
that are not HTTP, clients too slow to finish a head or a body, and a hijacked attach
cut in the middle. Each leaves the front and the control API answering, with nothing
of its own left on the engine and nothing logged as an ERROR.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tarfile
from typing import TYPE_CHECKING, Any

import anyio
import pytest
import pytest_asyncio

import ccdaemon.dockerfront.exchange
import ccdaemon.dockerfront.front
from ccdaemon.dockerfront.context import DOCKERFILE_MAX
from ccdaemon.engine import Engine, NoSuchImage, images
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL, ROLE_LABEL
from tests.conftest import DEFAULT_ENGINE
from tests.hostile.frontbed import (
    BUILDER,
    FOREIGN_IMAGE,
    RUNTIME,
    FrontBed,
    binpackage,
    context,
    dockerfile,
    exchange,
    front_daemon,
    now,
    parse,
    request,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from anyio.abc import SocketStream

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: A chaincode of the peer that is built here (the fixture's own CCID is run, not built).
BUILT = "built_1.0:" + "b" * 64


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def front(engine_sockets: dict[str, str]) -> AsyncIterator[FrontBed]:
    """One daemon with the front for the module."""
    engine_socket = engine_sockets[DEFAULT_ENGINE]
    async with (
        Engine(f"unix://{engine_socket}") as engine,
        front_daemon(engine, engine_socket) as bed,
    ):
        yield bed


def tag(front: FrontBed) -> str:
    """The chaincode image a build here makes."""
    return front.names(BUILT)[1]


def fabric_context(*extra: tuple[str, bytes | tarfile.TarInfo]) -> bytes:
    """Fabric's build context (its Dockerfile, then the binary's tar), then ``extra``."""
    return context([("Dockerfile", dockerfile()), ("binpackage.tar", binpackage()), *extra])


def member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    """A tar header of ``kind`` with no data."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


# --- builds: the control ---------------------------------------------------------------


async def test_fabrics_build_is_let_through_and_labelled(front: FrontBed) -> None:
    since = now()
    answer = await front.call("POST", f"/build?t={tag(front)}", fabric_context())
    assert not isinstance(answer, str)
    status, messages = answer
    assert status == 200, answer
    assert not any("error" in m for m in messages), messages
    try:
        inspected = await images.inspect(front.hostile.engine, tag(front))
        labels = inspected["Config"]["Labels"]
        assert labels[INSTANCE_LABEL] == front.hostile.daemon.config.instance
        assert labels[ROLE_LABEL] == "image"
        assert labels["a"] == "b"  # the Dockerfile's own LABEL, built as written
        assert any(m.startswith("image ") for m in await front.hostile.made(since))
    finally:
        with contextlib.suppress(NoSuchImage):
            await images.remove(front.hostile.engine, tag(front))


async def test_a_dockerfile_claiming_ccdaemons_labels_gets_the_daemons_own(
    front: FrontBed,
) -> None:
    """The daemon's labels end the Dockerfile's last LABEL, so the client's claims lose."""
    claims = 'LABEL ccdaemon.instance="someone-else" \\\n      ccdaemon.role=builder'
    built = _dockerfile_of(f"FROM {RUNTIME}", _ADD, claims, "ENV A=1")
    answer = await front.call("POST", f"/build?t={tag(front)}", built)
    assert not isinstance(answer, str)
    assert answer[0] == 200, answer
    try:
        inspected = await images.inspect(front.hostile.engine, tag(front))
        labels = inspected["Config"]["Labels"]
        assert labels[INSTANCE_LABEL] == front.hostile.daemon.config.instance
        assert labels[ROLE_LABEL] == "image"
        assert "A=1" in inspected["Config"]["Env"]
    finally:
        with contextlib.suppress(NoSuchImage):
            await images.remove(front.hostile.engine, tag(front))


# --- builds: refused, before the engine has the whole context ---------------------------


def _dockerfile_of(*lines: str) -> bytes:
    return context([("Dockerfile", dockerfile(*lines)), ("binpackage.tar", binpackage())])


_ADD = "ADD binpackage.tar /usr/local/bin"
BUILDS: list[tuple[str, bytes, int, str]] = [
    ("no body", b"", 400, "does not begin with a Dockerfile"),
    ("a plain tar, not gzip", context([("Dockerfile", dockerfile())], zipped=False), 400, "gzip"),
    ("gzip of no tar", context([]), 400, "does not begin with a Dockerfile"),
    ("a RUN", _dockerfile_of(f"FROM {RUNTIME}", "RUN id"), 403, "instruction RUN"),
    ("a COPY", _dockerfile_of(f"FROM {RUNTIME}", "COPY x /x"), 403, "instruction COPY"),
    ("a second stage", _dockerfile_of(f"FROM {RUNTIME}", f"FROM {RUNTIME}"), 403, "second FROM"),
    ("a foreign base", _dockerfile_of(f"FROM {FOREIGN_IMAGE}", _ADD), 403, "not a runtime image"),
    ("the builder as base", _dockerfile_of(f"FROM {BUILDER}", _ADD), 403, "not a runtime image"),
    ("no FROM", _dockerfile_of("LABEL a=b"), 403, "has no FROM"),
    ("an escape directive", _dockerfile_of("# escape=`", f"FROM {RUNTIME}"), 403, "directive"),
    (
        "ADD of a host path",
        _dockerfile_of(f"FROM {RUNTIME}", "ADD /etc/passwd /x"),
        403,
        "only binpackage.tar",
    ),
    (
        "ADD of a URL",
        _dockerfile_of(f"FROM {RUNTIME}", "ADD http://127.0.0.1/x /x"),
        403,
        "only binpackage.tar",
    ),
    (
        "a Dockerfile that is a link",
        context([("Dockerfile", member("Dockerfile", tarfile.SYMTYPE, "/etc/passwd"))]),
        403,
        "not a plain file",
    ),
    (
        "a Dockerfile too big",
        context([("Dockerfile", b"LABEL a=b\n" * (DOCKERFILE_MAX // 10 + 1))]),
        413,
        "at most",
    ),
    (
        "the Dockerfile not first",
        context([("binpackage.tar", binpackage()), ("Dockerfile", dockerfile())]),
        403,
        "begins with 'binpackage.tar'",
    ),
    # Later in the stream, after a member too random to compress: the engine has begun.
    (
        "a second Dockerfile later",
        fabric_context(("big", os.urandom(256 * 1024)), ("dockerfile", dockerfile())),
        403,
        "second Dockerfile",
    ),
    (
        "a hard link later",
        fabric_context(
            ("big", os.urandom(256 * 1024)), ("x", member("x", tarfile.LNKTYPE, "binpackage.tar"))
        ),
        403,
        "not a file or a directory",
    ),
    (
        "a symbolic link later",
        fabric_context(("x", member("x", tarfile.SYMTYPE, "/etc"))),
        403,
        "not a file or a directory",
    ),
    (
        "an extended header later",
        fabric_context(("x", member("x", tarfile.XHDTYPE))),
        403,
        "not a file or a directory",
    ),
    (
        "a device later",
        fabric_context(("x", member("x", tarfile.CHRTYPE))),
        403,
        "not a file or a directory",
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "words"), BUILDS, ids=[c[0] for c in BUILDS])
async def test_a_build_context_that_is_not_fabrics_is_refused(
    front: FrontBed, case: str, body: bytes, status: int, words: str
) -> None:
    since = now()
    answer = await front.call("POST", f"/build?t={tag(front)}", body)
    await front.refused("docker front build", case, answer, since, status, words)
    with pytest.raises(NoSuchImage):
        await images.inspect(front.hostile.engine, tag(front))


QUERIES = [
    ("a foreign tag", "t=evil:latest", "build tag"),
    ("no tag", "q=1", "build tag"),
    ("build arguments", "t=TAG&buildargs=%7B%22A%22%3A%22b%22%7D", "build parameter buildargs"),
    ("another Dockerfile", "t=TAG&dockerfile=other", "build parameter dockerfile"),
    ("the host's network", "t=TAG&networkmode=host", "build networkmode 'host'"),
    ("a pull", "t=TAG&pull=1", "build parameter pull"),
    ("a remote context", "t=TAG&remote=http://127.0.0.1/x", "build parameter remote"),
]


@pytest.mark.parametrize(("case", "query", "words"), QUERIES, ids=[c[0] for c in QUERIES])
async def test_a_build_query_that_is_not_fabrics_is_refused(
    front: FrontBed, case: str, query: str, words: str
) -> None:
    since = now()
    target = "/build?" + query.replace("TAG", tag(front))
    answer = await front.call("POST", target, fabric_context())
    await front.refused("docker front build", case, answer, since, 403, words)


# --- bodies ------------------------------------------------------------------------------


async def send_while_reading(stream: SocketStream, pieces: Iterable[bytes]) -> bytes:
    """Send ``pieces`` while reading what the front sends, until it closes; what it sent."""
    received = bytearray()

    async def send() -> None:
        with contextlib.suppress(anyio.BrokenResourceError, OSError):
            for piece in pieces:
                await stream.send(piece)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(send)
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                while True:
                    received += await stream.receive()
            group.cancel_scope.cancel()
    return bytes(received)


def endless_upload() -> Iterable[bytes]:
    """A chunked tar upload of one 1 GiB file: far more than the front lets through."""
    head = tarfile.TarInfo("chaincode/big")
    head.size = 1 << 30
    yield b"%x\r\n%b\r\n" % (512, head.tobuf(tarfile.USTAR_FORMAT))
    piece = b"%x\r\n%b\r\n" % (64 * 1024, bytes(64 * 1024))
    for _ in range(1 << 14):
        yield piece


async def test_an_endless_upload_is_cut_at_the_package_limit(front: FrontBed) -> None:
    name = front.names()[0]
    answer = await front.call("POST", f"/containers/create?name={name}", front.chaincode())
    assert answer[0] == 201, answer
    since = now()
    try:
        async with await anyio.connect_unix(str(front.socket)) as stream:
            head = [
                f"PUT /containers/{name}/archive?path=/ HTTP/1.1",
                "Host: docker",
                "Content-Type: application/x-tar",
                "Transfer-Encoding: chunked",
            ]
            answered = parse(
                await send_while_reading(
                    stream, [("\r\n".join(head) + "\r\n\r\n").encode(), *endless_upload()]
                )
            )
        assert not isinstance(answered, str), answered
        assert answered[0] == 413, answered
        assert "larger than" in answered[1]["message"], answered
        await front.healthy()
    finally:
        assert await front.call("DELETE", f"/containers/{name}?force=1") == (204, "")
    # What the engine shows since: the upload into that container, and its removal.
    made = await front.hostile.made(since)
    assert all(m.startswith("event container") and name in m for m in made), made


async def test_a_body_shorter_than_its_length_then_a_closed_side_makes_nothing(
    front: FrontBed,
) -> None:
    since = now()
    data = request("POST", f"/containers/create?name={front.names()[0]}", b"{}")
    data = data.replace(b"Content-Length: 2", b"Content-Length: 900")
    async with await anyio.connect_unix(str(front.socket)) as stream:
        await stream.send(data)
        await stream.send_eof()
        with anyio.fail_after(30):
            answer = parse(await send_while_reading(stream, []))
    if not isinstance(answer, str):
        assert answer[0] == 400, answer
        assert "malformed HTTP request" in answer[1]["message"], answer
    assert await front.hostile.made(since) == []
    await front.healthy()


#: A TLS client's first bytes (a client given ``unix://`` where it wanted TLS).
TLS_HELLO = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32))
MALFORMED = [
    ("a garbage line", b"HELLO THERE\r\n\r\n", 400),
    ("a header without a colon", b"GET /_ping HTTP/1.1\r\nHost docker\r\n\r\n", 400),
    ("a negative length", b"POST /build HTTP/1.1\r\nHost: d\r\nContent-Length: -1\r\n\r\n", 400),
    (
        "two lengths",
        b"POST /build HTTP/1.1\r\nHost: d\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        400,
    ),
    ("a head too long", b"GET /_ping HTTP/1.1\r\nHost: d\r\nX: " + b"a" * 200_000, 431),
    ("a TLS hello", TLS_HELLO, 400),
]


@pytest.mark.parametrize(("case", "data", "status"), MALFORMED, ids=[c[0] for c in MALFORMED])
async def test_bytes_that_are_not_http_get_docker_s_error_form(
    front: FrontBed, caplog: pytest.LogCaptureFixture, case: str, data: bytes, status: int
) -> None:
    caplog.set_level(logging.WARNING)
    since = now()
    answer = await exchange(front.socket, data)
    await front.refused("docker front http", case, answer, since, status, "malformed HTTP request")
    assert any("malformed" in r.getMessage() for r in caplog.records), caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# --- slow and cut clients ----------------------------------------------------------------


async def test_a_head_that_never_ends_is_closed_while_others_are_served(
    front: FrontBed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ccdaemon.dockerfront.front, "HEAD_TIMEOUT", 2.0)
    slow = [await anyio.connect_unix(str(front.socket)) for _ in range(8)]
    try:
        for stream in slow:
            await stream.send(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n")  # and no blank line
        await front.healthy()  # served while eight heads hang
        with anyio.fail_after(10):
            for stream in slow:
                assert await send_while_reading(stream, []) == b""  # closed, unanswered
    finally:
        for stream in slow:
            await stream.aclose()
    await front.healthy()


async def test_a_body_that_never_arrives_is_answered_408(
    front: FrontBed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ccdaemon.dockerfront.exchange, "BODY_TIMEOUT", 2.0)
    since = now()
    data = request("POST", f"/containers/create?name={front.names()[0]}", b"{}")
    data = data.replace(b"Content-Length: 2", b"Content-Length: 900")
    async with await anyio.connect_unix(str(front.socket)) as stream:
        await stream.send(data)  # and nothing more, the connection kept open
        with anyio.fail_after(10):
            answer = parse(await send_while_reading(stream, []))
    await front.refused(
        "docker front slow",
        "a body that never arrives",
        answer,
        since,
        408,
        "did not arrive whole within 2 s",
    )


async def read_head(stream: SocketStream) -> bytes:
    """Read an answer's head (to its blank line); the head, and keep what follows unread."""
    head = b""
    with anyio.fail_after(30):
        while b"\r\n\r\n" not in head:
            head += await stream.receive(1)
    return head


async def test_a_hijacked_attach_cut_by_its_client_ends_cleanly(
    front: FrontBed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    script = "while true; do echo tick; sleep 0.1; done"
    body: dict[str, Any] = {"Image": BUILDER, "Cmd": ["/bin/sh", "-c", script], "HostConfig": {}}
    answer = await front.call("POST", "/containers/create", body)
    assert not isinstance(answer, str)
    assert answer[0] == 201, answer
    made = str(answer[1]["Id"])
    try:
        stream = await anyio.connect_unix(str(front.socket))
        try:
            await stream.send(
                request(
                    "POST",
                    f"/containers/{made}/attach?stream=1&stdout=1&stderr=1",
                    headers=[("Upgrade", "tcp")],
                ).replace(b"Connection: close", b"Connection: Upgrade")
            )
            assert (await read_head(stream)).startswith(b"HTTP/1.1 101"), "no switch"
            assert await front.call("POST", f"/containers/{made}/start") == (204, "")
            seen = b""
            with anyio.fail_after(30):
                while seen.count(b"tick") < 3:  # a few lines relayed
                    seen += await stream.receive()
        finally:
            await stream.aclose()  # cut, with the container still writing
        await front.healthy()
    finally:
        assert await front.call("DELETE", f"/containers/{made}?force=1") == (204, "")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
