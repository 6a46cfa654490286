"""A real Fabric peer on its own Docker controller, its ``vm.endpoint`` at ccdaemon's front.

Fabric 2.5.10 by default (``CCDAEMON_TEST_FABRIC_VERSION`` as for tests/fabric). The
peer has no external builder: it builds chaincode in its own builder container and
runs it with DockerVM.Start, every engine call through the daemon's Docker-API front
(``[docker_api] socket``), which forwards to the default engine. The daemon reads the
peer's core.yaml, so it knows the peer's names and images, and its own ``[engine]
endpoint`` names the real engine (core.yaml's ``vm.endpoint`` is the front).

The builder and runtime stand-ins are tagged with the names the stock core.yaml gives
(``hyperledger/fabric-ccenv:2.5``, ``hyperledger/fabric-baseos:2.5``) before the peer
runs, and those tags are removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from ccdaemon.engine import Engine, NoSuchImage, images
from tests.conftest import DEFAULT_ENGINE
from tests.fabric.conftest import (
    FABRIC_VERSION,
    KV,
    Daemon,
    deploy_kv,
    ensure_images,
    remove_engine_instance,
    short_directory,
)
from tests.fabricnet import Network

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from pathlib import Path


@dataclass
class Front:
    """The peer, the daemon whose front it uses, its chaincode and the engine's socket."""

    net: Network
    daemon: Daemon
    kv: KV
    engine_socket: str

    @property
    def socket(self) -> Path:
        """The Docker-API front's socket (the peer's vm.endpoint)."""
        return self.daemon.directory / "docker.sock"


def front_toml(daemon: Daemon, engine_socket: str, core_yaml: Path) -> str:
    """The daemon's configuration: the peer's core.yaml, the front, the real engine."""
    return (
        f'instance = "{daemon.instance}"\n'
        "[fabric]\n"
        f'core_yaml = "{core_yaml}"\n'
        "[listen]\n"
        f'socket = "{daemon.socket}"\n'
        "[docker_api]\n"
        f'socket = "{daemon.directory / "docker.sock"}"\n'
        "[engine]\n"
        # core.yaml's vm.endpoint is the front itself: this wins.
        f'endpoint = "unix://{engine_socket}"\n'
        "[shutdown]\n"
        "grace = 5\n"
    )


async def tag_standins(engine_socket: str, standins: dict[str, str], *, add: bool) -> None:
    """Tag the stand-ins with the names the peer asks for (``add``), or remove those tags."""
    async with Engine(f"unix://{engine_socket}") as engine:
        for name, standin in standins.items():
            if add:
                repository, _, tag = name.rpartition(":")
                await images.tag(engine, standin, repository, tag)
            else:
                with contextlib.suppress(NoSuchImage):
                    await images.remove(engine, name)


@contextlib.contextmanager
def serving_front(engine_socket: str, *, version: str = FABRIC_VERSION) -> Iterator[Front]:
    """A daemon with its front on ``engine_socket``, a peer on the front, ``kv`` deployed.

    Everything is stopped and removed afterwards: the network, the daemon, what the
    daemon's instance holds on the engine and the stand-in tags.
    """
    directory = short_directory("ccff-")
    daemon = Daemon(directory, f"front-{secrets.token_hex(3)}", directory / "ccdaemon.toml")
    net = Network.create(
        None,
        engine=f"unix://{directory / 'docker.sock'}",
        version=version,
        core_overrides={"chaincode.startuptimeout": "120s"},
    )
    daemon.config.write_text(front_toml(daemon, engine_socket, net.core_yaml))
    standins = net.standin_images()
    asyncio.run(tag_standins(engine_socket, standins, add=True))
    try:
        daemon.start()
        net.up()
        yield Front(net, daemon, deploy_kv(net), engine_socket)
    except BaseException:
        for name, text in (("peer", net.peer.tail(80)), ("daemon", daemon.tail(80))):
            print(f"\n--- {name} log (last lines)\n{text}")  # noqa: T201
        raise
    finally:
        net.down()
        daemon.stop()
        asyncio.run(remove_engine_instance(engine_socket, daemon.instance))
        asyncio.run(tag_standins(engine_socket, standins, add=False))
        net.remove()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="package")
def front(engine_sockets: dict[str, str]) -> Generator[Front, None, None]:
    """The default engine's front, its peer, and ``kv`` committed and initialised."""
    engine_socket = engine_sockets[DEFAULT_ENGINE]
    ensure_images(engine_socket)
    with serving_front(engine_socket) as served:
        yield served
