"""The supervisor's state machine on every kind of backend, through the Backend seam alone.

Each test runs on the tests' in-memory backend (tests/supervise/memory.py) and on the
container backend on a real engine, built the way the daemon builds it: a launch runs,
a chaincode ended underneath (killed) is marked exited by the backend's exit stream
and ``wait`` answers its code, a stop removes it, a second daemon on the same engine
re-adopts the running chaincode and reports the exited one, and gc collects only what
no chaincode runs on.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio
import pytest

from ccdaemon.engine import containers, images
from ccdaemon.launchqueue import LaunchQueue
from ccdaemon.runtime.certs import ChaincodeCA
from ccdaemon.runtime.hostconfig import HostConfig
from ccdaemon.runtime.launcher import Launcher, LaunchRequest, RuntimeConfig
from ccdaemon.supervise.gc import collect
from ccdaemon.supervise.registry import Registry, State
from ccdaemon.supervise.supervisor import Supervisor
from tests.conftest import chaincode_context
from tests.supervise.memory import MemoryBackend, Process

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import TaskGroup

    from ccdaemon.engine import Engine
    from ccdaemon.runtime.backend import Backend
    from ccdaemon.supervise.recovery import Recovered
    from tests.conftest import Made

CCIDS = [f"sup{i}_1.0:{i:064x}" for i in range(2)]
#: A stand-in chaincode binary that runs until it is killed.
CHAINCODE = b"#!/bin/sh\nexec sleep 3600\n"


class Bed(Protocol):
    """One kind of backend: a fresh backend on the same "engine", and an exit underneath."""

    def backend(self, group: TaskGroup) -> Backend:
        """A backend as a new daemon makes it (a recovery finds what earlier ones left)."""
        ...

    async def kill(self, container: str) -> None:
        """End the chaincode's container underneath the daemon (exit code 137)."""
        ...


class MemoryBed:
    """The in-memory backend; its "engine" is one dict of processes shared by all."""

    def __init__(self) -> None:
        self.processes: dict[str, Process] = {}
        self._backends: list[MemoryBackend] = []

    def backend(self, group: TaskGroup) -> Backend:
        """A new backend on the shared processes."""
        del group
        self._backends.append(MemoryBackend(self.processes))
        return self._backends[-1]

    async def kill(self, container: str) -> None:
        """End it in the newest backend's view (its exit stream tells the table)."""
        self._backends[-1].kill(container)


@dataclass
class EngineBed:
    """The container backend on the real engine under test."""

    engine: Engine
    made: Made
    config: RuntimeConfig

    def backend(self, group: TaskGroup) -> Backend:
        """A Launcher as serve.py makes it, on its own queue."""
        queue = LaunchQueue(group, engine_limit=8)
        return Launcher(self.engine, queue, ChaincodeCA.generate(), self.config, task_group=group)

    async def kill(self, container: str) -> None:
        """SIGKILL through the engine."""
        await containers.kill(self.engine, container)


@pytest.fixture(params=["memory", "containers"])
async def bed(request: pytest.FixtureRequest, made: Made) -> AsyncIterator[Bed]:
    """Each kind of backend; the engine's is given the stand-in image for every ccid."""
    if request.param == "memory":
        yield MemoryBed()
        return
    engine: Engine = request.getfixturevalue("engine")
    config = RuntimeConfig(
        network_id="sup",
        peer_id=made.prefix,
        host_config=HostConfig(network_mode="none"),
        instance=made.prefix,
    )
    bed = EngineBed(engine, made, config)
    async with anyio.create_task_group() as group:
        probe = bed.backend(group)
        for ccid in CCIDS:
            # The daemon's own build of each: labelled, so gc may collect it.
            container, image = probe.names(ccid)
            made.containers.append(container)
            made.images.append(image)
            context = chaincode_context(CHAINCODE)
            await images.build(engine, context, image, labels=config.labels(ccid))
        group.cancel_scope.cancel()
    yield bed


@contextlib.asynccontextmanager
async def daemon(bed: Bed) -> AsyncIterator[tuple[Supervisor, Recovered]]:
    """A supervisor started on a new backend of ``bed`` (recovery, exits watched)."""
    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            supervisor = Supervisor(bed.backend(group), Registry())
            recovered = await group.start(supervisor.start)
            yield supervisor, recovered
            group.cancel_scope.cancel()


def request(ccid: str) -> LaunchRequest:
    """A launch of ``ccid`` with TLS off."""
    return LaunchRequest(
        ccid=ccid, cc_type="golang", peer_address="peer0:7052", mspid="Org1MSP", tls_enabled=False
    )


async def settled(supervisor: Supervisor, ccid: str, state: State) -> None:
    """Until the record of ``ccid`` is in ``state`` (an exit comes through the stream)."""
    while (cc := supervisor.get(ccid)).state is not state:
        await cc.changed.wait()


async def test_an_exit_underneath_is_recorded_and_waited_for(bed: Bed) -> None:
    """Launch: running with its container; killed underneath: exited 137, ``wait`` says 137."""
    async with daemon(bed) as (supervisor, recovered):
        assert recovered.adopted == recovered.exited == []
        cc, launched = await supervisor.launch(request(CCIDS[0]))
        assert cc.state is State.RUNNING
        assert cc.container_id == launched.container_id
        async with anyio.create_task_group() as group:
            codes: list[int] = []

            async def wait() -> None:
                codes.append(await supervisor.wait(CCIDS[0]))

            group.start_soon(wait)
            await bed.kill(cc.container)
            await settled(supervisor, CCIDS[0], State.EXITED)
        assert codes == [137]
        assert supervisor.get(CCIDS[0]).exit_code == 137


async def test_a_stop_removes_and_the_next_daemon_takes_back_what_is_left(bed: Bed) -> None:
    """Stop: stopped and removed. A restart adopts the running one, reports the exited one."""
    async with daemon(bed) as (supervisor, _):
        first, _ = await supervisor.launch(request(CCIDS[0]))
        second, _ = await supervisor.launch(request(CCIDS[1]))
        await bed.kill(second.container)
        await settled(supervisor, CCIDS[1], State.EXITED)
    async with daemon(bed) as (supervisor, recovered):
        assert recovered.adopted == [CCIDS[0]]
        assert recovered.exited == [CCIDS[1]]
        adopted = supervisor.get(CCIDS[0])
        assert (adopted.state, adopted.container_id) == (State.RUNNING, first.container_id)
        assert supervisor.get(CCIDS[1]).exit_code == 137
        stopped = await supervisor.stop(CCIDS[0], grace=0)
        assert (stopped.state, stopped.removed) == (State.STOPPED, True)
        assert await supervisor.wait(CCIDS[0]) in {0, 137}  # the sleep is killed on the engine


async def test_gc_takes_the_exited_container_and_its_image_not_a_running_ones(bed: Bed) -> None:
    """A collection (dry run, then for real): the exited chaincode's container and image only."""
    async with daemon(bed) as (supervisor, _):
        running, _ = await supervisor.launch(request(CCIDS[0]))
        exited, _ = await supervisor.launch(request(CCIDS[1]))
        await bed.kill(exited.container)
        await settled(supervisor, CCIDS[1], State.EXITED)
        dry = await collect(supervisor, dry_run=True)
        assert dry.containers == [exited.container]
        assert [tag.removesuffix(":latest") for tag in dry.images] == [exited.image]
        done = await collect(supervisor)
        assert (done.containers, done.images) == (dry.containers, dry.images)
        assert supervisor.registry.get(CCIDS[1]) is None
        assert await collect(supervisor, dry_run=True) == type(dry)(dry_run=True)
        assert supervisor.get(CCIDS[0]).container_id == running.container_id
