"""Fabric 2.5's chaincode platforms: how each language is built and what image it runs in.

Fabric builds a chaincode image in two steps (core/chaincode/platforms/*@release-2.5):
an ephemeral builder container runs ``/bin/sh -c <build script>`` with the code package
in ``/chaincode/input`` and leaves its result in ``/chaincode/output``; that output,
as ``binpackage.tar``, is then ADDed onto the runtime image by a generated Dockerfile.
This module holds the pure half of that: images, scripts, environment, the Dockerfile
and the launch arguments, per language. Nothing here touches an engine.

Everything that reaches a shell script or a Dockerfile is either a constant, validated
against a narrow grammar, or quoted, because the package metadata that supplies the Go
path and the chaincode id come from whoever installed the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from ccdaemon.runtime.errors import InvalidRequest, UnknownChaincodeType
from ccdaemon.runtime.hostconfig import CCID_LABEL, MANAGED_LABEL

#: Fabric's ``metadata.BaseDockerLabel``, the prefix of its image labels.
FABRIC_LABEL = "org.hyperledger.fabric"

#: Fabric's default Go ldflags (``chaincode.golang.dynamicLink: false``). External
#: linking needs gcc and a static libc in the builder image.
STATIC_LDFLAGS = "-ldflags \"-linkmode external -extldflags '-static'\""

#: The ldflags of ``chaincode.golang.dynamicLink: true``: none at all.
DYNAMIC_LDFLAGS = ""

# Fabric release-2.5 golang buildScript; {ldflags} is its %[1]s, {path} its %[2]s and
# {toolchain} its %[3]s (the v2.5.16 Go download, always empty here: see _go_script).
_GO_BUILD_SCRIPT = """
set -e
{toolchain}
if [ -f "/chaincode/input/src/go.mod" ] && [ -d "/chaincode/input/src/vendor" ]; then
    cd /chaincode/input/src
    GO111MODULE=on go build -v -mod=vendor {ldflags} -o /chaincode/output/chaincode {path}
elif [ -f "/chaincode/input/src/go.mod" ]; then
    cd /chaincode/input/src
    GO111MODULE=on go build -v -mod=readonly {ldflags} -o /chaincode/output/chaincode {path}
elif [ -f "/chaincode/input/src/{path}/go.mod" ] && [ -d "/chaincode/input/src/{path}/vendor" ]; then
    cd /chaincode/input/src/{path}
    GO111MODULE=on go build -v -mod=vendor {ldflags} -o /chaincode/output/chaincode .
elif [ -f "/chaincode/input/src/{path}/go.mod" ]; then
    cd /chaincode/input/src/{path}
    GO111MODULE=on go build -v -mod=readonly {ldflags} -o /chaincode/output/chaincode .
else
    GO111MODULE=off GOPATH=/chaincode/input:$GOPATH go build -v {ldflags} -o /chaincode/output/chaincode {path}
fi
echo Done!
"""  # noqa: E501 -- Fabric's text as it is

# Fabric release-2.5 node buildScript (tabs included).
_NODE_BUILD_SCRIPT = """
set -e
if [ -x /chaincode/build.sh ]; then
\t/chaincode/build.sh
else
\tcp -R /chaincode/input/src/. /chaincode/output && cd /chaincode/output && npm install --production
fi
"""

# Fabric release-2.5 dockercontroller nodeStartScript; {address} is its %[1]s.
_NODE_START_SCRIPT = """
set -e
if [ -x /chaincode/start.sh ]; then
\t/chaincode/start.sh --peer.address {address}
else
\tcd /usr/local/src
\tnpm start -- --peer.address {address}
fi
"""

# Go's import path alphabet (golang.org/x/mod/module: letters, digits, "-._~" and "+"),
# ASCII only, slash-separated, no empty element. None of these characters means
# anything to /bin/sh unquoted or inside double quotes, so the path can be substituted
# into Fabric's script as it is; "~" only expands at the start of a word, which the
# leading-character rule below rules out.
_GO_PATH = re.compile(r"[A-Za-z0-9_.+-][A-Za-z0-9_.~+-]*(?:/[A-Za-z0-9_.~+-]+)*", re.ASCII)
_GO_PATH_MAX = 4096

# An image reference's characters; enough to keep a configured name from breaking the
# FROM line, while the engine applies the real grammar when it pulls or builds.
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*", re.ASCII)

# Fabric's version goes unquoted into ENV, as Fabric writes it, so only version text.
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*", re.ASCII)

# host:port or [ipv6]:port; the address goes into Node's start script unquoted.
_PEER_ADDRESS = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})", re.ASCII)
_MAX_PORT = 65535

# Control characters cannot be written inside a Dockerfile's quoted value: a newline
# ends the instruction, and "\" before one is a line continuation, not an escape.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class PlatformImages:
    """Builder and runtime image per language (core.yaml ``chaincode.*``, resolved).

    Fabric builds Go in ``chaincode.builder`` (fabric-ccenv) and runs it on
    ``chaincode.golang.runtime`` (fabric-baseos); the defaults here are ccdaemon's local
    stand-ins for those (scripts/images), since the test bed has no registry. Node and
    Java build and run in one image each, as in Fabric, and keep Fabric's names.

    Raises:
        InvalidRequest: a name that is not an image reference (field ``images.<name>``).
    """

    golang_builder: str = "localhost/ccdaemon/goenv:1.24"
    golang_runtime: str = "localhost/ccdaemon/baseos:1"
    node_builder: str = "hyperledger/fabric-nodeenv:2.5"
    node_runtime: str = "hyperledger/fabric-nodeenv:2.5"
    java_builder: str = "hyperledger/fabric-javaenv:2.5"
    java_runtime: str = "hyperledger/fabric-javaenv:2.5"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not _IMAGE.fullmatch(value):
                raise InvalidRequest(f"images.{f.name}", f"not an image reference: {value!r}")


#: Fabric's GOPROXY for the builder when the peer's environment sets none.
FABRIC_GOPROXY = "https://proxy.golang.org"

# What may go inside the double quotes of ``-ldflags "..."`` in the build script: no
# character that /bin/sh expands or ends the quotes with there.
_LDFLAGS = re.compile(r"[^\"$`\\\n\r\x00]*")


@dataclass(frozen=True, slots=True)
class GolangBuild:
    """Go build settings: Fabric's ``chaincode.golang.dynamicLink``, link flags, Go proxy.

    The defaults are Fabric's: a static binary (``-linkmode external -extldflags
    '-static'``, which needs gcc and a static libc in the builder image) and
    ``GOPROXY=https://proxy.golang.org``. ccdaemon's builders have no network
    (NetworkMode none), so a module must come vendored or need nothing outside the
    standard library whatever the proxy says. ``gosumdb`` is passed only when set, as
    Fabric passes the peer's own ``GOSUMDB`` only when it has one.

    Attributes:
        dynamic_link: Fabric's dynamicLink: no link flags at all.
        ldflags: when set, what goes in ``-ldflags "..."`` instead of Fabric's choice
            (empty: no ``-ldflags``).
        goproxy: the builder's GOPROXY.
        gosumdb: the builder's GOSUMDB, when set.

    Raises:
        InvalidRequest: ``ldflags`` holds a character the shell would expand there
            (field ``golang.ldflags``).
    """

    dynamic_link: bool = False
    ldflags: str | None = None
    goproxy: str = FABRIC_GOPROXY
    gosumdb: str | None = None

    def __post_init__(self) -> None:
        if self.ldflags is not None and not _LDFLAGS.fullmatch(self.ldflags):
            raise InvalidRequest(
                "golang.ldflags",
                f"cannot hold a double quote, '$', '`', a backslash or a line break: "
                f"{self.ldflags!r}",
            )

    @property
    def ldflags_option(self) -> str:
        """The ldflags option Fabric substitutes for ``%[1]s``."""
        if self.ldflags is not None:
            return f'-ldflags "{self.ldflags}"' if self.ldflags else ""
        return DYNAMIC_LDFLAGS if self.dynamic_link else STATIC_LDFLAGS

    @property
    def env(self) -> tuple[str, ...]:
        """The builder container's Env, in Fabric's order (GOPROXY, then GOSUMDB)."""
        env = [f"GOPROXY={self.goproxy}"]
        if self.gosumdb is not None:
            env.append(f"GOSUMDB={self.gosumdb}")
        return tuple(env)


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
            return _go_script(self.ldflags, check_go_path(path))
        if self.type == "NODE":
            return _NODE_BUILD_SCRIPT
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

    def dockerfile(self, ccid: str, *, fabric_version: str) -> str:
        """The runtime image's Dockerfile: Fabric 2.5's text, then ccdaemon's labels.

        Args:
            ccid: the chaincode's package id, for the ``ccdaemon.ccid`` label.
            fabric_version: Fabric's ``metadata.Version`` to claim in the label and ENV.

        Returns:
            The Dockerfile text, ending in a newline.

        Raises:
            InvalidRequest: ``fabric_version`` is not version text, or ``ccid`` holds
                control characters, which no Dockerfile label value can carry.
        """
        if not _VERSION.fullmatch(fabric_version):
            raise InvalidRequest("fabric_version", f"not a version: {fabric_version!r}")
        # Fabric's lines as its Registry.GenerateDockerfile joins them; the type and
        # version are constants or checked above, so Fabric's bare quoting holds for them.
        fabric = [
            f"FROM {self.runtime_image}",
            f"ADD binpackage.tar {self.binpackage_dir}",
            f'LABEL {FABRIC_LABEL}.chaincode.type="{self.type}" \\',
            f'      {FABRIC_LABEL}.version="{fabric_version}"',
            f"ENV CORE_CHAINCODE_BUILDLEVEL={fabric_version}",
        ]
        # A separate LABEL keeps Fabric's text above unchanged, line for line.
        ours = [
            f'LABEL {MANAGED_LABEL}="true" \\',
            f"      {CCID_LABEL}={quote_label_value('ccid', ccid)}",
        ]
        return "\n".join([*fabric, *ours]) + "\n"

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
            return ["/bin/sh", "-c", _NODE_START_SCRIPT.format(address=peer_address)]
        return ["/root/chaincode-java/start", "--peerAddress", peer_address]


def check_go_path(path: str) -> str:
    """Return ``path`` if it is a plausible Go import path, fit for Fabric's build script.

    The empty path is allowed: a module at the root of ``src`` builds with ``go build``
    in that directory.

    Args:
        path: the package metadata's ``path``.

    Returns:
        ``path`` unchanged.

    Raises:
        InvalidRequest: field ``package.metadata.path``; the path holds characters the
            shell would interpret, a ``..``, an empty element, or starts with ``-`` or
            ``/``.
    """
    if path == "":
        return path
    if len(path) > _GO_PATH_MAX:
        raise InvalidRequest("package.metadata.path", f"longer than {_GO_PATH_MAX} characters")
    # ".." is refused anywhere, not only as an element: no import path needs it, and
    # "cd /chaincode/input/src/.." would leave the package.
    if ".." in path or path.startswith("-") or not _GO_PATH.fullmatch(path):
        raise InvalidRequest(
            "package.metadata.path",
            f"not a Go import path: {path!r} (allowed: letters, digits, '-._~+' and '/' "
            "between non-empty elements; no '..', no leading '-' or '/')",
        )
    return path


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


def _go_script(ldflags: str, path: str) -> str:
    # %[3]s is empty: Fabric 2.5.16 fills it only when go.mod asks for a newer Go than
    # the builder's, with a curl from go.dev that builders here (no network) cannot do.
    # Empty, it leaves the blank line Fabric itself leaves in that case.
    return _GO_BUILD_SCRIPT.format(ldflags=ldflags, path=path, toolchain="")
