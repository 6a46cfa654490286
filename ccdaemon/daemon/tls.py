"""Mutual TLS for the daemon's TCP listeners (the control API's, the Docker-API front's).

Both serve only clients whose certificate the configured CA signed: a TCP listener
reaches beyond the host, where the Unix sockets' file permissions do not.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSListener

from ccdaemon.daemon.sockets import StartError

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import AnyByteStream

log = logging.getLogger(__name__)


def server_context(
    ca: Path | None, cert: Path | None, key: Path | None, *, table: str
) -> ssl.SSLContext:
    """A server-side context that requires a client certificate signed by ``ca``.

    Args:
        ca: the CA that signs the clients' certificates (``<table>.tcp_ca``).
        cert: the server's certificate chain (``<table>.tcp_cert``).
        key: its private key (``<table>.tcp_key``).
        table: the configuration table the files come from, for the error.

    Returns:
        A context with CERT_REQUIRED and TLS 1.2 at least.

    Raises:
        StartError: a file is unset, unreadable or not what it should be.
    """
    if ca is None or cert is None or key is None:
        raise StartError(f"{table}.tcp needs {table}.tcp_ca, tcp_cert and tcp_key")
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:  # ssl.SSLError is an OSError; named for the reader
        raise StartError(
            f"cannot load {table}.tcp_ca, tcp_cert or tcp_key ({ca}, {cert}, {key}): {exc}"
        ) from exc
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass(eq=False)
class QuietTLSListener(TLSListener):
    """anyio's TLS listener, with a failed handshake one short line instead of a traceback.

    Anyone who reaches the port can fail a handshake (no certificate, another CA's, plain
    HTTP, a port scan); anyio logs each at ERROR with a traceback. The connection is
    dropped either way, and the listener serves on.
    """

    @staticmethod
    async def handle_handshake_error(exc: BaseException, stream: AnyByteStream) -> None:
        """Drop the connection; log why at INFO (a TLS refusal) or DEBUG (the client left)."""
        peer = _address(stream.extra(SocketAttribute.remote_address, "?"))  # noqa: S610 -- anyio, not Django
        await anyio.aclose_forcefully(stream)
        if isinstance(exc, anyio.get_cancelled_exc_class()) or not isinstance(exc, Exception):
            raise exc
        if isinstance(exc, ssl.SSLError):
            log.info("TLS handshake with %s refused: %s", peer, exc.reason or exc)
        else:  # a timeout, or a client gone mid-handshake
            log.debug("TLS handshake with %s dropped: %r", peer, exc)


def _address(address: object) -> str:
    """``host:port`` of a TCP peer's address tuple."""
    if isinstance(address, tuple) and len(address) >= 2:  # noqa: PLR2004 -- (host, port, ...)
        return f"{address[0]}:{address[1]}"
    return str(address)
