"""A chaincode's swarm service as the engine gets it: spec, secrets, image at the registry.

``SwarmConfig`` is how services are made (``[swarm]``).

The launch's container becomes a ServiceSpec with the same limits, each TLS file a
secret mounted at Fabric's path, and with a registry, the image one every node pulls.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccdaemon.engine import NoSuchImage, SecretAlreadyExists, images, swarm
from ccdaemon.engine.swarm import SecretMount
from ccdaemon.runtime.naming import secret_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ccdaemon.engine import Engine
    from ccdaemon.runtime.dockervm import LaunchSpec


@dataclass(frozen=True, slots=True)
class SwarmConfig:
    """How chaincodes run as services (``[swarm]``).

    Attributes:
        network: the network of every service: ``host`` (Fabric's default, the node's
            own stack) or an attachable overlay network's name.
        constraints: placement constraints, such as ``node.labels.fabric==true``.
        stop_grace: seconds between the stop signal and SIGKILL. A service's grace is
            fixed when it is made, so a stop's own grace is not applied.
        poll_interval: seconds between looks at a task's state (there is no task event).
        registry: ``host:port[/prefix]`` of the registry every node pulls from. Each
            image is pushed there once and services name it by digest, so every node
            runs the same bytes. Empty: services name the manager's local image, which
            only the manager's node has (a one-node swarm).
    """

    network: str = "host"
    constraints: tuple[str, ...] = ()
    stop_grace: float = 10.0
    poll_interval: float = 0.5
    registry: str = ""


#: Key files are readable by their owner only; certificates by all.
_KEY_MODE = 0o400
_CERT_MODE = 0o444


async def push(engine: Engine, registry: str, image: str) -> str:
    """``image`` at ``registry`` (``host:port[/prefix]``), by digest: tagged, pushed, untagged.

    The service names the digest, so the registry's tag is not needed afterwards,
    and the local one would only keep gc from removing the image.
    """
    repository = f"{registry}/{image.partition(':')[0]}"
    await images.tag(engine, image, repository)
    try:
        digest = await images.push(engine, repository)
    finally:
        with contextlib.suppress(NoSuchImage):
            await images.remove(engine, f"{repository}:latest")
    return f"{repository}@{digest}"


def service_body(
    spec: LaunchSpec, mounts: list[SecretMount], host: Mapping[str, Any], config: SwarmConfig
) -> dict[str, Any]:
    """The ServiceSpec of a launch: its container's, with ``host``'s CPU and memory limits."""
    nano_cpus = int(host.get("NanoCpus") or 0)
    if not nano_cpus and host.get("CpuQuota") and host.get("CpuPeriod"):
        nano_cpus = int(host["CpuQuota"] * 1_000_000_000 // host["CpuPeriod"])
    return swarm.service_spec(
        spec.container,
        spec.image,
        args=spec.args,
        env=spec.env,
        labels=spec.labels,
        secrets=mounts,
        nano_cpus=nano_cpus,
        memory_bytes=int(host.get("Memory") or 0),
        constraints=config.constraints,
        network=config.network,
        stop_grace=config.stop_grace,
    )


async def secret_mount(
    engine: Engine, service: str, path: str, content: bytes, labels: Mapping[str, str]
) -> SecretMount:
    """One TLS file as a secret; a retried launch with the same content finds its own."""
    name = secret_name(service, path, content)
    try:
        secret_id = await swarm.secret_create(engine, name, content, labels=labels)
    except SecretAlreadyExists:
        found = await swarm.secret_list(engine, names=[name])
        secret_id = next(str(s["ID"]) for s in found if s["Spec"]["Name"] == name)
    mode = _KEY_MODE if path.endswith(".key") else _CERT_MODE
    return SecretMount(secret_id, name, path, mode=mode)
