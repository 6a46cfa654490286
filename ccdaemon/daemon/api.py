"""The /v1 route handlers: parse, call the supervisor, answer JSON (docs/api-contract.md).

Handlers hold no state of their own; everything lives in the Daemon (daemon/state.py).
A launch whose client goes away still completes (aiohttp does not cancel handlers on
disconnect): the chaincode then runs and GET /v1/chaincodes shows it; it is never left
half-made. Long waits (wait, followed logs) end when the daemon shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import anyio
import anyio.to_thread
import orjson
from aiohttp import web

from ccdaemon import __version__
from ccdaemon.daemon import schemas
from ccdaemon.daemon.errors import APIError, error_body, json_response
from ccdaemon.daemon.state import DAEMON
from ccdaemon.engine import EngineUnavailable
from ccdaemon.errors import CcdaemonError
from ccdaemon.supervise.gc import collect
from ccdaemon.supervise.registry import State

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")

NDJSON = "application/x-ndjson"
#: A health check answers within this, engine or not (probes have short deadlines).
HEALTH_TIMEOUT = 5.0
#: A request body must arrive within this; a client trickling it (slow loris) is answered
#: 408 and its connection closed. A 100 MiB package crosses a Unix socket in well under 1 s.
BODY_TIMEOUT = 60.0
#: Package checks (base64, gzip, tar) that may run at once: each holds a thread and up to
#: the package's expanded members in memory, so a flood of bombs cannot take them all.
PARSE_LIMIT = 4
#: The limiter of ``PARSE_LIMIT``, one per application (it belongs to the daemon's loop).
PARSING = web.AppKey("parsing", anyio.CapacityLimiter)
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no", ""})


def routes() -> list[web.RouteDef]:
    """Every route of the API (docs/openapi.yaml lists the same)."""
    return [
        web.get("/v1/health", health),
        web.post("/v1/chaincodes", launch),
        web.get("/v1/chaincodes", list_chaincodes),
        web.get("/v1/chaincodes/{ccid}", get_chaincode),
        web.delete("/v1/chaincodes/{ccid}", stop),
        web.post("/v1/chaincodes/{ccid}/wait", wait),
        web.get("/v1/chaincodes/{ccid}/logs", logs),
        web.post("/v1/images", build),
        web.post("/v1/gc", gc),
        web.get("/metrics", metrics),
    ]


async def health(request: web.Request) -> web.Response:
    """200 with the engine's kind, version and API version; 503 when it does not answer."""
    daemon = request.app[DAEMON]
    try:
        with anyio.fail_after(HEALTH_TIMEOUT):
            version = await daemon.supervisor.version()
    except TimeoutError:
        raise APIError(
            503,
            "engine_unavailable",
            f"engine at {daemon.site.endpoint} did not answer within {HEALTH_TIMEOUT:g} s",
        ) from None
    except EngineUnavailable as exc:
        raise APIError(
            503, "engine_unavailable", f"engine at {daemon.site.endpoint}: {exc}"
        ) from exc
    counts = daemon.supervisor.registry.counts()
    stats = daemon.queue.stats()
    return json_response(
        {
            "status": "ok" if daemon.ready.is_set() else "starting",
            "engine": {
                "endpoint": daemon.site.endpoint,
                "kind": version.kind,
                "version": version.version,
                "api_version": str(version.negotiated),
            },
            "chaincodes": {"running": counts[State.RUNNING], "total": sum(counts.values())},
            "queue": {
                "waiting": stats.waiting,
                "engine_busy": stats.engine_busy,
                "builds": stats.builds,
            },
            "version": __version__,
            # The event loop's live tasks: a soak test's leak detector, cheap to count.
            "tasks": len(asyncio.all_tasks()),
        }
    )


async def launch(request: web.Request) -> web.StreamResponse:
    """Launch one chaincode (201), or stream build progress then the result (ndjson)."""
    daemon = request.app[DAEMON]
    daemon.admit()
    raw = await _body(request)
    launch_request = await _parse(
        request,
        lambda: schemas.launch_request(
            schemas.parse_json(raw), max_package_size=daemon.max_package_size
        ),
    )

    async def work(progress: Callable[[str], object] | None) -> dict[str, Any]:
        cc, launched = await daemon.in_flight(
            daemon.supervisor.launch(launch_request, progress=progress)
        )
        return {"chaincode": cc.to_json(), "built": launched.built, "timings": launched.timings}

    return await _answer(request, work, status=201)


async def build(request: web.Request) -> web.StreamResponse:
    """Build a chaincode's image at install (Fabric 2.x); says whether it was there already."""
    daemon = request.app[DAEMON]
    daemon.admit()
    raw = await _body(request)
    body = await _parse(
        request,
        lambda: schemas.build_body(
            schemas.parse_json(raw), max_package_size=daemon.max_package_size
        ),
    )

    package = body.package
    if package is None:  # only asks whether the image is there
        began = time.perf_counter()
        image = await daemon.in_flight(daemon.built(body.ccid))
        if image is None:
            raise APIError(
                404,
                "no_such_image",
                f"no image of {body.ccid} built by this daemon; send its package to build it",
                field="package",
            )
        return json_response(
            {"image": image, "built": False, "duration": time.perf_counter() - began}
        )

    async def work(progress: Callable[[str], object] | None) -> dict[str, Any]:
        began = time.perf_counter()
        image, built = await daemon.in_flight(daemon.build(body.ccid, package, progress=progress))
        return {"image": image, "built": built, "duration": time.perf_counter() - began}

    return await _answer(request, work, status=200)


async def _body(request: web.Request) -> bytes:
    """The whole request body, within BODY_TIMEOUT (aiohttp's server has no read timeout).

    Raises:
        APIError: 408 ``request_timeout``; the error middleware then closes the connection.
    """
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            return await request.read()
    except TimeoutError:
        raise APIError(
            408, "request_timeout", f"the body did not arrive within {BODY_TIMEOUT:g} s"
        ) from None


async def _parse(request: web.Request, parse: Callable[[], T]) -> T:
    """Run a body's checks in a worker thread, a few at a time.

    Decoding and walking a package (a gzip bomb stops only at 512 MiB expanded) takes
    seconds of CPU; on the event loop it would stall every other client meanwhile.
    """
    return await anyio.to_thread.run_sync(parse, limiter=request.app[PARSING])


async def _answer(
    request: web.Request,
    work: Callable[[Callable[[str], object] | None], Awaitable[dict[str, Any]]],
    *,
    status: int,
) -> web.StreamResponse:
    """Answer ``work``'s result as JSON, or as an ndjson stream when the client asks."""
    if NDJSON not in request.headers.get("Accept", ""):
        return json_response(await work(None), status)
    response = web.StreamResponse(status=200, headers={"Content-Type": NDJSON})
    await response.prepare(request)
    send, receive = anyio.create_memory_object_stream[bytes](1000)

    def progress(line: str) -> None:
        # A reader slower than the build loses progress lines, never the result.
        with contextlib.suppress(anyio.WouldBlock):
            send.send_nowait(orjson.dumps({"progress": line}) + b"\n")

    async def run() -> None:
        async with send:
            try:
                result = {"result": await work(progress)}
            except CcdaemonError as exc:
                result = error_body(exc)[1]
            await send.send(orjson.dumps(result) + b"\n")

    listening = True
    async with anyio.create_task_group() as group, receive:
        group.start_soon(run)
        async for chunk in receive:
            if not listening:
                continue
            try:
                await response.write(chunk)
            except ConnectionResetError:
                # The client left; the work goes on to its end (a launch is never left
                # half-made), and its outcome shows in GET /v1/chaincodes.
                listening = False
    if listening:
        await _end(response)
    return response


async def list_chaincodes(request: web.Request) -> web.Response:
    """Every managed chaincode, sorted by ccid; ``?state=`` keeps one state."""
    wanted = request.query.get("state")
    if wanted is not None and wanted not in State.__members__.values():
        raise APIError(
            400, "invalid_request", f"state: not one of {', '.join(State)}", field="state"
        )
    daemon = request.app[DAEMON]
    daemon.check_table()
    found = daemon.supervisor.registry.all()
    return json_response(
        {"chaincodes": [cc.to_json() for cc in found if wanted is None or cc.state == wanted]}
    )


def _ccid(request: web.Request) -> str:
    return unquote(request.match_info["ccid"])


async def get_chaincode(request: web.Request) -> web.Response:
    """One chaincode; 404 when the daemon does not manage it."""
    daemon = request.app[DAEMON]
    daemon.check_table()
    return json_response(daemon.supervisor.get(_ccid(request)).to_json())


async def stop(request: web.Request) -> web.Response:
    """Stop (timeout), kill, remove, as Fabric's stopInternal."""
    daemon = request.app[DAEMON]
    daemon.check_table()
    grace = _int(request, "timeout", 10)
    cc = await daemon.supervisor.stop(
        _ccid(request), grace=grace, dontremove=_bool(request, "dontremove")
    )
    return json_response({"chaincode": cc.to_json()})


async def wait(request: web.Request) -> web.Response:
    """Block until the chaincode's container exits; its exit code."""
    daemon = request.app[DAEMON]
    daemon.check_table()
    ccid = _ccid(request)
    daemon.supervisor.get(ccid)  # 404 before blocking
    code = await daemon.long_poll(daemon.supervisor.wait(ccid))
    return json_response({"ccid": ccid, "exit_code": code})


async def logs(request: web.Request) -> web.StreamResponse:
    """The container's output as text, followed until it ends with ``?follow=1``."""
    daemon = request.app[DAEMON]
    daemon.check_table()
    ccid = _ccid(request)
    daemon.supervisor.get(ccid)
    raw_tail = request.query.get("tail", "all")
    tail = None if raw_tail == "all" else _int(request, "tail", 0)
    lines = daemon.supervisor.logs(ccid, follow=_bool(request, "follow"), tail=tail)
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)

    async def relay() -> None:
        async for line in lines:
            await response.write(line)

    try:
        await daemon.long_poll(relay())
    finally:
        await lines.aclose()
    await _end(response)
    return response


async def gc(request: web.Request) -> web.Response:
    """Remove exited containers and unused images carrying this daemon's labels.

    Build caches are removed only with ``caches``; else they are listed as kept.
    """
    daemon = request.app[DAEMON]
    daemon.admit()
    result = await daemon.in_flight(
        collect(
            daemon.supervisor, dry_run=_bool(request, "dry_run"), caches=_bool(request, "caches")
        )
    )
    return json_response(
        {
            "dry_run": result.dry_run,
            "containers": result.containers,
            "images": result.images,
            "caches": result.caches,
            "caches_kept": result.caches_kept,
        }
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    body, content_type = request.app[DAEMON].render_metrics()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def _bool(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise APIError(400, "invalid_request", f"{name}: must be 1/true/yes or 0/false/no", field=name)


def _int(request: web.Request, name: str, default: int) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    if not value.isdigit() or len(value) > 9:  # noqa: PLR2004 -- no real timeout or tail is longer
        raise APIError(400, "invalid_request", f"{name}: must be a whole number >= 0", field=name)
    return int(value)


async def _end(response: web.StreamResponse) -> None:
    """End a streamed answer; a client that has already gone is not an error."""
    # The last chunk may sit in the transport while the client, which has read what it
    # wanted, closes: the end of the chunked body then meets a closing transport.
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
