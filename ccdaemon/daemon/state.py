"""The running daemon's parts, as the API handlers see them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar

import anyio
from aiohttp import web

from ccdaemon.daemon.errors import APIError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ccdaemon.daemon.metrics import Metrics
    from ccdaemon.engine import Engine
    from ccdaemon.launchqueue import LaunchQueue
    from ccdaemon.runtime.package import ChaincodePackage
    from ccdaemon.supervise.supervisor import Supervisor

T = TypeVar("T")


class Daemon:
    """Engine, queue, supervisor and metrics of one daemon, plus its lifecycle flags.

    ``ready`` is set once the engine has answered and recovery is done; until then, and
    after shutdown has begun, work is refused with 503. Long polls (wait, followed logs)
    run in cancel scopes that shutdown cancels, so they never hold the daemon up.
    """

    def __init__(  # noqa: PLR0913 -- the daemon's parts, each named
        self,
        engine: Engine,
        queue: LaunchQueue,
        supervisor: Supervisor,
        metrics: Metrics,
        *,
        labels: Mapping[str, str],
        max_package_size: int,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.supervisor = supervisor
        self.metrics = metrics
        self.labels = labels
        self.max_package_size = max_package_size
        self.ready = anyio.Event()
        self.stopping = False
        self._polls: set[anyio.CancelScope] = set()

    def admit(self) -> None:
        """Refuse new work while starting or stopping.

        Raises:
            APIError: 503 ``shutting_down`` or ``engine_unavailable``.
        """
        if self.stopping:
            raise APIError(503, "shutting_down", "the daemon is shutting down")
        if not self.ready.is_set():
            raise APIError(
                503,
                "engine_unavailable",
                f"the daemon is starting: engine at {self.engine.endpoint} not reached yet",
            )

    async def long_poll(self, work: Awaitable[T]) -> T:
        """Run a long wait that shutdown may end.

        Raises:
            APIError: 503 ``shutting_down`` when shutdown ended it.
        """
        with anyio.CancelScope() as scope:
            self._polls.add(scope)
            try:
                return await work
            finally:
                self._polls.discard(scope)
        raise APIError(503, "shutting_down", "the daemon is shutting down")

    def end_long_polls(self) -> None:
        """Shutdown: end every wait and followed log now."""
        self.stopping = True
        for scope in list(self._polls):
            scope.cancel()

    async def build(
        self, ccid: str, package: ChaincodePackage, *, progress: Callable[[str], object] | None
    ) -> tuple[str, bool]:
        """Build at install; the build's duration goes to Fabric's build metric."""
        began = time.perf_counter()
        success = False
        try:
            result = await self.supervisor.launcher.build(ccid, package, progress=progress)
            success = True
        finally:
            self.metrics.build(ccid, time.perf_counter() - began, success=success)
        return result

    def render_metrics(self) -> tuple[bytes, str]:
        """The metrics page, with the table's counts as of now."""
        self.metrics.set_chaincodes(self.supervisor.registry.counts())
        return self.metrics.render()


#: Where handlers find the daemon.
DAEMON = web.AppKey("daemon", Daemon)
