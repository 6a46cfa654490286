"""The transport to one engine: requests over its connection pool, negotiation, timeouts.

Every socket or protocol error is turned into ``EngineUnavailable`` or ``StreamBroken``
here, and every error status into the ``EngineError`` subclass that the calling function
names for it (``responses``), so callers never see ``OSError`` or the HTTP layer's own
types. The API version is negotiated on first use and after the engine was away
(``versions`` chooses it); ``endpoints`` reads the address and its TLS files.

One pool serves every call, with no limit on connections in use: a limit would let
long-lived streams (logs, attach, events, wait) starve control calls. Bounding the work
sent to the engine is the launch queue's job, not the pool's.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self, TypeAlias
from urllib.parse import quote

import anyio
import orjson

from ccdaemon.engine import http
from ccdaemon.engine.deadlines import Deadlines, Limit
from ccdaemon.engine.endpoints import TLSFiles, connect
from ccdaemon.engine.errors import EngineUnavailable, InvalidParameter, StreamBroken
from ccdaemon.engine.responses import ErrorMap, Response, error_for
from ccdaemon.engine.versions import (
    CLIENT_MAX_API,
    CLIENT_MIN_API,
    APIVersion,
    EngineVersion,
    negotiate,
)
from ccdaemon.errors import CcdaemonError

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Mapping

# The names of versions, endpoints and responses that callers import from here.
__all__ = [
    "CLIENT_MAX_API",
    "CLIENT_MIN_API",
    "APIVersion",
    "CallObserver",
    "Engine",
    "EngineTimeouts",
    "EngineVersion",
    "ErrorMap",
    "Kind",
    "Response",
    "TLSFiles",
    "segment",
]

Kind = Literal["control", "stream"]

#: Told of each control call: method, path, seconds, error class name or None.
CallObserver: TypeAlias = Callable[[str, str, float, str | None], object]


@dataclass(frozen=True, slots=True)
class EngineTimeouts:
    """Per-kind timeouts, in seconds.

    Attributes:
        connect: opening a connection to the engine, for every kind of call.
        control: the whole of a control call (create, start, inspect, PUT archive...).
            Streams (build, attach, logs, events, wait) have no overall or read timeout.
    """

    connect: float = 5.0
    control: float = 60.0


#: Requests that may be sent again when a kept-alive connection turns out to be dead.
_IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})


class Engine:
    """A client to one container engine (Docker Engine API, or Podman's).

    Use it as an async context manager, or call ``close()``. The API version is negotiated
    once, on the first versioned call, and again after the engine was unreachable (it may
    have been upgraded meanwhile).

    Args:
        endpoint: ``unix:///path``, ``tcp://host:port`` or ``https://host:port``, as
            Fabric's ``vm.endpoint``. A bare path means a Unix socket.
        tls: client certificate files, as Fabric's ``vm.docker.tls``; turns tcp into https.
        api_version: pin this API version instead of negotiating the highest shared one.
        timeouts: per-kind timeouts.
        observer: told of every control call: method, path, seconds, and the error's class
            name or None (the daemon's engine-call metrics).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        tls: TLSFiles | None = None,
        api_version: str | None = None,
        timeouts: EngineTimeouts | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.observer = observer
        self.timeouts = timeouts or EngineTimeouts()
        self._pinned = APIVersion.parse(api_version) if api_version else None
        self._host, self._pool = connect(endpoint, tls)
        self._version: EngineVersion | None = None
        self._prefix = ""
        self._negotiating = anyio.Lock()
        self._deadlines = Deadlines()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the idle connections; streams still open close when their callers leave them."""
        self._pool.close()

    async def version(self) -> EngineVersion:
        """Return the engine's version, negotiating the API version on first use.

        Raises:
            APIVersionError: no API version is spoken by both sides, or the pinned one is
                outside the engine's range.
            EngineUnavailable: the engine cannot be reached.
        """
        if self._version is not None:
            return self._version
        async with self._negotiating:
            if self._version is None:
                self._version = await self._negotiate()
                self._prefix = f"/v{self._version.negotiated}"
        return self._version

    async def _negotiate(self) -> EngineVersion:
        async with self.request("GET", "/version", versioned=False) as resp:
            info = await resp.json()
        return negotiate(info, self.endpoint, self._pinned)

    @asynccontextmanager
    async def request(  # noqa: PLR0913 -- one primitive carries every option of an engine call
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        kind: Kind = "control",
        extra_time: float = 0.0,
        versioned: bool = True,
        errors: ErrorMap | None = None,
        subject: str = "",
    ) -> AsyncIterator[Response]:
        """Send one request and yield its response once the status is a success.

        Leaving the block before the body was read to its end closes the connection
        instead of returning it to the pool, so a cancelled call never poisons the pool.

        Args:
            method: the HTTP method.
            path: the path below the version prefix, its segments already quoted
                (see ``segment``).
            params: query parameters.
            body: the request body; an async iterable is sent chunked.
            content_type: the body's Content-Type.
            headers: more request headers (``X-Registry-Auth``).
            kind: ``control`` calls get the control timeout overall, the block included;
                ``stream`` calls keep only the connect timeout.
            extra_time: seconds added to a control call's timeout (a stop's grace period).
            versioned: prefix the negotiated API version (everything but /version, /_ping).
            errors: the error to raise for each status this call knows the meaning of.
                Any other status of 300 or more raises the generic class for it.
            subject: what the call is about (a container's name), added to an error's
                message when the engine's own message does not name it.

        Raises:
            EngineError: the engine answered with an error status.
            EngineUnavailable: the engine could not be reached or did not answer in time.
        """
        if versioned and self._version is None:
            await self.version()
        target = self._target(path, params, versioned=versioned)
        what = f"{method} {path}"
        sent = {**headers} if headers else {}
        if content_type:
            sent["Content-Type"] = content_type
        limit = self.timeouts.control + extra_time
        limited = (
            Limit(self._deadlines, limit, lambda: self._timeout(what, limit))
            if kind == "control"
            else contextlib.nullcontext()
        )
        with limited:
            conn, resp = await self._exchange(method, target, sent or None, body, what)
            reusable = False
            try:
                if resp.status >= 300:  # noqa: PLR2004 -- 304 is an answer callers must see
                    try:
                        data = await resp.read()
                    except http.BodyCut:
                        data = b""
                    reusable = resp.done and resp.keep_alive
                    raise error_for(resp, data, what, errors, subject)
                yield Response(resp, what)
                reusable = resp.done and resp.keep_alive
            finally:
                if reusable:
                    self._pool.release(conn)
                else:
                    conn.close()

    async def _exchange(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None,
        body: bytes | AsyncIterable[bytes] | None,
        what: str,
    ) -> tuple[http.Connection, http.Body]:
        """Send the request and read the response head, on a pooled or a new connection."""
        while True:
            conn = self._pool.idle() or await self._open()
            try:
                # The engine may answer, then close, before taking a whole body (a refused
                # build): its answer says more than the broken pipe.
                try:
                    if body is None or isinstance(body, bytes):
                        if http.write(
                            conn, method, target, host=self._host, headers=headers, body=body
                        ):
                            await conn.drain()
                    else:
                        await http.send_chunked(
                            conn, method, target, host=self._host, headers=headers, body=body
                        )
                except OSError:
                    pass
                return conn, await http.receive(conn)
            except (asyncio.IncompleteReadError, OSError) as exc:
                conn.close()
                if conn.reused and method in _IDEMPOTENT:
                    continue  # a kept-alive connection the engine had closed: try a fresh one
                self._forget_version()
                raise EngineUnavailable(
                    f"{what}: the connection to {self.endpoint} broke: "
                    f"{str(exc) or type(exc).__name__}"
                ) from exc
            except http.ProtocolError as exc:
                conn.close()
                raise EngineUnavailable(f"{what}: {self.endpoint} answered {exc}") from exc
            except BaseException:
                conn.close()
                raise

    async def _open(self) -> http.Connection:
        """Open a new connection (there was no idle one), with the connect timeout."""
        try:
            async with asyncio.timeout(self.timeouts.connect):
                return await self._pool.open()
        except (OSError, TimeoutError) as exc:
            self._forget_version()
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise EngineUnavailable(
                f"cannot connect to the engine at {self.endpoint}: {reason}"
            ) from exc

    async def call(  # noqa: PLR0913 -- same options as request
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
        extra_time: float = 0.0,
        errors: ErrorMap | None = None,
        subject: str = "",
    ) -> Any:
        """Make a control call and return its JSON answer (None for an empty or blank body).

        ``json`` is sent as a JSON body; otherwise ``body`` with ``content_type``. The whole
        call, reading the answer included, has the control timeout plus ``extra_time``.

        Raises:
            EngineError: the engine answered with an error status.
            EngineUnavailable: the engine could not be reached or did not answer in time.
        """
        if json is not None:
            body, content_type = orjson.dumps(json), "application/json"
        began = time.perf_counter()
        failure: str | None = None
        try:
            if self._version is None:
                await self.version()
            target = self._target(path, params, versioned=True)
            what = f"{method} {path}"
            limit = self.timeouts.control + extra_time
            headers = {"Content-Type": content_type} if content_type else None
            with Limit(self._deadlines, limit, lambda: self._timeout(what, limit)):
                conn, resp = await self._exchange(method, target, headers, body, what)
                data = await self._read_all(conn, resp, what)
            if resp.status >= 300:  # noqa: PLR2004 -- 304 is an answer callers must see
                raise error_for(resp, data, what, errors, subject)
            # Podman answers some calls (tag) with a body of one newline: no JSON.
            return orjson.loads(data) if data and not data.isspace() else None
        except CcdaemonError as exc:
            failure = type(exc).__name__
            raise
        finally:
            if self.observer is not None:
                self.observer(method, path, time.perf_counter() - began, failure)

    def _target(self, path: str, params: Mapping[str, str] | None, *, versioned: bool) -> str:
        """The request target: version prefix (negotiated already), path and query."""
        target = (self._prefix if versioned else "") + path
        return f"{target}?{_query(params)}" if params else target

    async def _read_all(self, conn: http.Connection, resp: http.Body, what: str) -> bytes:
        """Read the whole body, then give the connection back to the pool, or close it."""
        try:
            data = await resp.read()
        except http.BodyCut as exc:
            conn.close()
            raise StreamBroken(f"{what}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        if resp.keep_alive:
            self._pool.release(conn)
        else:
            conn.close()
        return data

    def _timeout(self, what: str, limit: float) -> EngineUnavailable:
        return EngineUnavailable(
            f"the engine at {self.endpoint} did not answer {what} within {limit:g} s"
        )

    def _forget_version(self) -> None:
        """Negotiate again on the next call: an engine that went away may come back upgraded."""
        if self._pinned is None:
            self._version = None
            self._prefix = ""


_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+").fullmatch


def segment(value: str) -> str:
    """Quote one path segment, every reserved character escaped.

    A name such as ``x?all=1`` or ``a/b`` must reach the engine as a name, never as a
    query or a path step.

    Raises:
        InvalidParameter: ``value`` holds a ``.`` or ``..`` step: the engine's router
            decodes the path before resolving those, whatever the escaping, so such a
            name would reach another route.
    """
    if _PLAIN(value) and value not in {".", ".."}:
        return value  # the usual name needs no escaping; skip the work on the hot path
    if {".", ".."} & set(value.split("/")):
        raise InvalidParameter(400, f"{value!r} cannot name a container or an image")
    return quote(value, safe="")


def _query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{key}={value if _PLAIN(value) else quote(value, safe='')}"
        for key, value in params.items()
    )
