"""The client's HTTP/1.1 on blocking sockets, against a scripted server on a Unix socket.

The stand-in of tests/test_apiclient.py is a well-behaved aiohttp server; the server here
answers byte for byte what each test scripts (cut bodies, something not HTTP, silence,
a kept-alive connection closed while idle), so each failure is named for what it was.
"""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from ccdaemon.apiclient import Client, RequestFailed
from ccdaemon.apiclient.connection import request_head

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

OK = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"status":1}\n'
)
#: Script steps besides answers: read the request and close without answering; close at
#: once, without waiting for a request; read the request and never answer.
DROP, CLOSE, HOLD = "drop", "close", "hold"


class Scripted:
    """A server answering each connection's requests as scripted, step by step.

    Attributes:
        answers: per connection, its steps: bytes (read a request, send them), DROP,
            CLOSE or HOLD; a connection is closed after its last step.
        requests: every request head received.
        connections: how many connections were accepted.
        ended: set when the server stops; HOLD waits for it.
        closed_first: set once the first connection is closed.
    """

    def __init__(self, answers: list[list[bytes | str]]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self.ended = threading.Event()
        self.closed_first = threading.Event()

    def serve(self, listener: socket.socket) -> None:
        """Accept connections until the listener closes."""
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            script = self.answers[self.connections] if self.connections < len(self.answers) else []
            self.connections += 1
            with conn:
                for step in script:
                    if step == CLOSE or not self._read_request(conn) or step == DROP:  # noqa: SIM109
                        break
                    if step == HOLD:
                        self.ended.wait(10)
                        break
                    assert isinstance(step, bytes)
                    conn.sendall(step)
            self.closed_first.set()

    def _read_request(self, conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return False
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        self.requests.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)
        return True


@contextmanager
def scripted(tmp_path: Path, answers: list[list[bytes | str]]) -> Iterator[tuple[str, Scripted]]:
    """Serve ``answers`` on a Unix socket from a thread; yield its path and the server."""
    path = str(tmp_path / "scripted.sock")
    server = Scripted(answers)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    thread = threading.Thread(target=server.serve, args=(listener,))
    thread.start()
    try:
        yield path, server
    finally:
        server.ended.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(10)


def test_calls_share_one_kept_alive_connection(tmp_path: Path) -> None:
    """Two calls in a row: one connection, the second request on the first's socket."""
    with scripted(tmp_path, [[OK, OK]]) as (path, server), Client(path) as client:
        assert client.health() == {"status": 1}
        assert client.health() == {"status": 1}
    assert (server.connections, len(server.requests)) == (1, 2)


def test_a_connection_the_daemon_closed_while_idle_is_not_reused(tmp_path: Path) -> None:
    """The daemon closed the kept connection (its idle timeout): the next call opens anew."""
    with scripted(tmp_path, [[OK, CLOSE], [OK]]) as (path, server), Client(path) as client:
        assert client.health() == {"status": 1}
        server.closed_first.wait(10)
        assert client.health() == {"status": 1}
    assert server.connections == 2


def test_a_body_cut_short_fails_the_request_saying_so(tmp_path: Path) -> None:
    """A Content-Length body that ends early: the outcome is unknown, and the error says why."""
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
    failed = pytest.raises(RequestFailed, match="body was cut with 90 bytes still to come")
    with scripted(tmp_path, [[cut]]) as (path, _), Client(path) as client, failed:
        client.health()


def test_an_answer_that_is_not_http_fails_the_request_naming_it(tmp_path: Path) -> None:
    """Something else answers on the socket: the error quotes its first line."""
    ssh: list[list[bytes | str]] = [[b"SSH-2.0-OpenSSH_9.2\r\n\r\n"]]
    failed = pytest.raises(RequestFailed, match=r"not an HTTP/1\.x status line: b'SSH-2\.0")
    with scripted(tmp_path, ssh) as (path, _), Client(path) as client, failed:
        client.list()


def test_a_connection_closed_before_any_answer_fails_the_request(tmp_path: Path) -> None:
    """The daemon went away mid-request: RequestFailed, not DaemonUnreachable."""
    failed = pytest.raises(RequestFailed, match="ended after 0 bytes of a head")
    with scripted(tmp_path, [[DROP]]) as (path, _), Client(path) as client, failed:
        client.wait("mycc:1")


def test_a_chunked_body_with_extensions_and_trailers_is_read_whole(tmp_path: Path) -> None:
    """Chunked framing: sizes in hex with extensions, then trailers; the connection is kept."""
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value\r\n{"exi\r\n'
        b'c\r\nt_code": 7}\n\r\n'
        b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    with scripted(tmp_path, [[chunked, OK]]) as (path, server), Client(path) as client:
        assert client.wait("mycc:1") == 7
        assert client.health() == {"status": 1}
    assert server.connections == 1


def test_stop_within_a_bound_fails_once_the_bound_passes(tmp_path: Path) -> None:
    """``stop(within=...)``: a daemon that does not answer in time leaves the outcome unknown."""
    failed = pytest.raises(RequestFailed, match=r"no answer within 0\.2 s")
    with scripted(tmp_path, [[HOLD]]) as (path, _), Client(path) as client, failed:
        client.stop("mycc:1", timeout=0, within=0.2)


def test_request_head_frames_the_body() -> None:
    """The head names the host, the caller's headers and the body's length."""
    head = request_head("POST", "/v1/gc?dry_run=true", {"Accept": "application/json"}, None)
    assert head == (
        b"POST /v1/gc?dry_run=true HTTP/1.1\r\nHost: ccdaemon\r\n"
        b"Accept: application/json\r\nContent-Length: 0\r\n\r\n"
    )
