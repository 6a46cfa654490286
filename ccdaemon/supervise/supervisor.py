"""The supervisor: launches and stops through the backend, and keeps the chaincode table true.

Actions (launch, stop, build) go through the backend (runtime/backend.py) and so through
the launch queue; what the supervisor learns by watching (exits, chaincodes found at
start) the backend reports into the table (``watch_exits``, supervise/recovery.py). The
fronts reach chaincodes through this class only.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

import anyio

from ccdaemon.engine import EngineUnavailable, NotFound
from ccdaemon.runtime.errors import StartupTimeout, UnknownChaincode
from ccdaemon.supervise.recovery import recover
from ccdaemon.supervise.registry import ENDED, Chaincode, Registry, State

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Mapping

    from anyio.abc import TaskStatus

    from ccdaemon.runtime.backend import Backend, EngineVersion
    from ccdaemon.runtime.launcher import Launched, LaunchRequest
    from ccdaemon.runtime.package import ChaincodePackage
    from ccdaemon.supervise.recovery import Recovered

log = logging.getLogger(__name__)

#: Pause before asking the engine again when it is away during a wait.
_RETRY = 1.0


class LaunchObserver(Protocol):
    """Receives each launch's outcome (the daemon's metrics)."""

    def launch(
        self,
        chaincode: str,
        seconds: float,
        *,
        success: bool,
        timeout: bool,
        phases: Mapping[str, float],
    ) -> None:
        """One launch ended."""


class Supervisor:
    """The managed chaincodes of one daemon: launch, stop, wait, logs."""

    def __init__(
        self, backend: Backend, registry: Registry, *, observer: LaunchObserver | None = None
    ) -> None:
        self.backend = backend
        self.registry = registry
        self._observer = observer
        # When the peer created each container it is launching itself (launch metrics).
        self._peer_began: dict[str, float] = {}

    async def start(
        self, *, task_status: TaskStatus[Recovered] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Check the engine, take back an earlier run's chaincodes, then watch exits for ever.

        ``task_status`` gets what recovery found once exits are watched, so none is missed.

        Raises:
            BackendUnfit: the engine cannot serve the backend.
        """
        await self.backend.prepare()
        recovered = await recover(self.backend, self.registry)
        async with anyio.create_task_group() as group:
            await group.start(self.backend.watch_exits, self.registry)
            task_status.started(recovered)

    async def version(self) -> EngineVersion:
        """The engine's version, after a ping (health)."""
        return await self.backend.version()

    async def build(
        self,
        ccid: str,
        package: ChaincodePackage,
        *,
        progress: Callable[[str], object] | None = None,
    ) -> tuple[str, bool]:
        """Make the image of ``ccid`` unless it exists (build at install); name, built now."""
        return await self.backend.build(ccid, package, progress=progress)

    async def built(self, ccid: str) -> str | None:
        """The image of ``ccid`` if it exists and this daemon built it."""
        return await self.backend.built(ccid)

    def get(self, ccid: str) -> Chaincode:
        """The record of ``ccid``.

        Raises:
            UnknownChaincode: the daemon does not manage ``ccid``.
        """
        cc = self.registry.get(ccid)
        if cc is None:
            raise UnknownChaincode(ccid)
        return cc

    async def launch(
        self, request: LaunchRequest, *, progress: Callable[[str], object] | None = None
    ) -> tuple[Chaincode, Launched]:
        """Launch ``request.ccid`` (after any earlier work for it) and record the outcome.

        Raises:
            Whatever Launcher.launch raises; the record then says ``failed``.
        """
        container, image = self.backend.names(request.ccid)
        last = self.registry.get(request.ccid)
        # Recovery saw every container of this daemon's, so without a record, or after a
        # removal, the name is free; if not after all, create says so and it is cleared.
        name_free = last is None or last.removed
        cc = self.registry.launching(request.ccid, container, request.image or image)
        began = time.perf_counter()
        phases: Mapping[str, float] = {}
        try:
            launched = await self.backend.launch(request, progress=progress, name_free=name_free)
        except BaseException as exc:
            if self.registry.is_current(cc):
                self.registry.failed(cc, str(exc) or type(exc).__name__)
            self._observe(
                request.ccid, began, phases, success=False, timeout=isinstance(exc, StartupTimeout)
            )
            raise
        phases = launched.timings
        if self.registry.is_current(cc):
            self.registry.running(cc, launched.container_id)
        self._observe(request.ccid, began, phases, success=True, timeout=False)
        log.info(
            "launched %s as %s in %.2f s%s",
            request.ccid,
            container,
            launched.timings.get("total", 0.0),
            " (image built)" if launched.built else "",
        )
        return cc, launched

    def _observe(
        self, ccid: str, began: float, phases: Mapping[str, float], *, success: bool, timeout: bool
    ) -> None:
        if self._observer is not None:
            self._observer.launch(
                ccid, time.perf_counter() - began, success=success, timeout=timeout, phases=phases
            )

    # --- a peer's own Docker controller, through the Docker-API front ----------------

    def peer_created(self, ccid: str, container: str, image: str) -> None:
        """The peer created ``container`` for ``ccid``: its launch has begun."""
        self.registry.launching(ccid, container, image)
        self._peer_began[container] = time.perf_counter()

    def peer_started(self, container: str, container_id: str) -> None:
        """The peer started ``container``: running, and the launch observed."""
        cc = self.registry.by_container(container)
        began = self._peer_began.pop(container, None)
        if cc is None or cc.state is not State.LAUNCHING:
            return
        self.registry.running(cc, container_id)
        if began is not None:
            self._observe(cc.ccid, began, {}, success=True, timeout=False)
        log.info("peer started %s as %s", cc.ccid, container)

    def peer_removed(self, container: str) -> None:
        """The peer removed ``container`` (its stop, or the first step of a relaunch)."""
        self._peer_began.pop(container, None)
        cc = self.registry.by_container(container)
        if cc is not None and cc.state is not State.STOPPED:
            self.registry.stopped(cc, removed=True)

    async def stop(self, ccid: str, *, grace: int = 10, dontremove: bool = False) -> Chaincode:
        """Fabric's stop: stop with ``grace`` seconds, kill, remove (unless ``dontremove``).

        Raises:
            UnknownChaincode: the daemon does not manage ``ccid``.
            EngineError, EngineUnavailable: from the steps.
        """
        cc = self.get(ccid)
        was = cc.state
        self.registry.stopping(cc)
        try:
            exit_code = await self.backend.stop(ccid, grace=grace, dontremove=dontremove)
        except BaseException:
            cc.state = was  # the container is as it was, as far as anyone knows
            raise
        if exit_code is not None and cc.exit_code is None:
            cc.exit_code = exit_code
        self.registry.stopped(cc, removed=not dontremove)
        log.info("stopped %s (exit code %s)", ccid, cc.exit_code)
        return cc

    async def wait(self, ccid: str) -> int:
        """Block until the chaincode's container is no longer running; its exit code.

        No timeout: a chaincode runs as long as it runs. A chaincode stopped or failed
        without an exit code answers -1.

        Raises:
            UnknownChaincode: the daemon does not manage ``ccid``.
        """
        while True:
            cc = self.get(ccid)
            if cc.state in ENDED:
                return -1 if cc.exit_code is None else cc.exit_code
            changed = cc.changed
            if cc.state is State.RUNNING and cc.container_id:
                try:
                    code = await self.backend.wait(cc.container, cc.container_id)
                    if code is not None:
                        # The table says so at once, not when the watcher sees it too.
                        self.registry.exited(cc.container, code, container_id=cc.container_id)
                        return code
                    # Removed under us: the table learns why from the stop or events.
                except EngineUnavailable as exc:
                    log.debug("waiting for %s: engine away (%s); asking again", ccid, exc)
                    with anyio.move_on_after(_RETRY):
                        await changed.wait()
                    continue
            await changed.wait()

    async def logs(
        self, ccid: str, *, follow: bool, tail: int | None
    ) -> AsyncGenerator[bytes, None]:
        """The container's output, demultiplexed, as lines ending in a newline.

        When the container is gone, the lines the daemon kept of it (with attachStdout).

        Raises:
            UnknownChaincode: the daemon does not manage ``ccid``.
        """
        cc = self.get(ccid)
        try:
            async with self.backend.logs(
                cc.container, cc.container_id, follow=follow, tail=tail
            ) as lines:
                async for line in lines:
                    yield line.text.encode() + b"\n"
        except NotFound:
            kept = self.backend.output(ccid)
            for text in kept if tail is None else kept[-tail:] if tail else []:
                yield text.encode() + b"\n"
