"""The container backend's exits: the engine's events stream, with replay and reconciliation.

The watcher follows ``die`` events of the daemon's own containers (by label). When the
stream breaks (engine restarted, socket gone) it waits, reconnects asking the engine to
replay from the last event it saw (``since``), and then reconciles the table against
the engine's container list, because a replay is not a promise: Podman 4.3 sometimes
replays nothing, and an engine restart kills containers without a ``die`` we can read.

The reconciliation also removes what the break left half-made. Work in flight when the
engine died failed, and so did its cleanup (the engine was away): a launch cut short
leaves a container never started, a build its builder container. These go, as recovery
removes them at daemon start; nothing in flight now is touched.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from ccdaemon.engine import EngineUnavailable, NoSuchContainer, containers, system
from ccdaemon.runtime.backend import parse_time
from ccdaemon.runtime.dockervm import remove_quietly
from ccdaemon.runtime.hostconfig import CCID_LABEL, ROLE_LABEL

if TYPE_CHECKING:
    from collections.abc import Mapping

    from anyio.abc import TaskStatus

    from ccdaemon.engine import Engine
    from ccdaemon.runtime.backend import Ended, Table

log = logging.getLogger(__name__)

#: Waits between reconnection attempts grow to this.
MAX_BACKOFF = 5.0
#: Engine container states in which a container's process runs.
_RUNNING = frozenset({"running", "paused", "restarting"})


def label_filters(labels: Mapping[str, str]) -> list[str]:
    """Docker's ``label`` filter values that select exactly the daemon's own objects."""
    return [f"{key}={value}" for key, value in labels.items()]


class ExitWatcher:
    """Keeps the running chaincodes' states true from the engine's events.

    Args:
        engine: the engine.
        table: the supervisor's records to update.
        labels: the labels every container of this daemon carries.
        since: replay events from this Unix time on the first connection (the moment
            recovery listed the containers, so no exit falls between the two).
    """

    def __init__(
        self,
        engine: Engine,
        table: Table,
        labels: Mapping[str, str],
        *,
        since: str | None = None,
    ) -> None:
        self._engine = engine
        self._table = table
        self._filters = {
            "type": ["container"],
            "event": ["die"],
            "label": label_filters(labels),
        }
        self._labels = labels
        self._since = since
        #: When the stream last broke (Unix time); reset once reconciled.
        self._broke_at: float | None = None
        self.connected = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the events for ever (cancel to end); reconnect with replay on breaks.

        ``task_status`` is told once the stream is first connected.
        """
        backoff = 0.25
        first = True
        while True:
            since = self._since or f"{time.time():.3f}"
            try:
                async with system.events(
                    self._engine, filters=self._filters, since=since
                ) as events:
                    self._since = since
                    if not first:
                        await self.reconcile()
                    self._tell_engine(up=True)
                    if first:
                        task_status.started()
                    first = False
                    backoff = 0.25
                    async for event in events:
                        self._seen(event)
            except EngineUnavailable as exc:
                log.warning("engine events stream broke (%s); reconnecting", exc)
                if self._broke_at is None:
                    self._broke_at = time.time()
            self._tell_engine(up=False)
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _tell_engine(self, *, up: bool) -> None:
        if up:
            self.connected.set()
        elif self.connected.is_set():
            self.connected = anyio.Event()

    def _seen(self, event: Mapping[str, Any]) -> None:
        stamp = event.get("timeNano")
        if isinstance(stamp, int):
            self._since = f"{stamp / 1e9:.9f}"
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        name = attributes.get("name")
        if event.get("Action") != "die" or not isinstance(name, str):
            return
        try:
            code = int(attributes.get("exitCode", -1))
        except ValueError:
            code = -1
        at = datetime.fromtimestamp(stamp / 1e9, UTC) if isinstance(stamp, int) else None
        cc = self._table.exited(name, code, at, container_id=str(actor.get("ID", "")))
        if cc is not None:
            self._exited(cc)

    def _exited(self, cc: Ended) -> None:
        log.warning(
            "chaincode %s (container %s) exited with code %s", cc.ccid, cc.container, cc.exit_code
        )

    async def reconcile(self) -> None:
        """Mark running records whose container is not running any more as exited."""
        found = await containers.list_(self._engine, labels=self._labels)
        running = {
            str(item.get("Id")) for item in found if item.get("State") in {"running", "paused"}
        }
        for _, container, container_id in self._table.running_chaincodes():
            if container_id in running:
                continue
            code, at = -1, None
            try:
                state = (await containers.inspect(self._engine, container_id))["State"]
                code = int(state.get("ExitCode", -1))
                at = parse_time(state.get("FinishedAt"))
            except NoSuchContainer:
                pass  # removed behind our back: the exit code is lost with it
            ended = self._table.exited(container, code, at)
            if ended is not None:
                self._exited(ended)
        await self._remove_leftovers(found)
        self._broke_at = None

    async def _remove_leftovers(self, found: list[dict[str, Any]]) -> None:
        """Remove containers of work the break failed: never started, or builders.

        A chaincode container that is not running is kept when its record names it and
        says exited or stopped (kept for its logs), or has work in flight (a launch or
        stop owns it); any other is a launch's leftover. A builder container that is not
        running goes when it was made before the break: its build failed with the engine.
        """
        broke_at = self._broke_at
        for item in found:
            if item.get("State") in _RUNNING:
                continue
            labels = item.get("Labels") or {}
            container_id = str(item.get("Id"))
            if labels.get(ROLE_LABEL) == "builder":
                if broke_at is None or not await self._made_before(container_id, broke_at):
                    continue
            elif self._table.keeps(str(labels.get(CCID_LABEL)), container_id):
                continue
            name = str((item.get("Names") or ["/"])[0]).lstrip("/")
            log.warning(
                "removing container %s (%s): left half-made when the engine went away",
                name,
                item.get("State"),
            )
            await remove_quietly(self._engine, container_id)

    async def _made_before(self, container_id: str, moment: float) -> bool:
        try:
            created = parse_time((await containers.inspect(self._engine, container_id))["Created"])
        except NoSuchContainer:
            return False
        return created is not None and created.timestamp() < moment
