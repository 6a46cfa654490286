"""The Docker-API front of a running daemon: its policy from the configuration, its socket.

The front opens once the daemon is ready (the table re-adopted, exits followed), so a
peer's first call already finds its chaincodes known. It serves until the daemon stops,
then removes its socket.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import anyio

from ccdaemon.daemon.sockets import check_directory, clear_stale, give, unlink
from ccdaemon.dockerfront.front import DockerFront
from ccdaemon.dockerfront.policy import FrontPolicy
from ccdaemon.runtime.relay import Relay

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from ccdaemon.config import Config
    from ccdaemon.daemon.state import Daemon
    from ccdaemon.runtime.launcher import RuntimeConfig

log = logging.getLogger(__name__)


def front_policy(config: Config, runtime: RuntimeConfig) -> FrontPolicy:
    """What the front lets this daemon's peer make, from the configuration.

    Builders run in the configured builder images (node and java build in their runtime
    images, as Fabric does); chaincode images are built FROM the runtime images.
    """
    images = runtime.images
    return FrontPolicy(
        network_id=runtime.network_id,
        peer_id=runtime.peer_id,
        network_mode=runtime.host_config.network_mode or "host",
        builder_images=frozenset({images.golang_builder, images.node_builder, images.java_builder}),
        runtime_images=frozenset({images.golang_runtime, images.node_runtime, images.java_runtime}),
        labels=runtime.owner_labels(),
        limits=config.policy,
    )


async def serve_front(
    config: Config,
    runtime: RuntimeConfig,
    daemon: Daemon,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Bind ``[docker_api] socket`` and serve the front there until cancelled."""
    path = config.docker_api.socket
    if path is None:
        task_status.started()
        return
    front = DockerFront(
        Relay(daemon.engine, daemon.queue, daemon.labels),
        front_policy(config, runtime),
        daemon.supervisor,
        max_upload=config.policy.max_package_size,
    )
    check_directory(path.parent)
    clear_stale(path)
    old = os.umask(0o177)  # born private; its mode is set right after
    try:
        listener = await anyio.create_unix_listener(path)
    finally:
        os.umask(old)
    try:
        give(path, config.docker_api.socket_mode, config.docker_api.socket_group)
        log.info(
            "Docker-API front on %s (mode %04o): point the peer's vm.endpoint at unix://%s",
            path,
            config.docker_api.socket_mode,
            path,
        )
        task_status.started()
        async with listener:
            await listener.serve(front.serve)
    finally:
        unlink(path)
