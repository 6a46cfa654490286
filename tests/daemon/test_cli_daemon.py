"""The ``ccdaemon`` command line as a subprocess against a real ``ccdaemon serve`` process."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import aiodocker
import anyio
import pytest

from ccdaemon.engine import NoSuchImage, containers, images
from tests.builder.conftest import go_package, package_id
from tests.daemon.conftest import stub_images
from tests.daemon.process import Spawner, daemons, instance_containers, run_cli

if TYPE_CHECKING:
    import subprocess
    from collections.abc import AsyncIterator
    from pathlib import Path

    from ccdaemon.engine import Engine
    from tests.daemon.process import DaemonProcess

GOENV = "localhost/ccdaemon/goenv:1.24"
BASEOS = "localhost/ccdaemon/baseos:1"


@pytest.fixture
async def spawner(engine_socket: str, sockdir: Path, engine: Engine) -> AsyncIterator[Spawner]:
    """Daemon processes of one instance; killed and cleaned up after the test."""
    async with daemons(engine_socket, sockdir, engine) as spawned:
        yield spawned


@pytest.fixture
async def daemon(spawner: Spawner) -> DaemonProcess:
    """A healthy ``ccdaemon serve`` process."""
    return await spawner.start_healthy()


async def cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``ccdaemon --socket <the daemon's> ARGS...``."""
    return await run_cli("--socket", str(daemon.socket), *args)


def ccid(name: str) -> str:
    """A Fabric 2.x package id."""
    return f"{name}_1.0:" + hashlib.sha256(name.encode()).hexdigest()


async def test_health_names_the_engine(daemon: DaemonProcess, engine: Engine) -> None:
    """``health`` exits 0 naming the engine's kind and version; ``--json`` is the API's answer."""
    version = await engine.version()
    done = await cli(daemon, "health")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("status      ok")
    assert f"engine      {version.kind} {version.version}" in done.stdout
    done = await cli(daemon, "health", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["status"], report["engine"]["kind"]) == ("ok", version.kind)


async def test_launch_ps_logs_stop_wait_gc(
    daemon: DaemonProcess, spawner: Spawner, engine: Engine, docker: aiodocker.Docker
) -> None:
    """A chaincode's whole life through the CLI, each step checked against the engine."""
    first, second = ccid("clione"), ccid("clitwo")
    await stub_images(engine, daemon.api, [first, second])
    container = daemon.names(first)[0]

    done = await cli(
        daemon, "launch", first, "--type", "golang", "--peer-address", "peer0:7052",
        "--mspid", "Org1MSP",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"launched   {first}" in done.stdout
    assert f"container  {container} (" in done.stdout
    assert "state      running" in done.stdout
    assert (await docker.containers.get(container))["State"]["Running"]

    done = await cli(daemon, "ps")
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split() == ["CCID", "CONTAINER", "STATE", "EXIT", "STARTED"]
    assert row.split()[:4] == [first, container, "running", "-"]
    done = await cli(daemon, "ps", "--json")
    assert [cc["ccid"] for cc in json.loads(done.stdout)] == [first]

    done = await cli(daemon, "logs", first)
    assert done.returncode == 0, done.stderr
    assert "chaincode started: -peer.address=peer0:7052" in done.stdout.splitlines()
    assert "to stderr" in done.stdout.splitlines()

    done = await cli(daemon, "stop", first, "--timeout", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"stopped {first}: {container} stopped\n"
    assert await instance_containers(docker, spawner.instance) == {}

    done = await cli(
        daemon, "launch", second, "--type", "golang", "--peer-address", "peer0:7052",
        "--mspid", "Org1MSP",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    other = daemon.names(second)[0]
    waited: list[subprocess.CompletedProcess[str]] = []

    async def wait() -> None:
        waited.append(await cli(daemon, "wait", second))

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.sleep(1)  # the wait is at the daemon by now
        await (await docker.containers.get(other)).kill()
    assert waited[0].returncode == 0, waited[0].stderr
    assert waited[0].stdout == "137\n"

    done = await cli(daemon, "gc", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"would remove container {other}" in done.stdout.splitlines()
    assert await instance_containers(docker, spawner.instance) == {second: "exited"}
    done = await cli(daemon, "gc")
    assert done.returncode == 0, done.stderr
    assert f"removed container {other}" in done.stdout.splitlines()
    assert await instance_containers(docker, spawner.instance) == {}
    with pytest.raises(aiodocker.DockerError):
        await docker.containers.get(other)


async def test_refusal_and_unreachable_exit_codes(daemon: DaemonProcess, sockdir: Path) -> None:
    """A refused launch exits 1 with the code and field; no daemon at the socket exits 3."""
    done = await cli(
        daemon, "launch", "not a ccid", "--type", "golang", "--peer-address", "peer0:7052",
        "--mspid", "Org1MSP",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("ccdaemon: invalid_request: ccid")
    assert done.stdout == ""

    absent = sockdir / "nobody.sock"
    done = await run_cli("--socket", str(absent), "health")
    assert done.returncode == 3
    assert str(absent) in done.stderr


async def test_launch_without_mspid_takes_the_daemons(
    daemon: DaemonProcess, engine: Engine
) -> None:
    """``launch`` without ``--mspid`` takes the daemon's runtime.mspid (peer.localMspId)."""
    one = ccid("nomsp")
    await stub_images(engine, daemon.api, [one])
    done = await cli(daemon, "launch", one, "--type", "golang", "--peer-address", "peer0:7052")
    assert done.returncode == 0, done.stderr
    env = (await containers.inspect(engine, daemon.names(one)[0]))["Config"]["Env"]
    assert "CORE_PEER_LOCALMSPID=Org1MSP" in env


async def test_build_shows_progress_then_the_image_and_is_idempotent(
    daemon: DaemonProcess, spawner: Spawner, engine: Engine
) -> None:
    """``build`` streams the build's lines to stderr and names the image; again: already there."""
    for needed in (GOENV, BASEOS):
        try:
            await images.inspect(engine, needed)
        except NoSuchImage:
            pytest.skip(f"{needed} is absent (scripts/images build)")
    package = go_package("tiny_1.0")
    one = package_id(package)
    path = spawner.directory / "tiny.tar.gz"
    path.write_bytes(package)
    image = daemon.names(one)[1]
    spawner.tagged.append(image)  # removed by name, should it lack the instance label

    done = await cli(daemon, "build", one, "--package", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip(), "no build progress on stderr"
    assert done.stdout.startswith(f"image {image}: built (")
    await images.inspect(engine, image)

    done = await cli(daemon, "build", one, "--package", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"image {image}: already present (")
