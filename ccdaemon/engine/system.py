"""Engine-wide calls: ping, version, info, and the events stream."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.engine import streams

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ccdaemon.engine.transport import Engine, EngineVersion


async def ping(engine: Engine) -> str:
    """Return the API version the engine advertises in ``/_ping`` (``""`` if none).

    Raises:
        EngineUnavailable: the engine cannot be reached.
        EngineError: the engine answered with an error status.
    """
    async with engine.request("GET", "/_ping", versioned=False) as resp:
        await resp.read()
        return resp.headers.get("Api-Version", "")


async def version(engine: Engine) -> EngineVersion:
    """Return the engine's version and the negotiated API version."""
    return await engine.version()


async def info(engine: Engine) -> dict[str, Any]:
    """Return ``GET /info``: engine-wide facts (storage driver, cgroup version, counts)."""
    result: dict[str, Any] = await engine.call("GET", "/info")
    return result


@asynccontextmanager
async def events(
    engine: Engine,
    *,
    filters: Mapping[str, Sequence[str]] | None = None,
    since: str | None = None,
    until: str | None = None,
) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Open the engine's events stream and yield an iterator over its events.

    Without ``until`` the stream has no end; it has no read timeout. ``since`` and
    ``until`` are Unix timestamps (``"1700000000.5"``) or the engine's relative forms.

    Raises:
        StreamBroken: the connection broke while events were being read.
    """
    params: dict[str, str] = {}
    if filters:
        params["filters"] = orjson.dumps(filters).decode()
    if since is not None:
        params["since"] = since
    if until is not None:
        params["until"] = until
    async with engine.request("GET", "/events", params=params, kind="stream") as resp:
        yield streams.json_lines(resp)
