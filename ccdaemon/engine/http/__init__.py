"""HTTP/1.1 for the engine's API: kept-alive connections over a Unix or TCP/TLS socket.

The engine speaks a small, well-behaved subset of HTTP/1.1 (JSON and tar bodies, chunked
streams, hijacked attach connections that end at EOF), so this is written by hand: a
general HTTP client costs two to three times the CPU per call (scripts/bench/client.py
shows it), and each of its upgrades has broken somebody's Unix-socket transport.

``connection`` holds the sockets and their pool, ``messages`` the requests and responses
on them. A body is read through ``Body``, which tells a clean end from a cut one. A
connection goes back to the pool only when its response was read to the end; anything
else (cancellation, an error, a hijacked stream) closes it.
"""

from ccdaemon.engine.http.connection import Connection, Pool
from ccdaemon.engine.http.messages import (
    Body,
    BodyCut,
    ProtocolError,
    receive,
    send_chunked,
    write,
)

__all__ = [
    "Body",
    "BodyCut",
    "Connection",
    "Pool",
    "ProtocolError",
    "receive",
    "send_chunked",
    "write",
]
