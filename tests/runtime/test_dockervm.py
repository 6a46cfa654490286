"""Fabric's DockerVM steps against a real engine: what start leaves, and what failures leave."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from ccdaemon.engine import Engine, EngineError, archive, containers, images, streams
from ccdaemon.runtime import dockervm
from ccdaemon.runtime.dockervm import LaunchSpec
from ccdaemon.runtime.errors import StartupTimeout
from tests.conftest import BASE_IMAGE, TEST_LABEL, Made, files_in, no_build, sleeper

if TYPE_CHECKING:
    import aiodocker

FILES = {
    "/etc/hyperledger/fabric/client.crt": b"Y2VydA==",
    "/etc/hyperledger/fabric/peer.crt": b"-----BEGIN CERTIFICATE-----\n",
}


def spec_for(made: Made, **changes: object) -> LaunchSpec:
    fields: dict[str, object] = {
        "container": made.container("cc"),
        "image": BASE_IMAGE,
        "args": ["/bin/sh", "-c", "echo started; exec sleep 300"],
        "env": ["CORE_CHAINCODE_ID_NAME=mycc:1.0", "CORE_PEER_TLS_ENABLED=true"],
        "files": FILES,
        "host_config": {"NetworkMode": "none"},
        "labels": {TEST_LABEL: "1", "ccdaemon.managed": "true", "ccdaemon.ccid": "mycc:1.0"},
    }
    fields.update(changes)
    return LaunchSpec(**fields)  # type: ignore[arg-type]


async def test_start_runs_the_container_as_specified(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """The started container has the spec's name, image, command, env, labels and files."""
    spec = spec_for(made)
    container_id = await dockervm.start(engine, spec, build=no_build)
    seen = await docker.containers.get(spec.container)
    assert seen["Id"] == container_id
    assert seen["State"]["Running"]
    assert seen["Config"]["Image"] == BASE_IMAGE
    assert seen["Config"]["Cmd"] == list(spec.args)
    assert set(spec.env) <= set(seen["Config"]["Env"])
    assert spec.labels.items() <= seen["Config"]["Labels"].items()
    assert seen["HostConfig"]["NetworkMode"] == "none"
    assert await files_in(engine, spec.container) == FILES


async def test_start_replaces_a_leftover_container(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A running container of the same name (a peer restart's leftover) is replaced."""
    spec = spec_for(made)
    old = await containers.create(engine, spec.container, sleeper())
    await containers.start(engine, spec.container)
    new = await dockervm.start(engine, spec, build=no_build)
    assert new != old
    assert (await docker.containers.get(spec.container))["Id"] == new


@pytest.mark.all_engines
async def test_a_name_wrongly_believed_free_is_cleared_all_the_same(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A taken name believed free is cleared when create reports it; same end state.

    With name_free the clearing remove is skipped, so the container of that name is
    removed only after create finds it.
    """
    spec = spec_for(made)
    old = await containers.create(engine, spec.container, sleeper())
    await containers.start(engine, spec.container)
    phases: dict[str, float] = {}
    new = await dockervm.start(engine, spec, build=no_build, name_free=True, phases=phases)
    assert new != old
    seen = await docker.containers.get(spec.container)
    assert (seen["Id"], seen["State"]["Running"]) == (new, True)
    assert "remove" in phases  # the remove happened, after create found the name taken


async def test_a_free_name_costs_no_remove(engine: Engine, made: Made) -> None:
    """With name_free and the name really free, no remove is sent at all."""
    phases: dict[str, float] = {}
    await dockervm.start(engine, spec_for(made), build=no_build, name_free=True, phases=phases)
    assert set(phases) == {"create", "upload", "start"}


async def test_missing_image_is_built_once_then_created(engine: Engine, made: Made) -> None:
    """When create finds no image, build runs once and create is tried again."""
    spec = spec_for(made, image=made.image("cc"))
    built: list[str] = []

    async def build() -> None:
        built.append(spec.image)
        context = archive.tar({"Dockerfile": f"FROM {BASE_IMAGE}\nLABEL built=1\n".encode()})
        await images.build(engine, context, spec.image)

    await dockervm.start(engine, spec, build=build)
    assert built == [spec.image]
    assert (await containers.inspect(engine, spec.container))["State"]["Running"]


async def test_failed_start_leaves_no_container(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A start the engine refuses (no such executable) raises and removes what was made."""
    spec = spec_for(made, args=["/no/such/chaincode"])
    with pytest.raises(EngineError):
        await dockervm.start(engine, spec, build=no_build)
    assert await docker.containers.list(all=True, filters={"name": [spec.container]}) == []


async def test_startup_timeout_covers_the_build_and_leaves_nothing(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A build that outlasts the startup timeout fails the launch with StartupTimeout."""
    spec = spec_for(made, image=made.image("slow"))

    async def slow_build() -> None:
        await anyio.sleep(60)

    with pytest.raises(StartupTimeout, match=spec.container):
        await dockervm.start(engine, spec, build=slow_build, startup_timeout=5)
    assert await docker.containers.list(all=True, filters={"name": [spec.container]}) == []


async def test_output_is_relayed_line_by_line_from_the_first(engine: Engine, made: Made) -> None:
    """Attached before start, every line the chaincode writes reaches the output callback."""
    spec = spec_for(made, args=["/bin/sh", "-c", "echo one; echo two >&2; echo three"])
    lines: list[streams.Line] = []
    async with anyio.create_task_group() as group:
        await dockervm.start(engine, spec, build=no_build, output=lines.append, task_group=group)
    # stdout and stderr are separate pipes: order holds within each stream, not across.
    out = [line.text for line in lines if line.stream == streams.StdStream.STDOUT]
    err = [line.text for line in lines if line.stream == streams.StdStream.STDERR]
    assert (out, err) == (["one", "three"], ["two"])
    assert await dockervm.wait(engine, spec.container) == 0


async def test_stop_removes_and_tolerates_what_is_already_gone(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """Stop kills and removes a running container; stopping it again is no error."""
    spec = spec_for(made)
    await dockervm.start(engine, spec, build=no_build)
    await dockervm.stop(engine, spec.container)
    assert await docker.containers.list(all=True, filters={"name": [spec.container]}) == []
    await dockervm.stop(engine, spec.container)


async def test_stop_with_dontremove_keeps_the_exited_container(engine: Engine, made: Made) -> None:
    """With dontremove the stopped container stays for inspection; wait returns its exit code."""
    spec = spec_for(made)
    await dockervm.start(engine, spec, build=no_build)
    await dockervm.stop(engine, spec.container, dontremove=True)
    assert await dockervm.wait(engine, spec.container) == 137
