"""Fault: the engine's disk fills up while a chaincode's image is built.

The daemon builds every build context in memory and writes no file itself; bytes reach
a disk only in the engine's data root. So the fault is an engine whose data root is a
small tmpfs (``scripts/engines up docker-28.5-small``), filled up to a margin by a file
of the test's, then a launch with a package: the build runs out of space either in the
builder container (its output, the binary that becomes ``binpackage.tar``) or in the
engine's image build (the context it unpacks and the layer it ADDs).

The builder is a busybox stand-in for the Go builder whose ``go`` writes a runnable
``chaincode`` padded to the size the package asks for (``src/pad_mib``), so each case
picks how much the build writes against how much room is left.

Each case ends with: a JSON error naming the engine's "no space left on device", the
daemon healthy, nothing of the instance in the engine (no container, no builder, no
image), no other container or image than before, no build context left in the engine's
temporary directory, the space the build wrote given back, no file in the daemon's
TMPDIR; then, with the filler removed, the same launch builds and runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from ccdaemon.engine import Engine, NoSuchImage, archive, containers, images, system
from tests.conftest import BASE_IMAGE, engines
from tests.daemon.conftest import launch_body
from tests.faults.conftest import known, orphans, relaunch_builds
from tests.faults.test_faults import answer_code

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from tests.daemon.process import DaemonProcess, Spawner
    from tests.faults.conftest import Summary

SMALL = "docker-28.5-small"
MIB = 1024 * 1024
#: The stand-in Go builder: busybox, a fake ``go`` and Fabric's /chaincode directories.
BUILDER_IMAGE = "localhost/ccdaemon/test-goenv-pad:1"
FAKE_GO = b"""#!/bin/sh
# go build ... -o FILE: FILE is a script that sleeps, padded with $(cat pad_mib) MiB.
set -e
out=
while [ $# -gt 0 ]; do
    if [ "$1" = -o ]; then out=$2; fi
    shift
done
{
    printf '#!/bin/sh\\nexec sleep 3600\\n'
    dd if=/dev/zero bs=1048576 count="$(cat pad_mib)"
} >"$out"
chmod 0755 "$out"
"""


@pytest.fixture
async def engine_socket() -> AsyncIterator[str]:
    """docker-28.5-small, started for the test and stopped (its tmpfs unmounted) after it."""
    lines = await engines("up", SMALL)
    sockets = dict(line.split(maxsplit=1) for line in lines.splitlines() if line.strip())
    try:
        yield sockets[SMALL]
    finally:
        await engines("down", SMALL)


def package(label: str, pad_mib: int) -> bytes:
    """A Fabric package whose build writes a binary of about ``pad_mib`` MiB."""
    code = archive.targz(
        {"src/go.mod": b"module example.com/pad\n\ngo 1.19\n", "src/pad_mib": b"%d\n" % pad_mib}
    )
    metadata = json.dumps({"path": "", "type": "golang", "label": label}).encode()
    return archive.targz({"metadata.json": metadata, "code.tar.gz": code})


async def builder_image(engine: Engine) -> None:
    """Build the stand-in Go builder unless the engine has it."""
    try:
        await images.inspect(engine, BUILDER_IMAGE)
    except NoSuchImage:
        dockerfile = (
            f"FROM {BASE_IMAGE}\nADD go /usr/local/bin/go\n"
            "RUN chmod 0755 /usr/local/bin/go && mkdir -p /chaincode/input /chaincode/output\n"
        )
        context = archive.tar({"Dockerfile": dockerfile.encode(), "go": FAKE_GO})
        await images.build(engine, context, BUILDER_IMAGE)


async def start_daemon(spawner: Spawner) -> tuple[DaemonProcess, Path]:
    """A healthy daemon with a private, empty TMPDIR that builds with the stand-in images."""
    config = spawner.write_config()
    config.write_text(
        config.read_text()
        + f'[images]\ngolang_builder = "{BUILDER_IMAGE}"\ngolang_runtime = "{BASE_IMAGE}"\n'
    )
    tmp = spawner.directory / "tmp"
    tmp.mkdir()
    daemon = await spawner.start(config, env={"TMPDIR": str(tmp)})
    await daemon.wait_healthy()
    return daemon, tmp


async def data_root(engine: Engine) -> Path:
    """The engine's data root (GET /info DockerRootDir): where its bytes go."""
    return Path(str((await system.info(engine))["DockerRootDir"]))


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still write on ``path``'s filesystem."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(path: Path, leave: int) -> int:
    """Allocate a file on ``path``'s filesystem so that ``leave`` bytes stay free; its size."""
    size = free_bytes(path.parent) - leave
    assert size > 0, f"only {free_bytes(path.parent)} bytes free"
    with path.open("wb") as file:
        os.posix_fallocate(file.fileno(), 0, size)
    return size


async def everything(engine: Engine) -> tuple[set[str], set[str]]:
    """Ids of every container and every image (intermediate ones too) the engine holds."""
    found = await containers.list_(engine)
    held: list[dict[str, object]] = await engine.call("GET", "/images/json", params={"all": "1"})
    return {str(c["Id"]) for c in found}, {str(i["Id"]) for i in held}


@pytest.mark.parametrize(
    ("where", "leave_mib", "pad_mib", "said_in"),
    [
        # 8 MiB free, a 32 MiB binary: the builder container's write fails; the build
        # script's own words are in the log tail, as a compiler's error would be.
        ("builder output", 8, 32, "log_tail"),
        # 40 MiB free, a 24 MiB binary: the builder fits (and is removed, giving its
        # space back), the image build's unpacked context plus its ADD layer do not;
        # the engine's error is the message.
        ("image build", 40, 24, "message"),
    ],
    ids=["builder", "image"],
)
async def test_disk_full_during_build_fails_clearly_and_leaves_nothing(
    spawner: Spawner,
    engine: Engine,
    summary: Summary,
    where: str,
    leave_mib: int,
    pad_mib: int,
    said_in: str,
) -> None:
    """The engine's data root fills up mid-build: a clear error, nothing left, then it works.

    The launch answers an error whose message carries the engine's "no space left on
    device"; the daemon stays healthy and reports the chaincode failed; the engine holds
    nothing of the instance, no container or image that it did not hold before the
    launch, and no build context in its temporary directory; the daemon's TMPDIR is
    empty. With the filler removed, the same launch builds and runs (201, built).
    """
    await builder_image(engine)
    daemon, tmp = await start_daemon(spawner)
    root = await data_root(engine)
    code = package(f"diskfull{pad_mib}_1.0", pad_mib)
    ccid = f"diskfull{pad_mib}_1.0:{hashlib.sha256(code).hexdigest()}"
    body = launch_body(ccid) | {"package": base64.b64encode(code).decode()}
    before = await everything(engine)
    filler = root / "ccdaemon-test-filler"
    try:
        filled = fill(filler, leave_mib * MIB)
        with anyio.fail_after(120):
            failed = await daemon.call("POST", "/v1/chaincodes", body)
        answered = time.monotonic()
        free_at_answer = free_bytes(root)
        # The engine gives back what the failed build wrote (the builder's layer, the
        # unpacked context, a half-made layer); a byte-level check of "nothing left".
        with anyio.fail_after(30):
            while free_bytes(root) < (leave_mib - 1) * MIB:  # noqa: ASYNC110 -- no event
                await anyio.sleep(0.1)
        space_back = time.monotonic() - answered
    finally:
        filler.unlink(missing_ok=True)
    status, answer = failed
    assert (status, answer["error"]["code"]) == (422, "build_failed"), answer
    message = answer["error"]["message"]
    said = message if said_in == "message" else "\n".join(answer["error"]["log_tail"])
    assert "no space left on device" in said.lower(), answer

    health = await daemon.health()
    assert health is not None
    assert (health[0], health[1]["status"]) == (200, "ok"), health
    daemon.check_alive()
    assert (await known(daemon))[ccid]["state"] == "failed"
    assert await orphans(engine, spawner.instance, await known(daemon), kept_images=set()) == []
    assert await everything(engine) == before
    assert sorted(p.name for p in (root / "tmp").iterdir()) == []
    assert not list(tmp.iterdir())
    assert "Traceback" not in daemon.log()

    await relaunch_builds(daemon, engine, body, instance=spawner.instance, tmp=tmp, within=120)
    summary.write(
        fault=f"disk full during the build ({where})",
        engine=SMALL,
        requests=2,
        faults=1,
        filler_mib=round(filled / MIB),
        free_mib_left=leave_mib,
        free_mib_at_answer=round(free_at_answer / MIB, 1),
        space_back_seconds=round(space_back, 1),
        build_writes_mib=pad_mib,
        failed_answer=" ".join(map(str, answer_code(failed))),
        message=message,
        log_tail_last=answer["error"]["log_tail"][-3:],
        relaunch="201, image built",
        lost=0,
        orphaned=0,
    )
