"""Conformance of the swarm calls (services, secrets, tasks) on a single-node swarm.

The engines of the bed are not in a swarm: this module makes each engine it uses the
manager of a swarm of its own, once, and leaves that swarm (``--force``) when the module
ends, whatever happened, so the engine is left as it was found. An engine found already
in a swarm is used as it is and never left. Every service runs the bed's local busybox
image with the host's network, as a chaincode would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

from ccdaemon.engine import (
    Engine,
    NodeAlreadyInSwarm,
    NoSuchContainer,
    NoSuchSecret,
    NoSuchService,
    SecretAlreadyExists,
    ServiceAlreadyExists,
    containers,
    streams,
    swarm,
    system,
)
from ccdaemon.engine.swarm import SecretMount, TaskStatus
from tests.conftest import BASE_IMAGE, TEST_LABEL, Made
from tests.swarmbed import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

pytestmark = pytest.mark.engines("docker-28.5")

TLS_DIR = "/etc/hyperledger/fabric"
#: How long a task may take to reach a state, on an idle two-core machine (seconds).
SETTLE = 30.0


class SwarmMade:
    """Services and secrets a test makes; removed (services first) when the test ends."""

    def __init__(self, made: Made) -> None:
        self.prefix = made.prefix
        self.services: list[str] = []
        self.secrets: list[str] = []
        self.labels = {TEST_LABEL: "1", "ccdt.group": made.prefix}

    def service(self, suffix: str = "svc") -> str:
        """A fresh service name, removed at teardown."""
        name = f"{self.prefix}-{suffix}-{len(self.services)}"
        self.services.append(name)
        return name

    def secret(self, suffix: str = "sec") -> str:
        """A fresh secret name, removed at teardown."""
        name = f"{self.prefix}-{suffix}-{len(self.secrets)}"
        self.secrets.append(name)
        return name


@pytest.fixture
async def smade(engine: Engine, made: Made, node_id: str) -> AsyncIterator[SwarmMade]:
    """Track the services and secrets a test makes on the swarm, and remove them after."""
    assert node_id
    tracked = SwarmMade(made)
    try:
        yield tracked
    finally:
        for name in tracked.services:
            with contextlib.suppress(NoSuchService):
                await swarm.service_remove(engine, name)
        # A removed service no longer holds its secrets, even while its container stops.
        for name in tracked.secrets:
            with contextlib.suppress(NoSuchSecret):
                await swarm.secret_remove(engine, name)


def spec(smade: SwarmMade, name: str, script: str, **extra: Any) -> dict[str, Any]:
    """A one-replica, never-restarted service of the bed's image running a shell script."""
    return swarm.service_spec(
        name,
        BASE_IMAGE,
        args=["/bin/sh", "-c", script],
        labels=smade.labels,
        stop_grace=1.0,
        **extra,
    )


async def settled(
    engine: Engine, service: str, done: Callable[[TaskStatus], bool]
) -> list[TaskStatus]:
    """The service's tasks, once one satisfies ``done``; fails after SETTLE seconds."""
    deadline = time.monotonic() + SETTLE
    while True:
        tasks = [TaskStatus.of(t) for t in await swarm.task_list(engine, service=service)]
        if any(done(task) for task in tasks):
            return tasks
        assert time.monotonic() < deadline, f"tasks of {service} did not settle: {tasks}"
        await asyncio.sleep(0.2)


async def logged(engine: Engine, service: str, expected: int) -> list[streams.Line]:
    """The service's log lines, once there are at least ``expected``."""
    deadline = time.monotonic() + SETTLE
    while True:
        async with swarm.service_logs(engine, service) as frames:
            lines = [line async for line in streams.lines(frames)]
        if len(lines) >= expected:
            return lines
        assert time.monotonic() < deadline, f"{service} logged only {lines}"
        await asyncio.sleep(0.2)


@pytest.mark.engines("docker-28.5", "docker-20.10")
async def test_init_of_a_swarm_member_raises_node_already_in_swarm(
    engine: Engine, node_id: str
) -> None:
    """A second swarm init raises NodeAlreadyInSwarm (the engine's 503); inspect answers."""
    with pytest.raises(NodeAlreadyInSwarm) as caught:
        await swarm.swarm_init(engine, listen_addr=f"127.0.0.1:{free_port(socket.SOCK_STREAM)}")
    assert caught.value.status == 503
    assert "already part of a swarm" in caught.value.message
    assert (await swarm.swarm_inspect(engine))["ID"]
    assert (await system.info(engine))["Swarm"]["NodeID"] == node_id


async def test_secret_mounted_into_service_is_read_by_its_container(
    engine: Engine, smade: SwarmMade
) -> None:
    """A secret is mounted at Fabric's path, with its mode, in the task's container.

    The secrets are listed by label; service logs stream that container's output; removing
    the service, then the secrets, leaves nothing.
    """
    cert, key = b"-----BEGIN CERTIFICATE-----\nccdt\n", b"-----BEGIN PRIVATE KEY-----\nk\n"
    cert_name, key_name = smade.secret("crt"), smade.secret("key")
    cert_id = await swarm.secret_create(engine, cert_name, cert, labels=smade.labels)
    key_id = await swarm.secret_create(engine, key_name, key, labels=smade.labels)
    listed = await swarm.secret_list(engine, labels={"ccdt.group": smade.prefix})
    assert sorted(s["ID"] for s in listed) == sorted([cert_id, key_id])
    assert all("Data" not in s["Spec"] for s in listed)  # the engine never gives content back

    name = smade.service()
    script = (
        f"stat -c '%a %n' {TLS_DIR}/client.crt {TLS_DIR}/client.key; "
        f"base64 {TLS_DIR}/client.crt; echo to-stderr >&2; exec sleep 300"
    )
    mounts = [
        SecretMount(cert_id, cert_name, f"{TLS_DIR}/client.crt", 0o444),
        SecretMount(key_id, key_name, f"{TLS_DIR}/client.key", 0o400),
    ]
    service_id = await swarm.service_create(engine, spec(smade, name, script, secrets=mounts))
    assert (await swarm.service_inspect(engine, name))["ID"] == service_id
    listed_services = await swarm.service_list(engine, labels={"ccdt.group": smade.prefix})
    assert [s["ID"] for s in listed_services] == [service_id]

    tasks = await settled(engine, name, lambda task: task.state == "running")
    assert len(tasks) == 1
    container_id = tasks[0].container_id
    assert container_id is not None
    info = await containers.inspect(engine, container_id)
    assert info["Config"]["Labels"]["ccdt.group"] == smade.prefix  # ContainerSpec.Labels
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "no"

    lines = await logged(engine, name, 4)
    out = [line.text for line in lines if line.stream == streams.StdStream.STDOUT]
    err = [line.text for line in lines if line.stream == streams.StdStream.STDERR]
    assert out[:2] == [f"444 {TLS_DIR}/client.crt", f"400 {TLS_DIR}/client.key"]
    assert base64.b64decode("".join(out[2:])) == cert
    assert err == ["to-stderr"]

    # The archive endpoint reads the container's root filesystem, where a secret's path
    # is only the empty mount point: the daemon cannot check a secret's content this way.
    archived = await containers.get_archive(engine, container_id, f"{TLS_DIR}/client.crt")
    assert cert not in archived

    await swarm.service_remove(engine, name)
    await swarm.secret_remove(engine, cert_name)
    await swarm.secret_remove(engine, key_id)
    assert await swarm.secret_list(engine, labels={"ccdt.group": smade.prefix}) == []
    assert await swarm.service_list(engine, labels={"ccdt.group": smade.prefix}) == []
    deadline = time.monotonic() + SETTLE
    while await containers.list_(engine, labels={"ccdt.group": smade.prefix}):
        assert time.monotonic() < deadline, "the removed service's container stayed"
        await asyncio.sleep(0.2)
    with pytest.raises(NoSuchContainer):
        await containers.inspect(engine, container_id)


async def test_task_that_exits_3_fails_with_its_exit_code_and_is_not_restarted(
    engine: Engine, smade: SwarmMade
) -> None:
    """A command exiting 3 leaves one task, failed with exit code 3, never restarted."""
    name = smade.service("exit")
    await swarm.service_create(engine, spec(smade, name, "echo bye; exit 3"))
    await settled(engine, name, lambda task: task.finished)
    await asyncio.sleep(1.5)  # time enough for a restart, were the policy not "none"
    tasks = [TaskStatus.of(t) for t in await swarm.task_list(engine, service=name)]
    assert len(tasks) == 1, tasks
    (task,) = tasks
    assert task.state == "failed"
    assert task.exit_code == 3
    assert "(3)" in task.error
    assert task.desired_state == "shutdown"
    assert task.container_id is not None
    assert [line.text for line in await logged(engine, name, 1)] == ["bye"]
    running = await swarm.task_list(engine, service=name, desired_state="running")
    assert running == []


async def test_names_taken_and_missing_raise_typed_errors(engine: Engine, smade: SwarmMade) -> None:
    """Taken names raise the typed 409s; missing objects NoSuchService or NoSuchSecret (404)."""
    name = smade.service()
    await swarm.service_create(engine, spec(smade, name, "exec sleep 300"))
    with pytest.raises(ServiceAlreadyExists) as service_taken:
        await swarm.service_create(engine, spec(smade, name, "exec sleep 300"))
    assert service_taken.value.status == 409
    secret = smade.secret()
    await swarm.secret_create(engine, secret, b"x", labels=smade.labels)
    with pytest.raises(SecretAlreadyExists) as secret_taken:
        await swarm.secret_create(engine, secret, b"y")
    assert secret_taken.value.status == 409

    missing = f"{smade.prefix}-missing"
    for call in (
        swarm.service_inspect(engine, missing),
        swarm.service_remove(engine, missing),
        swarm.service_logs(engine, missing).__aenter__(),
    ):
        with pytest.raises(NoSuchService) as no_service:
            await call
        assert no_service.value.status == 404
    with pytest.raises(NoSuchSecret) as no_secret:
        await swarm.secret_remove(engine, missing)
    assert no_secret.value.status == 404


def test_service_spec_holds_one_never_restarted_replica() -> None:
    """The spec of one chaincode: labels twice, limits, constraints, host network, secrets."""
    built = swarm.service_spec(
        "cc",
        "img:1",
        args=["chaincode", "-peer.address=p:7052"],
        env=["A=1"],
        labels={"l": "v"},
        secrets=[SecretMount("id1", "s1", f"{TLS_DIR}/client.key", 0o400)],
        nano_cpus=500_000_000,
        memory_bytes=1 << 28,
        constraints=["node.labels.fabric==true"],
    )
    task = built["TaskTemplate"]
    assert built["Mode"] == {"Replicated": {"Replicas": 1}}
    assert built["Labels"] == task["ContainerSpec"]["Labels"] == {"l": "v"}
    assert task["RestartPolicy"] == {"Condition": "none"}
    assert task["Resources"] == {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 1 << 28}}
    assert task["Placement"] == {"Constraints": ["node.labels.fabric==true"]}
    assert task["Networks"] == [{"Target": "host"}]
    assert task["ContainerSpec"]["Secrets"][0]["File"] == {
        "Name": f"{TLS_DIR}/client.key",
        "UID": "0",
        "GID": "0",
        "Mode": 0o400,
    }
    assert "Networks" not in swarm.service_spec("cc", "img:1", network=None)["TaskTemplate"]
