"""A stock Fabric 1.4.12 peer runs chaincode through ccdaemon's Docker-API front.

The core claim for Fabric 1.4, which has no external builders: the peer's
``vm.endpoint`` is the front, and its Docker controller's every call (the build in its
builder container, the image build, stop, kill, remove, create, the TLS upload, start,
wait) goes through the daemon, which polices it and makes what it lets through its own.
The tests run in order on one network (module scope): deploy with 1.4's CLI (install,
instantiate), put and get, an exit and a relaunch, a peer restart, an upgrade, and at
the end nothing left on the engine. Each checks the ledger through the peer CLI, what
``ccdaemon ps`` reports, and what the engine really holds (aiodocker).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import aiodocker
import anyio
import pytest

from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL, MANAGED_LABEL, ROLE_LABEL
from tests.conftest import DEFAULT_ENGINE
from tests.fabric.conftest import call, ensure_images, instance_state
from tests.fabricnet import CLIError
from tests.fabricnet.legacy import wait_query
from tests.front.peer14 import KV, serving_front14, standins

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from tests.front.peer14 import Front14

#: Seconds a relaunch (no build) may take to be reported.
LAUNCH = 120.0


@pytest.fixture(scope="module")
def front14(engine_sockets: dict[str, str]) -> Generator[Front14, None, None]:
    """The stand-ins, the daemon and its front, a 1.4.12 peer on it, ``kv`` 1 instantiated."""
    engine_socket = engine_sockets[DEFAULT_ENGINE]
    ensure_images(engine_socket)
    with standins(engine_socket), serving_front14(engine_socket) as front:
        began = time.monotonic()
        front.net.install(KV, "1", variant="v1")
        front.net.instantiate(KV, "1", "init")
        print(f"\ninstall + instantiate through the front: {time.monotonic() - began:.1f} s")  # noqa: T201
        yield front


@pytest.fixture(autouse=True)
def _serving(front14: Front14) -> None:
    """Each test starts with the daemon and the peer up, whatever an earlier failure left."""
    if front14.daemon.process is None or front14.daemon.process.poll() is not None:
        front14.daemon.start()
    if front14.net.peer.pid is None:
        front14.net.start_peer()


async def settled(front: Front14, ccid: str, check: Callable[[dict[str, Any]], bool]) -> Any:
    """Poll ``ccdaemon ps`` until ``ccid``'s record passes ``check``; the record."""
    record: dict[str, Any] = {}
    try:
        with anyio.fail_after(LAUNCH):
            while not check(record := (await call(front.daemon.ps)).get(ccid, {})):  # noqa: ASYNC110 -- state in another process
                await anyio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {ccid}; last: {record}") from None
    return record


def running(record: dict[str, Any]) -> bool:
    """Whether a ``ccdaemon ps`` record is of a running chaincode."""
    return record.get("state") == "running"


async def test_install_instantiate_invoke_query_through_the_front(
    front14: Front14, docker: aiodocker.Docker
) -> None:
    """Instantiate built and launched kv through the front; the container is ccdaemon's."""
    net, daemon = front14.net, front14.daemon
    assert await call(net.invoke, KV, "put", "colour", "blue") == 200
    assert await call(net.query, KV, "get", "colour") == "blue"
    assert await call(net.query, KV, "get", "greeting") == "hello"  # instantiate ran init
    # Fabric 1.4's name: networkId-peerId-name-version; its ccid is name:version.
    name = net.container_name(KV, "1")
    assert name == f"{net.network_id}-peer0.org1.example.com-kv-1"
    record = (await call(daemon.ps))["kv:1"]
    assert record["state"] == "running"
    assert record["container"] == name

    inspected = await docker.containers.get(name)
    labels = inspected["Config"]["Labels"]
    assert labels[MANAGED_LABEL] == "true"
    assert labels[INSTANCE_LABEL] == daemon.instance
    assert labels[CCID_LABEL] == "kv:1"
    host = inspected["HostConfig"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["NetworkMode"] == "host"  # 1.4's stock hostConfig
    assert host["Privileged"] is False
    assert not host.get("Binds")
    # The peer uploaded 1.4's three TLS files (client.key, client.crt, peer.crt).
    assert "CORE_PEER_TLS_ENABLED=true" in inspected["Config"]["Env"]

    image = await docker.images.inspect(inspected["Config"]["Image"])
    assert image["Config"]["Labels"][ROLE_LABEL] == "image"
    assert image["Config"]["Labels"][INSTANCE_LABEL] == daemon.instance
    assert "peer builds image" in daemon.text()
    # The builder container is gone; nothing else of the instance is on the engine.
    assert (await instance_state(docker, daemon.instance))[0] == {name: "running"}


async def test_an_exit_is_tracked_and_the_next_invoke_relaunches(
    front14: Front14, docker: aiodocker.Docker
) -> None:
    """kvcc14 ``exit 3``: ccdaemon reports exit code 3; the next query relaunches it."""
    net = front14.net
    before = await settled(front14, "kv:1", running)
    with pytest.raises(CLIError):  # the chaincode ends without answering
        await call(net.invoke, KV, "exit", "3")
    exited = await settled(front14, "kv:1", lambda r: r.get("state") == "exited")
    assert exited["exit_code"] == 3
    assert exited["container_id"] == before["container_id"]

    assert await call(wait_query, net, KV, "get", "colour") == "blue"
    again = await settled(front14, "kv:1", running)
    assert again["container_id"] != before["container_id"]
    assert (await docker.containers.get(net.container_name(KV, "1")))["Id"] == again["container_id"]


async def test_a_peer_restart_then_a_query_works(
    front14: Front14, docker: aiodocker.Docker
) -> None:
    """SIGTERM the peer, start it again: the next query is served (relaunched if need be)."""
    net = front14.net
    await settled(front14, "kv:1", running)
    await call(net.stop_peer)
    mark = front14.daemon.mark()
    await call(net.start_peer)
    assert await call(wait_query, net, KV, "get", "colour") == "blue"
    record = await settled(front14, "kv:1", running)
    inspected = await docker.containers.get(net.container_name(KV, "1"))
    assert inspected["Id"] == record["container_id"]
    assert inspected["State"]["Running"] is True
    # The image stays: a relaunch after a restart builds nothing.
    assert "peer builds image" not in front14.daemon.text(mark)


async def test_upgrade_to_version_2(front14: Front14, docker: aiodocker.Docker) -> None:
    """``peer chaincode upgrade`` to 2: 2 serves its own variant; 1 is the operator's to stop.

    Fabric 1.4.12 stops a chaincode container only when its launch fails (its
    runtime_launcher.go), not at an upgrade or its own shutdown: version 1's container
    keeps running, as straight at an engine. ``ccdaemon stop`` removes it.
    """
    net, daemon = front14.net, front14.daemon
    assert await call(net.query, KV, "variant") == "v1"
    await call(net.install, KV, "2", variant="v2")
    await call(net.instantiate, KV, "2", "init", upgrade=True)
    assert await call(wait_query, net, KV, "variant") == "v2"
    assert await call(net.query, KV, "get", "colour") == "blue"  # the ledger stays
    new = await settled(front14, "kv:2", running)
    assert new["container"] == net.container_name(KV, "2")
    held, _ = await instance_state(docker, daemon.instance)
    assert held == {net.container_name(KV, "1"): "running", new["container"]: "running"}

    await call(daemon.cli, "stop", "kv:1", "--timeout", "2")
    held, _ = await instance_state(docker, daemon.instance)
    assert held == {new["container"]: "running"}, held
    with pytest.raises(aiodocker.DockerError):
        await docker.containers.get(net.container_name(KV, "1"))
    assert await call(net.query, KV, "variant") == "v2"  # 2 serves on


async def test_nothing_is_left_on_the_engine(front14: Front14, docker: aiodocker.Docker) -> None:
    """Peer down, kv stopped and gc'd: no container or image of the daemon's or the peer's."""
    daemon = front14.daemon
    await call(front14.net.stop_peer)
    for ccid, record in (await call(daemon.ps)).items():
        if record.get("state") in {"running", "exited"}:
            await call(daemon.cli, "stop", ccid, "--timeout", "2")
    await call(daemon.cli, "gc")
    assert await instance_state(docker, daemon.instance) == ({}, [])
    prefix = f"/{front14.net.network_id}-"
    left = [c["Names"] for c in await docker.containers.list(all=True)]
    assert not [n for n in left if any(name.startswith(prefix) for name in n)], left
