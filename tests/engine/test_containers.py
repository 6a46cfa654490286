"""Conformance of the container calls and their error mapping, on every engine of the bed."""

from __future__ import annotations

import aiodocker
import pytest

from ccdaemon.engine import (
    ContainerAlreadyExists,
    ContainerAlreadyRunning,
    ContainerNotRunning,
    Engine,
    InvalidParameter,
    NoSuchContainer,
    NoSuchImage,
    containers,
)
from tests.conftest import TEST_LABEL, Made, shell, sleeper

pytestmark = pytest.mark.all_engines


async def state_of(docker: aiodocker.Docker, name: str) -> str | None:
    """The container's state as aiodocker sees it, or None when it does not exist."""
    try:
        info = await docker.containers.get(name)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return None
        raise
    return str(info["State"]["Status"])


async def test_create_start_stop_remove_reach_the_engine(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """Each call of the launch sequence changes the engine's state as the call says."""
    name = made.container()
    container_id = await containers.create(engine, name, sleeper())
    assert (await docker.containers.get(name))["Id"] == container_id
    assert await state_of(docker, name) == "created"
    await containers.start(engine, name)
    assert await state_of(docker, name) == "running"
    await containers.stop(engine, name, grace=0)
    assert await state_of(docker, name) == "exited"
    await containers.remove(engine, name, force=True)
    assert await state_of(docker, name) is None


async def test_start_of_running_container_raises_already_running(
    engine: Engine, made: Made
) -> None:
    """Starting a running container raises ContainerAlreadyRunning (the engine's 304)."""
    name = made.container()
    await containers.create(engine, name, sleeper())
    await containers.start(engine, name)
    with pytest.raises(ContainerAlreadyRunning) as caught:
        await containers.start(engine, name)
    assert caught.value.status == 304
    assert name in caught.value.message


async def test_stop_and_kill_of_stopped_container_raise_not_running(
    engine: Engine, made: Made, engine_name: str
) -> None:
    """Stop (304) and kill (409) of a container that is not running raise ContainerNotRunning.

    Podman differs: its stop of a stopped container succeeds, and its kill answers 500
    "container state improper", which the client maps to ContainerNotRunning all the same.
    """
    name = made.container()
    await containers.create(engine, name, sleeper())
    if engine_name.startswith("podman"):
        await containers.stop(engine, name, grace=0)
    else:
        with pytest.raises(ContainerNotRunning) as stopped:
            await containers.stop(engine, name, grace=0)
        assert stopped.value.status == 304
    with pytest.raises(ContainerNotRunning) as killed:
        await containers.kill(engine, name)
    assert killed.value.status in {409, 500}


async def test_calls_on_missing_container_raise_no_such_container(
    engine: Engine, made: Made
) -> None:
    """Start, stop, kill, remove, wait and inspect of a missing container raise NoSuchContainer."""
    name = made.container()
    calls = [
        containers.start(engine, name),
        containers.stop(engine, name, grace=0),
        containers.kill(engine, name),
        containers.remove(engine, name, force=True),
        containers.wait(engine, name),
        containers.inspect(engine, name),
    ]
    for call in calls:
        with pytest.raises(NoSuchContainer) as caught:
            await call
        assert caught.value.status == 404
        assert name in caught.value.message


async def test_create_with_missing_image_raises_no_such_image(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """Create with an image the engine lacks raises NoSuchImage and leaves no container."""
    name = made.container()
    with pytest.raises(NoSuchImage) as caught:
        await containers.create(engine, name, sleeper(Image="localhost/ccdt-no-such-image:1"))
    assert caught.value.status == 404
    assert await state_of(docker, name) is None


async def test_create_of_existing_name_raises_already_exists(engine: Engine, made: Made) -> None:
    """Create with a name already taken raises ContainerAlreadyExists (409)."""
    name = made.container()
    await containers.create(engine, name, sleeper())
    with pytest.raises(ContainerAlreadyExists) as caught:
        await containers.create(engine, name, sleeper())
    assert caught.value.status in {409, 500}  # Podman says 500 "name is already in use"


@pytest.mark.parametrize("bad_name", ["bad name", "-leading-dash", "a/b", "ünïcode"])
async def test_create_with_name_engine_refuses_raises_invalid_parameter(
    engine: Engine, docker: aiodocker.Docker, bad_name: str
) -> None:
    """A container name the engine refuses raises InvalidParameter with the engine's message."""
    with pytest.raises(InvalidParameter) as caught:
        await containers.create(engine, bad_name, sleeper())
    assert caught.value.status in {400, 500}  # Podman: 500 "...: invalid argument"
    assert "name" in caught.value.message
    listed = await docker.containers.list(all=True, filters={"name": [bad_name]})
    assert listed == []


@pytest.mark.parametrize("hostile", ["x?all=1", "%2e%2e", "x#y", "x%2F..%2F..%2Fjson"])
async def test_hostile_name_reaches_the_engine_as_a_name(engine: Engine, hostile: str) -> None:
    """A name holding path or query syntax names a container; it never reaches another route."""
    with pytest.raises(NoSuchContainer):
        await containers.inspect(engine, hostile)


@pytest.mark.parametrize("step", [".", "..", "../images/json", "a/../../json", "/./x"])
async def test_dot_segment_name_is_refused_before_the_engine(engine: Engine, step: str) -> None:
    """A name that is a path step is refused with InvalidParameter; the engine sees no call."""
    with pytest.raises(InvalidParameter, match="cannot name"):
        await containers.inspect(engine, step)


async def test_wait_returns_exit_code(engine: Engine, made: Made) -> None:
    """Wait blocks until the container exits and returns its exit code."""
    name = made.container()
    await containers.create(engine, name, shell("exit 7"))
    await containers.start(engine, name)
    assert await containers.wait(engine, name) == 7


async def test_list_filters_by_label(engine: Engine, made: Made) -> None:
    """Listing by label returns the labelled containers, stopped ones included."""
    tagged, other = made.container("tagged"), made.container("other")
    labels = {TEST_LABEL: "1", "ccdt.group": made.prefix}
    await containers.create(engine, tagged, sleeper(Labels=labels))
    await containers.create(engine, other, sleeper())
    listed = await containers.list_(engine, labels={"ccdt.group": made.prefix})
    assert [c["Names"] for c in listed] == [[f"/{tagged}"]]
    assert await containers.list_(engine, labels={"ccdt.group": "no-such-group"}) == []


async def test_remove_force_removes_running_container(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A forced remove of a running container leaves nothing behind."""
    name = made.container()
    await containers.create(engine, name, sleeper())
    await containers.start(engine, name)
    await containers.remove(engine, name, force=True)
    assert await state_of(docker, name) is None
