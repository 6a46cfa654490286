"""Fabric's external builder (``detect``, ``build``, ``release``, ``run``) on ccdaemon's API.

A Fabric 2.x/3.x peer configured with this builder in core.yaml's
``chaincode.externalBuilders`` runs the four executables of ``<path>/bin`` (see
``install``) instead of building and running chaincode on a container engine itself:

- ``detect SOURCE METADATA``: exit 0 to claim a package whose ``metadata.json`` type is
  one of ``$CCDAEMON_BUILDER_TYPES`` (default ``golang,node,java``), 1 otherwise.
- ``build SOURCE METADATA OUTPUT``: have the daemon build the image now (2.x "build at
  install") and record it in OUTPUT, which the peer keeps, so a restart reuses it.
- ``release OUTPUT RELEASE``: hand the peer the package's CouchDB indexes (and, for a
  chaincode-as-a-service package, its ``connection.json``).
- ``run OUTPUT RUN_METADATA``: launch the recorded image with ``chaincode.json``'s
  address and TLS material, stay in the foreground while the chaincode runs, exit with
  its exit code; on SIGTERM (the peer's stop) stop the container, then exit.

The peer runs them with a pruned environment: only ``propagateEnvironment`` and
``LD_LIBRARY_PATH``, ``LIBPATH``, ``PATH``, ``TMPDIR``. The daemon is found at
``$CCDAEMON_SOCKET``, else ``/run/ccdaemon/ccdaemon.sock``. Messages go to stderr, which the
peer logs line by line. Exit status: 0 done; 1 failed (or, for detect, not claimed); 2 a
usage error; 3 the daemon cannot be reached (the message names the socket).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ccdaemon.apiclient import APIError, Client, ClientError, DaemonUnreachable
from ccdaemon.fabricbuilder.buildstep import (
    DEFAULT_TYPES,
    TYPES_ENV,
    build,
    claimed_types,
    detect,
    release,
)
from ccdaemon.fabricbuilder.executables import install, wrapper
from ccdaemon.fabricbuilder.peer import (
    CCAAS,
    CONNECTION_FILE,
    PACKAGE_FILE,
    RECORD_FILE,
    STEPS,
    BuilderError,
    BuildRecord,
    RunConfig,
    read_metadata,
    read_record,
    read_run_config,
    say,
)
from ccdaemon.fabricbuilder.runstep import (
    AWAY_REPORT,
    STOP_DEADLINE,
    STOP_GRACE,
    launch_body,
    run,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "AWAY_REPORT",
    "CCAAS",
    "CONNECTION_FILE",
    "DEFAULT_TYPES",
    "EXIT_FAILED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "PACKAGE_FILE",
    "RECORD_FILE",
    "STEPS",
    "STOP_DEADLINE",
    "STOP_GRACE",
    "TYPES_ENV",
    "BuildRecord",
    "BuilderError",
    "RunConfig",
    "build",
    "claimed_types",
    "detect",
    "install",
    "launch_body",
    "main",
    "read_metadata",
    "read_record",
    "read_run_config",
    "release",
    "run",
    "wrapper",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def main(argv: Sequence[str]) -> int:
    """Run the step named by ``argv[0]``'s file name with the peer's arguments; exit status."""
    step, args = Path(argv[0]).name, [Path(arg) for arg in argv[1:]]
    expected = STEPS.get(step)
    if expected is None or len(args) != len(expected):
        say(
            f"usage: {step} {' '.join(expected)}"
            if expected is not None
            else f"unknown step {step!r}: the executable must be named one of {', '.join(STEPS)}"
        )
        return EXIT_USAGE
    try:
        return _step(step, args)
    except DaemonUnreachable as exc:
        say(exc.message)
        return EXIT_UNREACHABLE
    # OSError: a directory the peer gave cannot be read or written.
    except (BuilderError, ClientError, OSError) as exc:
        for line in _explain(exc):
            say(line)
        return EXIT_FAILED


def _explain(exc: Exception) -> list[str]:
    """The lines that tell the peer's log why a step failed."""
    if isinstance(exc, APIError):
        field = f" (field {exc.field})" if exc.field else ""
        return [f"{exc}{field}", *(f"  {line}" for line in exc.log_tail)]
    if isinstance(exc, OSError) and exc.filename:
        return [f"{exc.filename}: {exc.strerror}"]
    return [str(exc)]


def _step(step: str, args: list[Path]) -> int:
    if step == "detect":
        refused = detect(args[1], types=claimed_types(os.environ))
        if refused is not None:
            say(f"not claimed: {refused}")
            return EXIT_FAILED
        return 0
    if step == "release":
        release(args[0], args[1])
        return 0
    return asyncio.run(_with_client(step, args))


async def _with_client(step: str, args: list[Path]) -> int:
    async with Client() as client:
        if step == "build":
            record = await build(args[0], args[1], args[2], client=client)
            say(f"built {record.build_id}: {record.image or 'chaincode-as-a-service'}")
            return 0
        return await run(args[0], args[1], client=client)
