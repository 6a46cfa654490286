"""The engine a daemon works on, opened: the one place that builds a backend on it.

``Site`` owns the engine client. The layers above ask it for the backend the
configuration names (containers of this engine, or services of its swarm), for the
relay the Docker-API front makes a peer's calls through, and for the endpoint their
messages name; they never hold the engine itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Self

from ccdaemon.engine import Engine
from ccdaemon.runtime.launcher import Launcher

if TYPE_CHECKING:
    from collections.abc import Mapping

    from anyio.abc import TaskGroup

    from ccdaemon.engine import TLSFiles
    from ccdaemon.engine.transport import CallObserver
    from ccdaemon.launchqueue import LaunchQueue
    from ccdaemon.runtime.backend import Backend
    from ccdaemon.runtime.launcher import Issuer, RuntimeConfig
    from ccdaemon.runtime.relay import Relay
    from ccdaemon.runtime.swarmservice import SwarmConfig


class Site:
    """One engine (arguments as ``Engine``'s), opened by ``async with`` and closed after."""

    def __init__(
        self,
        endpoint: str,
        *,
        tls: TLSFiles | None = None,
        api_version: str | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self._engine = Engine(endpoint, tls=tls, api_version=api_version, observer=observer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._engine.close()

    @property
    def endpoint(self) -> str:
        """The engine's address, as configured (for messages)."""
        return self._engine.endpoint

    def backend(  # noqa: PLR0913 -- the backend's collaborators, each named
        self,
        kind: Literal["docker", "swarm"],
        queue: LaunchQueue,
        ca: Issuer,
        runtime: RuntimeConfig,
        *,
        group: TaskGroup,
        host_config: Mapping[str, Any],
        build_cache_size: int,
        swarm: SwarmConfig,
    ) -> Backend:
        """The backend ``kind`` names: this engine's containers, or its swarm's services.

        The one place a backend is chosen; everything after sees only ``Backend``.
        """
        if kind == "swarm":
            # Imported only here: a container backend's daemon need not carry it (0.2 MiB).
            from ccdaemon.runtime.swarmlauncher import SwarmLauncher  # noqa: PLC0415

            return SwarmLauncher(
                self._engine,
                queue,
                ca,
                runtime,
                swarm_config=swarm,
                task_group=group,
                host_config=host_config,
                build_cache_size=build_cache_size,
            )
        return Launcher(
            self._engine,
            queue,
            ca,
            runtime,
            task_group=group,
            host_config=host_config,
            build_cache_size=build_cache_size,
        )

    def relay(self, queue: LaunchQueue, labels: Mapping[str, str]) -> Relay:
        """The engine, behind ``queue``, for the calls a peer makes through the Docker-API front."""
        # Imported only here: a daemon with no front need not carry it.
        from ccdaemon.runtime.relay import Relay  # noqa: PLC0415

        return Relay(self._engine, queue, labels)
