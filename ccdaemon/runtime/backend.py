"""The backend seam: what the layers above need from "the place chaincodes run".

A backend launches, stops, waits for and reads chaincodes, and owns every engine detail
of that place: the containers of one engine (``runtime.launcher.Launcher``) or the
services of a swarm (``runtime.swarmlauncher.SwarmLauncher``). Supervision keeps the
table and decides policy; it reaches the engine only through these calls:

- ``recover``: what an earlier run left, each chaincode ``Found`` running or ended; the
  backend removes what no one can use (unfinished launches, builders) itself;
- ``watch_exits``: the stream of exits (engine events, or polled tasks) written into a
  ``Table``, the supervisor's view of its records;
- ``ended``, ``images``, ``remove_image``, ``caches`` and ``remove_caches``: the
  candidates of a collection;
- ``prepare`` and ``version``: the start-up check and health of the engine.

A new backend is one class that implements ``Backend`` whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeAlias

from ccdaemon.engine import versions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from anyio.abc import TaskStatus

    from ccdaemon.engine.streams import Line
    from ccdaemon.runtime.launcher import Launched, LaunchRequest
    from ccdaemon.runtime.package import ChaincodePackage

#: What the engine says of itself and the API version spoken with it (``Backend.version``),
#: named here so that the layers above need not reach the engine for it.
EngineVersion: TypeAlias = versions.EngineVersion


@dataclass(frozen=True, slots=True)
class Found:
    """A chaincode an earlier run of the daemon left, as the backend found it at start.

    ``exit_code`` and ``finished_at`` are set when it no longer runs.
    """

    ccid: str
    container: str
    container_id: str
    image: str
    running: bool
    started_at: datetime | None = None
    exit_code: int | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Recovery:
    """What ``Backend.recover`` found: chaincodes to take back, and what it removed."""

    found: list[Found]
    removed: list[str]


@dataclass(frozen=True, slots=True)
class ImageCandidate:
    """An image of this daemon's that a collection may remove once nothing runs on it.

    ``ccid`` is None for an image a peer built through the Docker-API front.
    """

    image_id: str
    tags: list[str]
    ccid: str | None


class Ended(Protocol):
    """A record the table marked exited: for the watcher's log line."""

    @property
    def ccid(self) -> str:
        """The chaincode."""
        ...

    @property
    def container(self) -> str:
        """Its container (or service) name."""
        ...

    @property
    def exit_code(self) -> int | None:
        """The code it exited with."""
        ...


class Table(Protocol):
    """The supervisor's records, as an exit watcher reads and writes them."""

    def running_chaincodes(self) -> list[tuple[str, str, str]]:
        """Chaincodes recorded as running: (ccid, container, container id)."""
        ...

    def exited(
        self, container: str, code: int, at: datetime | None = None, /, *, container_id: str = ""
    ) -> Ended | None:
        """Record the exit of ``container``; the record if it was running (else None)."""
        ...

    def keeps(self, ccid: str, container_id: str) -> bool:
        """Whether a stopped container of ``ccid`` is the table's to keep or work on."""
        ...


class Backend(Protocol):
    """The place chaincodes run: everything supervision and the fronts ask of it."""

    def names(self, ccid: str) -> tuple[str, str]:
        """The container (or service) and image names of ``ccid`` on this peer."""
        ...

    def output(self, ccid: str) -> list[str]:
        """The last lines the chaincode wrote (empty unless output is attached)."""
        ...

    async def launch(
        self,
        request: LaunchRequest,
        *,
        progress: Callable[[str], object] | None = None,
        name_free: bool = False,
    ) -> Launched:
        """Launch the chaincode (Fabric's ContainerRuntime.Start)."""
        ...

    async def stop(
        self, ccid: str, *, grace: int = 0, dontkill: bool = False, dontremove: bool = False
    ) -> int | None:
        """Fabric's ContainerRuntime.Stop; the exit code, None when nothing ran."""
        ...

    async def wait(self, container: str, container_id: str) -> int | None:
        """Block until the chaincode no longer runs; its exit code, None if it is gone."""
        ...

    def logs(
        self, container: str, container_id: str | None, *, follow: bool, tail: int | None
    ) -> AbstractAsyncContextManager[AsyncIterator[Line]]:
        """The chaincode's output, line by line."""
        ...

    async def build(
        self,
        ccid: str,
        package: ChaincodePackage,
        *,
        progress: Callable[[str], object] | None = None,
    ) -> tuple[str, bool]:
        """Make the image of ``ccid`` unless it exists; its name and whether it was built."""
        ...

    async def built(self, ccid: str) -> str | None:
        """The image of ``ccid`` if it exists and this daemon built it."""
        ...

    def follow(self, container: str) -> None:
        """Relay the output of a running chaincode found at start."""
        ...

    async def version(self) -> EngineVersion:
        """The engine's version, after a ping (health)."""
        ...

    async def prepare(self) -> None:
        """Check at start that the engine can serve this backend (raise ``StartError``)."""
        ...

    async def recover(self) -> Recovery:
        """What an earlier run left: chaincodes found, and the unfinished work removed."""
        ...

    async def watch_exits(self, table: Table, *, task_status: TaskStatus[None] = ...) -> None:
        """Keep ``table``'s running chaincodes true for ever; started once connected."""
        ...

    async def ended(self) -> list[tuple[str, str]]:
        """Chaincodes whose container no longer runs: (ccid, container)."""
        ...

    async def images(self) -> list[ImageCandidate]:
        """This daemon's chaincode images (with a tag)."""
        ...

    async def remove_image(self, image_id: str) -> str | None:
        """Remove an image; None when removed, else why the engine kept it."""
        ...

    async def caches(self) -> list[str]:
        """This daemon's build caches (by name)."""
        ...

    async def remove_caches(self) -> list[str]:
        """Remove the build caches no build is using; those removed."""
        ...


def parse_time(value: object) -> datetime | None:
    """The engine's RFC 3339 time, or None for its zero time ("0001-01-01T00:00:00Z")."""
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
