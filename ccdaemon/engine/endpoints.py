"""Endpoints: where an engine is (Fabric's ``vm.endpoint``) and its TLS files."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ccdaemon.engine import http

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """TLS files for a ``tcp://`` or ``https://`` endpoint, as Fabric's ``vm.docker.tls``.

    Attributes:
        ca: the CA that signed the engine's certificate (None: the system's trust store).
        cert: the client certificate, for engines that demand one (``--tlsverify``).
        key: the client certificate's key.
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


def connect(endpoint: str, tls: TLSFiles | None) -> tuple[str, http.Pool]:
    """Return the Host header and the pool for an endpoint as Fabric's vm.endpoint reads.

    Raises:
        ValueError: the endpoint is not ``unix://``, ``tcp://`` or ``https://``.
    """
    if "://" not in endpoint:
        endpoint = ("unix://" if endpoint.startswith("/") else "tcp://") + endpoint
    parts = urlsplit(endpoint)
    if parts.scheme == "unix":
        return "localhost", http.Pool(path=parts.path)
    if parts.scheme not in {"tcp", "http", "https"} or not parts.hostname:
        raise ValueError(f"engine endpoint {endpoint!r} is not unix://, tcp:// or https://")
    context: ssl.SSLContext | None = None
    if tls is not None or parts.scheme == "https":
        context = ssl.create_default_context(cafile=str(tls.ca) if tls and tls.ca else None)
        if tls is not None and tls.cert is not None:
            context.load_cert_chain(tls.cert, tls.key)
    port = parts.port or (2376 if context else 2375)
    return f"{parts.hostname}:{port}", http.Pool(host=parts.hostname, port=port, tls=context)
