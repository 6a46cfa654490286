"""The daemon with ``backend = "swarm"``: the same API, each chaincode a swarm service.

Every test drives a real daemon through its API, on an engine of the bed made the
manager of a single-node swarm (tests/swarmbed.py), and checks the outcome against the
engine's own view: services, tasks, secrets and containers.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest

from ccdaemon.daemon.sockets import StartError
from ccdaemon.engine import (
    Engine,
    NoSuchImage,
    NoSuchSecret,
    NoSuchService,
    containers,
    images,
    swarm,
)
from ccdaemon.engine.swarm import TaskStatus
from ccdaemon.runtime.certs import ChaincodeCA
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL
from ccdaemon.runtime.launchconfig import launch_config
from ccdaemon.runtime.swarmlauncher import SwarmConfig
from tests.conftest import chaincode_context, engines
from tests.daemon.conftest import (
    STUB_IMAGE,
    RunningDaemon,
    chaincode_path,
    cleaned_daemon,
    launch_body,
    make_config,
    poll,
    remove_instance,
    running_daemon,
    stub_images,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from ccdaemon.config import Config
    from tests.swarmbed import Swarms

pytestmark = pytest.mark.engines("docker-28.5", "docker-20.10")

#: The bed's registry (scripts/engines up registry).
REGISTRY = "127.0.0.1:5000"
#: The engine that joins a manager's swarm as a second node.
WORKER = "docker-26.1"

#: The stand-in chaincode, printing a digest of every TLS file it finds, then waiting.
FILES_IMAGE = "localhost/ccdaemon/test-chaincode:files"
FILES_SCRIPT = b"""#!/bin/sh
for f in /etc/hyperledger/fabric/*; do echo "file $f $(sha256sum < "$f" | cut -c1-64)"; done
echo "env CORE_CHAINCODE_ID_NAME=$CORE_CHAINCODE_ID_NAME"
sleep 3600
"""


def swarm_config(engine_socket: str, directory: Path) -> Config:
    """A test daemon's configuration with the swarm backend, quick to stop and to poll."""
    config = make_config(engine_socket, directory)
    return replace(
        config,
        engine=replace(config.engine, backend="swarm"),
        swarm=SwarmConfig(stop_grace=1.0, poll_interval=0.2),
    )


async def remove_swarm_instance(engine: Engine, instance: str) -> None:
    """Remove the services and secrets of a test daemon (services first: they hold secrets)."""
    labels = {INSTANCE_LABEL: instance}
    for service in await swarm.service_list(engine, labels=labels):
        with contextlib.suppress(NoSuchService):
            await swarm.service_remove(engine, str(service["ID"]))
    for secret in await swarm.secret_list(engine, labels=labels):
        with contextlib.suppress(NoSuchSecret):
            await swarm.secret_remove(engine, str(secret["ID"]))
    await remove_instance(engine, instance)


@pytest.fixture
async def swarm_daemon(
    engine_socket: str, sockdir: Path, engine: Engine, node_id: str
) -> AsyncIterator[RunningDaemon]:
    """A running daemon with the swarm backend; everything it made goes afterwards."""
    assert node_id
    config = swarm_config(engine_socket, sockdir)
    async with cleaned_daemon(config, engine, remove_swarm_instance) as handle:
        yield handle


async def owned(engine: Engine, daemon: RunningDaemon) -> tuple[list[str], list[str]]:
    """The names of the services and secrets the daemon's instance label marks."""
    labels = {INSTANCE_LABEL: daemon.config.instance}
    services = [str(s["Spec"]["Name"]) for s in await swarm.service_list(engine, labels=labels)]
    secrets = [str(s["Spec"]["Name"]) for s in await swarm.secret_list(engine, labels=labels)]
    return services, secrets


async def files_image(engine: Engine, daemon: RunningDaemon, ccid: str) -> None:
    """Give ``ccid`` an image whose chaincode reports its TLS files' digests."""
    await stub_images(engine, daemon, [])  # makes STUB_IMAGE if missing
    await images.build(engine, chaincode_context(FILES_SCRIPT, base=STUB_IMAGE), FILES_IMAGE)
    repository = daemon.names(ccid)[1]
    await images.tag(engine, FILES_IMAGE, repository)
    daemon.tagged.append(repository)


async def lines_of(daemon: RunningDaemon, ccid: str, count: int) -> list[str]:
    """The chaincode's log through the API, once it has ``count`` lines."""
    got: list[str] = []

    async def enough() -> bool:
        nonlocal got
        status, text = await daemon.call("GET", chaincode_path(ccid) + "/logs")
        assert status == 200, text
        got = text.splitlines()
        return len(got) >= count

    await poll(enough, every=0.2)
    return got


async def test_launch_logs_and_stop_through_the_api(
    swarm_daemon: RunningDaemon, engine: Engine
) -> None:
    """A launch makes a service whose container finds Fabric's TLS files; stop leaves nothing.

    The TLS files are the caller's, so the test knows each file's digest; the chaincode
    reports what it found, read back through the API's logs (the service's logs).
    """
    daemon = swarm_daemon
    ccid, plain = "swfiles:1", "swplain:1"
    await files_image(engine, daemon, ccid)
    await stub_images(engine, daemon, [plain])
    tls = ChaincodeCA.generate().issue()
    body = launch_body(
        ccid,
        tls={
            "client_cert": tls.cert_pem.decode(),
            "client_key": tls.key_pem.decode(),
            "root_cert": tls.root_pem.decode(),
        },
    )
    async with anyio.create_task_group() as group:
        answers: dict[str, tuple[int, Any]] = {}

        async def launch(name: str, request: dict[str, object]) -> None:
            answers[name] = await daemon.call("POST", "/v1/chaincodes", request)

        group.start_soon(launch, ccid, body)
        group.start_soon(launch, plain, launch_body(plain))
    for name, (status, answer) in answers.items():
        assert status == 201, (name, answer)
        assert answer["chaincode"]["state"] == "running"

    service = answers[ccid][1]["chaincode"]["container"]
    inspected = await swarm.service_inspect(engine, service)
    container_spec = inspected["Spec"]["TaskTemplate"]["ContainerSpec"]
    expected = launch_config(
        ccid=ccid, cc_type="golang", peer_address="peer0:7052", tls=tls, mspid="Org1MSP"
    )
    assert container_spec["Env"] == list(expected.env)
    assert container_spec["Args"] == list(expected.args)
    assert inspected["Spec"]["TaskTemplate"]["RestartPolicy"]["Condition"] == "none"
    mounts = {m["File"]["Name"]: m["File"]["Mode"] for m in container_spec["Secrets"]}
    assert mounts == {path: 0o400 if path.endswith(".key") else 0o444 for path in expected.files}
    # The container's own view of the files, via the service's logs through the API.
    lines = await lines_of(daemon, ccid, len(expected.files) + 1)
    reported = {
        parts[1]: parts[2] for line in lines if (parts := line.split()) and parts[0] == "file"
    }
    assert reported == {
        path: hashlib.sha256(content).hexdigest() for path, content in expected.files.items()
    }
    assert f"env CORE_CHAINCODE_ID_NAME={ccid}" in lines

    services, secrets = await owned(engine, daemon)
    assert len(services) == 2
    assert len(secrets) == 2 * len(expected.files)
    for name in (ccid, plain):
        status, answer = await daemon.call("DELETE", chaincode_path(name))
        assert status == 200, answer
        assert answer["chaincode"]["state"] == "stopped"
    assert await owned(engine, daemon) == ([], [])


async def test_a_task_killed_underneath_is_an_exit_with_its_code(
    swarm_daemon: RunningDaemon, engine: Engine
) -> None:
    """The task's container killed behind the daemon: the task watcher reports the exit.

    No one waits: the table learns it from the task's state alone (a wait would read it
    too, see the two-node test); then wait answers 137 at once.
    """
    daemon = swarm_daemon
    ccid = "swkill:1"
    await stub_images(engine, daemon, [ccid])
    tasks_before = (await daemon.call("GET", "/v1/health"))[1]["tasks"]
    status, answer = await daemon.call("POST", "/v1/chaincodes", launch_body(ccid))
    assert status == 201, answer
    service = answer["chaincode"]["container"]
    tasks = [TaskStatus.of(t) for t in await swarm.task_list(engine, service=service)]
    assert [t.state for t in tasks] == ["running"]
    assert tasks[0].container_id == answer["chaincode"]["container_id"]
    await containers.kill(engine, tasks[0].container_id or "")

    async def exited() -> bool:
        _, got = await daemon.call("GET", chaincode_path(ccid))
        return bool(got["state"] == "exited" and got["exit_code"] == 137)

    await poll(exited)
    with anyio.fail_after(5):
        waited = await daemon.call("POST", chaincode_path(ccid) + "/wait")
    assert waited == (200, {"ccid": ccid, "exit_code": 137})

    # The output relay ends with the task, though a followed service log never does.
    async def relay_ended() -> bool:
        return bool((await daemon.call("GET", "/v1/health"))[1]["tasks"] <= tasks_before)

    await poll(relay_ended)
    # The swarm did not restart it (restart policy none): still one task.
    assert len(await swarm.task_list(engine, service=service)) == 1
    status, _ = await daemon.call("DELETE", chaincode_path(ccid))
    assert status == 200
    assert await owned(engine, daemon) == ([], [])


async def test_a_missing_image_is_refused_and_nothing_is_left(
    swarm_daemon: RunningDaemon, engine: Engine
) -> None:
    """No image and no package to build it from: 404 no_such_image, no service, no secret."""
    status, answer = await swarm_daemon.call("POST", "/v1/chaincodes", launch_body("swmissing:1"))
    assert status == 404, answer
    assert answer["error"]["code"] == "no_such_image"
    assert await owned(engine, swarm_daemon) == ([], [])


async def test_a_restarted_daemon_readopts_its_services_and_drops_orphan_secrets(
    engine_socket: str, sockdir: Path, engine: Engine, node_id: str
) -> None:
    """Services outlive the daemon; the next one re-adopts them and removes stray secrets."""
    assert node_id
    config = swarm_config(engine_socket, sockdir)
    ccid = "swadopt:1"
    try:
        async with running_daemon(config) as first:
            await stub_images(engine, first, [ccid])
            status, answer = await first.call("POST", "/v1/chaincodes", launch_body(ccid))
            assert status == 201, answer
            container_id = answer["chaincode"]["container_id"]
        # What a launch cut short by a crash leaves: a secret no service uses.
        stray = f"ccdt-stray-{config.instance}"
        await swarm.secret_create(
            engine,
            stray,
            b"x",
            labels={INSTANCE_LABEL: config.instance, "ccdaemon.managed": "true"},
        )
        async with running_daemon(config) as second:
            second.tagged = first.tagged
            status, got = await second.call("GET", chaincode_path(ccid))
            assert status == 200
            assert (got["state"], got["adopted"], got["container_id"]) == (
                "running",
                True,
                container_id,
            )
            services, secrets = await owned(engine, second)
            assert len(services) == 1
            assert stray not in secrets
            status, _ = await second.call("DELETE", chaincode_path(ccid))
            assert status == 200
            assert await owned(engine, second) == ([], [])
    finally:
        await remove_swarm_instance(engine, config.instance)
        for image in first.tagged:
            with contextlib.suppress(NoSuchImage):
                await images.remove(engine, image)


@pytest.mark.engines("docker-26.1")
async def test_the_swarm_backend_on_an_engine_in_no_swarm_refuses_to_start(
    engine_socket: str, sockdir: Path
) -> None:
    """The swarm backend on a plain engine: the daemon stops at start, saying what to do."""
    config = swarm_config(engine_socket, sockdir)
    caught: list[str] = []
    try:
        async with running_daemon(config):
            pass
    except* StartError as group:
        caught.extend(str(error) for error in group.exceptions)
    assert len(caught) == 1
    assert "is no swarm manager" in caught[0]
    assert "docker swarm init" in caught[0]


async def test_with_a_registry_services_run_the_pushed_digest(
    engine_socket: str, sockdir: Path, engine: Engine, node_id: str
) -> None:
    """With swarm.registry, the image is pushed once and services name it by digest."""
    assert node_id
    await engines("up", "registry")
    config = swarm_config(engine_socket, sockdir)
    config = replace(config, swarm=replace(config.swarm, registry=REGISTRY))
    ccids = ["swpush:1", "swpush:2"]
    async with cleaned_daemon(config, engine, remove_swarm_instance) as daemon:
        await stub_images(engine, daemon, ccids)
        answers = [await daemon.call("POST", "/v1/chaincodes", launch_body(c)) for c in ccids]
        assert [status for status, _ in answers] == [201, 201], answers
        assert all("push" in answer["timings"] for _, answer in answers)
        # A relaunch runs the digest already pushed.
        status, again = await daemon.call("POST", "/v1/chaincodes", launch_body(ccids[0]))
        assert status == 201, again
        assert "push" not in again["timings"]
        answers[0] = (status, again)
        for ccid, (_, answer) in zip(ccids, answers, strict=True):
            image = daemon.names(ccid)[1]
            spec = await swarm.service_inspect(engine, answer["chaincode"]["container"])
            reference = spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
            repository, _, digest = reference.partition("@")
            assert repository == f"{REGISTRY}/{image}"
            assert digest == await registry_digest(image)
        # Only the digest names the pushed image: no registry tag stays behind.
        leftover = [
            tag
            for found in await images.list_(engine)
            for tag in found.get("RepoTags") or []
            if tag.startswith(f"{REGISTRY}/")
        ]
        assert leftover == []
        for ccid in ccids:
            status, _ = await daemon.call("DELETE", chaincode_path(ccid))
            assert status == 200
        assert await owned(engine, daemon) == ([], [])


async def registry_digest(repository: str) -> str:
    """The digest the bed's registry serves for ``repository:latest``."""
    url = f"http://{REGISTRY}/v2/{repository}/manifests/latest"
    headers = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    async with aiohttp.ClientSession() as session, session.head(url, headers=headers) as resp:
        assert resp.status == 200, url
        return resp.headers["Docker-Content-Digest"]


@pytest.mark.engines("docker-28.5")
async def test_a_chaincode_placed_on_another_node_runs_and_reports_from_there(
    engine_socket: str,
    sockdir: Path,
    engine: Engine,
    engine_name: str,
    swarms: Swarms,
    node_id: str,
) -> None:
    """On a worker node: the image comes from the registry, logs and exit via the manager.

    Two nodes, Docker 28.5 the manager and Docker 26.1 a worker; the chaincode is
    constrained to the worker, and stop leaves nothing on either node.
    """
    assert node_id
    await engines("up", "registry")
    started = await engines("up", WORKER)
    worker_socket = dict(line.split() for line in started.splitlines())[WORKER]
    worker_id = swarms.join_worker(engine_name, WORKER, worker_socket)
    config = swarm_config(engine_socket, sockdir)
    config = replace(
        config,
        swarm=replace(config.swarm, registry=REGISTRY, constraints=(f"node.id=={worker_id}",)),
    )
    ccid = "swplaced:1"
    async with Engine(f"unix://{worker_socket}") as worker:
        labels = {INSTANCE_LABEL: config.instance}
        try:
            async with cleaned_daemon(config, engine, remove_swarm_instance) as daemon:
                await stub_images(engine, daemon, [ccid])
                status, answer = await daemon.call("POST", "/v1/chaincodes", launch_body(ccid))
                assert status == 201, answer
                container_id = answer["chaincode"]["container_id"]
                # The container is the worker's; the manager has none of the daemon's.
                on_worker = await containers.list_(worker, labels=labels)
                assert [c["Id"] for c in on_worker] == [container_id]
                assert await containers.list_(engine, labels=labels) == []
                # stdout and stderr lines, in whatever order the nodes' logs merge them.
                lines = await lines_of(daemon, ccid, 2)
                assert sorted(line.split(":")[0] for line in lines) == [
                    "chaincode started",
                    "to stderr",
                ]

                async with anyio.create_task_group() as group:
                    waited: list[tuple[int, Any]] = []

                    async def wait() -> None:
                        waited.append(await daemon.call("POST", chaincode_path(ccid) + "/wait"))

                    group.start_soon(wait)
                    await anyio.sleep(0.5)
                    await containers.kill(worker, container_id)
                assert waited == [(200, {"ccid": ccid, "exit_code": 137})]
                status, _ = await daemon.call("DELETE", chaincode_path(ccid))
                assert status == 200
                assert await owned(engine, daemon) == ([], [])

                async def worker_clear() -> bool:
                    return await containers.list_(worker, labels=labels) == []

                await poll(worker_clear)
        finally:
            # What the worker pulled: the image, by digest only.
            await remove_instance(worker, config.instance)
            for found in await images.list_(worker):
                for reference in found.get("RepoDigests") or []:
                    runtime = config.runtime
                    if reference.startswith(f"{REGISTRY}/{runtime.network_id}-{runtime.peer_id}-"):
                        with contextlib.suppress(NoSuchImage):
                            await images.remove(worker, reference, force=True)
