"""A swarm on the bed's engines, for the swarm tests: made on first use, left at the end.

The engines of the bed are not in a swarm: ``Swarms`` makes an engine the manager of a
swarm of its own, once, and leaves that swarm (``--force``) when its owner ends, so the
engine is left as it was found. An engine found already in a swarm is used as it is and
never left.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import socket
from typing import TYPE_CHECKING, TypeVar

import pytest

from ccdaemon.engine import Engine, EngineError, swarm, system

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

T = TypeVar("T")


def free_port(kind: socket.SocketKind) -> int:
    """A port free on this host, below the kernel's ephemeral range.

    The engine refuses a data path port outside 1024-49151 (with a 500), and the
    kernel's own choice (port 0) is usually above it.
    """
    for _ in range(100):
        port = 20000 + secrets.randbelow(12000)
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port between 20000 and 32000")


def _run(engine_socket: str, work: Callable[[Engine], Awaitable[T]]) -> T:
    """Run one async call against the engine from sync fixture code, on a thread of its own.

    The module fixture outlives the per-test event loops, so it gets a loop of its own,
    in another thread, never touching the test loop's state.
    """

    async def main() -> T:
        async with Engine(f"unix://{engine_socket}") as engine:
            return await work(engine)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


async def _network_names(engine: Engine) -> set[str]:
    return {str(n["Name"]) for n in await engine.call("GET", "/networks")}


async def _on(socket_path: str, work: Callable[[Engine], Awaitable[T]]) -> T:
    """Run ``work`` against the engine at ``socket_path``, in the current event loop."""
    async with Engine(f"unix://{socket_path}") as engine:
        return await work(engine)


async def _own_gateway_bridge(engine: Engine) -> None:
    """Give the engine a docker_gwbridge network whose Linux bridge is its own.

    Swarm mode makes docker_gwbridge with the Linux bridge docker_gwbridge: one device
    for every engine of the host, which the first engine to remove its network takes
    from the others.
    """
    if "docker_gwbridge" in await _network_names(engine):
        return
    bridge = f"ccdt-gw{secrets.token_hex(3)}"  # at most 15 characters, as Linux wants
    await engine.call(
        "POST",
        "/networks/create",
        json={
            "Name": "docker_gwbridge",
            "Driver": "bridge",
            "Options": {
                "com.docker.network.bridge.name": bridge,
                "com.docker.network.bridge.enable_icc": "false",
            },
        },
    )


async def _init(engine: Engine) -> str:
    """Make the engine a swarm manager, sharing nothing with other engines on this host.

    Several engines of the bed run on one host: each gets its own listen and data path
    ports (never 2377 and 4789), and its own gateway bridge.
    """
    await _own_gateway_bridge(engine)
    return await swarm.swarm_init(
        engine,
        advertise_addr="127.0.0.1",
        listen_addr=f"127.0.0.1:{free_port(socket.SOCK_STREAM)}",
        data_path_port=free_port(socket.SOCK_DGRAM),
    )


class Swarms:
    """The engines this module put in a swarm, each made a manager on first use."""

    def __init__(self, sockets: dict[str, str]) -> None:
        self._sockets = sockets
        self.joined: dict[str, str] = {}  # engine name -> node id, for every engine in use
        self.made: list[str] = []  # engines this module put in a swarm, to leave at the end
        self.refused: dict[str, str] = {}  # engine name -> why swarm init failed
        self.networks: dict[str, set[str]] = {}  # engine name -> its networks before init

    def ensure(self, name: str) -> str:
        """Return the engine's node id, making it a swarm manager if it is in no swarm."""
        if name in self.joined:
            return self.joined[name]
        if name in self.refused:
            pytest.skip(self.refused[name])
        sock = self._sockets[name]
        state = _run(sock, system.info)["Swarm"]
        if state.get("LocalNodeState") == "active" and state.get("ControlAvailable"):
            self.joined[name] = str(state["NodeID"])  # someone else's swarm: never left
            return self.joined[name]
        self.networks[name] = _run(sock, _network_names)
        try:
            node = _run(sock, _init)
        except EngineError as exc:
            self.refused[name] = f"swarm init failed on {name} on this machine: {exc}"
            self._remove_new_networks(name)
            pytest.skip(self.refused[name])
        self.made.append(name)
        self.joined[name] = node
        return node

    def join_worker(self, manager: str, worker: str, socket_path: str) -> str:
        """Join engine ``worker`` (at ``socket_path``) to ``manager``'s swarm; its node id.

        Two engines on one host would both bind the swarm's VXLAN port for the
        ``ingress`` overlay network, so the manager's ``ingress`` goes first: chaincode
        services use the host's network and need no overlay. Only a swarm made here is
        changed so; the worker leaves before its manager when the owner ends.
        """
        if worker in self.joined:
            return self.joined[worker]
        if manager not in self.made:
            pytest.skip(f"{manager}'s swarm is not this run's own: its ingress stays")
        self._sockets[worker] = socket_path
        self.networks[worker] = _run(socket_path, _network_names)

        async def join(engine: Engine) -> str:
            async def on_manager(client: Engine) -> tuple[str, str]:
                if "ingress" in await _network_names(client):
                    await client.call("DELETE", "/networks/ingress")
                info = await swarm.swarm_inspect(client)
                addr = (await system.info(client))["Swarm"]["RemoteManagers"][0]["Addr"]
                return str(info["JoinTokens"]["Worker"]), str(addr)

            token, addr = await _on(self._sockets[manager], on_manager)
            await _own_gateway_bridge(engine)
            port = free_port(socket.SOCK_STREAM)
            await engine.call(
                "POST",
                "/swarm/join",
                json={
                    "ListenAddr": f"127.0.0.1:{port}",
                    "AdvertiseAddr": f"127.0.0.1:{port}",
                    "RemoteAddrs": [addr],
                    "JoinToken": token,
                },
            )
            return str((await system.info(engine))["Swarm"]["NodeID"])

        self.made.insert(0, worker)
        self.joined[worker] = _run(socket_path, join)
        return self.joined[worker]

    def leave_all(self) -> None:
        """Leave every swarm this module made; each engine is tried even if one fails."""
        failures = []
        for name in self.made:
            try:
                _run(self._sockets[name], lambda engine: swarm.swarm_leave(engine, force=True))
            except EngineError as exc:  # pragma: no cover -- reported, then re-raised
                failures.append(f"{name}: {exc}")
        # Only once every engine left: no ingress sandbox uses a gateway bridge any more.
        for name in self.made:
            try:
                self._remove_new_networks(name)
            except EngineError as exc:  # pragma: no cover -- reported, then re-raised
                failures.append(f"{name}: {exc}")
        assert not failures, f"leaving the swarms failed: {failures}"

    def _remove_new_networks(self, name: str) -> None:
        """Remove the networks that swarm mode left behind (docker_gwbridge survives leave)."""
        before = self.networks.get(name, set())

        async def remove(engine: Engine) -> None:
            for network in await _network_names(engine) - before:
                await engine.call("DELETE", f"/networks/{network}")

        _run(self._sockets[name], remove)


@pytest.fixture(scope="module")
def swarms(engine_sockets: dict[str, str]) -> Iterator[Swarms]:
    """Swarm mode for the module's engines, left at the module's end whatever happens."""
    made = Swarms(engine_sockets)
    try:
        yield made
    finally:
        made.leave_all()


@pytest.fixture
def node_id(swarms: Swarms, engine_name: str) -> str:
    """The engine under test as a swarm manager; its node id."""
    return swarms.ensure(engine_name)
