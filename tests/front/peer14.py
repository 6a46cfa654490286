"""A stock Fabric 1.4.12 peer, its ``vm.endpoint`` at ccdaemon's front (or at any socket).

Fabric 1.4 has no external builders: its Docker controller is the only way it runs
chaincode, so the front is how it runs chaincode without docker.sock. The peer's
core.yaml keeps the stock image names, ``hyperledger/fabric-ccenv:1.4`` (builder) and
``hyperledger/fabric-baseos:amd64-0.4.22`` (Go runtime); ``standins`` puts both on the
engine before any peer runs and removes them afterwards:

- the ccenv stand-in is built at test time through the engine's build API: FROM
  ``localhost/ccdaemon/goenv:1.24``, the GOPATH shim closure ADDed (the engine unpacks
  the xz) at ``/opt/gopath/src`` where the real fabric-ccenv:1.4 carries it, GOPATH
  and GO111MODULE=off set. goenv:1.19 (the Go nearest 1.4's era) cannot serve: it has
  no gcc and CGO_ENABLED=0, and 1.4's platform.go links with ``-linkmode external
  -extldflags '-static'`` unless core.yaml's ``chaincode.golang.dynamicLink`` (stock:
  false) is changed. The build is a plain ADD, a few seconds, so it is not cached;
- the baseos stand-in is a tag of ``localhost/ccdaemon/baseos:1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import lzma
import secrets
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiodocker

from ccdaemon.engine import Engine, NoSuchImage, archive, images
from tests.fabric.conftest import GO_RUNTIME, Daemon, remove_engine_instance, short_directory
from tests.fabricnet.dist import SHARED
from tests.fabricnet.legacy import BASEOS_IMAGE, CCENV_IMAGE, LegacyNetwork
from tests.fabricnet.legacyconfig import LEGACY_VERSION
from tests.front.conftest import front_toml

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: The base of the ccenv stand-in: a Go with gcc (see the module's docstring).
CCENV_BASE = "localhost/ccdaemon/goenv:1.24"
#: Marks the stand-in the tests built, so a leftover is recognisable.
STANDIN_LABEL = "ccdaemon.test.standin"
#: The chaincode's name on the channel.
KV = "kv"
#: core.yaml overrides: a generous startup timeout (a first launch builds the image).
CORE_OVERRIDES = {"chaincode.startuptimeout": "120s"}


def ccenv_context() -> bytes:
    """The build context of the fabric-ccenv:1.4 stand-in: Dockerfile and the shim's tar.

    The tar goes in unpacked here: to ADD an xz archive, Docker 20.10 runs ``xz -d``,
    stops reading at the tar's end block and leaves that process behind, blocked on
    the rest of its output, one for every build.
    """
    dockerfile = (
        f"FROM {CCENV_BASE}\n"
        "ADD go-shim-gopath.tar /opt/gopath/src\n"
        "ENV GOPATH=/opt/gopath GO111MODULE=off\n"
    )
    shim = lzma.decompress((SHARED / f"v{LEGACY_VERSION}" / "go-shim-gopath.tar.xz").read_bytes())
    return archive.tar({"Dockerfile": dockerfile.encode(), "go-shim-gopath.tar": shim})


async def put_standins(engine_socket: str) -> None:
    """Build the ccenv stand-in and tag the baseos one, under the names 1.4.12 asks for."""
    async with Engine(f"unix://{engine_socket}") as engine:
        await images.build(engine, ccenv_context(), CCENV_IMAGE, labels={STANDIN_LABEL: "ccenv"})
        repository, _, tag = BASEOS_IMAGE.rpartition(":")
        await images.tag(engine, GO_RUNTIME, repository, tag)


async def remove_standins(engine_socket: str) -> list[str]:
    """Remove both stand-in names; those still on the engine afterwards (none, normally)."""
    left = []
    async with Engine(f"unix://{engine_socket}") as engine:
        for name in (CCENV_IMAGE, BASEOS_IMAGE):
            with contextlib.suppress(NoSuchImage):
                await images.remove(engine, name)
            with contextlib.suppress(NoSuchImage):
                await images.inspect(engine, name)
                left.append(name)
    return left


@contextlib.contextmanager
def standins(engine_socket: str) -> Iterator[None]:
    """The stand-ins in place for the body; removed after, and an error if any stays."""
    asyncio.run(put_standins(engine_socket))
    try:
        yield
    finally:
        left = asyncio.run(remove_standins(engine_socket))
        assert not left, f"stand-in images left on the engine: {left}"


async def remove_network_objects(engine_socket: str, network_id: str) -> None:
    """Remove the containers and images a peer straight at the engine left (by its names)."""
    docker = aiodocker.Docker(url=f"unix://{engine_socket}")
    try:
        for item in await docker.containers.list(all=True):
            if any(name.startswith(f"/{network_id}-") for name in item["Names"]):
                await docker.containers.container(item["Id"]).delete(force=True)
        for image in await docker.images.list():
            if any(tag.startswith(f"{network_id}-") for tag in image.get("RepoTags") or []):
                await docker.images.delete(image["Id"], force=True)
    finally:
        await docker.close()


def front14_toml(daemon: Daemon, engine_socket: str, core_yaml: Path) -> str:
    """The front's configuration of tests/front, read as Fabric 1.4.12's core.yaml."""
    return (
        front_toml(daemon, engine_socket, core_yaml)
        # $(BASE_VERSION) and $(BASE_DOCKER_NS) are 1.4's; the launch layout too.
        + f'[runtime]\nfabric_version = "{LEGACY_VERSION}"\nlayout = "1.4"\n'
    )


@dataclass
class Front14:
    """The 1.4 peer, the daemon whose front it uses, and the engine's socket."""

    net: LegacyNetwork
    daemon: Daemon
    engine_socket: str

    @property
    def socket(self) -> Path:
        """The Docker-API front's socket."""
        return self.daemon.directory / "docker.sock"


def new_daemon(prefix: str) -> Daemon:
    """A daemon (not started) in a fresh short directory."""
    directory = short_directory(prefix)
    return Daemon(directory, f"f14-{secrets.token_hex(3)}", directory / "ccdaemon.toml")


@contextlib.contextmanager
def serving_front14(engine_socket: str, *, vm_endpoint: str | None = None) -> Iterator[Front14]:
    """A daemon with its front on ``engine_socket`` and a 1.4.12 peer up on it.

    ``vm_endpoint`` (default: the front itself) lets a recorder sit between the peer and
    the front. The stand-ins must be in place (``standins``). Afterwards the network and
    the daemon are stopped, what the daemon's instance holds is removed, and the
    scratch directories are deleted (their logs are printed on a failure).
    """
    daemon = new_daemon("ccf14-")
    front = daemon.directory / "docker.sock"
    net = LegacyNetwork.create(vm_endpoint or f"unix://{front}", core_overrides=CORE_OVERRIDES)
    daemon.config.write_text(front14_toml(daemon, engine_socket, net.core_yaml))
    try:
        daemon.start()
        net.up()
        yield Front14(net, daemon, engine_socket)
    except BaseException:
        print(f"\n{net.logs(80)}\n--- daemon log\n{daemon.tail(80)}")  # noqa: T201
        raise
    finally:
        net.down()
        daemon.stop()
        asyncio.run(remove_engine_instance(engine_socket, daemon.instance))
        net.remove()
        shutil.rmtree(daemon.directory, ignore_errors=True)
