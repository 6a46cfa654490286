"""Fabric's ContainerRuntime.Start and Stop: from a chaincode id to a running container.

It names the container and image as Fabric does, makes the TLS credentials (issued by
the chaincode CA, or the caller's, checked), builds the LaunchConfig and HostConfig, and
runs DockerVM.start through the launch queue, so work for one chaincode keeps its order
and a missing image is built once from the code package.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccdaemon.engine import NoSuchImage
from ccdaemon.runtime import dockervm
from ccdaemon.runtime.builder import BuildRequest, build_image
from ccdaemon.runtime.dockervm import LaunchSpec
from ccdaemon.runtime.hostconfig import CCID_LABEL, MANAGED_LABEL, HostConfig
from ccdaemon.runtime.launchconfig import ChaincodeLogging, Layout, launch_config
from ccdaemon.runtime.naming import names
from ccdaemon.runtime.platforms import platform_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio.abc import TaskGroup

    from ccdaemon.engine import Engine, streams
    from ccdaemon.launchqueue import LaunchQueue, Slot
    from ccdaemon.runtime.certs import ChaincodeCA, ClientCredentials
    from ccdaemon.runtime.package import ChaincodePackage


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """The peer-wide settings Fabric reads from core.yaml (peer.*, vm.*, chaincode.*)."""

    network_id: str = ""
    peer_id: str = ""
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


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """One chaincode to launch. ``tls`` None with ``tls_enabled`` issues credentials."""

    ccid: str
    cc_type: str
    peer_address: str
    mspid: str = ""
    tls: ClientCredentials | None = None
    tls_enabled: bool = True
    package: ChaincodePackage | None = None


@dataclass(frozen=True, slots=True)
class Launched:
    """What a launch made."""

    container: str
    container_id: str
    image: str


class Launcher:
    """Launches and stops chaincode containers on one engine, through one queue.

    With ``attach_stdout``, ``task_group`` owns each chaincode's output relay for as long
    as the container writes; the relays end by themselves when their container stops.
    """

    def __init__(
        self,
        engine: Engine,
        queue: LaunchQueue,
        ca: ChaincodeCA,
        config: RuntimeConfig,
        *,
        task_group: TaskGroup | None = None,
    ) -> None:
        if config.attach_stdout and task_group is None:
            raise ValueError("attach_stdout needs a task group to own the output relays")
        self._engine = engine
        self._queue = queue
        self._ca = ca
        self._config = config
        self._group = task_group
        self._output: dict[str, collections.deque[str]] = {}

    def output(self, ccid: str) -> list[str]:
        """The last lines the chaincode wrote (empty unless ``attach_stdout``)."""
        return list(self._output.get(self.names(ccid)[0], ()))

    def names(self, ccid: str) -> tuple[str, str]:
        """The container and image names of ``ccid`` on this peer."""
        got = names(ccid, network_id=self._config.network_id, peer_id=self._config.peer_id)
        return got.container, got.image

    async def launch(
        self, request: LaunchRequest, *, progress: Callable[[str], object] | None = None
    ) -> Launched:
        """Launch the chaincode: everything is checked before the engine sees a call.

        Raises:
            InvalidRequest: a value breaks Fabric's rules (the field names which).
            NoSuchImage: the image is missing and no package was given to build it from.
            BuildFailed, StartupTimeout, EngineError, EngineUnavailable: from the steps.
        """
        container, image = self.names(request.ccid)
        tls = request.tls
        if tls is None and request.tls_enabled:
            tls = self._ca.issue()
        config = launch_config(
            ccid=request.ccid,
            cc_type=request.cc_type,
            peer_address=request.peer_address,
            tls=tls,
            mspid=request.mspid,
            layout=self._config.layout,
            logging=self._config.logging,
        )
        build_request = self._build_request(request, image)
        spec = LaunchSpec(
            container=container,
            image=image,
            args=config.args,
            env=config.env,
            files=config.files,
            host_config=self._config.host_config.to_engine(),
            labels={MANAGED_LABEL: "true", CCID_LABEL: request.ccid},
        )

        async def work(slot: Slot) -> str:
            async def build() -> None:
                if build_request is None:
                    raise NoSuchImage(
                        404, f"image {image} is missing and no code package was given to build it"
                    )
                await slot.build(
                    image, lambda: build_image(self._engine, build_request, progress=progress)
                )

            return await dockervm.start(
                self._engine,
                spec,
                build=build,
                startup_timeout=self._config.startup_timeout,
                output=self._relay(container) if self._config.attach_stdout else None,
                task_group=self._group,
            )

        container_id = await self._queue.run(container, work)
        return Launched(container=container, container_id=container_id, image=image)

    def _relay(self, container: str) -> Callable[[streams.Line], None]:
        """Where one chaincode's lines go: its logger, and its kept tail."""
        logger = logging.getLogger(f"peer.chaincode.{container}")
        tail = self._output[container] = collections.deque(maxlen=self._config.output_lines)

        def relay(line: streams.Line) -> None:
            tail.append(line.text)
            logger.info("%s", line.text)

        return relay

    async def stop(self, ccid: str, *, grace: int = 0) -> None:
        """Fabric's ContainerRuntime.Stop: stop with ``grace``, kill, remove, in its turn."""
        container, _ = self.names(ccid)

        async def work(_: Slot) -> None:
            await dockervm.stop(self._engine, container, grace=grace)

        await self._queue.run(container, work)

    def _build_request(self, request: LaunchRequest, image: str) -> BuildRequest | None:
        package = request.package
        if package is None:
            return None
        # Checked now, not when the build happens: a bad type or path never reaches the engine.
        platform = platform_for(package.type)
        platform.build_script(package.path)
        return BuildRequest(
            ccid=request.ccid,
            image=image,
            platform=platform,
            code_package=package.code,
            path=package.path,
            fabric_version=self._config.fabric_version,
        )
