"""The Docker-API front of a running daemon: its policy from the configuration, its listeners.

The front opens once the daemon is ready (the table re-adopted, exits followed), so a
peer's first call already finds its chaincodes known. It serves on its Unix socket, on
TCP with mutual TLS, or both (one front, one policy), until the daemon stops, then
removes its socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.stapled import MultiListener

from ccdaemon.daemon.sockets import StartError, check_directory, clear_stale, give, unlink
from ccdaemon.daemon.tls import QuietTLSListener, server_context
from ccdaemon.dockerfront.exchange import HEAD_TIMEOUT
from ccdaemon.dockerfront.front import DockerFront
from ccdaemon.dockerfront.policy import FrontPolicy

if TYPE_CHECKING:
    from pathlib import Path

    from anyio.abc import Listener, TaskStatus

    from ccdaemon.config import Config, DockerAPIConfig
    from ccdaemon.daemon.state import Daemon
    from ccdaemon.runtime.launcher import RuntimeConfig

log = logging.getLogger(__name__)

#: Seconds a TCP client has to finish its TLS handshake: the time it would have for a
#: request's head, so a client that never completes one holds a connection no longer.
HANDSHAKE_TIMEOUT = HEAD_TIMEOUT


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
    """Bind ``[docker_api] socket`` and ``tcp`` (either or both) and serve the front there.

    Both listeners serve the same front until cancelled.
    """
    settings = config.docker_api
    front = DockerFront(
        daemon.site.relay(daemon.queue, daemon.labels),
        front_policy(config, runtime),
        daemon.supervisor,
        max_upload=config.policy.max_package_size,
    )
    async with contextlib.AsyncExitStack() as stack:
        listeners: list[Listener[Any]] = []
        if settings.socket is not None:
            listeners.append(await _unix_listener(settings.socket, settings, stack))
        if settings.tcp is not None:
            tcp = await _tcp_listener(settings.tcp, settings)
            listeners.append(await stack.enter_async_context(tcp))
        task_status.started()
        await MultiListener(listeners).serve(front.serve)


async def _unix_listener(
    path: Path, settings: DockerAPIConfig, stack: contextlib.AsyncExitStack
) -> Listener[Any]:
    """Bind the front's socket ``path``, mode and group set; closed and removed by ``stack``."""
    check_directory(path.parent)
    clear_stale(path)
    old = os.umask(0o177)  # born private; its mode is set right after
    try:
        listener = await anyio.create_unix_listener(path)
    finally:
        os.umask(old)
    stack.callback(unlink, path)  # ours from here on: removed after the listener closes
    await stack.enter_async_context(listener)
    give(path, settings.socket_mode, settings.socket_group)
    log.info(
        "Docker-API front on %s (mode %04o): point the peer's vm.endpoint at unix://%s",
        path,
        settings.socket_mode,
        path,
    )
    return listener


async def _tcp_listener(address: str, settings: DockerAPIConfig) -> QuietTLSListener:
    """Bind ``address`` (``[docker_api] tcp``): mutual TLS, handshakes within HANDSHAKE_TIMEOUT.

    Raises:
        StartError: the TLS files cannot be loaded, or the address cannot be bound.
    """
    context = server_context(
        settings.tcp_ca, settings.tcp_cert, settings.tcp_key, table="docker_api"
    )
    host, _, port = address.rpartition(":")
    try:
        tcp = await anyio.create_tcp_listener(local_host=host.strip("[]"), local_port=int(port))
    except OSError as exc:
        raise StartError(f"cannot serve the Docker-API front on {address}: {exc}") from exc
    log.info(
        "Docker-API front on https://%s (client certificates required): point the peer's "
        "vm.endpoint at tcp://%s with vm.docker.tls.enabled",
        address,
        address,
    )
    # Not standard_compatible: closing waits for no close_notify from a client (a client
    # that never sends one would hold the connection); HTTP frames its own messages.
    return QuietTLSListener(
        tcp, context, standard_compatible=False, handshake_timeout=HANDSHAKE_TIMEOUT
    )
