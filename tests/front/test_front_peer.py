"""A stock Fabric peer on its own Docker controller, through ccdaemon's front.

The peer drives DockerVM.Start itself (its builder container, its image build, stop,
kill, remove, create, upload, start); every call goes through the daemon's Docker-API
front. Each test checks the ledger through the peer CLI, what the daemon reports
(``ccdaemon ps``) and what the engine really holds (aiodocker), and leaves ``kv``
serving for the next. Each runs for every front case (tests/front/conftest.py): 2.5.10
on the default engine, 3.1.5 on Docker 28.5 and on Podman 4.3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiodocker
import anyio
import pytest

from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL, MANAGED_LABEL, ROLE_LABEL
from tests.fabric.conftest import KV_NAME, call, instance_state
from tests.fabricnet import container_name
from tests.fabricnet.configs import PEER_ID

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from tests.front.conftest import Front

#: Seconds a (re)launch may take; a rebuild of the Go shim is about half a minute.
LAUNCH = 60.0
REBUILD = 300.0


async def settled(front: Front, check: Callable[[dict[str, Any]], bool], what: str) -> Any:
    """Poll ``ccdaemon ps`` until ``kv``'s record passes ``check``; the record."""
    ccid = front.kv.package_id
    record: dict[str, Any] = {}
    try:
        with anyio.fail_after(REBUILD):
            while not check(record := (await call(front.daemon.ps)).get(ccid, {})):  # noqa: ASYNC110 -- state in another process
                await anyio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; last: {record}") from None
    return record


@pytest.fixture
async def docker(front: Front) -> AsyncIterator[aiodocker.Docker]:
    """Aiodocker on the engine behind this case's front, to check what it really holds."""
    client = aiodocker.Docker(url=f"unix://{front.engine_socket}")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(autouse=True)
def _serving(front: Front) -> None:
    """Each test starts with the peer and the daemon up, whatever an earlier failure left."""
    if front.daemon.process is None or front.daemon.process.poll() is not None:
        front.daemon.start()
    if front.net.peer.pid is None:
        front.net.start_peer()


def kv_container(front: Front) -> str:
    """Fabric's name for ``kv``'s container on this peer."""
    return container_name(front.net.network_id, PEER_ID, front.kv.package_id)


async def test_the_peer_builds_and_runs_its_chaincode_through_the_front(
    front: Front, docker: aiodocker.Docker
) -> None:
    """Install built the image in the peer's builder container; the launch is ccdaemon's own."""
    admin = front.net.admin
    await call(admin.invoke, KV_NAME, "put", "colour", "blue")
    assert await call(admin.query, KV_NAME, "get", "colour") == "blue"

    record = (await call(front.daemon.ps))[front.kv.package_id]
    assert record["state"] == "running"
    assert record["container"] == kv_container(front)

    inspected = await docker.containers.get(kv_container(front))
    labels = inspected["Config"]["Labels"]
    assert labels[MANAGED_LABEL] == "true"
    assert labels[INSTANCE_LABEL] == front.daemon.instance
    assert labels[CCID_LABEL] == front.kv.package_id
    host = inspected["HostConfig"]
    # core.yaml's hostConfig (host network, 2 GiB) with ccdaemon's policy added.
    assert host["NetworkMode"] == "host"
    assert host["Memory"] == 2147483648
    assert host["PidsLimit"] == 1024
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert not host.get("Binds")

    image = await docker.images.inspect(inspected["Config"]["Image"])
    image_labels = image["Config"]["Labels"]
    assert image_labels[INSTANCE_LABEL] == front.daemon.instance
    assert image_labels[ROLE_LABEL] == "image"
    # Fabric's own label, from the Dockerfile the peer wrote.
    assert image_labels["org.hyperledger.fabric.chaincode.type"] == "GOLANG"
    # The peer's builder container is gone, and so is every intermediate container of
    # its image build (3.1.5 asks rm=0; straight at the engine they stay: see
    # test_build_leftovers.py), Podman's buildah ones included.
    held, _ = await instance_state(docker, front.daemon.instance)
    assert held == {kv_container(front): "running"}
    assert front.left_by_deploy == {}, "the peer's install left containers on the engine"


async def test_an_exit_is_tracked_and_the_next_invoke_relaunches(
    front: Front, docker: aiodocker.Docker
) -> None:
    """A chaincode killed through the engine is reported exited; the peer launches it again."""
    before = await settled(front, lambda r: r.get("state") == "running", "kv running")
    await docker.containers.container(kv_container(front)).kill()
    exited = await settled(front, lambda r: r.get("state") == "exited", "kv reported exited")
    assert exited["exit_code"] == 137  # SIGKILL
    assert exited["container_id"] == before["container_id"]

    # The peer notices (its wait returns), and the next transaction launches it anew.
    assert await call(front.net.admin.query, KV_NAME, "get", "colour") == "blue"
    again = await settled(front, lambda r: r.get("state") == "running", "kv running again")
    assert again["container_id"] != before["container_id"]


async def test_a_peer_restart_stops_and_relaunches_through_the_front(
    front: Front, docker: aiodocker.Docker
) -> None:
    """The peer's shutdown removes its chaincode; its start launches it again (no rebuild)."""
    before = await settled(front, lambda r: r.get("state") == "running", "kv running")
    await call(front.net.stop_peer)
    await settled(front, lambda r: r.get("state") == "stopped", "kv reported stopped")
    held, images_before = await instance_state(docker, front.daemon.instance)
    assert held == {}

    mark = front.daemon.mark()
    await call(front.net.start_peer)
    again = await settled(front, lambda r: r.get("state") == "running", "kv relaunched")
    assert again["container_id"] != before["container_id"]
    assert await call(front.net.admin.query, KV_NAME, "get", "colour") == "blue"
    assert "peer builds image" not in front.daemon.text(mark)
    assert (await instance_state(docker, front.daemon.instance))[1] == images_before


async def test_gc_collects_the_peers_image_and_the_peer_rebuilds_it(
    front: Front, docker: aiodocker.Docker
) -> None:
    """With the peer down, ``ccdaemon gc`` removes its chaincode image; the peer builds anew."""
    await call(front.net.stop_peer)
    await settled(front, lambda r: r.get("state") == "stopped", "kv reported stopped")
    await call(front.daemon.cli, "gc")
    assert await instance_state(docker, front.daemon.instance) == ({}, [])

    mark = front.daemon.mark()
    await call(front.net.start_peer)
    await settled(front, lambda r: r.get("state") == "running", "kv rebuilt and relaunched")
    assert "peer builds image" in front.daemon.text(mark)
    assert await call(front.net.admin.query, KV_NAME, "get", "colour") == "blue"
