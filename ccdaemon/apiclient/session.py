"""Connections to one daemon: kept alive, opened within a timeout, each request's errors told.

The wire half of ``Client`` (``client`` holds the API's calls and their answers): the
address, the TLS context, the idle connections, and one request sent and its answer
checked, with what went wrong on the socket or in HTTP turned into
``ccdaemon.apiclient.errors``.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

from ccdaemon.apiclient.connection import (
    Connection,
    Cut,
    ProtocolError,
    Response,
    deadline_in,
    request_head,
)
from ccdaemon.apiclient.errors import (
    ClientError,
    DaemonUnreachable,
    RequestFailed,
    api_error,
    unreachable,
)

#: ``typing.TYPE_CHECKING`` without importing typing (see ``connection``).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator, Mapping
    from pathlib import Path
    from typing import Any


class Session:
    """The connections to one daemon; several threads may make requests at once.

    Attributes:
        address: the socket path (without ``unix://``) or the ``https://`` URL.
        timeout: seconds allowed to connect.
    """

    def __init__(
        self,
        address: str,
        *,
        tls: tuple[str | Path, str | Path, str | Path] | None,
        timeout: float,
    ) -> None:
        """Describe the daemon at ``address``; nothing is opened before the first request.

        Raises:
            ClientError: the address is neither a path nor an ``https://`` URL with a
                port, or the TLS files cannot be loaded.
        """
        self.address = address
        self.timeout = timeout
        self._socket: str | None = None
        self._host, self._port = "", 0
        self._ssl: ssl.SSLContext | None = None
        self._idle: list[Connection] = []
        scheme = address.partition("://")[0].lower() if "://" in address else ""
        if scheme == "https":
            self._host, self._port = _host_port(address)
            self._ssl = _ssl_context(tls)
        elif scheme in {"", "unix"}:
            self._socket = address.removeprefix("unix://")
            self.address = self._socket
        else:
            raise ClientError(
                f"{address!r} is neither a socket path nor an https:// URL", code="bad_address"
            )

    def close(self) -> None:
        """Close the idle connections; new ones are opened if used again."""
        while self._idle:
            self._idle.pop().close()

    def json(
        self,
        method: str,
        target: str,
        *,
        body: Mapping[str, Any] | None = None,
        within: float | None = None,
    ) -> dict[str, Any]:
        """Make one request and answer its JSON object."""
        with self.request(method, target, body=body, within=within) as answer:
            return json_object(answer.read())

    @contextmanager
    def request(
        self,
        method: str,
        target: str,
        *,
        body: Mapping[str, Any] | None = None,
        accept: str = "application/json",
        within: float | None = None,
    ) -> Iterator[Response]:
        """Send a request; yield the response once its status says success.

        ``target`` (with its query) is already percent-encoded, so a ccid's ``%2F`` reaches
        the daemon as sent. The connection goes back to the idle ones only when its
        answer was read whole; anything else (an error, a signal, a stream left early)
        closes it. Errors of the socket while the caller reads the body inside the
        ``with`` are translated too.
        """
        headers = {"Accept": accept}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, separators=(",", ":")).encode()
        deadline = deadline_in(within)
        conn = self._connection(deadline)
        kept = False
        try:
            with self._translate(within):
                conn.send(request_head(method, target, headers, data), data, deadline=deadline)
                answer = conn.response(deadline=deadline)
                if answer.status >= 300:  # noqa: PLR2004 - the contract answers only 2xx on success
                    raise api_error(answer.status, answer.read())
                yield answer
            kept = answer.reusable
        finally:
            if kept:
                self._idle.append(conn)
            else:
                conn.close()

    def _connection(self, deadline: float | None) -> Connection:
        """An idle connection still open, or a new one (connecting within ``timeout``)."""
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                break
            if conn.usable():
                return conn
            conn.close()
        connect_by = deadline_in(self.timeout)
        if deadline is not None and connect_by is not None:
            connect_by = min(deadline, connect_by)
        try:
            if self._socket is not None:
                return Connection.open_unix(self._socket, deadline=connect_by)
            assert self._ssl is not None  # noqa: S101 -- set with the https:// address
            return Connection.open_tls(self._host, self._port, self._ssl, deadline=connect_by)
        except TimeoutError as exc:
            raise DaemonUnreachable(
                self.address,
                f"the daemon at {self.address} did not accept a connection "
                f"within {self.timeout:g} s",
            ) from exc
        except OSError as exc:
            raise unreachable(self.address, exc, unix=self._socket is not None) from exc

    @contextmanager
    def _translate(self, within: float | None) -> Iterator[None]:
        """Turn the socket's and HTTP's errors mid-request into ``RequestFailed``."""
        try:
            yield
        except TimeoutError as exc:
            raise RequestFailed(
                f"lost the connection to the daemon at {self.address}: no answer within "
                f"{within or self.timeout:g} s; the request's outcome is unknown"
            ) from exc
        except (OSError, Cut, ProtocolError) as exc:
            raise RequestFailed(
                f"lost the connection to the daemon at {self.address}: "
                f"{str(exc) or type(exc).__name__}; the request's outcome is unknown"
            ) from exc


def _ssl_context(tls: tuple[str | Path, str | Path, str | Path] | None) -> ssl.SSLContext:
    """The context for an https:// daemon: its CA, and the client certificate it demands."""
    import ssl  # noqa: PLC0415 -- only a TCP daemon needs it; a Unix socket's client loads lean

    try:
        if tls is None:
            return ssl.create_default_context()
        ca, cert, key = tls
        context = ssl.create_default_context(cafile=os.fspath(ca))
        context.load_cert_chain(os.fspath(cert), os.fspath(key))
    except (OSError, ssl.SSLError) as exc:
        raise ClientError(f"cannot load the TLS files: {exc}", code="bad_tls_files") from exc
    return context


def _host_port(address: str) -> tuple[str, int]:
    """The host and port of an ``https://host:port`` address."""
    from urllib.parse import urlsplit  # noqa: PLC0415 -- only a TCP daemon needs it

    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ClientError(
            f"{address!r} names no host and port (https://host:port)", code="bad_address"
        )
    return parts.hostname, port


def json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object ``raw`` holds (ClientError ``bad_answer`` if it holds none)."""
    try:
        value = json.loads(raw)
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ClientError(f"the daemon's answer is not JSON: {exc}", code="bad_answer") from exc
    if not isinstance(value, dict):
        raise ClientError("the daemon's answer is not a JSON object", code="bad_answer")
    return value
