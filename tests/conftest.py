"""Fixtures: real engines started by scripts/engines, clients per test, cleanup of what tests make.

Tests that take ``engine_name`` run on the default engine (``CCDAEMON_TEST_ENGINE``,
docker-20.10 unless set); tests marked ``all_engines`` run on every engine of the bed
(``CCDAEMON_TEST_ENGINES``, all four unless set), and tests marked ``engines(...)`` on
those of the bed that they name. The engines are started once per session,
in parallel, by ``scripts/engines up``, which is idempotent.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import aiodocker
import anyio
import pytest

from ccdaemon.engine import (
    Engine,
    NoSuchContainer,
    NoSuchImage,
    NoSuchVolume,
    archive,
    containers,
    images,
    volumes,
)
from tests.swarmbed import node_id, swarms  # noqa: F401 -- fixtures of the swarm tests

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ROOT = Path(__file__).resolve().parent.parent
ALL_ENGINES = os.environ.get(
    "CCDAEMON_TEST_ENGINES", "docker-20.10 docker-26.1 docker-28.5 podman-4.3"
).split()
DEFAULT_ENGINE = os.environ.get("CCDAEMON_TEST_ENGINE", "docker-20.10")
BASE_IMAGE = "localhost/ccdaemon/busybox:latest"
TEST_LABEL = "ccdaemon.test"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``engine_name`` over the whole bed for ``all_engines`` tests."""
    if "engine_name" not in metafunc.fixturenames:
        return
    only = metafunc.definition.get_closest_marker("engines")
    if only is not None:
        names = [name for name in ALL_ENGINES if name in only.args]
    elif metafunc.definition.get_closest_marker("all_engines") is not None:
        names = ALL_ENGINES
    else:
        names = [DEFAULT_ENGINE]
    metafunc.parametrize("engine_name", names)


@pytest.fixture(scope="session")
def engine_sockets(request: pytest.FixtureRequest) -> dict[str, str]:
    """Start every engine the collected tests need (once) and map its name to its socket."""
    wanted = sorted(
        {
            name
            for item in request.session.items
            if isinstance(item, pytest.Function) and isinstance(name := _engine_param(item), str)
        }
    )
    if not wanted:
        return {}
    given = os.environ.get("CCDAEMON_TEST_SOCKETS")  # "name=/path ...": engines already running
    if given:
        return dict(pair.split("=", 1) for pair in given.split())
    result = subprocess.run(
        [str(ROOT / "scripts" / "engines"), "up", *wanted],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    sockets = dict(line.split(maxsplit=1) for line in result.stdout.splitlines() if line.strip())
    missing = set(wanted) - sockets.keys()
    assert not missing, f"scripts/engines up did not report {missing}"
    return sockets


def _engine_param(item: pytest.Function) -> object:
    """The engine an item runs on: its ``engine_name``, or a parameter's (a front case's)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    if "engine_name" in callspec.params:
        return callspec.params["engine_name"]
    named = (getattr(value, "engine_name", None) for value in callspec.params.values())
    return next((name for name in named if name is not None), None)


@pytest.fixture
def engine_socket(engine_sockets: dict[str, str], engine_name: str) -> str:
    """The Unix socket of the engine this test runs on."""
    return engine_sockets[engine_name]


@pytest.fixture
async def engine(engine_socket: str) -> AsyncIterator[Engine]:
    """The client under test, connected to the engine under test."""
    async with Engine(f"unix://{engine_socket}") as client:
        yield client


@pytest.fixture
async def docker(engine_socket: str) -> AsyncIterator[aiodocker.Docker]:
    """An independent client (aiodocker) to check what the engine really holds."""
    client = aiodocker.Docker(url=f"unix://{engine_socket}")
    try:
        yield client
    finally:
        await client.close()


class Made:
    """Names of containers, images and volumes a test makes; all go when the test ends."""

    def __init__(self) -> None:
        self.containers: list[str] = []
        self.images: list[str] = []
        self.volumes: list[str] = []
        self.prefix = f"ccdt-{secrets.token_hex(3)}"

    def container(self, suffix: str = "c") -> str:
        """A fresh container name, removed at teardown."""
        name = f"{self.prefix}-{suffix}-{len(self.containers)}"
        self.containers.append(name)
        return name

    def image(self, suffix: str = "i") -> str:
        """A fresh image name (no tag), removed at teardown."""
        name = f"localhost/{self.prefix}-{suffix}-{len(self.images)}"
        self.images.append(name)
        return name

    def volume(self, suffix: str = "v") -> str:
        """A fresh volume name, removed at teardown."""
        name = f"{self.prefix}-{suffix}-{len(self.volumes)}"
        self.volumes.append(name)
        return name


@pytest.fixture
async def made(engine: Engine) -> AsyncIterator[Made]:
    """Track what a test makes, and remove it afterwards whatever the test's outcome."""
    tracked = Made()
    try:
        yield tracked
    finally:
        for name in tracked.containers:
            with contextlib.suppress(NoSuchContainer):
                await containers.remove(engine, name, force=True)
        for name in tracked.images:
            with contextlib.suppress(NoSuchImage):
                await images.remove(engine, name, force=True)
        for name in tracked.volumes:
            with contextlib.suppress(NoSuchVolume):
                await volumes.remove(engine, name)


def sleeper(seconds: int = 300, **extra: object) -> dict[str, object]:
    """A create body for a base-image container that sleeps, with no network."""
    return {
        "Image": BASE_IMAGE,
        "Cmd": ["/bin/sleep", str(seconds)],
        "Labels": {TEST_LABEL: "1"},
        "HostConfig": {"NetworkMode": "none"},
        **extra,
    }


def shell(script: str, **extra: object) -> dict[str, object]:
    """A create body for a base-image container that runs a shell script, with no network."""
    return sleeper(0, Cmd=["/bin/sh", "-c", script], **extra)


def chaincode_context(script: bytes, *, base: str = BASE_IMAGE, more: str = "") -> bytes:
    """The build context of a stand-in chaincode image on ``base``.

    ``script`` becomes /usr/local/bin/chaincode (Fabric's images' binary); ``more``
    ends the Dockerfile.
    """
    dockerfile = (
        f"FROM {base}\nADD chaincode /usr/local/bin/chaincode\n"
        f"RUN chmod 0755 /usr/local/bin/chaincode\n{more}"
    )
    return archive.tar({"Dockerfile": dockerfile.encode(), "chaincode": script})


async def files_in(
    engine: Engine, name: str, directory: str = "/etc/hyperledger/fabric"
) -> dict[str, bytes]:
    """The regular files under ``directory`` in the container, by absolute path."""
    data = await containers.get_archive(engine, name, directory)
    parent = directory.rsplit("/", 1)[0]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            f"{parent}/{m.name}": tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isreg()
        }


async def no_build() -> None:
    """A build callback for launches whose image exists: being called is a test failure."""
    raise AssertionError("the image exists; nothing should be built")


async def engines(*args: str, attempts: int = 3) -> str:
    """Run ``scripts/engines ARGS`` (down, up, restart), trying again on failure; its stdout.

    An engine brought down a moment ago can refuse to come back at the first try (seen
    once in a full run, never alone); a failure that stays is raised with the script's
    own words, which a bare CalledProcessError would hide.
    """
    script = str(ROOT / "scripts" / "engines")
    for attempt in range(1, attempts + 1):
        with anyio.fail_after(180):
            done = await anyio.run_process([script, *args], check=False)
        if done.returncode == 0:
            return done.stdout.decode()
        if attempt == attempts:
            raise AssertionError(
                f"scripts/engines {' '.join(args)} failed {attempts} times; last said:\n"
                + done.stderr.decode(errors="replace")
            )
        await anyio.sleep(2)
    raise AssertionError("unreachable: the last attempt returns or raises")
