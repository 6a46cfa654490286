"""The swarm backend: each chaincode a one-replica Docker Swarm service.

Requests, names, credentials and the launch queue are ``Fabric``'s (runtime/fabric.py),
as for the container backend; the engine steps are this backend's (docs/swarm.md):

    launch: image (built on the manager when missing) -> each TLS file a swarm secret
            -> a service (restart none) -> wait for its task to run
    stop:   scale to 0 (the task stops with the service's grace and keeps its exit
            code) -> remove the service and its secrets

Logs come from the service's logs and exits from its task's state, so neither needs
the node the task runs on. What the engine is given (the service's spec, its secrets,
the image at the registry) is ``swarmservice``'s.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio

from ccdaemon.engine import (
    NodeNotInSwarm,
    NoSuchImage,
    NoSuchService,
    ServiceAlreadyExists,
    images,
    streams,
    swarm,
    system,
)
from ccdaemon.engine.swarm import TaskStatus
from ccdaemon.runtime.containerstate import chaincode_images, remove_image
from ccdaemon.runtime.dockervm import CLEANUP_TIMEOUT, MIN_STARTUP_TIMEOUT, Phases, whole
from ccdaemon.runtime.errors import BackendUnfit, StartupTimeout, TaskFailed
from ccdaemon.runtime.fabric import Fabric
from ccdaemon.runtime.hostconfig import CCID_LABEL
from ccdaemon.runtime.naming import service_name
from ccdaemon.runtime.servicelogs import ServiceOutput
from ccdaemon.runtime.servicestate import ended_services, recover_services, remove_service, task_of
from ccdaemon.runtime.swarmservice import SwarmConfig, push, secret_mount, service_body
from ccdaemon.runtime.taskexits import TaskWatcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from anyio.abc import TaskGroup
    from anyio.abc import TaskStatus as Started

    from ccdaemon.engine import Engine, EngineVersion
    from ccdaemon.launchqueue import LaunchQueue
    from ccdaemon.runtime.backend import ImageCandidate, Recovery, Table
    from ccdaemon.runtime.dockervm import LaunchSpec
    from ccdaemon.runtime.fabric import Launched, LaunchRequest
    from ccdaemon.runtime.package import ChaincodePackage
    from ccdaemon.runtime.runtimeconfig import Issuer, RuntimeConfig

__all__ = ["SwarmConfig", "SwarmLauncher"]

log = logging.getLogger(__name__)

#: A task that failed this way ran: its container started and exited.
_RAN = "task: non-zero exit"
#: Task states before its container runs; any other unfinished state means it runs.
_PENDING = frozenset(
    {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)


class SwarmLauncher:
    """Launches and stops chaincodes as swarm services on a manager, through one queue.

    ``names()`` gives the service's name (a DNS label) where the container backend gives
    the container's; everything the daemon reports as the chaincode's container is that
    service.
    """

    def __init__(  # noqa: PLR0913 -- the Launcher's collaborators and the swarm's settings
        self,
        engine: Engine,
        queue: LaunchQueue,
        ca: Issuer,
        config: RuntimeConfig,
        *,
        swarm_config: SwarmConfig,
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
            rename=service_name,
            build_cache_size=build_cache_size,
        )
        self._engine = engine
        self._config = config
        self._swarm = swarm_config
        #: (image, id) -> its name at the registry, by digest: pushed once per daemon run.
        self._pushed: dict[tuple[str, str], str] = {}
        #: The services' output relays (with attach_stdout).
        self._output = (
            ServiceOutput(engine, self._fabric.output, config.output_lines, task_group)
            if config.attach_stdout and task_group is not None
            else None
        )

    def names(self, ccid: str) -> tuple[str, str]:
        """The service and image names of ``ccid`` on this peer."""
        return self._fabric.names(ccid)

    def output(self, ccid: str) -> list[str]:
        """The last lines the chaincode wrote (empty unless ``attach_stdout``)."""
        return self._fabric.kept(ccid)

    async def launch(
        self,
        request: LaunchRequest,
        *,
        progress: Callable[[str], object] | None = None,
        name_free: bool = False,
    ) -> Launched:
        """Fabric's ContainerRuntime.Start, as a service (see ``Fabric.launch``)."""
        return await self._fabric.launch(
            request, self._start, progress=progress, name_free=name_free
        )

    async def stop(
        self, ccid: str, *, grace: int = 0, dontkill: bool = False, dontremove: bool = False
    ) -> int | None:
        """Fabric's ContainerRuntime.Stop, as a service: its task's exit code, or None."""
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
        """Make the image of ``ccid`` on the manager unless it has it (``Fabric.build``)."""
        return await self._fabric.build(ccid, package, progress=progress)

    async def built(self, ccid: str) -> str | None:
        """The image of ``ccid`` if the manager has it and this daemon built it, else None."""
        return await self._fabric.built(ccid)

    async def version(self) -> EngineVersion:
        """The manager's version, after a ping (health)."""
        await system.ping(self._engine)
        return await self._engine.version()

    async def images(self) -> list[ImageCandidate]:
        """This daemon's tagged chaincode images on the manager."""
        return await chaincode_images(self._engine, self._config.owner_labels())

    async def remove_image(self, image_id: str) -> str | None:
        """Remove an image from the manager; None when it went, else why it was kept."""
        return await remove_image(self._engine, image_id)

    async def caches(self) -> list[str]:
        """This daemon's build cache volumes."""
        return await self._fabric.caches.listed()

    async def remove_caches(self) -> list[str]:
        """Remove the build cache volumes no build is using; those removed."""
        return await self._fabric.caches.remove_all()

    async def _start(
        self,
        spec: LaunchSpec,
        *,
        build: Callable[[], Awaitable[None]],
        phases: dict[str, float],
        name_free: bool,
    ) -> str:
        limit = max(self._config.startup_timeout, MIN_STARTUP_TIMEOUT)
        try:
            with anyio.fail_after(limit):
                return await self._run(spec, build, Phases(phases), name_free=name_free)
        except TimeoutError as exc:
            raise StartupTimeout(
                f"chaincode service {spec.container} did not start within {limit:g} s"
            ) from exc

    async def _run(
        self,
        spec: LaunchSpec,
        build: Callable[[], Awaitable[None]],
        phase: Phases,
        *,
        name_free: bool,
    ) -> str:
        service, ccid = spec.container, spec.labels[CCID_LABEL]
        if not name_free:
            with phase("remove"):
                await self.remove_service(service, ccid)
        try:
            # A missing image would only show as a rejected task: look first.
            try:
                with phase("image"):
                    image_id = (await images.inspect(self._engine, spec.image))["Id"]
            except NoSuchImage:
                log.info("image %s is missing; building it", spec.image)
                with phase("build"):
                    await build()
                image_id = (await images.inspect(self._engine, spec.image))["Id"]
            if self._swarm.registry:
                # With the id: a rebuilt image under the same name is pushed again.
                pushed = self._pushed.get((spec.image, image_id))
                if pushed is None:
                    with phase("push"):
                        pushed = await push(self._engine, self._swarm.registry, spec.image)
                    log.info("image %s pushed as %s", spec.image, pushed)
                    self._pushed[spec.image, image_id] = pushed
                spec = replace(spec, image=pushed)
            with phase("secrets"):
                mounts = [
                    await secret_mount(self._engine, service, path, content, spec.labels)
                    for path, content in spec.files.items()
                ]
            body = service_body(spec, mounts, self._fabric.host_config, self._swarm)
            try:
                with phase("create"), whole():
                    await swarm.service_create(self._engine, body)
            except ServiceAlreadyExists:
                log.info("service %s exists after all; removing it first", service)
                with phase("remove"):
                    await self.remove_service(service, ccid, keep={m.secret_name for m in mounts})
                with phase("create"), whole():
                    await swarm.service_create(self._engine, body)
            if self._output is not None:
                self._output.relay(service)
            with phase("start"):
                return await self._running(service)
        except BaseException:
            with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                await self.remove_service(service, ccid)
            raise

    async def _running(self, service: str) -> str:
        """Wait until the service's task runs (or ran); its container's id.

        Raises:
            TaskFailed: the task ended before its container ran (a missing image, a
                start the node refused), with the engine's reason.
        """
        while True:
            task = await self._task(service)
            if task is not None and task.container_id:
                ran = task.state == "complete" or task.error.startswith(_RAN)
                if not task.finished and task.state not in _PENDING:
                    return task.container_id
                if task.finished and ran:
                    return task.container_id  # exited at once: the exit is reported later
            if task is not None and task.finished:
                raise TaskFailed(service, task.state, task.error or "no reason given")
            await anyio.sleep(self._swarm.poll_interval)

    async def _stop(
        self, container: str, *, grace: int, dontkill: bool, dontremove: bool
    ) -> int | None:
        """Scale to 0 (the task stops and keeps its exit code), then remove the service.

        ``grace`` and ``dontkill`` are the service's, fixed at launch (``stop_grace``).
        """
        del grace, dontkill
        try:
            found = await swarm.service_inspect(self._engine, container)
        except NoSuchService:
            return None
        ccid = (found["Spec"].get("Labels") or {}).get(CCID_LABEL, "")
        spec = found["Spec"]
        if spec["Mode"]["Replicated"]["Replicas"]:
            spec["Mode"]["Replicated"]["Replicas"] = 0
            await swarm.service_update(self._engine, container, found["Version"]["Index"], spec)
        task: TaskStatus | None = None
        with anyio.move_on_after(self._swarm.stop_grace + CLEANUP_TIMEOUT):
            task = await self._ended(container)
        if not dontremove:
            await self.remove_service(container, ccid)
        return None if task is None else task.exit_code

    async def _ended(self, service: str) -> TaskStatus | None:
        """Poll until the service's task has finished; None when it has no task."""
        while True:
            task = await self._task(service)
            if task is None or task.finished:
                return task
            await anyio.sleep(self._swarm.poll_interval)

    async def _task(self, service: str) -> TaskStatus | None:
        """The service's one task (restart none: there is never a second), if any yet."""
        return await task_of(self._engine, service)

    async def remove_service(
        self, service: str, ccid: str, *, keep: frozenset[str] | set[str] = frozenset()
    ) -> None:
        """Remove the service (its relay ends), then the secrets of ``ccid`` but ``keep``."""
        if self._output is not None:
            self._output.end(service)
        owner = {**self._config.owner_labels(), CCID_LABEL: ccid}
        await remove_service(self._engine, service, owner, keep=keep)

    async def ended(self) -> list[tuple[str, str]]:
        """This daemon's chaincodes whose task has ended: (ccid, service)."""
        return await ended_services(self._engine, self._config.owner_labels())

    async def recover(self) -> Recovery:
        """The services an earlier run left; unfinished ones and unused secrets removed."""
        return await recover_services(
            self._engine, self._config.owner_labels(), self.remove_service
        )

    async def prepare(self) -> None:
        """The swarm backend needs a swarm manager: say so plainly, not at each launch.

        Raises:
            BackendUnfit: the engine is in no swarm, or is a worker.
        """
        try:
            await swarm.swarm_inspect(self._engine)
        except NodeNotInSwarm as exc:
            raise BackendUnfit(
                f'engine.backend is "swarm" but the engine at {self._engine.endpoint} is no '
                f'swarm manager ({exc}); run `docker swarm init` there, or set backend = "docker"'
            ) from exc

    async def watch_exits(
        self, table: Table, *, task_status: Started[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep ``table`` true from the services' tasks, polled, for ever (taskexits.py)."""
        watcher = TaskWatcher(
            self._engine,
            table,
            self._config.owner_labels(),
            interval=self._swarm.poll_interval,
            ended=self._task_ended,
        )
        await watcher.run(task_status=task_status)

    async def wait(self, container: str, container_id: str) -> int | None:
        """Block until the service's task with ``container_id`` ended; its exit code.

        None when the service or the task is gone. Polled: no event covers a task.
        """
        while True:
            tasks = [
                TaskStatus.of(t) for t in await swarm.task_list(self._engine, service=container)
            ]
            task = next((t for t in tasks if t.container_id == container_id), None)
            if task is None:
                return None
            if task.finished:
                self._task_ended(container)
                return -1 if task.exit_code is None else task.exit_code
            await anyio.sleep(self._swarm.poll_interval)

    @contextlib.asynccontextmanager
    async def logs(
        self, container: str, container_id: str | None, *, follow: bool, tail: int | None
    ) -> AsyncIterator[AsyncIterator[streams.Line]]:
        """The service's output, line by line, from whichever node runs it.

        Raises:
            NoSuchService: the service is gone.
        """
        del container_id
        async with swarm.service_logs(
            self._engine, container, follow=follow, tail=tail, tty=False
        ) as frames:
            yield streams.lines(frames)

    def _task_ended(self, service: str) -> None:
        """The service's task has ended: its output relay ends once late lines are in."""
        if self._output is not None:
            self._output.task_ended(service)

    def follow(self, container: str) -> None:
        """Relay a running service's output found at daemon start (re-adoption)."""
        if self._output is not None:
            self._output.resume(container)
