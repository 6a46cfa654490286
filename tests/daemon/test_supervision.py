"""Supervision on a real engine: the engine restarting underneath, gc, metrics, policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccdaemon.engine import NoSuchVolume, containers, images, volumes
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL, MANAGED_LABEL, ROLE_LABEL
from ccdaemon.runtime.naming import names
from tests.conftest import BASE_IMAGE, Made, engines, shell, sleeper
from tests.daemon.conftest import chaincode_path as path
from tests.daemon.conftest import (
    launch_body,
    make_config,
    poll,
    remove_instance,
    running_daemon,
    stub_images,
)

if TYPE_CHECKING:
    from pathlib import Path

    import aiodocker

    from ccdaemon.engine import Engine
    from tests.daemon.conftest import RunningDaemon


async def state_of(daemon: RunningDaemon, ccid: str) -> dict[str, Any]:
    """The chaincode as the API shows it."""
    status, body = await daemon.call("GET", path(ccid))
    assert status == 200, body
    return body  # type: ignore[no-any-return]


@pytest.mark.engines("docker-26.1")
async def test_engine_restart_under_the_daemon(
    daemon: RunningDaemon, engine: Engine, engine_name: str
) -> None:
    """Health goes 503 while the engine is away and 200 after; the exit is reported; no restart.

    The engine's shutdown kills the chaincode; the daemon learns it from the events
    replay or the reconciliation after it reconnects, and launches work again at once.
    """
    ccid = "restart_1.0:" + "e" * 64
    await stub_images(engine, daemon, [ccid])
    assert (await daemon.call("POST", "/v1/chaincodes", launch_body(ccid)))[0] == 201
    try:
        await engines("down", engine_name)
        status, body = await daemon.call("GET", "/v1/health")
        assert status == 503
        assert body["error"]["code"] == "engine_unavailable"
        assert daemon.config.engine.endpoint in body["error"]["message"]
    finally:
        await engines("up", engine_name)

    async def healthy() -> bool:
        return (await daemon.call("GET", "/v1/health"))[0] == 200

    async def exited() -> bool:
        return bool((await state_of(daemon, ccid))["state"] == "exited")

    await poll(healthy)
    await poll(exited)
    assert isinstance((await state_of(daemon, ccid))["exit_code"], int)
    status, body = await daemon.call("POST", "/v1/chaincodes", launch_body(ccid))
    assert status == 201, body
    assert body["chaincode"]["state"] == "running"


async def test_gc_removes_only_exited_containers_and_unused_images_of_its_own(
    daemon: RunningDaemon, engine: Engine, docker: aiodocker.Docker
) -> None:
    """Dry run lists, gc removes: this daemon's exited container and unused image only.

    A running chaincode, its image, and a container without the daemon's labels stay.
    """
    done, alive = "gcdone_1.0:" + "1" * 64, "gcalive_1.0:" + "2" * 64
    await stub_images(engine, daemon, [done, alive])
    for ccid in (done, alive):
        assert (await daemon.call("POST", "/v1/chaincodes", launch_body(ccid)))[0] == 201
    done_container = daemon.names(done)[0]
    await containers.kill(engine, done_container, signal="SIGKILL")

    async def exited() -> bool:
        return bool((await state_of(daemon, done))["state"] == "exited")

    await poll(exited)
    # An image of the daemon's own for a chaincode it no longer runs: labelled as it labels.
    stale = f"localhost/{daemon.config.runtime.peer_id}-stale"
    labels = daemon.config.runtime.labels("gcstale_1.0:" + "3" * 64)
    await images.build(engine, _context(), stale, labels=labels)
    stranger = await docker.containers.create(
        {"Image": BASE_IMAGE, "Cmd": ["true"], "Labels": {"ccdaemon.managed": "true"}},
        name=f"{daemon.config.runtime.peer_id}-stranger",
    )
    try:
        status, dry = await daemon.call("POST", "/v1/gc?dry_run=1")
        assert status == 200
        assert dry == {
            "dry_run": True,
            "containers": [done_container],
            "images": [f"{stale}:latest"],
            "caches": [],
            "caches_kept": [],
        }
        assert (await containers.inspect(engine, done_container))["State"]["Status"] == "exited"
        status, wet = await daemon.call("POST", "/v1/gc")
        assert status == 200
        assert wet == {**dry, "dry_run": False}
        assert {c["Names"][0].lstrip("/") for c in await containers.list_(engine)} >= {
            daemon.names(alive)[0],
            f"{daemon.config.runtime.peer_id}-stranger",
        }
        assert done_container not in {
            c["Names"][0].lstrip("/") for c in await containers.list_(engine)
        }
        assert not [
            i for i in await images.list_(engine) if f"{stale}:latest" in (i["RepoTags"] or [])
        ]
        assert (await state_of(daemon, alive))["state"] == "running"
        assert (await daemon.call("GET", path(done)))[0] == 404  # collected: forgotten
    finally:
        await stranger.delete(force=True)


async def test_gc_removes_its_build_caches_only_when_asked(
    daemon: RunningDaemon, engine: Engine, made: Made
) -> None:
    """A gc and its dry run list the daemon's caches as kept; with caches=1 they go.

    Another instance's cache, labelled alike but for the instance, stays throughout.
    """
    instance = daemon.config.runtime.instance
    own = f"ccdaemon-{instance}-gocache-0123456789ab"
    made.volumes.append(own)
    other = made.volume("othercache")
    labels = {MANAGED_LABEL: "true", INSTANCE_LABEL: instance, ROLE_LABEL: "cache"}
    await volumes.create(engine, own, labels=labels)
    await volumes.create(engine, other, labels={**labels, INSTANCE_LABEL: "someone-else"})
    for query in ("?dry_run=1", "", "?dry_run=1&caches=1"):
        status, answer = await daemon.call("POST", "/v1/gc" + query)
        assert status == 200
        assert answer["caches_kept" if "caches" not in query else "caches"] == [own]
        await volumes.inspect(engine, own)
    status, answer = await daemon.call("POST", "/v1/gc?caches=1")
    assert (status, answer["caches"], answer["caches_kept"]) == (200, [own], [])
    with pytest.raises(NoSuchVolume):
        await volumes.inspect(engine, own)
    await volumes.inspect(engine, other)


def _context() -> bytes:
    from ccdaemon.engine import archive  # noqa: PLC0415

    return archive.tar({"Dockerfile": f"FROM {BASE_IMAGE}\nLABEL stale=1\n".encode()})


async def test_metrics_show_launches_phases_and_engine_calls(
    daemon: RunningDaemon, engine: Engine
) -> None:
    """After a launch, /metrics has Fabric's launch metric and ccdaemon's phase and call metrics."""
    ccid = "metrics_1.0:" + "4" * 64
    await stub_images(engine, daemon, [ccid])
    assert (await daemon.call("POST", "/v1/chaincodes", launch_body(ccid)))[0] == 201
    status, text = await daemon.call("GET", "/metrics")
    assert status == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert (
        samples[("chaincode_launch_duration_count", (("chaincode", ccid), ("success", "true")))]
        == 1
    )
    phases = {
        dict(labels)["phase"]
        for name, labels in samples
        if name == "ccdaemon_launch_phase_duration_seconds_count"
    }
    assert {"queue", "create", "upload", "start"} <= phases
    calls = {
        dict(labels)["call"]
        for name, labels in samples
        if name == "ccdaemon_engine_call_duration_seconds_count"
    }
    assert {"POST /containers/create", "POST /containers/{name}/start"} <= calls
    assert samples[("ccdaemon_chaincodes", (("state", "running"),))] == 1


async def test_policy_limits_reach_every_chaincode(daemon: RunningDaemon, engine: Engine) -> None:
    """Memory, pids limit and no-new-privileges come from the daemon's policy, not the request."""
    ccid = "policy_1.0:" + "5" * 64
    await stub_images(engine, daemon, [ccid])
    assert (await daemon.call("POST", "/v1/chaincodes", launch_body(ccid)))[0] == 201
    host = (await containers.inspect(engine, daemon.names(ccid)[0]))["HostConfig"]
    policy = daemon.config.policy
    assert host["Memory"] == policy.memory
    assert host["PidsLimit"] == policy.pids_limit
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert not host.get("Binds")
    assert host["NetworkMode"] == "none"


async def test_recovery_adopts_running_reports_exited_removes_unfinished(
    engine_socket: str, sockdir: Path, engine: Engine
) -> None:
    """What a dead daemon left: running is re-adopted, exited reported, unfinished removed.

    Four containers carry the instance's labels before the daemon starts: one running,
    one exited with code 3, one created but never started (a launch cut short), and a
    builder container (a build cut short).
    """
    config = make_config(engine_socket, sockdir)
    runtime = config.runtime
    made: dict[str, str] = {}
    for role, script in [("running", "sleep 600"), ("exited", "exit 3"), ("unfinished", "")]:
        ccid = f"{role}_1.0:" + "6" * 64
        name = names(ccid, network_id=runtime.network_id, peer_id=runtime.peer_id).container
        body = {**shell(script or "true"), "Labels": runtime.labels(ccid)}
        made[role] = await containers.create(engine, name, body)
        if script:
            await containers.start(engine, name)
    await containers.wait(engine, made["exited"])
    builder_labels = {**runtime.labels("built_1.0:" + "7" * 64), ROLE_LABEL: "builder"}
    made["builder"] = await containers.create(engine, None, {**sleeper(), "Labels": builder_labels})
    try:
        async with running_daemon(config) as daemon:
            _, listing = await daemon.call("GET", "/v1/chaincodes")
            seen = {cc["ccid"].split("_")[0]: cc for cc in listing["chaincodes"]}
            assert set(seen) == {"running", "exited"}
            assert (seen["running"]["state"], seen["running"]["adopted"]) == ("running", True)
            assert seen["running"]["container_id"] == made["running"]
            assert (seen["exited"]["state"], seen["exited"]["exit_code"]) == ("exited", 3)
            left = {c["Id"] for c in await containers.list_(engine, labels=runtime.owner_labels())}
            assert left == {made["running"], made["exited"]}
            status, _ = await daemon.call("GET", path(seen["running"]["ccid"]) + "/logs")
            assert status == 200
    finally:
        await remove_instance(engine, config.instance)
