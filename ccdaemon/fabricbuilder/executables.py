"""Writing the builder's four executables where the peer's core.yaml names the builder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ccdaemon.fabricbuilder.peer import STEPS


def wrapper(interpreter: str) -> str:
    """The text of each executable: ``interpreter`` runs the step its file is named after."""
    return (
        f"#!{interpreter}\n"
        '"""ccdaemon\'s Fabric external builder; the step is this file\'s name."""\n'
        "import sys\n"
        "\n"
        "from ccdaemon.fabricbuilder import main\n"
        "\n"
        "sys.exit(main(sys.argv))\n"
    )


def install(directory: Path, interpreter: str) -> list[Path]:
    """Write ``directory/bin/{detect,build,release,run}`` to run with ``interpreter``.

    The peer prunes its builders' environment, so the interpreter is named by absolute
    path rather than found on PATH. Each file is replaced whole, so a peer never runs a
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
            file.write(wrapper(interpreter))
        Path(temporary).chmod(0o755)
        Path(temporary).replace(target)
        written.append(target)
    return written
