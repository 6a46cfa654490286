"""What an operator sets per platform: the builder and runtime images, Go's build settings.

Each is checked when made, since its values reach a Dockerfile or a shell script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from ccdaemon.runtime.errors import InvalidRequest

#: Fabric's default Go ldflags (``chaincode.golang.dynamicLink: false``). External
#: linking needs gcc and a static libc in the builder image.
STATIC_LDFLAGS = "-ldflags \"-linkmode external -extldflags '-static'\""

#: The ldflags of ``chaincode.golang.dynamicLink: true``: none at all.
DYNAMIC_LDFLAGS = ""

#: Fabric's GOPROXY for the builder when the peer's environment sets none.
FABRIC_GOPROXY = "https://proxy.golang.org"

# An image reference's characters; enough to keep a configured name from breaking the
# FROM line, while the engine applies the real grammar when it pulls or builds.
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]*", re.ASCII)

# What may go inside the double quotes of ``-ldflags "..."`` in the build script: no
# character that /bin/sh expands or ends the quotes with there.
_LDFLAGS = re.compile(r"[^\"$`\\\n\r\x00]*")


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
