"""Docker 29's API floor: a 2.5.10 peer cannot build on it alone, and can through the front.

Fabric 2.5.0-2.5.14 (and 3.0-3.1.3) send their image builds as ``POST /v1.25/build``
(hyperledger/fabric#5350); Docker 29 refuses every API version below 1.44. The test
engine is Docker 28.5 started with ``DOCKER_MIN_API_VERSION=1.44``, which refuses
exactly so (``scripts/engines up docker-28.5-floor``). Straight at it, the peer's install
fails; with ``vm.endpoint`` at ccdaemon's front, which forwards every call at the API
version it negotiated with the engine, the same peer installs, commits and invokes.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import TYPE_CHECKING

import pytest

from ccdaemon.engine import Engine, containers, images
from tests.conftest import ROOT
from tests.fabric.conftest import KV_NAME, ensure_images
from tests.fabricnet import CLIError, Network
from tests.front.conftest import serving_front, tag_standins

if TYPE_CHECKING:
    from collections.abc import Iterator

FLOOR = "docker-28.5-floor"
#: The Fabric release whose client sends /v1.25/build.
VERSION = "2.5.10"
ENGINES = str(ROOT / "scripts" / "engines")


@pytest.fixture(scope="module")
def floor_engine() -> Iterator[str]:
    """Docker 28.5 with Docker 29's API floor, started for this module and stopped after."""
    up = subprocess.run([ENGINES, "up", FLOOR], check=True, stdout=subprocess.PIPE, text=True)
    socket = dict(line.split(maxsplit=1) for line in up.stdout.splitlines() if line.strip())[FLOOR]
    try:
        ensure_images(socket)
        yield socket
    finally:
        subprocess.run([ENGINES, "down", FLOOR], check=True, stdout=subprocess.DEVNULL)


async def _leftovers(engine_socket: str, network_id: str) -> list[str]:
    """Containers and images on the engine named for ``network_id``'s peer."""
    async with Engine(f"unix://{engine_socket}") as engine:
        found = [
            str(item["Names"][0]).lstrip("/")
            for item in await containers.list_(engine)
            if network_id in str(item["Names"][0])
        ]
        for image in await images.list_(engine):
            found += [tag for tag in image.get("RepoTags") or [] if tag.startswith(network_id)]
    return found


def test_straight_at_the_floor_the_peers_build_fails(floor_engine: str) -> None:
    """The break: the peer's own ``POST /v1.25/build`` is refused; install fails."""
    net = Network.create(None, engine=f"unix://{floor_engine}", version=VERSION)
    standins = net.standin_images()
    asyncio.run(tag_standins(floor_engine, standins, add=True))
    try:
        net.up()
        package = net.admin.package("kv_1")
        with pytest.raises(CLIError) as failed:
            net.admin.install(package)
        assert "docker image build failed" in failed.value.stderr
        assert "could not build chaincode" in failed.value.stderr
    finally:
        net.down()
        asyncio.run(tag_standins(floor_engine, standins, add=False))
    assert asyncio.run(_leftovers(floor_engine, net.network_id)) == []
    net.remove()


def test_through_the_front_the_same_peer_builds_and_serves(floor_engine: str) -> None:
    """The fix: the front forwards the build at the negotiated version (1.51)."""
    with serving_front(floor_engine, version=VERSION) as front:
        admin = front.net.admin
        admin.invoke(KV_NAME, "put", "floor", "1.44")
        assert admin.query(KV_NAME, "get", "floor") == "1.44"
        assert front.daemon.ps()[front.kv.package_id]["state"] == "running"
        assert "its path asks API 1.25; sent at 1.51" in front.daemon.text()
