#!/usr/bin/env python3
"""Benchmark: Go image builds through the daemon, with a cold and a warm build cache.

The chaincode is the test bed's real one, tests/fabric/chaincode/kvcc on Fabric's Go
shim (vendored, as tests/fabricnet assembles it), packaged as Fabric 2.x packages and
built through ``POST /v1/images`` of a real ``ccdaemon serve`` child process. One run
makes three builds in each of two series, each build a new image:

- first build: a new variant of the source (``variant.go``);
- relabel: the same source under a new label (a new package id, so a new image);
- one-line change: ``variant.go``'s one line changed.

In the cold series every build starts with no cache (``POST /v1/gc?caches=1`` first); in
the warm series each build keeps the cache the build before it left (the first, a new
variant, the cold series' last: its dependencies, the shim, are compiled already). A second daemon
with ``build_cache_size = 0`` builds the warm series' first source once more: the
uncached baseline, whose binary must be byte for byte the cached builds' of the same
source (SHA-256 of /usr/local/bin/chaincode in each image). Target: the warm one-line
change at most 0.3x the cold first build, in the same run.

    scripts/bench/builds.py [--engine docker-20.10] [--socket PATH] [--rounds 3] [--json]

Everything made (images, containers, cache volumes) goes by the daemons' instance
labels at the end, also after a failure. Exit status: 0 when the target is met and the
binaries agree, 1 when not, 2 on an error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import testbed

from ccdaemon.apiclient.aio import AsyncClient
from ccdaemon.engine import Engine, EngineError, archive, containers, images, volumes
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.fabricnet import chaincode, dist  # noqa: E402 -- the test bed's chaincode kit

#: The warm one-line-change build over the cold first build.
TARGET = 0.3
STEPS = ("first build", "relabel", "one-line change")
#: A daemon that does not come up, a build that hangs: the run fails, never hangs.
START_TIMEOUT = 60.0
BUILD_TIMEOUT = 900.0


def package(module: Path, label: str) -> tuple[str, str]:
    """A Fabric 2.x package of ``module`` as base64, and its package id (label:sha256)."""
    files = {
        f"src/{path.relative_to(module)}": path.read_bytes()
        for path in sorted(module.rglob("*"))
        if path.is_file()
    }
    metadata = json.dumps({"path": chaincode.MODULE, "type": "golang", "label": label})
    raw = archive.targz({"metadata.json": metadata.encode(), "code.tar.gz": archive.targz(files)})
    return base64.b64encode(raw).decode(), f"{label}:{hashlib.sha256(raw).hexdigest()}"


def config_text(directory: Path, name: str, engine_socket: str, cache: int) -> str:
    """The daemon ``name``'s TOML: its socket in ``directory``, its cache bound ``cache``."""
    return f"""\
instance = "{name}"

[listen]
socket = "{directory / name}.sock"

[engine]
endpoint = "unix://{engine_socket}"
build_limit = 2
build_cache_size = {cache}

[runtime]
network_id = "bench"
peer_id = "{name}"
mspid = "BenchMSP"

[shutdown]
grace = 10
"""


async def start(directory: Path, name: str, engine_socket: str, cache: int) -> Any:
    """A ``ccdaemon serve`` child, healthy, its output in ``directory``/``name``.log."""
    path = directory / f"{name}.toml"
    path.write_text(config_text(directory, name, engine_socket, cache))
    with (directory / f"{name}.log").open("w") as log:
        daemon = await testbed.spawn_daemon(path, log)
    async with asyncio.timeout(START_TIMEOUT):
        await testbed.wait_healthy(daemon, directory / f"{name}.sock")
    return daemon


async def build(client: AsyncClient, module: Path, label: str) -> tuple[float, str]:
    """Build ``module`` under ``label`` through the daemon: seconds, and the image."""
    body, ccid = package(module, label)
    began = time.perf_counter()
    async with asyncio.timeout(BUILD_TIMEOUT):
        answer = await client.build({"ccid": ccid, "package": body})
    if not answer["built"]:
        raise RuntimeError(f"{label}: the daemon built nothing (the image was there)")
    return time.perf_counter() - began, str(answer["image"])


async def binary_sha(engine: Engine, image: str) -> str:
    """SHA-256 of /usr/local/bin/chaincode in ``image``, read from a container never started."""
    container = await containers.create(engine, None, {"Image": image, "Cmd": ["x"]})
    try:
        data = await containers.get_archive(engine, container, "/usr/local/bin/chaincode")
    finally:
        await containers.remove(engine, container, force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("chaincode")
        if member is None:
            raise RuntimeError(f"{image} holds no /usr/local/bin/chaincode file")
        return hashlib.sha256(member.read()).hexdigest()


async def series(
    client: AsyncClient, engine: Engine, work: Path, tag: str, *, cold: bool
) -> dict[str, Any]:
    """One series of three builds; with ``cold`` each starts with the cache removed."""
    source = dist.distribution(dist.SHIM_RELEASE)
    module = chaincode.assemble(source, work / f"{tag}-src", variant=f"{tag}a")
    runs: list[tuple[str, Path, str]] = [
        ("first build", module, f"{tag}_1"),
        ("relabel", module, f"{tag}_2"),
    ]
    changed = chaincode.assemble(source, work / f"{tag}-changed", variant=f"{tag}b")
    runs.append(("one-line change", changed, f"{tag}_3"))
    result: dict[str, Any] = {}
    for step, directory, label in runs:
        if cold:
            await client.gc(caches=True)
        seconds, image = await build(client, directory, label)
        result[step] = {"seconds": seconds, "sha256": await binary_sha(engine, image)}
    return result


async def remove_instance(engine: Engine, instance: str) -> None:
    """Everything the daemon of ``instance`` made: containers, images, cache volumes."""
    labels = {INSTANCE_LABEL: instance}
    for item in await containers.list_(engine, labels=labels):
        with contextlib.suppress(EngineError):
            await containers.remove(engine, str(item["Id"]), force=True)
    for image in await images.list_(engine, labels=labels):
        with contextlib.suppress(EngineError):
            await images.remove(engine, str(image["Id"]), force=True)
    for volume in await volumes.list_(engine, labels=labels):
        with contextlib.suppress(EngineError):
            await volumes.remove(engine, str(volume["Name"]))


async def stop(daemon: Any) -> None:
    """SIGTERM, and wait for the daemon to go (30 s)."""
    if daemon.returncode is None:
        daemon.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await daemon.wait()


async def bench(engine_socket: str, directory: Path, rounds: int) -> dict[str, Any]:
    """Two daemons (cache on, off), ``rounds`` of both series; the figures."""
    tag = secrets.token_hex(3)
    cached_name, plain_name = f"bench-cache-{tag}", f"bench-plain-{tag}"
    figures: dict[str, Any] = {"cold": [], "warm": [], "uncached": [], "same_binary": []}
    daemons = []
    async with Engine(f"unix://{engine_socket}") as engine:
        try:
            daemons.append(await start(directory, cached_name, engine_socket, 2 << 30))
            daemons.append(await start(directory, plain_name, engine_socket, 0))
            async with (
                AsyncClient(str(directory / f"{cached_name}.sock")) as cached,
                AsyncClient(str(directory / f"{plain_name}.sock")) as plain,
            ):
                for n in range(rounds):
                    figures["cold"].append(
                        await series(cached, engine, directory, f"c{n}", cold=True)
                    )
                    warm = await series(cached, engine, directory, f"w{n}", cold=False)
                    figures["warm"].append(warm)
                    seconds, image = await build(plain, directory / f"w{n}-src", f"w{n}_plain")
                    sha = await binary_sha(engine, image)
                    figures["uncached"].append({"first build": {"seconds": seconds, "sha256": sha}})
                    same = {warm["first build"]["sha256"], warm["relabel"]["sha256"], sha}
                    figures["same_binary"].append(len(same) == 1)
        finally:
            for daemon in daemons:
                await stop(daemon)
            for name in (cached_name, plain_name):
                await remove_instance(engine, name)
    return figures


def median(figures: dict[str, Any], series_: str, step: str) -> float:
    """The median seconds of ``step`` in ``series_``."""
    return float(statistics.median(run[step]["seconds"] for run in figures[series_]))


def report(figures: dict[str, Any]) -> bool:
    """Print the table; whether the target is met and the binaries agree."""
    cold_first = median(figures, "cold", "first build")
    print(f"{'build':<18}{'cold cache':>12}{'warm cache':>12}{'warm/cold first':>18}")
    for step in STEPS:
        cold, warm = median(figures, "cold", step), median(figures, "warm", step)
        print(f"{step:<18}{cold:>11.1f}s{warm:>11.1f}s{warm / cold_first:>17.2f}x")
    print(f"{'no cache (first)':<18}{median(figures, 'uncached', 'first build'):>11.1f}s")
    ratio = median(figures, "warm", "one-line change") / cold_first
    same = all(figures["same_binary"])
    print(f"warm one-line change / cold first build: {ratio:.2f}x (target <= {TARGET}x)")
    print(f"same source, same binary (uncached, warm first, warm relabel): {same}")
    return ratio <= TARGET and same


def main() -> int:
    """Parse arguments, run the benchmark, print the table (or JSON); 0 when the target is met."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    testbed.engine_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both series")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    socket = testbed.chosen_socket(args)
    subprocess.run([str(ROOT / "scripts" / "images"), "build", "--socket", socket], check=True)
    directory = Path(tempfile.mkdtemp(prefix="ccdb-", dir="/tmp"))  # short: socket paths
    directory.chmod(0o700)
    try:
        figures = asyncio.run(bench(socket, directory, args.rounds))
    except BaseException:
        for log in sorted(directory.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-20:]
            print(f"{log.name}, last lines:", *tail, sep="\n  ", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    return 0 if report(figures) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    testbed.exit_with(main)
