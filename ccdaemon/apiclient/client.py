"""The control API's client: requests, their answers, and ndjson streams read as they come.

Synchronous, on ``connection`` (blocking sockets, the standard library): its users are
short-lived processes, the builder's steps and the command line, whose every
millisecond of start-up shows in a peer's first invoke. Asynchronous code uses it
through ``ccdaemon.apiclient.aio.AsyncClient``. A failure reaches the caller as one of
``ccdaemon.apiclient.errors``.

Timeouts: opening a connection and the short control calls (health, list, get) are
bounded by ``Client.timeout``; launch, build, stop, wait, logs and gc are not, because
they last as long as the work they do (a stop may queue behind a build of the same
container). ``stop`` takes a bound of its own for callers that have a deadline.
"""

from __future__ import annotations

import builtins
import os

from ccdaemon.apiclient.errors import (
    ERROR_STATUS,
    ClientError,
    RequestFailed,
    api_error,
    error_code,
)
from ccdaemon.apiclient.session import Session, json_object

#: ``typing.TYPE_CHECKING`` without importing typing (see ``connection``).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator, Mapping
    from pathlib import Path
    from types import TracebackType
    from typing import Any, Literal, Self

DEFAULT_SOCKET = "/run/ccdaemon/ccdaemon.sock"
NDJSON = "application/x-ndjson"


def default_socket() -> str:
    """The daemon's address: ``$CCDAEMON_SOCKET``, else ``/run/ccdaemon/ccdaemon.sock``."""
    return os.environ.get("CCDAEMON_SOCKET") or DEFAULT_SOCKET


class Client:
    """Connections to one daemon, kept alive between calls; ``with Client() as client``.

    Calls may come from several threads at once: each takes a connection of its own.

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
            ClientError: the address is neither a path nor an ``https://`` URL with a
                port, or the TLS files cannot be loaded.
        """
        address = os.fspath(socket_or_url) if socket_or_url is not None else default_socket()
        self._session = Session(address, tls=tls, timeout=timeout)
        self.address = self._session.address
        self.timeout = timeout

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections; the client opens new ones if used again."""
        self._session.close()

    def health(self) -> dict[str, Any]:
        """``GET /v1/health``: engine, chaincode counts, queue and daemon version.

        Raises:
            APIError: ``engine_unavailable`` (503) when the engine does not answer.
        """
        return self._json("GET", "/v1/health", within=self.timeout)

    def launch(
        self, body: Mapping[str, Any], *, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """``POST /v1/chaincodes``: launch one chaincode, building its image if needed.

        Args:
            body: the launch request (ccid, type, peer_address, and optionally mspid,
                package as base64, tls, image).
            progress: called with each build output line as it comes; when given, the
                answer is streamed as ndjson.

        Returns:
            ``{"chaincode": ..., "built": bool, "timings": {...}}``.
        """
        return self._work("/v1/chaincodes", body, progress)

    def build(
        self, body: Mapping[str, Any], *, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """``POST /v1/images``: build a chaincode's image from its package (build at install).

        Args:
            body: ``{"ccid": str, "package": base64, "type": str (optional)}``.
            progress: called with each build output line, as for ``launch``.

        Returns:
            ``{"image": str, "built": bool, "duration": float}``.
        """
        return self._work("/v1/images", body, progress)

    def list(self, state: str | None = None) -> builtins.list[dict[str, Any]]:
        """``GET /v1/chaincodes``: every managed chaincode sorted by ccid, or those in ``state``."""
        query = {"state": state} if state is not None else {}
        answer = self._json("GET", "/v1/chaincodes", query=query, within=self.timeout)
        chaincodes = answer.get("chaincodes")
        if not isinstance(chaincodes, builtins.list):
            raise ClientError("the chaincode list has no 'chaincodes' list", code="bad_answer")
        return chaincodes

    def get(self, ccid: str) -> dict[str, Any]:
        """``GET /v1/chaincodes/{ccid}``: one chaincode; ``APIError`` 404 when unknown."""
        return self._json("GET", _chaincode_path(ccid), within=self.timeout)

    def stop(
        self,
        ccid: str,
        timeout: int = 10,
        dontremove: bool = False,
        *,
        within: float | None = None,
    ) -> dict[str, Any]:
        """``DELETE /v1/chaincodes/{ccid}``: stop the container as Fabric's stopInternal does.

        The daemon stops it with ``timeout`` seconds of grace, kills it, then removes it
        unless ``dontremove``. ``within``: the most seconds the whole call may take
        (``RequestFailed`` past it: the stop's outcome is then unknown); no bound if None.

        Returns:
            The chaincode, in state ``stopped``.
        """
        query = {"timeout": str(timeout), "dontremove": _bool(dontremove)}
        answer = self._json("DELETE", _chaincode_path(ccid), query=query, within=within)
        return _member(answer, "chaincode")

    def wait(self, ccid: str) -> int:
        """``POST /v1/chaincodes/{ccid}/wait``: block until the container exits, however long.

        Returns:
            The container's exit code.
        """
        answer = self._json("POST", _chaincode_path(ccid) + "/wait")
        code = answer.get("exit_code")
        if not isinstance(code, int):
            raise ClientError("the wait answer has no integer 'exit_code'", code="bad_answer")
        return code

    def logs(
        self,
        ccid: str,
        *,
        follow: bool = False,
        tail: int | Literal["all"] = "all",
        timestamps: bool = False,
    ) -> Generator[str, None, None]:
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
        with self._session.request("GET", path) as answer:
            for line in _lines(answer.chunks()):
                yield line.decode(errors="replace")

    def gc(self, dry_run: bool = False, *, caches: bool = False) -> dict[str, Any]:
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
        return self._json("POST", "/v1/gc", query=query)

    def _work(
        self, path: str, body: Mapping[str, Any], progress: Callable[[str], None] | None
    ) -> dict[str, Any]:
        """Post a launch or build, reading the ndjson stream when ``progress`` is wanted."""
        if progress is None:
            return self._json("POST", path, body=body)
        with self._session.request("POST", path, body=body, accept=NDJSON) as answer:
            if answer.content_type != NDJSON:  # the daemon chose a plain answer
                return json_object(answer.read())
            for raw in _lines(answer.chunks()):
                message = json_object(raw)
                if "progress" in message:
                    progress(str(message["progress"]))
                elif "result" in message:
                    return _member(message, "result")
                elif "error" in message:
                    raise api_error(ERROR_STATUS.get(error_code(message), answer.status), message)
        raise RequestFailed(f"the daemon at {self.address} ended the stream before the result")

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        within: float | None = None,
    ) -> dict[str, Any]:
        """Make one request and answer its JSON object."""
        return self._session.json(method, _with_query(path, query or {}), body=body, within=within)


#: The bytes a path segment or a query value keeps as they are (RFC 3986's unreserved).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _quote(text: str) -> str:
    """``text`` percent-encoded whole: urllib.parse.quote(text, safe=""), without its import."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())


def _chaincode_path(ccid: str) -> str:
    # Encoded whole: a ccid's ':' and any '/' must stay inside the one path segment.
    return "/v1/chaincodes/" + _quote(ccid)


def _with_query(path: str, query: Mapping[str, str]) -> str:
    pairs = "&".join(f"{_quote(key)}={_quote(value)}" for key, value in query.items())
    return f"{path}?{pairs}" if query else path


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Split a body into lines without a length limit (build and log lines can be long)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


def _member(answer: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = answer.get(name)
    if not isinstance(value, dict):
        raise ClientError(f"the daemon's answer has no {name!r} object", code="bad_answer")
    return value
