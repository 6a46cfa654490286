"""A typed client for ccdaemon's control API (docs/api-contract.md).

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

``client`` holds ``Client`` (and says which calls have timeouts), on ``connection``'s
HTTP/1.1 over blocking sockets; ``errors`` the errors and what each failure means;
``aio`` ``AsyncClient``, the same client for asynchronous code (imported from there, so
that the synchronous client's users never load an event loop).
"""

from ccdaemon.apiclient.client import DEFAULT_SOCKET, NDJSON, Client, default_socket
from ccdaemon.apiclient.errors import (
    ERROR_STATUS,
    APIError,
    ClientError,
    DaemonUnreachable,
    RequestFailed,
)

__all__ = [
    "DEFAULT_SOCKET",
    "ERROR_STATUS",
    "NDJSON",
    "APIError",
    "Client",
    "ClientError",
    "DaemonUnreachable",
    "RequestFailed",
    "default_socket",
]
