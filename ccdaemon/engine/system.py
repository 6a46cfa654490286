"""Engine-wide calls: ping, version, info, and the events stream."""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.engine import streams

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from ccdaemon.engine.transport import Engine, EngineVersion


async def ping(engine: Engine) -> str:
    """Return the API version the engine advertises in ``/_ping`` (``""`` if none).

    Raises:
        EngineUnavailable: the engine cannot be reached.
        EngineError: the engine answered with an error status.
    """
    async with engine.request("GET", "/_ping", versioned=False) as resp:
        await resp.read()
        return resp.headers.get("api-version", "")


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
    ``filters`` takes Docker's keys. Podman's compatible API (4.3) drops every event once a
    filter is given, and every event when a timestamp has a fraction; on Podman the keys
    type, label, container, event and image are applied here instead, and timestamps are
    widened to whole seconds (the filters still hold exactly).

    Raises:
        StreamBroken: the connection broke while events were being read.
        ValueError: a filter key this client cannot apply on Podman.
    """
    params: dict[str, str] = {}
    podman = (await engine.version()).kind == "podman"
    local = filters if filters and podman else None
    if local:
        unknown = set(local) - _LOCAL_FILTERS
        if unknown:
            raise ValueError(f"event filters {sorted(unknown)} cannot be applied on Podman")
    elif filters:
        params["filters"] = orjson.dumps(filters).decode()
    if since is not None:
        params["since"] = _whole_seconds(since, math.floor) if podman else since
    if until is not None:
        params["until"] = _whole_seconds(until, math.ceil) if podman else until
    async with engine.request("GET", "/events", params=params, kind="stream") as resp:
        events = streams.json_lines(resp)
        yield events if local is None else _filtered(events, local)


def _whole_seconds(value: str, rounding: Callable[[float], int]) -> str:
    try:
        return str(rounding(float(value)))
    except ValueError:
        return value  # a relative form such as "10m", passed through


_LOCAL_FILTERS = frozenset({"type", "label", "container", "event", "image"})


async def _filtered(
    events: AsyncIterator[dict[str, Any]], filters: Mapping[str, Sequence[str]]
) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        if _matches(event, filters):
            yield event


def _matches(event: Mapping[str, Any], filters: Mapping[str, Sequence[str]]) -> bool:
    """Docker's semantics: values of one key are alternatives, keys (and labels) all apply."""
    actor = event.get("Actor") or {}
    attributes: Mapping[str, str] = actor.get("Attributes") or {}
    for key, values in filters.items():
        if key == "label":
            for wanted in values:
                label, has_value, value = wanted.partition("=")
                if label not in attributes or (has_value and attributes[label] != value):
                    return False
            continue
        if key == "type":
            found = {event.get("Type", "")}
        elif key == "event":
            found = {event.get("Action", "")}
        elif key == "container":
            found = {actor.get("ID", ""), attributes.get("name", "")}
        else:
            found = {attributes.get("image", ""), event.get("from", "")}
        if not found & set(values):
            return False
    return True
