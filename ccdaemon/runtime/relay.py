"""Engine calls made on a peer's behalf: the runtime side of the Docker-API front.

A peer on its own Docker controller drives DockerVM.Start step by step; the front
decides each step (dockerfront/policy.py) and hands it here, where it meets the same
bounds as ccdaemon's own launches: control steps for one container run in that name's
line of the launch queue and within its engine bound (Docker 20.10 deadlocks under
unbounded concurrent removals), streams (build, attach, wait, archive reads) run
beside it as the launcher's own streams do, with no overall timeout.

Every call is made at the API version negotiated with the engine, whatever version the
peer asked for in its path: that is the version bridge (hyperledger/fabric#5350).

A step on a container is checked to be this daemon's before the engine acts. The first
time by an inspect; after that (and for a container the front created) by the id the
check or the create gave, which the call then names, so that the engine acts on that
container and no other, and a relaunch's six steps cost six engine calls, not twelve.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.engine import NoSuchContainer, NotFound, containers, images, system
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
    #: The (id, name) of the container whose ownership was checked first, if any.
    owner: tuple[str, str] | None = None


#: Containers remembered as this daemon's; the oldest is forgotten past this (it is then
#: checked by an inspect again). A peer removes its containers, so few are ever held.
KNOWN_LIMIT = 1024


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
        #: What a path may name (a name, or an id) -> (id, name) of this daemon's container.
        self._known: dict[str, tuple[str, str]] = {}

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
        self._remember(container, str(found["Id"]), str(found.get("Name", "")).lstrip("/"))
        return found

    def known(self, container: str) -> tuple[str, str] | None:
        """The (id, name) of ``container`` if it was made or checked as this daemon's."""
        return self._known.get(container)

    def forget(self, container: str) -> None:
        """``container`` is gone, or may not be what it was: check it again next time."""
        self._known.pop(container, None)

    def _remember(self, container: str, container_id: str, name: str) -> None:
        self._known[container] = (container_id, name)
        while len(self._known) > KNOWN_LIMIT:
            del self._known[next(iter(self._known))]

    async def create(
        self, line: str, name: str | None, body: bytes, params: Mapping[str, str] | None
    ) -> Answer:
        """Create a container in ``line``'s turn; the one made is remembered as this daemon's.

        Raises:
            EngineError: the engine answered with an error status.
            EngineUnavailable: the engine could not be reached or did not answer in time.
        """

        async def step(_: object) -> Answer:
            return await self._call(
                "POST",
                "/containers/create",
                params=params,
                body=body,
                content_type="application/json",
                extra_time=0.0,
            )

        answer = await self._queue.run(line, step)
        created = str(orjson.loads(answer.body).get("Id", ""))
        if created:
            # The peer names a chaincode's container; a builder's it addresses by id.
            self._remember(name or created, created, name or "")
        return answer

    async def step(  # noqa: PLR0913 -- one engine call's parts
        self,
        container: str,
        method: str,
        action: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] | None = None,
        content_type: str | None = None,
        extra_time: float = 0.0,
    ) -> Answer:
        """A step on one of this daemon's containers, checked first, in its turn of the queue.

        A container known as this daemon's is named by its id; one the engine no longer
        has under that id is checked again by name, and so is any for a streamed body.

        Raises:
            NoSuchContainer, NotOwned: from the ownership check.
            EngineError: the engine answered with an error status.
            EngineUnavailable: the engine could not be reached or did not answer in time.
        """

        async def call(target: str) -> Answer:
            path = container_path(target, action)
            return await self._call(
                method,
                path,
                params=params,
                body=body,
                content_type=content_type,
                extra_time=extra_time,
            )

        async def step(_: object) -> Answer:
            # A streamed body (an upload) is sent once: it is checked by name each time.
            known = self._known.get(container) if isinstance(body, bytes | None) else None
            if known is not None:
                try:
                    answer = await call(known[0])
                except NotFound:  # gone under that id: check the name again
                    self.forget(container)
                else:
                    return self._after(container, method, replace(answer, owner=known))
            await self.owned(container)  # remembers it
            owner = self._known[container]
            return self._after(container, method, replace(await call(owner[0]), owner=owner))

        return await self._queue.run(container, step)

    def _after(self, container: str, method: str, answer: Answer) -> Answer:
        if method == "DELETE":
            self.forget(container)
        return answer

    @asynccontextmanager
    async def read(
        self, container: str, method: str, action: str, params: Mapping[str, str] | None
    ) -> AsyncIterator[Response]:
        """A streamed call on one of this daemon's containers (wait, attach, archive read).

        Checked as ``step`` checks, by the known id or an inspect; the response, head read.

        Raises:
            NoSuchContainer, NotOwned: from the ownership check.
            EngineError: the engine answered with an error status.
            EngineUnavailable: the engine could not be reached.
        """
        known = self._known.get(container)
        if known is None:
            await self.owned(container)
            known = self._known[container]
        async with AsyncExitStack() as stack:
            try:
                resp = await stack.enter_async_context(
                    self.stream(method, container_path(known[0], action), params=params)
                )
            except NotFound:  # gone under that id: check the name again
                self.forget(container)
                await self.owned(container)
                again = container_path(self._known[container][0], action)
                resp = await stack.enter_async_context(self.stream(method, again, params=params))
            yield resp

    async def _call(  # noqa: PLR0913 -- one engine call's parts
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: bytes | AsyncIterable[bytes] | None,
        content_type: str | None,
        extra_time: float,
    ) -> Answer:
        async with self._engine.request(
            method,
            path,
            params=params,
            body=body,
            content_type=content_type,
            extra_time=extra_time,
        ) as resp:
            data = await resp.read()
            return Answer(resp.status, resp.headers.get("content-type", ""), data)

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
