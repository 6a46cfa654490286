"""The transport to one engine: one aiohttp session, API-version negotiation, timeouts.

aiohttp lives in this module and nowhere else. Every aiohttp or socket error is turned
into ``EngineUnavailable`` or ``StreamBroken`` here, and every error status into the
``EngineError`` subclass that the calling function names for it, so no caller ever sees
an aiohttp type.

One session serves every call. Its connector has no connection limit on purpose: a pool
limit would let long-lived streams (logs, attach, events, wait) starve control calls.
Bounding the work sent to the engine is the launch queue's job, not the pool's.
"""

from __future__ import annotations

import asyncio
import ssl
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import anyio
import orjson
from yarl import URL

from ccdaemon.engine.errors import (
    APIVersionError,
    Conflict,
    EngineError,
    EngineUnavailable,
    InvalidParameter,
    NotFound,
    NotModified,
    StreamBroken,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
    from pathlib import Path

Kind = Literal["control", "stream"]

_STATUS_ERRORS: dict[int, type[EngineError]] = {
    304: NotModified,
    400: InvalidParameter,
    404: NotFound,
    409: Conflict,
}


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


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """Client certificate, key and CA for an ``https://`` or ``tcp://`` engine endpoint."""

    cert: Path
    key: Path
    ca: Path | None = None


@dataclass(frozen=True, order=True, slots=True)
class APIVersion:
    """A Docker Engine API version such as 1.41, ordered numerically."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> APIVersion:
        """Parse ``"1.41"`` (a leading ``v`` is allowed).

        Raises:
            ValueError: ``text`` is not of the form MAJOR.MINOR.
        """
        major, sep, minor = text.strip().removeprefix("v").partition(".")
        if not sep or not major.isdigit() or not minor.isdigit():
            raise ValueError(f"{text!r} is not an API version of the form 1.41")
        return cls(int(major), int(minor))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


#: The API versions this client speaks: from the oldest Fabric 1.4's engines allowed to
#: the newest engine it has been tested against (Docker 28.5).
CLIENT_MIN_API = APIVersion(1, 12)
CLIENT_MAX_API = APIVersion(1, 51)


@dataclass(frozen=True, slots=True)
class EngineVersion:
    """What the engine says of itself, and the API version chosen to talk to it."""

    kind: Literal["docker", "podman"]
    version: str
    api_version: APIVersion
    min_api_version: APIVersion
    negotiated: APIVersion
    raw: Mapping[str, Any]


class Response:
    """An engine response whose body is read through methods that map transport errors."""

    __slots__ = ("_resp", "_what")

    def __init__(self, resp: aiohttp.ClientResponse, what: str) -> None:
        self._resp = resp
        self._what = what

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self._resp.status

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (case-insensitive)."""
        return self._resp.headers

    async def read(self) -> bytes:
        """Read the whole body."""
        try:
            return await self._resp.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise StreamBroken(f"{self._what}: connection broke while reading: {exc}") from exc

    async def json(self) -> Any:
        """Read the whole body as JSON; an empty body gives None."""
        body = await self.read()
        return orjson.loads(body) if body else None

    async def read_exactly(self, n: int) -> bytes | None:
        """Read exactly ``n`` bytes; None when the body ended cleanly before the first one.

        Raises:
            StreamBroken: the body ended after some but not all of the ``n`` bytes, or the
                connection broke.
        """
        try:
            return await self._resp.content.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return None
            raise StreamBroken(
                f"{self._what}: stream cut after {len(exc.partial)} of {n} bytes"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise StreamBroken(f"{self._what}: connection broke mid-stream: {exc}") from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives."""
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as exc:
            raise StreamBroken(f"{self._what}: connection broke mid-stream: {exc}") from exc


class Engine:
    """A client session to one container engine (Docker Engine API, or Podman's).

    Use it as an async context manager, or call ``close()``. The API version is negotiated
    once, on the first versioned call, and again after the engine was unreachable (it may
    have been upgraded meanwhile).

    Args:
        endpoint: ``unix:///path``, ``tcp://host:port`` or ``https://host:port``, as
            Fabric's ``vm.endpoint``. A bare path means a Unix socket.
        tls: client certificate files, as Fabric's ``vm.docker.tls``; turns tcp into https.
        api_version: pin this API version instead of negotiating the highest shared one.
        timeouts: per-kind timeouts.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        tls: TLSFiles | None = None,
        api_version: str | None = None,
        timeouts: EngineTimeouts | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeouts = timeouts or EngineTimeouts()
        self._pinned = APIVersion.parse(api_version) if api_version else None
        self._base, connector = _connect(endpoint, tls)
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        self._control_timeout = aiohttp.ClientTimeout(
            total=self.timeouts.control, sock_connect=self.timeouts.connect
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_read=None, sock_connect=self.timeouts.connect
        )
        self._version: EngineVersion | None = None
        self._prefix = ""
        self._negotiating = anyio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection to the engine."""
        await self._session.close()

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
        if not isinstance(info, dict) or "ApiVersion" not in info:
            raise APIVersionError(200, f"the engine at {self.endpoint} sent no ApiVersion")
        server_max = APIVersion.parse(info["ApiVersion"])
        server_min = APIVersion.parse(info.get("MinAPIVersion") or str(CLIENT_MIN_API))
        ranges = (
            f"the engine at {self.endpoint} speaks API {server_min} to {server_max}; "
            f"this client speaks {CLIENT_MIN_API} to {CLIENT_MAX_API}"
        )
        if self._pinned is not None:
            if not server_min <= self._pinned <= server_max:
                raise APIVersionError(400, f"pinned API version {self._pinned} refused: {ranges}")
            chosen = self._pinned
        else:
            chosen = min(server_max, CLIENT_MAX_API)
            if chosen < max(server_min, CLIENT_MIN_API):
                raise APIVersionError(400, f"no API version in common: {ranges}")
        components = info.get("Components") or []
        podman = any("podman" in str(c.get("Name", "")).lower() for c in components)
        return EngineVersion(
            kind="podman" if podman else "docker",
            version=str(info.get("Version", "")),
            api_version=server_max,
            min_api_version=server_min,
            negotiated=chosen,
            raw=info,
        )

    @asynccontextmanager
    async def request(  # noqa: PLR0913 -- one primitive carries every option of an engine call
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | AsyncIterable[bytes] | None = None,
        content_type: str | None = None,
        kind: Kind = "control",
        extra_time: float = 0.0,
        versioned: bool = True,
        errors: Mapping[int, Callable[[int, str], EngineError]] | None = None,
    ) -> AsyncIterator[Response]:
        """Send one request and yield its response once the status is a success.

        Args:
            method: the HTTP method.
            path: the path below the version prefix, its segments already quoted
                (see ``segment``).
            params: query parameters.
            body: the request body.
            content_type: the body's Content-Type.
            kind: ``control`` calls get the control timeout overall; ``stream`` calls keep
                only the connect timeout.
            extra_time: seconds added to a control call's timeout (a stop's grace period).
            versioned: prefix the negotiated API version (everything but /version, /_ping).
            errors: the error to raise for each status this call knows the meaning of.
                Any other status of 300 or more raises the generic class for it.

        Raises:
            EngineError: the engine answered with an error status.
            EngineUnavailable: the engine could not be reached or did not answer in time.
        """
        if versioned and self._version is None:
            await self.version()
        url = self._base + (self._prefix if versioned else "") + path
        if params:
            url += "?" + urlencode(params)
        what = f"{method} {path}"
        headers = {"Content-Type": content_type} if content_type else None
        if kind == "stream":
            timeout = self._stream_timeout
        elif extra_time:
            timeout = aiohttp.ClientTimeout(
                total=self.timeouts.control + extra_time, sock_connect=self.timeouts.connect
            )
        else:
            timeout = self._control_timeout
        try:
            resp = await self._session.request(
                method, URL(url, encoded=True), data=body, headers=headers, timeout=timeout
            )
            if resp.status >= 300:  # noqa: PLR2004 -- 304 is an answer callers must see
                try:
                    raise await _error(resp, what, errors)
                finally:
                    resp.release()
        except aiohttp.ClientConnectorError as exc:
            self._forget_version()
            raise EngineUnavailable(
                f"cannot connect to the engine at {self.endpoint}: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise EngineUnavailable(
                f"the engine at {self.endpoint} did not answer {what} within "
                f"{self.timeouts.control + extra_time:g} s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            self._forget_version()
            raise EngineUnavailable(f"{what}: connection to {self.endpoint} broke: {exc}") from exc
        # The caller's own errors pass through untouched; the body is released either way
        # (an unread body closes its connection rather than poisoning the pool).
        try:
            yield Response(resp, what)
        finally:
            resp.release()

    async def call(  # noqa: PLR0913 -- same options as request
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        extra_time: float = 0.0,
        errors: Mapping[int, Callable[[int, str], EngineError]] | None = None,
    ) -> Any:
        """Make a control call with an optional JSON body and return its JSON answer (or None)."""
        body = None if json is None else orjson.dumps(json)
        async with self.request(
            method,
            path,
            params=params,
            body=body,
            content_type="application/json" if body is not None else None,
            extra_time=extra_time,
            errors=errors,
        ) as resp:
            return await resp.json()

    def _forget_version(self) -> None:
        """Negotiate again on the next call: an engine that went away may come back upgraded."""
        if self._pinned is None:
            self._version = None
            self._prefix = ""


def segment(value: str) -> str:
    """Quote one path segment: every reserved character, and the dot segments, escaped.

    A name such as ``../images`` must reach the engine as a name, never as a path step.
    """
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in {".", ".."} else quoted


async def _error(
    resp: aiohttp.ClientResponse,
    what: str,
    errors: Mapping[int, Callable[[int, str], EngineError]] | None,
) -> EngineError:
    body = await resp.read()
    message = ""
    if body:
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            message = body.decode(errors="replace").strip()
        else:
            message = str(decoded.get("message", "")) if isinstance(decoded, dict) else ""
    message = message or f"{what} answered {resp.status} {resp.reason or ''}".rstrip()
    factory = (errors or {}).get(resp.status) or _STATUS_ERRORS.get(resp.status, EngineError)
    return factory(resp.status, message)


def _connect(endpoint: str, tls: TLSFiles | None) -> tuple[str, aiohttp.BaseConnector]:
    """Return the base URL and the connector for an endpoint as Fabric's vm.endpoint reads."""
    if "://" not in endpoint:
        endpoint = ("unix://" if endpoint.startswith("/") else "tcp://") + endpoint
    parts = urlsplit(endpoint)
    if parts.scheme == "unix":
        return "http://localhost", aiohttp.UnixConnector(path=parts.path, limit=0)
    if parts.scheme not in {"tcp", "http", "https"} or not parts.hostname:
        raise ValueError(f"engine endpoint {endpoint!r} is not unix://, tcp:// or https://")
    secure = tls is not None or parts.scheme == "https"
    context: ssl.SSLContext | bool = False
    if secure:
        context = ssl.create_default_context(cafile=str(tls.ca) if tls and tls.ca else None)
        if tls is not None:
            context.load_cert_chain(tls.cert, tls.key)
    default_port = 2376 if secure else 2375
    base = f"{'https' if secure else 'http'}://{parts.hostname}:{parts.port or default_port}"
    return base, aiohttp.TCPConnector(limit=0, ssl=context)
