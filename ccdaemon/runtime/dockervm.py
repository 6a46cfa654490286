"""Fabric's DockerVM: start, stop and wait for one chaincode container.

``start`` is Fabric's DockerVM.Start, step for step (reference/fabric-launcher.md 1.3 and
2.3): clear any container of the name, create, build the image if it is missing and
create again, attach before start when output is wanted, upload the TLS files, start.
Where ccdaemon does better than Fabric, it says so at the step.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ccdaemon.engine import (
    ContainerAlreadyExists,
    ContainerNotRunning,
    EngineError,
    EngineUnavailable,
    NoSuchContainer,
    NoSuchImage,
    archive,
    containers,
    streams,
)
from ccdaemon.runtime.errors import StartupTimeout

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence

    from anyio.abc import TaskGroup, TaskStatus

    from ccdaemon.engine import Engine

log = logging.getLogger(__name__)

#: Fabric's floor for chaincode.startuptimeout.
MIN_STARTUP_TIMEOUT = 5.0
#: Cleanup after a failed or cancelled launch gets this long, shielded from cancellation.
CLEANUP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything the engine needs to run one chaincode container."""

    container: str
    image: str
    args: Sequence[str]
    env: Sequence[str]
    files: Mapping[str, bytes] = field(repr=False)  # holds the client key: never in a repr
    host_config: Mapping[str, Any]
    labels: Mapping[str, str]

    def create_body(self, *, attach: bool) -> dict[str, Any]:
        """The create request, as Fabric's createContainer sends it, plus the labels."""
        return {
            "Image": self.image,
            "Cmd": list(self.args),
            "Env": list(self.env),
            "Labels": dict(self.labels),
            "AttachStdout": attach,
            "AttachStderr": attach,
            "HostConfig": dict(self.host_config),
        }


async def start(  # noqa: PLR0913 -- the launch's parts, each named
    engine: Engine,
    spec: LaunchSpec,
    *,
    build: Callable[[], Awaitable[object]],
    startup_timeout: float = 300.0,
    output: Callable[[streams.Line], object] | None = None,
    task_group: TaskGroup | None = None,
    phases: MutableMapping[str, float] | None = None,
    name_free: bool = False,
) -> str:
    """Launch the chaincode container; return its id once it has started.

    Args:
        engine: the engine.
        spec: names, command, environment, TLS files, HostConfig and labels.
        build: makes ``spec.image`` when the engine lacks it (two-stage build, coalesced
            by the caller); it runs at most once.
        startup_timeout: seconds for the whole launch, build included (at least 5, as
            Fabric's chaincode.startuptimeout).
        output: called with each line the container writes, when its output is wanted
            (Fabric's vm.docker.attachStdout); needs ``task_group``, which owns the
            attached stream for the container's life.
        task_group: the group that owns the output stream.
        phases: receives the seconds each step took (remove, create, build, attach,
            upload, start), for the launch's answer and metrics.
        name_free: the caller knows no container has this name (it removed the last
            one, or never made one): skip the clearing remove.

    Raises:
        StartupTimeout: the launch took longer than ``startup_timeout``.
        EngineError: the engine refused a step (BuildFailed from ``build`` included).
        EngineUnavailable: the engine could not be reached.

    Whatever made it into the engine is removed when the launch fails or is cancelled.
    """
    if output is not None and task_group is None:
        raise ValueError("output needs a task group to own the attached stream")
    limit = max(startup_timeout, MIN_STARTUP_TIMEOUT)
    try:
        with anyio.fail_after(limit):
            return await _start(
                engine,
                spec,
                build,
                output=output,
                task_group=task_group,
                phase=Phases(phases),
                name_free=name_free,
            )
    except TimeoutError as exc:
        raise StartupTimeout(
            f"chaincode container {spec.container} did not start within {limit:g} s"
        ) from exc


async def _start(  # noqa: PLR0913 -- start's parts, passed on
    engine: Engine,
    spec: LaunchSpec,
    build: Callable[[], Awaitable[object]],
    *,
    output: Callable[[streams.Line], object] | None,
    task_group: TaskGroup | None,
    phase: Phases,
    name_free: bool,
) -> str:
    # 4. Clear the name. A forced remove alone reaches the state Fabric's stop t=0, kill
    # and forced remove reach (the container is killed and gone), in one call not three;
    # and none when the caller knows the name is free (a taken name is then cleared
    # when create reports it, so the end state is the same).
    if not name_free:
        with phase("remove"):
            await remove_quietly(engine, spec.container)
    body = spec.create_body(attach=output is not None)
    try:
        try:
            container_id = await _create(engine, spec, body, build, phase)
        except ContainerAlreadyExists:
            log.info("container %s exists after all; removing it first", spec.container)
            with phase("remove"):
                await remove_quietly(engine, spec.container)
            container_id = await _create(engine, spec, body, build, phase)
        # 6. Attach before start, so no output is lost.
        if output is not None and task_group is not None:
            with phase("attach"):
                await task_group.start(_relay, engine, spec.container, output)
        # 7. Upload the TLS files, as one gzip-compressed tar at /.
        if spec.files:
            with phase("upload"), whole():
                await containers.put_archive(engine, spec.container, "/", archive.targz(spec.files))
        # 8. Start.
        with phase("start"), whole():
            await containers.start(engine, spec.container)
    except BaseException:
        # A failed or cancelled launch removes what it made (shielded, with its own limit).
        with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True):
            await remove_quietly(engine, spec.container)
        raise
    return container_id


async def _create(
    engine: Engine,
    spec: LaunchSpec,
    body: Mapping[str, Any],
    build: Callable[[], Awaitable[object]],
    phase: Phases,
) -> str:
    """5. Create; on a missing image build it, then create again."""
    container_id = ""
    try:
        with phase("create"), whole():
            container_id = await containers.create(engine, spec.container, body)
    except NoSuchImage:
        log.info("image %s is missing; building it", spec.image)
        with phase("build"):
            await build()
        with phase("create"), whole():
            container_id = await containers.create(engine, spec.container, body)
    return container_id


def whole() -> anyio.CancelScope:
    """A step the engine finishes once it is sent, so cancellation waits for its answer.

    Cut off, its outcome would be unknown: a create the engine completes after the
    cleanup's remove would stay. Control calls have their own timeout, so the wait is
    bounded.
    """
    return anyio.CancelScope(shield=True)


class Phases:
    """Adds the seconds each step takes to a mapping (create runs twice after a build)."""

    __slots__ = ("_into",)

    def __init__(self, into: MutableMapping[str, float] | None) -> None:
        self._into = into

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time the step ``name``."""
        if self._into is None:
            yield
            return
        began = time.perf_counter()
        try:
            yield
        finally:
            self._into[name] = self._into.get(name, 0.0) + time.perf_counter() - began


async def _relay(
    engine: Engine,
    name: str,
    output: Callable[[streams.Line], object],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Pass the container's output on line by line until it closes its output.

    A broken stream ends the relay with a warning rather than failing its task group:
    the container's fate is the supervisor's to report, not the log relay's.
    """
    async with containers.attach(engine, name, tty=False) as frames:
        task_status.started()
        try:
            async for line in streams.lines(frames):
                output(line)
        except EngineUnavailable as exc:
            log.warning("output stream of container %s broke: %s", name, exc)
            return
    log.debug("container %s has closed its output", name)


async def follow(
    engine: Engine, name: str, output: Callable[[streams.Line], object], tail: int
) -> None:
    """Pass on a running container's output, its last ``tail`` lines first, until it ends.

    For containers launched before the daemon started: attaching would replay all their
    output, so this reads the logs instead, followed. Each line starts with the engine's
    time stamp (``timestamps=1``), so ``output`` can tell old lines from new.
    """
    try:
        async with containers.logs(engine, name, follow=True, tail=tail, timestamps=True) as frames:
            async for line in streams.lines(frames):
                output(line)
    except (EngineUnavailable, NoSuchContainer) as exc:
        log.warning("output of container %s is no longer followed: %s", name, exc)


async def remove_quietly(engine: Engine, name: str) -> None:
    """Remove the container by force; a container that is already gone is no error."""
    with contextlib.suppress(NoSuchContainer):
        await containers.remove(engine, name, force=True)


async def stop(
    engine: Engine, name: str, *, grace: int = 0, dontkill: bool = False, dontremove: bool = False
) -> int | None:
    """Fabric's stopInternal: stop with ``grace`` seconds, kill, remove by force.

    Returns the container's exit code (read once it no longer runs, before the remove),
    or None when there was no container. Only errors that mean "already so" are ignored
    (no such container, not running); any other error of a step is raised after the
    remaining steps have run.

    Raises:
        EngineError: a step failed for another reason.
        EngineUnavailable: the engine could not be reached.
    """
    failure: EngineError | None = None
    exit_code: int | None = None

    async def read_exit_code() -> None:
        nonlocal exit_code
        exit_code = await containers.wait(engine, name)  # at once: it is not running

    steps: list[Callable[[], Awaitable[None]]] = [
        lambda: containers.stop(engine, name, grace=grace)
    ]
    if not dontkill:
        steps.append(lambda: containers.kill(engine, name))
    steps.append(read_exit_code)
    if not dontremove:
        steps.append(lambda: containers.remove(engine, name, force=True))
    for step in steps:
        try:
            await step()
        except (NoSuchContainer, ContainerNotRunning):
            pass
        except EngineError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return exit_code


async def wait(engine: Engine, name: str) -> int:
    """Block until the container exits and return its exit code (no timeout).

    Raises:
        NoSuchContainer: there is no such container.
    """
    return await containers.wait(engine, name)
