"""Writing the builder's four executables where the peer's core.yaml names the builder."""

from __future__ import annotations

import os
import sysconfig
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import ccdaemon
from ccdaemon.fabricbuilder.peer import STEPS

if TYPE_CHECKING:
    from collections.abc import Sequence


def wrapper(interpreter: str, paths: Sequence[str] = ()) -> str:
    """The text of each executable: ``interpreter`` runs the step its file is named after.

    With ``paths`` (the directories holding ccdaemon and its dependencies), the
    interpreter starts isolated and without ``site`` (``-IS``) and imports from exactly
    those: site's work (.pth files, an editable install's finder) would otherwise cost
    every ``run``, so every chaincode launch, about 30 ms. Without, the interpreter
    (``/usr/bin/env python3``, which takes no options) finds ccdaemon as it would.
    """
    lines = [f"#!{interpreter} -IS" if paths else f"#!{interpreter}"]
    lines.append('"""ccdaemon\'s Fabric external builder; the step is this file\'s name."""')
    lines.append("import sys")
    lines.append("")
    if paths:
        lines.append(f"sys.path[:0] = {list(paths)!r}")
    lines.append("from ccdaemon.fabricbuilder import main")
    lines.append("")
    lines.append("sys.exit(main(sys.argv))")
    return "\n".join(lines) + "\n"


def import_paths() -> list[str]:
    """Where this interpreter finds ccdaemon and its dependencies, without ``site``."""
    found = [str(Path(ccdaemon.__file__).resolve().parent.parent)]
    for name in ("purelib", "platlib"):
        path = sysconfig.get_path(name)
        if path not in found:
            found.append(path)
    return found


def install(directory: Path, interpreter: str, paths: Sequence[str] = ()) -> list[Path]:
    """Write ``directory/bin/{detect,build,release,run}`` to run with ``interpreter``.

    The peer prunes its builders' environment, so the interpreter is named by absolute
    path rather than found on PATH. ``paths``: see ``wrapper`` (``import_paths()`` for
    the running interpreter). Each file is replaced whole, so a peer never runs a
    half-written one.

    Returns:
        The paths written.
    """
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for step in STEPS:
        target = bin_dir / step
        handle, temporary = tempfile.mkstemp(dir=bin_dir, prefix=f".{step}.")
        with os.fdopen(handle, "w") as file:
            file.write(wrapper(interpreter, paths))
        Path(temporary).chmod(0o755)
        Path(temporary).replace(target)
        written.append(target)
    return written
