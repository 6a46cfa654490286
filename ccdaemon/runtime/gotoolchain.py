"""Whether the Go builder image can build a chaincode: its Go against the go.mod's ``go``.

Since Go 1.21 a ``go`` line is a minimum: an older toolchain either refuses the module
("go.mod requires go >= 1.25") or, Go 1.19 and older, cannot even read it, deep inside
``go build`` and after the package has been uploaded. Fabric 3.x even tries to download
a newer Go, which fails offline. Checked before any container is made, the error names
both versions and the setting to change instead.

The builder's version comes from the image's ``GOLANG_VERSION`` environment variable, as
the official golang images (which Fabric's ccenv is built FROM) and ccdaemon's goenv
stand-ins set it; an image without it is not checked.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from typing import TYPE_CHECKING

from ccdaemon.runtime.errors import GoTooOld

if TYPE_CHECKING:
    from collections.abc import Mapping

#: A go.mod ``go`` directive: ``go 1.22``, ``go 1.22.3``, ``go 1.21rc1``.
_GO_LINE = re.compile(
    rb"^go[ \t]+([0-9]+(?:\.[0-9]+){0,2})[A-Za-z0-9]*[ \t]*(?://.*)?$", re.MULTILINE
)
_VERSION = re.compile(r"^(?:go)?([0-9]+(?:\.[0-9]+){0,2})")
#: The setting that picks the Go builder image, for the error.
SETTING = "[images] golang_builder (core.yaml chaincode.builder)"


def module_go(code_package: bytes, path: str) -> str | None:
    """The ``go`` version of the go.mod Fabric's build script would use, or None.

    As the script looks: ``src/go.mod`` first, else ``src/<path>/go.mod``. A GOPATH
    package (no go.mod) has none.
    """
    beside = f"src/{path}/go.mod".replace("//", "/")
    wanted = {"src/go.mod", beside}
    found: dict[str, bytes] = {}
    with (
        gzip.GzipFile(fileobj=io.BytesIO(code_package)) as raw,
        tarfile.open(fileobj=raw, mode="r|") as tar,
    ):
        for member in tar:
            name = member.name.removeprefix("./")
            if name in wanted and member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    found[name] = handle.read()
    text = found.get("src/go.mod") or found.get(beside)
    if text is None:
        return None
    match = _GO_LINE.search(text)
    return match.group(1).decode() if match else None


def image_go(image_config: Mapping[str, object]) -> str | None:
    """The Go version an image says it has (``GOLANG_VERSION`` in its Env), or None."""
    env = image_config.get("Env")
    for item in env if isinstance(env, list) else []:
        if isinstance(item, str) and item.startswith("GOLANG_VERSION="):
            match = _VERSION.match(item.partition("=")[2])
            return match.group(1) if match else None
    return None


def check(ccid: str, *, wanted: str | None, builder_image: str, builder_go: str | None) -> None:
    """Refuse the build when the builder's Go is older than the module's minimum.

    Raises:
        GoTooOld: naming the chaincode, both versions and ``SETTING``.
    """
    if wanted is None or builder_go is None or _key(builder_go) >= _key(wanted):
        return
    raise GoTooOld(
        f"chaincode {ccid} needs Go {wanted} (its go.mod says 'go {wanted}'), but the "
        f"builder image {builder_image} has Go {builder_go}: set {SETTING} to an image "
        f"with Go {wanted} or newer",
        wanted=wanted,
        builder=builder_go,
    )


def _key(version: str) -> tuple[int, ...]:
    parts = tuple(int(part) for part in version.split("."))
    return parts + (0,) * (3 - len(parts))
