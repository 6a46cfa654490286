"""``ccdaemon serve`` as a real process: readiness, signals, shutdown, restarts, refusals."""

from __future__ import annotations

import signal
import socket
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest

from ccdaemon.config import Config, EngineConfig
from ccdaemon.daemon import configview
from ccdaemon.runtime.swarmlauncher import SwarmConfig
from tests.daemon.conftest import chaincode_path, launch_body, stub_images
from tests.daemon.process import (
    DaemonProcess,
    Spawner,
    daemons,
    instance_containers,
    run_cli,
    until,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import aiodocker

    from ccdaemon.engine import Engine


@pytest.fixture
async def spawner(engine_socket: str, sockdir: Path, engine: Engine) -> AsyncIterator[Spawner]:
    """Daemon processes of one instance; killed and cleaned up after the test."""
    async with daemons(engine_socket, sockdir, engine) as spawned:
        yield spawned


def ccid(n: int) -> str:
    """A Fabric 2.x package id."""
    return f"proc{n}_1.0:{n:064x}"


async def launch(daemon: DaemonProcess, ccids: list[str]) -> None:
    """Launch each ccid through the API; every launch must answer 201."""
    for one in ccids:
        status, body = await daemon.call("POST", "/v1/chaincodes", launch_body(one))
        assert status == 201, body


async def test_ready_after_health_and_stopping_on_sigterm(spawner: Spawner) -> None:
    """READY=1 comes only once health says "ok"; SIGTERM: STOPPING=1, exit 0, socket gone."""
    notify = spawner.notify_socket()
    daemon = await spawner.start(notify=notify)
    healthy_seen = False
    with anyio.fail_after(30):
        while True:
            daemon.check_alive()
            ready_before = notify.has("READY=1")
            answer = await daemon.health()
            healthy = answer is not None and answer[0] == 200 and answer[1]["status"] == "ok"
            # READY=1 sent before this health call: the API must already be healthy.
            assert healthy or not ready_before, (answer, notify.seen)
            healthy_seen = healthy_seen or healthy
            if ready_before:
                break
            await anyio.sleep(0.02)
    assert healthy_seen
    ready = [m for m in notify.seen if "READY=1" in m.splitlines()]
    assert len(ready) == 1
    assert any(line.startswith("STATUS=") and "ready" in line for line in ready[0].splitlines())
    assert not notify.has("STOPPING=1")

    code, _ = await daemon.terminate()
    assert code == 0, daemon.log()
    assert notify.has("STOPPING=1")
    assert not daemon.socket.exists()


async def test_sigterm_leaves_chaincodes_running_and_the_next_daemon_adopts_them(
    spawner: Spawner, engine: Engine, docker: aiodocker.Docker
) -> None:
    """By default SIGTERM leaves the chaincode running; a new daemon re-adopts it with its logs."""
    config = spawner.write_config()
    first = await spawner.start_healthy(config)
    one = ccid(1)
    await stub_images(engine, first.api, [one])
    await launch(first, [one])
    code, _ = await first.terminate()
    assert code == 0, first.log()

    assert await instance_containers(docker, spawner.instance) == {one: "running"}
    container = await docker.containers.get(first.names(one)[0])
    assert container["State"]["Running"]

    second = await spawner.start_healthy(config)
    status, listing = await second.call("GET", "/v1/chaincodes")
    assert status == 200
    [adopted] = listing["chaincodes"]
    assert (adopted["ccid"], adopted["state"], adopted["adopted"]) == (one, "running", True)
    assert adopted["container_id"] == container.id
    status, logs = await second.call("GET", chaincode_path(one) + "/logs")
    assert status == 200
    assert "chaincode started" in logs
    assert "to stderr" in logs


async def test_stop_chaincodes_on_sigterm_removes_every_chaincode(
    spawner: Spawner, engine: Engine, docker: aiodocker.Docker
) -> None:
    """With shutdown.stop_chaincodes, SIGTERM stops and removes every chaincode before exit."""
    daemon = await spawner.start_healthy(spawner.write_config(stop_chaincodes=True))
    ccids = [ccid(1), ccid(2)]
    await stub_images(engine, daemon.api, ccids)
    await launch(daemon, ccids)
    assert await instance_containers(docker, spawner.instance) == dict.fromkeys(ccids, "running")

    code, _ = await daemon.terminate()
    assert code == 0, daemon.log()
    assert await instance_containers(docker, spawner.instance) == {}


async def sigterm_amid_launches(
    spawner: Spawner, engine: Engine, ccids: list[str], config: Path
) -> tuple[DaemonProcess, dict[str, tuple[int, Any] | str], float]:
    """Launch ``ccids`` at once, SIGTERM as soon as one answers; the answers and exit time."""
    daemon = await spawner.start_healthy(config)
    await stub_images(engine, daemon.api, ccids)
    answers: dict[str, tuple[int, Any] | str] = {}
    first_answer = anyio.Event()

    async def one(cc: str) -> None:
        try:
            answers[cc] = await daemon.call("POST", "/v1/chaincodes", launch_body(cc))
        except aiohttp.ClientError as exc:
            answers[cc] = type(exc).__name__
        first_answer.set()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for cc in ccids:
                group.start_soon(one, cc)
            await first_answer.wait()
            code, took = await daemon.terminate()
    assert code == 0, daemon.log()
    return daemon, answers, took


def acknowledged(answers: dict[str, tuple[int, Any] | str]) -> set[str]:
    """The ccids whose launch answered 201."""
    return {
        cc for cc, answer in answers.items() if not isinstance(answer, str) and answer[0] == 201
    }


async def test_sigterm_with_launches_queued_exits_in_time_and_keeps_whole_launches(
    spawner: Spawner, engine: Engine, docker: aiodocker.Docker
) -> None:
    """SIGTERM amid 16 queued launches exits in time; the next daemon adopts every whole one.

    engine_limit=1 keeps the launches queued. Every launch that answered 201 runs; the next
    daemon adopts exactly what runs, and nothing half made stays.
    """
    grace = 0.5
    config = spawner.write_config(engine_limit=1, grace=grace)
    ccids = [ccid(n) for n in range(16)]
    daemon, answers, took = await sigterm_amid_launches(spawner, engine, ccids, config)
    assert took < grace + 5, daemon.log()
    launched = acknowledged(answers)
    assert launched, (answers, daemon.log())
    assert len(launched) < len(ccids), "SIGTERM came too late to catch launches in the queue"
    left = await instance_containers(docker, spawner.instance)
    assert launched <= {cc for cc, state in left.items() if state == "running"}, (answers, left)

    # Removals the daemon asked for may still be under way at the engine (see the test
    # below): let the engine settle before the next daemon looks.
    with anyio.fail_after(15):
        while True:
            await anyio.sleep(0.5)
            settled = await instance_containers(docker, spawner.instance)
            if settled == left:
                break
            left = settled
    successor = await spawner.start_healthy(config)
    status, listing = await successor.call("GET", "/v1/chaincodes")
    assert status == 200
    adopted = {cc["ccid"]: (cc["state"], cc["adopted"]) for cc in listing["chaincodes"]}
    assert launched <= adopted.keys()
    assert set(adopted.values()) == {("running", True)}, adopted
    # Recovery removes what a cancelled launch left half made: only adopted chaincodes stay.
    assert await instance_containers(docker, spawner.instance) == dict.fromkeys(adopted, "running")


async def test_sigterm_leaves_no_half_made_container_at_exit(
    spawner: Spawner, engine: Engine, docker: aiodocker.Docker
) -> None:
    """Once the daemon has exited, no launch it cancelled has left a created-only container."""
    config = spawner.write_config(engine_limit=8, grace=0.05)
    ccids = [ccid(n) for n in range(16)]
    daemon, answers, _ = await sigterm_amid_launches(spawner, engine, ccids, config)
    left = await instance_containers(docker, spawner.instance)
    assert acknowledged(answers) < set(ccids), "SIGTERM came too late"
    assert set(left.values()) <= {"running"}, (left, daemon.log())


async def test_zero_grace_cancels_queued_launches_at_once(spawner: Spawner, engine: Engine) -> None:
    """With shutdown.grace = 0, SIGTERM does not wait for 16 queued launches to finish."""
    config = spawner.write_config(engine_limit=1, grace=0)
    ccids = [ccid(n) for n in range(16)]
    _, answers, _ = await sigterm_amid_launches(spawner, engine, ccids, config)
    assert len(acknowledged(answers)) < len(ccids)


async def test_sighup_reloads_the_log_level_and_names_restart_only_changes(
    spawner: Spawner, engine: Engine, docker: aiodocker.Docker
) -> None:
    """SIGHUP applies log.level at once and says a new engine_limit needs a restart.

    systemd hears RELOADING=1 then READY=1, and the API keeps answering.
    """
    notify = spawner.notify_socket()
    config = spawner.write_config()
    daemon = await spawner.start_healthy(config, notify=notify)
    one = ccid(1)
    await stub_images(engine, daemon.api, [one])
    await launch(daemon, [one])
    await daemon.wait_log("ready on")
    notify.drain()
    notify.seen.clear()

    spawner.write_config(level="DEBUG")
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("configuration reloaded: log level DEBUG")
    await until(lambda: notify.has("READY=1"))
    lines = [line for message in notify.seen for line in message.splitlines()]
    assert lines.index("RELOADING=1") < lines.index("READY=1")
    status, body = await daemon.call("GET", "/v1/health")
    assert (status, body["status"]) == (200, "ok")
    assert "take effect at the next restart" not in daemon.log()
    assert " DEBUG " not in daemon.log()
    # The chaincode's output ends when it is killed: logged at DEBUG, so only after the reload.
    container = await docker.containers.get(daemon.names(one)[0])
    await container.kill()
    await daemon.wait_log("has closed its output")
    assert " DEBUG " in daemon.log()

    spawner.write_config(level="DEBUG", engine_limit=3)
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("changes to engine take effect at the next restart")
    daemon.check_alive()
    code, _ = await daemon.terminate()
    assert code == 0, daemon.log()


async def test_check_config_prints_the_configuration_or_names_the_bad_key(
    spawner: Spawner,
) -> None:
    """``serve --check-config`` prints the effective settings (0), or names file and key (1)."""
    good = spawner.write_config()
    done = await run_cli("serve", "--config", str(good), "--check-config")
    assert done.returncode == 0, done.stderr
    assert f"configuration {good} is valid" in done.stdout
    assert str(spawner.socket) in done.stdout
    assert spawner.instance in done.stdout
    assert "backend       docker (a container per chaincode)" in done.stdout
    assert not spawner.socket.exists()  # nothing served

    bad = spawner.directory / "bad.toml"
    bad.write_text(good.read_text().replace("engine_limit = 8", "engine_limt = 8"))
    done = await run_cli("serve", "--config", str(bad), "--check-config")
    assert done.returncode == 1
    assert str(bad) in done.stderr
    assert "engine.engine_limt" in done.stderr
    assert done.stdout == ""


def test_check_config_describes_the_swarm_backend() -> None:
    """With backend = swarm, --check-config says where services go and whence images."""
    config = Config(
        engine=EngineConfig(backend="swarm"),
        swarm=SwarmConfig(constraints=("node.labels.fabric==true",), registry="reg:5000"),
    )
    assert (
        "  backend       swarm (a service per chaincode; network host, "
        "placed node.labels.fabric==true, images pushed to reg:5000)"
    ) in configview.describe(config).splitlines()


async def test_refuses_a_world_writable_socket_directory(spawner: Spawner) -> None:
    """A socket directory anyone may write to (0777, no sticky bit) stops the start, named."""
    open_dir = spawner.directory / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    daemon = await spawner.start(spawner.write_config(socket_path=open_dir / "ccd.sock"))
    assert await daemon.wait_exit() == 1
    assert f"socket directory {open_dir} is world-writable" in daemon.log()
    assert list(open_dir.iterdir()) == []


async def test_refuses_to_start_beside_a_daemon_already_listening(spawner: Spawner) -> None:
    """A second daemon on a socket in use exits 1 "another daemon is listening"."""
    config = spawner.write_config()
    first = await spawner.start_healthy(config)
    second = await spawner.start(config)
    assert await second.wait_exit() == 1
    assert f"another daemon is listening on {spawner.socket}" in second.log()
    first.check_alive()


async def test_a_refused_second_daemon_leaves_the_first_ones_socket(spawner: Spawner) -> None:
    """The daemon already listening keeps its socket and answers after a second one is refused."""
    config = spawner.write_config()
    first = await spawner.start_healthy(config)
    second = await spawner.start(config)
    assert await second.wait_exit() == 1
    assert first.socket.exists()
    answer = await first.health()
    assert answer is not None
    assert answer[0] == 200


async def test_replaces_a_stale_socket(spawner: Spawner) -> None:
    """A socket file nobody listens on (a killed daemon's) is replaced; the daemon starts."""
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(spawner.socket))
    stale.close()
    assert spawner.socket.is_socket()
    daemon = await spawner.start_healthy()
    status, _ = await daemon.call("GET", "/v1/chaincodes")
    assert status == 200


async def test_engine_absent_at_start_then_healthy_without_restart(
    spawner: Spawner, engine_socket: str
) -> None:
    """Without an engine the API answers 503; once it appears: healthy, then READY=1.

    Health and launch answer 503 engine_unavailable meanwhile, the chaincode routes 503
    starting; no restart is needed.
    """
    later = spawner.directory / "engine.sock"
    notify = spawner.notify_socket()
    daemon = await spawner.start(spawner.write_config(endpoint=f"unix://{later}"), notify=notify)
    with anyio.fail_after(30):
        while (answer := await daemon.health()) is None:
            daemon.check_alive()
            await anyio.sleep(0.05)
    status, body = answer
    assert (status, body["error"]["code"]) == (503, "engine_unavailable"), body
    status, body = await daemon.call("POST", "/v1/chaincodes", launch_body(ccid(1)))
    assert (status, body["error"]["code"]) == (503, "engine_unavailable"), body
    # Not a final 404: a chaincode of the last run may be re-adopted in a moment, and
    # the external builder's run asks again on 503.
    for method, route in [
        ("POST", chaincode_path(ccid(1)) + "/wait"),
        ("GET", chaincode_path(ccid(1))),
        ("GET", chaincode_path(ccid(1)) + "/logs"),
        ("DELETE", chaincode_path(ccid(1))),
        ("GET", "/v1/chaincodes"),
    ]:
        status, body = await daemon.call(method, route)
        assert (status, body["error"]["code"]) == (503, "starting"), (route, body)
    await daemon.wait_log("waiting for the engine")
    assert not notify.has("READY=1")
    assert any(
        line.startswith(f"STATUS=waiting for the engine at unix://{later}")
        for message in notify.seen
        for line in message.splitlines()
    ), notify.seen

    later.symlink_to(engine_socket)
    began = time.monotonic()
    await daemon.wait_healthy()
    await until(lambda: notify.has("READY=1"))
    assert time.monotonic() - began < 15
    code, _ = await daemon.terminate()
    assert code == 0, daemon.log()


async def test_sighup_while_waiting_for_the_engine_does_not_claim_readiness(
    spawner: Spawner,
) -> None:
    """A reload before the engine is reached must not tell systemd READY=1."""
    notify = spawner.notify_socket()
    absent = spawner.directory / "engine.sock"
    daemon = await spawner.start(spawner.write_config(endpoint=f"unix://{absent}"), notify=notify)
    await daemon.wait_log("waiting for the engine")
    daemon.signal(signal.SIGHUP)
    await daemon.wait_log("configuration reloaded")
    await anyio.sleep(0.2)
    assert not notify.has("READY=1"), notify.seen


async def test_a_restarted_daemon_logs_only_new_output_of_adopted_chaincodes(
    spawner: Spawner, engine: Engine, docker: aiodocker.Docker
) -> None:
    """Output relayed by the first daemon is not logged again by the next; new lines are, once."""
    config = spawner.write_config()
    first = await spawner.start_healthy(config)
    one = ccid(2)
    await stub_images(engine, first.api, [one])
    await launch(first, [one])
    container = first.names(one)[0]
    relayed = f"peer.chaincode.{container}"
    await first.wait_log("chaincode started")
    code, _ = await first.terminate()
    assert code == 0, first.log()

    second = await spawner.start_healthy(config)
    # Written by the chaincode's PID 1 while the second daemon follows it.
    run = await (await docker.containers.get(container)).exec(
        ["/bin/sh", "-c", "echo written after the restart > /proc/1/fd/1"]
    )
    async with run.start(detach=False) as stream:
        while await stream.read_out() is not None:
            pass
    await second.wait_log("written after the restart")
    lines = [line for line in second.log().splitlines() if relayed in line]
    assert [line for line in lines if "written after the restart" in line] != []
    assert len([line for line in lines if "written after the restart" in line]) == 1, lines
    assert not [line for line in lines if "chaincode started" in line or "to stderr" in line]
    # The old lines still refill what ``logs`` answers from memory.
    status, logs = await second.call("GET", chaincode_path(one) + "/logs")
    assert status == 200
    assert logs.index("chaincode started") < logs.index("written after the restart")
