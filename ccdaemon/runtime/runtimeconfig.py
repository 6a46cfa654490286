"""The peer-wide settings of the chaincode runtime, and who issues chaincode certificates.

``RuntimeConfig`` holds what Fabric reads from core.yaml (peer.*, vm.*, chaincode.*) and
the daemon's instance; every backend takes it. ``Issuer`` is the chaincode CA's face.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ccdaemon.runtime.hostconfig import CCID_LABEL, INSTANCE_LABEL, MANAGED_LABEL, HostConfig
from ccdaemon.runtime.launchconfig import ChaincodeLogging, Layout
from ccdaemon.runtime.platforms import GolangBuild, PlatformImages

if TYPE_CHECKING:
    from ccdaemon.runtime.certs import ClientCredentials


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
