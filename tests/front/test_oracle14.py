"""The oracle: a 1.4.12 peer sees the same Docker API through ccdaemon's front as straight.

A recording relay (tests/front/recorder.py) sits at the peer's ``vm.endpoint``. First
it relays to the real engine (no ccdaemon at all), then to the daemon's front; each
time a fresh 1.4.12 network starts, installs and instantiates ``kv`` (the build in the
builder container, the image build, the first launch). The calls the peer made and the
statuses it was answered must be the same, in the same order, IDs and the network id
aside. The image build's request (``POST /build``) streams on its own connection
while the builder runs on others, so its place among them is the peer's goroutines'
race; it is compared apart, by its line and status.

What the calls made is compared too, as the engine has it (tests/front/made.py): the
chaincode container's name, image, Cmd, Env, HostConfig and uploaded TLS files, and
its image's Env, WorkingDir and chaincode binary. They must be the same but for what
the front adds (docs/docker-front.md, "What the front adds or changes"): ccdaemon's
labels on both (the container's Labels hold its image's too, so ``ccdaemon.role=image``
shows there as well: the engine merges them), and the policy's PidsLimit and
no-new-privileges in HostConfig.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from typing import TYPE_CHECKING, Any

from tests.fabric.conftest import ensure_images, short_directory
from tests.fabricnet.legacy import LegacyNetwork
from tests.front.made import differences, made
from tests.front.peer14 import (
    CORE_OVERRIDES,
    KV,
    remove_network_objects,
    serving_front14,
    standins,
)
from tests.front.recorder import Recorder, normalised

if TYPE_CHECKING:
    from pathlib import Path

#: Calls whose place in the order is a race between the peer's goroutines.
RACING = ("POST", "/build?")
#: What the front adds to what it makes (the docs' table), and nothing else may differ.
ADDED_LABELS = ("ccdaemon.managed", "ccdaemon.instance")
ADDED = {
    *(f"labels.{name}" for name in (*ADDED_LABELS, "ccdaemon.ccid", "ccdaemon.role")),
    *(f"image_labels.{name}" for name in (*ADDED_LABELS, "ccdaemon.role")),
    "host_config.PidsLimit",
    "host_config.SecurityOpt",
}

Calls = list[tuple[str, str, int | None]]
Made = dict[str, Any]


def deploy(net: LegacyNetwork) -> float:
    """Install and instantiate ``kv`` 1 on ``net`` (up); the seconds it took."""
    began = time.monotonic()
    net.install(KV, "1", variant="v1")
    net.instantiate(KV, "1", "init")
    return time.monotonic() - began


def straight(engine_socket: str, directory: Path) -> tuple[Calls, Made]:
    """A 1.4.12 peer at a recorder in front of the engine: its calls while it deploys."""
    recorder_socket = directory / "straight.sock"
    net = LegacyNetwork.create(f"unix://{recorder_socket}", core_overrides=CORE_OVERRIDES)
    try:
        with Recorder(recorder_socket, engine_socket) as recorder:
            net.up()
            print(f"\nstraight at the engine: {deploy(net):.1f} s")  # noqa: T201
            calls = normalised(recorder.snapshot(), net.network_id)
        return calls, made_by(net, engine_socket)
    except BaseException:
        print(net.logs(80))  # noqa: T201
        raise
    finally:
        net.down()
        asyncio.run(remove_network_objects(engine_socket, net.network_id))
        net.remove()


def through_front(engine_socket: str, directory: Path) -> tuple[Calls, Made]:
    """The same, the recorder in front of ccdaemon's front."""
    recorder_socket = directory / "front.sock"
    with serving_front14(engine_socket, vm_endpoint=f"unix://{recorder_socket}") as front:
        # The recorder is up before the peer asks anything: serving_front14 started the
        # peer already, so its first /_ping went nowhere; start it again under the recorder.
        front.net.stop_peer()
        with Recorder(recorder_socket, str(front.socket)) as recorder:
            front.net.start_peer()
            print(f"through the front: {deploy(front.net):.1f} s")  # noqa: T201
            calls = normalised(recorder.snapshot(), front.net.network_id)
        return calls, made_by(front.net, engine_socket)


def made_by(net: LegacyNetwork, engine_socket: str) -> Made:
    """``kv`` 1's container on ``net``'s peer, and its image, as the engine has them."""
    peer_address = f"127.0.0.1:{net.ports.chaincode}"
    container = net.container_name(KV, "1")
    return asyncio.run(made(engine_socket, container, net.network_id, peer_address))


def split(calls: Calls) -> tuple[Calls, Calls]:
    """The calls in order, and apart the racing ones."""
    racing = [c for c in calls if (c[0], c[1][: len(RACING[1])]) == RACING]
    return [c for c in calls if c not in racing], racing


def test_a_peer_sees_the_same_calls_and_statuses_through_the_front(engine_socket: str) -> None:
    """Install + instantiate: the same requests, order and statuses, straight and through."""
    ensure_images(engine_socket)
    directory = short_directory("ccor-")
    try:
        with standins(engine_socket):
            direct, direct_made = straight(engine_socket, directory)
            fronted, fronted_made = through_front(engine_socket, directory)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(directory)
    print("\n".join(f"{m} {t} {s}" for m, t, s in direct))  # noqa: T201
    ordered, racing = split(direct)
    # What 1.4.12 does for a first launch (tests/front and ../shared/fabric/README.md):
    # the container is not there, its image is built in the builder, then it starts.
    assert ("POST", "/containers/create?name=<net>-peer0.org1.example.com-kv-1", 404) in ordered
    assert ("PUT", "/containers/<net>-peer0.org1.example.com-kv-1/archive?path=%2F", 200) in ordered
    assert [c[2] for c in racing] == [200]
    fronted_ordered, fronted_racing = split(fronted)
    assert fronted_racing == racing
    assert fronted_ordered == ordered
    # What the calls made: the same container and image, but for what the front adds.
    diff = differences(direct_made, fronted_made)
    print("\n".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in diff.items())))  # noqa: T201
    assert set(diff) == ADDED, f"differences beyond what the front adds: {set(diff) ^ ADDED}"
    assert all(diff[f"labels.{name}"][0] is None for name in ADDED_LABELS)
    assert fronted_made["host_config"]["SecurityOpt"] == ["no-new-privileges"]
    assert direct_made["files"], "the peer uploaded no TLS files"
    assert direct_made["name"] == "/<net>-peer0.org1.example.com-kv-1"
    assert direct_made["cmd"] == ["chaincode", "-peer.address=<peer>"]
