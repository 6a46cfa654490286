"""A backend of the tests' own: chaincodes as records in memory, no engine at all.

``MemoryBackend`` implements ``ccdaemon.runtime.backend.Backend`` and nothing else, so
that the supervisor runs on it exactly as on the engine backends: a launch makes a
running "container", ``kill`` ends it underneath the daemon (as a crash or an operator
would), and ``watch_exits`` tells the table, as the engine's events do.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from ccdaemon.engine import EngineVersion, NoSuchContainer
from ccdaemon.engine.streams import Line, StdStream
from ccdaemon.engine.versions import APIVersion
from ccdaemon.runtime.backend import Found, ImageCandidate, Recovery
from ccdaemon.runtime.launcher import Launched
from ccdaemon.runtime.naming import names

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import TaskStatus

    from ccdaemon.runtime.backend import Table
    from ccdaemon.runtime.launcher import LaunchRequest
    from ccdaemon.runtime.package import ChaincodePackage

_IDS = itertools.count(1)


@dataclass
class Process:
    """One "container": its chaincode, id and, once it ended, its exit code."""

    ccid: str
    container_id: str
    image: str
    exit_code: int | None = None
    ended: anyio.Event = field(default_factory=anyio.Event)


class MemoryBackend:
    """Chaincodes in memory; ``processes`` is the "engine", by container name."""

    def __init__(self, processes: dict[str, Process] | None = None) -> None:
        #: Shared between two backends, it is an engine that outlives a daemon.
        self.processes = {} if processes is None else processes
        self.images_built: dict[str, str] = {}
        self._exits: list[str] = []
        self._exited = anyio.Event()

    def names(self, ccid: str) -> tuple[str, str]:
        """Fabric's names, as the container backend gives them."""
        got = names(ccid, network_id="mem", peer_id="peer0")
        return got.container, got.image

    def output(self, ccid: str) -> list[str]:
        """No output is kept."""
        del ccid
        return []

    async def launch(
        self,
        request: LaunchRequest,
        *,
        progress: Callable[[str], object] | None = None,
        name_free: bool = False,
    ) -> Launched:
        """A running "container", replacing one of the same name (Fabric's stop first)."""
        del progress, name_free
        container, image = self.names(request.ccid)
        self.processes.pop(container, None)
        container_id = f"{next(_IDS):064x}"
        self.processes[container] = Process(request.ccid, container_id, image)
        self.images_built.setdefault(image, f"sha256:{container_id}")
        return Launched(container, container_id, image)

    def kill(self, container: str, code: int = 137) -> None:
        """End a "container" underneath the daemon; its exit reaches ``watch_exits``."""
        process = self.processes[container]
        process.exit_code = code
        process.ended.set()
        self._exits.append(container)
        self._exited.set()

    async def stop(
        self, ccid: str, *, grace: int = 0, dontkill: bool = False, dontremove: bool = False
    ) -> int | None:
        """End and (unless ``dontremove``) remove the chaincode's "container"."""
        del grace, dontkill
        container, _ = self.names(ccid)
        process = self.processes.get(container)
        if process is None:
            return None
        if process.exit_code is None:
            process.exit_code = 0
            process.ended.set()
        if not dontremove:
            del self.processes[container]
        return process.exit_code

    async def wait(self, container: str, container_id: str) -> int | None:
        """Its exit code once it ended; None when it is gone."""
        process = self.processes.get(container)
        if process is None or process.container_id != container_id:
            return None
        await process.ended.wait()
        return process.exit_code

    @contextlib.asynccontextmanager
    async def logs(
        self, container: str, container_id: str | None, *, follow: bool, tail: int | None
    ) -> AsyncIterator[AsyncIterator[Line]]:
        """One line, or NoSuchContainer (a NotFound) when it is gone."""
        del container_id, follow, tail
        if container not in self.processes:
            raise NoSuchContainer(404, f"No such container: {container}")

        async def lines() -> AsyncIterator[Line]:
            yield Line(StdStream.STDOUT, f"{container} here")

        yield lines()

    async def build(
        self,
        ccid: str,
        package: ChaincodePackage,
        *,
        progress: Callable[[str], object] | None = None,
    ) -> tuple[str, bool]:
        """Record the image; built now unless it was there."""
        del package, progress
        _, image = self.names(ccid)
        built = image not in self.images_built
        self.images_built.setdefault(image, f"sha256:{ccid}")
        return image, built

    async def built(self, ccid: str) -> str | None:
        """The image if "built"."""
        _, image = self.names(ccid)
        return image if image in self.images_built else None

    def follow(self, container: str) -> None:
        """No output to relay."""
        del container

    async def version(self) -> EngineVersion:
        """A version as an engine would give it."""
        api = APIVersion(1, 41)
        return EngineVersion("docker", "memory", api, APIVersion(1, 12), api, {})

    async def prepare(self) -> None:
        """Nothing to check."""

    async def recover(self) -> Recovery:
        """Every "container" of an earlier backend on the same ``processes``."""
        found = [
            Found(p.ccid, name, p.container_id, p.image, p.exit_code is None, None, p.exit_code)
            for name, p in self.processes.items()
        ]
        return Recovery(found, [])

    async def watch_exits(
        self, table: Table, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Tell ``table`` each ``kill``, for ever."""
        task_status.started()
        while True:
            await self._exited.wait()
            self._exited = anyio.Event()
            while self._exits:
                container = self._exits.pop(0)
                process = self.processes[container]
                assert process.exit_code is not None
                table.exited(container, process.exit_code, container_id=process.container_id)

    async def ended(self) -> list[tuple[str, str]]:
        """Chaincodes whose "container" ended: (ccid, container)."""
        return [(p.ccid, n) for n, p in self.processes.items() if p.exit_code is not None]

    async def images(self) -> list[ImageCandidate]:
        """Every image "built"."""
        return [ImageCandidate(i, [name], None) for name, i in self.images_built.items()]

    async def remove_image(self, image_id: str) -> str | None:
        """Removed unless a "container" runs on it."""
        name = next(n for n, i in self.images_built.items() if i == image_id)
        if any(p.image == name and p.exit_code is None for p in self.processes.values()):
            return f"image {name} is in use"
        del self.images_built[name]
        return None

    async def caches(self) -> list[str]:
        """No build caches."""
        return []

    async def remove_caches(self) -> list[str]:
        """Nothing to remove."""
        return []
