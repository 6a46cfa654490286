"""Engine calls made on a peer's behalf: the runtime side of the Docker-API front.

A peer on its own Docker controller drives DockerVM.Start step by step; the front
decides each step (dockerfront/policy.py) and hands it here, where it meets the same
bounds as ccdaemon's own launches: control steps for one container run in that name's
line of the launch queue and within its engine bound (Docker 20.10 deadlocks under
unbounded concurrent removals), streams (build, attach, wait, archive reads) run
beside it as the launcher's own streams do, with no overall timeout.

Every call is made at the API version negotiated with the engine, whatever version the
peer asked for in its path: that is the version bridge (hyperledger/fabric#5350).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccdaemon.engine import NoSuchContainer, containers, images, system
from ccdaemon.engine.transport import segment

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Mapping

    from ccdaemon.engine import Engine, EngineVersion
    from ccdaemon.engine.transport import Response
    from ccdaemon.launchqueue import LaunchQueue


@dataclass(frozen=True, slots=True)
class Answer:
    """An engine answer read whole: status, content type and body."""

    status: int
    content_type: str
    body: bytes
    #: The inspect JSON of the container whose ownership was checked first, if any.
    checked: Mapping[str, Any] | None = None


class NotOwned(Exception):
    """The container exists but is not this daemon's (its labels say another owner)."""


class Relay:
    """The engine, behind the launch queue, for calls a peer makes.

    Args:
        engine: the daemon's engine client.
        queue: the daemon's launch queue (per-name order, engine bound).
        labels: the labels that mark a container as this daemon's.
    """

    def __init__(self, engine: Engine, queue: LaunchQueue, labels: Mapping[str, str]) -> None:
        self._engine = engine
        self._queue = queue
        self._labels = dict(labels)

    async def version(self) -> EngineVersion:
        """The engine's version and the API version negotiated with it."""
        return await self._engine.version()

    async def ping(self) -> None:
        """Reach the engine's ``/_ping``: it answers, or this raises its error."""
        await system.ping(self._engine)

    async def image(self, name: str) -> dict[str, Any]:
        """The image's inspect JSON.

        Raises:
            NoSuchImage: no such image.
        """
        return await images.inspect(self._engine, name)

    async def owned(self, container: str) -> dict[str, Any]:
        """Inspect ``container`` and make sure it is this daemon's; its inspect JSON.

        Raises:
            NoSuchContainer: no such container.
            NotOwned: it is another's.
        """
        found = await containers.inspect(self._engine, container)
        labels = (found.get("Config") or {}).get("Labels") or {}
        if any(labels.get(key) != value for key, value in self._labels.items()):
            raise NotOwned(container)
        return found

    async def control(  # noqa: PLR0913 -- one engine call's parts
        self,
        line: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] | None = None,
        content_type: str | None = None,
        extra_time: float = 0.0,
        check: str | None = None,
    ) -> Answer:
        """A control step in container ``line``'s turn of the queue, its answer read whole.

        ``check`` names a container whose ownership is checked first, in the same turn
        (so no other step of that name comes between the check and the call).

        Raises:
            NoSuchContainer, NotOwned: from the ownership check.
            EngineError: the engine answered with an error status.
            EngineUnavailable: the engine could not be reached or did not answer in time.
        """

        async def step(_: object) -> Answer:
            checked = None if check is None else await self.owned(check)
            async with self._engine.request(
                method,
                path,
                params=params,
                body=body,
                content_type=content_type,
                extra_time=extra_time,
            ) as resp:
                data = await resp.read()
                return Answer(resp.status, resp.headers.get("content-type", ""), data, checked)

        return await self._queue.run(line, step)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] | None = None,
        content_type: str | None = None,
    ) -> AsyncIterator[Response]:
        """A streamed call (build, attach, wait, archive read): the response, head read.

        Raises:
            EngineError: the engine answered with an error status.
            EngineUnavailable: the engine could not be reached.
        """
        async with self._engine.request(
            method, path, params=params, body=body, content_type=content_type, kind="stream"
        ) as resp:
            yield resp


def container_path(container: str, action: str = "") -> str:
    """``/containers/NAME[/ACTION]``, the name quoted as one segment."""
    return f"/containers/{segment(container)}" + (f"/{action}" if action else "")


__all__ = ["Answer", "NoSuchContainer", "NotOwned", "Relay", "container_path"]
