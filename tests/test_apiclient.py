"""The API client against a test stand-in for the daemon, on a real Unix socket.

The stand-in answers per docs/api-contract.md from data the tests set; it is not the
daemon (ccdaemon.daemon), whose own tests hold it to the contract. tests/test_cli.py
uses the same stand-in.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import grp
import ipaddress
import os
import socket
import ssl
import threading
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ccdaemon.apiclient import (
    APIError,
    Client,
    ClientError,
    DaemonUnreachable,
    RequestFailed,
    default_socket,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

ROOT = Path(__file__).resolve().parent.parent
NDJSON = "application/x-ndjson"

#: Every route of docs/api-contract.md, as (path, method).
CONTRACT_ROUTES = {
    ("/v1/health", "GET"),
    ("/v1/chaincodes", "GET"),
    ("/v1/chaincodes", "POST"),
    ("/v1/chaincodes/{ccid}", "GET"),
    ("/v1/chaincodes/{ccid}", "DELETE"),
    ("/v1/chaincodes/{ccid}/wait", "POST"),
    ("/v1/chaincodes/{ccid}/logs", "GET"),
    ("/v1/images", "POST"),
    ("/v1/gc", "POST"),
    ("/metrics", "GET"),
}

LAUNCH_FIELDS = {"ccid", "type", "peer_address", "mspid", "package", "tls"}


def chaincode(ccid: str, state: str = "running", exit_code: int | None = None) -> dict[str, Any]:
    """A Chaincode object of the contract."""
    name = "dev-peer0-" + ccid.replace(":", "-").replace("/", "-")
    return {
        "ccid": ccid,
        "container": name,
        "container_id": "4f3c" + "0" * 60,
        "image": name + "-0123abcd",
        "state": state,
        "exit_code": exit_code,
        "started_at": "2026-11-28T10:00:00.123Z",
        "finished_at": None if exit_code is None else "2026-11-28T10:05:00.000Z",
        "error": None,
        "adopted": False,
    }


def error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """An error answer in the contract's form."""
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status, dumps=lambda v: orjson.dumps(v).decode())


class StandIn:
    """A test stand-in for the daemon: the contract's routes, answered from test data.

    Attributes:
        chaincodes: the managed chaincodes by ccid.
        seen: every request as (method, raw path with query, Accept header).
        connections: the connections requests came on (their transports' ids).
        bodies: the JSON body of every POST.
        engine_up: health answers 503 ``engine_unavailable`` when False.
        health_garbage: health answers 500 with a text body, as something not ccdaemon.
        build_log: the progress lines of a build.
        build_fails: builds fail with ``build_failed`` after their progress.
        truncate: ndjson streams end after the progress, without result or error.
        delay: seconds each GET of one chaincode and each wait take before answering.
        log_lines: the container's output.
    """

    def __init__(self) -> None:
        self.chaincodes = {
            cc["ccid"]: cc
            for cc in (
                chaincode("mycc:abc123"),
                chaincode("other:def456", "exited", 2),
                chaincode("org/cc:1.0", "running"),
            )
        }
        self.seen: list[tuple[str, str, str]] = []
        self.connections: set[int] = set()
        self.bodies: list[dict[str, Any]] = []
        self.engine_up = True
        self.health_garbage = False
        self.build_log = ["Step 1/2 : FROM ccenv", "Step 2/2 : RUN build"]
        self.build_fails = False
        self.truncate = False
        self.delay = 0.0
        self.log_lines = ["starting chaincode", "x" * 200_000, "ready"]

    def app(self) -> web.Application:
        """The aiohttp application with the contract's routes."""
        app = web.Application(middlewares=[self._record])
        app.add_routes(
            [
                web.get("/v1/health", self.health),
                web.get("/v1/chaincodes", self.list),
                web.post("/v1/chaincodes", self.launch),
                web.get("/v1/chaincodes/{ccid}", self.get),
                web.delete("/v1/chaincodes/{ccid}", self.stop),
                web.post("/v1/chaincodes/{ccid}/wait", self.wait),
                web.get("/v1/chaincodes/{ccid}/logs", self.logs),
                web.post("/v1/images", self.build),
                web.post("/v1/gc", self.gc),
                web.get("/metrics", self.metrics),
            ]
        )
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.seen.append((request.method, request.raw_path, request.headers.get("Accept", "")))
        self.connections.add(id(request.transport))
        if request.method == "POST" and request.can_read_body:
            self.bodies.append(await request.json())
        response: web.StreamResponse = await handler(request)
        return response

    async def health(self, _: web.Request) -> web.Response:
        """GET /v1/health."""
        if self.health_garbage:
            return web.Response(status=500, text="Internal Server Error")
        if not self.engine_up:
            return error(503, "engine_unavailable", "engine at unix:///run/docker.sock: refused")
        running = sum(cc["state"] == "running" for cc in self.chaincodes.values())
        return web.json_response(
            {
                "status": "ok",
                "engine": {
                    "endpoint": "unix:///run/docker.sock",
                    "kind": "docker",
                    "version": "26.1.4",
                    "api_version": "1.45",
                },
                "chaincodes": {"running": running, "total": len(self.chaincodes)},
                "queue": {"waiting": 0, "engine_busy": 1, "builds": 0},
                "version": "0.1.0",
            }
        )

    async def list(self, request: web.Request) -> web.Response:
        """GET /v1/chaincodes."""
        state = request.query.get("state")
        found = [
            cc
            for ccid, cc in sorted(self.chaincodes.items())
            if state is None or cc["state"] == state
        ]
        return web.json_response({"chaincodes": found})

    async def get(self, request: web.Request) -> web.Response:
        """GET /v1/chaincodes/{ccid}."""
        await asyncio.sleep(self.delay)
        return self._known(request) or web.json_response(self._one(request))

    async def stop(self, request: web.Request) -> web.Response:
        """DELETE /v1/chaincodes/{ccid}."""
        unknown = self._known(request)
        if unknown:
            return unknown
        cc = self._one(request)
        cc["state"] = "stopped"
        return web.json_response({"chaincode": cc})

    async def wait(self, request: web.Request) -> web.Response:
        """POST /v1/chaincodes/{ccid}/wait."""
        unknown = self._known(request)
        if unknown:
            return unknown
        await asyncio.sleep(self.delay)
        cc = self._one(request)
        return web.json_response({"ccid": cc["ccid"], "exit_code": cc["exit_code"] or 0})

    async def logs(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/chaincodes/{ccid}/logs."""
        unknown = self._known(request)
        if unknown:
            return unknown
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await response.prepare(request)
        for line in self.log_lines:
            await response.write(line.encode() + b"\n")
            if request.query.get("follow") == "true":
                await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async def launch(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/chaincodes."""
        body = self.bodies[-1]
        for name in ("ccid", "type", "peer_address"):
            if name not in body:
                return error(400, "invalid_request", f"{name} is required", field=name)
        unknown = sorted(body.keys() - LAUNCH_FIELDS)
        if unknown:
            return error(400, "invalid_request", f"unknown field {unknown[0]}", field=unknown[0])
        if body["type"].lower() not in {"golang", "car", "java", "node"}:
            return error(
                400, "unknown_chaincode_type", f"unknown type {body['type']}", field="type"
            )
        cc = self.chaincodes.setdefault(body["ccid"], chaincode(body["ccid"]))
        built = "package" in body
        result = {
            "chaincode": cc,
            "built": built,
            "timings": {"queue": 0.01, "create": 0.05, "start": 0.2, "total": 0.3},
        }
        return await self._work(request, result, 201, build=built)

    async def build(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/images."""
        body = self.bodies[-1]
        if "ccid" not in body or "package" not in body:
            return error(400, "invalid_request", "ccid and package are required", field="ccid")
        image = "dev-peer0-" + body["ccid"].replace(":", "-")
        return await self._work(
            request, {"image": image, "built": True, "duration": 1.25}, 200, build=True
        )

    async def gc(self, request: web.Request) -> web.Response:
        """POST /v1/gc."""
        dry_run = request.query.get("dry_run") == "true"
        caches = ["ccdaemon-default-gocache-0123456789ab"]
        asked = request.query.get("caches") == "true"
        return web.json_response(
            {
                "dry_run": dry_run,
                "containers": ["dev-peer0-old-1"],
                "images": ["dev-old-img"],
                "caches": caches if asked else [],
                "caches_kept": [] if asked else caches,
            }
        )

    async def metrics(self, _: web.Request) -> web.Response:
        """GET /metrics."""
        return web.Response(text="ccdaemon_launches_total 0\n")

    async def _work(
        self, request: web.Request, result: dict[str, Any], status: int, *, build: bool
    ) -> web.StreamResponse:
        """Answer a launch or build: plain JSON, or the ndjson stream when asked for."""
        failure = {
            "error": {
                "code": "build_failed",
                "message": "the image build failed: exit 2",
                "log_tail": self.build_log[-1:],
            }
        }
        if NDJSON not in request.headers.get("Accept", ""):
            if build and self.build_fails:
                return web.json_response(failure, status=422)
            return web.json_response(result, status=status)
        response = web.StreamResponse(headers={"Content-Type": NDJSON})
        await response.prepare(request)
        for line in self.build_log if build else []:
            await response.write(orjson.dumps({"progress": line}) + b"\n")
        if not self.truncate:
            last = failure if build and self.build_fails else {"result": result}
            await response.write(orjson.dumps(last) + b"\n")
        await response.write_eof()
        return response

    def _known(self, request: web.Request) -> web.Response | None:
        ccid = request.match_info["ccid"]
        if ccid in self.chaincodes:
            return None
        return error(404, "unknown_chaincode", f"no managed chaincode {ccid}", ccid=ccid)

    def _one(self, request: web.Request) -> dict[str, Any]:
        return self.chaincodes[request.match_info["ccid"]]


@asynccontextmanager
async def serving(standin: StandIn, path: Path) -> AsyncIterator[None]:
    """Serve the stand-in on a Unix socket at ``path``."""
    runner = web.AppRunner(standin.app())
    await runner.setup()
    await web.UnixSite(runner, str(path)).start()
    try:
        yield
    finally:
        await runner.cleanup()


@pytest.fixture
def standin() -> StandIn:
    return StandIn()


@contextmanager
def served(
    standin: StandIn, path: Path | None = None, *, tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """Serve the stand-in from a thread of its own, on ``path`` or on TCP with ``tls``.

    Yields its address. The client blocks, so the server needs a loop of its own.
    """
    address: list[str] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        if path is not None:
            async with serving(standin, path):
                address.append(str(path))
                ready.set()
                await stop.wait()
            return
        runner = web.AppRunner(standin.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
        address.append(f"https://127.0.0.1:{runner.addresses[0][1]}")
        ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),))
    thread.start()
    try:
        assert ready.wait(10)
        yield address[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.fixture
def client(standin: StandIn, tmp_path: Path) -> Iterator[Client]:
    with served(standin, tmp_path / "ccdaemon.sock") as path, Client(path) as client:
        yield client


def test_ccids_are_one_percent_encoded_path_segment(client: Client, standin: StandIn) -> None:
    assert client.get("org/cc:1.0")["ccid"] == "org/cc:1.0"
    client.stop("mycc:abc123")
    assert [path for _, path, _ in standin.seen] == [
        "/v1/chaincodes/org%2Fcc%3A1.0",
        "/v1/chaincodes/mycc%3Aabc123?timeout=10&dontremove=false",
    ]


def test_list_and_state_filter(client: Client, standin: StandIn) -> None:
    everything = client.list()
    assert [cc["ccid"] for cc in everything] == ["mycc:abc123", "org/cc:1.0", "other:def456"]
    exited = client.list(state="exited")
    assert [cc["ccid"] for cc in exited] == ["other:def456"]
    assert standin.seen[-1][1] == "/v1/chaincodes?state=exited"


def test_health(client: Client, standin: StandIn) -> None:
    health = client.health()
    assert health["engine"]["kind"] == "docker"
    standin.engine_up = False
    with pytest.raises(APIError) as raised:
        client.health()
    assert (raised.value.status, raised.value.code) == (503, "engine_unavailable")
    assert str(raised.value).startswith("engine_unavailable: engine at unix://")


def test_launch_plain_json(client: Client, standin: StandIn) -> None:
    body = {"ccid": "new:1", "type": "GOLANG", "peer_address": "peer0:7052"}
    result = client.launch(body)
    assert result["chaincode"]["ccid"] == "new:1"
    assert result["built"] is False
    assert standin.bodies == [body]
    assert standin.seen[-1][2] == "application/json"


def test_launch_streams_progress_then_result(client: Client, standin: StandIn) -> None:
    lines: list[str] = []
    body = {"ccid": "new:1", "type": "golang", "peer_address": "p:7052", "package": "AAAA"}
    result = client.launch(body, progress=lines.append)
    assert lines == standin.build_log
    assert result["built"] is True
    assert result["timings"]["total"] == 0.3
    assert standin.seen[-1][2] == NDJSON


def test_launch_without_build_streams_only_the_result(client: Client) -> None:
    lines: list[str] = []
    body = {"ccid": "mycc:abc123", "type": "golang", "peer_address": "p:7052"}
    result = client.launch(body, progress=lines.append)
    assert lines == []
    assert result["chaincode"]["state"] == "running"


def test_streamed_build_failure_is_an_api_error(client: Client, standin: StandIn) -> None:
    standin.build_fails = True
    lines: list[str] = []
    with pytest.raises(APIError) as raised:
        client.build({"ccid": "mycc:abc123", "package": "AAAA"}, progress=lines.append)
    exc = raised.value
    assert lines == standin.build_log
    # The stream's HTTP status was 200; the error carries the status of its code.
    assert (exc.status, exc.code) == (422, "build_failed")
    assert exc.message == "the image build failed: exit 2"
    assert exc.log_tail == ["Step 2/2 : RUN build"]
    assert exc.field is None


def test_plain_build_failure_is_an_api_error(client: Client, standin: StandIn) -> None:
    standin.build_fails = True
    with pytest.raises(APIError) as raised:
        client.build({"ccid": "mycc:abc123", "package": "AAAA"})
    assert (raised.value.status, raised.value.code) == (422, "build_failed")
    assert raised.value.log_tail == ["Step 2/2 : RUN build"]


def test_build_result(client: Client) -> None:
    lines: list[str] = []
    result = client.build({"ccid": "mycc:abc123", "package": "AAAA"}, progress=lines.append)
    assert result == {"image": "dev-peer0-mycc-abc123", "built": True, "duration": 1.25}
    assert len(lines) == 2


def test_stream_without_result_is_a_failed_request(client: Client, standin: StandIn) -> None:
    standin.truncate = True
    with pytest.raises(RequestFailed, match="ended the stream before the result"):
        client.build({"ccid": "mycc:abc123", "package": "AAAA"}, progress=print)


def test_api_error_carries_the_extra_fields(client: Client) -> None:
    with pytest.raises(APIError) as raised:
        client.launch({"ccid": "x:1", "type": "cobol", "peer_address": "p:7052"})
    assert (raised.value.status, raised.value.code) == (400, "unknown_chaincode_type")
    assert raised.value.field == "type"
    with pytest.raises(APIError) as raised:
        client.get("gone:1")
    assert (raised.value.status, raised.value.code) == (404, "unknown_chaincode")
    assert raised.value.extra == {"ccid": "gone:1"}


def test_an_error_off_the_contract_still_is_an_api_error(client: Client, standin: StandIn) -> None:
    standin.health_garbage = True
    with pytest.raises(APIError) as raised:
        client.health()
    assert (raised.value.status, raised.value.code) == (500, "http_500")
    assert raised.value.message == "Internal Server Error"


def test_stop_sends_its_options(client: Client, standin: StandIn) -> None:
    stopped = client.stop("mycc:abc123", timeout=3, dontremove=True)
    assert stopped["state"] == "stopped"
    assert standin.seen[-1][:2] == (
        "DELETE",
        "/v1/chaincodes/mycc%3Aabc123?timeout=3&dontremove=true",
    )


def test_wait_has_no_deadline_but_control_calls_do(standin: StandIn, tmp_path: Path) -> None:
    standin.delay = 0.3
    path = tmp_path / "d.sock"
    with served(standin, path), Client(path, timeout=0.1) as client:
        assert client.wait("other:def456") == 2
        with pytest.raises(RequestFailed, match=r"no answer within 0\.1 s"):
            client.get("mycc:abc123")


def test_logs_streams_lines_of_any_length(client: Client, standin: StandIn) -> None:
    lines = list(client.logs("mycc:abc123", follow=True, tail=50))
    assert lines == standin.log_lines
    assert standin.seen[-1][1] == (
        "/v1/chaincodes/mycc%3Aabc123/logs?follow=true&tail=50&timestamps=false"
    )


def test_logs_of_an_unknown_chaincode(client: Client) -> None:
    with pytest.raises(APIError, match="unknown_chaincode"):
        _ = list(client.logs("gone:1"))


def test_gc(client: Client, standin: StandIn) -> None:
    result = client.gc(dry_run=True)
    assert result == {
        "dry_run": True,
        "containers": ["dev-peer0-old-1"],
        "images": ["dev-old-img"],
        "caches": [],
        "caches_kept": ["ccdaemon-default-gocache-0123456789ab"],
    }
    assert standin.seen[-1][1] == "/v1/gc?dry_run=true"
    result = client.gc(caches=True)
    assert result["caches"] == ["ccdaemon-default-gocache-0123456789ab"]
    assert standin.seen[-1][1] == "/v1/gc?dry_run=false&caches=true"


def test_missing_socket(tmp_path: Path) -> None:
    path = tmp_path / "absent.sock"
    with Client(path) as client, pytest.raises(DaemonUnreachable) as raised:
        client.health()
    assert raised.value.message == (
        f"no daemon socket at {path} — is ccdaemon running? (CCDAEMON_SOCKET / --socket)"
    )
    assert raised.value.code == "daemon_unreachable"


def test_stale_socket(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # bound, never listening, then closed: connecting is refused
    stale = pytest.raises(DaemonUnreachable, match=f"nothing listens on {path}: a stale socket")
    with Client(f"unix://{path}") as client, stale:
        client.list()


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
def test_socket_without_permission(standin: StandIn, tmp_path: Path) -> None:
    path = tmp_path / "locked.sock"
    with served(standin, path), Client(path) as client:
        path.chmod(0)
        with pytest.raises(DaemonUnreachable, match=f"permission denied on {path}: .* group"):
            client.health()


def test_permission_denied_names_the_group(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The same path as the test above, as root too: the connect fails with EACCES."""
    path = tmp_path / "locked.sock"
    path.touch()
    group = grp.getgrgid(path.stat().st_gid).gr_name

    def denied(*_: Any, **__: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(socket.socket, "connect", denied)
    with Client(path) as client, pytest.raises(DaemonUnreachable) as raised:
        client.health()
    assert raised.value.message == (
        f"permission denied on {path}: run as a member of the socket's group ({group}) "
        "or as its owner"
    )
    assert raised.value.errno == errno.EACCES


def test_bad_address() -> None:
    with pytest.raises(ClientError) as raised:
        Client("http://localhost:8080")
    assert raised.value.code == "bad_address"


def test_default_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_SOCKET", "/srv/elsewhere.sock")
    assert default_socket() == "/srv/elsewhere.sock"
    monkeypatch.delenv("CCDAEMON_SOCKET")
    assert default_socket() == "/run/ccdaemon/ccdaemon.sock"


def _issue(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ip: str | None = None,
) -> x509.Certificate:
    """A certificate for ``key``: a self-signed CA when ``issuer`` is None."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, signer = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if ip is not None:
        address = x509.IPAddress(ipaddress.ip_address(ip))
        builder = builder.add_extension(x509.SubjectAlternativeName([address]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_https_with_a_client_certificate(standin: StandIn, tmp_path: Path) -> None:
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _issue("test CA", ca_key, None)
    _write(tmp_path / "ca", ca, ca_key)
    _write(
        tmp_path / "server",
        _issue("daemon", server_key, (ca.subject, ca_key), ip="127.0.0.1"),
        server_key,
    )
    _write(tmp_path / "client", _issue("operator", client_key, (ca.subject, ca_key)), client_key)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tmp_path / "ca.crt")
    server_tls.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    server_tls.verify_mode = ssl.CERT_REQUIRED
    with served(standin, tls=server_tls) as url:
        files = (tmp_path / "ca.crt", tmp_path / "client.crt", tmp_path / "client.key")
        with Client(f"{url}/", tls=files) as client:
            assert client.get("mycc:abc123")["state"] == "running"
            # Kept alive: the second call goes over the same TLS connection.
            assert client.list()
        assert len(standin.connections) == 1
        # Without the CA the daemon's certificate is not trusted.
        untrusted = pytest.raises(DaemonUnreachable, match=url.removeprefix("https://"))
        with Client(url) as client, untrusted:
            client.health()


def test_unreadable_tls_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ClientError, match="cannot load the TLS files") as raised:
        Client("https://127.0.0.1:1", tls=(missing, missing, missing))
    assert raised.value.code == "bad_tls_files"


def test_openapi_lists_exactly_the_contract_routes() -> None:
    document = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    assert document["openapi"].startswith("3.1.")
    routes = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert routes == CONTRACT_ROUTES
    schemas = document["components"]["schemas"]
    assert {"Chaincode", "LaunchRequest", "LaunchResult", "Health", "Error"} <= schemas.keys()
    assert set(schemas["Chaincode"]["required"]) == set(chaincode("x:1"))


def test_the_stand_in_serves_the_contract_routes() -> None:
    routes = {
        (route.resource.canonical, route.method)
        for route in StandIn().app().router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert routes == CONTRACT_ROUTES
