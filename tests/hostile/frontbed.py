"""Hostile clients on the Docker-API front: a daemon with the front, raw HTTP on its socket.

The client here writes bytes and reads to the end: aiohttp and the Docker SDKs clean a
path (``..``, ``%2e``) before sending it, which is what these tests must not do. Every
request says ``Connection: close``, so an answer is everything the front sends before
it closes; h11 reads it back.

The daemon's peer has one chaincode whose image exists (the runtime stand-in, tagged
with the chaincode image's name), so a create the front wrongly let through would
really create a container, and ``Hostile.made`` would see it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio
import h11
import orjson

from ccdaemon.config import DockerAPIConfig
from ccdaemon.engine import NoSuchImage, images
from tests.daemon.conftest import make_config, remove_instance, running_daemon
from tests.hostile.conftest import PACKAGE_LIMIT, Hostile, private_dir, record

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable
    from pathlib import Path

    from ccdaemon.engine import Engine

#: The chaincode the front's peer may run (a 2.x package id).
CCID = "good_1.0:" + "a" * 64
BUILDER = "localhost/ccdaemon/goenv:1.24"
RUNTIME = "localhost/ccdaemon/baseos:1"
#: An image on the engine that is none of the peer's.
FOREIGN_IMAGE = "localhost/ccdaemon/busybox:latest"
ANSWER_WITHIN = 30.0  # seconds for the front to answer one request whole

#: A status and decoded body, or a few words when the front sent nothing ("closed").
Answer = tuple[int, Any] | str


@dataclass
class FrontBed:
    """The daemon, its front's socket and names, and the engine."""

    hostile: Hostile

    @property
    def socket(self) -> Path:
        """The Docker-API front's socket."""
        socket = self.hostile.daemon.config.docker_api.socket
        assert socket is not None
        return socket

    def names(self, ccid: str = CCID) -> tuple[str, str]:
        """Container and image names of ``ccid`` on this peer."""
        return self.hostile.daemon.names(ccid)

    def chaincode(self, ccid: str = CCID, **fields: Any) -> dict[str, Any]:
        """A create body as Fabric sends it for ``ccid``, with ``fields`` replaced."""
        body: dict[str, Any] = {
            "Image": self.names(ccid)[1],
            "Cmd": ["chaincode", "-peer.address=127.0.0.1:7052"],
            "Env": [f"CORE_CHAINCODE_ID_NAME={ccid}", "CORE_PEER_TLS_ENABLED=false"],
            "AttachStdout": True,
            "AttachStderr": True,
            "HostConfig": {"NetworkMode": "none", "Memory": 128 * 1024 * 1024},
        }
        return {**body, **fields}

    async def call(
        self,
        method: str,
        target: str,
        body: bytes | object = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Answer:
        """One request, written as given, and its answer."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        return await exchange(self.socket, request(method, target, data, headers))

    async def healthy(self) -> None:
        """The front and the control API both still answer."""
        pinged = await self.call("GET", "/_ping")
        assert pinged == (200, "OK"), pinged
        status, health = await self.hostile.daemon.call("GET", "/v1/health")
        assert (status, health["status"]) == (200, "ok")

    async def refused(
        self, group: str, case: str, answer: Answer, since: float, status: int, words: str
    ) -> None:
        """``answer`` is ``status`` in Docker's error form naming ``words``; nothing made."""
        made = await self.hostile.made(since)
        record(group, case, "docker front", answer, len(made))
        assert not isinstance(answer, str), f"{case}: the front sent no answer"
        assert answer[0] == status, answer
        assert isinstance(answer[1], dict), answer
        assert words in answer[1]["message"], answer
        assert made == [], made
        await self.healthy()


def request(
    method: str, target: str, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
) -> bytes:
    """The bytes of one HTTP/1.1 request, its target untouched."""
    lines = [f"{method} {target} HTTP/1.1", "Host: docker", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in {"POST", "PUT"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def exchange(socket: Path, data: bytes) -> Answer:
    """Send ``data`` while reading what comes back until the front closes; the answer.

    Within ANSWER_WITHIN seconds; a case that wants less wraps the call in its own bound.
    """
    received = bytearray()
    async with await anyio.connect_unix(str(socket)) as stream:

        async def send() -> None:
            # The front may answer and close before it has read all of a refused body.
            with contextlib.suppress(anyio.BrokenResourceError, OSError):
                await stream.send(data)

        with anyio.fail_after(ANSWER_WITHIN):
            async with anyio.create_task_group() as group:
                group.start_soon(send)
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    while True:
                        received += await stream.receive()
    return parse(bytes(received))


def parse(data: bytes) -> Answer:
    """The status and body of the one answer in ``data``; "closed" if none.

    A JSON body is decoded: a list of its messages when it is a stream of them.
    """
    if not data:
        return "closed"
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "docker")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    status, content_type, body = 0, "", bytearray()
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
            content_type = dict(event.headers).get(b"content-type", b"").decode()
        elif isinstance(event, h11.Data):
            body += event.data
        else:
            break
    if content_type.startswith("application/json"):
        lines = [line for line in bytes(body).splitlines() if line.strip()]
        if len(lines) > 1:  # a streamed answer (a build's progress): one message a line
            return status, [orjson.loads(line) for line in lines]
        return status, orjson.loads(body)
    return status, body.decode("utf-8", "replace")


def context(
    members: Iterable[tuple[str, bytes | tarfile.TarInfo]], *, zipped: bool = True
) -> bytes:
    """A build context: a tar of ``members`` (data, or a header to write as is), gzipped."""
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(member)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(member))
    return gzip.compress(plain.getvalue(), mtime=0) if zipped else plain.getvalue()


def dockerfile(*lines: str) -> bytes:
    """A Dockerfile of ``lines`` (Fabric's, when given none)."""
    given = lines or (f"FROM {RUNTIME}", "ADD binpackage.tar /usr/local/bin", "LABEL a=b")
    return ("\n".join(given) + "\n").encode()


def binpackage(size: int = 1024) -> bytes:
    """The chaincode binary's tar, as the builder container leaves it, of about ``size``."""
    return context([("chaincode", bytes(size))], zipped=False)


@contextlib.asynccontextmanager
async def front_daemon(engine: Engine, engine_socket: str) -> AsyncIterator[FrontBed]:
    """A hostile daemon with the front; its containers, images and tags go afterwards."""
    with private_dir() as directory:
        config = make_config(
            engine_socket, directory, docker_api=DockerAPIConfig(socket=directory / "docker.sock")
        )
        config = replace(config, policy=replace(config.policy, max_package_size=PACKAGE_LIMIT))
        image = ""
        try:
            async with running_daemon(config) as daemon:
                bed = FrontBed(Hostile(daemon, engine))
                image = bed.names()[1]
                await images.tag(engine, RUNTIME, image)
                with anyio.fail_after(30):
                    while not bed.socket.exists():  # noqa: ASYNC110 -- a file appearing has no event
                        await anyio.sleep(0.05)
                yield bed
        finally:
            if image:
                with contextlib.suppress(NoSuchImage):
                    await images.remove(engine, image)
            await remove_instance(engine, config.instance)


def now() -> float:
    """A ``since`` for ``Hostile.made``: now, less the millisecond ``made`` rounds to.

    The engine's clock is ours; a wider margin would count the control just before.
    """
    return time.time() - 0.002
