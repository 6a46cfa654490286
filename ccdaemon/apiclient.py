"""A typed async client for ccdaemon's control API (docs/api-contract.md).

It speaks HTTP/1.1 over the daemon's Unix socket, or over ``https://host:port`` with a
client certificate for the TCP listener. Every failure reaches the caller as a
``ClientError``:

- ``APIError``: the daemon answered with its JSON error form (status, code, message and
  the extra fields such as ``field`` or ``log_tail``);
- ``DaemonUnreachable``: no connection could be opened, so the daemon did nothing;
- ``RequestFailed``: the connection broke or timed out after the request may have
  reached the daemon, so the outcome is unknown;
- ``ClientError`` itself: a bad address, unreadable TLS files, or an answer that does not
  follow the contract.

Timeouts: opening a connection and the short control calls (health, list, get) are
bounded; launch, build, stop, wait, logs and gc are not, because they last as long as the
work they do (a stop may queue behind a build of the same container).
"""

from __future__ import annotations

import builtins
import errno
import grp
import os
import ssl
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import orjson
from yarl import URL

from ccdaemon.errors import CcdaemonError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping
    from types import TracebackType

DEFAULT_SOCKET = "/run/ccdaemon/ccdaemon.sock"
NDJSON = "application/x-ndjson"

#: The status each error code of the contract is sent with. A streamed error arrives
#: after the 200 is sent, so its APIError takes the status it would have had from here.
ERROR_STATUS: dict[str, int] = {
    "invalid_json": 400,
    "invalid_request": 400,
    "unknown_chaincode_type": 400,
    "invalid_package": 400,
    "unknown_chaincode": 404,
    "no_such_image": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "package_too_large": 413,
    "body_too_large": 413,
    "build_failed": 422,
    "engine_error": 502,
    "engine_unavailable": 503,
    "shutting_down": 503,
    "startup_timeout": 504,
}


def default_socket() -> str:
    """The daemon's address: ``$CCDAEMON_SOCKET``, else ``/run/ccdaemon/ccdaemon.sock``."""
    return os.environ.get("CCDAEMON_SOCKET") or DEFAULT_SOCKET


class ClientError(CcdaemonError):
    """Base of the client's errors; raised itself for bad input or off-contract answers.

    Attributes:
        code: a short machine-readable name (the daemon's error code for ``APIError``).
        message: the human-readable explanation.
    """

    def __init__(self, message: str, *, code: str = "client_error") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class APIError(ClientError):
    """The daemon refused or failed the request and said why in its JSON error form.

    Attributes:
        status: the HTTP status; for an error that ends an ndjson stream (sent after the
            200), the status the contract gives its code.
        extra: every field of the error object besides ``code`` and ``message``.
    """

    def __init__(self, status: int, code: str, message: str, extra: Mapping[str, Any]) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.extra = dict(extra)

    @property
    def field(self) -> str | None:
        """The request field at fault (``invalid_request``, ``unknown_chaincode_type``)."""
        value = self.extra.get("field")
        return value if isinstance(value, str) else None

    @property
    def log_tail(self) -> builtins.list[str]:
        """The last lines of the build's output (``build_failed``); empty otherwise."""
        value = self.extra.get("log_tail")
        return [str(line) for line in value] if isinstance(value, builtins.list) else []


class DaemonUnreachable(ClientError):
    """No connection to the daemon could be opened: the request never reached it.

    Attributes:
        address: the socket path or URL that was tried.
        errno: the operating system's error number, when there was one.
    """

    def __init__(self, address: str, message: str, *, errno: int | None = None) -> None:
        super().__init__(message, code="daemon_unreachable")
        self.address = address
        self.errno = errno


class RequestFailed(ClientError):
    """The connection broke or timed out mid-request: the outcome on the daemon is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="request_failed")


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

    async def gc(self, dry_run: bool = False) -> dict[str, Any]:
        """``POST /v1/gc``: remove (or with ``dry_run`` only list) leftover containers and images.

        Returns:
            ``{"dry_run": bool, "containers": [names], "images": [names]}``.
        """
        return await self._json("POST", "/v1/gc", query={"dry_run": _bool(dry_run)})

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
                    raise _api_error(ERROR_STATUS.get(_code(message), answer.status), message)
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
                    raise _api_error(answer.status, await answer.read())
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
            raise self._unreachable(exc.os_error) from exc
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

    def _unreachable(self, error: OSError) -> DaemonUnreachable:
        where = self.address
        if error.errno == errno.ENOENT:
            message = (
                f"no daemon socket at {where} — is ccdaemon running? (CCDAEMON_SOCKET / --socket)"
            )
        elif error.errno in {errno.EACCES, errno.EPERM}:
            message = (
                f"permission denied on {where}: run as a member of the socket's group"
                f"{_group_hint(where)} or as its owner"
            )
        elif error.errno == errno.ECONNREFUSED and self._socket is not None:
            message = (
                f"nothing listens on {where}: a stale socket left by a daemon that stopped? "
                "— is ccdaemon running?"
            )
        else:
            reason = error.strerror or str(error)
            message = f"cannot connect to the daemon at {where}: {reason}"
        return DaemonUnreachable(where, message, errno=error.errno)


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


def _group_hint(path: str) -> str:
    """`` (NAME)`` for the group owning ``path``, or nothing when it cannot be read."""
    try:
        gid = Path(path).stat().st_gid
        return f" ({grp.getgrgid(gid).gr_name})"
    except (OSError, KeyError):
        return ""


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


def _code(message: Mapping[str, Any]) -> str:
    error = message.get("error")
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def _api_error(status: int, body: bytes | Mapping[str, Any]) -> APIError:
    """The APIError for an error answer, also when it is not in the contract's form."""
    parsed: object
    if isinstance(body, bytes):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
    else:
        parsed = body
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        extra = {k: v for k, v in error.items() if k not in {"code", "message"}}
        return APIError(status, error["code"], str(error.get("message", "")), extra)
    # Not ccdaemon's form: something else answers on the socket, or a proxy does.
    text = body.decode(errors="replace").strip() if isinstance(body, bytes) else ""
    return APIError(status, f"http_{status}", text[:200] or "no error message", {})
