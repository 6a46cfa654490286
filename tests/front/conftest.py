"""A real Fabric peer on its own Docker controller, its ``vm.endpoint`` at ccdaemon's front.

The peer has no external builder: it builds chaincode in its own builder container and
runs it with DockerVM.Start, every engine call through the daemon's Docker-API front
(``[docker_api] socket``), which forwards to a real engine. The daemon reads the peer's
core.yaml, so it knows the peer's names and images, and its own ``[engine] endpoint``
names the real engine (core.yaml's ``vm.endpoint`` is the front).

``front`` runs each test once per ``FRONT_CASES`` entry: 2.5.10 on the default engine;
3.1.5 (moby's client, whose image builds send ``rm=0``) on Docker 28.5 and on Podman 4.3
(below 3.1.5's starting API version). ``CCDAEMON_TEST_FABRIC_VERSION`` narrows them.

The builder and runtime stand-ins are tagged with the names the stock core.yaml gives
(``hyperledger/fabric-ccenv:2.5``, ``hyperledger/fabric-baseos:2.5``; 3.1 likewise)
before the peer runs, and those tags are removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from ccdaemon.engine import Engine, NoSuchImage, images, system
from tests.conftest import DEFAULT_ENGINE
from tests.fabric.conftest import (
    FABRIC_VERSIONS,
    KV,
    Daemon,
    deploy_kv,
    ensure_images,
    remove_engine_instance,
    short_directory,
)
from tests.fabricnet import Network, container_name
from tests.fabricnet.configs import PEER_ID

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from pathlib import Path


@dataclass(frozen=True)
class FrontCase:
    """A Fabric release and the engine its peer reaches through the front."""

    version: str
    engine_name: str

    def __str__(self) -> str:
        return f"{self.version}-{self.engine_name}"


FRONT_CASES = [
    case
    for case in (
        FrontCase("2.5.10", DEFAULT_ENGINE),
        FrontCase("3.1.5", "docker-28.5"),
        FrontCase("3.1.5", "podman-4.3"),
    )
    if case.version in FABRIC_VERSIONS
]


@dataclass
class Front:
    """The peer, the daemon whose front it uses, its chaincode and the engine's socket.

    ``left_by_deploy``: containers (id -> name) that deploying ``kv`` added to the
    engine besides ``kv``'s own, Podman's external (buildah) ones included.
    """

    net: Network
    daemon: Daemon
    kv: KV
    engine_socket: str
    left_by_deploy: dict[str, str]

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


async def engine_containers(engine_socket: str) -> dict[str, str]:
    """Every container on the engine (id -> name); on Podman, its external ones too.

    A Podman build's intermediate containers are buildah's, which the Docker-compatible
    list never shows; libpod's list does with ``external``.
    """
    async with Engine(f"unix://{engine_socket}") as engine:
        if (await system.version(engine)).kind == "podman":
            listing = engine.request(
                "GET",
                "/v4.0.0/libpod/containers/json",
                params={"all": "true", "external": "true"},
                versioned=False,
            )
        else:
            listing = engine.request("GET", "/containers/json", params={"all": "1"})
        async with listing as answer:
            found = await answer.json()
    return {str(item["Id"]): str((item.get("Names") or ["?"])[0]).lstrip("/") for item in found}


@contextlib.contextmanager
def serving_front(engine_socket: str, *, version: str) -> Iterator[Front]:
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
    # The release names the images core.yaml gives by $(TWO_DIGIT_VERSION).
    runtime = f'[runtime]\nfabric_version = "{version}"\n'
    daemon.config.write_text(front_toml(daemon, engine_socket, net.core_yaml) + runtime)
    standins = net.standin_images()
    asyncio.run(tag_standins(engine_socket, standins, add=True))
    try:
        daemon.start()
        net.up()
        before = asyncio.run(engine_containers(engine_socket))
        kv = deploy_kv(net)
        added = asyncio.run(engine_containers(engine_socket)).items() - before.items()
        kv_name = container_name(net.network_id, PEER_ID, kv.package_id)
        left = {cid: name for cid, name in added if name != kv_name}
        yield Front(net, daemon, kv, engine_socket, left)
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


@pytest.fixture(scope="package", params=FRONT_CASES, ids=str)
def front(
    engine_sockets: dict[str, str], request: pytest.FixtureRequest
) -> Generator[Front, None, None]:
    """A case's engine, its front, its peer, and ``kv`` committed and initialised."""
    case: FrontCase = request.param
    engine_socket = engine_sockets[case.engine_name]
    ensure_images(engine_socket)
    with serving_front(engine_socket, version=case.version) as served:
        yield served
