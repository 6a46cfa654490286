"""The project's test chaincode (tests/fabric/chaincode/kvcc), assembled as a Go module.

Only the chaincode's own source is in the repository. ``assemble`` makes the module
directory in scratch space: the source, ``go.mod`` (``module``, ``go 1.22`` and the
shim closure's require block), the closure's ``vendor/`` tree, and ``variant.go``,
which gives each package a variant of its own (same code, different package id).
``Admin.package`` then packages it with the real ``peer lifecycle chaincode package``.
"""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING

from tests.fabricnet.dist import ROOT, KitError

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fabricnet.dist import Distribution

#: The chaincode's source in the repository.
SOURCE = ROOT / "tests" / "fabric" / "chaincode" / "kvcc"
#: Its module path (and so the package's metadata.json ``path``).
MODULE = "ccdaemon.test/kvcc"
GO_DIRECTIVE = "1.22"
_VARIANT = re.compile(r"^[A-Za-z0-9_.-]+$")


def go_mod(dist: Distribution) -> str:
    """go.mod: this module, go 1.22, and the shim closure's require block."""
    require = (dist.shim / "go.mod.require").read_text()
    return f"module {MODULE}\n\ngo {GO_DIRECTIVE}\n\n{require.strip()}\n"


def assemble(dist: Distribution, target: Path, *, variant: str) -> Path:
    """Make the module directory ``target`` of variant ``variant``; ``target``.

    Raises:
        KitError: ``variant`` is not a plain word (it becomes a Go string constant).
    """
    if not _VARIANT.match(variant):
        raise KitError(f"variant {variant!r}: letters, digits, '_', '.', '-' only")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for source in sorted(SOURCE.glob("*.go")):
        shutil.copyfile(source, target / source.name)
    (target / "go.mod").write_text(go_mod(dist))
    (target / "variant.go").write_text(
        "package main\n\n"
        "// variant tells packages of the same code apart; the network kit writes this file.\n"
        f'const variant = "{variant}"\n'
    )
    shutil.copytree(dist.shim / "vendor", target / "vendor")
    return target
