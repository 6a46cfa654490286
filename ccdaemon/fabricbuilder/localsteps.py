"""The steps that need no daemon: ``detect`` claims a package, ``release`` hands files over.

``release`` gives the peer what it serves itself: the CouchDB indexes and, for a
chaincode-as-a-service package, its connection.json. Neither loads the client.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ccdaemon.fabricbuilder.peer import (
    CCAAS,
    CONNECTION_FILE,
    EXIT_FAILED,
    BuilderError,
    explain,
    read_metadata,
    read_record,
    say,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

TYPES_ENV = "CCDAEMON_BUILDER_TYPES"
DEFAULT_TYPES = frozenset({"golang", "node", "java"})


def main(step: str, args: Sequence[str]) -> int:
    """Run ``detect`` or ``release`` with the peer's arguments; the exit status."""
    try:
        if step == "detect":
            refused = detect(Path(args[1]), types=claimed_types(os.environ))
            if refused is not None:
                say(f"not claimed: {refused}")
                return EXIT_FAILED
            return 0
        release(Path(args[0]), Path(args[1]))
    # OSError: a directory the peer gave cannot be read or written.
    except (BuilderError, OSError) as exc:
        for line in explain(exc):
            say(line)
        return EXIT_FAILED
    return 0


def claimed_types(environ: Mapping[str, str]) -> frozenset[str]:
    """The package types this builder claims: ``$CCDAEMON_BUILDER_TYPES`` (comma-separated)."""
    given = environ.get(TYPES_ENV, "")
    types = frozenset(item.strip().lower() for item in given.split(",") if item.strip())
    return types or DEFAULT_TYPES


def detect(metadata_dir: Path, *, types: frozenset[str]) -> str | None:
    """Why the package is not claimed, or None when its type is one of ``types``."""
    try:
        cc_type = str(read_metadata(metadata_dir)["type"]).lower()
    except BuilderError as exc:
        return str(exc)
    if cc_type not in types:
        return f"type {cc_type!r} is not one this builder claims ({', '.join(sorted(types))})"
    return None


def release(build_dir: Path, release_dir: Path) -> None:
    """Give the peer the CouchDB indexes and, for chaincode-as-a-service, connection.json.

    Raises:
        BuilderError: ``build_dir`` holds no record of this builder's build.
    """
    record = read_record(build_dir)
    statedb = build_dir / "META-INF" / "statedb"
    if statedb.is_dir():
        shutil.copytree(statedb, release_dir / "statedb", dirs_exist_ok=True)
    if record.type == CCAAS:
        server = release_dir / "chaincode" / "server"
        server.mkdir(mode=0o750, parents=True, exist_ok=True)
        shutil.copyfile(build_dir / CONNECTION_FILE, server / CONNECTION_FILE)
