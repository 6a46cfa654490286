"""Fabric's two-stage build of a real Go chaincode, and the chaincode it makes, end to end."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio
import orjson
import pytest

from ccdaemon.engine import BuildFailed, Engine, NoSuchImage, archive, containers, images
from ccdaemon.runtime import dockervm, gotoolchain
from ccdaemon.runtime.builder import BuildRequest, build_image
from ccdaemon.runtime.dockervm import LaunchSpec
from ccdaemon.runtime.errors import GoTooOld
from ccdaemon.runtime.platforms import platform_for
from tests.conftest import ROOT, TEST_LABEL, Made, no_build

if TYPE_CHECKING:
    import aiodocker

HANG_GUARD = 600

GO_MOD = b"module example.com/reporter\n\ngo 1.19\n"
# A stand-in chaincode: it dials the peer address it was given and reports what it sees.
MAIN_GO = b"""package main

import (
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
)

func main() {
	addr := flag.String("peer.address", "", "the peer to dial")
	flag.Parse()
	files := map[string]string{}
	paths, _ := filepath.Glob("/etc/hyperledger/fabric/*")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			files[p] = string(b)
		}
	}
	conn, err := net.Dial("tcp", *addr)
	if err != nil {
		os.Exit(3)
	}
	defer conn.Close()
	report := map[string]any{"args": os.Args, "env": os.Environ(), "files": files}
	json.NewEncoder(conn).Encode(report)
}
"""


@pytest.fixture
async def fabric_images(engine_socket: str) -> None:
    """The Go builder and runtime base images exist (scripts/images, idempotent)."""
    await anyio.run_process([str(ROOT / "scripts" / "images"), "build", "--socket", engine_socket])


def request_for(made: Made, main_go: bytes = MAIN_GO) -> BuildRequest:
    image = made.image("cc")
    return BuildRequest(
        ccid="reporter_1.0:" + "ab" * 32,
        image=image,
        platform=platform_for("golang"),
        code_package=archive.targz({"src/go.mod": GO_MOD, "src/main.go": main_go}),
    )


@pytest.mark.usefixtures("fabric_images")
async def test_go_chaincode_builds_launches_and_reports_to_the_peer(
    engine: Engine, made: Made
) -> None:
    """Built from source and launched, the chaincode dials the peer and reports what it got.

    Its args, env and TLS files, as seen inside the running container, are what was sent.
    """
    request = request_for(made)
    progress: list[str] = []
    with anyio.fail_after(HANG_GUARD):
        await build_image(engine, request, progress=progress.append)
    assert any("example.com/reporter" in line for line in progress)  # go build -v's output
    labels = (await images.inspect(engine, request.image))["Config"]["Labels"]
    assert labels["ccdaemon.ccid"] == request.ccid
    assert labels["org.hyperledger.fabric.chaincode.type"] == "GOLANG"

    # The peer's side: a TCP listener at the address the chaincode is told to dial.
    reported: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reported.set_result(await reader.read())
        writer.close()

    server = await asyncio.start_server(peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    files = {
        "/etc/hyperledger/fabric/client.crt": b"Y2VydA==",
        "/etc/hyperledger/fabric/peer.crt": b"-----BEGIN CERTIFICATE-----\nroot\n",
    }
    spec = LaunchSpec(
        container=made.container("reporter"),
        image=request.image,
        args=request.platform.launch_args(f"127.0.0.1:{port}"),
        env=["CORE_CHAINCODE_ID_NAME=" + request.ccid, "CORE_PEER_TLS_ENABLED=true"],
        files=files,
        host_config={"NetworkMode": "host"},
        labels={TEST_LABEL: "1"},
    )
    with anyio.fail_after(HANG_GUARD):
        async with server:
            await dockervm.start(engine, spec, build=no_build)
            report = orjson.loads(await reported)
    assert report["args"] == ["chaincode", f"-peer.address=127.0.0.1:{port}"]
    assert set(spec.env) <= set(report["env"])
    assert report["files"] == {path: data.decode() for path, data in files.items()}
    assert await dockervm.wait(engine, spec.container) == 0


@pytest.mark.usefixtures("fabric_images")
async def test_go_syntax_error_fails_with_the_compilers_words_and_leaves_nothing(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """A syntax error is BuildFailed carrying the compiler's message; no container, no image."""
    request = request_for(made, MAIN_GO.replace(b"func main() {", b"func main() {{{ oops"))
    before = {c["Id"] for c in await docker.containers.list(all=True)}
    with anyio.fail_after(HANG_GUARD), pytest.raises(BuildFailed) as caught:
        await build_image(engine, request)
    assert "syntax error" in caught.value.log
    assert "main.go" in caught.value.log
    assert {c["Id"] for c in await docker.containers.list(all=True)} <= before
    with pytest.raises(NoSuchImage):
        await images.inspect(engine, request.image)
    leftovers = await containers.list_(engine, labels={"ccdaemon.ccid": request.ccid})
    assert leftovers == []


@pytest.mark.usefixtures("fabric_images")
async def test_a_module_needing_a_newer_go_is_refused_before_any_container(
    engine: Engine, docker: aiodocker.Docker, made: Made
) -> None:
    """go.mod's ``go 1.99`` against the builder's Go: GoTooOld names both and the setting.

    Refused before the builder container is made: the engine's container list is as
    before, and no image is left.
    """
    request = request_for(made)
    builder = request.platform.builder_image
    has = gotoolchain.image_go((await images.inspect(engine, builder))["Config"])
    assert has is not None, f"{builder} does not say its Go version (GOLANG_VERSION)"
    code = archive.targz(
        {"src/go.mod": GO_MOD.replace(b"go 1.19", b"go 1.99"), "src/main.go": MAIN_GO}
    )
    request = BuildRequest(request.ccid, request.image, request.platform, code)
    before = {c["Id"] for c in await docker.containers.list(all=True)}
    with anyio.fail_after(HANG_GUARD), pytest.raises(GoTooOld) as caught:
        await build_image(engine, request)
    message = str(caught.value)
    assert "Go 1.99" in message
    assert f"{builder} has Go {has}" in message
    assert gotoolchain.SETTING in message
    assert {c["Id"] for c in await docker.containers.list(all=True)} == before
    with pytest.raises(NoSuchImage):
        await images.inspect(engine, request.image)
