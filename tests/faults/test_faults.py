"""Faults: the engine killed under the daemon, clients that leave, chaincodes that die at once.

Each test ends with nothing orphaned: every container of the daemon's instance is one it
reports running (and the engine runs) or exited (kept for its logs until gc), no builder
container or unexpected image of the instance is left, and the daemon, run with a
private TMPDIR, wrote no temporary file.

Faults tested elsewhere, not repeated here: the engine absent at daemon start
(tests/daemon/test_process.py::test_engine_absent_at_start_then_healthy_without_restart),
the engine stopped and started under a running daemon
(tests/daemon/test_supervision.py::test_engine_restart_under_the_daemon), and the daemon
SIGKILLed mid-launch then restarted
(tests/daemon/test_crash.py::test_sigkill_mid_launch_leaves_only_adopted_or_nothing).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import pytest

from ccdaemon.engine import containers, images
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL, ROLE_LABEL
from ccdaemon.supervise.registry import Registry, State
from tests.builder.conftest import go_package, package_id
from tests.conftest import ROOT, chaincode_context, engines
from tests.daemon.conftest import chaincode_path, launch_body, stub_images
from tests.faults.conftest import known, orphans, relaunch_builds

if TYPE_CHECKING:
    from ccdaemon.engine import Engine
    from tests.daemon.process import DaemonProcess, Spawner
    from tests.faults.conftest import Summary

#: A stand-in chaincode that says one line and exits 3 at once.
EXITING = b'#!/bin/sh\necho "chaincode up: $*"\necho "giving up" >&2\nexit 3\n'
EXITING_IMAGE = "localhost/ccdaemon/test-chaincode-exit3:1"
#: Errors a launch may answer when the engine dies under it (docs/api-contract.md).
ENGINE_GONE = {(503, "engine_unavailable"), (502, "engine_error")}


async def start(spawner: Spawner, **settings: Any) -> tuple[DaemonProcess, Path]:
    """A daemon process with a private, empty TMPDIR; wait until it is healthy."""
    tmp = spawner.directory / "tmp"
    tmp.mkdir(exist_ok=True)
    daemon = await spawner.start(spawner.write_config(**settings), env={"TMPDIR": str(tmp)})
    await daemon.wait_healthy()
    return daemon, tmp


async def settled(
    daemon: DaemonProcess, engine: Engine, instance: str, kept_images: set[str]
) -> list[str]:
    """Orphans of the instance once the daemon has caught up (polled up to 30 s); [] is good."""
    found: list[str] = []
    with anyio.move_on_after(30):
        # Polled: the reconciliation runs inside the daemon process, with no signal out.
        while found := await orphans(  # noqa: ASYNC110
            engine, instance, await known(daemon), kept_images=kept_images
        ):
            await anyio.sleep(0.25)
    return found


def kill_dockerd(engine_socket: str) -> int:
    """SIGKILL the dockerd that serves ``engine_socket`` (its pidfile is beside the socket).

    scripts/engines runs each dockerd with ``--pidfile <dir>/engine.pid``; the PID only
    counts if its command line names that directory (pidfiles outlive their process).
    """
    directory = Path(engine_socket).parent
    pid = int((directory / "engine.pid").read_text().split()[0])
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    assert b"dockerd" in command, command
    assert f"{directory}/".encode() in command, command
    os.kill(pid, signal.SIGKILL)
    return pid


async def engine_back(engine_name: str) -> None:
    """scripts/engines up: it sees the dead dockerd, sweeps its leftovers, starts it again."""
    await engines("up", engine_name)


async def wait_gone(pid: int) -> None:
    """Wait until process ``pid`` has gone (the kill is delivered, not yet acted upon)."""
    with anyio.fail_after(10):
        while await anyio.Path(f"/proc/{pid}").exists():  # noqa: ASYNC110 -- no event to wait on
            await anyio.sleep(0.02)


def answer_code(answer: tuple[int, Any]) -> tuple[int, str]:
    """A launch's status and error code ("" for a success)."""
    status, body = answer
    code = body["error"]["code"] if isinstance(body, dict) and "error" in body else ""
    return status, code


async def test_chaincode_exiting_at_once_is_reported_promptly(
    spawner: Spawner, engine: Engine, summary: Summary
) -> None:
    """A chaincode that exits 3 at once: no startup-timeout wait, and the exit is known.

    The launch answers 201 well under the startup timeout (60 s here): the daemon's launch
    ends at the engine's start, as Fabric's DockerVM.Start does. GET then shows state
    exited with exit code 3 (from the engine's die event), the logs give its output, and
    POST wait answers 3 at once. Eight such chaincodes at once, so a die event that
    overtakes the start's answer is exercised too.
    """
    daemon, tmp = await start(spawner)
    await images.build(engine, chaincode_context(EXITING), EXITING_IMAGE)
    ccids = [f"quitter{i}_1.0:{i:064x}" for i in range(8)]
    for ccid in ccids:
        image = daemon.names(ccid)[1]
        await images.tag(engine, EXITING_IMAGE, image)
        spawner.tagged.append(image)

    answers: dict[str, tuple[int, Any]] = {}
    seconds: dict[str, float] = {}

    async def launch(ccid: str) -> None:
        began = time.monotonic()
        answers[ccid] = await daemon.call("POST", "/v1/chaincodes", launch_body(ccid))
        seconds[ccid] = time.monotonic() - began

    async with anyio.create_task_group() as group:
        for ccid in ccids:
            group.start_soon(launch, ccid)
    assert {status for status, _ in answers.values()} == {201}, answers
    assert max(seconds.values()) < 10  # the startup timeout is 60 s

    async def exited(ccid: str) -> dict[str, Any]:
        with anyio.fail_after(10):
            while True:
                status, body = await daemon.call("GET", chaincode_path(ccid))
                assert status == 200
                if body["state"] != "running":
                    return dict(body)
                await anyio.sleep(0.05)

    for ccid in ccids:
        record = await exited(ccid)
        assert (record["state"], record["exit_code"]) == ("exited", 3), record
        assert record["finished_at"] is not None
        status, text = await daemon.call("GET", chaincode_path(ccid) + "/logs?tail=all")
        assert status == 200
        assert "chaincode up: -peer.address=peer0:7052" in text
        assert "giving up" in text
        began = time.monotonic()
        assert await daemon.call("POST", chaincode_path(ccid) + "/wait") == (
            200,
            {"ccid": ccid, "exit_code": 3},
        )
        assert time.monotonic() - began < 2
    assert await orphans(engine, spawner.instance, await known(daemon), kept_images=set()) == []
    assert not list(tmp.iterdir())
    summary.write(
        fault="chaincode exits 3 at once",
        requests=len(ccids),
        faults=len(ccids),
        launch_seconds_max=round(max(seconds.values()), 2),
        startup_timeout=60,
        exit_codes=sorted({3}),
        lost=0,
        orphaned=0,
    )


async def _raw_launch(
    socket: Path, ccid: str, *, ndjson: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send a launch on a connection of its own and return the connection, unanswered."""
    reader, writer = await asyncio.open_unix_connection(str(socket))
    body = orjson.dumps(launch_body(ccid))
    accept = "application/x-ndjson" if ndjson else "application/json"
    head = (
        f"POST /v1/chaincodes HTTP/1.1\r\nHost: ccdaemon\r\nAccept: {accept}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
async def test_client_disconnecting_mid_launch_leaves_it_running(
    spawner: Spawner, engine: Engine, summary: Summary, ndjson: bool
) -> None:
    """A client that hangs up mid-launch: the launch completes, GET shows it running.

    With engine_limit 1 and six launches ahead of it, the launch is still queued
    ("launching") when its client closes the connection; with ndjson the 200 head has
    been read first, so the streaming handler is the one cut off. The launch still runs
    to its end, the engine runs exactly that container, the next launch goes through,
    and the daemon logs no error.
    """
    daemon, tmp = await start(spawner, engine_limit=1)
    ahead = [f"ahead{i}_1.0:{i:064x}" for i in range(6)]
    ccid = "leaver_1.0:" + "f" * 64
    after = "after_1.0:" + "e" * 64
    await stub_images(engine, daemon.api, [*ahead, ccid, after])
    async with anyio.create_task_group() as group:
        for other in ahead:
            group.start_soon(daemon.call, "POST", "/v1/chaincodes", launch_body(other))
        await anyio.sleep(0.1)  # they are queued first
        reader, connection = await _raw_launch(daemon.socket, ccid, ndjson=ndjson)
        if ndjson:
            # The streaming answer's head is sent before the work begins.
            with anyio.fail_after(10):
                head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
        with anyio.fail_after(10):
            while (await daemon.call("GET", chaincode_path(ccid)))[0] == 404:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        _, record = await daemon.call("GET", chaincode_path(ccid))
        assert record["state"] == "launching", record
        connection.close()
        await connection.wait_closed()
    with anyio.fail_after(30):
        while (  # noqa: ASYNC110 -- the daemon's state, seen only through the API
            record := (await daemon.call("GET", chaincode_path(ccid)))[1]
        )["state"] == "launching":
            await anyio.sleep(0.05)
    assert record["state"] == "running", record
    inspected = await containers.inspect(engine, daemon.names(ccid)[0])
    assert inspected["Id"] == record["container_id"]
    assert inspected["State"]["Running"]
    assert (await daemon.call("POST", "/v1/chaincodes", launch_body(after)))[0] == 201
    kept = {f"{daemon.names(c)[1]}:latest" for c in [*ahead, ccid, after]}
    assert await orphans(engine, spawner.instance, await known(daemon), kept_images=kept) == []
    assert "Traceback" not in daemon.log()
    assert " ERROR " not in daemon.log()
    assert not list(tmp.iterdir())
    summary.write(
        fault=f"client disconnects mid-launch ({'ndjson' if ndjson else 'json'})",
        requests=len(ahead) + 2,
        faults=1,
        outcome=f"launch completed: {record['state']}",
        lost=0,
        orphaned=0,
    )


@pytest.mark.engines("docker-26.1")
async def test_engine_killed_mid_launches_leaves_nothing_orphaned(
    spawner: Spawner, engine: Engine, engine_name: str, summary: Summary
) -> None:
    """Dockerd SIGKILLed at a random moment while 30 launches go through engine_limit 2.

    The kill lands between creates, uploads and starts (engine_limit 2 keeps two launches
    mid-way and the rest queued). Launches in flight or queued answer 503
    engine_unavailable (or 502 engine_error), never hang. Once scripts/engines has
    started the engine again and the daemon has reconnected, the engine holds nothing of
    the instance that the daemon does not report: the chaincodes that were running are
    reported exited (the engine's restart killed them), and the containers of launches
    the kill cut short are gone. Every id then launches again (201), and gc leaves
    exactly the running chaincodes.
    """
    rng = random.Random(20260302)  # noqa: S311 -- a replayable moment, not a secret
    daemon, tmp = await start(spawner, engine_limit=2)
    ccids = [f"killed{i}_1.0:{i:064x}" for i in range(30)]
    await stub_images(engine, daemon.api, ccids)
    answers: dict[str, tuple[int, Any]] = {}

    async def launch(ccid: str) -> None:
        answers[ccid] = await daemon.call("POST", "/v1/chaincodes", launch_body(ccid))

    delay = rng.uniform(0.3, 2.0)
    try:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for ccid in ccids:
                    group.start_soon(launch, ccid)
                await anyio.sleep(delay)
                before = await containers.list_(engine, labels={INSTANCE_LABEL: spawner.instance})
                await wait_gone(kill_dockerd(spawner.engine_socket))
    finally:
        await engine_back(engine_name)
    outcomes = [answer_code(answer) for answer in answers.values()]
    assert set(outcomes) <= {(201, ""), *ENGINE_GONE}, outcomes
    failed = sum(1 for outcome in outcomes if outcome != (201, ""))
    assert failed, "the kill came after every launch had finished"

    await daemon.wait_healthy()
    kept = {f"{daemon.names(ccid)[1]}:latest" for ccid in ccids}
    left = await settled(daemon, engine, spawner.instance, kept)
    assert left == [], left
    records = await known(daemon)
    states = {record["state"] for record in records.values()}
    assert states <= {"exited", "failed"}, states

    relaunched: dict[str, tuple[int, str]] = {}

    async def relaunch(ccid: str) -> None:
        relaunched[ccid] = answer_code(
            await daemon.call("POST", "/v1/chaincodes", launch_body(ccid))
        )

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            for ccid in ccids:
                group.start_soon(relaunch, ccid)
    assert set(relaunched.values()) == {(201, "")}, relaunched
    status, _ = await daemon.call("POST", "/v1/gc")
    assert status == 200
    running = await containers.list_(engine, labels={INSTANCE_LABEL: spawner.instance})
    assert sorted(str(c["State"]) for c in running) == ["running"] * len(ccids)
    assert await orphans(engine, spawner.instance, await known(daemon), kept_images=kept) == []
    assert not list(tmp.iterdir())
    summary.write(
        fault="dockerd SIGKILL mid-create/upload/start (engine_limit 2)",
        engine=engine_name,
        requests=len(ccids) * 2,
        faults=1,
        kill_after_seconds=round(delay, 2),
        containers_at_kill={
            state: sum(1 for c in before if c["State"] == state)
            for state in sorted({str(c["State"]) for c in before})
        },
        launches_completed_before_kill=len(outcomes) - failed,
        launches_failed_by_kill=failed,
        failed_answers=sorted({f"{s} {c}" for s, c in outcomes if c}),
        relaunched_201=len(relaunched),
        lost=0,
        orphaned=len(left),
    )


@pytest.mark.engines("docker-26.1")
async def test_engine_killed_mid_build_leaves_nothing_orphaned(
    spawner: Spawner, engine: Engine, engine_name: str, summary: Summary
) -> None:
    """Dockerd SIGKILLed while a launch's Go build runs in its builder container.

    The launch answers 503 engine_unavailable (or 502 engine_error). Once the engine is
    back and the daemon has reconnected, no builder container and no image of the
    instance is left (the build never finished), the chaincode is reported failed; the
    same launch then builds and runs (201, built), and only its image and container stay.
    """
    await anyio.run_process([str(ROOT / "scripts" / "images"), "build", "--engine", engine_name])
    rng = random.Random(20260303)  # noqa: S311 -- a replayable moment, not a secret
    daemon, tmp = await start(spawner)
    package = go_package("killedbuild_1.0")
    ccid = package_id(package)
    body = launch_body(ccid) | {"package": base64.b64encode(package).decode()}
    answer: list[tuple[int, Any]] = []

    async def launch() -> None:
        answer.append(await daemon.call("POST", "/v1/chaincodes", body))

    async def builder_running() -> bool:
        labels = {INSTANCE_LABEL: spawner.instance, ROLE_LABEL: "builder"}
        found = await containers.list_(engine, labels=labels)
        return any(c["State"] == "running" for c in found)

    delay = rng.uniform(0.0, 1.0)
    try:
        with anyio.fail_after(300):
            async with anyio.create_task_group() as group:
                group.start_soon(launch)
                while not await builder_running():  # noqa: ASYNC110 -- engine state, no event
                    await anyio.sleep(0.05)
                await anyio.sleep(delay)  # somewhere inside the compile
                await wait_gone(kill_dockerd(spawner.engine_socket))
    finally:
        await engine_back(engine_name)
    assert answer_code(answer[0]) in ENGINE_GONE, answer

    await daemon.wait_healthy()
    left = await settled(daemon, engine, spawner.instance, set())
    assert left == [], left
    assert (await known(daemon))[ccid]["state"] == "failed"

    await relaunch_builds(daemon, engine, body, instance=spawner.instance, tmp=tmp, within=300)
    summary.write(
        fault="dockerd SIGKILL mid-build (Go compile in the builder container)",
        engine=engine_name,
        requests=2,
        faults=1,
        kill_after_seconds=round(delay, 2),
        failed_answer=" ".join(map(str, answer_code(answer[0]))),
        relaunch="201, image built",
        lost=0,
        orphaned=len(left),
    )


def test_an_exit_that_overtakes_the_launch_is_kept_for_it() -> None:
    """A die event read before the launch records its container running is not lost.

    A chaincode that exits at once can have its engine "die" event arrive before the
    start's answer; the record then goes straight from launching to exited with the
    code, instead of staying "running" for a container that is gone. A report for an
    older container of the name (a relaunch's replaced one) does not end the new one.
    """
    registry = Registry()
    cc = registry.launching("quick_1.0:" + "a" * 64, "dev-quick", "dev-quick-image")
    assert registry.exited("dev-quick", 9, container_id="old") is None
    assert registry.exited("dev-quick", 3, container_id="new") is None
    assert cc.state is State.LAUNCHING
    registry.running(cc, "new")
    assert (cc.state, cc.exit_code, cc.container_id) == (State.EXITED, 3, "new")
    assert cc.finished_at is not None
    again = registry.launching(cc.ccid, "dev-quick", "dev-quick-image")
    registry.running(again, "newer")
    assert (again.state, again.exit_code) == (State.RUNNING, None)
