"""The platform of each chaincode type: its images, build command, Dockerfile, launch args.

``platform_for`` gives Go, Node or Java's ``Platform`` from the configured settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccdaemon.runtime.errors import InvalidRequest, UnknownChaincodeType
from ccdaemon.runtime.hostconfig import CCID_LABEL, MANAGED_LABEL
from ccdaemon.runtime.platforms.scripts import (
    NODE_BUILD_SCRIPT,
    NODE_START_SCRIPT,
    check_go_path,
    go_build_script,
)
from ccdaemon.runtime.platforms.settings import GolangBuild, PlatformImages

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Fabric's ``metadata.BaseDockerLabel``, the prefix of its image labels.
FABRIC_LABEL = "org.hyperledger.fabric"

# Fabric's version goes unquoted into ENV, as Fabric writes it, so only version text.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*", re.ASCII)

# host:port or [ipv6]:port; the address goes into Node's start script unquoted.
_PEER_ADDRESS = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})", re.ASCII)
_MAX_PORT = 65535

# Control characters cannot be written inside a Dockerfile's quoted value: a newline
# ends the instruction, and "\" before one is a line continuation, not an escape.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The types ``platform_for`` accepts (in any case), as Fabric 2.5's SupportedPlatforms.
SUPPORTED_TYPES = ("golang", "java", "node")

DEFAULT_IMAGES = PlatformImages()
DEFAULT_GOLANG = GolangBuild()


@dataclass(frozen=True, slots=True)
class Platform:
    """How one chaincode language is built and run, as Fabric 2.5 does it.

    Attributes:
        type: Fabric's type name, upper case (GOLANG, NODE, JAVA); the image label value.
        builder_image: the image the build script runs in.
        runtime_image: the image the chaincode image is built FROM.
        binpackage_dir: where the Dockerfile ADDs ``binpackage.tar`` (the build output).
        build_env: the builder container's Env.
        ldflags: Go only: what replaces Fabric's ``%[1]s``.
    """

    type: str
    builder_image: str
    runtime_image: str
    binpackage_dir: str
    build_env: tuple[str, ...] = ()
    ldflags: str = ""

    def build_script(self, path: str = "") -> str:
        """The script the builder runs under ``/bin/sh -c``.

        Args:
            path: the package metadata's ``path``; only Go uses it (Fabric's ``%[2]s``).

        Returns:
            Fabric 2.5's script for this language.

        Raises:
            InvalidRequest: for Go, a path that is not a plausible import path (field
                ``package.metadata.path``).
        """
        if self.type == "GOLANG":
            return go_build_script(self.ldflags, check_go_path(path))
        if self.type == "NODE":
            return NODE_BUILD_SCRIPT
        return "./build.sh"

    def build_command(self, path: str = "") -> list[str]:
        """The builder container's Cmd: ``["/bin/sh", "-c", build_script(path)]``.

        Args:
            path: the package metadata's ``path`` (see ``build_script``).

        Returns:
            The Cmd list, as Fabric's ``util.DockerBuild`` makes it.

        Raises:
            InvalidRequest: as ``build_script``.
        """
        return ["/bin/sh", "-c", self.build_script(path)]

    def dockerfile(
        self, ccid: str, *, fabric_version: str, labels: Mapping[str, str] | None = None
    ) -> str:
        """The runtime image's Dockerfile: Fabric 2.5's, its LABEL carrying ccdaemon's labels.

        ccdaemon's labels continue Fabric's one LABEL instruction: a LABEL of their own,
        or the build's ``labels`` parameter, would each be one more build step, a
        container committed (0.19 s a build on Docker 20.10: scripts/bench/imagelabels.py).

        Args:
            ccid: the chaincode's package id, for the ``ccdaemon.ccid`` label.
            fabric_version: Fabric's ``metadata.Version`` to claim in the label and ENV.
            labels: more labels (the daemon's instance); keys are ccdaemon's own names.

        Returns:
            The Dockerfile text, ending in a newline.

        Raises:
            InvalidRequest: ``fabric_version`` is not version text, or ``ccid`` holds
                control characters, which no Dockerfile label value can carry.
        """
        if not _VERSION.fullmatch(fabric_version):
            raise InvalidRequest("fabric_version", f"not a version: {fabric_version!r}")
        ours = {MANAGED_LABEL: '"true"', CCID_LABEL: quote_label_value("ccid", ccid)}
        ours.update((k, quote_label_value(k, v)) for k, v in (labels or {}).items())
        # Fabric's lines as its Registry.GenerateDockerfile joins them; the type and
        # version are constants or checked above, so Fabric's bare quoting holds for them.
        label = [
            f'LABEL {FABRIC_LABEL}.chaincode.type="{self.type}"',
            f'      {FABRIC_LABEL}.version="{fabric_version}"',
            *(f"      {key}={value}" for key, value in ours.items()),
        ]
        lines = [
            f"FROM {self.runtime_image}",
            f"ADD binpackage.tar {self.binpackage_dir}",
            " \\\n".join(label),
            f"ENV CORE_CHAINCODE_BUILDLEVEL={fabric_version}",
        ]
        return "\n".join(lines) + "\n"

    def launch_args(self, peer_address: str) -> list[str]:
        """The chaincode container's Cmd, as Fabric 2.5's ``DockerVM.GetArgs``.

        Args:
            peer_address: ``host:port`` the chaincode dials back to.

        Returns:
            The Cmd list for this language.

        Raises:
            InvalidRequest: the address is not ``host:port`` (field ``peer.address``);
                Node's start script would otherwise run it as shell text.
        """
        match = _PEER_ADDRESS.fullmatch(peer_address)
        if match is None or not 1 <= int(match.group("port")) <= _MAX_PORT:
            raise InvalidRequest("peer.address", f"not host:port: {peer_address!r}")
        if self.type == "GOLANG":
            return ["chaincode", f"-peer.address={peer_address}"]
        if self.type == "NODE":
            return ["/bin/sh", "-c", NODE_START_SCRIPT.format(address=peer_address)]
        return ["/root/chaincode-java/start", "--peerAddress", peer_address]


def quote_label_value(field: str, value: str) -> str:
    r"""Quote ``value`` for a Dockerfile LABEL so that it reads back unchanged.

    Inside double quotes the Dockerfile parser takes ``\"`` and ``\\`` as escapes and
    expands ``$NAME``, so those three characters are escaped; control characters have
    no escape at all and are refused.

    Args:
        field: the request field the value came from, for the error.
        value: the label value.

    Returns:
        The value in double quotes.

    Raises:
        InvalidRequest: ``value`` holds a control character (field ``field``).
    """
    if _CONTROL.search(value):
        raise InvalidRequest(field, f"control characters cannot go in an image label: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def platform_for(
    type: str,  # noqa: A002 -- the package metadata's own name for it
    images: PlatformImages = DEFAULT_IMAGES,
    golang: GolangBuild = DEFAULT_GOLANG,
) -> Platform:
    """The platform of a chaincode type, case-insensitive as in Fabric 2.5.

    Fabric upper-cases the package metadata's ``type`` (lifecycle tools write
    ``golang``); CAR is not a platform in 2.x, so it is unknown here too.

    Args:
        type: the package metadata's ``type``.
        images: the configured builder and runtime images.
        golang: the Go build settings.

    Returns:
        The platform.

    Raises:
        UnknownChaincodeType: no platform handles ``type`` (field ``type``); the message
            lists the supported types.
    """
    match type.upper():
        case "GOLANG":
            return Platform(
                type="GOLANG",
                builder_image=images.golang_builder,
                runtime_image=images.golang_runtime,
                binpackage_dir="/usr/local/bin",
                build_env=golang.env,
                ldflags=golang.ldflags_option,
            )
        case "NODE":
            return Platform(
                type="NODE",
                builder_image=images.node_builder,
                runtime_image=images.node_runtime,
                binpackage_dir="/usr/local/src",
            )
        case "JAVA":
            return Platform(
                type="JAVA",
                builder_image=images.java_builder,
                runtime_image=images.java_runtime,
                binpackage_dir="/root/chaincode-java/chaincode",
            )
    raise UnknownChaincodeType(
        "type", f"unknown chaincode type {type!r}; supported: {', '.join(SUPPORTED_TYPES)}"
    )
