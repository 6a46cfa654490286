"""The container backend: each chaincode a container of one engine (Fabric's DockerVM).

Fabric's side of a launch (names, credentials, LaunchConfig, the queue, image builds)
is ``Fabric``'s (runtime/fabric.py); this backend gives it DockerVM.start and .stop
(runtime/dockervm.py), and owns the engine side of supervision: exits from the
engine's events (runtime/containerexits.py), what an earlier run left and what gc may
take (runtime/containerstate.py).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import anyio

from ccdaemon.engine import NoSuchContainer, containers, streams, system
from ccdaemon.runtime import dockervm
from ccdaemon.runtime.containerexits import ExitWatcher
from ccdaemon.runtime.containerstate import (
    chaincode_images,
    ended_containers,
    recover_containers,
    remove_image,
)
from ccdaemon.runtime.fabric import Fabric, Launched, LaunchRequest
from ccdaemon.runtime.runtimeconfig import Issuer, RuntimeConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from anyio.abc import TaskGroup, TaskStatus

    from ccdaemon.engine import Engine, EngineVersion
    from ccdaemon.launchqueue import LaunchQueue
    from ccdaemon.runtime.backend import ImageCandidate, Recovery, Table
    from ccdaemon.runtime.dockervm import LaunchSpec
    from ccdaemon.runtime.package import ChaincodePackage


__all__ = ["Issuer", "LaunchRequest", "Launched", "Launcher", "RuntimeConfig"]


class Launcher:
    """Launches and stops chaincode containers on one engine, through one queue.

    ``host_config``, when given, is the engine HostConfig of every chaincode (the daemon's
    policy applied to ``config.host_config``). With ``attach_stdout``, ``task_group`` owns
    each chaincode's output relay for as long as the container writes; the relays end by
    themselves when their container stops. ``build_cache_size``: see ``Fabric``.
    """

    def __init__(  # noqa: PLR0913 -- the launcher's collaborators, each named
        self,
        engine: Engine,
        queue: LaunchQueue,
        ca: Issuer,
        config: RuntimeConfig,
        *,
        task_group: TaskGroup | None = None,
        host_config: Mapping[str, Any] | None = None,
        build_cache_size: int = 0,
    ) -> None:
        self._fabric = Fabric(
            engine,
            queue,
            ca,
            config,
            task_group=task_group,
            host_config=host_config,
            build_cache_size=build_cache_size,
        )
        self._engine = engine
        self._config = config
        #: When recovery listed the containers: exits are replayed from then.
        self._listed_at: str | None = None

    def output(self, ccid: str) -> list[str]:
        """The last lines the chaincode wrote (empty unless ``attach_stdout``)."""
        return self._fabric.kept(ccid)

    def names(self, ccid: str) -> tuple[str, str]:
        """The container and image names of ``ccid`` on this peer."""
        return self._fabric.names(ccid)

    async def launch(
        self,
        request: LaunchRequest,
        *,
        progress: Callable[[str], object] | None = None,
        name_free: bool = False,
    ) -> Launched:
        """Fabric's ContainerRuntime.Start with DockerVM.start (see ``Fabric.launch``)."""
        return await self._fabric.launch(
            request, self._start, progress=progress, name_free=name_free
        )

    async def stop(
        self, ccid: str, *, grace: int = 0, dontkill: bool = False, dontremove: bool = False
    ) -> int | None:
        """Fabric's ContainerRuntime.Stop: stop with ``grace``, kill, remove, in its turn.

        Returns the container's exit code, or None when it had no container.
        """
        return await self._fabric.stop(
            ccid, self._stop, grace=grace, dontkill=dontkill, dontremove=dontremove
        )

    async def build(
        self,
        ccid: str,
        package: ChaincodePackage,
        *,
        progress: Callable[[str], object] | None = None,
    ) -> tuple[str, bool]:
        """Make the image of ``ccid`` unless the engine has it (``Fabric.build``)."""
        return await self._fabric.build(ccid, package, progress=progress)

    async def built(self, ccid: str) -> str | None:
        """The image of ``ccid`` if the engine has it and this daemon built it, else None."""
        return await self._fabric.built(ccid)

    async def _start(
        self,
        spec: LaunchSpec,
        *,
        build: Callable[[], Awaitable[None]],
        phases: dict[str, float],
        name_free: bool,
    ) -> str:
        """Run the chaincode on the engine (in its queue slot); its container's id."""
        return await dockervm.start(
            self._engine,
            spec,
            build=build,
            startup_timeout=self._config.startup_timeout,
            output=self._fabric.output.relay(spec.container)
            if self._config.attach_stdout
            else None,
            task_group=self._fabric.group,
            phases=phases,
            name_free=name_free,
        )

    async def version(self) -> EngineVersion:
        """The engine's version, after a ping (health)."""
        await system.ping(self._engine)
        return await self._engine.version()

    async def prepare(self) -> None:
        """Containers need nothing of the engine beyond its API."""

    async def recover(self) -> Recovery:
        """This daemon's containers an earlier run left; unfinished ones removed.

        Exits are followed from this moment on (``watch_exits``), so none falls between.
        """
        self._listed_at = f"{time.time():.3f}"
        return await recover_containers(self._engine, self._config.owner_labels())

    async def watch_exits(
        self, table: Table, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep ``table`` true from the engine's events, for ever (containerexits.py)."""
        watcher = ExitWatcher(
            self._engine, table, self._config.owner_labels(), since=self._listed_at
        )
        await watcher.run(task_status=task_status)

    async def ended(self) -> list[tuple[str, str]]:
        """This daemon's chaincodes whose container no longer runs: (ccid, container)."""
        return await ended_containers(self._engine, self._config.owner_labels())

    async def images(self) -> list[ImageCandidate]:
        """This daemon's tagged chaincode images."""
        return await chaincode_images(self._engine, self._config.owner_labels())

    async def remove_image(self, image_id: str) -> str | None:
        """Remove an image; None when it went, else why the engine kept it."""
        return await remove_image(self._engine, image_id)

    async def caches(self) -> list[str]:
        """This daemon's build cache volumes."""
        return await self._fabric.caches.listed()

    async def remove_caches(self) -> list[str]:
        """Remove the build cache volumes no build is using; those removed."""
        return await self._fabric.caches.remove_all()

    async def wait(self, container: str, container_id: str) -> int | None:
        """Block until the chaincode's container no longer runs; its exit code, None if gone.

        ``container`` is the chaincode's name (``names()``), ``container_id`` the id of the
        container its launch made.

        No timeout: a chaincode runs as long as it runs.

        Raises:
            EngineUnavailable: the engine could not be reached.
        """
        try:
            return await containers.wait(self._engine, container_id or container)
        except NoSuchContainer:
            return None

    @contextlib.asynccontextmanager
    async def logs(
        self, container: str, container_id: str | None, *, follow: bool, tail: int | None
    ) -> AsyncIterator[AsyncIterator[streams.Line]]:
        """The chaincode's output, line by line (names as for ``wait``).

        Raises:
            NotFound: the container is gone.
            EngineUnavailable: the engine could not be reached.
        """
        async with containers.logs(
            self._engine, container_id or container, follow=follow, tail=tail
        ) as frames:
            yield streams.lines(frames)

    async def _stop(
        self, container: str, *, grace: int, dontkill: bool, dontremove: bool
    ) -> int | None:
        """Stop and remove the chaincode's container (in its queue slot); its exit code."""
        return await dockervm.stop(
            self._engine, container, grace=grace, dontkill=dontkill, dontremove=dontremove
        )

    def follow(self, container: str) -> None:
        """Relay a running container's output found at daemon start (re-adoption).

        The relay reads the kept number of past lines first, which refill the kept tail
        (an earlier run logged them), in the launcher's task group.
        """
        group = self._fabric.group
        if not self._config.attach_stdout or group is None:
            return
        group.start_soon(
            dockervm.follow,
            self._engine,
            container,
            self._fabric.output.resume(container),
            self._config.output_lines,
        )
