"""scripts/images builds the Fabric stand-in images, and they build and run Go chaincode.

No ``all_engines`` marker: like every unmarked test here, these run on the default engine
only (``CCDAEMON_TEST_ENGINE``). The first run builds the images (seconds); later runs
find them and only check.
"""

from __future__ import annotations

import asyncio
import io
import struct
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ccdaemon.engine import Engine, archive, containers, images, streams
from ccdaemon.runtime.platforms import STATIC_LDFLAGS, GolangBuild, platform_for

if TYPE_CHECKING:
    import aiodocker

    from tests.conftest import Made

ROOT = Path(__file__).resolve().parents[2]
GOENV = "localhost/ccdaemon/goenv:1.19"
CCENV = "localhost/ccdaemon/goenv:1.24"  # scripts/images' ccenv, CCDAEMON_GO_VERSION's default
BASEOS = "localhost/ccdaemon/baseos:1"

GO_MOD = b"module example.com/ccstub\n\ngo 1.19\n"
# A chaincode stand-in: prints its arguments and environment and exits. net/http pulls in
# the packages a real (gRPC) chaincode needs, so a stale standard library would show.
MAIN_GO = b"""package main

import (
\t"fmt"
\t"net/http"
\t"os"
)

func main() {
\tfmt.Println("ccstub args:", os.Args[1:], "uid:", os.Getuid(), "status:", http.StatusOK)
\tfor _, kv := range os.Environ() {
\t\tfmt.Println("env:", kv)
\t}
}
"""


async def run_images_build(socket: str) -> tuple[dict[str, str], str]:
    """Run ``scripts/images build`` on the engine; return its IMAGE -> ID lines and stderr."""
    process = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "images"),
        "build",
        "--socket",
        socket,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")
    built = dict(line.split(maxsplit=1) for line in out.decode().splitlines() if line.strip())
    return built, err.decode(errors="replace")


@pytest.fixture
async def built(engine_socket: str) -> dict[str, str]:
    """The stand-in images, present on the engine under test (built if need be)."""
    result, _ = await run_images_build(engine_socket)
    return result


async def run_to_end(engine: Engine, name: str) -> tuple[int, str]:
    """Start a created container, wait for it, and return its exit code and output."""
    await containers.start(engine, name)
    code = await containers.wait(engine, name)
    async with containers.logs(engine, name) as frames:
        text = "\n".join([line.text async for line in streams.lines(frames)])
    return code, text


def interpreter(elf: bytes) -> bytes | None:
    """The PT_INTERP (dynamic loader) an x86-64 ELF executable names, or None (static)."""
    assert elf[:5] == b"\x7fELF\x02", elf[:5]  # ELF, 64-bit
    phoff = struct.unpack_from("<Q", elf, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize
        )
        if p_type == 3:  # PT_INTERP
            return elf[p_offset : p_offset + p_filesz].rstrip(b"\0")
    return None


async def test_build_makes_the_images_and_is_idempotent(
    built: dict[str, str], docker: aiodocker.Docker, engine_socket: str
) -> None:
    """The script prints every image with its id; a second run finds them and keeps them."""
    assert set(built) == {GOENV, CCENV, BASEOS}
    for name, image_id in built.items():
        seen = await docker.images.inspect(name)
        assert seen["Id"] == image_id
        assert seen["Config"]["User"] == "500:500"  # Fabric's chaincode user, as in its images
    again, progress = await run_images_build(engine_socket)
    assert again == built
    assert "building" not in progress


async def test_goenv_compiles_and_runs_hello_world_without_network(
    engine: Engine, made: Made, built: dict[str, str]
) -> None:
    """A Go module uploaded into a goenv container (NetworkMode none) compiles and runs."""
    assert GOENV in built
    name = made.container("goenv")
    script = "cd /chaincode/input/src && go build -o /tmp/hello . && exec /tmp/hello"
    await containers.create(
        engine,
        name,
        {"Image": GOENV, "Cmd": ["/bin/sh", "-c", script], "HostConfig": {"NetworkMode": "none"}},
    )
    hello = b'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from goenv") }\n'
    package = archive.targz(
        {"src/go.mod": b"module example.com/hello\n\ngo 1.19\n", "src/main.go": hello}
    )
    await containers.put_archive(engine, name, "/chaincode/input", package)
    code, output = await run_to_end(engine, name)
    assert code == 0, output
    assert "hello from goenv" in output


async def test_fabric_two_stage_go_build_runs_on_baseos(
    engine: Engine, made: Made, built: dict[str, str]
) -> None:
    """Fabric 2.5's Go build in goenv, then an image FROM baseos with its output, runs."""
    assert {GOENV, BASEOS} <= built.keys()
    builder = made.container("builder")
    # Fabric 2.5's Go build script, with dynamicLink's empty ldflags, which goenv needs (no
    # gcc; with CGO_ENABLED=0 the binary is static anyway).
    golang = platform_for("golang", golang=GolangBuild(dynamic_link=True))
    command = golang.build_command("example.com/ccstub")
    await containers.create(
        engine, builder, {"Image": GOENV, "Cmd": command, "HostConfig": {"NetworkMode": "none"}}
    )
    # Fabric's code package: src/... (and META-INF/...) uploaded to /chaincode/input.
    package = archive.targz({"src/go.mod": GO_MOD, "src/main.go": MAIN_GO})
    await containers.put_archive(engine, builder, "/chaincode/input", package)
    code, output = await run_to_end(engine, builder)
    assert code == 0, output
    assert output.splitlines()[-1] == "Done!"
    binpackage = await containers.get_archive(engine, builder, "/chaincode/output/.")
    with tarfile.open(fileobj=io.BytesIO(binpackage)) as tar:
        # Docker names it ./chaincode, Podman chaincode.
        assert [m.name for m in tar.getmembers() if m.isfile()] in (["./chaincode"], ["chaincode"])

    tag = made.image("cc")
    dockerfile = (
        f"FROM {BASEOS}\nADD binpackage.tar /usr/local/bin\n"
        'LABEL org.hyperledger.fabric.chaincode.type="GOLANG"\n'
    )
    context = archive.targz({"Dockerfile": dockerfile.encode(), "binpackage.tar": binpackage})
    await images.build(engine, context, tag, network_mode="none")

    runner = made.container("cc")
    await containers.create(
        engine,
        runner,
        {
            "Image": tag,
            "Cmd": ["chaincode", "-peer.address=peer0:7052"],
            "Env": ["CORE_CHAINCODE_ID_NAME=ccstub:1"],
            "HostConfig": {"NetworkMode": "none"},
        },
    )
    code, output = await run_to_end(engine, runner)
    assert code == 0, output
    assert "ccstub args: [-peer.address=peer0:7052] uid: 500 status: 200" in output
    assert "env: CORE_CHAINCODE_ID_NAME=ccstub:1" in output


async def test_ccenv_links_a_go_1_22_module_statically_without_network(
    engine: Engine, made: Made, built: dict[str, str]
) -> None:
    """Fabric's default Go build (cgo, gcc, libc.a) of a ``go 1.22`` module, offline.

    Fabric's own script and flags (``-linkmode external -extldflags '-static'``) in ccenv
    as its user 500, NetworkMode none; the binary has no dynamic loader and runs on
    baseos, which has no libc. Go 1.19 (goenv) cannot even read this go.mod.
    """
    assert {CCENV, BASEOS} <= built.keys()
    env = (await images.inspect(engine, CCENV))["Config"]["Env"]
    assert any(item.startswith("GOLANG_VERSION=1.24.") for item in env), env
    golang = platform_for("golang")
    assert golang.ldflags == STATIC_LDFLAGS
    builder = made.container("ccenv")
    await containers.create(
        engine,
        builder,
        {
            "Image": CCENV,
            "Cmd": golang.build_command("example.com/ccstatic"),
            "Env": list(golang.build_env),
            "HostConfig": {"NetworkMode": "none"},
        },
    )
    go_mod = b"module example.com/ccstatic\n\ngo 1.22\n"
    package = archive.targz({"src/go.mod": go_mod, "src/main.go": MAIN_GO})
    await containers.put_archive(engine, builder, "/chaincode/input", package)
    code, output = await run_to_end(engine, builder)
    assert code == 0, output
    assert output.splitlines()[-1] == "Done!"
    binpackage = await containers.get_archive(engine, builder, "/chaincode/output/.")
    with tarfile.open(fileobj=io.BytesIO(binpackage)) as tar:
        member = next(m for m in tar.getmembers() if m.isfile())
        handle = tar.extractfile(member)
        assert handle is not None
        assert interpreter(handle.read()) is None

    tag = made.image("static")
    dockerfile = f"FROM {BASEOS}\nADD binpackage.tar /usr/local/bin\n"
    context = archive.targz({"Dockerfile": dockerfile.encode(), "binpackage.tar": binpackage})
    await images.build(engine, context, tag, network_mode="none")
    runner = made.container("static")
    await containers.create(
        engine,
        runner,
        {"Image": tag, "Cmd": ["chaincode", "-x"], "HostConfig": {"NetworkMode": "none"}},
    )
    code, output = await run_to_end(engine, runner)
    assert code == 0, output
    assert "ccstub args: [-x] uid: 500 status: 200" in output
