"""A daemon in this process whose Docker-API front serves its socket and TCP (mutual TLS).

``TCPBed`` speaks to the front over TLS as a good client, as a refused one, and as
plain TCP; the socket's side is tests/hostile's ``FrontBed``. Also what the real-peer
test of test_front_tcp.py writes and reads: the daemon's TOML and the engine's state.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiodocker
import anyio
import pytest
from anyio.streams.tls import TLSStream

from ccdaemon.config import DockerAPIConfig
from ccdaemon.daemon import dockerapi
from ccdaemon.engine import Engine, NoSuchImage, images
from tests.daemon.conftest import make_config, remove_instance, running_daemon
from tests.fabric.conftest import ensure_images
from tests.hostile.conftest import Hostile, private_dir
from tests.hostile.frontbed import ANSWER_WITHIN, RUNTIME, Answer, FrontBed, parse, request
from tests.tlscerts import MutualTLS, free_port, mutual_tls

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests.fabric.conftest import Daemon

#: The handshake bound of the test daemon (HANDSHAKE_TIMEOUT, 30 s, in service).
HANDSHAKE = 2.0
#: Seconds a refused client waits for the front's refusal.
REFUSED_WITHIN = 10.0
PING = request("GET", "/_ping")


@dataclass
class TCPBed:
    """The module's daemon: its front on the socket (``bed``) and on TLS at ``port``."""

    bed: FrontBed
    port: int
    tls: MutualTLS

    async def call(self, data: bytes, chain: tuple[Path, Path] | None = None) -> Answer:
        """``data`` over TLS with ``chain`` (the good client's by default); the answer."""
        context = self.tls.client_context(chain or self.tls.client)
        received = bytearray()
        with anyio.fail_after(ANSWER_WITHIN):
            async with await anyio.connect_tcp("127.0.0.1", self.port) as raw:
                stream = await TLSStream.wrap(
                    raw,
                    hostname="127.0.0.1",
                    ssl_context=context,
                    standard_compatible=False,  # the front closes without close_notify
                )
                await stream.send(data)
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        received += await stream.receive()
        return parse(bytes(received))

    async def refusal(self, chain: tuple[Path, Path] | None) -> str:
        """What a client presenting ``chain`` (None: no certificate) is told: never HTTP.

        It sends nothing after its handshake, so an answer can only be the front's
        refusal (a TLS alert, or the connection closed); a front that took the client
        would wait for its request, and the client reports it accepted.
        """
        context = self.tls.client_context(chain)
        with anyio.fail_after(REFUSED_WITHIN):  # the listener is there: OSError otherwise
            raw = await anyio.connect_tcp("127.0.0.1", self.port)
        try:
            with anyio.fail_after(REFUSED_WITHIN):
                stream = await TLSStream.wrap(
                    raw, hostname="127.0.0.1", ssl_context=context, standard_compatible=False
                )
                data = await stream.receive()
        except ssl.SSLError as exc:  # TLS 1.2: in the handshake; 1.3: the alert after it
            return f"alert {exc.reason}"
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return "closed"
        except TimeoutError:
            return "accepted (no refusal within 10 s)"
        finally:
            await anyio.aclose_forcefully(raw)
        return f"accepted (it sent {data[:60]!r})"

    async def raw(self, data: bytes) -> bytes:
        """``data`` on plain TCP; everything the front sends back before it closes."""
        received = bytearray()
        with anyio.fail_after(REFUSED_WITHIN):
            stream = await anyio.connect_tcp("127.0.0.1", self.port)
        async with stream:
            with anyio.fail_after(REFUSED_WITHIN):
                if data:
                    await stream.send(data)
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    while True:
                        received += await stream.receive()
        return bytes(received)

    async def serves(self) -> None:
        """The good client still gets /_ping over TLS; the socket and control API answer."""
        assert await self.call(PING) == (200, "OK")
        await self.bed.healthy()


@contextlib.asynccontextmanager
async def tcp_daemon(engine_socket: str) -> AsyncIterator[TCPBed]:
    """A daemon whose front serves its socket and TCP with mutual TLS (handshakes: 2 s).

    Its containers, images and the chaincode image's tag go afterwards.
    """
    ensure_images(engine_socket)  # the runtime stand-in, tagged as the chaincode's image
    with private_dir() as directory, pytest.MonkeyPatch.context() as patch:
        patch.setattr(dockerapi, "HANDSHAKE_TIMEOUT", HANDSHAKE)  # read at bind time
        tls = mutual_tls(directory)
        port = free_port()
        front = DockerAPIConfig(
            socket=directory / "docker.sock",
            tcp=f"127.0.0.1:{port}",
            tcp_ca=tls.ca,
            tcp_cert=tls.server[0],
            tcp_key=tls.server[1],
        )
        config = make_config(engine_socket, directory, docker_api=front)
        image = ""
        async with Engine(f"unix://{engine_socket}") as engine:
            try:
                async with running_daemon(config) as daemon:
                    bed = FrontBed(Hostile(daemon, engine))
                    # The chaincode's image exists: a create let through makes a container.
                    image = bed.names()[1]
                    await images.tag(engine, RUNTIME, image)
                    with anyio.fail_after(30):
                        while not bed.socket.exists():  # noqa: ASYNC110 -- a file appearing has no event
                            await anyio.sleep(0.05)
                    yield TCPBed(bed, port, tls)
            finally:
                if image:
                    with contextlib.suppress(NoSuchImage):
                        await images.remove(engine, image)
                await remove_instance(engine, config.instance)


async def logged(caplog: pytest.LogCaptureFixture, words: str) -> logging.LogRecord:
    """The record naming ``words`` (the front logs a refusal just after it closes)."""
    with anyio.fail_after(5):
        while True:
            for record in caplog.records:
                if words in record.getMessage():
                    return record
            await anyio.sleep(0.05)


def no_errors(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing at ERROR and no traceback: a refusal is not the daemon's failure."""
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, caplog.text


def tcp_front_toml(
    daemon: Daemon, engine_socket: str, core_yaml: Path, tcp: str, tls: MutualTLS
) -> str:
    """The daemon's configuration: the front on TCP alone, its engine on the Unix socket."""
    return (
        f'instance = "{daemon.instance}"\n'
        "[fabric]\n"
        f'core_yaml = "{core_yaml}"\n'
        "[listen]\n"
        f'socket = "{daemon.socket}"\n'
        "[docker_api]\n"
        f'tcp = "{tcp}"\n'
        f'tcp_ca = "{tls.ca}"\n'
        f'tcp_cert = "{tls.server[0]}"\n'
        f'tcp_key = "{tls.server[1]}"\n'
        "[engine]\n"
        # core.yaml's vm.endpoint is the front and its vm.docker.tls the peer's own
        # client certificate: ccdaemon reaches its engine on the socket, without TLS.
        f'endpoint = "unix://{engine_socket}"\n'
        "[engine.tls]\n"
        "[shutdown]\n"
        "grace = 5\n"
    )


async def engine_leftovers(engine_socket: str, network_id: str, tags: set[str]) -> list[str]:
    """Containers and image tags on the engine that name the peer's network, or ``tags``."""
    docker = aiodocker.Docker(url=f"unix://{engine_socket}")
    try:
        found = [
            f"container {name}"
            for item in await docker.containers.list(all=True)
            for name in item["Names"]
            if network_id in name
        ]
        found += [
            f"image {tag}"
            for image in await docker.images.list()
            for tag in image.get("RepoTags") or []
            if network_id in tag or tag in tags
        ]
    finally:
        await docker.close()
    return found


async def kv_container(engine_socket: str, name: str) -> tuple[dict[str, str], list[str]]:
    """The chaincode container's labels and SecurityOpt, seen through aiodocker."""
    docker = aiodocker.Docker(url=f"unix://{engine_socket}")
    try:
        inspected = await docker.containers.get(name)
        return dict(inspected["Config"]["Labels"]), list(inspected["HostConfig"]["SecurityOpt"])
    finally:
        await docker.close()
