"""Fabric 3.1.5's own image builds leave their intermediate containers behind.

3.1.5's Docker controller (moby's client) sends its chaincode image builds with
``rm=0``, so straight at an engine every build leaves the containers of its steps (on
Podman as buildah containers that only libpod's ``external`` list shows), on the
operator's disk. Through the front (``rm=1&forcerm=1``, always) the same build leaves
none: ``test_front_peer.py``'s first test holds that for each front case. This module is
the other half, the peer straight at the engine, so the figure is "N vs 0" from real
runs. It cleans up what the peer left.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from ccdaemon.engine import Engine, NoSuchContainer, NoSuchImage, containers, images
from tests.fabric.conftest import ensure_images
from tests.fabricnet import Network
from tests.front.conftest import FRONT_CASES, FrontCase, engine_containers, tag_standins

#: The 3.x cases: the releases whose builds ask rm=0.
CASES = [case for case in FRONT_CASES if case.version.startswith("3.")]


async def remove_left(engine_socket: str, left: dict[str, str], network_id: str) -> None:
    """Remove the containers the peer left, then its chaincode images (``network_id``-named)."""
    async with Engine(f"unix://{engine_socket}") as engine:
        for container_id in left:
            with contextlib.suppress(NoSuchContainer):
                await containers.remove(engine, container_id, force=True)
        for image in await images.list_(engine):
            for tag in image.get("RepoTags") or []:
                if network_id in tag:
                    with contextlib.suppress(NoSuchImage):
                        await images.remove(engine, tag, force=True)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_straight_at_the_engine_an_install_leaves_its_build_containers(
    case: FrontCase, engine_sockets: dict[str, str]
) -> None:
    """The peer's install builds its image with rm=0: the steps' containers stay."""
    socket = engine_sockets[case.engine_name]
    ensure_images(socket)
    net = Network.create(None, engine=f"unix://{socket}", version=case.version)
    standins = net.standin_images()
    asyncio.run(tag_standins(socket, standins, add=True))
    left: dict[str, str] = {}
    try:
        net.up()
        before = asyncio.run(engine_containers(socket))
        net.admin.install(net.admin.package("kv_1"))
        left = dict(asyncio.run(engine_containers(socket)).items() - before.items())
    finally:
        net.down()
        asyncio.run(remove_left(socket, left, net.network_id))
        asyncio.run(tag_standins(socket, standins, add=False))
    # Only the build's: the builder container is removed by the peer, no chaincode ran.
    assert left, "the peer's rm=0 build left nothing: has Fabric changed its build call?"
    print(f"\n{case}: {len(left)} containers left by one install: {sorted(left.values())}")  # noqa: T201
    assert asyncio.run(engine_containers(socket)).keys().isdisjoint(left)
    net.remove()
