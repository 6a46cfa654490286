"""The control API end to end on a real engine, each result checked with aiodocker."""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import struct
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import pytest

from ccdaemon.engine import NoSuchImage, containers, images, system
from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL, MANAGED_LABEL
from tests.builder.conftest import go_package, package_id
from tests.conftest import chaincode_context
from tests.daemon.conftest import chaincode_path as path
from tests.daemon.conftest import launch_body, make_config, poll, running_daemon, stub_images

if TYPE_CHECKING:
    from pathlib import Path

    import aiodocker

    from ccdaemon.engine import Engine
    from tests.daemon.conftest import RunningDaemon

HANG_GUARD = 300


async def test_health_reports_the_engine(daemon: RunningDaemon, engine: Engine) -> None:
    """GET /v1/health names the engine's kind, version and the negotiated API version."""
    status, body = await daemon.call("GET", "/v1/health")
    version = await engine.version()
    assert status == 200
    assert body["engine"]["kind"] == version.kind
    assert body["engine"]["version"] == version.version
    assert body["engine"]["api_version"] == str(version.negotiated)
    assert body["chaincodes"] == {"running": 0, "total": 0}


async def test_fifty_chaincodes_through_the_api_alone(
    daemon: RunningDaemon, engine: Engine, docker: aiodocker.Docker
) -> None:
    """50 concurrent launches run; list, log, wait and stop agree with the engine.

    Every container is read back with aiodocker (state, id, image, labels, env); one is
    killed underneath to show wait and the exit tracking; stopping all leaves nothing.
    """
    ccids = [f"api{i}_1.0:{i:064x}" for i in range(50)]
    await stub_images(engine, daemon, ccids)
    results: dict[str, tuple[int, Any]] = {}

    async def launch(ccid: str) -> None:
        results[ccid] = await daemon.call("POST", "/v1/chaincodes", launch_body(ccid))

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            for ccid in ccids:
                group.start_soon(launch, ccid)
    assert {status for status, _ in results.values()} == {201}, results
    for ccid, (_, body) in results.items():
        await check_running(daemon, docker, ccid, body)

    status, listing = await daemon.call("GET", "/v1/chaincodes")
    assert status == 200
    assert [cc["ccid"] for cc in listing["chaincodes"]] == sorted(ccids)
    assert {cc["state"] for cc in listing["chaincodes"]} == {"running"}

    # One chaincode's log: the stand-in prints its args and a stderr line at once.
    status, text = await daemon.call("GET", path(ccids[0]) + "/logs?tail=all")
    assert status == 200
    assert "chaincode started: -peer.address=peer0:7052" in text
    assert "to stderr" in text

    await check_wait_sees_a_kill(daemon, engine, ccids[1])

    # Stop all, concurrently: nothing of them is left in the engine.
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as group:
            for ccid in ccids:
                group.start_soon(daemon.call, "DELETE", path(ccid) + "?timeout=0")
    mine = orjson.dumps({"label": [f"{INSTANCE_LABEL}={daemon.config.instance}"]}).decode()
    assert await docker.containers.list(all=True, filters=mine) == []
    status, listing = await daemon.call("GET", "/v1/chaincodes")
    assert {cc["state"] for cc in listing["chaincodes"]} == {"stopped"}


async def check_running(
    daemon: RunningDaemon, docker: aiodocker.Docker, ccid: str, body: dict[str, Any]
) -> None:
    """The launch's answer and the engine agree: running, named, labelled, with Fabric's env."""
    chaincode = body["chaincode"]
    assert chaincode["state"] == "running"
    assert chaincode["container"] == daemon.names(ccid)[0]
    # A first launch: the daemon knows the name is free, so it sends no clearing remove.
    assert set(body["timings"]) == {"queue", "create", "attach", "upload", "start", "total"}
    info = await docker.containers.get(chaincode["container"])
    assert info["State"]["Running"]
    assert info["Id"] == chaincode["container_id"]
    assert info["Config"]["Image"] == daemon.names(ccid)[1]
    labels = info["Config"]["Labels"]
    assert labels[MANAGED_LABEL] == "true"
    assert labels[CCID_LABEL] == ccid
    assert labels[INSTANCE_LABEL] == daemon.config.instance
    assert f"CORE_CHAINCODE_ID_NAME={ccid}" in info["Config"]["Env"]


async def check_wait_sees_a_kill(daemon: RunningDaemon, engine: Engine, ccid: str) -> None:
    """A wait in progress answers 137 when the container is killed underneath.

    The table then says exited, with the code and the time.
    """
    waited: list[tuple[int, Any]] = []

    async def wait() -> None:
        waited.append(await daemon.call("POST", path(ccid) + "/wait"))

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.sleep(0.5)
        await containers.kill(engine, daemon.names(ccid)[0], signal="SIGKILL")
    assert waited == [(200, {"ccid": ccid, "exit_code": 137})]

    async def exited() -> bool:
        _, got = await daemon.call("GET", path(ccid))
        return bool(got["state"] == "exited")

    await poll(exited)
    _, got = await daemon.call("GET", path(ccid))
    assert got["exit_code"] == 137
    assert got["finished_at"] is not None


async def test_followed_log_streams_until_the_chaincode_ends(
    daemon: RunningDaemon, engine: Engine
) -> None:
    """?follow=1 streams lines as they come and ends when the container does."""
    ccid = "follow_1.0:" + "f" * 64
    await stub_images(engine, daemon, [ccid])
    status, _ = await daemon.call("POST", "/v1/chaincodes", launch_body(ccid))
    assert status == 201
    got: list[bytes] = []
    first = anyio.Event()
    async with daemon.session.get(f"http://ccdaemon{path(ccid)}/logs?follow=1") as resp:
        assert resp.status == 200
        async with anyio.create_task_group() as group:

            async def read() -> None:
                async for line in resp.content:
                    got.append(line)
                    first.set()

            group.start_soon(read)
            with anyio.fail_after(30):
                await first.wait()
            await containers.stop(engine, daemon.names(ccid)[0], grace=0)
    # The read ended by itself: the stream closed when the container stopped.
    assert b"to stderr\n" in got
    assert any(line.startswith(b"chaincode started:") for line in got)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_json", None),
        ({"ccid": 5, "type": "golang", "peer_address": "p:1"}, 400, "invalid_request", "ccid"),
        ({"ccid": "a:b", "type": "golang"}, 400, "invalid_request", "peer_address"),
        ({"ccid": "a:b", "type": "golang", "peer_address": "p:1"}, 400, "invalid_request", "mspid"),
        (
            {"ccid": "a:b", "type": "cobol", "peer_address": "p:1"},
            400,
            "unknown_chaincode_type",
            "type",
        ),
        (
            {"ccid": "../../etc:x", "type": "golang", "peer_address": "p:1"},
            400,
            "invalid_request",
            "ccid",
        ),
        (
            {"ccid": "a b:c", "type": "golang", "peer_address": "p:1"},
            400,
            "invalid_request",
            "ccid",
        ),
        (
            {"ccid": "a:b", "type": "golang", "peer_address": "p:1", "privileged": True},
            400,
            "invalid_request",
            "privileged",
        ),
        (
            {"ccid": "a:b", "type": "golang", "peer_address": "p:1", "package": "***"},
            400,
            "invalid_request",
            "package",
        ),
        (
            {"ccid": "a:b", "type": "golang", "peer_address": "p:1", "tls": {"client_cert": "x"}},
            400,
            "invalid_request",
            "tls.client_key",
        ),
        (
            {"ccid": "a:b", "type": "golang", "peer_address": "p:1", "tls": {"enabled": "yes"}},
            400,
            "invalid_request",
            "tls.enabled",
        ),
    ],
)
async def test_malformed_launches_are_refused_before_the_engine_sees_a_call(
    daemon: RunningDaemon,
    engine: Engine,
    body: bytes | dict[str, object],
    status: int,
    code: str,
    field: str | None,
) -> None:
    """Each bad request gets its 4xx naming the problem, and the engine sees no call."""
    since = f"{time.time() - 0.5:.3f}"
    got_status, got = await daemon.call("POST", "/v1/chaincodes", body)
    assert got_status == status, got
    assert got["error"]["code"] == code
    if field is not None:
        assert got["error"]["field"] == field
        assert field.split(".")[-1] in got["error"]["message"]
    assert await events_since(engine, since, daemon) == []


async def test_oversized_body_and_package_are_refused_with_413(
    engine_socket: str, sockdir: Path, engine: Engine
) -> None:
    """Over the package limit: the body is refused unread, or the package once decoded.

    The daemon here has a 1 MiB package limit, so its body limit is about 1.4 MiB.
    """
    limit = 1024 * 1024
    config = make_config(engine_socket, sockdir)
    config = replace(config, policy=replace(config.policy, max_package_size=limit))
    async with running_daemon(config) as daemon:
        since = f"{time.time() - 0.5:.3f}"
        status, got = await daemon.call(
            "POST",
            "/v1/chaincodes",
            b"x" * (2 * limit),
            headers={"Content-Type": "application/json"},
        )
        assert status == 413
        assert got["error"]["code"] == "body_too_large"
        assert got["error"]["limit"] == limit * 4 // 3 + 64 * 1024  # base64 and the JSON
        package = base64.b64encode(b"\0" * (limit + 10_000)).decode()
        status, got = await daemon.call(
            "POST", "/v1/chaincodes", launch_body("a:b", package=package)
        )
        assert status == 413
        assert got["error"]["code"] == "package_too_large"
        assert str(limit) in got["error"]["message"]
        assert got["error"]["limit"] == limit
        assert await events_since(engine, since, daemon) == []


async def test_unknown_chaincode_is_404_on_every_route(daemon: RunningDaemon) -> None:
    """GET, DELETE, wait and logs of an unknown ccid answer 404 unknown_chaincode."""
    target = path("nobody:" + "0" * 64)
    for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/wait"), ("GET", "/logs")]:
        status, got = await daemon.call(method, target + suffix)
        assert status == 404, (method, suffix)
        assert got["error"] == {
            "code": "unknown_chaincode",
            "message": "no managed chaincode 'nobody:" + "0" * 64 + "'",
            "ccid": "nobody:" + "0" * 64,
        }


async def events_since(engine: Engine, since: str, daemon: RunningDaemon) -> list[object]:
    """The engine's events since ``since`` that concern this daemon's peer (by name)."""
    until = f"{time.time() + 0.5:.3f}"
    found: list[object] = []
    async with system.events(engine, since=since, until=until) as events:
        async for event in events:
            attributes = (event.get("Actor") or {}).get("Attributes") or {}
            if daemon.config.runtime.peer_id in str(attributes.get("name", "")) + str(
                event.get("from", "")
            ):
                found.append(event)
    return found


async def test_a_build_without_a_package_only_asks_for_the_image(
    daemon: RunningDaemon, engine: Engine
) -> None:
    """POST /v1/images with no package: 404 naming ``package`` until the image is there.

    Then 200, ``built`` false: the external builder's cheap question before it sends a
    package. An image of the same name that this daemon did not build does not count.
    """
    ccid = "asked_1.0:" + "a" * 64
    image = daemon.names(ccid)[1]
    status, body = await daemon.call("POST", "/v1/images", {"ccid": ccid})
    assert status == 404, body
    assert (body["error"]["code"], body["error"]["field"]) == ("no_such_image", "package")
    assert ccid in body["error"]["message"]

    context = chaincode_context(b"#!/bin/sh\n")
    await images.build(engine, context, image)  # no labels: not this daemon's
    try:
        status, body = await daemon.call("POST", "/v1/images", {"ccid": ccid})
        assert status == 404, body
        owner = daemon.config.runtime.owner_labels()
        await images.build(engine, context, image, labels=owner)
        status, body = await daemon.call("POST", "/v1/images", {"ccid": ccid})
        assert status == 200, body
        assert (body["image"], body["built"]) == (image, False)
    finally:
        await images.remove(engine, image, force=True)


#: Clients that leave as soon as they have read the last line, one after another.
EARLY_LEAVERS = 30
#: Lines of output the chaincode writes: enough to fill the socket's buffers.
FLOOD = 20_000


def _read_then_leave(socket_path: str, request: bytes, last: bytes) -> bytes:
    """A slow reader with a small buffer that resets the connection once ``last`` came."""
    with socket.socket(socket.AF_UNIX) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(60)
        client.connect(socket_path)
        client.sendall(request)
        seen = b""
        while last not in seen:
            chunk = client.recv(4096)
            assert chunk, seen[-200:]
            seen += chunk
        # Reset, not a tidy close: as a process that exits with unread bytes.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return seen


async def test_clients_that_leave_on_their_last_line_cause_no_error(
    daemon: RunningDaemon,
    engine: Engine,
    docker: aiodocker.Docker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A streamed answer whose client goes as soon as it has what it wanted: no ERROR.

    The external builder reads its build's result and exits. The chunked body's end then
    meets a closing transport, which used to log "Cannot write to closing transport"
    with a traceback.
    """
    ccid = "leaver_1.0:" + "c" * 64
    await stub_images(engine, daemon, [ccid])
    status, body = await daemon.call("POST", "/v1/chaincodes", launch_body(ccid))
    assert status == 201, body
    script = f"seq {FLOOD} > /proc/1/fd/1; echo the-last-line > /proc/1/fd/1"
    run = await (await docker.containers.get(daemon.names(ccid)[0])).exec(["/bin/sh", "-c", script])
    async with run.start(detach=False) as stream:
        while await stream.read_out() is not None:
            pass

    async def logged() -> bool:  # the engine's log file may lag behind the exec
        status, text = await daemon.call("GET", path(ccid) + "/logs")
        return status == 200 and "the-last-line" in text

    await poll(logged)
    request = f"GET {path(ccid)}/logs HTTP/1.1\r\nHost: ccdaemon\r\n\r\n".encode()
    for _ in range(EARLY_LEAVERS):
        with anyio.fail_after(HANG_GUARD):
            await anyio.to_thread.run_sync(
                _read_then_leave, str(daemon.socket), request, b"the-last-line"
            )
    await anyio.sleep(0.2)
    status, _ = await daemon.call("GET", "/v1/health")
    assert status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


#: Where a build's client leaves: at its first progress line, or once it has the result.
LEAVE_AT = {"progress": b'{"progress"', "result": b'{"result"'}


@pytest.mark.parametrize("leave_at", sorted(LEAVE_AT))
async def test_a_build_whose_client_leaves_completes_without_error(
    daemon: RunningDaemon, engine: Engine, caplog: pytest.LogCaptureFixture, leave_at: str
) -> None:
    """A streamed build (POST /v1/images, ndjson) whose client resets: no ERROR, image built.

    The external builder reads the result line and exits; a killed one leaves sooner.
    Either way the chunked answer's next write or its end meets a closed transport
    (Fabric 3.1.5's first install logged "Cannot write to closing transport" here), and
    the build goes on to its end: the image is there, this daemon's.
    """
    caplog.set_level(logging.WARNING)
    package = go_package(f"leave{leave_at}_1.0")
    ccid = package_id(package)
    body = orjson.dumps({"ccid": ccid, "package": base64.b64encode(package).decode()})
    request = (
        b"POST /v1/images HTTP/1.1\r\nHost: ccdaemon\r\nAccept: application/x-ndjson\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    try:
        with anyio.fail_after(HANG_GUARD):
            await anyio.to_thread.run_sync(
                _read_then_leave, str(daemon.socket), request, LEAVE_AT[leave_at]
            )
            while True:  # the build goes on without its client
                status, answer = await daemon.call("POST", "/v1/images", {"ccid": ccid})
                if status == 200:
                    break
                assert status == 404, answer  # not built yet
                await anyio.sleep(0.5)
        assert answer["image"] == daemon.names(ccid)[1]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]
    finally:
        with contextlib.suppress(NoSuchImage):
            await images.remove(engine, daemon.names(ccid)[1], force=True)
