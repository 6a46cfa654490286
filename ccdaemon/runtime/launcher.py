"""Fabric's ContainerRuntime.Start and Stop: from a chaincode id to a running container.

It names the container and image as Fabric does, makes the TLS credentials (issued by
the chaincode CA, or the caller's, checked), builds the LaunchConfig and HostConfig, and
runs DockerVM.start through the launch queue, so work for one chaincode keeps its order
and a missing image is built once from the code package.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from ccdaemon.engine import NoSuchContainer, NoSuchImage, containers, images, streams
from ccdaemon.runtime import dockervm
from ccdaemon.runtime.builder import BuildRequest, build_image
from ccdaemon.runtime.dockervm import LaunchSpec
from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.hostconfig import (
    CCID_LABEL,
    INSTANCE_LABEL,
    MANAGED_LABEL,
    ROLE_LABEL,
    HostConfig,
)
from ccdaemon.runtime.launchconfig import ChaincodeLogging, LaunchConfig, Layout, launch_config
from ccdaemon.runtime.naming import names
from ccdaemon.runtime.output import Output
from ccdaemon.runtime.platforms import GolangBuild, PlatformImages, platform_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from anyio.abc import TaskGroup

    from ccdaemon.engine import Engine
    from ccdaemon.launchqueue import LaunchQueue, Slot
    from ccdaemon.runtime.certs import ClientCredentials
    from ccdaemon.runtime.package import ChaincodePackage


#: Container states of a chaincode that no longer runs (``created``: never started).
_ENDED = frozenset({"exited", "dead", "created"})


class Issuer(Protocol):
    """Issues each chaincode's client certificate: the chaincode CA (runtime/certs.py)."""

    def issue(self) -> ClientCredentials:
        """A fresh client certificate, key and root."""
        ...


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """The peer-wide settings Fabric reads from core.yaml (peer.*, vm.*, chaincode.*)."""

    network_id: str = ""
    peer_id: str = ""
    #: peer.localMspId: the MSP id a chaincode gets when its request names none.
    mspid: str = ""
    host_config: HostConfig = field(default_factory=HostConfig)
    startup_timeout: float = 300.0
    layout: Layout = "2.x"
    logging: ChaincodeLogging = field(default_factory=ChaincodeLogging)
    fabric_version: str = "2.5.0"
    #: vm.docker.attachStdout: relay each chaincode's output to the logger
    #: ``peer.chaincode.<container>`` and keep its last lines.
    attach_stdout: bool = False
    #: How many lines of each chaincode's output are kept.
    output_lines: int = 200
    #: The ``ccdaemon.instance`` label value: which daemon owns a container or image.
    instance: str = "default"
    #: Builder and runtime image per language (core.yaml chaincode.builder, *.runtime).
    images: PlatformImages = field(default_factory=PlatformImages)
    #: How Go chaincode is built (chaincode.golang.dynamicLink, link flags, Go proxy).
    golang: GolangBuild = field(default_factory=GolangBuild)

    def owner_labels(self) -> dict[str, str]:
        """The labels that mark a container or image as this daemon's."""
        return {MANAGED_LABEL: "true", INSTANCE_LABEL: self.instance}

    def labels(self, ccid: str) -> dict[str, str]:
        """The labels of everything made for ``ccid``."""
        return {**self.owner_labels(), CCID_LABEL: ccid}


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """One chaincode to launch. ``tls`` None with ``tls_enabled`` issues credentials.

    ``image``, when given, is run instead of the chaincode's own image: an image this
    daemon built earlier (an external builder's build at install), never any other.
    """

    ccid: str
    cc_type: str
    peer_address: str
    mspid: str = ""
    tls: ClientCredentials | None = None
    tls_enabled: bool = True
    package: ChaincodePackage | None = None
    image: str | None = None


@dataclass(frozen=True, slots=True)
class Launched:
    """What a launch made, and how long each step took (seconds; ``queue`` is the wait)."""

    container: str
    container_id: str
    image: str
    built: bool = False
    timings: dict[str, float] = field(default_factory=dict)


class Launcher:
    """Launches and stops chaincode containers on one engine, through one queue.

    ``host_config``, when given, is the engine HostConfig of every chaincode (the daemon's
    policy applied to ``config.host_config``). With ``attach_stdout``, ``task_group`` owns
    each chaincode's output relay for as long as the container writes; the relays end by
    themselves when their container stops.
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
    ) -> None:
        if config.attach_stdout and task_group is None:
            raise ValueError("attach_stdout needs a task group to own the output relays")
        self._engine = engine
        self._queue = queue
        self._ca = ca
        self._config = config
        self._group = task_group
        # Fixed per daemon: the policy's limits merged over hostConfig, made once.
        self._host_config = dict(host_config or config.host_config.to_engine())
        self._output = Output(config.output_lines)

    def output(self, ccid: str) -> list[str]:
        """The last lines the chaincode wrote (empty unless ``attach_stdout``)."""
        return self._output.kept(self.names(ccid)[0])

    def names(self, ccid: str) -> tuple[str, str]:
        """The container and image names of ``ccid`` on this peer."""
        got = names(ccid, network_id=self._config.network_id, peer_id=self._config.peer_id)
        return got.container, got.image

    async def launch(
        self,
        request: LaunchRequest,
        *,
        progress: Callable[[str], object] | None = None,
        name_free: bool = False,
    ) -> Launched:
        """Launch the chaincode: everything is checked before the engine sees a call.

        ``name_free``: the caller knows no container has the name (see dockervm.start).

        Raises:
            InvalidRequest: a value breaks Fabric's rules (the field names which), or
                ``request.image`` is missing or not this daemon's (field ``image``).
            NoSuchImage: the image is missing and no package was given to build it from.
            BuildFailed, StartupTimeout, EngineError, EngineUnavailable: from the steps.
        """
        container, image = self.names(request.ccid)
        # Checked now with the caller's TLS (or none); issued credentials come later.
        config = self._launch_config(request, request.tls)
        issue = request.tls is None and request.tls_enabled
        build_request = (
            None
            if request.package is None
            else self._build_request(request.ccid, request.package, image)
        )
        if request.image is not None:
            await self._check_owned(request.image)
            image = request.image
        spec = LaunchSpec(
            container=container,
            image=image,
            args=config.args,
            env=config.env,
            files=config.files,
            host_config=self._host_config,
            labels=self._config.labels(request.ccid),
        )
        timings: dict[str, float] = {}
        queued = time.perf_counter()

        async def work(slot: Slot) -> str:
            timings["queue"] = time.perf_counter() - queued
            ready = spec
            if issue:
                # Issued in the engine slot, not on arrival: a burst of launches then holds
                # at most engine_limit keys and TLS archives at once, not one per request.
                issued = self._launch_config(request, self._ca.issue())
                ready = replace(spec, env=issued.env, files=issued.files)

            async def build() -> None:
                if build_request is None:
                    raise NoSuchImage(
                        404, f"image {image} is missing and no code package was given to build it"
                    )
                await slot.build(
                    image, lambda: build_image(self._engine, build_request, progress=progress)
                )

            return await self._start(ready, build=build, phases=timings, name_free=name_free)

        container_id = await self._queue.run(container, work)
        timings["total"] = time.perf_counter() - queued
        return Launched(
            container=container,
            container_id=container_id,
            image=image,
            built="build" in timings,
            timings=timings,
        )

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
            output=self._output.relay(spec.container) if self._config.attach_stdout else None,
            task_group=self._group,
            phases=phases,
            name_free=name_free,
        )

    async def ended(self) -> list[tuple[str, str]]:
        """This daemon's chaincodes whose container no longer runs: (ccid, container).

        Exited, dead, or never started; a builder container is its build's own.
        """
        found = []
        for item in await containers.list_(self._engine, labels=self._config.owner_labels()):
            labels = item.get("Labels") or {}
            ccid = labels.get(CCID_LABEL)
            if ccid is None or labels.get(ROLE_LABEL) == "builder":
                continue
            if item.get("State") in _ENDED:
                found.append((ccid, str((item.get("Names") or ["/"])[0]).lstrip("/")))
        return found

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

    def _launch_config(self, request: LaunchRequest, tls: ClientCredentials | None) -> LaunchConfig:
        return launch_config(
            ccid=request.ccid,
            cc_type=request.cc_type,
            peer_address=request.peer_address,
            tls=tls,
            mspid=request.mspid or self._config.mspid,
            layout=self._config.layout,
            logging=self._config.logging,
        )

    async def stop(
        self, ccid: str, *, grace: int = 0, dontkill: bool = False, dontremove: bool = False
    ) -> int | None:
        """Fabric's ContainerRuntime.Stop: stop with ``grace``, kill, remove, in its turn.

        Returns the container's exit code, or None when it had no container.
        """
        container, _ = self.names(ccid)

        async def work(_: Slot) -> int | None:
            return await self._stop(
                container, grace=grace, dontkill=dontkill, dontremove=dontremove
            )

        return await self._queue.run(container, work)

    async def _stop(
        self, container: str, *, grace: int, dontkill: bool, dontremove: bool
    ) -> int | None:
        """Stop and remove the chaincode's container (in its queue slot); its exit code."""
        return await dockervm.stop(
            self._engine, container, grace=grace, dontkill=dontkill, dontremove=dontremove
        )

    async def build(
        self,
        ccid: str,
        package: ChaincodePackage,
        *,
        progress: Callable[[str], object] | None = None,
    ) -> tuple[str, bool]:
        """Make the image of ``ccid`` from ``package`` unless the engine has it (build at install).

        Returns the image name and whether it was built now. Builds of one image share
        the queue's one build, launches' included.
        """
        _, image = self.names(ccid)
        request = self._build_request(ccid, package, image)
        try:
            await images.inspect(self._engine, image)
        except NoSuchImage:
            await self._queue.build_once(
                image, lambda: build_image(self._engine, request, progress=progress)
            )
            return image, True
        return image, False

    async def built(self, ccid: str) -> str | None:
        """The image of ``ccid`` if the engine has it and this daemon built it, else None."""
        _, image = self.names(ccid)
        try:
            await self._check_owned(image)
        except InvalidRequest:
            return None
        return image

    def follow(self, container: str) -> None:
        """Relay a running container's output found at daemon start (re-adoption).

        The relay reads the kept number of past lines first, which refill the kept tail
        (an earlier run logged them), in the launcher's task group.
        """
        if not self._config.attach_stdout or self._group is None:
            return
        self._group.start_soon(
            dockervm.follow,
            self._engine,
            container,
            self._output.resume(container),
            self._config.output_lines,
        )

    async def _check_owned(self, image: str) -> None:
        """Refuse an image this daemon did not build: no request may run an arbitrary image.

        Raises:
            InvalidRequest: the image is missing or lacks this daemon's labels (``image``).
        """
        try:
            found = await images.inspect(self._engine, image)
        except NoSuchImage:
            raise InvalidRequest("image", f"no image {image!r} on the engine") from None
        labels = (found.get("Config") or {}).get("Labels") or {}
        wanted = self._config.owner_labels()
        if any(labels.get(key) != value for key, value in wanted.items()):
            carried = ", ".join(f"{key}={value}" for key, value in sorted(wanted.items()))
            raise InvalidRequest(
                "image", f"{image!r} was not built by this daemon (it must carry {carried})"
            )

    def _build_request(self, ccid: str, package: ChaincodePackage, image: str) -> BuildRequest:
        # Checked now, not when the build happens: a bad type or path never reaches the engine.
        platform = platform_for(package.type, self._config.images, self._config.golang)
        platform.build_script(package.path)
        return BuildRequest(
            ccid=ccid,
            image=image,
            platform=platform,
            code_package=package.code,
            path=package.path,
            fabric_version=self._config.fabric_version,
            labels={INSTANCE_LABEL: self._config.instance},
        )
