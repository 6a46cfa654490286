"""The launch queue against a real engine: per-name order, bounded concurrency, shared builds."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from ccdaemon.engine import (
    BuildFailed,
    Engine,
    NoSuchContainer,
    archive,
    containers,
    images,
    system,
)
from ccdaemon.launchqueue import LaunchQueue, Slot
from ccdaemon.runtime import dockervm
from ccdaemon.runtime.dockervm import LaunchSpec
from tests.conftest import BASE_IMAGE, TEST_LABEL, Made, no_build

if TYPE_CHECKING:
    import aiodocker

HANG_GUARD = 300  # seconds; only so that a deadlock fails instead of hanging the suite


def spec(name: str, image: str = BASE_IMAGE) -> LaunchSpec:
    return LaunchSpec(
        container=name,
        image=image,
        args=["/bin/sleep", "300"],
        env=["CORE_CHAINCODE_ID_NAME=q:1"],
        files={"/etc/hyperledger/fabric/peer.crt": b"pem"},
        host_config={"NetworkMode": "none"},
        labels={TEST_LABEL: "1"},
    )


async def test_work_for_one_name_reaches_the_engine_one_at_a_time_in_order(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """20 launches and stops of one name run in arrival order, never overlapping on the engine.

    The engine's own events for that name show each launch's create and start and each
    stop's destroy strictly alternating; the end state is what the last request says.
    """
    name = made.container("one")
    kinds = ["launch", "stop", "launch", "launch", "stop"] * 4
    arrived: list[int] = []
    ran: list[int] = []
    since = f"{time.time() - 1:.3f}"

    async def request(queue: LaunchQueue, index: int) -> None:
        async def work(_: Slot) -> None:
            ran.append(index)
            if kinds[index] == "launch":
                await dockervm.start(engine, spec(name), build=no_build)
            else:
                await dockervm.stop(engine, name)

        arrived.append(index)
        await queue.run(name, work)

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            queue = LaunchQueue(group, engine_limit=8)
            for index in range(len(kinds)):
                group.start_soon(request, queue, index)
                await anyio.lowlevel.checkpoint()  # let it arrive before the next one
    assert ran == arrived
    await anyio.sleep(1.1)
    filters = {"type": ["container"], "container": [name]}
    async with system.events(
        engine, filters=filters, since=since, until=f"{time.time():.3f}"
    ) as events:
        actions = [
            e["Action"] async for e in events if e["Action"] in {"create", "start", "destroy"}
        ]
    expected: list[str] = []
    alive = False
    for kind in kinds:
        if kind == "launch":
            expected += (["destroy"] if alive else []) + ["create", "start"]
            alive = True
        elif alive:
            expected.append("destroy")
            alive = False
    assert actions == expected
    assert await docker.containers.list(filters={"name": [name]}) == []  # the last was a stop


async def test_work_for_different_names_is_bounded_by_engine_limit(
    engine: Engine, made: Made
) -> None:
    """Launches of many names run concurrently, never more than engine_limit at once."""
    names = [made.container(f"b{i}") for i in range(16)]
    in_flight = 0
    peak = 0

    async def launch(queue: LaunchQueue, name: str) -> None:
        async def work(_: Slot) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await dockervm.start(engine, spec(name), build=no_build)
            finally:
                in_flight -= 1

        await queue.run(name, work)

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            queue = LaunchQueue(group, engine_limit=3)
            for name in names:
                group.start_soon(launch, queue, name)
    assert peak == 3
    running = await containers.list_(engine, labels={TEST_LABEL: "1"}, all_=False)
    assert {n for c in running for n in c["Names"]} >= {f"/{name}" for name in names}


async def test_launches_needing_one_missing_image_share_one_build(
    engine: Engine, made: Made
) -> None:
    """Six launches that all miss the same image wait for a single build, then all run."""
    image = made.image("shared")
    builds = 0

    async def build() -> None:
        nonlocal builds
        builds += 1
        context = archive.tar({"Dockerfile": f"FROM {BASE_IMAGE}\nLABEL shared=1\n".encode()})
        await images.build(engine, context, image)

    async def launch(queue: LaunchQueue, name: str) -> None:
        async def work(slot: Slot) -> None:
            await dockervm.start(engine, spec(name, image), build=lambda: slot.build(image, build))

        await queue.run(name, work)

    names = [made.container(f"s{i}") for i in range(6)]
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            queue = LaunchQueue(group, engine_limit=2, build_limit=1)
            for name in names:
                group.start_soon(launch, queue, name)
    assert builds == 1
    for name in names:
        assert (await containers.inspect(engine, name))["State"]["Running"]


async def test_failed_shared_build_fails_every_waiter_and_leaves_nothing(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """When the one build fails, every launch waiting on it gets BuildFailed; nothing stays."""
    image = made.image("broken")
    failures: list[BaseException] = []

    async def build() -> None:
        context = archive.tar({"Dockerfile": f"FROM {BASE_IMAGE}\nRUN exit 9\n".encode()})
        await images.build(engine, context, image)

    async def launch(queue: LaunchQueue, name: str) -> None:
        async def work(slot: Slot) -> None:
            await dockervm.start(engine, spec(name, image), build=lambda: slot.build(image, build))

        try:
            await queue.run(name, work)
        except BuildFailed as exc:
            failures.append(exc)

    names = [made.container(f"f{i}") for i in range(4)]
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            queue = LaunchQueue(group)
            for name in names:
                group.start_soon(launch, queue, name)
    assert len(failures) == 4
    for name in names:
        assert await docker.containers.list(all=True, filters={"name": [name]}) == []


async def test_cancelled_requester_leaves_the_shared_build_running(
    engine: Engine, made: Made
) -> None:
    """Cancelling the request that started a build does not cancel it for the others."""
    image = made.image("kept")
    started = anyio.Event()
    builds = 0

    async def build() -> None:
        nonlocal builds
        builds += 1
        started.set()
        await anyio.sleep(0.5)
        context = archive.tar({"Dockerfile": f"FROM {BASE_IMAGE}\nLABEL kept=1\n".encode()})
        await images.build(engine, context, image)

    first, second = made.container("first"), made.container("second")

    async def launch(queue: LaunchQueue, name: str) -> None:
        async def work(slot: Slot) -> None:
            await dockervm.start(engine, spec(name, image), build=lambda: slot.build(image, build))

        await queue.run(name, work)

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            queue = LaunchQueue(group)
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(launch, queue, first)
                await started.wait()
                group.start_soon(launch, queue, second)
                doomed.cancel_scope.cancel()
    assert builds == 1
    assert (await containers.inspect(engine, second))["State"]["Running"]
    with pytest.raises(NoSuchContainer):
        await containers.inspect(engine, first)
