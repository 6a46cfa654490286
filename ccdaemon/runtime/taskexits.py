"""The swarm backend's exits, from the tasks' states.

The engine's events do not cover tasks (service events are create, update and remove),
and a container's ``die`` event comes only from the node it ran on. So the watcher asks
the manager for the daemon's tasks, by label, every ``interval`` seconds: a running
chaincode whose task finished has exited, with the task's exit code. A poll after the
engine was away is its own reconciliation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from ccdaemon.engine import EngineError, EngineUnavailable, swarm
from ccdaemon.engine.swarm import TaskStatus
from ccdaemon.runtime.backend import parse_time

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from anyio.abc import TaskStatus as Started

    from ccdaemon.engine import Engine
    from ccdaemon.runtime.backend import Table

log = logging.getLogger(__name__)


class TaskWatcher:
    """Keeps the running chaincodes' states true from their swarm tasks.

    Args:
        engine: the swarm manager.
        table: the supervisor's records to update.
        labels: the labels every service (and so every task) of this daemon carries.
        interval: seconds between polls; it bounds how late an exit is reported.
        ended: told the service name of each exit it reports (the launcher ends the
            service's output relay).
    """

    def __init__(
        self,
        engine: Engine,
        table: Table,
        labels: Mapping[str, str],
        *,
        interval: float = 1.0,
        ended: Callable[[str], object] | None = None,
    ) -> None:
        self._engine = engine
        self._table = table
        self._labels = labels
        self._interval = interval
        self._ended = ended
        self.connected = anyio.Event()

    async def run(self, *, task_status: Started[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Poll for ever (cancel to end); an engine away is waited out.

        ``task_status`` is told once the first poll is answered.
        """
        started = False
        while True:
            # Records that run before the poll: one launched during it is not in the answer.
            running = self._table.running_chaincodes()
            try:
                tasks = await swarm.task_list(self._engine, labels=self._labels)
            except (EngineUnavailable, EngineError) as exc:
                if self.connected.is_set():
                    log.warning("swarm tasks cannot be read (%s); trying again", exc)
                    self.connected = anyio.Event()
            else:
                self.connected.set()
                if not started:
                    task_status.started()
                    started = True
                self._seen(tasks, running)
            await anyio.sleep(self._interval)

    def _seen(self, tasks: list[dict[str, object]], running: list[tuple[str, str, str]]) -> None:
        by_container = {}
        for task in tasks:
            status = TaskStatus.of(task)
            if status.container_id:
                by_container[status.container_id] = (status, task)
        for _, service, container_id in running:
            found = by_container.get(container_id)
            if found is not None and not found[0].finished:
                continue
            # Finished, or gone with its service (removed behind the daemon's back).
            code, at = -1, None
            if found is not None:
                status, task = found
                code = -1 if status.exit_code is None else status.exit_code
                at = _finished_at(task)
            # The table ignores a record that changed since (relaunched, stopped).
            ended = self._table.exited(service, code, at, container_id=container_id)
            if ended is not None:
                if self._ended is not None:
                    self._ended(ended.container)
                log.warning(
                    "chaincode %s (service %s) exited with code %s",
                    ended.ccid,
                    ended.container,
                    ended.exit_code,
                )


def _finished_at(task: Mapping[str, object]) -> datetime | None:
    status = task.get("Status")
    return parse_time(status.get("Timestamp")) if isinstance(status, dict) else None
