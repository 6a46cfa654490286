"""A real Fabric network whose peer builds and runs chaincode through a real daemon.

Every test runs on Fabric 2.5.10 and on 3.1.5 (a V3_0 channel), one network each;
``CCDAEMON_TEST_FABRIC_VERSION`` (space-separated) picks some.

One network (tests/fabricnet: an orderer and a peer on 127.0.0.1, TLS on) and one
daemon (``ccdaemon serve``, a process, on the default engine with host networking and
``attach_stdout``) serve every test of this folder, since a Go build takes half a
minute. The peer's only builder is ccdaemon's and its ``vm.endpoint`` names a socket
that does not exist. The daemon reads the peer's core.yaml (``[fabric] core_yaml``),
so it names containers as the peer would.

``kv`` is the test chaincode installed and committed once (``--init-required``) and
first invoked with ``--isInit``; tests that upgrade or relaunch it keep ``KV`` current.
At the end the peer is stopped (its ``run`` steps stop their chaincodes), ``ccdaemon
gc`` collects the images, and the engine must hold nothing of the daemon's instance.

A failing test gets the tails of the peer's, orderer's and daemon's logs attached, and
the network's scratch directory (logs kept whole) is left in place and named.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import aiodocker
import anyio.to_thread
import pytest

from ccdaemon.engine import Engine
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL
from tests.conftest import DEFAULT_ENGINE, ROOT
from tests.daemon.conftest import remove_instance
from tests.daemon.process import CCDAEMON, clean_env
from tests.fabricnet import CLIError, Network, container_name
from tests.fabricnet.configs import PEER_ID
from tests.fabricnet.procs import stop_pid, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

P = ParamSpec("P")
T = TypeVar("T")

#: The Go builder stand-in (scripts/images), a Go new enough for the shim closure.
GO_BUILDER = "localhost/ccdaemon/goenv:1.24"
GO_RUNTIME = "localhost/ccdaemon/baseos:1"
#: The Fabric releases the real-peer tests run on, each with its own network and daemon.
FABRIC_VERSIONS = os.environ.get("CCDAEMON_TEST_FABRIC_VERSION", "2.5.10 3.1.5").split()
#: The name the test chaincode is committed under.
KV_NAME = "kv"
#: Seconds the daemon may take to answer health after it is started.
DAEMON_START = 30.0


async def call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking kit call (peer CLI, process control) in a thread."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


@dataclass
class Daemon:
    """One ``ccdaemon serve`` process: socket, instance label, log, configuration.

    The real-peer and builder folders each run one. A test may ``stop`` it and
    ``start`` it again on the same configuration, as systemd restarts a daemon.
    """

    directory: Path
    instance: str
    config: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def socket(self) -> Path:
        """The API socket (the peer's CCDAEMON_SOCKET)."""
        return self.directory / "ccd.sock"

    @property
    def log(self) -> Path:
        """The daemon's log (every start appends to it)."""
        return self.directory / "daemon.log"

    def start(self) -> None:
        """Start ``ccdaemon serve`` and wait until health answers 200."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log.open("ab") as output:
            output.write(f"--- ccdaemon serve, start {self.starts}\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                [CCDAEMON, "serve", "--config", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=clean_env(),
            )
        process = self.process

        def healthy() -> bool:
            assert process.poll() is None, f"the daemon exited:\n{self.tail()}"
            return self.health() == 200

        wait_for(healthy, within=DAEMON_START, what="the daemon's health")

    def health(self) -> int | None:
        """GET /v1/health's status, or None when nothing answers on the socket."""
        connection = _UnixHTTP(str(self.socket))
        try:
            connection.request("GET", "/v1/health")
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    def stop(self, signum: int = signal.SIGTERM) -> int | None:
        """Send ``signum`` (SIGKILL after 30 s) and wait for the exit; the exit status."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        if signum == signal.SIGTERM:
            stop_pid(process.pid, grace=30, reap=functools.partial(process.wait, 0.05))
        else:
            process.send_signal(signum)
        return process.wait(30)

    def mark(self) -> int:
        """The log's length now, for ``text(since)``."""
        return self.log.stat().st_size if self.log.exists() else 0

    def text(self, since: int = 0) -> str:
        """The log from byte ``since`` on."""
        with self.log.open("rb") as file:
            file.seek(since)
            return file.read().decode(errors="replace")

    def tail(self, lines: int = 60) -> str:
        """The log's last lines."""
        return "\n".join(self.text().splitlines()[-lines:])

    def cli(self, *args: str, timeout: float = 120) -> str:
        """``ccdaemon ARGS --socket <ours>``; stdout (an AssertionError with stderr on failure)."""
        done = subprocess.run(
            [CCDAEMON, *args, "--socket", str(self.socket)],
            check=False,
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=timeout,
        )
        assert done.returncode == 0, f"ccdaemon {' '.join(args)}: {done.returncode}\n{done.stderr}"
        return done.stdout

    def ps(self) -> dict[str, dict[str, Any]]:
        """``ccdaemon ps --json``, by ccid."""
        return {item["ccid"]: item for item in json.loads(self.cli("ps", "--json"))}


class _UnixHTTP(http.client.HTTPConnection):
    """http.client on a Unix socket, with a 5 s timeout."""

    def __init__(self, path: str) -> None:
        super().__init__("ccdaemon", timeout=5)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(5)
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class KV:
    """The test chaincode as committed now: what each test may find and must leave running.

    Attributes:
        package_id: the package the definition names.
        sequence: the definition's sequence.
        variant: the variant the package was made of (``variant`` answers it).
        steps: what each lifecycle step of the first deployment said, and its seconds.
    """

    package_id: str
    sequence: int
    variant: str
    steps: dict[str, Any] = field(default_factory=dict)

    def container(self, net: Network) -> str:
        """The container name the peer's chaincode has (Fabric's GetVMName)."""
        return container_name(net.network_id, PEER_ID, self.package_id)


@dataclass
class Fabric:
    """What the tests get: the network, the daemon, the chaincode and the engine's socket."""

    net: Network
    daemon: Daemon
    kv: KV
    engine_socket: str

    async def ensure_running(self, within: float = 60) -> str:
        """Wait until the daemon reports ``kv`` running; its container id.

        A chaincode that is not running (an earlier test's failure left it exited) is
        launched by the peer for the next transaction: one query asks for it.
        """
        ccid = self.kv.package_id

        def state() -> str | None:
            found: str | None = self.daemon.ps().get(ccid, {}).get("state")
            return found

        def running() -> bool:
            return state() == "running"

        if await call(state) not in {"running", "launching"}:
            with contextlib.suppress(CLIError):
                await call(self.net.admin.query, KV_NAME, "variant")
        await call(wait_for, running, within=within, what=f"{ccid} to run")
        container_id = (await call(self.daemon.ps))[ccid]["container_id"]
        assert isinstance(container_id, str)
        return container_id


def short_directory(prefix: str) -> Path:
    """A private directory under /tmp, its path short: Unix socket paths are limited."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o700)
    return path


def ensure_images(engine_socket: str) -> None:
    """The builder and runtime stand-ins on the engine (scripts/images builds what is missing)."""
    subprocess.run(
        [
            str(ROOT / "scripts" / "images"),
            "build",
            "--socket",
            engine_socket,
            GO_BUILDER,
            GO_RUNTIME,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=1800,
    )


def daemon_toml(directory: Path, instance: str, engine_socket: str, core_yaml: Path) -> str:
    """The daemon's configuration: the peer's core.yaml for names, the engine given here."""
    return (
        f'instance = "{instance}"\n'
        "[fabric]\n"
        f'core_yaml = "{core_yaml}"\n'
        "[listen]\n"
        f'socket = "{directory / "ccd.sock"}"\n'
        "[engine]\n"
        # core.yaml's vm.endpoint names no engine (the peer must not need one): this wins.
        f'endpoint = "unix://{engine_socket}"\n'
        "[runtime]\n"
        "attach_stdout = true\n"
        "startup_timeout = 120\n"
        "[runtime.host_config]\n"
        'NetworkMode = "host"\n'
        "[images]\n"
        f'golang_builder = "{GO_BUILDER}"\n'
        f'golang_runtime = "{GO_RUNTIME}"\n'
        "[golang]\n"
        # Vendored modules only; and no builder may reach beyond 127.0.0.1 anyway.
        'goproxy = "off"\n'
        "[policy]\n"
        "memory = 268435456\n"
        "[shutdown]\n"
        "grace = 5\n"
    )


@pytest.fixture(scope="package")
def fabric_engine(engine_sockets: dict[str, str]) -> str:
    """The default engine's socket, with the stand-in images built on it."""
    engine_socket = engine_sockets[DEFAULT_ENGINE]
    ensure_images(engine_socket)
    return engine_socket


@pytest.fixture(scope="package", params=FABRIC_VERSIONS)
def fabric(fabric_engine: str, request: pytest.FixtureRequest) -> Generator[Fabric, None, None]:
    """The network of one Fabric release, its daemon, ``kv`` committed and initialised."""
    directory = short_directory("ccfd-")
    daemon = Daemon(directory, f"fab-{secrets.token_hex(3)}", directory / "ccdaemon.toml")
    net = Network.create(
        daemon.socket,
        version=request.param,
        core_overrides={"chaincode.startuptimeout": "120s"},
    )
    daemon.config.write_text(daemon_toml(directory, daemon.instance, fabric_engine, net.core_yaml))
    failed_before = request.session.testsfailed
    broken = False
    try:
        try:
            daemon.start()
            net.up()
            fabric = Fabric(net, daemon, deploy_kv(net), fabric_engine)
        except BaseException:
            broken = True
            for name, text in (
                ("peer", net.peer.tail(80)),
                ("orderer", net.orderer.tail(40)),
                ("daemon", daemon.tail(80) if daemon.log.exists() else ""),
            ):
                print(f"\n--- {name} log (last lines)\n{text}")  # noqa: T201
            raise
        yield fabric
        finish(fabric)
    finally:
        net.down()
        daemon.stop()
        asyncio.run(remove_engine_instance(fabric_engine, daemon.instance))
        if not broken and request.session.testsfailed == failed_before:
            net.remove()
            shutil.rmtree(directory, ignore_errors=True)
        else:
            print(f"\nfabric network kept in {net.scratch}, daemon in {directory}")  # noqa: T201


def deploy_kv(net: Network) -> KV:
    """Package, install, approve, commit and initialise ``kv`` (variant v1), timing each step."""
    steps: dict[str, Any] = {}

    def timed(name: str, fn: Callable[[], T]) -> T:
        began = time.monotonic()
        result = fn()
        steps[f"{name}_seconds"] = time.monotonic() - began
        return result

    package = timed("package", lambda: net.admin.package("kv_1", variant="v1"))
    package_id = timed("install", lambda: net.admin.install(package))
    steps["installed"] = net.admin.queryinstalled()
    timed("approve", lambda: net.admin.approve(KV_NAME, package_id, sequence=1))
    timed("commit", lambda: net.admin.commit(KV_NAME, sequence=1))
    steps["committed"] = net.admin.querycommitted(KV_NAME)
    steps["init"] = timed("init", lambda: net.admin.invoke(KV_NAME, "init", is_init=True))
    return KV(package_id, 1, "v1", steps)


def finish(fabric: Fabric) -> None:
    """The end of the folder: stopping the peer stops every chaincode; gc leaves nothing.

    Raises:
        AssertionError: something of the daemon's instance is left on the engine.
    """
    fabric.net.stop_peer()
    assert fabric.net.run_processes() == []
    fabric.daemon.cli("gc")
    left = asyncio.run(instance_objects(fabric.engine_socket, fabric.daemon.instance))
    assert left == ({}, []), f"left on the engine after the peer stopped and gc: {left}"


async def instance_objects(engine_socket: str, instance: str) -> tuple[dict[str, str], list[str]]:
    """The instance's containers (name -> state) and images (ids), seen through aiodocker."""
    docker = aiodocker.Docker(url=f"unix://{engine_socket}")
    try:
        return await instance_state(docker, instance)
    finally:
        await docker.close()


async def instance_state(
    docker: aiodocker.Docker, instance: str
) -> tuple[dict[str, str], list[str]]:
    """The instance's containers (name -> state) and image ids, through ``docker``."""
    label = {"label": [f"{INSTANCE_LABEL}={instance}"]}
    found = await docker.containers.list(all=True, filters=label)
    images = await docker.images.list(filters=label)
    return (
        {str(item["Names"][0]).lstrip("/"): str(item["State"]) for item in found},
        sorted(str(image["Id"]) for image in images),
    )


async def remove_engine_instance(engine_socket: str, instance: str) -> None:
    """Remove every container, image and volume of ``instance`` from ``engine_socket``."""
    async with Engine(f"unix://{engine_socket}") as engine:
        await remove_instance(engine, instance)


@pytest.fixture(autouse=True)
def _serving(fabric: Fabric) -> None:
    """Each test starts with the peer and the daemon up, whatever an earlier failure left."""
    if fabric.daemon.process is None or fabric.daemon.process.poll() is not None:
        fabric.daemon.start()
    if fabric.net.peer.pid is None:
        fabric.net.start_peer()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tails of the network's and daemon's logs to a failing test's report."""
    report = yield
    fabric = getattr(item, "funcargs", {}).get("fabric")
    if report.failed and isinstance(fabric, Fabric):
        logs = {
            **{
                name: program.tail(80)
                for name, program in (("peer", fabric.net.peer), ("orderer", fabric.net.orderer))
            },
            "daemon": fabric.daemon.tail(80),
        }
        for name, text in logs.items():
            report.sections.append((f"{name} log (last lines)", text))
        with contextlib.suppress(Exception):
            report.sections.append(("run steps", str(fabric.net.run_processes())))
    del call
    return report
