"""The control API's client for asynchronous code: ``Client``'s calls, each in a thread.

One client, not two: ``AsyncClient`` makes the same requests through the same code as
``Client`` (``ccdaemon.apiclient.client``), each call in a worker thread of its own, so
that any number may be in flight at once. A call that is cancelled finishes in its
thread first (its socket is closed when it ends): a launch or a stop the daemon was
given is never cut off half-way, as with the engine's calls that ``whole()`` guards.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import anyio
import anyio.to_thread

from ccdaemon.apiclient.client import Client

if TYPE_CHECKING:
    import builtins
    import os
    from collections.abc import AsyncIterator, Callable, Mapping
    from pathlib import Path
    from types import TracebackType

T = TypeVar("T")


class AsyncClient:
    """``Client``'s calls, awaitable; use it as ``async with AsyncClient() as client``.

    Attributes:
        address: the socket path (without ``unix://``) or the ``https://`` URL.
        timeout: seconds allowed to connect, and for a whole control call.
    """

    def __init__(
        self,
        socket_or_url: str | os.PathLike[str] | None = None,
        *,
        tls: tuple[str | Path, str | Path, str | Path] | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Describe the daemon to reach, as ``Client`` does (and raising as it does)."""
        self._client = Client(socket_or_url, tls=tls, timeout=timeout)
        self.address = self._client.address
        self.timeout = timeout
        # No limit: long waits and log streams must not hold back control calls.
        self._threads = anyio.CapacityLimiter(math.inf)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the idle connections; the client opens new ones if used again."""
        self._client.close()

    async def health(self) -> dict[str, Any]:
        """``Client.health``."""
        return await self._call(self._client.health)

    async def launch(
        self, body: Mapping[str, Any], *, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """``Client.launch``; ``progress`` is called from the call's thread."""
        return await self._call(functools.partial(self._client.launch, body, progress=progress))

    async def build(
        self, body: Mapping[str, Any], *, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """``Client.build``; ``progress`` is called from the call's thread."""
        return await self._call(functools.partial(self._client.build, body, progress=progress))

    async def list(self, state: str | None = None) -> builtins.list[dict[str, Any]]:
        """``Client.list``."""
        return await self._call(functools.partial(self._client.list, state))

    async def get(self, ccid: str) -> dict[str, Any]:
        """``Client.get``."""
        return await self._call(functools.partial(self._client.get, ccid))

    async def stop(
        self,
        ccid: str,
        timeout: int = 10,  # noqa: ASYNC109 - the container's stop grace period, not a deadline
        dontremove: bool = False,
        *,
        within: float | None = None,
    ) -> dict[str, Any]:
        """``Client.stop``."""
        return await self._call(
            functools.partial(self._client.stop, ccid, timeout, dontremove, within=within)
        )

    async def wait(self, ccid: str) -> int:
        """``Client.wait``."""
        return await self._call(functools.partial(self._client.wait, ccid))

    async def logs(
        self,
        ccid: str,
        *,
        follow: bool = False,
        tail: int | Literal["all"] = "all",
        timestamps: bool = False,
    ) -> AsyncIterator[str]:
        """``Client.logs``, each line read in a worker thread."""
        lines = self._client.logs(ccid, follow=follow, tail=tail, timestamps=timestamps)
        try:
            while True:
                line = await self._call(functools.partial(next, lines, None))
                if line is None:
                    return
                yield line
        finally:
            lines.close()

    async def gc(self, dry_run: bool = False, *, caches: bool = False) -> dict[str, Any]:
        """``Client.gc``."""
        return await self._call(functools.partial(self._client.gc, dry_run, caches=caches))

    async def _call(self, call: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(call, limiter=self._threads)
