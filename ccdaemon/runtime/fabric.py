"""What every backend shares of a launch: Fabric's names, configuration, TLS and images.

``Fabric`` turns a launch request into a ``LaunchSpec`` as Fabric's ContainerRuntime
does: it names the container and image, makes the TLS credentials (issued by the
chaincode CA, or the caller's, checked), builds the LaunchConfig and HostConfig, and
runs the backend's own start step through the launch queue, so work for one chaincode
keeps its order and a missing image is built once from the code package. Each backend
(runtime/launcher.py, runtime/swarmlauncher.py) holds one and gives it its steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from ccdaemon.engine import NoSuchImage, images
from ccdaemon.runtime.buildcache import BuildCaches
from ccdaemon.runtime.builder import BuildRequest, build_image
from ccdaemon.runtime.dockervm import LaunchSpec
from ccdaemon.runtime.errors import InvalidRequest
from ccdaemon.runtime.hostconfig import INSTANCE_LABEL
from ccdaemon.runtime.launchconfig import LaunchConfig, launch_config
from ccdaemon.runtime.naming import names
from ccdaemon.runtime.output import Output
from ccdaemon.runtime.platforms import platform_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from anyio.abc import TaskGroup

    from ccdaemon.engine import Engine
    from ccdaemon.launchqueue import LaunchQueue, Slot
    from ccdaemon.runtime.certs import ClientCredentials
    from ccdaemon.runtime.package import ChaincodePackage
    from ccdaemon.runtime.runtimeconfig import Issuer, RuntimeConfig


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


class StartStep(Protocol):
    """A backend's start, in the chaincode's queue turn: the id of what now runs."""

    def __call__(
        self,
        spec: LaunchSpec,
        *,
        build: Callable[[], Awaitable[None]],
        phases: dict[str, float],
        name_free: bool,
    ) -> Awaitable[str]:
        """Run ``spec``; ``build`` makes a missing image; ``phases`` gets each step's time."""
        ...


class StopStep(Protocol):
    """A backend's stop, in the chaincode's queue turn: the exit code, None if none ran."""

    def __call__(
        self, container: str, *, grace: int, dontkill: bool, dontremove: bool
    ) -> Awaitable[int | None]:
        """Stop (and unless ``dontremove``, remove) ``container``."""
        ...


class Fabric:
    """Fabric's side of launches on one engine, through one queue.

    ``host_config``, when given, is the engine HostConfig of every chaincode (the daemon's
    policy applied to ``config.host_config``). ``rename`` turns Fabric's container name
    into the backend's (a swarm service's DNS label). With ``attach_stdout``,
    ``task_group`` owns each chaincode's output relay. ``build_cache_size`` bounds the Go
    build cache in bytes (runtime/buildcache.py); 0, the default, builds without one.
    """

    def __init__(  # noqa: PLR0913 -- a launch's collaborators, each named
        self,
        engine: Engine,
        queue: LaunchQueue,
        ca: Issuer,
        config: RuntimeConfig,
        *,
        task_group: TaskGroup | None = None,
        host_config: Mapping[str, Any] | None = None,
        rename: Callable[[str], str] = str,
        build_cache_size: int = 0,
    ) -> None:
        if config.attach_stdout and task_group is None:
            raise ValueError("attach_stdout needs a task group to own the output relays")
        self.engine = engine
        self.queue = queue
        self.config = config
        self.group = task_group
        # Fixed per daemon: the policy's limits merged over hostConfig, made once.
        self.host_config = dict(host_config or config.host_config.to_engine())
        self.output = Output(config.output_lines)
        self._ca = ca
        self._rename = rename
        #: The daemon's Go build cache volumes.
        self.caches = BuildCaches(engine, instance=config.instance, limit=build_cache_size)

    def names(self, ccid: str) -> tuple[str, str]:
        """The container (or service) and image names of ``ccid`` on this peer."""
        got = names(ccid, network_id=self.config.network_id, peer_id=self.config.peer_id)
        return self._rename(got.container), got.image

    def kept(self, ccid: str) -> list[str]:
        """The last lines the chaincode wrote (empty unless ``attach_stdout``)."""
        return self.output.kept(self.names(ccid)[0])

    async def launch(
        self,
        request: LaunchRequest,
        start: StartStep,
        *,
        progress: Callable[[str], object] | None = None,
        name_free: bool = False,
    ) -> Launched:
        """Launch the chaincode with the backend's ``start``, in the chaincode's queue turn.

        Everything is checked before the engine sees a call. ``name_free``: the caller
        knows nothing has the name (see dockervm.start).

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
            host_config=self.host_config,
            labels=self.config.labels(request.ccid),
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
                    image, lambda: build_image(self.engine, build_request, progress=progress)
                )

            return await start(ready, build=build, phases=timings, name_free=name_free)

        container_id = await self.queue.run(container, work)
        timings["total"] = time.perf_counter() - queued
        return Launched(
            container=container,
            container_id=container_id,
            image=image,
            built="build" in timings,
            timings=timings,
        )

    async def stop(
        self,
        ccid: str,
        stop: StopStep,
        *,
        grace: int = 0,
        dontkill: bool = False,
        dontremove: bool = False,
    ) -> int | None:
        """Fabric's ContainerRuntime.Stop with the backend's ``stop``, in the chaincode's turn.

        Returns the exit code, or None when nothing of the chaincode ran.
        """
        container, _ = self.names(ccid)

        async def work(_: Slot) -> int | None:
            return await stop(container, grace=grace, dontkill=dontkill, dontremove=dontremove)

        return await self.queue.run(container, work)

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
            await images.inspect(self.engine, image)
        except NoSuchImage:
            await self.queue.build_once(
                image, lambda: build_image(self.engine, request, progress=progress)
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

    async def _check_owned(self, image: str) -> None:
        """Refuse an image this daemon did not build: no request may run an arbitrary image.

        Raises:
            InvalidRequest: the image is missing or lacks this daemon's labels (``image``).
        """
        try:
            found = await images.inspect(self.engine, image)
        except NoSuchImage:
            raise InvalidRequest("image", f"no image {image!r} on the engine") from None
        labels = (found.get("Config") or {}).get("Labels") or {}
        wanted = self.config.owner_labels()
        if any(labels.get(key) != value for key, value in wanted.items()):
            carried = ", ".join(f"{key}={value}" for key, value in sorted(wanted.items()))
            raise InvalidRequest(
                "image", f"{image!r} was not built by this daemon (it must carry {carried})"
            )

    def _launch_config(self, request: LaunchRequest, tls: ClientCredentials | None) -> LaunchConfig:
        return launch_config(
            ccid=request.ccid,
            cc_type=request.cc_type,
            peer_address=request.peer_address,
            tls=tls,
            mspid=request.mspid or self.config.mspid,
            layout=self.config.layout,
            logging=self.config.logging,
        )

    def _build_request(self, ccid: str, package: ChaincodePackage, image: str) -> BuildRequest:
        # Checked now, not when the build happens: a bad type or path never reaches the engine.
        platform = platform_for(package.type, self.config.images, self.config.golang)
        platform.build_script(package.path)
        return BuildRequest(
            ccid=ccid,
            image=image,
            platform=platform,
            code_package=package.code,
            path=package.path,
            fabric_version=self.config.fabric_version,
            labels={INSTANCE_LABEL: self.config.instance},
            cache=self.caches,
        )
