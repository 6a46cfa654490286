"""Container calls: one function per engine call, each mapping the statuses it knows.

Error mapping follows go-dockerclient, which Fabric uses: create's 404 "No such image" is
``NoSuchImage`` and its 409 ``ContainerAlreadyExists``; start's 304 is
``ContainerAlreadyRunning``; stop's 304 and kill's 409 are ``ContainerNotRunning``; any
container call's 404 is ``NoSuchContainer``.

Podman's compatible API answers some of these with 500 and a telling message instead
(a taken name, killing a stopped container); those are mapped too, by that message.
Podman's stop of a container that is not running succeeds (204) rather than answering 304.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.engine import streams
from ccdaemon.engine.errors import (
    ContainerAlreadyExists,
    ContainerAlreadyRunning,
    ContainerNotRunning,
    EngineError,
    NoSuchContainer,
    NoSuchImage,
    NotFound,
)
from ccdaemon.engine.transport import APIVersion, ErrorMap, segment

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from ccdaemon.engine.transport import Engine

_START_BODY_REMOVED = APIVersion(1, 24)

# Create's 404 means a missing image (Docker: "No such image: x"; Podman: "x: image not
# known"), or something else missing such as a network, which must not trigger a build.
_MISSING_IMAGE_TEXTS = ("no such image", "image not known")


def _create_not_found(status: int, message: str) -> EngineError:
    lowered = message.lower()
    if any(text in lowered for text in _MISSING_IMAGE_TEXTS):
        return NoSuchImage(status, message)
    return NotFound(status, message)


def _create_conflict(status: int, message: str) -> EngineError:
    # Docker: 409. Podman 4: 500 "... that name is already in use".
    if status == 409 or "already in use" in message:  # noqa: PLR2004
        return ContainerAlreadyExists(status, message)
    return EngineError(status, message)


def _kill_refused(status: int, message: str) -> EngineError:
    # Docker: 409 "is not running". Podman 4: 500 "... container state improper".
    if status == 409 or "container state improper" in message:  # noqa: PLR2004
        return ContainerNotRunning(status, message)
    return EngineError(status, message)


def _archive_not_found(status: int, message: str) -> EngineError:
    # The archive endpoints answer 404 for a missing path inside an existing container too.
    if "no such container" in message.lower():
        return NoSuchContainer(status, message)
    return NotFound(status, message)


# Each call's statuses, as go-dockerclient maps them (and Podman's 500s where it differs).
_CREATE_ERRORS: ErrorMap = {404: _create_not_found, 409: _create_conflict, 500: _create_conflict}
_START_ERRORS: ErrorMap = {304: ContainerAlreadyRunning, 404: NoSuchContainer}
_STOP_ERRORS: ErrorMap = {304: ContainerNotRunning, 404: NoSuchContainer}
_KILL_ERRORS: ErrorMap = {409: _kill_refused, 500: _kill_refused, 404: NoSuchContainer}
_CONTAINER_ERRORS: ErrorMap = {404: NoSuchContainer}
_ARCHIVE_ERRORS: ErrorMap = {404: _archive_not_found}


async def create(engine: Engine, name: str | None, config: Mapping[str, Any]) -> str:
    """Create a container from ``config`` (its fields plus ``HostConfig``); its id.

    A ``name`` of None lets the engine choose one.

    Raises:
        NoSuchImage: the image does not exist.
        ContainerAlreadyExists: a container of that name exists.
        InvalidParameter: the engine refused the name or the config.
    """
    result = await engine.call(
        "POST",
        "/containers/create",
        params={"name": name} if name is not None else None,
        json=config,
        errors=_CREATE_ERRORS,
    )
    return str(result["Id"])


async def start(engine: Engine, name: str, *, host_config: Mapping[str, Any] | None = None) -> None:
    """Start a container.

    Below API 1.24 the engine takes the HostConfig in the start body, and this sends it
    there (``null`` when none is given), as go-dockerclient does. From 1.24 on the body
    must be empty and HostConfig belongs to ``create``.

    Raises:
        ContainerAlreadyRunning: the container is already running (304).
        NoSuchContainer: no such container.
        ValueError: ``host_config`` was given for an engine at API 1.24 or later.
    """
    negotiated = (await engine.version()).negotiated
    body: bytes | None = None
    if negotiated < _START_BODY_REMOVED:
        body = orjson.dumps(host_config)
    elif host_config is not None:
        raise ValueError(f"API {negotiated} takes HostConfig at create, not at start")
    await engine.call(
        "POST",
        f"/containers/{segment(name)}/start",
        body=body,
        content_type="application/json" if body is not None else None,
        errors=_START_ERRORS,
        subject=name,
    )


async def stop(engine: Engine, name: str, *, grace: int = 10) -> None:
    """Stop a container: its stop signal, then SIGKILL after ``grace`` seconds (the API's t).

    The control timeout is extended by ``grace``.

    Raises:
        ContainerNotRunning: the container was not running (304).
        NoSuchContainer: no such container.
    """
    await engine.call(
        "POST",
        f"/containers/{segment(name)}/stop",
        params={"t": str(grace)},
        extra_time=grace,
        errors=_STOP_ERRORS,
        subject=name,
    )


async def kill(engine: Engine, name: str, *, signal: str | None = None) -> None:
    """Send a signal (the engine's default, SIGKILL, when None) to a container.

    Raises:
        ContainerNotRunning: the container is not running (409).
        NoSuchContainer: no such container.
    """
    await engine.call(
        "POST",
        f"/containers/{segment(name)}/kill",
        params={"signal": signal} if signal else None,
        errors=_KILL_ERRORS,
        subject=name,
    )


async def remove(engine: Engine, name: str, *, force: bool = False, volumes: bool = False) -> None:
    """Remove a container; ``force`` kills it first if it runs.

    Raises:
        NoSuchContainer: no such container.
        Conflict: the container runs and ``force`` is false, or a removal is in progress.
    """
    params = {"force": "1" if force else "0", "v": "1" if volumes else "0"}
    await engine.call(
        "DELETE",
        f"/containers/{segment(name)}",
        params=params,
        errors=_CONTAINER_ERRORS,
        subject=name,
    )


async def wait(engine: Engine, name: str) -> int:
    """Block until the container is not running and return its exit code; no timeout.

    Raises:
        NoSuchContainer: no such container.
        StreamBroken: the connection broke while waiting.
    """
    async with engine.request(
        "POST",
        f"/containers/{segment(name)}/wait",
        kind="stream",
        errors=_CONTAINER_ERRORS,
        subject=name,
    ) as resp:
        result = await resp.json()
    return int(result["StatusCode"])


async def inspect(engine: Engine, name: str) -> dict[str, Any]:
    """Return the container's inspect document.

    Raises:
        NoSuchContainer: no such container.
    """
    result: dict[str, Any] = await engine.call(
        "GET", f"/containers/{segment(name)}/json", errors=_CONTAINER_ERRORS, subject=name
    )
    return result


async def list_(
    engine: Engine, *, labels: Mapping[str, str | None] | None = None, all_: bool = True
) -> list[dict[str, Any]]:
    """List containers (stopped ones too with ``all_``) carrying each of ``labels``.

    A label whose value is None matches any value.
    """
    params = {"all": "1" if all_ else "0"}
    if labels:
        wanted = [key if value is None else f"{key}={value}" for key, value in labels.items()]
        params["filters"] = orjson.dumps({"label": wanted}).decode()
    result: list[dict[str, Any]] = await engine.call("GET", "/containers/json", params=params)
    return result


async def put_archive(
    engine: Engine, name: str, path: str, archive: bytes, *, no_overwrite_dir_non_dir: bool = False
) -> None:
    """Extract a tar archive (plain or gzip-compressed) into the container at ``path``.

    Raises:
        NoSuchContainer: no such container.
        NotFound: ``path`` does not exist in the container.
        InvalidParameter: the engine refused the archive or the path.
    """
    params = {"path": path}
    if no_overwrite_dir_non_dir:
        params["noOverwriteDirNonDir"] = "1"
    await engine.call(
        "PUT",
        f"/containers/{segment(name)}/archive",
        params=params,
        body=archive,
        content_type="application/x-tar",
        errors=_ARCHIVE_ERRORS,
        subject=name,
    )


async def get_archive(engine: Engine, name: str, path: str) -> bytes:
    """Return a tar archive of ``path`` in the container (a file, or a directory's tree).

    Raises:
        NoSuchContainer: no such container.
        NotFound: ``path`` does not exist in the container.
    """
    async with engine.request(
        "GET",
        f"/containers/{segment(name)}/archive",
        params={"path": path},
        kind="stream",
        errors=_ARCHIVE_ERRORS,
        subject=name,
    ) as resp:
        return await resp.read()


@asynccontextmanager
async def attach(
    engine: Engine, name: str, *, logs: bool = False, tty: bool | None = None
) -> AsyncIterator[AsyncIterator[streams.Frame]]:
    """Attach to a container's stdout and stderr and yield an iterator over its output.

    Attach before start to miss nothing: Docker subscribes to the output before it sends
    the response head. ``logs`` also replays output already written, but Docker reads
    that replay after the head, so with a start in between the first lines come twice
    (Fabric attaches so; seen on Docker 20.10, 26.1 and 28.5 under load). Use it only
    for a container that is already running.
    ``tty`` says whether the container has a terminal (raw output, no frames); None asks
    the engine. The stream ends when the container closes its output; it has no timeout.

    Raises:
        NoSuchContainer: no such container.
        StreamBroken: the stream was cut inside a frame or the connection broke.
    """
    tty = await _has_tty(engine, name) if tty is None else tty
    params = {"stream": "1", "stdout": "1", "stderr": "1", "logs": "1" if logs else "0"}
    async with engine.request(
        "POST",
        f"/containers/{segment(name)}/attach",
        params=params,
        kind="stream",
        errors=_CONTAINER_ERRORS,
        subject=name,
    ) as resp:
        yield streams.raw(resp) if tty else streams.demux(resp)


@asynccontextmanager
async def logs(  # noqa: PLR0913 -- the engine's own options
    engine: Engine,
    name: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    since: str | None = None,
    timestamps: bool = False,
    tty: bool | None = None,
) -> AsyncIterator[AsyncIterator[streams.Frame]]:
    """Open a container's logs (stdout and stderr) and yield an iterator over them.

    With ``follow`` the stream lasts until the container stops; it has no timeout.
    ``tail`` keeps only the last lines; ``tty`` as for ``attach``.

    Raises:
        NoSuchContainer: no such container.
        StreamBroken: the stream was cut inside a frame or the connection broke.
    """
    tty = await _has_tty(engine, name) if tty is None else tty
    params = logs_query(follow=follow, tail=tail, since=since, timestamps=timestamps)
    async with engine.request(
        "GET",
        f"/containers/{segment(name)}/logs",
        params=params,
        kind="stream",
        errors=_CONTAINER_ERRORS,
        subject=name,
    ) as resp:
        yield streams.raw(resp) if tty else streams.demux(resp)


def logs_query(
    *, follow: bool, tail: int | None, since: str | None, timestamps: bool
) -> dict[str, str]:
    """The query of a logs call (containers' and services' take the same), both streams."""
    params = {
        "stdout": "1",
        "stderr": "1",
        "follow": "1" if follow else "0",
        "timestamps": "1" if timestamps else "0",
        "tail": "all" if tail is None else str(tail),
    }
    if since is not None:
        params["since"] = since
    return params


async def _has_tty(engine: Engine, name: str) -> bool:
    return bool((await inspect(engine, name))["Config"].get("Tty"))
