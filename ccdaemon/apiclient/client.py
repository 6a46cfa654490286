"""The control API's client: requests, their answers, and ndjson streams read as they come.

A failure reaches the caller as one of ``ccdaemon.apiclient.errors``.

Timeouts: opening a connection and the short control calls (health, list, get) are
bounded; launch, build, stop, wait, logs and gc are not, because they last as long as the
work they do (a stop may queue behind a build of the same container).
"""

from __future__ import annotations

import builtins
import os
import ssl
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import orjson
from yarl import URL

from ccdaemon.apiclient.errors import (
    ERROR_STATUS,
    ClientError,
    DaemonUnreachable,
    RequestFailed,
    api_error,
    error_code,
    unreachable,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping
    from pathlib import Path
    from types import TracebackType

DEFAULT_SOCKET = "/run/ccdaemon/ccdaemon.sock"
NDJSON = "application/x-ndjson"


def default_socket() -> str:
    """The daemon's address: ``$CCDAEMON_SOCKET``, else ``/run/ccdaemon/ccdaemon.sock``."""
    return os.environ.get("CCDAEMON_SOCKET") or DEFAULT_SOCKET


class Client:
    """One connection pool to one daemon; use it as ``async with Client() as client``.

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
        """Describe the daemon to reach; nothing is opened before the first request.

        Args:
            socket_or_url: the Unix socket path (optionally ``unix://``-prefixed) or
                ``https://host:port``; ``default_socket()`` when None.
            tls: for ``https://``: the CA file that signed the daemon's certificate, and
                the client certificate and key files it demands.
            timeout: seconds allowed to open a connection, and for a whole control call.

        Raises:
            ClientError: the address is neither a path nor an ``https://`` URL, or the TLS
                files cannot be loaded.
        """
        address = os.fspath(socket_or_url) if socket_or_url is not None else default_socket()
        self.address = address
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = None
        self._socket: str | None = None
        scheme = urlsplit(address).scheme if "://" in address else ""
        if scheme == "https":
            self._base = address.rstrip("/")
            self._ssl = _ssl_context(tls)
        elif scheme in {"", "unix"}:
            self._socket = address.removeprefix("unix://")
            self.address = self._socket
            # The host is never resolved: the connector always dials the socket.
            self._base = "http://ccdaemon"
        else:
            raise ClientError(
                f"{address!r} is neither a socket path nor an https:// URL", code="bad_address"
            )
        self._session: aiohttp.ClientSession | None = None

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
        """Close the connection pool; the client opens a new one if used again."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def health(self) -> dict[str, Any]:
        """``GET /v1/health``: engine, chaincode counts, queue and daemon version.

        Raises:
            APIError: ``engine_unavailable`` (503) when the engine does not answer.
        """
        return await self._json("GET", "/v1/health", bounded=True)

    async def launch(
        self, body: Mapping[str, Any], *, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """``POST /v1/chaincodes``: launch one chaincode, building its image if needed.

        Args:
            body: the launch request (ccid, type, peer_address, and optionally mspid,
                package as base64, tls).
            progress: called with each build output line as it comes; when given, the
                answer is streamed as ndjson.

        Returns:
            ``{"chaincode": ..., "built": bool, "timings": {...}}``.
        """
        return await self._work("/v1/chaincodes", body, progress)

    async def build(
        self, body: Mapping[str, Any], *, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """``POST /v1/images``: build a chaincode's image from its package (build at install).

        Args:
            body: ``{"ccid": str, "package": base64, "type": str (optional)}``.
            progress: called with each build output line, as for ``launch``.

        Returns:
            ``{"image": str, "built": bool, "duration": float}``.
        """
        return await self._work("/v1/images", body, progress)

    async def list(self, state: str | None = None) -> builtins.list[dict[str, Any]]:
        """``GET /v1/chaincodes``: every managed chaincode sorted by ccid, or those in ``state``."""
        query = {"state": state} if state is not None else {}
        answer = await self._json("GET", "/v1/chaincodes", query=query, bounded=True)
        chaincodes = answer.get("chaincodes")
        if not isinstance(chaincodes, builtins.list):
            raise ClientError("the chaincode list has no 'chaincodes' list", code="bad_answer")
        return chaincodes

    async def get(self, ccid: str) -> dict[str, Any]:
        """``GET /v1/chaincodes/{ccid}``: one chaincode; ``APIError`` 404 when unknown."""
        return await self._json("GET", _chaincode_path(ccid), bounded=True)

    async def stop(
        self,
        ccid: str,
        timeout: int = 10,  # noqa: ASYNC109 - the container's stop grace period, not a deadline
        dontremove: bool = False,
    ) -> dict[str, Any]:
        """``DELETE /v1/chaincodes/{ccid}``: stop the container as Fabric's stopInternal does.

        The daemon stops it with ``timeout`` seconds of grace, kills it, then removes it
        unless ``dontremove``.

        Returns:
            The chaincode, in state ``stopped``.
        """
        query = {"timeout": str(timeout), "dontremove": _bool(dontremove)}
        answer = await self._json("DELETE", _chaincode_path(ccid), query=query)
        return _member(answer, "chaincode")

    async def wait(self, ccid: str) -> int:
        """``POST /v1/chaincodes/{ccid}/wait``: block until the container exits, however long.

        Returns:
            The container's exit code.
        """
        answer = await self._json("POST", _chaincode_path(ccid) + "/wait")
        code = answer.get("exit_code")
        if not isinstance(code, int):
            raise ClientError("the wait answer has no integer 'exit_code'", code="bad_answer")
        return code

    async def logs(
        self,
        ccid: str,
        *,
        follow: bool = False,
        tail: int | Literal["all"] = "all",
        timestamps: bool = False,
    ) -> AsyncIterator[str]:
        """``GET /v1/chaincodes/{ccid}/logs``: the container's output, line by line.

        Args:
            ccid: the chaincode.
            follow: keep streaming until the container ends.
            tail: how many of the last lines to start with, or ``"all"``.
            timestamps: prefix each line with the engine's timestamp.

        Yields:
            Each line without its line ending; bytes that are not UTF-8 are replaced.
        """
        query = {"follow": _bool(follow), "tail": str(tail), "timestamps": _bool(timestamps)}
        path = _with_query(_chaincode_path(ccid) + "/logs", query)
        async with self._request("GET", path) as answer:
            async for line in _lines(answer.content):
                yield line.decode(errors="replace")

    async def gc(self, dry_run: bool = False, *, caches: bool = False) -> dict[str, Any]:
        """``POST /v1/gc``: remove (or with ``dry_run`` only list) leftover containers and images.

        Args:
            dry_run: only list what would be removed.
            caches: remove the daemon's build cache volumes too.

        Returns:
            ``{"dry_run": bool, "containers": [names], "images": [names], "caches":
            [volumes], "caches_kept": [volumes]}``.
        """
        query = {"dry_run": _bool(dry_run)}
        if caches:
            query["caches"] = _bool(caches)
        return await self._json("POST", "/v1/gc", query=query)

    async def _work(
        self, path: str, body: Mapping[str, Any], progress: Callable[[str], None] | None
    ) -> dict[str, Any]:
        """Post a launch or build, reading the ndjson stream when ``progress`` is wanted."""
        if progress is None:
            return await self._json("POST", path, body=body)
        async with self._request("POST", path, body=body, accept=NDJSON) as answer:
            if answer.content_type != NDJSON:  # the daemon chose a plain answer
                return _object(await answer.read())
            async for raw in _lines(answer.content):
                message = _object(raw)
                if "progress" in message:
                    progress(str(message["progress"]))
                elif "result" in message:
                    return _member(message, "result")
                elif "error" in message:
                    raise api_error(ERROR_STATUS.get(error_code(message), answer.status), message)
        raise RequestFailed(f"the daemon at {self.address} ended the stream before the result")

    async def _json(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        bounded: bool = False,
    ) -> dict[str, Any]:
        """Make one request and answer its JSON object."""
        target = _with_query(path, query or {})
        async with self._request(method, target, body=body, bounded=bounded) as answer:
            return _object(await answer.read())

    @asynccontextmanager
    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        accept: str = "application/json",
        bounded: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request; yield the response once its status says success.

        Errors of the HTTP layer while the caller reads the body inside the ``async with``
        are translated too, since they are thrown in at the ``yield``.

        ``path`` (with its query) is already percent-encoded: the URL is marked encoded so
        that a ccid's ``%2F`` reaches the daemon as sent instead of turning back into ``/``.
        """
        headers = {"Accept": accept}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(body)
        timeout = aiohttp.ClientTimeout(
            total=self.timeout if bounded else None,
            sock_connect=self.timeout,
        )
        with self._translate():
            async with self._pool().request(
                method,
                URL(self._base + path, encoded=True),
                data=data,
                headers=headers,
                timeout=timeout,
            ) as answer:
                if answer.status >= 300:  # noqa: PLR2004 - the contract answers only 2xx on success
                    raise api_error(answer.status, await answer.read())
                yield answer

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector: aiohttp.BaseConnector
            # No connection limit: a pool limit would let long waits and log streams hold
            # back control calls made through the same client.
            if self._socket is not None:
                connector = aiohttp.UnixConnector(path=self._socket, limit=0)
            else:
                connector = aiohttp.TCPConnector(ssl=self._ssl or True, limit=0)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn the HTTP layer's errors into ``DaemonUnreachable`` or ``RequestFailed``."""
        try:
            yield
        except aiohttp.ClientConnectorError as exc:
            raise unreachable(self.address, exc.os_error, unix=self._socket is not None) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise DaemonUnreachable(
                self.address,
                f"the daemon at {self.address} did not accept a connection "
                f"within {self.timeout:g} s",
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = (
                f"no answer within {self.timeout:g} s"
                if isinstance(exc, TimeoutError)
                else str(exc) or type(exc).__name__
            )
            raise RequestFailed(
                f"lost the connection to the daemon at {self.address}: {reason}; "
                "the request's outcome is unknown"
            ) from exc


def _ssl_context(tls: tuple[str | Path, str | Path, str | Path] | None) -> ssl.SSLContext | None:
    """The context for an https:// daemon: its CA, and the client certificate it demands."""
    if tls is None:
        return None
    ca, cert, key = tls
    try:
        context = ssl.create_default_context(cafile=os.fspath(ca))
        context.load_cert_chain(os.fspath(cert), os.fspath(key))
    except (OSError, ssl.SSLError) as exc:
        raise ClientError(f"cannot load the TLS files: {exc}", code="bad_tls_files") from exc
    return context


def _chaincode_path(ccid: str) -> str:
    # safe="": a ccid's ':' and any '/' must stay inside the one path segment.
    return "/v1/chaincodes/" + quote(ccid, safe="")


def _with_query(path: str, query: Mapping[str, str]) -> str:
    return path + "?" + urlencode(query) if query else path


def _bool(value: bool) -> str:
    return "true" if value else "false"


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Split a body into lines without a length limit (build and log lines can be long)."""
    pending = b""
    async for chunk in stream.iter_any():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line
    if pending:
        yield pending


def _object(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"the daemon's answer is not JSON: {exc}", code="bad_answer") from exc
    if not isinstance(value, dict):
        raise ClientError("the daemon's answer is not a JSON object", code="bad_answer")
    return value


def _member(answer: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = answer.get(name)
    if not isinstance(value, dict):
        raise ClientError(f"the daemon's answer has no {name!r} object", code="bad_answer")
    return value
