"""ContainerRuntime.Start and Stop end to end: 100 chaincodes at once, and bad requests."""

from __future__ import annotations

import base64
import contextlib
from typing import TYPE_CHECKING

import anyio
import pytest

from ccdaemon.engine import BuildFailed, Engine, NoSuchImage, archive, images
from ccdaemon.launchqueue import LaunchQueue
from ccdaemon.runtime.certs import ChaincodeCA
from ccdaemon.runtime.errors import InvalidRequest, UnknownChaincodeType
from ccdaemon.runtime.hostconfig import HostConfig
from ccdaemon.runtime.launcher import Launcher, LaunchRequest, RuntimeConfig
from ccdaemon.runtime.package import read_code_package
from tests.conftest import ROOT, Made, chaincode_context, files_in

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import aiodocker

HANG_GUARD = 600
CONFIG = RuntimeConfig(
    network_id="dev", peer_id="peer0.org1", host_config=HostConfig(network_mode="none")
)
# A stand-in Go chaincode binary: /usr/local/bin/chaincode, as Fabric's image has it.
CHAINCODE = b"#!/bin/sh\nexec sleep 3600\n"


@contextlib.asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[Launcher]:
    """A launcher on the engine under test, with a fresh chaincode CA and its own queue.

    Not a fixture: its task group must be entered and left in the test's own task.
    """
    async with anyio.create_task_group() as group:
        yield Launcher(engine, LaunchQueue(group, engine_limit=8), ChaincodeCA.generate(), CONFIG)


async def test_hundred_chaincodes_launch_at_once_and_stop_without_trace(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """100 distinct chaincodes launched at once all run as Fabric would run them.

    Names, command, env and TLS files are read back from each container; stopping them
    leaves nothing.
    """
    async with running(engine) as launcher:
        await launch_hundred(engine, docker, made, launcher)


async def launch_hundred(
    engine: Engine, docker: aiodocker.Docker, made: Made, launcher: Launcher
) -> None:
    stub = made.image("chaincode")
    await images.build(engine, chaincode_context(CHAINCODE), stub)
    ccids = [f"cc{i}_1.0:{i:064x}" for i in range(100)]
    for ccid in ccids:
        _, image = launcher.names(ccid)
        made.images.append(image)
        await images.tag(engine, stub, image)
    requests = [
        LaunchRequest(ccid=c, cc_type="golang", peer_address="peer0:7052", mspid="Org1MSP")
        for c in ccids
    ]
    launched = {}
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:

            async def launch(request: LaunchRequest) -> None:
                launched[request.ccid] = await launcher.launch(request)

            for request in requests:
                group.start_soon(launch, request)
    assert len(launched) == 100
    for ccid, result in launched.items():
        container, image = launcher.names(ccid)
        made.containers.append(container)
        seen = await docker.containers.get(container)
        assert seen["State"]["Running"], ccid
        assert (result.container, result.image, seen["Config"]["Image"]) == (
            container,
            image,
            image,
        )
        assert seen["Config"]["Cmd"] == ["chaincode", "-peer.address=peer0:7052"]
        env = seen["Config"]["Env"]
        assert f"CORE_CHAINCODE_ID_NAME={ccid}" in env
        assert "CORE_PEER_LOCALMSPID=Org1MSP" in env
        assert seen["Config"]["Labels"]["ccdaemon.ccid"] == ccid
        files = {
            path.rsplit("/", 1)[1]: data
            for path, data in (await files_in(engine, container)).items()
        }
        assert sorted(files) == [
            "client.crt",
            "client.key",
            "client_pem.crt",
            "client_pem.key",
            "peer.crt",
        ]
        assert base64.b64decode(files["client.crt"]) == files["client_pem.crt"]
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            for ccid in ccids:
                group.start_soon(launcher.stop, ccid)
    left = await docker.containers.list(all=True, filters={"label": ["ccdaemon.managed=true"]})
    assert [c for c in left if c["Labels"].get("ccdaemon.ccid") in set(ccids)] == []


@pytest.mark.parametrize(
    ("request_", "error", "field"),
    [
        (LaunchRequest("../../x:1", "golang", "peer0:7052", "M"), InvalidRequest, "ccid"),
        (LaunchRequest("cc:1", "cobol", "peer0:7052", "M"), UnknownChaincodeType, "type"),
        (
            LaunchRequest("cc:1", "golang", "peer0:7052; rm -rf /", "M"),
            InvalidRequest,
            "peer.address",
        ),
        (LaunchRequest("cc:1", "golang", "peer0:7052", "Org 1"), InvalidRequest, "mspid"),
    ],
)
async def test_bad_requests_are_refused_before_the_engine_sees_anything(
    engine: Engine,
    docker: aiodocker.Docker,
    request_: LaunchRequest,
    error: type[InvalidRequest],
    field: str,
) -> None:
    """A bad id, type, address or MSP id is refused by field; no container is made."""
    before = await docker.containers.list(all=True)
    async with running(engine) as launcher:
        with pytest.raises(error) as caught:
            await launcher.launch(request_)
    assert caught.value.field == field
    assert len(await docker.containers.list(all=True)) == len(before)


async def test_missing_image_without_package_says_so_and_leaves_nothing(
    engine: Engine, docker: aiodocker.Docker
) -> None:
    """With no image and no package to build it from, the launch fails naming the image."""
    request = LaunchRequest("nopkg_1:" + "0" * 64, "golang", "peer0:7052", "Org1MSP")
    async with running(engine) as launcher:
        container, image = launcher.names(request.ccid)
        with pytest.raises(NoSuchImage, match="no code package"):
            await launcher.launch(request)
    assert await docker.containers.list(all=True, filters={"name": [container]}) == []
    assert image.startswith("dev-peer0.org1-nopkg_1-")


async def test_broken_package_fails_the_launch_with_the_build_log(
    engine: Engine, docker: aiodocker.Docker, engine_socket: str, made: Made
) -> None:
    """A Go package that does not compile fails the launch as BuildFailed; nothing stays."""
    await anyio.run_process([str(ROOT / "scripts" / "images"), "build", "--socket", engine_socket])
    code = archive.targz(
        {
            "src/go.mod": b"module example.com/bad\n\ngo 1.19\n",
            "src/main.go": b"package main\nfunc main() {{\n",
        }
    )
    package = read_code_package(
        code,
        cc_type="golang",
        path="",
        label="bad",
        max_size=1 << 20,
        max_entries=100,
        max_expanded=1 << 20,
    )
    request = LaunchRequest("bad_1:" + "1" * 64, "golang", "peer0:7052", "Org1MSP", package=package)
    async with running(engine) as launcher:
        made.images.append(launcher.names(request.ccid)[1])
        with anyio.fail_after(HANG_GUARD), pytest.raises(BuildFailed) as caught:
            await launcher.launch(request)
    assert "main.go" in caught.value.log
    assert (
        await docker.containers.list(all=True, filters={"label": [f"ccdaemon.ccid={request.ccid}"]})
        == []
    )


async def test_attached_output_goes_to_the_chaincode_logger_and_is_kept(
    engine: Engine, made: Made, caplog: pytest.LogCaptureFixture
) -> None:
    """With attachStdout, each line goes to peer.chaincode.<container> and is kept."""
    stub = made.image("talker")
    script = b"#!/bin/sh\necho hello from $CORE_CHAINCODE_ID_NAME\necho oops >&2\n"
    await images.build(engine, chaincode_context(script), stub)
    request = LaunchRequest("talker_1:" + "2" * 64, "golang", "peer0:7052", "Org1MSP")
    config = RuntimeConfig(host_config=HostConfig(network_mode="none"), attach_stdout=True)
    caplog.set_level("INFO", logger="peer.chaincode")
    async with anyio.create_task_group() as group:
        launcher = Launcher(
            engine, LaunchQueue(group), ChaincodeCA.generate(), config, task_group=group
        )
        container, image = launcher.names(request.ccid)
        made.containers.append(container)
        made.images.append(image)
        await images.tag(engine, stub, image)
        await launcher.launch(request)
    # The group ends when the relay does: the chaincode exited and closed its output.
    assert sorted(launcher.output(request.ccid)) == sorted([f"hello from {request.ccid}", "oops"])
    logged = [r.getMessage() for r in caplog.records if r.name == f"peer.chaincode.{container}"]
    assert sorted(logged) == sorted(launcher.output(request.ccid))
