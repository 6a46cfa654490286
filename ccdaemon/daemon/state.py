"""The running daemon's parts, as the API handlers see them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from aiohttp import web

from ccdaemon.daemon.errors import APIError
from ccdaemon.daemon.memory import Trimmer
from ccdaemon.runtime.dockervm import CLEANUP_TIMEOUT

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Mapping

    from ccdaemon.daemon.metrics import Metrics
    from ccdaemon.launchqueue import LaunchQueue
    from ccdaemon.runtime.package import ChaincodePackage
    from ccdaemon.runtime.site import Site
    from ccdaemon.supervise.supervisor import Supervisor

T = TypeVar("T")


class Daemon:
    """Site, queue, supervisor and metrics of one daemon, plus its lifecycle flags.

    ``ready`` is set once the engine has answered and recovery is done; until then, and
    after shutdown has begun, work is refused with 503. Long polls (wait, followed logs)
    run in cancel scopes that shutdown cancels, so they never hold the daemon up.
    """

    def __init__(  # noqa: PLR0913 -- the daemon's parts, each named
        self,
        site: Site,
        queue: LaunchQueue,
        supervisor: Supervisor,
        metrics: Metrics,
        *,
        labels: Mapping[str, str],
        max_package_size: int,
    ) -> None:
        self.site = site
        self.queue = queue
        self.supervisor = supervisor
        self.metrics = metrics
        self.labels = labels
        self.max_package_size = max_package_size
        self.ready = anyio.Event()
        self.stopping = False
        self._polls: set[anyio.CancelScope] = set()
        self._work: set[anyio.CancelScope] = set()
        self._idle = anyio.Event()
        self._trimmer = Trimmer()

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
                f"the daemon is starting: engine at {self.site.endpoint} not reached yet",
            )

    def check_table(self) -> None:
        """Refuse questions about chaincodes until an earlier run's are re-adopted.

        Before then the table is not whole: a chaincode still running from the last run
        would be answered 404 unknown, and an external builder's ``run`` would take that
        as final and abandon it.

        Raises:
            APIError: 503 ``starting``.
        """
        if not self.ready.is_set():
            raise APIError(
                503, "starting", "the daemon is starting: chaincodes are not re-adopted yet"
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

    async def in_flight(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a launch, build or collection that shutdown waits for, then cancels.

        Raises:
            APIError: 503 ``shutting_down`` when shutdown cancelled it (a cancelled launch
                has removed what it made).
        """
        try:
            self.admit()
        except APIError:
            work.close()  # never started: no "never awaited" warning, nothing to undo
            raise
        with anyio.CancelScope() as scope:
            self._work.add(scope)
            try:
                return await work
            finally:
                self._work.discard(scope)
                self._trimmer.finished()
                if not self._work:
                    self._trimmer.idle()
                    if self.stopping:
                        self._idle.set()
        raise APIError(
            503, "shutting_down", "cancelled: the daemon is stopping; nothing of it is left"
        )

    async def drain(self, grace: float) -> None:
        """Shutdown: refuse new work, end long polls, give work ``grace`` seconds, cancel it.

        Returns once cancelled work has finished its cleanup (bounded: each cleanup has
        its own limit, CLEANUP_TIMEOUT), so nothing is half-made when the engine client
        closes.
        """
        self.stopping = True
        for scope in list(self._polls):
            scope.cancel()
        if not self._work:
            return
        with anyio.move_on_after(grace):
            await self._idle.wait()
        for scope in list(self._work):
            scope.cancel()
        with anyio.move_on_after(CLEANUP_TIMEOUT + 5):
            await self._idle.wait()

    async def build(
        self, ccid: str, package: ChaincodePackage, *, progress: Callable[[str], object] | None
    ) -> tuple[str, bool]:
        """Build at install; the build's duration goes to Fabric's build metric."""
        began = time.perf_counter()
        success = False
        try:
            result = await self.supervisor.build(ccid, package, progress=progress)
            success = True
        finally:
            self.metrics.build(ccid, time.perf_counter() - began, success=success)
        return result

    async def built(self, ccid: str) -> str | None:
        """The image this daemon built for ``ccid``, if the engine still has it."""
        return await self.supervisor.built(ccid)

    def render_metrics(self) -> tuple[bytes, str]:
        """The metrics page, with the table's counts as of now."""
        self.metrics.set_chaincodes(self.supervisor.registry.counts())
        return self.metrics.render()


#: Where handlers find the daemon.
DAEMON = web.AppKey("daemon", Daemon)
