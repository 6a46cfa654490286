"""The swarm backend's output relays: each service's logs, followed into Fabric's logger.

A followed service log never ends by itself, not even when the task ends or the
service is removed (seen on Docker 28.5), so a relay ends ``_RELAY_LINGER`` seconds
after its task was seen ended (``task_ended``), or at once when its service goes (``end``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from ccdaemon.engine import EngineUnavailable, NoSuchService, streams, swarm

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from ccdaemon.engine import Engine
    from ccdaemon.runtime.output import Output

log = logging.getLogger("ccdaemon.runtime.swarmlauncher")

#: Seconds a relay keeps reading after its task ended: lines still on their way.
_RELAY_LINGER = 2.0


class ServiceOutput:
    """The output relays of one daemon's services on the manager ``engine``, owned by ``group``.

    Lines go to ``output`` (the logger and the kept tails); a resumed relay reads ``lines``.
    """

    def __init__(self, engine: Engine, output: Output, lines: int, group: TaskGroup) -> None:
        self._engine = engine
        self._output = output
        self._lines = lines
        self._group = group
        self._relays: dict[str, anyio.CancelScope] = {}

    def relay(self, service: str) -> None:
        """Relay a launched service's output until its task ended or it is removed."""
        self._group.start_soon(self._relay, service)

    def resume(self, service: str) -> None:
        """The same for a service found running at start: its old lines refill the tail."""
        self._group.start_soon(self._resume, service)

    def task_ended(self, service: str) -> None:
        """The service's task has ended: end its relay once late lines are in."""
        relay = self._relays.get(service)
        if relay is not None:
            relay.deadline = min(relay.deadline, anyio.current_time() + _RELAY_LINGER)

    def end(self, service: str) -> None:
        """The service is being removed: its relay ends now."""
        relay = self._relays.pop(service, None)
        if relay is not None:
            relay.cancel()

    async def _relay(self, service: str) -> None:
        await self._follow(service, self._output.relay(service), tail=None, stamped=False)

    async def _resume(self, service: str) -> None:
        relay = self._output.resume(service)
        await self._follow(service, relay, tail=self._lines, stamped=True)

    async def _follow(
        self,
        service: str,
        relay: Callable[[streams.Line], None],
        *,
        tail: int | None,
        stamped: bool,
    ) -> None:
        """Follow the service's logs into ``relay`` until ``task_ended`` or ``end``.

        ``stamped`` asks for the engine's time stamps.
        """
        with anyio.CancelScope() as scope:
            self._relays[service] = scope
            try:
                async with swarm.service_logs(
                    self._engine,
                    service,
                    follow=True,
                    tail=tail,
                    tty=False,
                    timestamps=stamped,
                ) as frames:
                    async for line in streams.lines(frames):
                        relay(line)
            except (EngineUnavailable, NoSuchService) as exc:
                log.warning("output of service %s is no longer followed: %s", service, exc)
            finally:
                if self._relays.get(service) is scope:
                    del self._relays[service]
