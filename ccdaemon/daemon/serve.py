"""``ccdaemon serve``: the daemon's life from start to exit, in one task group.

Start: bind the API socket (so ``ccdaemon health`` answers 503 rather than "no socket"
while the engine is away), wait for the engine, re-adopt what an earlier run left
(supervise/recovery.py), follow the engine's events, then tell systemd READY=1.

Stop (SIGTERM, SIGINT): refuse new work, end long polls, give in-flight launches
``shutdown.grace`` seconds to finish (then cancel them: a cancelled launch removes what
it made), stop every chaincode if ``shutdown.stop_chaincodes`` (Fabric 2.x's way; by
default they keep running and the next start re-adopts them), remove the socket.

SIGHUP re-reads the configuration file: the log level and format apply at once; any
other change is logged as needing a restart.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ccdaemon import __version__
from ccdaemon import log as logsetup
from ccdaemon.config import Config, ConfigError, load
from ccdaemon.daemon.app import make_app
from ccdaemon.daemon.configview import describe
from ccdaemon.daemon.metrics import Metrics
from ccdaemon.daemon.sockets import StartError, check_directory, clear_stale, give, unlink
from ccdaemon.daemon.state import Daemon
from ccdaemon.daemon.systemd import Notifier
from ccdaemon.daemon.tls import server_context
from ccdaemon.engine import APIVersionError, EngineUnavailable
from ccdaemon.errors import CcdaemonError
from ccdaemon.launchqueue import LaunchQueue
from ccdaemon.runtime.errors import BackendUnfit
from ccdaemon.runtime.site import Site
from ccdaemon.supervise.registry import Registry, State
from ccdaemon.supervise.supervisor import Supervisor

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import TaskGroup

    from ccdaemon.runtime.backend import EngineVersion
    from ccdaemon.runtime.certs import ClientCredentials
    from ccdaemon.runtime.launcher import Issuer, RuntimeConfig

log = logging.getLogger("ccdaemon")

#: Longest pause between attempts to reach an absent engine at start.
_MAX_BACKOFF = 5.0
#: A connection must finish its request's headers within this of opening (or of its last
#: answer), or it is closed: aiohttp's idle timer runs until a request is whole, so it is
#: also the bound on a client trickling headers (slow loris); its default is an hour.
#: Longer than aiohttp clients keep an idle connection (15 s), so they close first.
IDLE_TIMEOUT = 30.0
#: After an answer sent before the body was read whole (413, 408), what is left of the
#: body is read and dropped for this long, so the client sees the answer, then the
#: connection closes (aiohttp's default, 10 s, would let a slow client linger that long).
LINGER_TIME = 2.0
#: What requests still open after the drain (health, lists) get to finish.
_LAST_REQUESTS = 2.0


class _ClientFault(logging.Filter):
    """A request the HTTP parser refuses is the client's fault: one WARNING line.

    aiohttp answers it 400 itself and logs it at ERROR with a traceback, so any client
    could fill the daemon's log with tracebacks.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if isinstance(fault, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            # aiohttp's message quotes at most ~100 bytes of the request, escaped.
            record.msg, record.args = "refused a malformed request: %s", (fault.message,)
            record.exc_info = record.exc_text = None
        return True


#: The HTTP server's own log (aiohttp's "aiohttp.server" otherwise), client faults demoted.
_HTTP_LOG = logging.getLogger("ccdaemon.http")
_HTTP_LOG.addFilter(_ClientFault())


def main(config: Path | None, *, check_config: bool) -> int:
    """Run the daemon until SIGTERM; 0 on a clean stop, 1 when it cannot run."""
    try:
        settings = load(config)
    except ConfigError as exc:
        print(f"ccdaemon: {exc}", file=sys.stderr)  # noqa: T201 -- before logging exists
        return 1
    if check_config:
        print(describe(settings))  # noqa: T201
        return 0
    logsetup.setup(settings.log.level, settings.log.format)
    failed = False
    try:
        anyio.run(run, settings)
    except* CcdaemonError as group:
        for error in group.exceptions:
            log.error("ccdaemon cannot run: %s", error)  # noqa: TRY400 -- the message is the story
        failed = True
    return 1 if failed else 0


async def run(config: Config, *, stop: anyio.Event | None = None) -> None:
    """The daemon: serve the API until SIGTERM/SIGINT, or until ``stop`` is set.

    ``stop`` replaces the signals for a daemon run inside another program (the tests).
    """
    # One source for the owner label, whoever built the Config.
    runtime = replace(config.runtime, instance=config.instance)
    labels = runtime.owner_labels()
    ca = _chaincode_ca(config)
    metrics = Metrics()
    with Notifier.from_env() as notifier:
        async with (
            Site(
                config.engine.endpoint,
                tls=config.engine.tls,
                api_version=config.engine.api_version,
                observer=metrics.engine_request,
            ) as site,
            anyio.create_task_group() as group,
        ):
            queue = LaunchQueue(
                group,
                engine_limit=config.engine.engine_limit,
                build_limit=config.engine.build_limit,
            )
            backend = site.backend(
                config.engine.backend,
                queue,
                ca,
                runtime,
                group=group,
                host_config=config.policy.apply(runtime.host_config.to_engine()),
                build_cache_size=config.engine.build_cache_size,
                swarm=config.swarm,
            )
            supervisor = Supervisor(backend, Registry(), observer=metrics)
            daemon = Daemon(
                site,
                queue,
                supervisor,
                metrics,
                labels=labels,
                max_package_size=config.policy.max_package_size,
            )
            metrics.watch_queue(queue.stats)
            runner = web.AppRunner(
                make_app(daemon),
                shutdown_timeout=_LAST_REQUESTS,
                access_log=None,
                keepalive_timeout=IDLE_TIMEOUT,
                lingering_time=LINGER_TIME,
                logger=_HTTP_LOG,
            )
            await runner.setup()
            try:
                await _listen(runner, config)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await runner.cleanup()
                raise
            try:
                group.start_soon(notifier.run_watchdog)
                group.start_soon(_start, config, runtime, daemon, notifier, group)
                if stop is None:
                    await _signals(config, daemon, notifier)
                else:
                    await stop.wait()
                log.info(
                    "stopping: no new work; in-flight launches get %g s", config.shutdown.grace
                )
                notifier.stopping("stopping")
                await daemon.drain(config.shutdown.grace)
                if config.shutdown.stop_chaincodes and daemon.ready.is_set():
                    await _stop_all(daemon, config.shutdown.stop_timeout)
            finally:
                with anyio.CancelScope(shield=True):
                    await runner.cleanup()
                    unlink(config.listen.socket)
                group.cancel_scope.cancel()
    log.info("stopped")


def _chaincode_ca(config: Config) -> Issuer:
    """The chaincode CA: the configured one, loaded now, or one generated on first use.

    Configured files are read at start so a bad one fails the start, not a launch; the
    generated CA is made as the peer makes its own, at the first launch that needs it.
    """
    if config.ca_cert is not None and config.ca_key is not None:
        from ccdaemon.runtime.certs import ChaincodeCA  # noqa: PLC0415 -- see _GeneratedCA

        return ChaincodeCA.from_files(config.ca_cert, config.ca_key)
    return _GeneratedCA()


class _GeneratedCA:
    """A chaincode CA made on first use.

    The cryptography library costs ~8 MiB of memory, which a daemon that has issued no
    certificate yet (or runs with TLS off) need not carry.
    """

    def __init__(self) -> None:
        self._ca: Issuer | None = None

    def issue(self) -> ClientCredentials:
        """Issue from the CA, generating it the first time."""
        if self._ca is None:
            from ccdaemon.runtime.certs import ChaincodeCA  # noqa: PLC0415

            self._ca = ChaincodeCA.generate()
        return self._ca.issue()


async def _start(
    config: Config, runtime: RuntimeConfig, daemon: Daemon, notifier: Notifier, group: TaskGroup
) -> None:
    """Reach the engine, re-adopt, follow events, open the Docker-API front; then READY=1."""
    endpoint = daemon.site.endpoint
    version = await _reach(daemon.supervisor, endpoint, notifier)
    log.info(
        "engine %s %s at %s, API %s", version.kind, version.version, endpoint, version.negotiated
    )
    try:
        recovered = await group.start(daemon.supervisor.start)
    except BackendUnfit as exc:
        raise StartError(str(exc)) from exc
    daemon.ready.set()
    front = config.docker_api
    if front.socket is not None or front.tcp is not None:
        # Imported only when configured: a daemon without the front need not carry it
        # (0.7 MiB of RSS).
        from ccdaemon.daemon.dockerapi import serve_front  # noqa: PLC0415

        await group.start(serve_front, config, runtime, daemon)
    status = f"ccdaemon {__version__} ready on {config.listen.socket}; {recovered.summary()}"
    log.info("%s", status)
    notifier.ready(status)


async def _reach(supervisor: Supervisor, endpoint: str, notifier: Notifier) -> EngineVersion:
    """Wait for the engine at ``endpoint`` to answer, as long as it takes, saying so meanwhile.

    Raises:
        StartError: the engine answers but speaks no API version ccdaemon does.
    """
    backoff = 0.25
    while True:
        try:
            return await supervisor.version()
        except APIVersionError as exc:
            raise StartError(f"engine at {endpoint}: {exc}") from exc
        except EngineUnavailable as exc:
            status = f"waiting for the engine at {endpoint}: {exc}"
            log.warning("%s", status)
            notifier.status(status)
        await anyio.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF)


async def _signals(config: Config, daemon: Daemon, notifier: Notifier) -> None:
    """Return on SIGTERM or SIGINT; reload on SIGHUP."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum != signal.SIGHUP:
                return
            notifier.reloading()
            _reload(config)
            if daemon.ready.is_set():
                notifier.ready("configuration reloaded")
            else:  # still starting: READY=1 stays the start's to send
                notifier.status("configuration reloaded; waiting for the engine")


def _reload(config: Config) -> None:
    try:
        fresh = load(config.source)
    except ConfigError as exc:
        log.error("reload refused, the running configuration stays: %s", exc)  # noqa: TRY400
        return
    logsetup.setup(fresh.log.level, fresh.log.format)
    changed = [
        name
        for name in (
            "listen",
            "docker_api",
            "engine",
            "runtime",
            "images",
            "policy",
            "shutdown",
            "instance",
        )
        if getattr(fresh, name) != getattr(config, name)
    ]
    log.info("configuration reloaded: log level %s, format %s", fresh.log.level, fresh.log.format)
    if changed:
        log.warning("changes to %s take effect at the next restart", ", ".join(changed))


async def _stop_all(daemon: Daemon, grace: int) -> None:
    """Stop every running chaincode (shutdown.stop_chaincodes), concurrently, in queue order."""
    running = [cc.ccid for cc in daemon.supervisor.registry.all() if cc.state is State.RUNNING]
    log.info("stopping %d chaincodes", len(running))

    async def stop_one(ccid: str) -> None:
        try:
            await daemon.supervisor.stop(ccid, grace=grace)
        except CcdaemonError as exc:
            log.warning("could not stop %s: %s", ccid, exc)

    async with anyio.create_task_group() as group:
        for ccid in running:
            group.start_soon(stop_one, ccid)


async def _listen(runner: web.AppRunner, config: Config) -> None:
    """Bind the Unix socket (mode and group as configured) and the optional TCP listener."""
    path = config.listen.socket
    check_directory(path.parent)
    clear_stale(path)
    old = os.umask(0o177)  # the socket is born private; its mode is set right after
    try:
        await web.UnixSite(runner, str(path)).start()
    finally:
        os.umask(old)
    try:
        await _finish_listening(runner, config)
    except BaseException:
        unlink(path)  # ours: bound just above
        raise


async def _finish_listening(runner: web.AppRunner, config: Config) -> None:
    """The socket's group and mode, and the TCP listener."""
    listen = config.listen
    path = listen.socket
    give(path, listen.socket_mode, listen.socket_group)
    log.info("API on %s (mode %04o)", path, listen.socket_mode)
    if listen.tcp:
        context = server_context(listen.tcp_ca, listen.tcp_cert, listen.tcp_key, table="listen")
        host, _, port = listen.tcp.rpartition(":")
        # An IPv6 address is written "[::1]:7060"; the socket wants it without brackets.
        await web.TCPSite(
            runner, host.strip("[]") or "127.0.0.1", int(port), ssl_context=context
        ).start()
        log.info("API on https://%s (client certificates required)", listen.tcp)
