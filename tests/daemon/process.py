"""The daemon as a real process: ``ccdaemon serve --config <toml>``, as systemd runs it.

``daemons`` gives a test a ``Spawner``: it writes TOML files for one instance (socket,
peer id and instance label of the test's own), starts daemons on them, and at the end
kills whatever still runs and removes the instance's containers and images.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import aiohttp
import anyio
import anyio.to_thread

from ccdaemon.config import load
from ccdaemon.engine import Conflict, NoSuchImage, images
from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL
from tests.daemon.conftest import RunningDaemon, remove_instance

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    import aiodocker

    from ccdaemon.engine import Engine

#: The console script of the venv running the tests.
CCDAEMON = str(Path(sys.executable).parent / "ccdaemon")
#: Longest a daemon may take to answer health 200 "ok" after it is started.
START_TIMEOUT = 30.0


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would steer the daemon or the CLI."""
    dropped = ("CCDAEMON_", "NOTIFY_SOCKET", "WATCHDOG_", "DOCKER_HOST", "LISTEN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(extra)
    return env


@dataclass
class Notify:
    """A datagram socket bound as systemd binds ``NOTIFY_SOCKET``; ``seen`` keeps every message."""

    sock: socket.socket
    path: str
    seen: list[str] = field(default_factory=list)

    def drain(self) -> list[str]:
        """The datagrams that arrived since the last call (also appended to ``seen``)."""
        fresh: list[str] = []
        while True:
            try:
                fresh.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                break
        self.seen.extend(fresh)
        return fresh

    def has(self, assignment: str) -> bool:
        """Whether any datagram so far (after draining) holds the line ``assignment``."""
        self.drain()
        return any(assignment in message.splitlines() for message in self.seen)


@dataclass
class DaemonProcess:
    """One ``ccdaemon serve`` process, its log file and an API client on its socket."""

    api: RunningDaemon
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def socket(self) -> Path:
        """The API socket."""
        return self.api.socket

    def log(self) -> str:
        """Everything the daemon wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    async def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """One API call: status and decoded JSON (or text)."""
        return await self.api.call(method, path, body)

    async def health(self) -> tuple[int, Any] | None:
        """GET /v1/health, or None when nothing answers on the socket."""
        try:
            return await self.call("GET", "/v1/health")
        except aiohttp.ClientError:
            return None

    async def wait_healthy(self, within: float = START_TIMEOUT) -> None:
        """Poll health until it answers 200 "ok"; fail with the daemon's log if it exits."""
        with anyio.fail_after(within):
            while True:
                self.check_alive()
                answer = await self.health()
                if answer is not None and answer[0] == 200 and answer[1]["status"] == "ok":
                    return
                await anyio.sleep(0.05)

    def check_alive(self) -> None:
        """Fail the test, with the daemon's log, if the daemon has exited."""
        code = self.process.poll()
        assert code is None, f"the daemon exited with {code}:\n{self.log()}"

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the daemon."""
        self.process.send_signal(signum)

    async def wait_exit(self, within: float = 30) -> int:
        """Wait for the daemon to exit; its exit status."""
        try:
            return await anyio.to_thread.run_sync(self.process.wait, within)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon did not exit in {within} s:\n{self.log()}") from None

    async def terminate(self, within: float = 30) -> tuple[int, float]:
        """SIGTERM, then wait: exit status and seconds until exit."""
        began = time.monotonic()
        self.signal(signal.SIGTERM)
        code = await self.wait_exit(within)
        return code, time.monotonic() - began

    async def wait_log(self, text: str, within: float = 10) -> None:
        """Wait until ``text`` appears in the daemon's log."""
        await until(lambda: text in self.log(), within=within)

    def names(self, ccid: str) -> tuple[str, str]:
        """Container and image names of ``ccid`` under this daemon."""
        return self.api.names(ccid)


@dataclass
class Spawner:
    """Writes the TOML of one test's instance and starts daemons on it."""

    directory: Path
    engine_socket: str
    engine: Engine
    instance: str = field(default_factory=lambda: f"proc-{secrets.token_hex(3)}")
    peer_id: str = field(default_factory=lambda: f"q{secrets.token_hex(3)}")
    started: list[DaemonProcess] = field(default_factory=list)
    #: Image tags made for this instance without its label, removed by name at the end.
    tagged: list[str] = field(default_factory=list)
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def socket(self) -> Path:
        """The API socket of this test's daemons."""
        return self.directory / "ccd.sock"

    def config_text(
        self,
        *,
        socket_path: Path | None = None,
        endpoint: str | None = None,
        level: str = "INFO",
        engine_limit: int = 8,
        grace: float = 3.0,
        stop_chaincodes: bool = False,
    ) -> str:
        """The TOML of a daemon of this instance."""
        return (
            f'instance = "{self.instance}"\n'
            "[listen]\n"
            f'socket = "{socket_path or self.socket}"\n'
            "[engine]\n"
            f'endpoint = "{endpoint or f"unix://{self.engine_socket}"}"\n'
            f"engine_limit = {engine_limit}\n"
            "[runtime]\n"
            'network_id = "t"\n'
            f'peer_id = "{self.peer_id}"\n'
            'mspid = "Org1MSP"\n'
            "attach_stdout = true\n"
            "startup_timeout = 60\n"
            "[runtime.host_config]\n"
            'NetworkMode = "none"\n'
            "[policy]\n"
            "memory = 268435456\n"
            "[shutdown]\n"
            f"grace = {grace}\n"
            f"stop_chaincodes = {'true' if stop_chaincodes else 'false'}\n"
            "stop_timeout = 1\n"
            "[log]\n"
            f'level = "{level}"\n'
        )

    def write_config(self, name: str = "ccdaemon.toml", **settings: Any) -> Path:
        """Write ``config_text(**settings)`` to ``name`` in the test's directory."""
        path = self.directory / name
        path.write_text(self.config_text(**settings))
        return path

    def notify_socket(self) -> Notify:
        """A bound datagram socket for ``NOTIFY_SOCKET``, closed at the end of the test."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.stack.callback(sock.close)
        path = str(self.directory / f"notify-{len(self.started)}")
        sock.bind(path)
        sock.settimeout(0)
        return Notify(sock, path)

    async def start(
        self,
        config: Path | None = None,
        *,
        notify: Notify | None = None,
        env: Mapping[str, str] | None = None,
    ) -> DaemonProcess:
        """Start ``ccdaemon serve`` on ``config`` (default: a fresh default TOML); no wait."""
        config = config or self.write_config()
        log_path = self.directory / f"daemon-{len(self.started)}.log"
        log_file = log_path.open("wb")
        self.stack.callback(log_file.close)
        extra = {"NOTIFY_SOCKET": notify.path} if notify is not None else {}
        # Popen only forks and execs; the process is waited for in a thread.
        process = subprocess.Popen(  # noqa: ASYNC220
            [CCDAEMON, "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**clean_env(**extra), **(env or {})},
        )
        settings = load(config, clean_env())
        session = await self.stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(settings.listen.socket), force_close=True)
            )
        )
        daemon = DaemonProcess(RunningDaemon(settings, session), process, log_path, log_file)
        daemon.api.tagged = self.tagged
        self.started.append(daemon)
        return daemon

    async def start_healthy(
        self, config: Path | None = None, *, notify: Notify | None = None
    ) -> DaemonProcess:
        """Start a daemon and wait for health 200 "ok"."""
        daemon = await self.start(config, notify=notify)
        await daemon.wait_healthy()
        return daemon

    async def close(self) -> None:
        """Kill what still runs, close files and sockets, remove the instance's things."""
        for daemon in self.started:
            if daemon.process.poll() is None:
                daemon.process.kill()
            await anyio.to_thread.run_sync(daemon.process.wait)
        await self.stack.aclose()
        # A removal a killed daemon asked for may still be under way: the engine then
        # refuses a second one (409) for a moment.
        for attempt in range(20):
            try:
                await remove_instance(self.engine, self.instance)
                break
            except Conflict:
                if attempt == 19:
                    raise
                await anyio.sleep(0.25)
        for image in self.tagged:
            with contextlib.suppress(NoSuchImage):
                await images.remove(self.engine, image)


@contextlib.asynccontextmanager
async def daemons(engine_socket: str, directory: Path, engine: Engine) -> AsyncIterator[Spawner]:
    """A ``Spawner`` for one test, cleaned up whatever the test's outcome."""
    spawner = Spawner(directory, engine_socket, engine)
    try:
        yield spawner
    finally:
        await spawner.close()


async def instance_containers(docker: aiodocker.Docker, instance: str) -> dict[str, str]:
    """Every container of ``instance`` the engine holds (aiodocker): ccid label -> state."""
    found = await docker.containers.list(
        all=True, filters={"label": [f"{INSTANCE_LABEL}={instance}"]}
    )
    return {str(item["Labels"][CCID_LABEL]): str(item["State"]) for item in found}


async def until(check: Callable[[], bool], *, within: float = 10) -> None:
    """Wait until ``check()`` is true, for states only polling shows (files, datagrams)."""
    with anyio.fail_after(within):
        while not check():  # noqa: ASYNC110 -- no event to wait on across processes
            await anyio.sleep(0.02)


async def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ccdaemon ARGS...`` to completion (60 s at most); status, stdout, stderr as text."""
    with anyio.fail_after(60):
        done = await anyio.run_process([CCDAEMON, *args], check=False, env=clean_env())
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )
