"""A real daemon per test, in the test's process, on the engine under test.

Each daemon has its own socket, peer id and instance label, so what one test's daemon
makes is invisible to every other (recovery and gc go by the instance label).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import orjson
import pytest

from ccdaemon.config import Config, EngineConfig, ListenConfig, PolicyConfig, ShutdownConfig
from ccdaemon.daemon import serve
from ccdaemon.engine import (
    Engine,
    NoSuchContainer,
    NoSuchImage,
    NoSuchVolume,
    containers,
    images,
    volumes,
)
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL, HostConfig
from ccdaemon.runtime.launcher import RuntimeConfig
from ccdaemon.runtime.naming import names
from tests.conftest import chaincode_context

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

#: A stand-in chaincode binary: /usr/local/bin/chaincode, as in Fabric's images. It
#: prints its args, exits with $CC_EXIT after $CC_SLEEP seconds (default: runs an hour).
CHAINCODE = b"""#!/bin/sh
echo "chaincode started: $*"
echo "to stderr" >&2
sleep "${CC_SLEEP:-3600}"
exit "${CC_EXIT:-0}"
"""
STUB_IMAGE = "localhost/ccdaemon/test-chaincode:2"


def launch_body(ccid: str, **extra: object) -> dict[str, object]:
    """A minimal valid launch request."""
    return {
        "ccid": ccid,
        "type": "golang",
        "peer_address": "peer0:7052",
        "mspid": "Org1MSP",
        **extra,
    }


def chaincode_path(ccid: str) -> str:
    """The API path of one chaincode (ccids hold ':', percent-encoded)."""
    return "/v1/chaincodes/" + ccid.replace(":", "%3A")


def make_config(engine_socket: str, directory: Path, **overrides: Any) -> Config:
    """A daemon configuration for tests: private socket, unique peer and instance."""
    tag = secrets.token_hex(3)
    runtime = RuntimeConfig(
        network_id="t",
        peer_id=f"p{tag}",
        host_config=HostConfig(network_mode="none"),
        startup_timeout=120,
        attach_stdout=True,
        instance=f"test-{tag}",
    )
    config = Config(
        listen=ListenConfig(socket=directory / "ccd.sock"),
        engine=EngineConfig(endpoint=f"unix://{engine_socket}"),
        runtime=runtime,
        policy=PolicyConfig(memory=256 * 1024 * 1024),
        shutdown=ShutdownConfig(grace=10),
        instance=f"test-{tag}",
    )
    return replace(config, **overrides)


@dataclass
class RunningDaemon:
    """A daemon in this process, with an HTTP client on its socket."""

    config: Config
    session: aiohttp.ClientSession
    stop: anyio.Event = field(default_factory=anyio.Event)
    #: Image tags ``stub_images`` made for this daemon, removed at teardown.
    tagged: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        """The API socket."""
        return self.config.listen.socket

    async def call(self, method: str, path: str, body: object = None, **kw: Any) -> tuple[int, Any]:
        """One API call: status and decoded JSON (or text)."""
        # Bodies go as streams: aiohttp warns (an error here) about large bytes bodies.
        data = (
            None
            if body is None
            else io.BytesIO(body if isinstance(body, bytes) else orjson.dumps(body))
        )
        async with self.session.request(method, f"http://ccdaemon{path}", data=data, **kw) as resp:
            raw = await resp.read()
            if resp.content_type == "application/json":
                return resp.status, orjson.loads(raw)
            return resp.status, raw.decode()

    def names(self, ccid: str) -> tuple[str, str]:
        """Container and image names of ``ccid`` under this daemon."""
        got = names(
            ccid, network_id=self.config.runtime.network_id, peer_id=self.config.runtime.peer_id
        )
        return got.container, got.image


@contextlib.asynccontextmanager
async def running_daemon(config: Config) -> AsyncIterator[RunningDaemon]:
    """Run the daemon until the block ends; wait for it to be ready first."""
    stop = anyio.Event()
    task = asyncio.ensure_future(serve.run(config, stop=stop))
    connector = aiohttp.UnixConnector(path=str(config.listen.socket))
    async with aiohttp.ClientSession(connector=connector) as session:
        handle = RunningDaemon(config, session, stop)
        try:
            with anyio.fail_after(60):
                while True:
                    if task.done():
                        task.result()  # raises what stopped it
                    with contextlib.suppress(aiohttp.ClientError):
                        status, body = await handle.call("GET", "/v1/health")
                        if status == 200 and body["status"] == "ok":
                            break
                    await anyio.sleep(0.05)
            yield handle
        finally:
            stop.set()
            with anyio.fail_after(60):
                await task


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short private directory for sockets (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="ccd-", dir="/tmp"))
    path.chmod(0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def daemon(engine_socket: str, sockdir: Path, engine: Engine) -> AsyncIterator[RunningDaemon]:
    """A running daemon on the engine under test; its containers and images go afterwards."""
    async with cleaned_daemon(make_config(engine_socket, sockdir), engine) as handle:
        yield handle


@contextlib.asynccontextmanager
async def cleaned_daemon(
    config: Config,
    engine: Engine,
    remove: Callable[[Engine, str], Awaitable[None]] | None = None,
) -> AsyncIterator[RunningDaemon]:
    """Run the daemon; afterwards remove what it made, whatever the block did.

    ``remove`` (default ``remove_instance``) clears what the instance made; the image
    tags ``stub_images`` gave the daemon go too.
    """
    tagged: list[str] = []
    try:
        async with running_daemon(config) as handle:
            handle.tagged = tagged
            yield handle
    finally:
        await (remove or remove_instance)(engine, config.instance)
        for image in tagged:
            with contextlib.suppress(NoSuchImage):
                await images.remove(engine, image, force=True)


async def remove_instance(engine: Engine, instance: str) -> None:
    """Remove every container, image and volume (build cache) labelled with ``instance``."""
    for item in await containers.list_(engine, labels={INSTANCE_LABEL: instance}):
        with contextlib.suppress(NoSuchContainer):
            await containers.remove(engine, str(item["Id"]), force=True)
    for image in await images.list_(engine, labels={INSTANCE_LABEL: instance}):
        with contextlib.suppress(NoSuchImage):
            await images.remove(engine, str(image["Id"]), force=True)
    for volume in await volumes.list_(engine, labels={INSTANCE_LABEL: instance}):
        with contextlib.suppress(NoSuchVolume):
            await volumes.remove(engine, str(volume["Name"]))


async def stub_images(engine: Engine, daemon: RunningDaemon, ccids: list[str]) -> None:
    """Give each ccid its image: the stand-in chaincode, tagged as the daemon will look for it.

    The tags carry no instance label, so the daemon fixture removes them by name.
    """
    try:
        await images.inspect(engine, STUB_IMAGE)
    except NoSuchImage:
        # A shell as PID 1 ignores SIGTERM: without STOPSIGNAL SIGKILL every engine
        # shutdown would wait out its stop timeout for each chaincode.
        context = chaincode_context(CHAINCODE, more="STOPSIGNAL SIGKILL\n")
        await images.build(engine, context, STUB_IMAGE)
    for ccid in ccids:
        repository = daemon.names(ccid)[1]
        await images.tag(engine, STUB_IMAGE, repository)
        daemon.tagged.append(repository)


async def poll(check: Callable[[], Awaitable[bool]], *, every: float = 0.1) -> None:
    """Ask ``check`` until it says yes, for up to 30 s: for states only API calls show."""
    with anyio.fail_after(30):
        while not await check():  # noqa: ASYNC110 -- no event to wait on across the API
            await anyio.sleep(every)
