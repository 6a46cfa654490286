"""The swarm backend: each chaincode a one-replica Docker Swarm service.

Requests, names, credentials and the launch queue are the Launcher's; only the engine
steps differ (docs/swarm.md):

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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio

from ccdaemon.engine import (
    EngineUnavailable,
    NoSuchImage,
    NoSuchSecret,
    NoSuchService,
    ServiceAlreadyExists,
    images,
    streams,
    swarm,
)
from ccdaemon.engine.swarm import TaskStatus
from ccdaemon.runtime.dockervm import CLEANUP_TIMEOUT, MIN_STARTUP_TIMEOUT, Phases, whole
from ccdaemon.runtime.errors import StartupTimeout, TaskFailed
from ccdaemon.runtime.hostconfig import CCID_LABEL
from ccdaemon.runtime.launcher import Launcher
from ccdaemon.runtime.naming import service_name
from ccdaemon.runtime.swarmservice import push, secret_mount, service_body

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from anyio.abc import TaskGroup

    from ccdaemon.engine import Engine
    from ccdaemon.launchqueue import LaunchQueue
    from ccdaemon.runtime.dockervm import LaunchSpec
    from ccdaemon.runtime.launcher import Issuer, RuntimeConfig

log = logging.getLogger(__name__)

#: Seconds a relay keeps reading after its task ended: lines still on their way.
_RELAY_LINGER = 2.0
#: A task that failed this way ran: its container started and exited.
_RAN = "task: non-zero exit"
#: Task states before its container runs; any other unfinished state means it runs.
_PENDING = frozenset(
    {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)


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


class SwarmLauncher(Launcher):
    """Launches and stops chaincodes as swarm services on a manager, through one queue.

    ``names()`` gives the service's name (a DNS label) where the Launcher gives the
    container's; everything the daemon reports as the chaincode's container is that
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
    ) -> None:
        super().__init__(engine, queue, ca, config, task_group=task_group, host_config=host_config)
        self._swarm = swarm_config
        #: (image, id) -> its name at the registry, by digest: pushed once per daemon run.
        self._pushed: dict[tuple[str, str], str] = {}
        #: The output relay of each service, ended when the service is stopped.
        self._relays: dict[str, anyio.CancelScope] = {}

    def names(self, ccid: str) -> tuple[str, str]:
        """The service and image names of ``ccid`` on this peer."""
        container, image = super().names(ccid)
        return service_name(container), image

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
            body = service_body(spec, mounts, self._host_config, self._swarm)
            try:
                with phase("create"), whole():
                    await swarm.service_create(self._engine, body)
            except ServiceAlreadyExists:
                log.info("service %s exists after all; removing it first", service)
                with phase("remove"):
                    await self.remove_service(service, ccid, keep={m.secret_name for m in mounts})
                with phase("create"), whole():
                    await swarm.service_create(self._engine, body)
            if self._config.attach_stdout and self._group is not None:
                self._group.start_soon(self._relay_service, service)
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

    async def _task(self, service: str) -> TaskStatus | None:
        """The service's one task (restart none: there is never a second), if any yet."""
        tasks = [TaskStatus.of(t) for t in await swarm.task_list(self._engine, service=service)]
        return tasks[-1] if tasks else None

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

    async def remove_service(
        self, service: str, ccid: str, *, keep: frozenset[str] | set[str] = frozenset()
    ) -> None:
        """Remove the service, then the secrets of ``ccid`` but ``keep``.

        The secrets go second: the engine refuses to remove a secret a service uses.
        """
        relay = self._relays.pop(service, None)
        if relay is not None:
            relay.cancel()
        with contextlib.suppress(NoSuchService):
            await swarm.service_remove(self._engine, service)
        labels = {**self._config.owner_labels(), CCID_LABEL: ccid}
        for secret in await swarm.secret_list(self._engine, labels=labels):
            if secret["Spec"]["Name"] in keep:
                continue
            with contextlib.suppress(NoSuchSecret):
                await swarm.secret_remove(self._engine, str(secret["ID"]))

    async def ended(self) -> list[tuple[str, str]]:
        """This daemon's chaincodes whose task has ended: (ccid, service)."""
        found = []
        for service in await swarm.service_list(self._engine, labels=self._config.owner_labels()):
            name = str(service["Spec"]["Name"])
            ccid = (service["Spec"].get("Labels") or {}).get(CCID_LABEL)
            task = await self._task(name)
            if ccid is not None and (task is None or task.finished):
                found.append((ccid, name))
        return found

    async def remove_orphan_secrets(self) -> list[str]:
        """Remove this daemon's secrets that no service uses (a launch cut short); names."""
        owner = self._config.owner_labels()
        used = {
            str(ref.get("SecretID"))
            for service in await swarm.service_list(self._engine, labels=owner)
            for ref in service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Secrets") or []
        }
        removed = []
        for secret in await swarm.secret_list(self._engine, labels=owner):
            if str(secret["ID"]) in used:
                continue
            with contextlib.suppress(NoSuchSecret):
                await swarm.secret_remove(self._engine, str(secret["ID"]))
                removed.append(str(secret["Spec"]["Name"]))
        return removed

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
                self.task_ended(container)
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

    def follow(self, container: str) -> None:
        """Relay a running service's output found at daemon start (re-adoption)."""
        if self._config.attach_stdout and self._group is not None:
            self._group.start_soon(self._resume_service, container)

    def task_ended(self, service: str) -> None:
        """The service's task has ended: end its output relay once late lines are in.

        A followed service log never ends by itself, not even when the service is removed.
        """
        relay = self._relays.get(service)
        if relay is not None:
            relay.deadline = min(relay.deadline, anyio.current_time() + _RELAY_LINGER)

    async def _relay_service(self, service: str) -> None:
        """Pass a launched service's output on until its task ended or it is removed."""
        await self._follow_service(service, self._output.relay(service), tail=None, stamped=False)

    async def _resume_service(self, service: str) -> None:
        """The same for a service found running at start: its old lines refill the tail."""
        relay = self._output.resume(service)
        await self._follow_service(service, relay, tail=self._config.output_lines, stamped=True)

    async def _follow_service(
        self,
        service: str,
        relay: Callable[[streams.Line], None],
        *,
        tail: int | None,
        stamped: bool,
    ) -> None:
        """Follow the service's logs into ``relay`` until ``task_ended`` or ``remove_service``.

        A followed service log does not end when the task does, nor when the service is
        removed, so those two end it. ``stamped`` asks for the engine's time stamps.
        """
        with anyio.CancelScope() as scope:
            self._relays[service] = scope
            try:
                async with swarm.service_logs(
                    self._engine,
                    service,
                    follow=True,
                    tail=tail,
                    tty=False,
                    timestamps=stamped,
                ) as frames:
                    async for line in streams.lines(frames):
                        relay(line)
            except (EngineUnavailable, NoSuchService) as exc:
                log.warning("output of service %s is no longer followed: %s", service, exc)
            finally:
                if self._relays.get(service) is scope:
                    del self._relays[service]
