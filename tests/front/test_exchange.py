"""The front's HTTP exchange on its own: how a streamed request body is handed on."""

from __future__ import annotations

import socket

import h11
from anyio.abc import SocketStream

from ccdaemon.dockerfront.exchange import Exchange, next_event

#: A Go client streaming a gzip build context sends chunks of flate's flush size.
CHUNK = 240


async def test_a_body_sent_in_small_chunks_is_handed_on_as_read_not_chunk_by_chunk() -> None:
    pieces = [bytes([n]) * CHUNK for n in range(200)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    request = (
        b"POST /build HTTP/1.1\r\nHost: front\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"0\r\n\r\n"
    )
    ours, theirs = socket.socketpair()
    with theirs:
        theirs.sendall(request)  # all of it in the socket before the front reads
        stream = await SocketStream.from_socket(ours)
        async with stream:
            conn = h11.Connection(h11.SERVER)
            head = await next_event(stream, conn)
            assert isinstance(head, h11.Request)
            got = [piece async for piece in Exchange(stream, conn, head).body()]
    assert b"".join(got) == b"".join(pieces)
    # 48 KB in the socket come in one or two reads; one piece a chunk would be 200.
    assert len(got) <= 2, f"{len(got)} pieces for 200 chunks"
