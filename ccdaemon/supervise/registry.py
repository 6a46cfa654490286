"""The managed-chaincode table: one record per ccid, its state and what is known of it.

States and who moves a record between them:

    launching ──launch done──▶ running ──engine "die"──▶ exited
        │                         │
        └──launch failed──▶ failed └──stop──▶ stopping ──▶ stopped

A relaunch of any record starts again at ``launching``. The table is plain synchronous
data owned by the event loop; every change wakes whoever waits on the record.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio


class State(enum.StrEnum):
    """Where a chaincode is in its life, as the API reports it."""

    LAUNCHING = "launching"
    RUNNING = "running"
    EXITED = "exited"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


#: States in which no container of the chaincode is running.
ENDED = frozenset({State.EXITED, State.STOPPED, State.FAILED})
#: Exits kept for launches that have not yet recorded their container (see Registry).
_EARLY_EXITS = 256


def now() -> datetime:
    """The time stamped on state changes (UTC)."""
    return datetime.now(UTC)


@dataclass(slots=True)
class Chaincode:
    """One managed chaincode."""

    ccid: str
    container: str
    image: str
    state: State = State.LAUNCHING
    container_id: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    adopted: bool = False
    #: The container is known to be gone (stopped and removed, or a failed launch's
    #: cleanup): a relaunch need not clear the name.
    removed: bool = False
    changed: anyio.Event = field(default_factory=anyio.Event, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The API's Chaincode object (docs/api-contract.md)."""
        return {
            "ccid": self.ccid,
            "container": self.container,
            "container_id": self.container_id,
            "image": self.image,
            "state": self.state.value,
            "exit_code": self.exit_code,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "error": self.error,
            "adopted": self.adopted,
        }

    def _touch(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


def _iso(moment: datetime | None) -> str | None:
    return (
        None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


#: Record states whose container the daemon keeps on purpose (for logs, or dontremove).
_KEPT = frozenset({State.EXITED, State.STOPPED})
#: Record states with work in flight on the container: that work owns it.
_BUSY = frozenset({State.LAUNCHING, State.STOPPING})


class Registry:
    """Every chaincode the daemon manages, by ccid and by container name."""

    def __init__(self) -> None:
        self._by_ccid: dict[str, Chaincode] = {}
        self._by_container: dict[str, Chaincode] = {}
        # Exits the engine reported for a container whose launch had not yet recorded it
        # running (a chaincode that dies at once: its "die" event may overtake the start's
        # answer), by container id, applied when the launch does. Bounded: an entry whose
        # launch then failed is never claimed.
        self._early_exits: dict[str, tuple[int, datetime | None]] = {}

    def get(self, ccid: str) -> Chaincode | None:
        """The record of ``ccid``, if the daemon knows it."""
        return self._by_ccid.get(ccid)

    def by_container(self, name: str) -> Chaincode | None:
        """The record whose container has this name (engine events carry names)."""
        return self._by_container.get(name.lstrip("/"))

    def all(self) -> list[Chaincode]:
        """Every record, sorted by ccid."""
        return sorted(self._by_ccid.values(), key=lambda cc: cc.ccid)

    def running_chaincodes(self) -> list[tuple[str, str, str]]:
        """(ccid, container, container id) of every record running with a container."""
        return [
            (cc.ccid, cc.container, cc.container_id)
            for cc in self._by_ccid.values()
            if cc.state is State.RUNNING and cc.container_id
        ]

    def keeps(self, ccid: str, container_id: str) -> bool:
        """Whether a stopped container of ``ccid`` is the table's to keep or work on.

        Work in flight owns it (a launch or a stop), or the record keeps it (exited or
        stopped, for its logs).
        """
        cc = self._by_ccid.get(ccid)
        return cc is not None and (
            cc.state in _BUSY or (cc.state in _KEPT and cc.container_id == container_id)
        )

    def counts(self) -> dict[str, int]:
        """How many records are in each state (every state present, zeros included)."""
        result = dict.fromkeys((state.value for state in State), 0)
        for cc in self._by_ccid.values():
            result[cc.state.value] += 1
        return result

    def launching(self, ccid: str, container: str, image: str) -> Chaincode:
        """A launch of ``ccid`` has been accepted: a fresh record replaces any old one."""
        old = self._by_ccid.get(ccid)
        cc = Chaincode(ccid=ccid, container=container, image=image)
        self._put(cc)
        if old is not None:
            old._touch()  # noqa: SLF001 -- wakes its waiters, who then find the new record
        return cc

    def running(self, cc: Chaincode, container_id: str) -> None:
        """The container has started (and, if the engine said so already, exited)."""
        cc.state, cc.container_id = State.RUNNING, container_id
        cc.started_at = cc.started_at or now()
        cc.exit_code = cc.finished_at = cc.error = None
        early = self._early_exits.pop(container_id, None)
        if early is not None:
            cc.state, cc.exit_code, cc.finished_at = State.EXITED, early[0], early[1] or now()
        cc._touch()  # noqa: SLF001

    def adopt(self, cc: Chaincode) -> None:
        """Take in a record built from a container found at daemon start."""
        cc.adopted = True
        self._put(cc)

    def is_current(self, cc: Chaincode) -> bool:
        """Whether ``cc`` is still the record of its ccid (a relaunch replaces it)."""
        return self._by_ccid.get(cc.ccid) is cc

    def failed(self, cc: Chaincode, error: str) -> None:
        """The launch failed; nothing of it is left in the engine."""
        cc.state, cc.error, cc.finished_at, cc.removed = State.FAILED, error, now(), True
        cc._touch()  # noqa: SLF001

    def exited(
        self, container: str, exit_code: int, at: datetime | None = None, *, container_id: str = ""
    ) -> Chaincode | None:
        """The engine reports the container ended; return the record it ended.

        A report for the container of a launch not yet recorded running is kept for
        that launch (``running`` applies it); a stale report (another container id, a
        record not running) changes nothing.
        """
        cc = self.by_container(container)
        if cc is not None and cc.state is State.LAUNCHING and container_id:
            self._early_exits[container_id] = (exit_code, at)
            while len(self._early_exits) > _EARLY_EXITS:
                del self._early_exits[next(iter(self._early_exits))]
            return None
        if cc is None or cc.state is not State.RUNNING:
            return None
        if container_id and cc.container_id and container_id != cc.container_id:
            return None
        cc.state, cc.exit_code, cc.finished_at = State.EXITED, exit_code, at or now()
        cc._touch()  # noqa: SLF001
        return cc

    def stopping(self, cc: Chaincode) -> None:
        """A stop has been accepted."""
        cc.state = State.STOPPING
        cc._touch()  # noqa: SLF001

    def stopped(self, cc: Chaincode, *, removed: bool) -> None:
        """The container is stopped, and ``removed`` unless the stop was asked not to."""
        cc.state, cc.finished_at, cc.removed = State.STOPPED, cc.finished_at or now(), removed
        cc._touch()  # noqa: SLF001

    def forget(self, ccid: str) -> None:
        """Drop the record of ``ccid`` (its container is gone and no one needs it)."""
        cc = self._by_ccid.pop(ccid, None)
        if cc is not None and self._by_container.get(cc.container) is cc:
            del self._by_container[cc.container]

    def _put(self, cc: Chaincode) -> None:
        self._by_ccid[cc.ccid] = cc
        self._by_container[cc.container] = cc
