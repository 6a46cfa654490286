"""Swarm-mode calls: the swarm itself, secrets, services, their logs, and tasks.

One function per engine call, each mapping the statuses the Engine API documents for it,
as go-dockerclient does: a 503 means the engine is in no swarm (or is not a manager), so
``NodeNotInSwarm``, except on init, where it means the opposite (``NodeAlreadyInSwarm``);
a 404 on a service call is ``NoSuchService``, on a secret call ``NoSuchSecret``; a 409
on create is the name already taken (``ServiceAlreadyExists``, ``SecretAlreadyExists``).

Like the rest of this package it knows nothing of Fabric: ``service_spec`` takes the
paths where secrets are mounted from its caller. Podman has no swarm mode.

Quirks seen on Docker 20.10 and 28.5 (docs/swarm.md has the whole list):

- Service create never checks the image: a missing one makes the *task* ``rejected``
  with ``Err`` "No such image". Each task first tries to pull the image (and falls back
  to the local one when the pull fails) unless the engine runs with
  ``DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1`` in its environment.
- Removing a service returns at once; its container is stopped (``StopGracePeriod``)
  and removed afterwards, asynchronously.
- ``GET /containers/{id}/archive`` of a secret's path shows the empty mount point in the
  container's root filesystem, not the secret: only the container itself reads it.
"""

from __future__ import annotations

import base64
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ccdaemon.engine import containers, streams
from ccdaemon.engine.errors import (
    EngineError,
    NodeAlreadyInSwarm,
    NodeNotInSwarm,
    NoSuchSecret,
    NoSuchService,
    SecretAlreadyExists,
    ServiceAlreadyExists,
)
from ccdaemon.engine.transport import ErrorMap, segment

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ccdaemon.engine.transport import Engine

#: The swarm's default listen address, as ``docker swarm init`` uses it.
DEFAULT_LISTEN_ADDR = "0.0.0.0:2377"

#: Task states after which a task never runs again (the Engine API's TaskState).
TERMINAL_TASK_STATES = frozenset(
    {"complete", "shutdown", "failed", "rejected", "orphaned", "remove"}
)

_NANO = 1_000_000_000


def _leave_refused(status: int, message: str) -> EngineError:
    # 503 answers both "not part of a swarm" and the last manager leaving without force
    # ("Removing the last manager erases all current state"): only the first is that state.
    if "not part of a swarm" in message.lower():
        return NodeNotInSwarm(status, message)
    return EngineError(status, message)


_INIT_ERRORS: ErrorMap = {503: NodeAlreadyInSwarm}
_LEAVE_ERRORS: ErrorMap = {503: _leave_refused}
_SWARM_ERRORS: ErrorMap = {503: NodeNotInSwarm}
_SECRET_CREATE_ERRORS: ErrorMap = {409: SecretAlreadyExists, 503: NodeNotInSwarm}
_SECRET_ERRORS: ErrorMap = {404: NoSuchSecret, 503: NodeNotInSwarm}
_SERVICE_CREATE_ERRORS: ErrorMap = {409: ServiceAlreadyExists, 503: NodeNotInSwarm}
_SERVICE_ERRORS: ErrorMap = {404: NoSuchService, 503: NodeNotInSwarm}


def _filters(
    labels: Mapping[str, str | None] | None = None, **keys: Sequence[str] | None
) -> dict[str, str]:
    """The ``filters`` query parameter: labels (value None: the key only) and other keys."""
    wanted: dict[str, list[str]] = {k.replace("_", "-"): list(v) for k, v in keys.items() if v}
    if labels:
        wanted["label"] = [
            key if value is None else f"{key}={value}" for key, value in labels.items()
        ]
    return {"filters": orjson.dumps(wanted).decode()} if wanted else {}


# --- The swarm.


async def swarm_init(
    engine: Engine,
    *,
    advertise_addr: str = "127.0.0.1",
    listen_addr: str = DEFAULT_LISTEN_ADDR,
    data_path_port: int | None = None,
) -> str:
    """Make the engine the single manager of a new swarm and return its node id.

    Args:
        engine: the engine.
        advertise_addr: the address other nodes reach this manager at.
        listen_addr: where the manager listens for swarm traffic (``host:port``); two
            engines on one host need different ports.
        data_path_port: the UDP port of overlay (VXLAN) traffic (API 1.40+); None keeps
            the engine's default, 4789.

    Raises:
        NodeAlreadyInSwarm: the engine is already part of a swarm (503).
        InvalidParameter: the engine refused an address (400).
    """
    body: dict[str, Any] = {"ListenAddr": listen_addr, "AdvertiseAddr": advertise_addr}
    if data_path_port is not None:
        body["DataPathPort"] = data_path_port
    result = await engine.call("POST", "/swarm/init", json=body, errors=_INIT_ERRORS)
    return str(result)


async def swarm_leave(engine: Engine, *, force: bool = False) -> None:
    """Leave the swarm; ``force`` is needed for the last manager, and erases the swarm.

    The last manager leaving erases the swarm's state, services and secrets included (the
    engine's own warning when ``force`` is missing).

    Raises:
        NodeNotInSwarm: the engine is in no swarm (503).
        EngineError: the engine refused to leave without ``force`` (503, last manager).
    """
    await engine.call(
        "POST", "/swarm/leave", params={"force": "1" if force else "0"}, errors=_LEAVE_ERRORS
    )


async def swarm_inspect(engine: Engine) -> dict[str, Any]:
    """Return the swarm's inspect document (its id, spec, join tokens).

    Raises:
        NodeNotInSwarm: the engine is in no swarm, or is a worker (503).
    """
    result: dict[str, Any] = await engine.call("GET", "/swarm", errors=_SWARM_ERRORS)
    return result


# --- Secrets.


async def secret_create(
    engine: Engine, name: str, data: bytes, *, labels: Mapping[str, str] | None = None
) -> str:
    """Store ``data`` as a swarm secret and return its id.

    A secret cannot change once made (only its labels can): a new content is a new secret.
    Names are at most 64 characters of ``[a-zA-Z0-9-_.]``, starting and ending with a
    letter or digit; the content at most 500 KiB.

    Raises:
        SecretAlreadyExists: a secret of that name exists (409).
        InvalidParameter: the engine refused the name or the content (400).
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    body = {"Name": name, "Labels": dict(labels or {}), "Data": base64.b64encode(data).decode()}
    result = await engine.call(
        "POST", "/secrets/create", json=body, errors=_SECRET_CREATE_ERRORS, subject=name
    )
    return str(result["ID"])


async def secret_remove(engine: Engine, name: str) -> None:
    """Remove a secret, by id or name.

    The engine refuses while a service still names it; a service being removed no longer
    does, even while its container still runs.

    Raises:
        NoSuchSecret: no such secret (404).
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    await engine.call("DELETE", f"/secrets/{segment(name)}", errors=_SECRET_ERRORS, subject=name)


async def secret_list(
    engine: Engine,
    *,
    labels: Mapping[str, str | None] | None = None,
    names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """List secrets (never their content), optionally by label and by name.

    Raises:
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    result: list[dict[str, Any]] = await engine.call(
        "GET", "/secrets", params=_filters(labels, name=names), errors=_SWARM_ERRORS
    )
    return result


# --- Services.


@dataclass(frozen=True, slots=True)
class SecretMount:
    """One secret, mounted as a file in a service's container.

    Attributes:
        secret_id: the secret's id (``secret_create``'s result).
        secret_name: the secret's name; the engine wants both.
        target: the file's absolute path in the container.
        mode: the file's permission bits.
        uid: the file's owner, as a number.
        gid: the file's group, as a number.
    """

    secret_id: str
    secret_name: str
    target: str
    mode: int = 0o444
    uid: int = 0
    gid: int = 0

    def to_engine(self) -> dict[str, Any]:
        """The ``ContainerSpec.Secrets`` entry."""
        return {
            "SecretID": self.secret_id,
            "SecretName": self.secret_name,
            "File": {
                "Name": self.target,
                "UID": str(self.uid),
                "GID": str(self.gid),
                "Mode": self.mode,
            },
        }


def service_spec(  # noqa: PLR0913 -- one keyword per part of the spec a launch sets
    name: str,
    image: str,
    *,
    args: Sequence[str] = (),
    env: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    secrets: Sequence[SecretMount] = (),
    nano_cpus: int = 0,
    memory_bytes: int = 0,
    constraints: Sequence[str] = (),
    network: str | None = "host",
    stop_grace: float = 10.0,
    log_driver: str | None = None,
) -> dict[str, Any]:
    """Build the ServiceSpec of one container run once: one replica, never restarted.

    Args:
        name: the service's name; its container is named ``<name>.1.<task id>``.
        image: the image, as given: the API resolves nothing (pinning a digest is the
            CLI's work), so a locally built name works on a single node.
        args: the command's arguments (the container's Cmd; the image's Entrypoint stays).
        env: ``KEY=value`` strings.
        labels: set on the service and on its container (``ContainerSpec.Labels``), so
            both can be found by label.
        secrets: files mounted from swarm secrets.
        nano_cpus: the CPU limit in billionths of a CPU; 0 for none.
        memory_bytes: the memory limit; 0 for none.
        constraints: placement constraints such as ``node.labels.fabric==true``.
        network: the network to attach: ``host`` (the host's stack, Fabric's default),
            an attachable swarm network's name, or None for the engine's default
            (``bridge``). Swarm has no ``none`` network: the engine answers 404.
        stop_grace: seconds between the stop signal and SIGKILL when the service goes.
        log_driver: the container's log driver; None keeps the engine's default. Service
            logs need a driver the engine can read back (json-file, local, journald).
    """
    owned = dict(labels or {})
    container: dict[str, Any] = {
        "Image": image,
        "Labels": owned,
        "StopGracePeriod": int(stop_grace * _NANO),
    }
    if args:
        container["Args"] = list(args)
    if env:
        container["Env"] = list(env)
    if secrets:
        container["Secrets"] = [mount.to_engine() for mount in secrets]
    limits = {
        key: value
        for key, value in (("NanoCPUs", nano_cpus), ("MemoryBytes", memory_bytes))
        if value
    }
    task: dict[str, Any] = {
        "ContainerSpec": container,
        # A chaincode that exits is reported to the peer, which decides what runs next.
        "RestartPolicy": {"Condition": "none"},
    }
    if limits:
        task["Resources"] = {"Limits": limits}
    if constraints:
        task["Placement"] = {"Constraints": list(constraints)}
    if network is not None:
        task["Networks"] = [{"Target": network}]
    if log_driver is not None:
        task["LogDriver"] = {"Name": log_driver}
    return {
        "Name": name,
        "Labels": owned,
        "TaskTemplate": task,
        "Mode": {"Replicated": {"Replicas": 1}},
    }


async def service_create(engine: Engine, spec: Mapping[str, Any]) -> str:
    """Create a service from its ServiceSpec (see ``service_spec``) and return its id.

    The image is not checked here: a missing one shows as a ``rejected`` task.

    Raises:
        ServiceAlreadyExists: a service of that name exists (409).
        InvalidParameter: the engine refused the spec, such as a name that is no DNS
            label (400).
        NotFound: a network named does not exist (404; Docker 28 answers 500 for some).
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    result = await engine.call(
        "POST",
        "/services/create",
        json=spec,
        errors=_SERVICE_CREATE_ERRORS,
        subject=str(spec.get("Name", "")),
    )
    return str(result["ID"])


async def service_inspect(engine: Engine, name: str) -> dict[str, Any]:
    """Return a service's inspect document, by id or name.

    Raises:
        NoSuchService: no such service (404).
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    result: dict[str, Any] = await engine.call(
        "GET", f"/services/{segment(name)}", errors=_SERVICE_ERRORS, subject=name
    )
    return result


async def service_update(engine: Engine, name: str, version: int, spec: Mapping[str, Any]) -> None:
    """Replace a service's spec; ``version`` is the ``Version.Index`` it was read at.

    Changing only ``Mode`` (the replica count) leaves the task template alone, so no
    task is replaced: scaling to 0 stops the task with the spec's stop grace.

    Raises:
        NoSuchService: no such service (404).
        InvalidParameter: the engine refused the spec, or ``version`` is out of date (400
            on Docker 20.10; newer engines answer 500 "update out of sequence").
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    await engine.call(
        "POST",
        f"/services/{segment(name)}/update",
        params={"version": str(version)},
        json=spec,
        errors=_SERVICE_ERRORS,
        subject=name,
    )


async def service_remove(engine: Engine, name: str) -> None:
    """Remove a service, by id or name. Its container is stopped and removed afterwards.

    Raises:
        NoSuchService: no such service (404).
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    await engine.call("DELETE", f"/services/{segment(name)}", errors=_SERVICE_ERRORS, subject=name)


async def service_list(
    engine: Engine,
    *,
    labels: Mapping[str, str | None] | None = None,
    names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """List services, optionally by label and by name (a name filter matches prefixes).

    Raises:
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    result: list[dict[str, Any]] = await engine.call(
        "GET", "/services", params=_filters(labels, name=names), errors=_SWARM_ERRORS
    )
    return result


@asynccontextmanager
async def service_logs(  # noqa: PLR0913 -- the engine's own options
    engine: Engine,
    name: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    since: str | None = None,
    timestamps: bool = False,
    tty: bool = False,
) -> AsyncIterator[AsyncIterator[streams.Frame]]:
    """Open a service's logs (every task's stdout and stderr) and yield an iterator over them.

    The body is framed as a container's logs are, unless the service's container has a
    terminal (``tty``, ``ContainerSpec.TTY``). With ``follow`` the stream has no end and
    no timeout; without it, it ends with what was written so far.

    Raises:
        NoSuchService: no such service (404).
        NodeNotInSwarm: the engine is not a swarm manager (503).
        StreamBroken: the stream was cut inside a frame or the connection broke.
    """
    async with engine.request(
        "GET",
        f"/services/{segment(name)}/logs",
        params=containers.logs_query(follow=follow, tail=tail, since=since, timestamps=timestamps),
        kind="stream",
        errors=_SERVICE_ERRORS,
        subject=name,
    ) as resp:
        yield streams.raw(resp) if tty else streams.demux(resp)


# --- Tasks.


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """What one task says of its container.

    Attributes:
        task_id: the task's id.
        service_id: its service's id.
        state: the observed state (``new`` ... ``running``, then ``complete``, ``failed``,
            ``rejected``, ``shutdown``...).
        desired_state: what the orchestrator wants (``running``, ``shutdown``...).
        container_id: the container's id, once the node made one.
        exit_code: the container's exit code, once it exited (0 before).
        error: the engine's reason for a failed or rejected task ("task: non-zero exit
            (3)", "No such image: ...").
    """

    task_id: str
    service_id: str
    state: str
    desired_state: str
    container_id: str | None
    exit_code: int | None
    error: str

    @property
    def finished(self) -> bool:
        """Whether the task reached a state it never leaves."""
        return self.state in TERMINAL_TASK_STATES

    @classmethod
    def of(cls, task: Mapping[str, Any]) -> TaskStatus:
        """Read a task document from ``task_list``."""
        status = task.get("Status") or {}
        container = status.get("ContainerStatus") or {}
        exit_code = container.get("ExitCode")
        return cls(
            task_id=str(task.get("ID", "")),
            service_id=str(task.get("ServiceID", "")),
            state=str(status.get("State", "")),
            desired_state=str(task.get("DesiredState", "")),
            container_id=container.get("ContainerID") or None,
            exit_code=int(exit_code) if exit_code is not None else None,
            error=str(status.get("Err", "")),
        )


async def task_list(
    engine: Engine,
    *,
    service: str | None = None,
    desired_state: str | None = None,
    labels: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """List tasks, optionally of one service (id or name) and in one desired state.

    Each task's ``Status`` holds ``State``, ``Err``, and ``ContainerStatus`` with
    ``ContainerID`` and ``ExitCode`` once the node made a container; ``TaskStatus.of``
    reads them. Old tasks of a service stay listed (the swarm's task history).

    Raises:
        NodeNotInSwarm: the engine is not a swarm manager (503).
    """
    params = _filters(
        labels,
        service=[service] if service else None,
        desired_state=[desired_state] if desired_state else None,
    )
    result: list[dict[str, Any]] = await engine.call(
        "GET", "/tasks", params=params, errors=_SWARM_ERRORS
    )
    return result
