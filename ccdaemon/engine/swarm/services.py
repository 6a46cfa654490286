"""Swarm services: the spec of one container run once, and the calls on services.

The secrets a service mounts are ``SecretMount``s, their paths the caller's; a
service's logs are framed as a container's.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccdaemon.engine import containers, streams
from ccdaemon.engine.errors import NodeNotInSwarm, NoSuchService, ServiceAlreadyExists
from ccdaemon.engine.swarm.cluster import SWARM_ERRORS, filters
from ccdaemon.engine.transport import segment

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence

    from ccdaemon.engine.transport import Engine, ErrorMap

_NANO = 1_000_000_000

_SERVICE_CREATE_ERRORS: ErrorMap = {409: ServiceAlreadyExists, 503: NodeNotInSwarm}
_SERVICE_ERRORS: ErrorMap = {404: NoSuchService, 503: NodeNotInSwarm}


@dataclass(frozen=True, slots=True)
class SecretMount:
    """One secret (its id and name: the engine wants both), as the file ``target``.

    ``target`` is an absolute path in the container; ``uid`` and ``gid`` are numbers.
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
        "GET", "/services", params=filters(labels, name=names), errors=SWARM_ERRORS
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
